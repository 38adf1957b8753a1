//! `gitgrant monitor`: read provider activity logs for active grants; alert; revoke on a forbidden action.

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_g: &Global, _a: Args) -> u8 {
    super::fail("`gitgrant monitor` is not implemented yet")
}

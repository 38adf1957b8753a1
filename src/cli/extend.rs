//! `gitgrant extend`: a new request continuing an existing one.

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_g: &Global, _a: Args) -> u8 {
    super::fail("`gitgrant extend` is not implemented yet")
}

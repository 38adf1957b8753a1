//! `gitgrant simulate`: replay history under other policies.

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_g: &Global, _a: Args) -> u8 {
    super::fail("`gitgrant simulate` is not implemented yet")
}

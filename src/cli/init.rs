//! `gitgrant init`: scaffold an access repository.

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_g: &Global, _a: Args) -> u8 {
    super::fail("`gitgrant init` is not implemented yet")
}

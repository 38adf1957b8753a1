//! `gitgrant completions`: shell completion scripts.

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_g: &Global, _a: Args) -> u8 {
    super::fail("`gitgrant completions` is not implemented yet")
}

//! `gitgrant request`: write a request file from flags or prompts.

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_g: &Global, _a: Args) -> u8 {
    super::fail("`gitgrant request` is not implemented yet")
}

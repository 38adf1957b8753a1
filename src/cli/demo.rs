//! `gitgrant demo`: the whole lifecycle in a temporary repository on the local provider.

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_g: &Global, _a: Args) -> u8 {
    super::fail("`gitgrant demo` is not implemented yet")
}

//! `gitgrant audit`: who had what, when and why: git history joined with the ledger.

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_g: &Global, _a: Args) -> u8 {
    super::fail("`gitgrant audit` is not implemented yet")
}

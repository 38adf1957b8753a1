//! `gitgrant revoke`: early revocation; --now revokes at the providers immediately.

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_g: &Global, _a: Args) -> u8 {
    super::fail("`gitgrant revoke` is not implemented yet")
}

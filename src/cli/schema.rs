//! `gitgrant schema`: JSON Schema for editors (yaml-language-server).

use clap::ValueEnum;

use super::Global;
use crate::model::policy::RawPolicyFile;
use crate::model::request::RawRequest;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    Request,
    Policy,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which file kind.
    #[arg(value_enum, default_value = "request")]
    kind: Kind,
}

pub fn run(_g: &Global, a: Args) -> u8 {
    let schema = match a.kind {
        Kind::Request => schemars::schema_for!(RawRequest),
        Kind::Policy => schemars::schema_for!(RawPolicyFile),
    };
    match serde_json::to_string_pretty(&schema) {
        Ok(s) => {
            println!("{s}");
            0
        }
        Err(e) => super::fail(e),
    }
}

//! `gitgrant schema`: JSON Schema for editors (yaml-language-server).
//!
//! The schemas are derived from the raw types (schemars), then carry every
//! rule of `check` that a schema can express, so an editor flags what `check`
//! would refuse: the duration grammar as a pattern, RFC 3339 times as
//! `format: date-time`, the reason's 10 characters (after trimming, as
//! `check` counts them), at least one resource, and exactly one of
//! `duration` and `until`. What a schema cannot know (the id is the file
//! name, roles and people live in other files) stays `check`'s alone; the
//! corpus test `tests/it/schema_corpus.rs` keeps the two in agreement.

use clap::ValueEnum;
use serde_json::{Value, json};

use super::Global;
use crate::model::policy::RawPolicyFile;
use crate::model::request::RawRequest;

/// The duration grammar of `model::duration`, greater than zero: parts
/// `<1-9 digits><unit>`, units `w d h m s` each at most once, largest first,
/// surrounding blanks allowed, at least one non-zero digit.
pub const DURATION_PATTERN: &str = r"^\s*(?=[^1-9]*[1-9])(?:[0-9]{1,9}w)?(?:[0-9]{1,9}d)?(?:[0-9]{1,9}h)?(?:[0-9]{1,9}m)?(?:[0-9]{1,9}s)?\s*$";
/// The same grammar, zero allowed (`grace: 0m`).
pub const DURATION_OR_ZERO_PATTERN: &str = r"^\s*(?=[^\s])(?:[0-9]{1,9}w)?(?:[0-9]{1,9}d)?(?:[0-9]{1,9}h)?(?:[0-9]{1,9}m)?(?:[0-9]{1,9}s)?\s*$";
/// At least 10 characters once leading and trailing blanks are trimmed.
pub const REASON_PATTERN: &str = r"^\s*\S[\s\S]{8,}\S\s*$";

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

/// The request-file schema, with `check`'s expressible rules.
pub fn request_schema() -> Value {
    let mut s = schemars::schema_for!(RawRequest);
    if let Some(p) = s.pointer_mut("/properties").and_then(Value::as_object_mut) {
        let set = |p: &mut serde_json::Map<String, Value>, field: &str, extra: Value| {
            if let (Some(Value::Object(f)), Value::Object(extra)) = (p.get_mut(field), extra) {
                f.extend(extra);
            }
        };
        set(p, "duration", json!({ "pattern": DURATION_PATTERN }));
        set(p, "start", json!({ "format": "date-time" }));
        set(p, "until", json!({ "format": "date-time" }));
        set(p, "reason", json!({ "minLength": 10, "pattern": REASON_PATTERN }));
        set(p, "resources", json!({ "minItems": 1, "items": { "type": "string", "minLength": 1 } }));
    }
    {
        s.insert(
            "oneOf".into(),
            json!([
                { "required": ["duration"], "not": { "required": ["until"] } },
                { "required": ["until"], "not": { "required": ["duration"] } }
            ]),
        );
    }
    s.to_value()
}

/// The policy-file schema, with duration patterns on the duration fields.
pub fn policy_schema() -> Value {
    let mut s = schemars::schema_for!(RawPolicyFile);
    for (def, field, pattern) in [
        ("RawRole", "max_duration", DURATION_PATTERN),
        ("RawBreakGlass", "max_duration", DURATION_PATTERN),
        ("RawBreakGlass", "review_within", DURATION_PATTERN),
        ("RawTier", "max_duration", DURATION_PATTERN),
        ("RawMonitor", "grace", DURATION_OR_ZERO_PATTERN),
        ("RawMonitor", "lookback", DURATION_PATTERN),
    ] {
        if let Some(Value::Object(f)) = s.pointer_mut(&format!("/$defs/{def}/properties/{field}")) {
            f.insert("pattern".into(), Value::String(pattern.into()));
        }
    }
    s.to_value()
}

pub fn run(_g: &Global, a: Args) -> u8 {
    let schema = match a.kind {
        Kind::Request => request_schema(),
        Kind::Policy => policy_schema(),
    };
    match serde_json::to_string_pretty(&schema) {
        Ok(s) => {
            println!("{s}");
            0
        }
        Err(e) => super::fail(e),
    }
}

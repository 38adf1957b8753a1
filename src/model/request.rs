//! Request files: `requests/**/<id>.yaml`, one access request each.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Duration, Sp};

/// An access request: one file `requests/<id>.yaml`, the id being the file stem.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "gitgrant access request")]
pub struct RawRequest {
    /// GitHub login of the person who gets access.
    pub requester: Sp<String>,
    /// A role defined in policies/.
    pub role: Sp<String>,
    /// One or more resources the role applies to.
    pub resources: Sp<Vec<Sp<String>>>,
    /// How long access lasts, e.g. `90m`, `2h`, `1d`. Required unless `until` is given.
    #[serde(default)]
    pub duration: Option<Sp<String>>,
    /// RFC 3339 start time. Default: when the request lands on the main branch.
    #[serde(default)]
    pub start: Option<Sp<String>>,
    /// RFC 3339 end time, instead of `duration`.
    #[serde(default)]
    pub until: Option<Sp<String>>,
    /// Why access is needed; at least 10 characters.
    pub reason: Sp<StrictString>,
    /// Incident or change ticket; a role may require it and a pattern.
    #[serde(default)]
    pub ticket: Option<Sp<String>>,
    /// Emergency access under the policy's break-glass rules.
    #[serde(default)]
    pub break_glass: Option<Sp<StrictBool>>,
    /// The id of the request this one continues (`gitgrant extend`).
    #[serde(default)]
    pub extends: Option<Sp<String>>,
}

/// A YAML boolean as written: `true` or `false`, never the string `"true"`
/// (which serde would otherwise coerce, and turn break-glass on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrictBool(pub bool);

/// A YAML string as written: a number or boolean where text belongs
/// (`reason: 12345678901`) is an error, not silently turned into text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StrictString(pub String);

impl std::ops::Deref for StrictString {
    type Target = String;
    fn deref(&self) -> &String {
        &self.0
    }
}

impl<'de> Deserialize<'de> for StrictBool {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = StrictBool;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`true` or `false` (unquoted)")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<StrictBool, E> {
                Ok(StrictBool(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StrictBool, E> {
                Err(E::custom(format!("expected `true` or `false`, found the text `{v}`")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<StrictBool, E> {
                Err(E::custom(format!("expected `true` or `false`, found the number `{v}`")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<StrictBool, E> {
                Err(E::custom(format!("expected `true` or `false`, found the number `{v}`")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<StrictBool, E> {
                Err(E::custom(format!("expected `true` or `false`, found the number `{v}`")))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for StrictString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = StrictString;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("text (quote it if it looks like a number or a boolean)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StrictString, E> {
                Ok(StrictString(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<StrictString, E> {
                Ok(StrictString(v))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<StrictString, E> {
                Err(E::custom(format!("expected text, found the boolean `{v}`")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<StrictString, E> {
                Err(E::custom(format!("expected text, found the number `{v}`")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<StrictString, E> {
                Err(E::custom(format!("expected text, found the number `{v}`")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<StrictString, E> {
                Err(E::custom(format!("expected text, found the number `{v}`")))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for StrictBool {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StrictBool".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "boolean" })
    }
}

impl JsonSchema for StrictString {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StrictString".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string" })
    }
}

/// A request whose fields are parsed (times, durations); references to
/// policies are checked separately, by `validate::request`.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: String,
    pub file: String,
    pub requester: String,
    pub role: String,
    pub resources: Vec<String>,
    pub duration: Option<Duration>,
    pub start: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub reason: String,
    pub ticket: Option<String>,
    pub break_glass: bool,
    pub extends: Option<String>,
    pub raw: RawRequest,
}

/// The access window of a request, once its start is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
    pub fn length(&self) -> Duration {
        Duration::from_secs((self.end - self.start).num_seconds())
    }
}

impl Request {
    /// The window, taking `default_start` (landing or check time) when the
    /// request has no `start`. `None` when the times did not parse.
    pub fn window(&self, default_start: DateTime<Utc>) -> Option<Window> {
        let start = self.start.unwrap_or(default_start);
        let end = match (self.until, self.duration) {
            (Some(u), _) => u,
            (None, Some(d)) => start.checked_add_signed(d.delta())?,
            (None, None) => return None,
        };
        Some(Window { start, end })
    }

    /// True when the parsed request is field for field the one `old` asks
    /// for (the file's text may differ: a comment, key order, quoting).
    pub fn same_content(&self, old: &Request) -> bool {
        self.requester == old.requester
            && self.role == old.role
            && self.resources == old.resources
            && self.duration == old.duration
            && self.start == old.start
            && self.until == old.until
            && self.reason == old.reason
            && self.ticket == old.ticket
            && self.break_glass == old.break_glass
            && self.extends == old.extends
    }

    /// True when this request only narrows `old`: everything else the same,
    /// and at least one of a later start, an earlier end, fewer resources
    /// (an early revocation, which needs no approval). Identical content is
    /// not a shrink ([`Self::same_content`]); neither is any other edit.
    /// `landed` is when the request id first landed on main, the default
    /// start of both.
    pub fn is_shrink_of(&self, old: &Request, landed: DateTime<Utc>) -> bool {
        let same = self.requester == old.requester
            && self.role == old.role
            && self.reason == old.reason
            && self.ticket == old.ticket
            && self.break_glass == old.break_glass
            && self.extends == old.extends;
        let subset = !self.resources.is_empty() && self.resources.iter().all(|r| old.resources.contains(r));
        let fewer =
            self.resources.iter().collect::<std::collections::BTreeSet<_>>().len() < old.resources.iter().collect::<std::collections::BTreeSet<_>>().len();
        let (Some(new_w), Some(old_w)) = (self.window(landed), old.window(landed)) else {
            return false;
        };
        let narrower = new_w.start >= old_w.start && new_w.end <= old_w.end && new_w.start < new_w.end;
        let strictly = fewer || new_w.start > old_w.start || new_w.end < old_w.end;
        same && subset && narrower && strictly
    }
}

//! The one YAML entry point. serde-saphyr is configured here, once, to be
//! strict and bounded: duplicate keys are errors, alias expansion has a small
//! budget (alias bombs stop early), booleans are only `true`/`false` (no
//! `yes`/`no` surprises), and every error keeps its line and column.

use serde::de::DeserializeOwned;
use serde_saphyr::{DuplicateKeyPolicy, Location, Options, Spanned};

use super::SourceFile;
use crate::diag::{Code, Diagnostic, Pos};

/// A YAML problem, already turned into a diagnostic at its file position.
pub type YamlError = Diagnostic;

/// Alias replay budget: legitimate access files use a handful of aliases.
const MAX_REPLAYED_EVENTS: usize = 10_000;

fn options() -> Options {
    let mut o = Options::default();
    o.duplicate_keys = DuplicateKeyPolicy::Error;
    o.with_snippet = false;
    o.strict_booleans = true;
    o.alias_limits.max_total_replayed_events = MAX_REPLAYED_EVENTS;
    o.alias_limits.max_replay_stack_depth = 16;
    o
}

/// The position of a spanned value, for diagnostics.
pub fn span_pos<T>(s: &Spanned<T>) -> Pos {
    loc_pos(s.referenced)
}

fn loc_pos(l: Location) -> Pos {
    Pos::new(l.line() as u32, l.column() as u32)
}

/// True when the text holds no YAML node at all (only blanks and comments).
fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    })
}

/// Position of a second document start marker, if any (`---` after content).
fn second_document(text: &str) -> Option<Pos> {
    let mut seen_content = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_end();
        let is_marker = t == "---" || t.starts_with("--- ") || t == "...";
        if is_marker && line.starts_with('-') || line.starts_with('.') && t == "..." {
            if seen_content {
                // `...` followed only by blanks is a harmless document end.
                if t == "..." && is_blank(&text.lines().skip(i + 1).collect::<Vec<_>>().join("\n")) {
                    return None;
                }
                return Some(Pos::new(i as u32 + 1, 1));
            }
            continue;
        }
        let trimmed = t.trim_start();
        if !trimmed.is_empty() && !trimmed.starts_with('#') && !trimmed.starts_with('%') {
            seen_content = true;
        }
    }
    None
}

/// First non-blank, non-comment line: where a non-mapping document starts.
fn first_content(text: &str) -> Pos {
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if !t.is_empty() && !t.starts_with('#') && t != "---" {
            return Pos::new(i as u32 + 1, (line.len() - t.len()) as u32 + 1);
        }
    }
    Pos::new(1, 1)
}

/// Parses one YAML mapping document into `T` (a raw model type with
/// `deny_unknown_fields`). `what` names the kind of file for messages.
pub fn parse_yaml<T: DeserializeOwned>(file: &SourceFile, what: &str) -> Result<T, YamlError> {
    let path = file.path.as_str();
    if is_blank(&file.text) {
        return Err(Diagnostic::new(Code::NotAMapping, path, Pos::new(1, 1), format!("the {what} is empty"))
            .help(format!("a {what} is a YAML mapping of fields; see `gitgrant schema`")));
    }
    if let Some(pos) = second_document(&file.text) {
        return Err(Diagnostic::new(Code::MultipleDocuments, path, pos, "a second YAML document starts here")
            .help(format!("put one {what} per file; remove the `---` separator and what follows")));
    }
    match serde_saphyr::from_str_with_options::<T>(&file.text, options()) {
        Ok(v) => Ok(v),
        Err(e) => Err(classify(path, &file.text, what, &e)),
    }
}

fn classify(path: &str, text: &str, what: &str, e: &serde_saphyr::Error) -> Diagnostic {
    let raw = e.without_snippet().to_string();
    let msg = strip_location(&raw);
    let pos = e.location().map(loc_pos).filter(|p| p.line > 0).unwrap_or_else(|| first_content(text));
    let lower = msg.to_ascii_lowercase();
    let schema_help = format!("see `gitgrant schema` for the {what} format");
    if lower.contains("unknown field") {
        Diagnostic::new(Code::UnknownField, path, pos, msg).help(format!("remove the field or fix its spelling; {schema_help}"))
    } else if lower.contains("duplicate") {
        Diagnostic::new(Code::DuplicateKey, path, pos, msg).help("each key may appear once; remove one of them")
    } else if lower.contains("budget") || lower.contains("alias") && (lower.contains("limit") || lower.contains("exceed")) {
        Diagnostic::new(Code::YamlBudget, path, pos, format!("YAML alias expansion is too large: {msg}"))
            .help("write the values out; anchors and aliases may only be used sparingly")
    } else if pos == Pos::new(1, 1) && lower.contains("expected mapping") || lower.contains("expected struct") && pos.line <= 1 {
        Diagnostic::new(Code::NotAMapping, path, pos, format!("the {what} must be a YAML mapping of fields")).help(schema_help)
    } else if lower.contains("invalid boolean") {
        Diagnostic::new(Code::InvalidValue, path, pos, "expected `true` or `false`").help("YAML 1.1 words like `yes`/`on` are not booleans here")
    } else if lower.starts_with("expected sequence") {
        Diagnostic::new(Code::InvalidValue, path, pos, "expected a list here").help(format!("write a list like `[a, b]`; {schema_help}"))
    } else if lower.starts_with("expected mapping") {
        Diagnostic::new(Code::InvalidValue, path, pos, "expected a mapping here").help(format!("write `key: value` pairs; {schema_help}"))
    } else if lower.starts_with("expected string") || lower.starts_with("expected scalar") {
        Diagnostic::new(Code::InvalidValue, path, pos, "expected a single value here").help(format!("a text value, not a list or mapping; {schema_help}"))
    } else if lower.contains("invalid type")
        || lower.contains("missing field")
        || lower.contains("unknown variant")
        || lower.contains("invalid value")
        || lower.contains("invalid length")
    {
        Diagnostic::new(Code::InvalidValue, path, pos, msg).help(schema_help)
    } else {
        Diagnostic::new(Code::YamlSyntax, path, pos, msg).help("fix the YAML syntax at this position")
    }
}

/// serde-saphyr appends ` at line L column C`; the position has its own fields.
fn strip_location(s: &str) -> String {
    let first = s.lines().next().unwrap_or(s).trim();
    let cut = first.find(" at line ").map_or(first, |i| &first[..i]);
    let cut = cut.find(", set DuplicateKeyPolicy").map_or(cut, |i| &cut[..i]);
    cut.trim_end_matches(':').trim().to_string()
}

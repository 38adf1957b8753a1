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

/// serde-saphyr reports a missing field at the last key it read; the field is
/// missing from the whole mapping, so point at the mapping's first key: the
/// topmost key above `pos` at the same indentation, within the same block.
fn mapping_start(text: &str, pos: Pos) -> Pos {
    let lines: Vec<&str> = text.lines().collect();
    let indent = pos.column.saturating_sub(1) as usize;
    let mut best = pos;
    for i in (0..(pos.line as usize).saturating_sub(1).min(lines.len())).rev() {
        let line = lines.get(i).copied().unwrap_or("");
        let t = line.trim_start_matches(' ');
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let own = line.len() - t.len();
        if own > indent {
            continue;
        }
        let (own, is_item) = match t.strip_prefix("- ") {
            // `- key: v` starts a mapping inside a sequence item, at the key.
            Some(rest) => (own + 2 + rest.len() - rest.trim_start_matches(' ').len(), true),
            None => (own, false),
        };
        if own != indent {
            break;
        }
        best = Pos::new(i as u32 + 1, pos.column);
        if is_item {
            break;
        }
    }
    best
}

/// The first tab in indentation at or after `pos`: YAML forbids tabs there.
fn first_tab(text: &str, pos: Pos) -> Option<Pos> {
    text.lines().enumerate().skip(pos.line.saturating_sub(1) as usize).find_map(|(i, line)| {
        let lead: String = line.chars().take_while(|c| c.is_whitespace()).collect();
        lead.chars().position(|c| c == '\t').map(|c| Pos::new(i as u32 + 1, c as u32 + 1))
    })
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
    // An alias bomb must be reported as one whatever the schema: the typed
    // pass below stops at the first unknown field or wrong type, before the
    // aliases are expanded. So a document that uses aliases at all (`*`) is
    // first walked untyped under the same budget.
    if file.text.contains('*')
        && let Err(e) = serde_saphyr::from_str_with_options::<serde::de::IgnoredAny>(&file.text, options())
    {
        let d = classify(path, &file.text, what, &e);
        if d.code == Code::YamlBudget {
            return Err(d);
        }
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
    // The parser places these at a nearby key or scalar, not at the culprit.
    let pos = if lower.starts_with("missing field") {
        mapping_start(text, pos)
    } else if lower.contains("found a tab") {
        first_tab(text, pos).unwrap_or(pos)
    } else {
        pos
    };
    let schema_help = format!("see `gitgrant schema` for the {what} format");
    // The key or value a message names in backticks, to underline it whole.
    let named = msg.split('`').nth(1).map_or(1, |t| t.chars().count());
    if lower.contains("unknown field") {
        Diagnostic::new(Code::UnknownField, path, pos, &msg).help(format!("remove the field or fix its spelling; {schema_help}")).len(named)
    } else if let Some(key) = msg.strip_prefix("duplicate mapping key: ") {
        Diagnostic::new(Code::DuplicateKey, path, pos, format!("duplicate key `{key}`"))
            .help("each key may appear once; remove one of them")
            .len(key.chars().count())
    } else if lower.contains("duplicate") {
        Diagnostic::new(Code::DuplicateKey, path, pos, msg).help("each key may appear once; remove one of them")
    } else if lower.starts_with("unknown variant") {
        Diagnostic::new(Code::InvalidValue, path, pos, &msg).help(schema_help).len(named)
    } else if lower.contains("recursion limit") || lower.contains("depth {") {
        Diagnostic::new(Code::YamlBudget, path, pos, "the YAML is nested too deeply")
            .help("request and policy files need only a few levels of nesting; flatten the value")
    } else if lower.contains("alias") && (lower.contains("limit") || lower.contains("exceed")) {
        Diagnostic::new(Code::YamlBudget, path, pos, format!("YAML aliases expand too far: {msg}"))
            .help("write the values out; anchors and aliases may only be used sparingly")
    } else if lower.contains("budget") {
        Diagnostic::new(Code::YamlBudget, path, pos, format!("the YAML document is too large to read: {msg}"))
            .help("request and policy files are small; split large policies into several files under policies/")
    } else if (lower.starts_with("expected mapping") || lower.contains("expected struct")) && pos == first_content(text) {
        // At the document's first node: the root itself is not a mapping.
        Diagnostic::new(Code::NotAMapping, path, pos, format!("the {what} must be a YAML mapping of fields")).help(schema_help)
    } else if let Some(kind) = lower.strip_prefix("invalid ").filter(|k| matches!(*k, "u8" | "u16" | "u32" | "u64" | "i8" | "i16" | "i32" | "i64")) {
        let what = if kind.starts_with('u') { "a whole number, 0 or more" } else { "a whole number" };
        Diagnostic::new(Code::InvalidValue, path, pos, format!("expected {what} here")).help(format!("no fractions, quotes or huge values; {schema_help}"))
    } else if lower.contains("null into") {
        // serde-saphyr's wording names Rust types; say what the user wrote.
        Diagnostic::new(Code::InvalidValue, path, pos, "a value is required here, not an empty value or `~`")
            .help(format!("write a value, or remove the line if the field is optional; {schema_help}"))
    } else if lower.starts_with("expected `true` or `false`, found") {
        // From the strict types of the model: at the value, not its key.
        let at = value_start(text, pos);
        Diagnostic::new(Code::InvalidValue, path, at, msg).help("write `true` or `false` without quotes; a quoted \"true\", `yes` or `1` is not a boolean here")
    } else if lower.starts_with("expected text, found") {
        let at = value_start(text, pos);
        Diagnostic::new(Code::InvalidValue, path, at, msg).help("quote it, e.g. `reason: \"12345678901 rows to fix\"`")
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
        Diagnostic::new(Code::YamlSyntax, path, pos, msg)
            .help("fix the YAML syntax here, or just before: an unclosed bracket or quote is reported where YAML notices it")
    }
}

/// Where the value of the `key: value` at `pos` starts (serde-saphyr places
/// errors of custom types at the key). `pos` itself when the line has none.
fn value_start(text: &str, pos: Pos) -> Pos {
    let Some(line) = text.lines().nth((pos.line as usize).saturating_sub(1)) else { return pos };
    let from = (pos.column as usize).saturating_sub(1);
    let Some(colon) = line.get(from..).and_then(|rest| rest.find(": ")) else { return pos };
    let after = from + colon + 2;
    let spaces = line.get(after..).map_or(0, |r| r.len() - r.trim_start().len());
    Pos::new(pos.line, (line.get(..after + spaces).map_or(0, |p| p.chars().count()) + 1) as u32)
}

/// serde-saphyr appends ` at line L column C`; the position has its own fields.
fn strip_location(s: &str) -> String {
    let first = s.lines().next().unwrap_or(s).trim();
    let cut = first.find(" at line ").map_or(first, |i| &first[..i]);
    let cut = cut.find(", set DuplicateKeyPolicy").map_or(cut, |i| &cut[..i]);
    cut.trim_end_matches(':').trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_field_points_at_the_first_key_of_its_mapping() {
        let top = "# schema\nrequester: a\n\nrole: b\nreason: c\n";
        assert_eq!(mapping_start(top, Pos::new(5, 1)), Pos::new(2, 1));
        let nested = "resources:\n  x:\n    provider: local\n    # note\n    environment: s\n  y:\n    provider: local\n";
        assert_eq!(mapping_start(nested, Pos::new(5, 5)), Pos::new(3, 5));
        let items = "tiers:\n  - name: low\n    max_score: 10\n";
        assert_eq!(mapping_start(items, Pos::new(3, 5)), Pos::new(2, 5));
        // A flow mapping on one line stays where it is.
        assert_eq!(mapping_start("a:\n  b: { c: 1 }\n", Pos::new(2, 8)), Pos::new(2, 8));
    }

    #[test]
    fn a_tab_is_found_in_the_indentation_at_or_after_the_error() {
        assert_eq!(first_tab("a: b\n\tc: d\n", Pos::new(1, 4)), Some(Pos::new(2, 1)));
        assert_eq!(first_tab("a: b\n  \tc: d\n", Pos::new(1, 4)), Some(Pos::new(2, 3)));
        assert_eq!(first_tab("a:\tb\n", Pos::new(1, 1)), None);
    }
}

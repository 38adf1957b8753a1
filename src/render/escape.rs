//! The output-safety layer: one escaping function per output format.
//!
//! Every value that comes from outside gitgrant's own code — request text,
//! file names, git data (commit messages, author names, refs), provider and
//! API messages — passes through exactly one of these before it is printed:
//!
//! - [`human`] for terminal text (and for the plain log lines a CI runner
//!   reads): control and invisible formatting characters are shown escaped
//!   (`\n`, `\u{202e}`), so a value can neither start a new line nor reorder
//!   or hide text; a value that would begin a line with `:` or carries the
//!   runner's legacy `##[` prefix is neutralised, so it cannot become a
//!   GitHub workflow command even when a human report is printed in CI.
//! - [`gh_command`] for GitHub workflow commands (`::error ...::msg`): the
//!   only place that writes a line beginning with `::`. Properties get
//!   property escaping ([`gh_property`]), the message data escaping
//!   ([`gh_data`]), exactly as the runner unescapes them.
//! - [`gh_output`] for `$GITHUB_OUTPUT` (heredoc form with a random
//!   delimiter), [`append_step_summary`] for `$GITHUB_STEP_SUMMARY`.
//! - [`write_csv`] / [`csv_cell`] for CSV: quoting by `csv::Writer`, and a
//!   leading `'` on a cell that a spreadsheet would run as a formula (OWASP).
//! - [`json_pretty`] / [`json_line`] for JSON: serde_json, plus `\u` escapes
//!   for the invisible characters and the `##[` prefix (the decoded value is
//!   unchanged; the raw line is safe in a CI log and a terminal).
//! - [`time`]: the one formatter for times, always RFC 3339.
//!
//! Escaping happens in the renderers (the functions that turn data into
//! text), never at the call sites that print: a renderer escapes each value
//! it interpolates, and its own text (headers, separators) is trusted.
//! Markdown and HTML are escaped by [`super::escape_markdown`] and the
//! templates' auto-escaping.
//!
//! Backslashes are not escaped in human text: a literal `\n` in a reason
//! looks like an escaped newline, which is harmless (it cannot break a line)
//! and keeps paths and regular expressions readable.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;

use chrono::{DateTime, Datelike, SecondsFormat, TimeZone, Utc};

/// Characters that must never reach an output raw: C0 controls (with TAB,
/// CR, LF), DEL, C1 controls, and the invisible formatting characters that
/// hide or reorder text (zero-width spaces and joiners, bidi embeddings,
/// overrides and isolates, the byte-order mark, line/paragraph separators).
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{061C}'
                | '\u{2060}'..='\u{2064}'
        )
}

/// How many characters of `s` a reader sees: without whitespace and without
/// the [`is_hidden`] characters (a reason of zero-width spaces is empty).
pub fn visible_len(s: &str) -> usize {
    s.chars().filter(|c| !c.is_whitespace() && !is_hidden(*c)).count()
}

/// Escapes one untrusted value for human (terminal) text.
///
/// INVARIANT: the result contains no [`is_hidden`] character (so no line
/// break), no `##[`, and does not begin (after whitespace) with `:`, so it
/// cannot begin a workflow command wherever a renderer places it on a line.
pub fn human(s: &str) -> Cow<'_, str> {
    let leading_colon = s.trim_start().starts_with(':');
    if !leading_colon && !s.contains("##[") && !s.chars().any(is_hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut colon_done = !leading_colon;
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if is_hidden(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            ':' if !colon_done => {
                colon_done = true;
                out.push_str("\\:");
            }
            '[' if out.ends_with("##") => out.push_str("\\["),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`human`] for a list of values joined by `sep` (trusted).
pub fn human_join<S: AsRef<str>>(items: &[S], sep: &str) -> String {
    items.iter().map(|s| human(s.as_ref())).collect::<Vec<_>>().join(sep)
}

/// GitHub workflow-command escaping for the message part (after `::`): the
/// runner's `%25`, `%0D`, `%0A` (a message may span lines in the annotation),
/// and, as in [`human`], the other hidden characters shown escaped (the
/// runner has no escape for them; raw, a bidi override would reorder the
/// annotation) and `##[` broken.
pub fn gh_data(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if is_hidden(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            '[' if out.ends_with("##") => out.push_str("\\["),
            c => out.push(c),
        }
    }
    out
}

/// GitHub workflow-command escaping for a property value (`title=...`).
pub fn gh_property(s: &str) -> String {
    gh_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The workflow commands gitgrant writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GhCommand {
    Error,
    Warning,
    Notice,
    Group,
    EndGroup,
}

impl GhCommand {
    fn as_str(self) -> &'static str {
        match self {
            GhCommand::Error => "error",
            GhCommand::Warning => "warning",
            GhCommand::Notice => "notice",
            GhCommand::Group => "group",
            GhCommand::EndGroup => "endgroup",
        }
    }
}

/// `::NAME k=v,k=v::MESSAGE`, one line: the only function that writes a line
/// beginning with `::`. Property names are gitgrant's own (`file`, `line`,
/// `col`, `title`); values and the message are escaped here.
pub fn gh_command(cmd: GhCommand, props: &[(&str, &str)], message: &str) -> String {
    let mut s = format!("::{}", cmd.as_str());
    for (i, (k, v)) in props.iter().enumerate() {
        s.push(if i == 0 { ' ' } else { ',' });
        s.push_str(k);
        s.push('=');
        s.push_str(&gh_property(v));
    }
    s.push_str("::");
    s.push_str(&gh_data(message));
    s
}

/// An annotation with only a title: `::error title=TITLE::MESSAGE`.
pub fn gh_annotation(cmd: GhCommand, title: &str, message: &str) -> String {
    gh_command(cmd, &[("title", title)], message)
}

/// A `$GITHUB_OUTPUT` entry. A single-line value is `name=value`; anything
/// else uses the heredoc form with a random delimiter that the value does
/// not contain, so a value can never end the entry early and set another.
pub fn gh_output(name: &str, value: &str) -> Result<String, String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("`{}` is not a valid step output name", human(name)));
    }
    if !value.contains(['\n', '\r']) {
        return Ok(format!("{name}={value}\n"));
    }
    loop {
        let delim = format!("ghadelimiter_{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        if !value.contains(&delim) {
            return Ok(format!("{name}<<{delim}\n{value}\n{delim}\n"));
        }
    }
}

/// Appends a step output to the file named by `$GITHUB_OUTPUT` (nothing when unset).
pub fn write_gh_output(name: &str, value: &str) -> Result<(), String> {
    let Some(path) = std::env::var_os("GITHUB_OUTPUT").filter(|p| !p.is_empty()) else { return Ok(()) };
    let entry = gh_output(name, value)?;
    append(&path, entry.as_bytes()).map_err(|e| format!("cannot write the step output to {}: {e}", human(&path.to_string_lossy())))
}

/// Appends Markdown (escaped by its template) to `$GITHUB_STEP_SUMMARY`
/// (nothing when unset). The summary file is not read for commands.
pub fn append_step_summary(markdown: &str) -> Result<(), String> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else { return Ok(()) };
    append(&path, markdown.as_bytes()).map_err(|e| format!("cannot write the job summary to {}: {e}", human(&path.to_string_lossy())))
}

fn append(path: &std::ffi::OsStr, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::OpenOptions::new().create(true).append(true).open(path).and_then(|mut f| f.write_all(bytes))
}

/// Characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// One CSV cell's content: a leading `'` when it would start a formula
/// (OWASP), and [`human`] escaping, so that a cell never spans lines (a CSV
/// printed in a CI log cannot start a workflow command either). Quoting is
/// [`write_csv`]'s (`csv::Writer`).
pub fn csv_cell(s: &str) -> Cow<'_, str> {
    let e = human(s);
    if s.starts_with(FORMULA_START) || e.starts_with(FORMULA_START) { Cow::Owned(format!("'{e}")) } else { e }
}

/// A CSV document: the header row, then the rows, each cell through [`csv_cell`].
pub fn write_csv(w: &mut dyn std::io::Write, header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> std::io::Result<()> {
    let mut out = csv::Writer::from_writer(w);
    out.write_record(header.iter().map(|h| csv_cell(h).into_owned()))?;
    for r in rows {
        out.write_record(r.iter().map(|c| csv_cell(c).into_owned()))?;
    }
    out.flush()
}

/// serde_json's formatter, with `\u` escapes for [`is_hidden`] characters
/// and for the `[` of `##[` (JSON readers decode the same value).
struct Safe<F>(F);

impl<F: serde_json::ser::Formatter> serde_json::ser::Formatter for Safe<F> {
    fn write_string_fragment<W: ?Sized + std::io::Write>(&mut self, w: &mut W, fragment: &str) -> std::io::Result<()> {
        let mut start = 0;
        let mut hashes = 0;
        for (i, c) in fragment.char_indices() {
            let neutralise = is_hidden(c) || (c == '[' && hashes >= 2);
            hashes = if c == '#' { hashes + 1 } else { 0 };
            if neutralise {
                w.write_all(&fragment.as_bytes()[start..i])?;
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    write!(w, "\\u{unit:04x}")?;
                }
                start = i + c.len_utf8();
            }
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    // Delegate the layout to the wrapped formatter (pretty or compact).
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
}

/// Writes `v` as JSON through the safe formatter.
pub fn write_json<T: serde::Serialize + ?Sized>(w: &mut dyn std::io::Write, v: &T, pretty: bool) -> serde_json::Result<()> {
    if pretty {
        v.serialize(&mut serde_json::Serializer::with_formatter(w, Safe(serde_json::ser::PrettyFormatter::new())))
    } else {
        v.serialize(&mut serde_json::Serializer::with_formatter(w, Safe(serde_json::ser::CompactFormatter)))
    }
}

fn json_string<T: serde::Serialize + ?Sized>(v: &T, pretty: bool) -> serde_json::Result<String> {
    let mut buf = Vec::new();
    write_json(&mut buf, v, pretty)?;
    // The formatter writes only valid UTF-8 (serde_json's own output plus ASCII escapes).
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// A JSON document, indented (what `--format json` prints).
pub fn json_pretty<T: serde::Serialize + ?Sized>(v: &T) -> serde_json::Result<String> {
    json_string(v, true)
}

/// One compact JSON line (JSON-lines outputs).
pub fn json_line<T: serde::Serialize + ?Sized>(v: &T) -> serde_json::Result<String> {
    json_string(v, false)
}

/// The one time formatter: RFC 3339 in UTC, whole seconds, `Z`. RFC 3339
/// has four-digit years; times outside them (refused in requests, see
/// GG210) are clamped to its range instead of printing `+10000-...`.
pub fn time(t: DateTime<Utc>) -> String {
    clamp(t).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The short form of [`time`] in request windows for people
/// (`2026-11-23 14:00 UTC`), clamped the same way.
pub fn time_short(t: DateTime<Utc>) -> String {
    clamp(t).format("%Y-%m-%d %H:%M UTC").to_string()
}

fn clamp(t: DateTime<Utc>) -> DateTime<Utc> {
    if t.year() > 9999 {
        max_time()
    } else if t.year() < 0 {
        Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).single().unwrap_or(t)
    } else {
        t
    }
}

/// The latest time a request may name: 9999-12-31T23:59:59Z (RFC 3339's last second).
pub fn max_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).single().unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn human_shows_controls_and_invisible_characters_escaped() {
        assert_eq!(human("plain text: ok"), "plain text: ok");
        assert_eq!(human("a\nb\rc\td\0e\u{7f}"), "a\\nb\\rc\\td\\0e\\u{7f}");
        assert_eq!(human("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(human("\u{200b}\u{feff}\u{2066}\u{85}\u{9b}"), "\\u{200b}\\u{feff}\\u{2066}\\u{85}\\u{9b}");
        assert_eq!(human("arn:aws:iam::111111111111:user/alice"), "arn:aws:iam::111111111111:user/alice");
    }

    #[test]
    fn human_never_lets_a_value_begin_a_workflow_command() {
        assert_eq!(human("::error::X"), "\\::error::X");
        assert_eq!(human("  ::add-mask::X"), "  \\::add-mask::X");
        assert_eq!(human("\u{a0}::stop-commands::t"), "\u{a0}\\::stop-commands::t");
        assert_eq!(human("T-1\n::add-mask::X"), "T-1\\n::add-mask::X");
        assert_eq!(human("see ##[error]X"), "see ##\\[error]X");
        assert_eq!(human("a:b"), "a:b");
    }

    #[test]
    fn github_commands_escape_properties_and_data() {
        let line = gh_command(GhCommand::Error, &[("file", "requests/a,b:c.yaml"), ("line", "3")], "bad\nthing 100%\r::warning::X");
        assert_eq!(line, "::error file=requests/a%2Cb%3Ac.yaml,line=3::bad%0Athing 100%25%0D::warning::X");
        assert_eq!(gh_annotation(GhCommand::Warning, "t\n::error::x", "m"), "::warning title=t%0A%3A%3Aerror%3A%3Ax::m");
        assert_eq!(gh_command(GhCommand::Group, &[], "plan"), "::group::plan");
        assert_eq!(gh_data("a\u{202e}b\t##[error]c"), "a\\u{202e}b\\t##\\[error]c");
    }

    #[test]
    fn github_outputs_use_a_heredoc_for_multi_line_values() {
        assert_eq!(gh_output("verdict", "ok").unwrap(), "verdict=ok\n");
        let e = gh_output("verdict", "a\nother=injected").unwrap();
        let first = e.lines().next().unwrap();
        let delim = first.strip_prefix("verdict<<").unwrap();
        assert!(delim.starts_with("ghadelimiter_") && delim.len() > 20, "{e}");
        assert_eq!(e, format!("verdict<<{delim}\na\nother=injected\n{delim}\n"));
        assert!(gh_output("bad name", "x").is_err());
        assert!(gh_output("a\nb", "x").is_err());
    }

    #[test]
    fn csv_cells_are_quoted_by_the_writer_and_never_formulas() {
        let mut buf = Vec::new();
        let rows = vec![vec![
            "plain".to_string(),
            "a, b".into(),
            "say \"hi\"".into(),
            "=HYPERLINK(1)".into(),
            "-1,2".into(),
            "\tx".into(),
            "\r=1".into(),
            "@SUM".into(),
            "+1".into(),
            "l1\nl2".into(),
        ]];
        write_csv(&mut buf, &["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"], rows.into_iter()).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(text, "a,b,c,d,e,f,g,h,i,j\nplain,\"a, b\",\"say \"\"hi\"\"\",'=HYPERLINK(1),\"'-1,2\",'\\tx,'\\r=1,'@SUM,'+1,l1\\nl2\n");
    }

    #[test]
    fn json_escapes_invisible_characters_and_the_legacy_command_prefix() {
        let v = serde_json::json!({ "reason": "x\u{202e}y ##[error]z\n", "ok": "#[a] ##b" });
        let s = json_line(&v).unwrap();
        assert_eq!(s, r##"{"ok":"#[a] ##b","reason":"x\u202ey ##\u005berror]z\n"}"##);
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
        let pretty = json_pretty(&v).unwrap();
        assert!(pretty.contains("\n  \"ok\": "), "{pretty}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&pretty).unwrap(), v);
        // Astral-plane hidden characters do not exist in the set, but any char encodes as UTF-16 units.
        assert_eq!(json_line(&"\u{2028}").unwrap(), "\"\\u2028\"");
    }

    #[test]
    fn times_are_always_rfc3339() {
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 14, 0, 0).unwrap();
        assert_eq!(time(t), "2026-11-23T14:00:00Z");
        let far = Utc.with_ymd_and_hms(10000, 1, 1, 1, 0, 0).unwrap();
        assert_eq!(time(far), "9999-12-31T23:59:59Z");
        assert_eq!(time(max_time()), "9999-12-31T23:59:59Z");
        assert_eq!(time_short(far), "9999-12-31 23:59 UTC");
        assert_eq!(time_short(t), "2026-11-23 14:00 UTC");
    }

    #[test]
    fn visible_length_ignores_whitespace_and_invisible_characters() {
        assert_eq!(visible_len(&"\u{200b}".repeat(12)), 0);
        assert_eq!(visible_len(" INC-1  ok \u{202e}"), 7);
    }

    fn hostile() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("::".to_string()),
            Just(":".to_string()),
            Just("##[".to_string()),
            Just("#".to_string()),
            Just("[".to_string()),
            Just("\n".to_string()),
            Just("\r".to_string()),
            Just("\t".to_string()),
            Just(" ".to_string()),
            Just("\u{a0}".to_string()),
            Just("\u{202e}".to_string()),
            Just("\u{200b}".to_string()),
            Just("=".to_string()),
            Just("+".to_string()),
            Just("-".to_string()),
            Just("@".to_string()),
            Just("%".to_string()),
            Just(",".to_string()),
            "[a-z]{1,3}",
            any::<char>().prop_map(String::from),
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn human_output_is_one_inert_line(s in hostile(), prefix in "[ a-z]{0,3}") {
            let e = human(&s);
            prop_assert!(!e.chars().any(is_hidden), "{e:?}");
            prop_assert!(!e.contains('\n') && !e.contains('\r'));
            prop_assert!(!e.contains("##["), "{e:?}");
            prop_assert!(!e.trim_start().starts_with(':'), "{e:?}");
            // Placed after any renderer prefix of spaces and letters, no line begins a command.
            let line = format!("{prefix}{e}");
            prop_assert!(!line.trim_start().starts_with("::"), "{line:?}");
        }

        #[test]
        fn github_command_is_one_line_with_escaped_data(title in hostile(), msg in hostile()) {
            let line = gh_annotation(GhCommand::Error, &title, &msg);
            prop_assert!(!line.chars().any(is_hidden), "{line:?}");
            prop_assert!(!line.contains("##["), "{line:?}");
            // The runner ends the command part at the first `::` after the name: the title cannot smuggle one.
            let sep = 2 + line[2..].find("::").unwrap();
            prop_assert_eq!(&line[..sep], format!("::error title={}", gh_property(&title)));
            prop_assert_eq!(&line[sep + 2..], gh_data(&msg));
        }

        #[test]
        fn csv_cells_never_start_with_a_formula_character(cells in proptest::collection::vec(hostile(), 1..5)) {
            for c in &cells {
                prop_assert!(!csv_cell(c).starts_with(FORMULA_START));
            }
            let mut buf = Vec::new();
            write_csv(&mut buf, &["h"], cells.iter().map(|c| vec![c.clone()])).unwrap();
            let mut r = csv::ReaderBuilder::new().has_headers(true).from_reader(buf.as_slice());
            for (rec, orig) in r.records().zip(&cells) {
                let rec = rec.unwrap();
                let cell = rec.get(0).unwrap();
                prop_assert!(!cell.starts_with(FORMULA_START), "{cell:?}");
                let expected = csv_cell(orig);
                prop_assert_eq!(cell, expected.as_ref());
                prop_assert!(!cell.chars().any(is_hidden), "{cell:?}");
            }
        }

        #[test]
        fn json_round_trips_and_has_no_raw_hidden_characters(s in hostile()) {
            let out = json_line(&s).unwrap();
            prop_assert!(!out.chars().any(is_hidden), "{out:?}");
            prop_assert!(!out.contains("##["));
            prop_assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
        }
    }
}

//! Renderers for diagnostics: one model, three outputs.

use std::fmt::Write;

use super::{Diagnostic, Severity};
use crate::render::escape::{self, GhCommand};

/// Kept for callers: the escaping lives in [`crate::render::escape`].
pub use crate::render::escape::{gh_data as escape_data, gh_property as escape_property};

/// Rustc-style text: header, location, the source line with a caret, help.
/// `source` returns a file's text when it is known. `color` adds ANSI colour
/// (only when writing to a terminal and `NO_COLOR` is unset).
pub fn human(d: &Diagnostic, source: &dyn Fn(&str) -> Option<String>, color: bool) -> String {
    let paint = |code: &str, s: &str| {
        if color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    };
    let sev_color = match d.severity {
        Severity::Error => "1;31",
        Severity::Warning => "1;33",
        Severity::Note => "1;36",
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}{}", paint(sev_color, &format!("{}[{}]", d.severity.as_str(), d.code)), paint("1", &format!(": {}", escape::human(&d.message))));
    let gutter = d.line.to_string().len();
    let pad = " ".repeat(gutter);
    let _ = writeln!(out, "{pad}{} {}:{}:{}", paint("1;34", "-->"), escape::human(&d.file), d.line, d.column);
    if let Some(line) = source(&d.file).and_then(|t| t.lines().nth(d.line.saturating_sub(1) as usize).map(str::to_string)) {
        let line: String = line.chars().take(200).collect();
        let col = (d.column.max(1) - 1) as usize;
        // The line and the part before the caret are escaped alike, so the caret stays under the column.
        let before: String = line.chars().take(col).collect();
        let (shown, before) = (escape::human(&line), escape::human(&before).chars().count());
        let indent = " ".repeat(before);
        let width = (d.len.max(1) as usize).min(shown.chars().count().saturating_sub(before).max(1));
        let _ = writeln!(out, "{pad} {}", paint("1;34", "|"));
        let _ = writeln!(out, "{} {} {shown}", paint("1;34", &d.line.to_string()), paint("1;34", "|"));
        let _ = writeln!(out, "{pad} {} {indent}{}", paint("1;34", "|"), paint(sev_color, &"^".repeat(width)));
    }
    if let Some(h) = &d.help {
        let _ = writeln!(out, "{pad} {} help: {}", paint("1;34", "="), escape::human(h));
    }
    out
}

/// `::error file=PATH,line=L,col=C,title=CODE::MESSAGE`, an annotation on the PR diff.
pub fn github(d: &Diagnostic) -> String {
    let level = match d.severity {
        Severity::Error => GhCommand::Error,
        Severity::Warning => GhCommand::Warning,
        Severity::Note => GhCommand::Notice,
    };
    let mut msg = d.message.clone();
    if let Some(h) = &d.help {
        msg.push_str(" (help: ");
        msg.push_str(h);
        msg.push(')');
    }
    let (line, col) = (d.line.to_string(), d.column.to_string());
    escape::gh_command(level, &[("file", &d.file), ("line", &line), ("col", &col), ("title", d.code.as_str())], &msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::{Code, Pos};

    #[test]
    fn github_command_escapes_newlines_and_property_separators() {
        let d = Diagnostic::new(Code::UnknownRole, "requests/a,b.yaml", Pos::new(3, 7), "bad\nthing 100%");
        assert_eq!(github(&d), "::error file=requests/a%2Cb.yaml,line=3,col=7,title=GG201::bad%0Athing 100%25");
    }

    #[test]
    fn human_points_a_caret_at_the_column() {
        let d = Diagnostic::new(Code::UnknownRole, "r.yaml", Pos::new(2, 7), "unknown role `x`").len(3).help("fix it");
        let text = human(&d, &|_| Some("requester: a\nrole: xyz\n".to_string()), false);
        assert!(text.contains("2 | role: xyz\n  |       ^^^\n"), "{text}");
        assert!(text.contains("= help: fix it"), "{text}");
    }
}

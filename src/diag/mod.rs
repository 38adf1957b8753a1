//! One diagnostic model, several renderers.
//!
//! Every problem gitgrant finds in a file is a [`Diagnostic`] with a stable
//! [`Code`]. Validation collects all of them before stopping (like cargo-deny's
//! `ValidationContext`), so one run shows every defect in a PR, not the first.
//! Renderers live in [`render`]: human (rustc-style), GitHub workflow commands, JSON.

mod codes;
pub mod render;

pub use codes::{AUDIT_TRUST, Code};

use serde::Serialize;

/// How bad a diagnostic is. Errors fail the check (exit 1, or 2 for policy files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Note,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

/// A position in a file: 1-based line and column (characters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    /// A problem with the whole file is reported at its first character.
    pub const FILE: Pos = Pos { line: 1, column: 1 };
    pub fn new(line: u32, column: u32) -> Self {
        Pos { line, column }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    /// Repository-relative path with `/` separators.
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
    pub help: Option<String>,
    /// Length of the offending text in characters, for the caret underline.
    #[serde(skip)]
    pub len: u32,
}

impl Diagnostic {
    pub fn new(code: Code, file: impl Into<String>, pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.default_severity(),
            file: file.into(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
            help: None,
            len: 1,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn len(mut self, len: usize) -> Self {
        self.len = u32::try_from(len.max(1)).unwrap_or(u32::MAX);
        self
    }

    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Collects diagnostics; validation code pushes into it and never returns early.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }
    pub fn extend(&mut self, other: impl IntoIterator<Item = Diagnostic>) {
        self.items.extend(other);
    }
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }
    /// Sorted by file, position, code: output is deterministic whatever the load order.
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items.sort_by(|a, b| (&a.file, a.line, a.column, a.code.as_str(), &a.message).cmp(&(&b.file, b.line, b.column, b.code.as_str(), &b.message)));
        self.items.dedup();
        self.items
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

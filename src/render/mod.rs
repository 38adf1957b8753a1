//! The minijinja environment shared by every template gitgrant renders.
//!
//! User-controlled text (reasons, tickets, ids) reaches Markdown and JSON
//! outputs only through escaping: `.md.j2` templates auto-escape with
//! [`escape_markdown`], JSON documents use `tojson`.

pub mod escape;

use minijinja::{AutoEscape, Environment, Output, State, Value};

/// Escapes text for GitHub-flavoured Markdown: neutralises formatting, HTML,
/// links, and @mentions / team pings (a zero-width joiner after `@`).
pub fn escape_markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '-' | '.' | '!' | '|' | '~' | '>' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '@' => out.push_str("@\u{200d}"),
            '\n' | '\r' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn markdown_formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), minijinja::Error> {
    if matches!(state.auto_escape(), AutoEscape::Custom(n) if n == "markdown") && !value.is_safe() {
        if value.is_none() || value.is_undefined() {
            return Ok(());
        }
        return out.write_str(&escape_markdown(&value.to_string())).map_err(|e| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string()));
    }
    minijinja::escape_formatter(out, state, value)
}

/// A fresh environment with gitgrant's escaping rules, filters and a fuel
/// limit (a hostile template cannot loop forever).
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(1_000_000));
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".md.j2") || name.ends_with(".md") {
            AutoEscape::Custom("markdown".into())
        } else if name.ends_with(".html.j2") {
            AutoEscape::Html
        } else if name.ends_with(".json.j2") {
            AutoEscape::Json
        } else {
            AutoEscape::None
        }
    });
    env.set_formatter(markdown_formatter);
    env.add_filter("md", |s: String| Value::from_safe_string(escape_markdown(&s)));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_html_and_links_are_neutralised() {
        let s = escape_markdown("@org/everyone <img src=x> [a](http://x) **b**");
        assert!(!s.contains("@o"), "{s}");
        assert!(!s.contains("<img"), "{s}");
        assert!(s.contains("\\[a\\]\\(http://x\\)"), "{s}");
        assert!(s.contains("\\*\\*b\\*\\*"), "{s}");
    }
}

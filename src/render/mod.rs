//! The minijinja environment shared by every template gitgrant renders.
//!
//! User-controlled text (reasons, tickets, ids) reaches Markdown and JSON
//! outputs only through escaping: `.md.j2` templates auto-escape as Markdown
//! text ([`markdown::text`]); inside HTML tags use the `html` filter, for a
//! code span the `code` filter (it writes the fences); JSON documents use
//! `tojson`. Each filter marks its result safe, so text is escaped once.

pub mod escape;

use minijinja::{AutoEscape, Environment, Output, State, Value};

pub mod card;
pub mod markdown;
pub mod reconcile;

/// Escapes untrusted text for Markdown text: see [`markdown::text`].
pub fn escape_markdown(s: &str) -> String {
    markdown::text(s)
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
    // One filter per context; each returns safe text so it is escaped once.
    env.add_filter("md", |s: String| Value::from_safe_string(markdown::text(&s)));
    env.add_filter("html", |s: String| Value::from_safe_string(markdown::html(&s)));
    env.add_filter("code", |s: String| Value::from_safe_string(markdown::code(&s)));
    env.add_filter("rich", |s: String| Value::from_safe_string(markdown::rich(&s)));
    env
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn filters_escape_once_per_context() {
        let mut env = environment();
        env.add_template("t.md.j2", "{{ x }}|{{ x | html }}|{{ x | code }}|{{ x | md }}").unwrap();
        let out = env.get_template("t.md.j2").unwrap().render(minijinja::context! { x => "a*`<b>@c" }).unwrap();
        assert_eq!(out, "a&#42;&#96;&lt;b&gt;@\u{200d}c|a*`&lt;b&gt;@\u{200d}c|``a*`<b>@c``|a&#42;&#96;&lt;b&gt;@\u{200d}c");
    }
}

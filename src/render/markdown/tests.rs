//! The escaping functions, checked by rendering with a GFM renderer
//! (comrak, with GitHub's extensions) rather than by inspecting strings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;

use super::*;

/// Renders GitHub-flavoured Markdown to HTML as GitHub does (tables,
/// strikethrough, autolinks, task lists, raw HTML passed through).
pub(crate) fn gfm_html(md: &str) -> String {
    let mut o = comrak::Options::default();
    o.extension.table = true;
    o.extension.strikethrough = true;
    o.extension.autolink = true;
    o.extension.tasklist = true;
    o.render.r#unsafe = true;
    comrak::markdown_to_html(md, &o)
}

/// What the reader should see: the input with newlines as spaces and the
/// dropped characters gone, HTML-escaped as a renderer escapes text.
fn shown(s: &str) -> String {
    let s: String = s.chars().filter(|&c| !dropped(c)).map(|c| if matches!(c, '\n' | '\r' | '\t') { ' ' } else { c }).collect();
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn without_joiners(s: &str) -> String {
    s.replace([ZWJ, WJ], "")
}

/// Decodes the entities [`html`] and [`text`] produce.
fn decode(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail.find(';').unwrap();
        let ent = &tail[1..end];
        out.push(match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            e => char::from_u32(e.trim_start_matches('#').parse().unwrap()).unwrap(),
        });
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn text_neutralises_markdown_html_mentions_and_autolinks() {
    let s = text("@org/team **b** <img src=x onerror=alert(1)> [a](http://x) #123 www.evil.com `x` a|b \\o/");
    let html = gfm_html(&s);
    assert!(!html.contains("<strong>") && !html.contains("<img") && !html.contains("<a ") && !html.contains("<code>"), "{html}");
    assert!(html.contains(&format!("@{ZWJ}org/team")), "{html}");
    assert!(html.contains(&format!("#{WJ}123")), "{html}");
    assert!(!html.contains('\\') || html.contains("\\o/"), "no backslash escapes are shown: {html}");
    assert_eq!(
        without_joiners(&html),
        format!("<p>{}</p>\n", shown("@org/team **b** <img src=x onerror=alert(1)> [a](http://x) #123 www.evil.com `x` a|b \\o/"))
    );
}

#[test]
fn text_cannot_start_a_block() {
    for s in ["# heading", " # heading", "    indented code", "- item", "+ item", "1. one", "2) two", "=== ", "> quote", "| a | b |"] {
        let html = gfm_html(&format!("{}\n", text(s)));
        assert!(html.starts_with("<p>"), "{s:?} became {html}");
    }
    let html = gfm_html(&text("line\n# heading\n<script>"));
    assert_eq!(html, "<p>line # heading &lt;script&gt;</p>\n");
}

#[test]
fn text_in_a_table_cell_stays_in_its_cell() {
    let md = format!("| a | b |\n|---|---|\n| {} | x |\n", text("p|q `r|s` \\|"));
    let html = gfm_html(&md);
    assert_eq!(html.matches("<td>").count(), 2, "{html}");
    assert!(html.contains("<td>p|q `r|s` \\|</td>"), "{html}");
}

#[test]
fn html_has_no_markdown_escapes_inside_summary() {
    let id = "2026-12-01-carol_orders*rw";
    let md = format!("<details><summary>Risk of {}</summary>\n\nbody\n\n</details>\n", html(id));
    let out = gfm_html(&md);
    assert!(out.contains("<summary>Risk of 2026-12-01-carol_orders*rw</summary>"), "{out}");
    let hostile = html("</summary></details><img src=x onerror=alert(1)> 'q' @all");
    assert!(!hostile.contains('<') && !hostile.contains('\''), "{hostile}");
    assert!(hostile.contains(&format!("@{ZWJ}all")));
}

#[test]
fn code_picks_a_fence_longer_than_any_backtick_run() {
    assert_eq!(code("GG101"), "`GG101`");
    assert_eq!(code("a`b"), "``a`b``");
    assert_eq!(code("``x"), "``` ``x ```");
    assert_eq!(code(""), "` `");
    for s in ["a`b", "``x", "x`", " lead", "a ``` b", "<b>&", "@team #1"] {
        let html = gfm_html(&code(s));
        assert_eq!(html, format!("<p><code>{}</code></p>\n", shown(s)), "{s:?} -> {}", code(s));
    }
}

#[test]
fn rich_makes_code_spans_of_backticked_names_only() {
    assert_eq!(gfm_html(&rich("unknown role `db-*` in <x>")), "<p>unknown role <code>db-*</code> in &lt;x&gt;</p>\n");
    let html = gfm_html(&rich("odd `one` and ` more <b>"));
    assert_eq!(html, "<p>odd <code>one</code> and ` more &lt;b&gt;</p>\n");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever the input, escaped text renders as one paragraph showing
    /// exactly the input (joiners aside): no element, no escape character.
    #[test]
    fn text_renders_as_itself(s in "[a-z0-9 @#:/w.<>&\"'`*_\\[\\]|~\\\\+=!(){}$^\n\u{202e}-]{1,40}") {
        let escaped = text(&s);
        prop_assume!(!shown(&s).trim().is_empty());
        let html = gfm_html(&escaped);
        let expected = format!("<p>{}</p>\n", shown(&s).trim_end_matches(' '));
        prop_assert_eq!(without_joiners(&html), expected, "escaped: {:?}", escaped);
        prop_assert_eq!(without_joiners(&decode(&escaped)), s.chars().filter(|&c| !dropped(c)).map(|c| if c == '\n' { ' ' } else { c }).collect::<String>());
    }

    /// Text inside HTML decodes to the input and cannot close the tag.
    #[test]
    fn html_decodes_to_itself(s in "[a-z0-9 @#:/w.<>&\"'`*_\\[\\]|~\\\\\n-]{0,40}") {
        let escaped = html(&s);
        prop_assert!(!escaped.contains('<') && !escaped.contains('>') && !escaped.contains('"') && !escaped.contains('\\') || s.contains('\\'));
        prop_assert_eq!(without_joiners(&decode(&escaped)), s.replace('\n', " "));
    }

    /// Prose with backticks never renders an element other than code.
    #[test]
    fn rich_renders_only_code(s in "[a-z `<>*_@#1|\\[\\]]{1,40}") {
        let html = gfm_html(&rich(&s));
        let stripped = html.replace("<p>", "").replace("</p>", "").replace("<code>", "").replace("</code>", "");
        prop_assert!(!stripped.contains('<'), "{}", html);
    }

    /// A code span shows its content verbatim, however many backticks.
    #[test]
    fn code_renders_verbatim(s in "[a-z `<&|*_]{1,30}") {
        prop_assume!(!s.trim().is_empty());
        let html = gfm_html(&code(&s));
        prop_assert_eq!(html, format!("<p><code>{}</code></p>\n", shown(&s)), "{:?}", code(&s));
    }
}

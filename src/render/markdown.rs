//! Escaping untrusted text for GitHub-flavoured Markdown, one function per
//! context the text lands in.
//!
//! Design choices:
//! - [`text`] (Markdown text, table cells) escapes with HTML character
//!   references (`&#42;`), not backslashes. References decode the same in
//!   Markdown text and inside raw HTML blocks (`<summary>`, `<td>`), so text
//!   escaped for Markdown never shows a literal `\` when a user template
//!   moves it into a tag. Backslash escapes decode only in Markdown text,
//!   which is how `Risk of 2026\-12\-01…` showed up in summaries.
//! - [`html`] is for text inside HTML tags and attribute values: the five
//!   HTML-special characters as entities, nothing else.
//! - [`code`] builds a whole code span: a backtick fence longer than any
//!   run inside, padded when the text starts or ends with a backtick or a
//!   space. Inside a code span nothing is decoded, so nothing is escaped.
//! - Every context also strips what could start a new line or hide text
//!   (control and bidirectional-override characters; newlines become
//!   spaces), and neutralises GitHub's post-processing, which runs on the
//!   rendered text after entities are decoded: `@login`/`@org/team` pings
//!   (a zero-width joiner after `@`), `#123` issue autolinks (a word joiner
//!   after `#`), and bare-URL autolinks (a word joiner in `://` and `www.`).
//!   Inside code spans GitHub neither pings nor links, so [`code`] keeps those.

/// U+200D ZERO WIDTH JOINER: `@` followed by it pings nobody.
const ZWJ: char = '\u{200d}';
/// U+2060 WORD JOINER: invisible, breaks `#123`, `://` and `www.` autolinks.
const WJ: char = '\u{2060}';

/// Characters dropped everywhere: controls other than newline/tab (handled
/// separately) and the bidirectional overrides that reorder displayed text.
fn dropped(c: char) -> bool {
    (c.is_control() && !matches!(c, '\n' | '\r' | '\t')) || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

/// Whether `c` at index `i` of `chars` starts a GitHub autolink or mention
/// that needs an invisible joiner inserted after it.
fn joiner_after(chars: &[char], i: usize) -> Option<char> {
    let next = chars.get(i + 1).copied();
    match chars.get(i).copied()? {
        '@' => Some(ZWJ),
        '#' if next.is_some_and(|n| n.is_ascii_digit()) => Some(WJ),
        ':' if next == Some('/') && chars.get(i + 2) == Some(&'/') => Some(WJ),
        'w' | 'W' if i + 3 < chars.len() && chars[i..i + 3].iter().all(|c| c.eq_ignore_ascii_case(&'w')) && chars[i + 3] == '.' => None,
        '.' if i >= 3 && chars[i - 3..i].iter().all(|c| c.eq_ignore_ascii_case(&'w')) && (i == 3 || !chars[i - 4].is_alphanumeric()) => Some(WJ),
        _ => None,
    }
}

/// The walk `text` and `html` share: invisible characters dropped, line
/// breaks and tabs folded to spaces, and the joiners that keep mentions and
/// autolinks inert; `special` writes a character escaped (given what was
/// written so far) or leaves it as it is.
fn walk(s: &str, special: impl Fn(char, &str) -> Option<String>) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        if dropped(c) {
            continue;
        }
        // `www.` gets its joiner before the dot.
        if c == '.' && joiner_after(&chars, i) == Some(WJ) {
            out.push(WJ);
            out.push('.');
            continue;
        }
        let c = if matches!(c, '\n' | '\r' | '\t') { ' ' } else { c };
        if let Some(escaped) = special(c, &out) {
            out.push_str(&escaped);
            continue;
        }
        out.push(c);
        if let Some(j) = joiner_after(&chars, i).filter(|_| c != '.') {
            out.push(j);
        }
    }
    out
}

/// Untrusted text as inline Markdown text (paragraphs, list items, table
/// cells, headings). Safe also inside HTML blocks; not inside code spans.
pub fn text(s: &str) -> String {
    walk(s, |c, out| match c {
        '&' => Some("&amp;".to_string()),
        '<' => Some("&lt;".to_string()),
        '>' => Some("&gt;".to_string()),
        '"' => Some("&quot;".to_string()),
        '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' | '$' | '^' => Some(format!("&#{};", c as u32)),
        // Only at the very start can these begin a block (heading, list,
        // setext underline, numbered list, quote); escaping them there
        // is enough because newlines never survive.
        // A leading space as a reference: no indentation (code block),
        // and what follows is no longer at the start of a line.
        ' ' if out.is_empty() => Some("&#32;".to_string()),
        '#' | '-' | '+' | '=' if out.is_empty() => Some(format!("&#{};", c as u32)),
        '.' | ')' if out.chars().all(|d| d.is_ascii_digit()) && !out.is_empty() => Some(format!("&#{};", c as u32)),
        _ => None,
    })
}

/// Untrusted text inside an HTML element or a quoted attribute value
/// (`<summary>…</summary>`, `title="…"`): HTML-escaped, no Markdown escapes
/// (GitHub shows those literally there).
pub fn html(s: &str) -> String {
    walk(s, |c, _| match c {
        '&' => Some("&amp;".to_string()),
        '<' => Some("&lt;".to_string()),
        '>' => Some("&gt;".to_string()),
        '"' => Some("&quot;".to_string()),
        '\'' => Some("&#39;".to_string()),
        _ => None,
    })
}

/// Untrusted text as a complete inline code span, fences included:
/// `` `a` ``, or ``` `` a`b `` ``` when the text holds backticks.
/// Not for table cells (GFM splits cells at `|` before code spans).
pub fn code(s: &str) -> String {
    let body: String = s.chars().filter(|&c| !dropped(c)).map(|c| if matches!(c, '\n' | '\r' | '\t') { ' ' } else { c }).collect();
    let mut longest = 0;
    let mut run = 0;
    for c in body.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    // CommonMark strips one space from each end when both ends have one, and
    // the content is not all spaces: pad when an end is a backtick or space.
    let pad = body.starts_with(['`', ' ']) || body.ends_with(['`', ' ']);
    if body.is_empty() {
        return "` `".to_string();
    }
    if pad { format!("{fence} {body} {fence}") } else { format!("{fence}{body}{fence}") }
}

/// gitgrant's own prose that marks names with backticks (diagnostic
/// messages: "unknown role `x`"): each backticked part becomes a code span
/// ([`code`]), the rest Markdown text ([`text`]). Whatever the input, every
/// part is escaped for its context; untrusted backticks can only move the
/// split, never open markup.
pub fn rich(s: &str) -> String {
    let parts: Vec<&str> = s.split('`').collect();
    // An odd number of backticks leaves the last part unpaired: text.
    let paired = parts.len() % 2 == 1;
    let mut out = String::with_capacity(s.len() + 8);
    for (i, part) in parts.iter().enumerate() {
        let inside = i % 2 == 1 && (paired || i + 1 < parts.len());
        if inside && !part.is_empty() {
            out.push_str(&code(part));
        } else if i % 2 == 1 {
            out.push_str(&text(&format!("`{part}")));
        } else {
            out.push_str(&text(part));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests;

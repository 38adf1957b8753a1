//! The findings issue's text. (Webhook delivery of findings goes through
//! the notification stream, `crate::notify`.) Every value a user controls (request ids, principals,
//! actions from the provider's log) is escaped, so a crafted action name
//! cannot ping a channel, inject a link or break the formatting.

use super::rules::Finding;

/// Escapes text for Slack mrkdwn and GitHub Markdown alike: `&`, `<`, `>`
/// as entities (Slack's control characters; `<!channel>` pings), markdown
/// punctuation with a backslash, `@` with a zero-width joiner so no one is
/// mentioned by accident.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '*' | '_' | '~' | '`' | '[' | ']' | '(' | ')' | '#' | '|' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '@' => out.push_str("@\u{200d}"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// One line per finding, escaped.
pub fn finding_lines(findings: &[Finding], revoked: &[String]) -> String {
    findings
        .iter()
        .map(|f| {
            let action = if revoked.contains(&f.request) { " — revoked" } else { "" };
            format!("• rule {}: {}{action}. Evidence: {}", escape(&f.rule), escape(&f.message), escape(&f.evidence()))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn user_text_cannot_ping_link_or_format() {
        assert_eq!(escape("<!channel> *bold* [x](http://e)"), "&lt;!channel&gt; \\*bold\\* \\[x\\]\\(http://e\\)");
        assert_eq!(escape("a@b\nc"), "a@\u{200d}b c");
    }
}

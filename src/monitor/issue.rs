//! The findings issue's text (GitHub Markdown). Webhook delivery of findings
//! goes through the notification stream, `crate::notify`. Every value a user
//! or a provider's log controls (rules' messages, request ids, principals,
//! actions) is escaped by the one Markdown escaper, `render::markdown::text`,
//! so a crafted action name cannot ping a team, inject a link or break the list.

use super::rules::Finding;
use crate::model::policy::Policy;
use crate::render::markdown::text;

/// The body of the findings issue: one list item per new finding, then the
/// policy owners to review.
pub fn body(new: &[Finding], revoked: &[String], policy: &Policy) -> String {
    format!(
        "gitgrant monitor found activity that the policy's `monitor` rules flag.\n\n{}\n\nPolicy owners to review: {}.\n",
        finding_lines(new, revoked),
        text(&super::breakglass::owners(policy))
    )
}

/// One list item per finding, escaped.
fn finding_lines(findings: &[Finding], revoked: &[String]) -> String {
    findings
        .iter()
        .map(|f| {
            let action = if revoked.contains(&f.request) { " — revoked" } else { "" };
            format!("- rule {}: {}{action}. Evidence: {}", text(&f.rule), text(&f.message), text(&f.evidence()))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::finding_lines;
    use crate::model::policy::ProviderKind;
    use crate::monitor::rules::{EventRef, Finding, FindingKind};

    #[test]
    fn provider_text_cannot_ping_link_or_break_the_list() {
        let f = Finding {
            rule: "no-deletes".into(),
            kind: FindingKind::DeniedAction,
            request: "r1".into(),
            requester: "alice".into(),
            role: "db-admin".into(),
            resource: "prod".into(),
            provider: ProviderKind::Local,
            principal: "alice".into(),
            revoke: true,
            message: "denied action *DropTable* by @octo-org/admins".into(),
            events: vec![EventRef { id: "e1".into(), time: chrono::DateTime::UNIX_EPOCH, action: "x](https://evil.example)\n- rule forged: <b>".into() }],
        };
        let out = finding_lines(&[f], &["r1".to_string()]);
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.starts_with("- rule no-deletes: denied action ") && out.contains(" — revoked. Evidence: e1 at 1970-01-01T00:00:00Z: "), "{out}");
        for raw in ["*DropTable*", "@octo-org", "](https", "https://", "<b>", "\n- rule forged"] {
            assert!(!out.contains(raw), "{raw} survived: {out}");
        }
    }
}

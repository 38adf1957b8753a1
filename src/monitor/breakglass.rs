//! Break-glass ratification: a break-glass grant must be reviewed after the
//! fact by a later commit on main carrying `Break-glass-review: <id>` that
//! landed with the approval of a `break_glass.reviewers` member, within
//! `review_within` of when access began (the later of its landing and its start). [`ratification`] is the pure
//! decision; [`review_commits`] gathers its input from git.
//!
//! Who approved a review commit: its `Approved-by:` trailers (plain git), or,
//! with a GitHub client, the approving reviews of the PR it merged (trailers
//! then count for nothing, as for request landings).

use chrono::{DateTime, TimeDelta, Utc};
use git2::{Oid, Repository};
use serde::Serialize;

use crate::approval::ReviewState;
use crate::github::GitHubApi;
use crate::model::policy::Policy;

/// A commit on main that reviews break-glass requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewCommit {
    pub commit: String,
    pub time: DateTime<Utc>,
    /// Request ids from its `Break-glass-review:` trailers.
    pub requests: Vec<String>,
    /// Lowercased logins that approved it.
    pub approvers: Vec<String>,
    /// Lowercased logins of its author (never counts as a reviewer).
    pub authors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Ratification {
    /// Not a break-glass request, or the policies have no `break_glass` section.
    NotRequired,
    Reviewed {
        commit: String,
        by: String,
    },
    /// No valid review yet; it is due at `due`.
    Pending {
        due: DateTime<Utc>,
    },
    /// No valid review landed by `due`: revoke and report.
    Overdue {
        due: DateTime<Utc>,
    },
}

/// Decides whether break-glass request `id` (requested by `requester`,
/// whose access began at `landed`: the later of landing and start) is ratified at `at`. A review counts when it names
/// the id, landed by the due time, and was approved by a reviewer-group
/// member who is neither the requester nor the review commit's author.
pub fn ratification(
    id: &str,
    requester: &str,
    break_glass: bool,
    landed: DateTime<Utc>,
    policy: &Policy,
    reviews: &[ReviewCommit],
    at: DateTime<Utc>,
) -> Ratification {
    let Some(bg) = policy.break_glass.as_ref().filter(|_| break_glass) else {
        return Ratification::NotRequired;
    };
    let due = landed.checked_add_signed(TimeDelta::seconds(bg.review_within.secs())).unwrap_or(landed);
    let requester = requester.to_ascii_lowercase();
    for r in reviews.iter().filter(|r| r.time >= landed && r.time <= due && r.requests.iter().any(|x| x == id)) {
        let ok = r.approvers.iter().find(|a| **a != requester && !r.authors.contains(a) && policy.in_any(a, &bg.reviewers));
        if let Some(by) = ok {
            return Ratification::Reviewed { commit: r.commit.clone(), by: by.clone() };
        }
    }
    if at >= due { Ratification::Overdue { due } } else { Ratification::Pending { due } }
}

/// The people to tell about an unratified grant: members of `break_glass.reviewers`.
pub fn owners(policy: &Policy) -> String {
    let Some(bg) = &policy.break_glass else { return "the policy owners".into() };
    bg.reviewers
        .iter()
        .map(|g| {
            let m: Vec<String> = policy.members(g).into_iter().collect();
            format!("{g}: {}", if m.is_empty() { "(no listed members)".to_string() } else { m.join(", ") })
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The monitor rule name of an unratified break-glass grant's finding.
pub const RULE: &str = "break_glass.review_within";

/// How every unratified-break-glass refusal begins (monitor finds them by it).
pub const UNRATIFIED: &str = "break-glass grant not ratified";

/// The reason reconcile and monitor give when a grant is revoked for want of review.
pub fn overdue_reason(id: &str, due: DateTime<Utc>, policy: &Policy) -> String {
    let groups = policy.break_glass.as_ref().map(|b| b.reviewers.join(", ")).unwrap_or_default();
    format!(
        "{UNRATIFIED}: no commit with `Break-glass-review: {id}` approved by a member of {groups} landed on main by {}; revoked. Reported to {}",
        crate::model::stamp(&due),
        owners(policy)
    )
}

/// When the review was due, read back from a reason [`overdue_reason`]
/// wrote (the detail of a `verify-failed` ledger line, or the message of a
/// monitor finding); `None` for any text that does not begin as it does.
pub fn overdue_due(reason: &str) -> Option<DateTime<Utc>> {
    let rest = reason.strip_prefix(UNRATIFIED)?;
    let (_, rest) = rest.split_once(" landed on main by ")?;
    let (stamp, _) = rest.split_once(';')?;
    DateTime::parse_from_rfc3339(stamp.trim()).ok().map(|t| t.with_timezone(&Utc))
}

/// Who must review break-glass grants: the `break_glass.reviewers` groups
/// and their members (sorted, unique logins). Empty without the section.
pub fn reviewers(policy: &Policy) -> (Vec<String>, Vec<String>) {
    let Some(bg) = &policy.break_glass else { return (Vec::new(), Vec::new()) };
    let logins: std::collections::BTreeSet<String> = bg.reviewers.iter().flat_map(|g| policy.members(g)).collect();
    (bg.reviewers.clone(), logins.into_iter().collect())
}

/// Review commits on main's first-parent chain from `main` back to `since`
/// ([`crate::engine::breakglass::review_landings`]: the trailer may be on a
/// merged review branch), with their approvers: trailers, or on GitHub the
/// approving reviews of the PR the landing merged.
pub async fn review_commits(repo: &Repository, main: Oid, since: DateTime<Utc>, github: Option<&dyn GitHubApi>) -> Result<Vec<ReviewCommit>, git2::Error> {
    let mut out = Vec::new();
    for r in crate::engine::breakglass::review_landings(repo, main, Some(since))? {
        let approvers = match (github, r.pr) {
            (Some(api), Some(n)) => approving_reviewers(api, n).await,
            (Some(_), None) => Vec::new(),
            (None, _) => r.approved_by.clone(),
        };
        out.push(ReviewCommit {
            commit: r.commit,
            time: r.time,
            requests: r.requests,
            approvers: approvers.into_iter().map(|a| a.to_ascii_lowercase()).collect(),
            authors: r.authors,
        });
    }
    Ok(out)
}

/// Logins whose latest review of PR `n` approves it (an unreadable PR approves nothing).
async fn approving_reviewers(api: &dyn GitHubApi, n: u64) -> Vec<String> {
    let Ok(reviews) = api.reviews(n).await else { return Vec::new() };
    let mut latest: std::collections::BTreeMap<String, ReviewState> = std::collections::BTreeMap::new();
    for r in reviews {
        latest.insert(r.login.to_ascii_lowercase(), r.state);
    }
    latest.into_iter().filter(|(_, s)| *s == ReviewState::Approved).map(|(l, _)| l).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::Duration;
    use crate::model::policy::{BreakGlass, Group, Origin};

    fn policy() -> Policy {
        let mut p = Policy::default();
        let g = |m: &[&str]| Group {
            members: m.iter().map(|s| s.to_string()).collect(),
            github_team: None,
            origin: Origin { file: String::new(), pos: crate::diag::Pos::FILE },
        };
        p.groups.insert("security".into(), g(&["dave", "erin"]));
        p.break_glass = Some(BreakGlass {
            approvals: vec![],
            max_duration: Duration::from_secs(3600),
            review_within: Duration::from_secs(3600),
            reviewers: vec!["security".into()],
        });
        p
    }
    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }
    fn review(time: &str, approver: &str, author: &str) -> ReviewCommit {
        ReviewCommit { commit: "c1".into(), time: t(time), requests: vec!["bg".into()], approvers: vec![approver.into()], authors: vec![author.into()] }
    }

    #[test]
    fn the_due_time_is_read_back_from_the_reason() {
        let due = t("2026-12-01T10:30:00Z");
        let reason = overdue_reason("heidi-bg", due, &policy());
        assert_eq!(overdue_due(&reason), Some(due));
        assert_eq!(overdue_due(&format!("{reason}. Evidence: ")), Some(due), "as a monitor finding quotes it");
        assert_eq!(overdue_due("landed in a change that `check` fails: x landed on main by 2026-12-01T10:30:00Z; y"), None, "not a ratification refusal");
        assert_eq!(overdue_due(&format!("no longer allowed by the current policies on main: GG001 {reason}")), None, "only at the start");
        assert_eq!(reviewers(&policy()), (vec!["security".to_string()], vec!["dave".to_string(), "erin".to_string()]));
        assert_eq!(reviewers(&Policy::default()), (vec![], vec![]));
    }

    #[test]
    fn reviewed_in_time_by_a_reviewer_is_ratified() {
        let r = ratification(
            "bg",
            "alice",
            true,
            t("2026-12-01T10:00:00Z"),
            &policy(),
            &[review("2026-12-01T10:30:00Z", "dave", "bob")],
            t("2026-12-01T12:00:00Z"),
        );
        assert_eq!(r, Ratification::Reviewed { commit: "c1".into(), by: "dave".into() });
    }

    #[test]
    fn missing_late_or_wrong_reviewer_is_overdue_after_the_window() {
        let p = policy();
        let landed = t("2026-12-01T10:00:00Z");
        let due = t("2026-12-01T11:00:00Z");
        for reviews in [
            vec![],
            vec![review("2026-12-01T11:30:00Z", "dave", "bob")],  // late
            vec![review("2026-12-01T10:30:00Z", "bob", "carol")], // not a reviewer
            vec![review("2026-12-01T10:30:00Z", "dave", "dave")], // own commit
        ] {
            assert_eq!(ratification("bg", "alice", true, landed, &p, &reviews, t("2026-12-01T11:00:00Z")), Ratification::Overdue { due });
            assert_eq!(ratification("bg", "alice", true, landed, &p, &reviews, t("2026-12-01T10:59:00Z")), Ratification::Pending { due });
        }
        // The requester cannot ratify their own grant.
        assert_eq!(ratification("bg", "dave", true, landed, &p, &[review("2026-12-01T10:30:00Z", "dave", "bob")], due), Ratification::Overdue { due });
        assert_eq!(ratification("bg", "alice", false, landed, &p, &[], due), Ratification::NotRequired);
    }
}

//! GitHub teams in groups: `github_team: org/slug` adds the team's members to
//! a group's static `members`, for the approval engine.
//!
//! The engine itself stays pure ([`super::evaluate`] takes resolved groups);
//! resolution happens here, through [`TeamResolver`], which the GitHub code
//! implements (the GitHub client is async, hence an async trait) and tests fake with
//! [`StaticTeams`]. Failing closed: when a team cannot be resolved, its group
//! is its listed members only and a warning says so; an unresolved team's
//! members never count as approvers.
//!
//! Plain-git mode (`approvals --commit`, `check`) has no GitHub access and uses
//! the static members only, via [`crate::model::policy::Policy::group_members`].

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::model::policy::Policy;

/// Why a team's members could not be listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TeamError {
    #[error("`{0}` is not a GitHub team (write it as `org/team-slug`)")]
    BadName(String),
    #[error("team `{0}` was not found, or the token cannot see it")]
    NotFound(String),
    #[error("the GitHub API failed: {0}")]
    Api(String),
}

/// Lists the members (GitHub logins) of a team named `org/slug`.
#[async_trait::async_trait]
pub trait TeamResolver: Send + Sync {
    async fn members(&self, team: &str) -> Result<BTreeSet<String>, TeamError>;
}

/// Teams held in memory: for tests, and for callers that fetched them already.
/// Team names match case-insensitively, as on GitHub.
#[derive(Debug, Clone, Default)]
pub struct StaticTeams {
    teams: BTreeMap<String, Result<BTreeSet<String>, TeamError>>,
}

impl StaticTeams {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `team` with `members`.
    pub fn with(mut self, team: &str, members: &[&str]) -> Self {
        self.teams.insert(team.to_ascii_lowercase(), Ok(members.iter().map(|m| m.to_string()).collect()));
        self
    }

    /// Makes `team` fail with `error` (to test failing closed).
    pub fn failing(mut self, team: &str, error: TeamError) -> Self {
        self.teams.insert(team.to_ascii_lowercase(), Err(error));
        self
    }
}

#[async_trait::async_trait]
impl TeamResolver for StaticTeams {
    async fn members(&self, team: &str) -> Result<BTreeSet<String>, TeamError> {
        self.teams.get(&team.to_ascii_lowercase()).cloned().unwrap_or_else(|| Err(TeamError::NotFound(team.to_string())))
    }
}

/// `org/slug` with both parts present and nothing else.
fn well_formed(team: &str) -> bool {
    team.split_once('/').is_some_and(|(o, s)| !o.is_empty() && !s.is_empty() && !s.contains('/'))
}

/// Group name -> members for the approval engine: each group's `members`
/// plus, when it names a `github_team`, the team's members, all lowercased.
/// Each distinct team is asked once. A team that fails to resolve leaves its
/// group members-only, with a warning (GG190) at the group's definition.
pub async fn expand_groups(policy: &Policy, resolver: &dyn TeamResolver) -> (BTreeMap<String, BTreeSet<String>>, Diagnostics) {
    let mut d = Diagnostics::default();
    let mut resolved: BTreeMap<String, Result<BTreeSet<String>, TeamError>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (name, group) in &policy.groups {
        let mut members: BTreeSet<String> = group.members.iter().map(|m| m.trim().to_ascii_lowercase()).collect();
        if let Some(team) = &group.github_team {
            let key = team.to_ascii_lowercase();
            if !resolved.contains_key(&key) {
                let r = if well_formed(team) { resolver.members(team).await } else { Err(TeamError::BadName(team.clone())) };
                resolved.insert(key.clone(), r);
            }
            match resolved.get(&key) {
                Some(Ok(team_members)) => members.extend(team_members.iter().map(|m| m.trim().to_ascii_lowercase()).filter(|m| !m.is_empty())),
                Some(Err(e)) => d.push(
                    Diagnostic::new(
                        Code::TeamUnresolved,
                        &group.origin.file,
                        group.origin.pos,
                        format!("group `{name}`: GitHub team `{team}` could not be resolved ({e}); only its listed members count"),
                    )
                    .help("check the team name and that the token may read the organization's teams (`read:org`); until then, team members not listed in `members` cannot approve"),
                ),
                None => {}
            }
        }
        out.insert(name.clone(), members);
    }
    (out, d)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::approval::{ApprovalInput, Requirement, Review, ReviewState, evaluate};
    use crate::diag::Pos;
    use crate::model::policy::{Group, Origin};

    fn group(members: &[&str], team: Option<&str>, line: u32) -> Group {
        Group {
            members: members.iter().map(|m| m.to_string()).collect(),
            github_team: team.map(str::to_string),
            origin: Origin { file: "policies/groups.yaml".into(), pos: Pos::new(line, 3) },
        }
    }

    fn policy(groups: &[(&str, Group)]) -> Policy {
        let mut p = Policy::default();
        for (n, g) in groups {
            p.groups.insert(n.to_string(), g.clone());
        }
        p
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn team_members_join_the_listed_members_lowercased() {
        let p = policy(&[("sre", group(&["alice"], Some("acme/SRE"), 4)), ("dba", group(&["carol"], None, 7))]);
        let teams = StaticTeams::new().with("acme/sre", &["Bob", "alice", " Zed "]);
        let (groups, d) = expand_groups(&p, &teams).await;
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(groups["sre"], set(&["alice", "bob", "zed"]));
        assert_eq!(groups["dba"], set(&["carol"]));
    }

    #[tokio::test]
    async fn an_unresolved_team_leaves_the_group_members_only_with_a_warning() {
        let p = policy(&[
            ("sre", group(&["alice"], Some("acme/sre"), 4)),
            ("security", group(&[], Some("acme/security"), 9)),
            ("bad", group(&["x"], Some("no-slash"), 12)),
        ]);
        let teams = StaticTeams::new().failing("acme/sre", TeamError::Api("HTTP 502".into()));
        let (groups, d) = expand_groups(&p, &teams).await;
        assert_eq!(groups["sre"], set(&["alice"]));
        assert_eq!(groups["security"], set(&[]), "a missing team adds nobody");
        assert_eq!(groups["bad"], set(&["x"]));
        let got: Vec<(String, u32, bool)> = d.iter().map(|x| (x.code.to_string(), x.line, x.message.contains("could not be resolved"))).collect();
        // Groups iterate by name: bad, security, sre.
        assert_eq!(got, [("GG190".into(), 12, true), ("GG190".into(), 9, true), ("GG190".into(), 4, true)]);
        assert!(d.iter().all(|x| x.severity == crate::diag::Severity::Warning && x.file == "policies/groups.yaml"));
        assert!(d.iter().any(|x| x.message.contains("HTTP 502")));
        assert!(d.iter().any(|x| x.message.contains("not a GitHub team")));
    }

    /// Counts calls, to show each team is asked once.
    struct Counting(StaticTeams, AtomicUsize);

    #[async_trait::async_trait]
    impl TeamResolver for Counting {
        async fn members(&self, team: &str) -> Result<BTreeSet<String>, TeamError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.members(team).await
        }
    }

    #[tokio::test]
    async fn each_team_is_resolved_once() {
        let p = policy(&[("a", group(&[], Some("acme/ops"), 1)), ("b", group(&["q"], Some("ACME/ops"), 2))]);
        let r = Counting(StaticTeams::new().with("acme/ops", &["p"]), AtomicUsize::new(0));
        let (groups, _) = expand_groups(&p, &r).await;
        assert_eq!(r.1.load(Ordering::SeqCst), 1);
        assert_eq!(groups["a"], set(&["p"]));
        assert_eq!(groups["b"], set(&["p", "q"]));
    }

    fn approve(login: &str) -> Review {
        Review { login: login.into(), state: ReviewState::Approved, commit_id: "head".into(), submitted_at: chrono::DateTime::default(), id: None }
    }

    #[tokio::test]
    async fn team_members_can_approve_only_when_the_team_resolves() {
        let p = policy(&[("security", group(&["dave"], Some("acme/security"), 3))]);
        let req = [Requirement { from: vec!["security".into()], count: 1, label: "r".into() }];
        let reviews = [approve("Mallory")];
        let decide = |groups: &BTreeMap<String, BTreeSet<String>>| {
            evaluate(&ApprovalInput { requirements: &req, groups, reviews: &reviews, head_commit: "head", excluded: &[] }).satisfied
        };
        let (ok, _) = expand_groups(&p, &StaticTeams::new().with("acme/security", &["mallory"])).await;
        assert!(decide(&ok), "a resolved team member fills the slot");
        let (failed, d) = expand_groups(&p, &StaticTeams::new().failing("acme/security", TeamError::Api("timeout".into()))).await;
        assert!(!decide(&failed), "fail closed: an unresolved team member never counts");
        assert_eq!(d.len(), 1);
        // Plain-git mode: static members only.
        assert!(!decide(&p.group_members()));
    }
}

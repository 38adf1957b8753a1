//! Asking the people who can fill the open approval slots.
//!
//! Design choices:
//! - Who to ask is a pure function of the decision, the policies and what
//!   was already asked ([`to_ask`]); the gate then makes one API call.
//! - Once per PR head: what was asked, and for which head, is kept in a
//!   hidden line of the sticky comment ([`Asked::line`]). A new head (a new
//!   push, so earlier approvals went stale) asks again; a rerun on the same
//!   head asks only people not asked yet, so someone who removed themselves
//!   as reviewer is not re-added on every run.
//! - A group with a `github_team` is asked as the team; its listed members
//!   are asked as people. Requesters, the PR author and commit authors are
//!   never asked (the approval engine already leaves them out of the
//!   candidates; they are filtered again here).
//! - A failed request (422 "Reviews may only be requested from
//!   collaborators", a token without `pull_requests: write`) is reported in
//!   the notes, never fatal: the verdict stands.

use std::collections::BTreeSet;

use crate::approval::Decision;
use crate::model::policy::Policy;

/// Start of the hidden state line in the sticky comment.
const STATE_PREFIX: &str = "<!-- gitgrant:asked ";

/// GitHub accepts at most this many reviewers per pull request request.
pub const MAX_REVIEWERS: usize = 15;

/// Who was asked for which head (users, team slugs, mentioned logins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asked {
    pub head: String,
    pub users: BTreeSet<String>,
    pub teams: BTreeSet<String>,
    pub mentioned: BTreeSet<String>,
}

/// A GitHub login or team slug that is safe to echo into a comment and an
/// HTML comment: ASCII letters, digits, single hyphens (logins) and `_`/`.`
/// (team slugs); never `--` (it would end the HTML comment).
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !s.contains("--")
        && !s.starts_with(['-', '.'])
}

/// A state entry: a name, or `team:` and a name (mentioned teams).
fn is_entry(s: &str) -> bool {
    is_name(s.strip_prefix("team:").unwrap_or(s))
}

impl Asked {
    /// The hidden state line, e.g.
    /// `<!-- gitgrant:asked head=abc users=dave,erin teams=appsec mentioned= -->`.
    pub fn line(&self) -> String {
        let j = |s: &BTreeSet<String>| s.iter().filter(|n| is_entry(n)).cloned().collect::<Vec<_>>().join(",");
        let head: String = self.head.chars().filter(char::is_ascii_hexdigit).collect();
        format!("{STATE_PREFIX}head={head} users={} teams={} mentioned={} -->", j(&self.users), j(&self.teams), j(&self.mentioned))
    }

    /// Reads the state line back from a comment body (`None` if absent).
    pub fn parse(body: &str) -> Option<Asked> {
        let line = body.lines().find(|l| l.starts_with(STATE_PREFIX))?;
        let inner = line.strip_prefix(STATE_PREFIX)?.strip_suffix(" -->")?;
        let mut out = Asked::default();
        for field in inner.split(' ') {
            let (k, v) = field.split_once('=')?;
            let set = || v.split(',').filter(|n| is_entry(n)).map(str::to_string).collect::<BTreeSet<_>>();
            match k {
                "head" => out.head = v.to_string(),
                "users" => out.users = set(),
                "teams" => out.teams = set(),
                "mentioned" => out.mentioned = set(),
                _ => {}
            }
        }
        Some(out)
    }
}

/// The users and teams that can fill the open slots, not yet asked for
/// `head`, capped at [`MAX_REVIEWERS`] together.
pub fn to_ask(decision: &Decision, policy: &Policy, excluded: &[String], head: &str, previous: Option<&Asked>) -> Asked {
    let excluded: BTreeSet<String> = excluded.iter().map(|e| e.to_ascii_lowercase()).collect();
    let same_head = previous.filter(|p| p.head == head);
    let mut users = BTreeSet::new();
    let mut teams = BTreeSet::new();
    for slot in decision.slots.iter().filter(|s| s.filled_by.is_none()) {
        for group in &slot.from {
            let Some(g) = policy.groups.get(group) else { continue };
            if let Some((_, slug)) = g.github_team.as_deref().and_then(|t| t.split_once('/')) {
                teams.insert(slug.to_string());
            }
            // The candidates already leave out excluded people and those who
            // filled another slot; only people the policy lists by name.
            for c in slot.candidates.iter().filter(|c| g.members.contains(&c.to_ascii_lowercase())) {
                users.insert(c.clone());
            }
        }
    }
    users.retain(|u| is_name(u) && !excluded.contains(&u.to_ascii_lowercase()) && !same_head.is_some_and(|p| p.users.contains(u)));
    teams.retain(|t| is_name(t) && !same_head.is_some_and(|p| p.teams.contains(t)));
    let users: BTreeSet<String> = users.into_iter().take(MAX_REVIEWERS).collect();
    let teams: BTreeSet<String> = teams.into_iter().take(MAX_REVIEWERS - users.len()).collect();
    Asked { head: head.to_string(), users, teams, mentioned: BTreeSet::new() }
}

/// `@dave, @erin, @acme/appsec`: pings for the open slots' people and teams.
pub fn mention_text(users: &BTreeSet<String>, teams: &BTreeSet<String>, org: Option<&str>) -> String {
    let mut parts: Vec<String> = users.iter().filter(|u| is_name(u)).map(|u| format!("@{u}")).collect();
    if let Some(org) = org.filter(|o| is_name(o)) {
        parts.extend(teams.iter().filter(|t| is_name(t)).map(|t| format!("@{org}/{t}")));
    }
    parts.join(", ")
}

/// The org of the teams the policies name (for `@org/team` mentions).
pub fn team_org(policy: &Policy) -> Option<String> {
    policy.groups.values().find_map(|g| g.github_team.as_deref().and_then(|t| t.split_once('/')).map(|(o, _)| o.to_string()))
}

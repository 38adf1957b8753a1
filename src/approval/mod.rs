//! The approval decision: does a pull request carry the approvals its
//! access requests (or policy change) need?
//!
//! This is a pure function of its inputs — requirements, already-resolved
//! group membership, the PR's reviews, its head commit and who is excluded —
//! so the same evidence always gives the same, auditable answer, and the
//! GitHub and team lookups stay elsewhere.
//!
//! Why it is shaped this way:
//! - Requesters and the PR author never approve their own access: separation
//!   of duties is the whole point.
//! - Only a reviewer's latest decisive review counts, and an approval must be
//!   of the head commit: anything pushed after an approval was not approved.
//!   Comments do not change a reviewer's standing, as on GitHub.
//! - Changes requested by someone who could approve block the merge until
//!   they approve or are dismissed; an outsider's objection is reported only.
//! - Requirements become slots, and slots are filled by a maximum bipartite
//!   matching ([`matching::max_matching`]) rather than by counting per group,
//!   so one person in two groups can never fill two slots, even across the
//!   several requests of one PR.
//! - Logins are compared case-insensitively (as GitHub does) but reported as
//!   written in the input, and every list is sorted or in input order, so the
//!   decision is deterministic.

pub mod matching;
pub mod teams;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// State of a pull-request review, spelled as the GitHub API does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReviewState {
    Approved,
    ChangesRequested,
    Commented,
    Dismissed,
    Pending,
}

impl ReviewState {
    /// Whether this state changes a reviewer's standing. Comments and
    /// pending (unsubmitted) reviews do not.
    #[must_use]
    pub fn is_decisive(&self) -> bool {
        matches!(self, Self::Approved | Self::ChangesRequested | Self::Dismissed)
    }
}

/// One review of the pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub login: String,
    pub state: ReviewState,
    /// The commit the review was made on.
    pub commit_id: String,
    pub submitted_at: DateTime<Utc>,
    /// GitHub review id or trailer source, kept as audit evidence.
    #[serde(default)]
    pub id: Option<String>,
}

/// `count` distinct people, each a member of any of the `from` groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    pub from: Vec<String>,
    pub count: u32,
    /// What asks for it, e.g. `request 2026-11-23-alice-db: tier high` or
    /// `policy change`.
    pub label: String,
}

/// Everything the decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct ApprovalInput<'a> {
    /// All requirements of the PR; their slots are pooled, one per person.
    pub requirements: &'a [Requirement],
    /// Group name -> member logins, already resolved.
    pub groups: &'a BTreeMap<String, BTreeSet<String>>,
    pub reviews: &'a [Review],
    /// The PR's current head commit. If empty, no approval is valid.
    pub head_commit: &'a str,
    /// Requesters and the PR author: they never count as approvers.
    pub excluded: &'a [String],
}

/// One slot of one requirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotOutcome {
    pub label: String,
    pub from: Vec<String>,
    /// The approver assigned to this slot, as spelled in their review.
    pub filled_by: Option<String>,
    /// Who could fill it if unfilled: non-excluded members of its groups not
    /// already used by the matching, sorted, as spelled in the groups.
    /// Empty when filled.
    pub candidates: Vec<String>,
}

/// Why a review did not count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IgnoreReason {
    /// The reviewer is a requester or the PR author.
    RequesterOrAuthor,
    /// A later decisive review by the same person replaces this one.
    Superseded,
    /// The reviewer's latest decisive review was dismissed.
    Dismissed,
    /// An approval of another commit than the head.
    StaleCommit { commit: String },
    /// Approved the head, but is in none of the slot groups.
    NotEligible,
    /// Valid and eligible, but every slot they fit is filled by others.
    Unused,
    /// Changes requested by someone in none of the slot groups: reported,
    /// not blocking.
    ChangesRequestedNotEligible,
}

/// A review that did not count, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgnoredReview {
    pub login: String,
    pub reason: IgnoreReason,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Every slot filled and nothing blocking.
    pub satisfied: bool,
    /// One entry per slot, in requirement order.
    pub slots: Vec<SlotOutcome>,
    /// Everyone whose latest decisive review approves the head commit, minus
    /// requesters and author, sorted. This includes people who fill no slot
    /// (see `ignored` for why).
    pub approvers: Vec<String>,
    /// Each decisive review that did not count, in review input order.
    /// Comments and pending reviews are never listed.
    pub ignored: Vec<IgnoredReview>,
    /// Eligible people whose latest decisive review requests changes, sorted.
    pub blockers: Vec<String>,
}

/// Normalised (comparison) form of a login.
fn norm(login: &str) -> String {
    login.trim().to_lowercase()
}

/// Decides whether the reviews satisfy the requirements.
///
/// Each requirement expands to `count` slots. A requirement asking for more
/// people than its groups hold (after exclusions) can never be met; it is
/// expanded to one slot more than that pool, which keeps the decision exact
/// (unsatisfied) while bounding the work for absurd counts.
#[must_use]
pub fn evaluate(input: &ApprovalInput<'_>) -> Decision {
    let head = input.head_commit;
    let excluded: BTreeSet<String> = input.excluded.iter().map(|l| norm(l)).collect();

    // How each member is spelled in the groups (first spelling wins).
    let mut group_spelling: BTreeMap<String, &str> = BTreeMap::new();
    for member in input.groups.values().flatten() {
        group_spelling.entry(norm(member)).or_insert(member.as_str());
    }

    // Normalised members of each requirement's groups.
    let requirement_members: Vec<BTreeSet<String>> =
        input.requirements.iter().map(|r| r.from.iter().filter_map(|g| input.groups.get(g)).flatten().map(|m| norm(m)).collect()).collect();

    // Eligible: member of a group of at least one slot.
    let eligible: BTreeSet<&String> =
        input.requirements.iter().zip(&requirement_members).filter(|(r, _)| r.count > 0).flat_map(|(_, members)| members).collect();

    // Latest decisive review per reviewer: by time, later input wins ties.
    let mut latest: BTreeMap<String, usize> = BTreeMap::new();
    for (i, review) in input.reviews.iter().enumerate() {
        if !review.state.is_decisive() {
            continue;
        }
        let key = norm(&review.login);
        let replace = match latest.get(&key).and_then(|&j| input.reviews.get(j)) {
            Some(current) => review.submitted_at >= current.submitted_at,
            None => true,
        };
        if replace {
            latest.insert(key, i);
        }
    }
    let latest_review = |key: &str| latest.get(key).and_then(|&i| input.reviews.get(i));
    let approves_head = |r: &Review| r.state == ReviewState::Approved && !head.is_empty() && r.commit_id == head;

    // Valid approvals of the head, after exclusions (sorted by key).
    let approving: Vec<(&String, &Review)> = latest
        .iter()
        .filter(|(key, _)| !excluded.contains(*key))
        .filter_map(|(key, &i)| input.reviews.get(i).map(|r| (key, r)))
        .filter(|(_, r)| approves_head(r))
        .collect();
    // The people of the matching: valid approvals by eligible people.
    let people: Vec<(&String, &Review)> = approving.iter().copied().filter(|(key, _)| eligible.contains(key)).collect();

    // Slots, and who may fill each.
    let mut slot_requirement: Vec<usize> = Vec::new();
    let mut adjacency: Vec<Vec<usize>> = Vec::new();
    for (r, (requirement, members)) in input.requirements.iter().zip(&requirement_members).enumerate() {
        let pool = members.iter().filter(|m| !excluded.contains(*m)).count();
        let wanted = usize::try_from(requirement.count).unwrap_or(usize::MAX);
        let fits: Vec<usize> = people.iter().enumerate().filter(|(_, (key, _))| members.contains(*key)).map(|(p, _)| p).collect();
        for _ in 0..wanted.min(pool.saturating_add(1)) {
            slot_requirement.push(r);
            adjacency.push(fits.clone());
        }
    }
    let assignment = matching::max_matching(&adjacency, people.len());
    let used: BTreeSet<&String> = assignment.iter().flatten().filter_map(|&p| people.get(p).map(|(key, _)| *key)).collect();

    let mut slots = Vec::with_capacity(assignment.len());
    for (&r, filled) in slot_requirement.iter().zip(&assignment) {
        let (Some(requirement), Some(members)) = (input.requirements.get(r), requirement_members.get(r)) else {
            continue;
        };
        let filled_by = filled.and_then(|p| people.get(p)).map(|(_, review)| review.login.clone());
        let candidates = if filled_by.is_some() {
            Vec::new()
        } else {
            members
                .iter()
                .filter(|m| !excluded.contains(*m) && !used.contains(m))
                .map(|m| group_spelling.get(m).map_or_else(|| m.clone(), |s| (*s).to_owned()))
                .collect()
        };
        slots.push(SlotOutcome { label: requirement.label.clone(), from: requirement.from.clone(), filled_by, candidates });
    }

    let approvers: Vec<String> = approving.iter().map(|(_, r)| r.login.clone()).collect();

    let blockers: Vec<String> = latest
        .keys()
        .filter(|key| !excluded.contains(*key) && eligible.contains(key))
        .filter_map(|key| latest_review(key))
        .filter(|r| r.state == ReviewState::ChangesRequested)
        .map(|r| r.login.clone())
        .collect();

    let mut ignored = Vec::new();
    for (i, review) in input.reviews.iter().enumerate() {
        if !review.state.is_decisive() {
            continue;
        }
        let key = norm(&review.login);
        let reason = if excluded.contains(&key) {
            IgnoreReason::RequesterOrAuthor
        } else if latest.get(&key) != Some(&i) {
            IgnoreReason::Superseded
        } else {
            match review.state {
                ReviewState::Dismissed => IgnoreReason::Dismissed,
                ReviewState::ChangesRequested if eligible.contains(&key) => continue,
                ReviewState::ChangesRequested => IgnoreReason::ChangesRequestedNotEligible,
                _ if !approves_head(review) => IgnoreReason::StaleCommit { commit: review.commit_id.clone() },
                _ if !eligible.contains(&key) => IgnoreReason::NotEligible,
                _ if !used.contains(&key) => IgnoreReason::Unused,
                _ => continue,
            }
        };
        ignored.push(IgnoredReview { login: review.login.clone(), reason });
    }

    let satisfied = slots.iter().all(|s| s.filled_by.is_some()) && blockers.is_empty();
    Decision { satisfied, slots, approvers, ignored, blockers }
}

impl Decision {
    /// One-line human summary, e.g.
    /// `2 of 3 approvals: missing 1 from security (could approve: dave, erin)`.
    #[must_use]
    pub fn summary(&self) -> String {
        let total = self.slots.len();
        let filled = self.slots.iter().filter(|s| s.filled_by.is_some()).count();
        let head = if total == 0 {
            "no approvals required".to_owned()
        } else {
            let noun = if total == 1 { "approval" } else { "approvals" };
            format!("{filled} of {total} {noun}")
        };
        if self.satisfied {
            return format!("{head}: satisfied");
        }

        // Unfilled slots grouped by their groups, in order of appearance.
        let mut missing: Vec<(&[String], usize, BTreeMap<String, &str>)> = Vec::new();
        for slot in self.slots.iter().filter(|s| s.filled_by.is_none()) {
            let index = missing.iter().position(|(from, _, _)| *from == slot.from).unwrap_or_else(|| {
                missing.push((&slot.from, 0, BTreeMap::new()));
                missing.len() - 1
            });
            if let Some((_, count, candidates)) = missing.get_mut(index) {
                *count += 1;
                for c in &slot.candidates {
                    candidates.entry(norm(c)).or_insert(c.as_str());
                }
            }
        }
        let mut problems: Vec<String> = missing
            .into_iter()
            .map(|(from, count, candidates)| {
                let from = if from.is_empty() { "no group".to_owned() } else { from.join(" or ") };
                let who = if candidates.is_empty() {
                    "nobody else can approve".to_owned()
                } else {
                    let names: Vec<&str> = candidates.into_values().collect();
                    format!("could approve: {}", names.join(", "))
                };
                format!("missing {count} from {from} ({who})")
            })
            .collect();
        if !self.blockers.is_empty() {
            problems.push(format!("changes requested by {}", self.blockers.join(", ")));
        }
        format!("{head}: {}", problems.join("; "))
    }
}

/// Whether `login` is a syntactically valid GitHub login:
/// `^[A-Za-z0-9][A-Za-z0-9-]{0,38}$`.
#[must_use]
pub fn is_valid_login(login: &str) -> bool {
    let bytes = login.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => first.is_ascii_alphanumeric() && rest.len() <= 38 && rest.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-'),
        None => false,
    }
}

/// The logins of the `Approved-by:` trailers of a commit message, in order,
/// without case-insensitive duplicates, as spelled in the message.
///
/// As in git, trailers are the lines of the last paragraph, never of the
/// title paragraph; the key is case-insensitive and lines starting with `#`
/// are comments. Stricter than git (fail closed): the whole paragraph must be
/// trailers (`Key: value` lines, or indented continuation lines), and the
/// value must be `login`, `@login` or `login <email>` with a valid login.
#[must_use]
pub fn parse_trailers(message: &str) -> Vec<String> {
    let lines: Vec<&str> = message.lines().filter(|l| !l.starts_with('#')).skip_while(|l| l.trim().is_empty()).collect();
    let blank = |l: &&str| l.trim().is_empty();
    let Some(title_end) = lines.iter().position(blank) else {
        return Vec::new(); // only a title
    };
    let body = lines.get(title_end..).unwrap_or_default();
    let end = body.iter().rposition(|l| !blank(l)).map_or(0, |i| i + 1);
    let body = body.get(..end).unwrap_or_default();
    let start = body.iter().rposition(blank).map_or(0, |i| i + 1);
    let block = body.get(start..).unwrap_or_default();

    let mut trailers: Vec<(&str, String)> = Vec::new();
    for line in block {
        if line.starts_with([' ', '\t']) {
            match trailers.last_mut() {
                Some((_, value)) => {
                    value.push(' ');
                    value.push_str(line.trim());
                }
                None => return Vec::new(),
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Vec::new();
        };
        let key = key.trim_end();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Vec::new();
        }
        trailers.push((key, value.trim().to_owned()));
    }

    let mut seen = BTreeSet::new();
    trailers
        .iter()
        .filter(|(key, _)| key.eq_ignore_ascii_case("approved-by"))
        .filter_map(|(_, value)| trailer_login(value))
        .filter(|login| seen.insert(login.to_lowercase()))
        .map(str::to_owned)
        .collect()
}

/// The login of an `Approved-by` value: `login`, `@login` or `login <email>`.
fn trailer_login(value: &str) -> Option<&str> {
    let value = value.trim();
    let (token, rest) = match value.split_once(char::is_whitespace) {
        Some((token, rest)) => (token, rest.trim()),
        None => (value, ""),
    };
    let email_ok = rest.is_empty() || rest.strip_prefix('<').and_then(|r| r.strip_suffix('>')).is_some_and(|inner| !inner.contains(['<', '>']));
    let login = token.strip_prefix('@').unwrap_or(token);
    (email_ok && is_valid_login(login)).then_some(login)
}

/// Turns trailer logins into APPROVED reviews of `commit`, made at `time`,
/// with id `trailer:Approved-by`.
#[must_use]
pub fn reviews_from_trailers(logins: &[String], commit: &str, time: DateTime<Utc>) -> Vec<Review> {
    logins
        .iter()
        .map(|login| Review {
            login: login.clone(),
            state: ReviewState::Approved,
            commit_id: commit.to_owned(),
            submitted_at: time,
            id: Some("trailer:Approved-by".to_owned()),
        })
        .collect()
}

//! Plain-git approvals: judging the commit that landed requests on main by
//! its `Approved-by:` trailers, under the policies of its first parent.
//!
//! Trust model: in plain-git mode, whoever can write to main can write
//! trailers, so main must be protected (only merges by a bot or the forge).
//! A commit that is not a merge and carries no trailers is a direct push.

use std::collections::BTreeSet;

use chrono::{TimeZone, Utc};
use git2::{Oid, Repository};
use serde::Serialize;

use super::{CheckError, CheckOptions, CheckReport, run_check};
use crate::approval::{self, ApprovalInput, Decision, Requirement};

#[derive(Debug, Serialize)]
pub struct LandingVerdict {
    pub commit: String,
    pub parent: Option<String>,
    /// A non-merge commit without any `Approved-by` trailer.
    pub direct_push: bool,
    pub approved_by: Vec<String>,
    /// Logins that never count: requesters and the authors of the landed commits.
    pub excluded: Vec<String>,
    pub decision: Decision,
    #[serde(skip)]
    pub report: CheckReport,
}

/// A GitHub login guessed from a git identity: the `NNN+login@users.noreply`
/// form, else the e-mail's local part, else the name.
pub fn login_of(sig: &git2::Signature) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(email) = sig.email() {
        let local = email.split('@').next().unwrap_or("");
        let local = local.split_once('+').map_or(local, |(_, l)| l);
        if approval::is_valid_login(local) {
            out.push(local.to_ascii_lowercase());
        }
    }
    if let Ok(name) = sig.name()
        && approval::is_valid_login(name)
    {
        out.push(name.to_ascii_lowercase());
    }
    out.dedup();
    out
}

/// Authors of the commits a merge brought in (or the commit's own author).
fn landed_authors(repo: &Repository, commit: &git2::Commit) -> Result<BTreeSet<String>, git2::Error> {
    let mut out: BTreeSet<String> = login_of(&commit.author()).into_iter().collect();
    if commit.parent_count() > 1 {
        let mut walk = repo.revwalk()?;
        for p in commit.parent_ids().skip(1) {
            walk.push(p)?;
        }
        walk.hide(commit.parent_id(0)?)?;
        for (i, oid) in walk.enumerate() {
            if i > 1000 {
                break;
            }
            out.extend(login_of(&repo.find_commit(oid?)?.author()));
        }
    }
    Ok(out)
}

/// Judges one landing commit's trailers against what its change required.
pub fn judge_landing(repo_dir: &std::path::Path, commit: &str, now: chrono::DateTime<Utc>) -> Result<LandingVerdict, CheckError> {
    let repo = Repository::open(repo_dir).map_err(|e| CheckError::NotARepo(repo_dir.display().to_string(), e))?;
    let oid: Oid = super::resolve(&repo, commit)?;
    let c = repo.find_commit(oid)?;
    let parent = c.parent_id(0).ok();
    let time = Utc.timestamp_opt(c.time().seconds(), 0).single().unwrap_or(now);
    // Judge as of the landing time: "ends in the past" is about then, not now.
    let opts = CheckOptions { base: parent.map(|p| p.to_string()), head: Some(oid.to_string()), all: false, only: None, now: time };
    let report = match parent {
        Some(_) => run_check(repo_dir, &opts)?,
        None => run_check(repo_dir, &CheckOptions { base: None, head: Some(oid.to_string()), ..opts })?,
    };
    let message = c.message().unwrap_or("");
    let approved_by = approval::parse_trailers(message);
    let reviews = approval::reviews_from_trailers(&approved_by, &oid.to_string(), time);
    let mut excluded: BTreeSet<String> = landed_authors(&repo, &c)?;
    excluded.extend(report.requests.iter().filter(|r| r.change.needs_approval()).map(|r| r.requester.clone()));
    let requirements: Vec<Requirement> = report.required().into_iter().map(|(label, r)| Requirement { from: r.from, count: r.count, label }).collect();
    let groups = report.policy.group_members();
    let excluded: Vec<String> = excluded.into_iter().collect();
    let decision = approval::evaluate(&ApprovalInput {
        requirements: &requirements,
        groups: &groups,
        reviews: &reviews,
        head_commit: &oid.to_string(),
        excluded: &excluded,
    });
    Ok(LandingVerdict {
        commit: oid.to_string(),
        parent: parent.map(|p| p.to_string()),
        direct_push: c.parent_count() < 2 && approved_by.is_empty(),
        approved_by,
        excluded,
        decision,
        report,
    })
}

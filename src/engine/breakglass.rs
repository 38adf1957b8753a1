//! Break-glass reviews as git records them (SPEC "Break-glass"): a landing on
//! main reviews request `id` when its message, or the message of any commit
//! it brought to main (a merged review branch), carries the trailer
//! `Break-glass-review: <id>`. Its approvals are the landing's: the merge's
//! `Approved-by:` trailers in plain git, its PR's reviews on GitHub (the
//! caller's to read). Nobody who wrote a commit of the landing counts.
//! The ratification rule itself is [`crate::monitor::breakglass::ratification`].

use chrono::{DateTime, Utc};
use git2::{Oid, Repository};

use crate::git::{commit_time, landed_authors, landed_commits, pr_number, trailers};

/// A first-parent commit of main that reviews break-glass requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewLanding {
    pub commit: String,
    pub time: DateTime<Utc>,
    /// Request ids from `Break-glass-review:` trailers on the landing or any
    /// commit it brought in.
    pub requests: Vec<String>,
    /// `Approved-by:` trailers of the landing commit itself (lowercase).
    pub approved_by: Vec<String>,
    /// Authors and committers of what it landed (lowercase): never reviewers.
    pub authors: Vec<String>,
    /// The PR it names, for GitHub mode.
    pub pr: Option<u64>,
    /// Its first parent: the policies its reviewers are judged by.
    pub parent: Option<String>,
}

/// Review landings on main's first-parent chain from `main` back to `since`
/// (`None`: to the root), newest first.
pub fn review_landings(repo: &Repository, main: Oid, since: Option<DateTime<Utc>>) -> Result<Vec<ReviewLanding>, git2::Error> {
    let mut out = Vec::new();
    let mut c = repo.find_commit(main)?;
    loop {
        let time = commit_time(&c);
        if since.is_some_and(|s| time < s) {
            break;
        }
        let mut requests = trailers(c.message().unwrap_or(""), "Break-glass-review");
        if c.parent_count() > 1 {
            for oid in landed_commits(repo, &c)?.into_iter().skip(1) {
                let brought = repo.find_commit(oid)?;
                requests.extend(trailers(brought.message().unwrap_or(""), "Break-glass-review"));
            }
        }
        requests.sort();
        requests.dedup();
        if !requests.is_empty() {
            let summary = c.summary().ok().flatten().unwrap_or("").to_string();
            out.push(ReviewLanding {
                commit: c.id().to_string(),
                time,
                requests,
                approved_by: crate::approval::parse_trailers(c.message().unwrap_or("")).into_iter().map(|a| a.to_ascii_lowercase()).collect(),
                authors: landed_authors(repo, &c)?.into_iter().collect(),
                pr: pr_number(&summary),
                parent: c.parent_id(0).ok().map(|p| p.to_string()),
            });
        }
        match c.parent(0) {
            Ok(p) => c = p,
            Err(_) => break,
        }
    }
    Ok(out)
}

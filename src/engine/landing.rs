//! The verdict of one commit on main (a *landing*): judged exactly as
//! `check --base L^ --head L` judges it, at the time it was made, plus the
//! approvals it carried (plain git: its `Approved-by:` trailers; GitHub mode:
//! the reviews of the PR it merged, see `reconcile::desired`).
//!
//! Trust model: in plain-git mode, whoever can write to main can write
//! trailers, so main must be protected (only merges by a bot or the forge).
//! A commit that is not a merge and carries no trailers is a direct push,
//! and a direct push is never granted — not even a request whose tier needs
//! no approvals.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use git2::{Oid, Repository};
use serde::Serialize;

use super::facts::{LedgerPrint, counts_ledger};
use super::verdict::BasePolicies;
use super::verdict::{CheckError, CheckOptions, CheckReport, check_in};
use super::verdict_store::{Store, Stored};
use crate::approval::{self, ApprovalInput, Decision, Requirement};
use crate::diag::Diagnostic;
use crate::source::FsTree;

#[derive(Debug, Serialize)]
pub struct LandingVerdict {
    pub commit: String,
    pub parent: Option<String>,
    /// When it was committed: the `now` it was judged at.
    pub time: DateTime<Utc>,
    /// A non-merge commit without any `Approved-by` trailer.
    pub direct_push: bool,
    pub approved_by: Vec<String>,
    /// Logins that never count: requesters and the authors of the landed commits.
    pub excluded: Vec<String>,
    pub decision: Decision,
    #[serde(skip)]
    pub report: CheckReport,
}

impl LandingVerdict {
    /// The errors `check --base L^ --head L` reports.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.report.diagnostics.iter().filter(|d| d.is_error())
    }

    /// Why `check` fails this landing, in one line, or `None` if it passes.
    pub fn check_failure(&self) -> Option<String> {
        let errors: Vec<String> = self.errors().map(|d| format!("{} {}: {}", d.code.as_str(), d.file, d.message)).collect();
        if errors.is_empty() && self.report.status == super::verdict::Status::Ok {
            return None;
        }
        if errors.is_empty() {
            return Some("the repository could not be judged at this commit".to_string());
        }
        let more = if errors.len() > 3 { format!(" (and {} more)", errors.len() - 3) } else { String::new() };
        Some(format!("`check` fails at {}: {}{more}", crate::git::short(&self.commit), errors.iter().take(3).cloned().collect::<Vec<_>>().join("; ")))
    }

    /// Does the landing change anything that needs approval?
    pub fn needs_approval(&self) -> bool {
        self.report.policy_change.is_some() || self.report.requests.iter().any(|r| r.change.needs_approval())
    }

    /// Plain-git mode: why its trailers do not approve it, or `None`.
    pub fn approval_failure(&self) -> Option<String> {
        let short = crate::git::short(&self.commit);
        if self.direct_push && self.needs_approval() {
            let also = if self.decision.satisfied { String::new() } else { format!("; {}", self.decision.summary()) };
            return Some(format!(
                "was pushed directly to main without review (commit {short}; no merge, no Approved-by trailers): a direct push is never granted{also}"
            ));
        }
        if !self.decision.satisfied {
            return Some(format!("landed without the approvals its policy required (commit {short}): {}", self.decision.summary()));
        }
        None
    }

    /// Ids of the requests this landing added, changed or removed.
    pub fn touched(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.report.requests.iter().map(|r| r.id.clone()).collect();
        // Files that did not even parse still name a request (their stem).
        out.extend(
            self.errors()
                .filter(|d| crate::engine::rule_files::under(&d.file, crate::validate::request::REQUEST_DIR))
                .filter_map(|d| crate::validate::request::request_id(&d.file).map(str::to_string)),
        );
        out
    }
}

/// The approval slots a change needs: its request and policy-change rules.
pub fn requirements(report: &CheckReport) -> Vec<Requirement> {
    report.required().into_iter().map(|(label, r)| Requirement { from: r.from, count: r.count, label }).collect()
}

/// Who never counts as an approver of a change: the requester of every
/// request it asks for, the PR author (GitHub mode), and whoever wrote or
/// committed any of its commits. Lowercase, sorted, unique.
pub fn exclusions(report: &CheckReport, pr_author: Option<&str>, writers: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: BTreeSet<String> = report.requests.iter().filter(|r| r.change.needs_approval()).map(|r| r.requester.to_ascii_lowercase()).collect();
    out.extend(pr_author.map(str::to_ascii_lowercase));
    out.extend(writers.into_iter().map(|w| w.to_ascii_lowercase()));
    out.into_iter().collect()
}

/// The approval decision for `report` given `reviews` of `head` (trailers or
/// a PR's reviews), `groups` (policy members, plus GitHub teams for `gate`)
/// and who is `excluded`. The one call every mode makes.
pub fn decide(
    report: &CheckReport,
    groups: &std::collections::BTreeMap<String, BTreeSet<String>>,
    reviews: &[approval::Review],
    head: &str,
    excluded: &[String],
) -> Decision {
    let requirements = requirements(report);
    approval::evaluate(&ApprovalInput { requirements: &requirements, groups, reviews, head_commit: head, excluded })
}

/// Judges `commit` of `repo` (whose work tree is `repo_dir`) as it landed.
pub fn judge_landing_in(repo: &Repository, repo_dir: &Path, oid: Oid) -> Result<LandingVerdict, CheckError> {
    let c = repo.find_commit(oid)?;
    let parent = c.parent_id(0).ok();
    let time = crate::git::commit_time(&c);
    // Judge as of the landing time: "ends in the past" is about then, not now.
    let opts = CheckOptions { base: parent.map(|p| p.to_string()), head: Some(oid.to_string()), all: false, only: None, now: time };
    let report = check_in(Some(repo), &opts, &FsTree::new(repo_dir))?;
    landing_verdict(repo, &c, report)
}

/// The verdict of the landing `c` whose `check` report is `report`.
fn landing_verdict(repo: &Repository, c: &git2::Commit<'_>, report: CheckReport) -> Result<LandingVerdict, CheckError> {
    let oid = c.id();
    let parent = c.parent_id(0).ok();
    let time = crate::git::commit_time(c);
    let message = c.message().unwrap_or("");
    let approved_by = approval::parse_trailers(message);
    let reviews = approval::reviews_from_trailers(&approved_by, &oid.to_string(), time);
    let excluded = exclusions(&report, None, crate::git::landed_authors(repo, c)?);
    let decision = decide(&report, &report.policy.group_members(), &reviews, &oid.to_string(), &excluded);
    Ok(LandingVerdict {
        commit: oid.to_string(),
        parent: parent.map(|p| p.to_string()),
        time,
        direct_push: c.parent_count() < 2 && approved_by.is_empty(),
        approved_by,
        excluded,
        decision,
        report,
    })
}

/// Judges one landing commit (opening the repository; see [`Landings`] to
/// judge many).
pub fn judge_landing(repo_dir: &Path, commit: &str, _now: DateTime<Utc>) -> Result<LandingVerdict, CheckError> {
    let repo = crate::git::open(repo_dir)?;
    let oid = super::verdict::resolve(&repo, commit)?;
    judge_landing_in(&repo, repo_dir, oid)
}

/// Landing verdicts memoised by commit: for one run in memory, and between
/// runs in the [`Store`] beside the history index (an unchanged main costs
/// one file read). Landings not in the store are judged with one history
/// walked forward from landing to landing ([`crate::history::advance`]):
/// asked for in main's order (see [`Landings::prefetch`]), judging them all
/// is one walk of history, not one per landing.
pub struct Landings<'r> {
    repo: &'r Repository,
    dir: PathBuf,
    verdicts: HashMap<String, Result<LandingVerdict, String>>,
    store: Store,
    /// Main's history as of the parent of the last landing judged.
    walker: Option<crate::history::History>,
    policies: BasePolicies,
    ledger: Option<LedgerPrint>,
    judged: usize,
}

impl<'r> Landings<'r> {
    /// With this build's store of `repo` ([`Store::of`]).
    pub fn new(repo: &'r Repository, dir: &Path) -> Self {
        Self::with_store(repo, dir, Store::of(repo))
    }

    pub fn with_store(repo: &'r Repository, dir: &Path, store: Store) -> Self {
        Landings { repo, dir: dir.to_path_buf(), verdicts: HashMap::new(), store, walker: None, policies: BasePolicies::default(), ledger: None, judged: 0 }
    }

    /// The verdict of `commit` (a full id), or why it could not be judged.
    pub fn get(&mut self, commit: &str) -> Result<&LandingVerdict, &String> {
        let v = match self.verdicts.remove(commit) {
            Some(v) => v,
            None => self.load_or_judge(commit),
        };
        self.verdicts.entry(commit.to_string()).or_insert(v).as_ref()
    }

    /// Judges (or reads) the landings `commits` ((position on main, id)) in
    /// main's order, so that those not stored cost one walk of history.
    pub fn prefetch(&mut self, commits: impl IntoIterator<Item = (usize, String)>) {
        let mut commits: Vec<(usize, String)> = commits.into_iter().collect();
        commits.sort();
        commits.dedup();
        for (_, c) in commits {
            let _ = self.get(&c);
        }
    }

    /// How many landings this run judged (the rest came from the store).
    pub fn judged(&self) -> usize {
        self.judged
    }

    /// Writes the verdicts judged this run into the store.
    pub fn save(&mut self) {
        self.store.save();
    }

    pub fn repo(&self) -> &'r Repository {
        self.repo
    }

    fn ledger_at(&mut self, t: DateTime<Utc>) -> String {
        let repo = self.repo;
        self.ledger.get_or_insert_with(|| LedgerPrint::of(repo)).at(t)
    }

    fn load_or_judge(&mut self, commit: &str) -> Result<LandingVerdict, String> {
        if let Some(stored) = self.store.get(commit) {
            let ledger_holds = match &stored.ledger {
                None => true,
                Some(print) => *print == self.ledger_at(stored.time),
            };
            if ledger_holds
                && let Some(policy) = self.policies.policy_at(self.repo, &stored.policy_from)
                && let Some(v) = stored.into_verdict(policy)
                && v.commit == commit
            {
                return Ok(v);
            }
        }
        let oid = Oid::from_str(commit).map_err(|e| e.to_string())?;
        let mut v = self.judge(oid).map_err(|e| e.to_string())?;
        // No consumer of a landing verdict renders its files: not kept.
        v.report.sources.clear();
        self.judged += 1;
        if self.store.enabled() {
            let ledger = counts_ledger(&v.report.policy).then(|| self.ledger_at(v.time));
            let policy_from = v.parent.clone().unwrap_or_else(|| v.commit.clone());
            if let Some(s) = Stored::from_verdict(&v, ledger, policy_from) {
                self.store.put(&s);
            }
        }
        Ok(v)
    }

    fn judge(&mut self, oid: Oid) -> Result<LandingVerdict, CheckError> {
        let c = self.repo.find_commit(oid)?;
        let Ok(parent) = c.parent_id(0) else {
            // A root commit: judged as `check` judges it (the bootstrap).
            return judge_landing_in(self.repo, &self.dir, oid);
        };
        let mut history = crate::history::advance(self.repo, self.walker.take(), parent)?;
        let report = super::verdict::check_landing(self.repo, Some(parent), oid, crate::git::commit_time(&c), &mut history, &mut self.policies);
        self.walker = Some(history);
        landing_verdict(self.repo, &c, report?)
    }
}

impl Drop for Landings<'_> {
    fn drop(&mut self) {
        self.store.save();
    }
}

/// A GitHub login guessed from a git identity ([`crate::git::login_of`]).
pub use crate::git::login_of;

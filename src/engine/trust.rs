//! The chain of trust for rule files (SPEC "Approvals").
//!
//! The policies that judge every request must themselves have been approved.
//! The chain starts at the *trust root*: the first commit on main's
//! first-parent history that added `policies/` (or the commit an operator
//! pins with `--trust-root SHA` / `GITGRANT_TRUST_ROOT`). Every later
//! first-parent commit that changed a rule file ([`is_rule_file`]) must have
//! landed with the `policy_changes` approvals of the policies *before* it (its
//! first parent), judged by the same approval engine as requests
//! ([`crate::approval::evaluate`]: slots, one person one slot, the authors and
//! committers of the landed commits never count).
//!
//! Design choices:
//! - **Trusted content, not trusted commits.** The decision keeps, per rule
//!   file, the content it had after the last *approved* change (or at the
//!   root). An unapproved change leaves the files it touched *untrusted*
//!   until they are back to that content (a revert, which may land any way:
//!   restoring approved content can do no harm) or the root is pinned at or
//!   after it. An unapproved change is *in force* while any file it touched
//!   is untrusted.
//! - **No approval under untrusted rules.** While anything is untrusted, the
//!   policies before a change are not the approved ones (an unapproved change
//!   may have emptied `policy_changes`), so a change landed then counts as
//!   unapproved even with reviews, unless it restores approved content.
//!   Requests landed then are *tainted*: reconcile does not grant them
//!   (see [`TrustReport::tainted_base`]).
//! - **Cheap on long histories.** The walk compares the ids of the rule-file
//!   trees and blobs per first-parent commit (never blobs' content), diffs
//!   and judges only the commits where they changed, and judges each commit
//!   once per run. 100,000 commits cost one revwalk and one small tree read
//!   each.
//! - The decision ([`decide`]) is a pure function of the list of rule-change
//!   landings and their judgements, unit-tested as a table; the git walk and
//!   the GitHub look-ups only build that list.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{TimeZone, Utc};
use git2::{Oid, Repository};
use serde::Serialize;

use super::rule_files::{RULE_DIRS, RULE_FILES, is_rule_file};
use crate::approval::{self, ApprovalInput, Requirement};
use crate::diag::{Code, Diagnostic, Pos};
use crate::github::GitHubApi;
use crate::source::GitTree;
use crate::validate::policy::load_policy;

/// The environment variable that pins the trust root (as `--trust-root`).
pub const ENV_TRUST_ROOT: &str = "GITGRANT_TRUST_ROOT";

/// How a rule change landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Judgement {
    /// Carried the `policy_changes` approvals of the policies before it.
    Approved { approvers: Vec<String> },
    /// Did not; `missing` says what was missing, for people.
    Unapproved { missing: String },
}

/// One rule file a landing changed: its blob before and after (None: absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    pub path: String,
    #[serde(serialize_with = "ser_oid")]
    pub before: Option<Oid>,
    #[serde(serialize_with = "ser_oid")]
    pub after: Option<Oid>,
}

fn ser_oid<S: serde::Serializer>(o: &Option<Oid>, s: S) -> Result<S::Ok, S::Error> {
    match o {
        Some(o) => s.collect_str(o),
        None => s.serialize_none(),
    }
}

/// A first-parent commit after the root that changed rule files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleLanding {
    pub commit: String,
    /// Position on the first-parent history (0: the oldest commit).
    #[serde(skip)]
    pub position: usize,
    pub pr: Option<u64>,
    pub files: Vec<FileChange>,
    pub judgement: Judgement,
}

/// An unapproved rule change still in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InForce {
    pub commit: String,
    pub pr: Option<u64>,
    /// The files it changed that are still not back to approved content.
    pub files: Vec<String>,
    pub missing: String,
}

/// What [`decide`] concludes from the landings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Oldest first.
    pub in_force: Vec<InForce>,
    /// Per landing (same order): was anything untrusted right after it?
    pub untrusted_after: Vec<bool>,
}

fn short(id: &str) -> &str {
    id.get(..10).unwrap_or(id)
}

/// Text from file names, shown on one line whatever it holds.
fn shown(s: &str) -> String {
    s.escape_debug().to_string()
}

/// The pure decision over the rule-change landings after the root, oldest
/// first (see the module docs for the rules).
pub fn decide(landings: &[RuleLanding]) -> Decision {
    // Content of each rule file after the last approved change (or at the root).
    let mut trusted: BTreeMap<&str, Option<Oid>> = BTreeMap::new();
    // Untrusted files and the unapproved landings (indices) that made them so.
    let mut untrusted: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    let mut untrusted_after = Vec::with_capacity(landings.len());
    // Why a landing did not count: its own judgement or the rules it was judged by.
    let mut missing: BTreeMap<usize, String> = BTreeMap::new();
    for (i, l) in landings.iter().enumerate() {
        let under_untrusted = untrusted.values().flatten().min().copied();
        let approved = match (&l.judgement, under_untrusted) {
            (Judgement::Approved { .. }, None) => true,
            (Judgement::Approved { .. }, Some(u)) => {
                let by = landings.get(u).map_or("", |x| short(&x.commit));
                missing
                    .insert(i, format!("it landed while the unapproved rule change {by} was in force, so its approvals were judged by rules nobody approved"));
                false
            }
            (Judgement::Unapproved { missing: m }, _) => {
                missing.insert(i, m.clone());
                false
            }
        };
        for f in &l.files {
            // INVARIANT: every change to a rule file after the root is a landing,
            // so its content before the first one seen is the root's (trusted).
            let t = *trusted.entry(f.path.as_str()).or_insert(f.before);
            if approved {
                trusted.insert(f.path.as_str(), f.after);
                untrusted.remove(f.path.as_str());
            } else if f.after == t {
                untrusted.remove(f.path.as_str());
            } else {
                untrusted.entry(f.path.as_str()).or_default().insert(i);
            }
        }
        untrusted_after.push(!untrusted.is_empty());
    }
    let mut files_of: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (path, by) in &untrusted {
        for i in by {
            files_of.entry(*i).or_default().push((*path).to_string());
        }
    }
    let in_force = files_of
        .into_iter()
        .filter_map(|(i, files)| {
            let l = landings.get(i)?;
            Some(InForce { commit: l.commit.clone(), pr: l.pr, files, missing: missing.get(&i).cloned().unwrap_or_default() })
        })
        .collect();
    Decision { in_force, untrusted_after }
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("reading the repository for the chain of trust: {0}")]
    Git(#[from] git2::Error),
    #[error("--trust-root `{0}` is not a commit of this repository: {1}")]
    BadRoot(String, git2::Error),
    #[error("--trust-root `{root}` ({commit}) is not on main's first-parent history (from {tip}); pin a commit of main itself (`git log --first-parent main`)")]
    NotOnMain { root: String, commit: String, tip: String },
    #[error(
        "the change is judged by {tip}, which is older than the trust root `{root}`; update the branch with main (merge or rebase) so that it is judged by rules after the root"
    )]
    BeforeRoot { root: String, tip: String },
}

/// The chain of trust of one first-parent history.
#[derive(Debug, Clone, Serialize)]
pub struct TrustReport {
    /// The commit the history was walked from (main, or a PR's base).
    pub tip: String,
    /// The trust root; None when no commit has `policies/`.
    pub root: Option<String>,
    /// Whether the root was pinned (`--trust-root`) rather than found.
    pub pinned: bool,
    /// First-parent commits walked.
    pub commits: usize,
    /// Every rule change after the root, oldest first, with its judgement.
    pub landings: Vec<RuleLanding>,
    pub in_force: Vec<InForce>,
    /// Whether GitHub reviews (true) or `Approved-by:` trailers judged the landings.
    pub github: bool,
    /// First-parent position of every commit walked.
    #[serde(skip)]
    positions: HashMap<Oid, usize>,
    /// First-parent positions from which rules were untrusted, where that
    /// ended (exclusive), and the landing (index) that began it.
    #[serde(skip)]
    untrusted_spans: Vec<(usize, usize, usize)>,
}

impl TrustReport {
    /// Whether an unapproved rule change is in force at the tip.
    pub fn in_force(&self) -> bool {
        !self.in_force.is_empty()
    }

    /// When `base` (the first parent a request landing was judged by) had
    /// untrusted rules: the unapproved change that made them so. None for a
    /// trusted base, or a commit not on this history.
    pub fn tainted_base(&self, base: &str) -> Option<&RuleLanding> {
        let pos = *self.positions.get(&Oid::from_str(base).ok()?)?;
        let (_, _, origin) = self.untrusted_spans.iter().find(|(s, e, _)| *s <= pos && pos < *e)?;
        self.landings.get(*origin)
    }

    /// One line per unapproved change in force: commit, files, what was missing.
    pub fn describe(f: &InForce) -> String {
        let pr = f.pr.map(|n| format!(" (PR #{n})")).unwrap_or_default();
        let files: Vec<String> = f.files.iter().map(|p| shown(p)).collect();
        format!("unapproved rule change {}{pr} is in force: it changed {} and {}", short(&f.commit), files.join(", "), shown(&f.missing))
    }

    /// What to do about an unapproved change in force.
    pub fn fix(f: &InForce) -> String {
        format!(
            "revert it (restore {} to their content before {}), or land the change through a PR with the `policy_changes` approvals and then pin the trust root at that merge with `--trust-root SHA` (or {ENV_TRUST_ROOT}); see docs/src/chain-of-trust.md",
            f.files.iter().map(|p| shown(p)).collect::<Vec<_>>().join(", "),
            short(&f.commit)
        )
    }

    /// `check`'s diagnostics (GG310): errors, or warnings for a change that
    /// only touches rule files (the way out: a revert or a corrected policy).
    pub fn diagnostics(&self, rule_change_only: bool) -> Vec<Diagnostic> {
        self.in_force
            .iter()
            .map(|f| {
                // The name as shown (escaped): it may come from an attacker's push.
                let file = f.files.first().map_or_else(|| "policies".to_string(), |p| shown(p));
                let mut d = Diagnostic::new(Code::RuleChangeInForce, file, Pos::FILE, Self::describe(f))
                    .help(format!("nothing new is granted until then: {}", Self::fix(f)));
                if rule_change_only {
                    d.severity = crate::diag::Severity::Warning;
                }
                d
            })
            .collect()
    }

    /// `audit verify`'s findings: AV010 per unapproved rule change in force,
    /// AV011 per ledger grant whose landing was judged by untrusted rules.
    pub fn findings(&self, ledger: &crate::ledger::Ledger) -> Vec<crate::audit::verify::Finding> {
        use crate::audit::verify::Finding;
        let [(av010, n010, _), (av011, n011, _)] = crate::diag::AUDIT_TRUST else { return Vec::new() };
        let mut out: Vec<Finding> = self
            .in_force
            .iter()
            .map(|f| Finding {
                code: av010,
                name: n010,
                request: None,
                commit: Some(f.commit.clone()),
                detail: format!("{}; {}", Self::describe(f), Self::fix(f)),
            })
            .collect();
        let mut seen = BTreeSet::new();
        for e in ledger.entries.iter().filter(|e| e.action == "grant" && matches!(e.result.as_str(), "ok" | "observed")) {
            let Some(u) = e.base_commit.as_deref().and_then(|b| self.tainted_base(b)) else { continue };
            if !seen.insert((e.request.clone(), e.merge_commit.clone())) {
                continue;
            }
            out.push(Finding {
                code: av011,
                name: n011,
                request: Some(e.request.clone()),
                commit: e.merge_commit.clone(),
                detail: format!(
                    "granted at {}, but its landing was judged by rules that the unapproved change {} had altered; revoke it and land the request again through an approved PR",
                    e.time.to_rfc3339(),
                    short(&u.commit)
                ),
            });
        }
        out
    }

    /// One line for `audit verify`: the root and how it was chosen.
    pub fn root_line(&self) -> String {
        match &self.root {
            Some(r) if self.pinned => format!(
                "trust root: {r} (pinned); {} rule change(s) after it judged by {}",
                self.landings.len(),
                if self.github { "GitHub reviews" } else { "Approved-by trailers" }
            ),
            Some(r) => format!(
                "trust root: {r} (first commit with policies/; pin it: --trust-root {r}); {} rule change(s) after it judged by {}",
                self.landings.len(),
                if self.github { "GitHub reviews" } else { "Approved-by trailers" }
            ),
            None => "trust root: none (no commit on main has policies/)".to_string(),
        }
    }

    /// Turns the plan's new grants into refusals while a rule change is in
    /// force, and refuses new grants of requests whose landing was judged by
    /// untrusted rules. Keeps (already held) and revocations are untouched:
    /// fail closed, but destroy nothing.
    pub fn restrict_plan(&self, plan: &mut crate::reconcile::Plan) {
        use crate::reconcile::ActionKind;
        let frozen = self.in_force.first().map(|f| {
            format!(
                "{}: not granted while the unapproved rule change {} ({}) is in force; revert it, or land it through an approved PR and pin --trust-root",
                Code::RuleChangeInForce.as_str(),
                short(&f.commit),
                f.files.iter().map(|p| shown(p)).collect::<Vec<_>>().join(", ")
            )
        });
        let mut kept = Vec::with_capacity(plan.actions.len());
        for mut a in std::mem::take(&mut plan.actions) {
            if a.action != ActionKind::Grant {
                kept.push(a);
                continue;
            }
            let mut refuse = Vec::new();
            a.entitlements.retain(|e| {
                let why = match (&frozen, e.evidence.base_commit.as_deref().and_then(|b| self.tainted_base(b))) {
                    (Some(why), _) => Some(why.clone()),
                    (None, Some(u)) => Some(format!(
                        "{}: not granted: its landing {} was judged by rules changed without approval in {} (since reverted); land the request again through an approved PR",
                        Code::RuleChangeInForce.as_str(),
                        short(&e.evidence.landing_commit),
                        short(&u.commit)
                    )),
                    (None, None) => None,
                };
                match why {
                    Some(reason) => {
                        refuse.push(crate::reconcile::desired::Refusal {
                            request: e.request.clone(),
                            requester: e.requester.clone(),
                            role: e.role.clone(),
                            resources: e.resources.clone(),
                            commit: Some(e.evidence.landing_commit.clone()),
                            reason,
                        });
                        false
                    }
                    None => true,
                }
            });
            for r in refuse {
                if !plan.refused.iter().any(|x| x.request == r.request && x.reason == r.reason) {
                    plan.refused.push(r);
                }
            }
            if a.entitlements.is_empty() {
                continue;
            }
            let left: BTreeSet<String> = a.entitlements.iter().map(|e| e.request.clone()).collect();
            a.requests.retain(|r| left.contains(r));
            if let Some(first) = a.requests.first() {
                a.request.clone_from(first);
            }
            if let Some(spec) = &mut a.spec {
                spec.requests = left;
                spec.end = a.entitlements.iter().map(|e| e.window.end).max().unwrap_or(spec.end);
                a.end = Some(spec.end);
            }
            kept.push(a);
        }
        plan.actions = kept;
        plan.refused.sort_by(|a, b| a.request.cmp(&b.request));
        plan.rule_changes_in_force.clone_from(&self.in_force);
    }
}

/// The first-parent history from `tip`, oldest first.
fn first_parent(repo: &Repository, tip: Oid) -> Result<Vec<Oid>, git2::Error> {
    // Parent by parent through libgit2's object cache (a revwalk parses
    // every commit again): a check has just read these commits.
    let mut out = Vec::new();
    let mut c = repo.find_commit(tip)?;
    loop {
        out.push(c.id());
        if c.parent_count() == 0 {
            break;
        }
        c = c.parent(0)?;
    }
    out.reverse();
    Ok(out)
}

/// Every rule path a fingerprint covers: the rule directories, then the rule files.
fn rule_paths() -> impl Iterator<Item = &'static str> {
    RULE_DIRS.iter().chain(RULE_FILES).copied()
}

/// The ids of the rule paths, in [`rule_paths`] order, and of the directories
/// holding nested ones.
type Fingerprint = (Vec<Option<Oid>>, BTreeMap<&'static str, Option<Oid>>);

/// The ids of every rule path in `tree` (None: absent). Nested paths
/// (`docs/CODEOWNERS`) are looked up only when their directory changed.
fn fingerprint(tree: &git2::Tree, prev: Option<&Fingerprint>) -> Fingerprint {
    let mut ids = Vec::new();
    let mut dirs = BTreeMap::new();
    for (k, p) in rule_paths().enumerate() {
        let id = match p.rsplit_once('/') {
            None => tree.get_name(p).map(|e| e.id()),
            Some((dir, _)) => {
                let dir_id = tree.get_name(dir).map(|e| e.id());
                dirs.insert(dir, dir_id);
                match prev {
                    Some((pids, pdirs)) if pdirs.get(dir) == Some(&dir_id) => pids.get(k).copied().flatten(),
                    _ => tree.get_path(std::path::Path::new(p)).ok().map(|e| e.id()),
                }
            }
        };
        ids.push(id);
    }
    (ids, dirs)
}

/// The rule files `commit` changed against `parent`, with their blob ids.
fn rule_changes(repo: &Repository, parent: &git2::Tree, tree: &git2::Tree) -> Result<Vec<FileChange>, git2::Error> {
    let mut opts = git2::DiffOptions::new();
    for p in rule_paths() {
        opts.pathspec(p);
    }
    opts.include_typechange(true);
    let diff = repo.diff_tree_to_tree(Some(parent), Some(tree), Some(&mut opts))?;
    let id = |f: git2::DiffFile| (!f.id().is_zero()).then(|| f.id());
    let mut out: Vec<FileChange> = diff
        .deltas()
        .filter_map(|d| {
            let path = d.new_file().path().or(d.old_file().path())?.to_string_lossy().replace('\\', "/");
            is_rule_file(&path).then(|| FileChange { path, before: id(d.old_file()), after: id(d.new_file()) })
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path);
    Ok(out)
}

/// GitHub logins of the people who wrote or committed what `commit` brought
/// to main: for a merge, every commit it merged (and its own author); for
/// any other commit, itself. None of them may approve it.
pub fn landing_people(repo: &Repository, commit: &git2::Commit) -> Result<BTreeSet<String>, git2::Error> {
    use crate::check::landing::login_of;
    let mut out: BTreeSet<String> = login_of(&commit.author()).into_iter().collect();
    if commit.parent_count() > 1 {
        let mut walk = repo.revwalk()?;
        for p in commit.parent_ids().skip(1) {
            walk.push(p)?;
        }
        walk.hide(commit.parent_id(0)?)?;
        for oid in walk {
            let c = repo.find_commit(oid?)?;
            out.extend(login_of(&c.author()));
            out.extend(login_of(&c.committer()));
        }
    } else {
        out.extend(login_of(&commit.committer()));
    }
    Ok(out)
}

/// Judges one rule-change landing under the policies of its first parent.
async fn judge(repo: &Repository, commit: &git2::Commit<'_>, github: Option<&dyn GitHubApi>) -> Result<(Judgement, Option<u64>), TrustError> {
    let unapproved = |m: String| Judgement::Unapproved { missing: m };
    let summary = commit.summary().ok().flatten().unwrap_or("");
    let pr = crate::history::pr_number(summary);
    let parent = commit.parent(0)?;
    if let (Ok(a), Ok(b)) = (parent.tree(), commit.tree()) {
        let req = |t: &git2::Tree| t.get_name(crate::validate::request::REQUEST_DIR).map(|e| e.id());
        if req(&a) != req(&b) {
            return Ok((unapproved("it also changed requests/ (GG301): a rule change must land alone, so it counts as unapproved".into()), pr));
        }
    }
    let load = load_policy(&GitTree::new(repo, parent.id())?);
    if load.empty || load.diagnostics.has_errors() {
        return Ok((
            unapproved(format!("the policies before it ({}) are missing or invalid, so nothing could approve it", short(&parent.id().to_string()))),
            pr,
        ));
    }
    let policy = load.policy;
    let requirements: Vec<Requirement> =
        policy.policy_changes.iter().map(|r| Requirement { from: r.from.clone(), count: r.count, label: "rule change".to_string() }).collect();
    let groups = policy.group_members();
    let mut excluded: BTreeSet<String> = landing_people(repo, commit)?;
    let id = commit.id().to_string();
    let (reviews, head) = match github {
        None => {
            let approved_by = approval::parse_trailers(commit.message().unwrap_or(""));
            if commit.parent_count() < 2 && approved_by.is_empty() {
                return Ok((unapproved("it was pushed directly to main (no merge, no Approved-by trailers)".into()), pr));
            }
            let time = Utc.timestamp_opt(commit.time().seconds(), 0).single().unwrap_or_default();
            (approval::reviews_from_trailers(&approved_by, &id, time), id.clone())
        }
        Some(api) => {
            let Some(number) = pr else {
                return Ok((unapproved("it landed without a pull request (in GitHub mode every rule change lands through a reviewed PR)".into()), pr));
            };
            let p = match api.pull_request(number).await {
                Ok(p) => p,
                Err(e) => return Ok((unapproved(format!("its PR #{number} could not be read to verify its approvals: {e}")), pr)),
            };
            if !p.merged || p.merge_commit_sha.as_deref() != Some(id.as_str()) {
                return Ok((unapproved(format!("it names PR #{number}, but GitHub says that PR was not merged as this commit")), pr));
            }
            let reviews = match api.reviews(number).await {
                Ok(r) => r,
                Err(e) => return Ok((unapproved(format!("the reviews of PR #{number} could not be read: {e}")), pr)),
            };
            match api.commit_authors(number).await {
                Ok(people) => excluded.extend(people.iter().map(|l| l.to_ascii_lowercase())),
                Err(e) => return Ok((unapproved(format!("the commits of PR #{number} could not be listed (their authors cannot approve): {e}")), pr)),
            }
            excluded.insert(p.author.to_ascii_lowercase());
            (reviews, p.head_sha)
        }
    };
    let excluded: Vec<String> = excluded.into_iter().collect();
    let decision =
        approval::evaluate(&ApprovalInput { requirements: &requirements, groups: &groups, reviews: &reviews, head_commit: &head, excluded: &excluded });
    if decision.satisfied {
        let approvers = decision.slots.iter().filter_map(|s| s.filled_by.clone()).collect();
        return Ok((Judgement::Approved { approvers }, pr));
    }
    let how = match (github, pr) {
        (Some(_), Some(n)) => format!("PR #{n} was merged without the `policy_changes` approvals of the policies before it"),
        _ => "it landed without the `policy_changes` approvals of the policies before it".to_string(),
    };
    Ok((unapproved(format!("{how}: {}", decision.summary())), pr))
}

/// Walks the first-parent history from `tip`, finds (or checks the pinned)
/// root, judges every rule change after it and decides what is in force.
pub async fn evaluate(repo: &Repository, tip: Oid, pinned: Option<&str>, github: Option<&dyn GitHubApi>) -> Result<TrustReport, TrustError> {
    git2::opts::strict_hash_verification(false);
    let history = first_parent(repo, tip)?;
    let positions: HashMap<Oid, usize> = history.iter().enumerate().map(|(i, o)| (*o, i)).collect();
    let policies = rule_paths().position(|p| p == "policies").unwrap_or(0);
    let pinned_pos = match pinned.map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => {
            let oid = repo.revparse_single(p).and_then(|o| o.peel_to_commit()).map(|c| c.id()).map_err(|e| TrustError::BadRoot(p.to_string(), e))?;
            match positions.get(&oid) {
                Some(pos) => Some(*pos),
                // On main, after the commit this change is judged by (a PR based before the pin).
                None if crate::check::main_commit(repo).is_some_and(|m| first_parent(repo, m).is_ok_and(|h| h.contains(&oid)))
                    && repo.graph_descendant_of(oid, tip).unwrap_or(false) =>
                {
                    return Err(TrustError::BeforeRoot { root: p.to_string(), tip: tip.to_string() });
                }
                None => return Err(TrustError::NotOnMain { root: p.to_string(), commit: oid.to_string(), tip: tip.to_string() }),
            }
        }
        None => None,
    };
    let mut report = TrustReport {
        tip: tip.to_string(),
        root: None,
        pinned: pinned_pos.is_some(),
        commits: history.len(),
        landings: Vec::new(),
        in_force: Vec::new(),
        github: github.is_some(),
        positions: HashMap::new(),
        untrusted_spans: Vec::new(),
    };
    let mut prev: Option<Fingerprint> = None;
    let mut root = pinned_pos;
    let mut changed: Vec<usize> = Vec::new();
    for (i, oid) in history.iter().enumerate() {
        let c = repo.find_commit(*oid)?;
        let fp = fingerprint(&c.tree()?, prev.as_ref());
        match root {
            None if fp.0.get(policies).copied().flatten().is_some() => root = Some(i),
            Some(r) if i > r && prev.as_ref().is_some_and(|p| p.0 != fp.0) => changed.push(i),
            _ => {}
        }
        prev = Some(fp);
    }
    let Some(root) = root else { return Ok(report) };
    report.root = history.get(root).map(Oid::to_string);
    // Each commit judged once per run.
    let mut memo: HashMap<Oid, (Judgement, Option<u64>)> = HashMap::new();
    for i in changed {
        let (Some(oid), Some(parent_oid)) = (history.get(i), i.checked_sub(1).and_then(|p| history.get(p))) else { continue };
        let c = repo.find_commit(*oid)?;
        let files = rule_changes(repo, &repo.find_commit(*parent_oid)?.tree()?, &c.tree()?)?;
        if files.is_empty() {
            continue;
        }
        let (judgement, pr) = match memo.get(oid) {
            Some(j) => j.clone(),
            None => {
                let j = judge(repo, &c, github).await?;
                memo.insert(*oid, j.clone());
                j
            }
        };
        report.landings.push(RuleLanding { commit: oid.to_string(), position: i, pr, files, judgement });
    }
    let decision = decide(&report.landings);
    let mut start: Option<(usize, usize)> = None;
    for (k, (l, after)) in report.landings.iter().zip(&decision.untrusted_after).enumerate() {
        match (start, *after) {
            (None, true) => start = Some((l.position, k)),
            (Some((s, origin)), false) => {
                report.untrusted_spans.push((s, l.position, origin));
                start = None;
            }
            _ => {}
        }
    }
    if let Some((s, origin)) = start {
        report.untrusted_spans.push((s, usize::MAX, origin));
    }
    report.in_force = decision.in_force;
    report.positions = positions;
    Ok(report)
}

/// [`evaluate`] from main (as reconcile, plan and audit verify see it).
pub async fn evaluate_main(repo: &Repository, pinned: Option<&str>, github: Option<&dyn GitHubApi>) -> Result<Option<TrustReport>, TrustError> {
    match crate::check::main_commit(repo) {
        Some(main) => evaluate(repo, main, pinned, github).await.map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(n: u8) -> Option<Oid> {
        (n != 0).then(|| Oid::from_bytes(&[n; 20]).unwrap_or(Oid::ZERO_SHA1))
    }

    /// A landing at position `pos` changing `path` from blob `a` to blob `b` (0: absent).
    fn landing(pos: usize, changes: &[(&str, u8, u8)], approved: bool) -> RuleLanding {
        RuleLanding {
            commit: format!("c{pos:0>9}"),
            position: pos,
            pr: None,
            files: changes.iter().map(|(p, a, b)| FileChange { path: (*p).to_string(), before: oid(*a), after: oid(*b) }).collect(),
            judgement: if approved {
                Judgement::Approved { approvers: vec!["dave".into()] }
            } else {
                Judgement::Unapproved { missing: "pushed directly".into() }
            },
        }
    }

    const P: &str = "policies/risk.yaml";
    const T: &str = "templates/x.j2";
    const W: &str = ".github/workflows/x.yml";

    #[test]
    fn decision_table() {
        // (case, landings, commits in force with their files, untrusted after each)
        type Case = (&'static str, Vec<RuleLanding>, Vec<(usize, Vec<&'static str>)>, Vec<bool>);
        let cases: Vec<Case> = vec![
            ("nothing changed", vec![], vec![], vec![]),
            ("approved change", vec![landing(1, &[(P, 1, 2)], true)], vec![], vec![false]),
            ("direct push in force", vec![landing(1, &[(P, 1, 2)], false)], vec![(1, vec![P])], vec![true]),
            ("reverted by an approved PR", vec![landing(1, &[(P, 1, 2)], false), landing(2, &[(P, 2, 1)], true)], vec![], vec![true, false]),
            (
                "reverted by a direct push (approved content is harmless)",
                vec![landing(1, &[(P, 1, 2)], false), landing(2, &[(P, 2, 1)], false)],
                vec![],
                vec![true, false],
            ),
            (
                "a later approved change does not launder it",
                vec![landing(1, &[(P, 1, 2)], false), landing(2, &[(P, 2, 3)], true)],
                vec![(1, vec![P]), (2, vec![P])],
                vec![true, true],
            ),
            (
                "approved change under untrusted rules is untrusted too",
                vec![landing(1, &[(P, 1, 2)], false), landing(2, &[(T, 5, 6)], true)],
                vec![(1, vec![P]), (2, vec![T])],
                vec![true, true],
            ),
            (
                "partial revert keeps the rest in force",
                vec![landing(1, &[(P, 1, 2), (W, 0, 7)], false), landing(2, &[(P, 2, 1)], true)],
                vec![(1, vec![W])],
                vec![true, true],
            ),
            ("deleting an added workflow reverts it", vec![landing(1, &[(W, 0, 7)], false), landing(2, &[(W, 7, 0)], false)], vec![], vec![true, false]),
            (
                "approved after a revert counts again",
                vec![landing(1, &[(P, 1, 2)], false), landing(2, &[(P, 2, 1)], false), landing(3, &[(P, 1, 4)], true)],
                vec![],
                vec![true, false, false],
            ),
        ];
        for (name, landings, want, untrusted) in cases {
            let d = decide(&landings);
            let got: Vec<(usize, Vec<&str>)> = d
                .in_force
                .iter()
                .map(|f| {
                    let pos = landings.iter().find(|l| l.commit == f.commit).map_or(usize::MAX, |l| l.position);
                    (pos, f.files.iter().map(String::as_str).collect())
                })
                .collect();
            assert_eq!(got, want, "{name}");
            assert_eq!(d.untrusted_after, untrusted, "{name}");
        }
    }

    #[test]
    fn in_force_says_what_was_missing() {
        let d = decide(&[landing(1, &[(P, 1, 2)], false), landing(2, &[(T, 5, 6)], true)]);
        assert_eq!(d.in_force.first().map(|f| f.missing.as_str()), Some("pushed directly"));
        assert!(d.in_force.get(1).is_some_and(|f| f.missing.contains("landed while the unapproved rule change c000000001")), "{:?}", d.in_force);
    }
}

//! `simulate`: replay every request version that landed on main under the
//! policies at another ref (say a PR that raises a threshold) and compare
//! with the policies on main.
//!
//! Both sides are judged now, by the one engine, with the facts history gives
//! at each version's start: the only thing that differs between them is the
//! policies, so every difference shown is the proposed change's effect (the
//! policies that judged a request when it landed may have been others again).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use git2::{Oid, Repository};
use serde::Serialize;

use super::{Judgement, judge};
use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::{Change, CheckError, main_commit, resolve};
use crate::history::{Detail, EventKind, index_path, read_history_cached_with};
use crate::model::policy::Policy;
use crate::source::{GitTree, Tree};
use crate::validate::{RequestContext, load_policy, load_request};

#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// The branch whose history is replayed and whose policies are the
    /// baseline (default: main).
    pub base: Option<String>,
    /// The ref whose policies are simulated.
    pub policies: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error("the policies at `{0}` do not load ({1} error(s)); fix them first (`gitgrant check --head {0}` shows where)")]
    InvalidPolicies(String, usize, Vec<Diagnostic>, BTreeMap<String, String>),
    #[error("`{0}` has no policies/ to simulate")]
    NoPolicies(String),
}

impl From<git2::Error> for SimulateError {
    fn from(e: git2::Error) -> Self {
        SimulateError::Check(CheckError::from(e))
    }
}

/// One request version whose judgement changes.
#[derive(Debug, Clone, Serialize)]
pub struct Replayed {
    pub id: String,
    pub file: String,
    /// The main commit that landed this version.
    pub commit: String,
    pub landed: DateTime<Utc>,
    /// 1 for the first version of the id, 2 for its first edit, ...
    pub version: usize,
    pub change: Change,
    pub requester: String,
    pub role: String,
    pub resources: Vec<String>,
    pub changes: Vec<&'static str>,
    pub before: Judgement,
    pub after: Judgement,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierCount {
    /// A tier name, or `unscored` (unknown role, no window).
    pub tier: String,
    pub before: usize,
    pub after: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SimulateReport {
    /// The main commit replayed (and its policies: the baseline).
    pub base: String,
    /// The commit whose policies were simulated.
    pub policies: String,
    /// Request versions replayed.
    pub replayed: usize,
    pub changed: Vec<Replayed>,
    /// Versions per tier under each side (base tier order, then new tiers).
    pub tiers: Vec<TierCount>,
    /// Invalid versions under each side.
    pub invalid: TierCount,
}

fn policies_at(repo: &Repository, oid: Oid, name: &str) -> Result<Policy, SimulateError> {
    let tree = GitTree::new(repo, oid)?;
    let load = load_policy(&tree);
    if load.empty {
        return Err(SimulateError::NoPolicies(name.to_string()));
    }
    if load.diagnostics.has_errors() {
        let n = load.diagnostics.iter().filter(|d| d.is_error()).count();
        return Err(SimulateError::InvalidPolicies(name.to_string(), n, load.diagnostics.into_sorted(), load.sources));
    }
    Ok(load.policy)
}

pub fn simulate(repo_dir: &std::path::Path, opts: &SimulateOptions) -> Result<SimulateReport, SimulateError> {
    let repo = crate::git::open(repo_dir).map_err(CheckError::from)?;
    let base = match &opts.base {
        Some(b) => resolve(&repo, b)?,
        None => main_commit(&repo).ok_or_else(|| SimulateError::NoPolicies("main".into()))?,
    };
    let candidate = resolve(&repo, &opts.policies)?;
    let base_policy = policies_at(&repo, base, opts.base.as_deref().unwrap_or("main"))?;
    let head_policy = policies_at(&repo, candidate, &opts.policies)?;
    let (history, _) = read_history_cached_with(&repo, base, &index_path(&repo), Detail::Full)?;
    let known: BTreeSet<String> = history.requests.keys().cloned().collect();

    let mut trees: HashMap<usize, GitTree<'_>> = HashMap::new();
    let mut replayed = 0;
    let mut changed = Vec::new();
    let (mut before_tiers, mut after_tiers): (BTreeMap<String, usize>, BTreeMap<String, usize>) = Default::default();
    let mut invalid = TierCount { tier: "invalid".into(), before: 0, after: 0 };
    for record in history.requests.values() {
        let mut previous = None;
        let mut version = 0;
        for ev in &record.events {
            if ev.kind == EventKind::Removed {
                previous = None;
                continue;
            }
            let Some(info) = history.commits.get(ev.commit) else { continue };
            let tree: &GitTree<'_> = match trees.entry(ev.commit) {
                std::collections::hash_map::Entry::Occupied(t) => t.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => v.insert(GitTree::new(&repo, Oid::from_str(&info.id)?)?),
            };
            let mut sink = Diagnostics::default();
            // A version that never parsed was refused by check when it landed; nothing to replay.
            let Some(req) = tree.entry(&ev.path).and_then(|e| load_request(tree, &e, &mut sink)) else { continue };
            version += 1;
            let change = crate::engine::classify::change_of(&req, previous.as_ref(), record.landed);
            // As of its landing: "ends in the past" is about then.
            let ctx = RequestContext { now: info.time, default_start: record.landed, known_ids: &known, check_past: change.needs_approval() };
            let before = judge(&req, change, &base_policy, &history, &ctx);
            let after = judge(&req, change, &head_policy, &history, &ctx);
            replayed += 1;
            for (counts, j) in [(&mut before_tiers, &before), (&mut after_tiers, &after)] {
                *counts.entry(j.tier.clone().unwrap_or_else(|| "unscored".into())).or_default() += 1;
            }
            invalid.before += usize::from(!before.valid);
            invalid.after += usize::from(!after.valid);
            let changes = before.differences(&after);
            if !changes.is_empty() {
                changed.push(Replayed {
                    id: req.id.clone(),
                    file: req.file.clone(),
                    commit: info.id.clone(),
                    landed: info.time,
                    version,
                    change,
                    requester: req.requester.clone(),
                    role: req.role.clone(),
                    resources: req.resources.clone(),
                    changes,
                    before,
                    after,
                });
            }
            previous = Some(req);
        }
    }
    changed.sort_by(|a, b| (a.landed, &a.id, a.version).cmp(&(b.landed, &b.id, b.version)));
    let order = base_policy.tiers.iter().chain(&head_policy.tiers).map(|t| t.name.clone()).chain(["unscored".to_string()]);
    let mut seen = BTreeSet::new();
    let tiers = order
        .filter(|t| seen.insert(t.clone()))
        .map(|t| TierCount { before: before_tiers.get(&t).copied().unwrap_or(0), after: after_tiers.get(&t).copied().unwrap_or(0), tier: t })
        .filter(|c| c.tier != "unscored" || c.before + c.after > 0)
        .collect();
    Ok(SimulateReport { base: base.to_string(), policies: candidate.to_string(), replayed, changed, tiers, invalid })
}

//! Desired state: which accesses should exist at time `at`, read from the
//! main branch alone.
//!
//! A request is desired when it is in main's tree under an id no other file
//! uses, its window (start defaulting to when it landed) contains `at`, the
//! landing that approved the current content *of its file* passes every rule
//! `check` applies there and carried the approvals it needed (re-judged here
//! by the engine, never trusted from CI; see [`crate::engine::files`]), and
//! it still passes every rule of the **current** policies (a requester
//! removed from a group loses pending and active access). Everything else
//! that was asked for is reported as refused.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::landing::{LandingVerdict, Landings};
use crate::engine::{CheckError, RequestOutcome, files};
use crate::git::{main_commit, short};
use crate::github::GitHubApi;
use crate::history::{History, read_history_cached};
use crate::ledger::Approver;
use crate::model::policy::{Policy, ProviderKind};
use crate::model::request::{Request, Window};
use crate::source::{GitTree, Tree};
use crate::validate::policy::load_policy;
use crate::validate::request::{REQUEST_DIR, is_ignorable};
use crate::validate::request::{RequestContext, load_request, request_id, validate_request};

/// Why a request got what it got: recorded in the ledger with every grant.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evidence {
    /// The commit that landed the approved version.
    pub landing_commit: String,
    /// Its first parent: the policies that judged it.
    pub base_commit: Option<String>,
    pub approvers: Vec<Approver>,
    pub pr: Option<u64>,
    pub risk_score: Option<i64>,
    pub tier: Option<String>,
    /// The factors behind the score, so an auditor can replay the decision.
    pub risk_factors: Vec<crate::ledger::RiskFactor>,
}

/// One (request, resource) pair that should be granted now.
#[derive(Debug, Clone, Serialize)]
pub struct Entitlement {
    pub request: String,
    pub requester: String,
    pub role: String,
    pub resources: Vec<String>,
    pub resource: String,
    pub provider: ProviderKind,
    pub principal: String,
    pub window: Window,
    pub break_glass: bool,
    /// The role's grant for this provider, as written in policies/.
    pub grant: serde_json::Value,
    /// The rendered policy document, for providers whose grant names a template.
    pub document: Option<String>,
    pub evidence: Evidence,
}

/// A request on main that is not granted, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub request: String,
    pub requester: String,
    pub role: String,
    pub resources: Vec<String>,
    /// The landing commit that was judged, when the refusal is about approvals.
    pub commit: Option<String>,
    pub reason: String,
}

/// An approved version of a request on main: the landing that added or
/// changed its file and passed verification (check and approvals). Kept for
/// requests granted now and for those whose window starts later (these only
/// when the file changed within [`crate::notify::stream::HORIZON_HOURS`]).
#[derive(Debug, Clone, Serialize)]
pub struct Landing {
    pub request: String,
    pub requester: String,
    pub role: String,
    pub resources: Vec<String>,
    /// When the landing commit was made.
    pub time: DateTime<Utc>,
    /// The end of the window it asks for.
    pub end: DateTime<Utc>,
    pub evidence: Evidence,
}

#[derive(Debug)]
pub struct Desired {
    pub at: DateTime<Utc>,
    pub main: String,
    pub policy: Policy,
    pub history: History,
    pub entitlements: Vec<Entitlement>,
    pub refused: Vec<Refusal>,
    /// Approved-or-not-yet-judged requests whose window starts later.
    pub upcoming: Vec<(String, Window)>,
    /// The verified landings of the requests above (granted or upcoming).
    pub landed: Vec<Landing>,
    /// The ledger as read once for this run (empty when absent or corrupt:
    /// reconcile itself refuses a corrupt ledger before changing anything).
    pub ledger: crate::ledger::Ledger,
}

#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error("the repository has no main branch (looked for refs/heads/main, origin/main, master)")]
    NoMain,
    #[error("the policies on main are invalid; nothing was changed. Fix them first (`gitgrant check --all`)")]
    InvalidPolicy(Vec<Diagnostic>),
    #[error("reading history: {0}")]
    Git(#[from] git2::Error),
    #[error("reading files: {0}")]
    Tree(#[from] crate::source::TreeError),
}

/// Computes the desired state of main at `at`. With `github`, landings are
/// judged by the PR's reviews on GitHub; without, by `Approved-by:` trailers.
pub async fn desired_state(repo_dir: &Path, at: DateTime<Utc>, github: Option<&dyn GitHubApi>) -> Result<Desired, DesiredError> {
    let repo = crate::git::open(repo_dir).map_err(CheckError::from)?;
    let main = main_commit(&repo).ok_or(DesiredError::NoMain)?;
    let tree = GitTree::new(&repo, main)?;
    let load = load_policy(&tree);
    if load.diagnostics.has_errors() || load.empty {
        return Err(DesiredError::InvalidPolicy(load.diagnostics.into_sorted()));
    }
    let policy = load.policy;
    let (history, _) = read_history_cached(&repo, main, &crate::history::index_path(&repo))?;
    let known_ids: BTreeSet<String> = history.requests.keys().cloned().collect();

    let ledger = crate::ledger::Ledger::read(&repo).unwrap_or_default();
    // Revocations that hold (revoke --now, monitor, unratified break-glass).
    let holds = ledger.sticky_revocations();
    let mut out = Desired {
        at,
        main: main.to_string(),
        policy,
        history,
        entitlements: Vec::new(),
        refused: Vec::new(),
        upcoming: Vec::new(),
        landed: Vec::new(),
        ledger,
    };
    let mut landings = Landings::new(&repo, repo_dir);
    let entries = tree.list(REQUEST_DIR)?;
    let duplicates = files::duplicate_ids(&entries);
    // The landings the loop below judges, ahead and in main's order: those
    // not stored from an earlier run then cost one walk of history.
    let active = entries.iter().filter(|e| {
        let Some(rec) = request_id(&e.path).filter(|id| !duplicates.contains_key(*id)).and_then(|id| out.history.requests.get(id)) else { return false };
        rec.latest.as_ref().and_then(|v| v.window(rec.landed)).is_some_and(|w| w.contains(at))
    });
    let wanted: Vec<(usize, String)> = active.flat_map(|e| files::candidate_landings(&out.history, &e.path)).collect();
    landings.prefetch(wanted);
    for entry in &entries {
        let mut sink = Diagnostics::default();
        let Some(id) = request_id(&entry.path) else {
            if !is_ignorable(&entry.path) {
                out.refused.push(Refusal {
                    request: entry.path.clone(),
                    requester: String::new(),
                    role: String::new(),
                    resources: Vec::new(),
                    commit: None,
                    reason: format!("`{}` is not a valid request id (GG011: `[a-z0-9][a-z0-9._-]{{2,79}}`); never granted", entry.path),
                });
            }
            continue;
        };
        let Some(req) = load_request(&tree, entry, &mut sink) else { continue };
        let refuse = |reason: String, commit: Option<String>| Refusal {
            request: req.id.clone(),
            requester: req.requester.clone(),
            role: req.role.clone(),
            resources: req.resources.clone(),
            commit,
            reason,
        };
        if !crate::validate::request::valid_id(id) {
            out.refused.push(refuse(format!("`{}` is not a valid request id (GG011: `[a-z0-9][a-z0-9._-]{{2,79}}`); never granted", entry.path), None));
            continue;
        }
        if let Some(paths) = duplicates.get(id) {
            out.refused.push(refuse(
                format!("request id `{id}` is used by {} files on main ({}): GG012, none of them is granted", paths.len(), paths.join(", ")),
                None,
            ));
            continue;
        }
        let Some(record) = out.history.requests.get(id) else { continue };
        let Some(window) = req.window(record.landed) else { continue };
        if window.end <= at {
            continue;
        }
        let landing = |evidence: &Evidence| Landing {
            request: req.id.clone(),
            requester: req.requester.clone(),
            role: req.role.clone(),
            resources: req.resources.clone(),
            time: crate::git::time_of(&repo, &evidence.landing_commit).unwrap_or(record.landed),
            end: window.end,
            evidence: evidence.clone(),
        };
        if window.start > at {
            out.upcoming.push((req.id.clone(), window));
            // Judged early only to announce a recent landing (its approvals
            // are judged again, and refusals reported, once the window opens).
            let horizon = at - chrono::Duration::hours(crate::notify::stream::HORIZON_HOURS);
            if record.windows.last().is_some_and(|(changed, _)| *changed >= horizon)
                && let Ok(evidence) = verify_landing(&out.history, &mut landings, &entry.path, github).await
            {
                out.landed.push(landing(&evidence));
            }
            continue;
        }
        // 1. The landing that approved this file's content, judged again from git.
        let evidence = match verify_landing(&out.history, &mut landings, &entry.path, github).await {
            Ok(e) => e,
            Err((reason, commit)) => {
                out.refused.push(refuse(reason, commit));
                continue;
            }
        };
        let landed = landing(&evidence);
        let landed_at = landed.time;
        out.landed.push(landed);
        // 2. Every rule of the current policies (eligibility may have been withdrawn).
        let mut d = Diagnostics::default();
        let ctx = RequestContext { now: at, default_start: record.landed, known_ids: &known_ids, check_past: false };
        validate_request(&req, &out.policy, &ctx, &mut d);
        let errors: Vec<String> = d.iter().filter(|x| x.is_error()).map(|x| format!("{} {}", x.code.as_str(), x.message)).collect();
        if !errors.is_empty() {
            out.refused.push(refuse(format!("no longer allowed by the current policies on main: {}", errors.join("; ")), None));
            continue;
        }
        // 3. Held revocations and break-glass ratification.
        if let Some(t) = holds.get(&req.id).filter(|t| **t >= landed_at) {
            out.refused.push(refuse(
                format!(
                    "revoked at {} with a hold (`gitgrant revoke --immediately` or a monitor rule; see the ledger); not granted again while this version is on main. Merge the removal of `{}`",
                    crate::model::stamp(t),
                    req.file
                ),
                None,
            ));
            continue;
        }
        if req.break_glass && out.policy.break_glass.is_some() {
            // The review is after the fact: its window opens when access began.
            let began = window.start.max(landed_at);
            let reviews = crate::monitor::breakglass::review_commits(&repo, main, landed_at, github).await?;
            if let crate::monitor::breakglass::Ratification::Overdue { due } =
                crate::monitor::breakglass::ratification(&req.id, &req.requester, true, began, &out.policy, &reviews, at)
            {
                out.refused.push(refuse(crate::monitor::breakglass::overdue_reason(&req.id, due, &out.policy), None));
                continue;
            }
        }
        match entitlements(&req, window, &out.policy, &evidence, at) {
            Ok(mut e) => out.entitlements.append(&mut e),
            Err(reason) => out.refused.push(refuse(reason, None)),
        }
    }
    Ok(out)
}

/// Finds the landing that approved the current content of the file at
/// `path` (the engine's walk, [`files::approving_landing`]) and judges its
/// approvals: its trailers, or in GitHub mode its PR's reviews.
async fn verify_landing(
    history: &History,
    landings: &mut Landings<'_>,
    path: &str,
    github: Option<&dyn GitHubApi>,
) -> Result<Evidence, (String, Option<String>)> {
    let (idx, commit_id) = files::approving_landing(history, landings, path).map_err(|r| (r.reason, r.commit))?;
    let Some(commit) = history.commits.get(idx) else {
        return Err(("not found in main's history".into(), None));
    };
    let verdict = landings.get(&commit_id).map_err(|e| (e.clone(), Some(commit_id.clone())))?;
    let Some(outcome) = files::outcome_at(verdict, path) else {
        return Err((format!("landing {} did not judge `{path}`", short(&commit_id)), Some(commit_id.clone())));
    };
    if let Some(api) = github {
        return verify_on_github(api, verdict, commit, outcome).await.map_err(|reason| (reason, Some(commit.id.clone())));
    }
    if let Some(why) = verdict.approval_failure() {
        return Err((why, Some(commit.id.clone())));
    }
    let approvers = verdict.decision.slots.iter().flat_map(|s| s.filled_by.iter()).map(|l| Approver { login: l.clone(), commit: commit.id.clone() }).collect();
    Ok(Evidence {
        landing_commit: commit.id.clone(),
        base_commit: verdict.parent.clone(),
        approvers,
        pr: commit.pr,
        risk_score: outcome.risk.as_ref().map(|r| r.score),
        tier: outcome.risk.as_ref().map(|r| r.tier.clone()),
        risk_factors: risk_factors(outcome),
    })
}

/// GitHub mode: the landing commit must be the merge commit of a merged PR,
/// and that PR's reviews (latest per reviewer, approving its final head)
/// must fill what the base policies required. Trailers count for nothing
/// here: anyone who can push can write them.
async fn verify_on_github(
    api: &dyn GitHubApi,
    verdict: &LandingVerdict,
    commit: &crate::history::CommitInfo,
    outcome: &RequestOutcome,
) -> Result<Evidence, String> {
    let Some(number) = commit.pr else {
        return Err(format!("landed in {} without a pull request; in GitHub mode every request lands through a reviewed PR", short(&commit.id)));
    };
    let pr = api.pull_request(number).await.map_err(|e| format!("cannot read PR #{number} to verify its approvals: {e}"))?;
    if !pr.merged || pr.merge_commit_sha.as_deref() != Some(commit.id.as_str()) {
        return Err(format!(
            "commit {} names PR #{number}, but GitHub says that PR {}",
            short(&commit.id),
            match &pr.merge_commit_sha {
                Some(m) if pr.merged => format!("was merged as {}", short(m)),
                _ => "is not merged".to_string(),
            }
        ));
    }
    let reviews = api.reviews(number).await.map_err(|e| format!("cannot read the reviews of PR #{number}: {e}"))?;
    let committers = api.commit_authors(number).await.map_err(|e| format!("cannot list the commits of PR #{number} (their authors cannot approve): {e}"))?;
    // The landing's own writers (read from git, every commit) and GitHub's list.
    let writers = verdict.excluded.iter().cloned().chain(committers);
    let excluded = crate::engine::landing::exclusions(&verdict.report, Some(&pr.author), writers);
    let decision = crate::engine::landing::decide(&verdict.report, &verdict.report.policy.group_members(), &reviews, &pr.head_sha, &excluded);
    if !decision.satisfied {
        return Err(format!("PR #{number} was merged without the approvals its policy required: {}", decision.summary()));
    }
    Ok(Evidence {
        landing_commit: commit.id.clone(),
        base_commit: verdict.parent.clone(),
        approvers: decision.slots.iter().filter_map(|s| s.filled_by.clone()).map(|login| Approver { login, commit: pr.head_sha.clone() }).collect(),
        pr: Some(number),
        risk_score: outcome.risk.as_ref().map(|r| r.score),
        tier: outcome.risk.as_ref().map(|r| r.tier.clone()),
        risk_factors: risk_factors(outcome),
    })
}

fn risk_factors(outcome: &RequestOutcome) -> Vec<crate::ledger::RiskFactor> {
    outcome.risk.iter().flat_map(|r| r.factors.iter().map(crate::ledger::RiskFactor::from)).collect()
}

/// The request resolved to one entitlement per resource.
fn entitlements(req: &Request, window: Window, policy: &Policy, evidence: &Evidence, at: DateTime<Utc>) -> Result<Vec<Entitlement>, String> {
    let role = policy.roles.get(&req.role).ok_or_else(|| format!("unknown role `{}`", req.role))?;
    let grants = serde_json::to_value(&role.grants).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for name in &req.resources {
        let res = policy.resources.get(name).ok_or_else(|| format!("unknown resource `{name}`"))?;
        let (principal, key) = crate::engine::grant::principal_key(policy, &req.requester, name)?;
        let grant = grants.get(res.provider.as_str().replace('-', "_")).cloned().unwrap_or(serde_json::Value::Null);
        let document = match grant.get("policy_template").and_then(|t| t.as_str()) {
            Some(t) => Some(render_document(policy, t, req, name, &principal, window, at)?),
            None => None,
        };
        out.push(Entitlement {
            request: req.id.clone(),
            requester: req.requester.clone(),
            role: req.role.clone(),
            resources: req.resources.clone(),
            resource: name.clone(),
            provider: res.provider,
            // Compared with what the provider lists: an IAM ARN without its path.
            principal: key,
            window,
            break_glass: req.break_glass,
            grant,
            document,
            evidence: evidence.clone(),
        });
    }
    Ok(out)
}

/// Renders a role's policy template. The context holds identifiers only
/// (never the free-text reason), and `.json.j2` templates escape as JSON.
fn render_document(
    policy: &Policy,
    template: &str,
    req: &Request,
    resource: &str,
    principal: &str,
    window: Window,
    at: DateTime<Utc>,
) -> Result<String, String> {
    let source = policy.templates.get(template).ok_or_else(|| format!("template `templates/{template}` is missing on main"))?;
    let mut env = crate::render::environment();
    env.add_template_owned(template.to_string(), source.clone()).map_err(|e| format!("template `templates/{template}`: {e}"))?;
    let config = policy.resources.get(resource).map(|r| r.config.clone()).unwrap_or_default();
    let ctx = minijinja::context! {
        request => minijinja::context! { id => &req.id, requester => &req.requester, role => &req.role, ticket => req.ticket.clone(), break_glass => req.break_glass },
        principal => principal,
        resource => minijinja::context! { name => resource, config => minijinja::value::Serde(&config) },
        start => window.start.to_rfc3339(),
        end => window.end.to_rfc3339(),
        now => at.to_rfc3339(),
    };
    let text = env.get_template(template).and_then(|t| t.render(ctx)).map_err(|e| format!("template `templates/{template}`: {e}"))?;
    serde_json::from_str::<serde_json::Value>(&text).map_err(|e| format!("template `templates/{template}` did not render valid JSON: {e}"))?;
    Ok(text)
}

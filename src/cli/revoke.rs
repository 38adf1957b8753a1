//! `gitgrant revoke`: early revocation; `--immediately` also revokes at the providers.
//!
//! The durable revocation is always the removal of the request file from
//! main. This command prepares it as a commit on a new branch
//! (`gitgrant/revoke-<id>`, parent: main; the work tree is never touched)
//! and, with a GitHub token, pushes the branch and opens the PR.
//! `--immediately` also revokes at the providers at once and records a *sticky* `revoke` in
//! the ledger, so reconcile does not grant the request again while its file
//! is still on main.

use git2::Repository;

use super::{Format, Global, fail};
use crate::check::main_commit;
use crate::diag::Diagnostics;
use crate::ledger;
use crate::monitor::{RequestMeta, Revocation, revocation_entries, revoke_request};
use crate::render::escape::{self, human};
use crate::source::{GitTree, Tree};
use crate::validate::policy::load_policy;
use crate::validate::request::{REQUEST_DIR, load_request, request_id};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Without `--immediately`, access ends when the removal is merged and reconcile runs.\n\nExamples:\n  gitgrant revoke 2026-11-23-alice-orders-db --immediately --reason \"INC-4211 closed\"\n  gitgrant revoke 2026-11-23-alice-orders-db            # only prepare the removal PR"
)]
pub struct Args {
    /// The request id (file stem) or its path.
    pub request: String,
    /// Also revoke at the providers now, and record it (a sticky revoke in the ledger).
    #[arg(long)]
    pub immediately: bool,
    /// Why, recorded in the ledger and the follow-up PR.
    #[arg(long, default_value = "early revocation")]
    pub reason: String,
    /// The remote to push the follow-up branch (and the ledger) to.
    #[arg(long, default_value = "origin")]
    pub remote: String,
    /// The branch the follow-up PR targets.
    #[arg(long, default_value = "main")]
    pub base: String,
    /// Prepare the removal branch only: do not push it or open a PR.
    #[arg(long)]
    pub no_pr: bool,
    /// The repository on GitHub for the follow-up PR (default: $GITHUB_REPOSITORY).
    #[arg(long, value_name = "OWNER/NAME")]
    pub github_repo: Option<String>,
}

pub fn run(g: &Global, a: Args) -> u8 {
    // Acts on what it reads: only its own walk, never the travelling index.
    crate::history::travel::distrust();
    let now_mode = a.immediately;
    // With `--format json`, stdout holds only the JSON document.
    let json = g.format == Format::Json;
    // Lines for people; the values in them are escaped where they are formatted.
    let say = |line: String| if json { eprintln!("{line}") } else { println!("{line}") };
    let at = g.now;
    let id = a.request.rsplit('/').next().unwrap_or(&a.request).trim_end_matches(".yaml").to_string();
    let repo = match Repository::open(&g.repo) {
        Ok(r) => r,
        Err(e) => return fail(format!("`{}` is not a git repository: {e}", g.repo.display())),
    };
    let Some(main) = main_commit(&repo) else { return fail("the repository has no main branch (looked for refs/heads/main, origin/main, master)") };
    let tree = match GitTree::new(&repo, main) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let entries = match tree.list(REQUEST_DIR) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let Some(entry) = entries.into_iter().find(|e| request_id(&e.path) == Some(id.as_str())) else {
        return fail(format!("request `{id}` is not on main; nothing to revoke (`gitgrant audit` shows past requests)"));
    };
    let mut sink = Diagnostics::default();
    let Some(req) = load_request(&tree, &entry, &mut sink) else {
        return fail(format!("{}: the request on main does not parse; remove the file in a PR", entry.path));
    };
    let load = load_policy(&tree);
    let mut failed = false;
    let mut revocations: Vec<Revocation> = Vec::new();
    if now_mode {
        let args = super::reconcile::LedgerArgs { no_ledger: false, remote: a.remote.clone(), lock_wait: 60, lock_stale: 3600 };
        let (repo, mut ledger, _lock) = match super::reconcile::open_for_run(g, &args, "revoke --now", 2) {
            Ok(x) => x,
            Err(code) => return code,
        };
        let rt = match super::runtime() {
            Ok(rt) => rt,
            Err(code) => return code,
        };
        revocations = rt.block_on(revoke_request(&g.repo, &load.policy, &id, &req.resources, at));
        let meta = RequestMeta { request: id.clone(), requester: req.requester.clone(), role: req.role.clone(), resources: req.resources.clone() };
        let actor = repo.signature().ok().and_then(|s| s.name().ok().map(str::to_string)).unwrap_or_else(|| "unknown".into());
        let detail = format!("emergency revoke (`gitgrant revoke --immediately`) by {actor}: {}", a.reason);
        let entries = revocation_entries(&meta, &revocations, &detail, at);
        let summary = format!("gitgrant revoke --immediately {id} at {}", crate::model::stamp(&at));
        if let Err(e) = ledger.record(&repo, &entries, &summary, &a.remote) {
            eprintln!("error: the ledger: {}", human(&e.to_string()));
            failed = true;
        }
        for r in &revocations {
            match &r.error {
                None if !r.shared_with.is_empty() => say(format!(
                    "revoked {} {} {} {} ({}); it was shared with {}, which lost it too: run `gitgrant reconcile` to grant it back for them (recorded)",
                    r.provider,
                    human(&r.resource),
                    human(&r.principal),
                    human(&r.access),
                    human(&id),
                    human(&r.shared_with.join(", "))
                )),
                None => say(format!("revoked {} {} {} {} ({})", r.provider, human(&r.resource), human(&r.principal), human(&r.access), human(&id))),
                Some(e) => {
                    eprintln!("error: revoking {} at {} {} failed: {}", human(&id), r.provider, human(&r.resource), human(e));
                    failed = true;
                }
            }
        }
        if revocations.is_empty() {
            say(format!("nothing was held at the providers for {}; the revocation is recorded, so reconcile will not grant it", human(&id)));
        }
        say(format!("ledger: revocation recorded on `{}`; reconcile will not grant {} again while its file is on main", ledger::BRANCH, human(&id)));
    }
    // The durable part: the removal of the file, as a branch to merge.
    let branch = format!("gitgrant/revoke-{id}");
    let message = format!(
        "Revoke {id} early\n\nRemoves {} ({}).{}\n",
        entry.path,
        a.reason,
        if now_mode { " Access was already revoked at the providers with `gitgrant revoke --immediately`." } else { "" }
    );
    if let Err(e) = removal_commit(&repo, main, &entry.path, &branch, &message) {
        eprintln!("error: preparing the removal branch `{}`: {}", human(&branch), human(&e.to_string()));
        return if now_mode { 1 } else { 2 };
    }
    let pr = if a.no_pr { Ok(None) } else { open_pr(g, &a, &branch, &id, &message) };
    let (path, shown_branch, base, remote) = (human(&entry.path), human(&branch), human(&a.base), human(&a.remote));
    let follow_up = match pr {
        Ok(Some(url)) => format!("follow-up: merge {} (removes {path})", human(&url)),
        Ok(None) => format!(
            "follow-up: branch `{shown_branch}` removes {path}; push it and merge it into {base}:\n  git push {remote} {shown_branch}\n  then open a PR from `{shown_branch}` (or merge it locally: git merge {shown_branch})"
        ),
        Err(e) => {
            eprintln!("error: {}", human(&e));
            failed = true;
            format!("follow-up: branch `{shown_branch}` removes {path}; push it and open a PR into {base} yourself")
        }
    };
    say(follow_up.clone());
    if json {
        let doc = serde_json::json!({ "request": id, "now": now_mode, "revocations": revocations, "branch": branch, "follow_up": follow_up });
        match escape::json_line(&doc) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(e),
        }
    }
    u8::from(failed)
}

/// A commit on `branch` (parent: main) whose tree is main's without `path`.
fn removal_commit(repo: &Repository, main: git2::Oid, path: &str, branch: &str, message: &str) -> Result<git2::Oid, git2::Error> {
    let parent = repo.find_commit(main)?;
    let tree = parent.tree()?;
    let new_tree = git2::build::TreeUpdateBuilder::new().remove(path).create_updated(repo, &tree)?;
    let new_tree = repo.find_tree(new_tree)?;
    let sig = match repo.signature() {
        Ok(s) => s.to_owned(),
        Err(_) => git2::Signature::now("gitgrant", "gitgrant@localhost")?,
    };
    let oid = repo.commit(None, &sig, &sig, message, &new_tree, &[&parent])?;
    repo.reference(&format!("refs/heads/{branch}"), oid, true, "gitgrant revoke: removal of the request")?;
    Ok(oid)
}

/// With a GitHub token: pushes the branch and opens the PR; `None` without a token.
fn open_pr(g: &Global, a: &Args, branch: &str, id: &str, message: &str) -> Result<Option<String>, String> {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
    if !(set("GITHUB_TOKEN") || set("GITHUB_APP_ID")) {
        return Ok(None);
    }
    let slug = crate::github::context::repo_slug(a.github_repo.as_deref(), None)?;
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(&g.repo)
        .args(["push", "--quiet", "--force", &a.remote, &format!("refs/heads/{branch}:refs/heads/{branch}")])
        .output()
        .map_err(|e| format!("running git push: {e}"))?;
    if !out.status.success() {
        return Err(format!("pushing `{branch}` to `{}`: {}", a.remote, String::from_utf8_lossy(&out.stderr).trim()));
    }
    let rt = super::runtime().map_err(|_| "cannot start the async runtime".to_string())?;
    rt.block_on(async {
        let client = crate::github::client::Client::from_env(slug).await.map_err(|e| e.to_string())?;
        let body = format!("{message}\nOpened by `gitgrant revoke`. Merging this ends `{id}` on main for good.");
        let pr = crate::github::NewPullRequest { title: format!("Revoke {id} early"), head: branch.to_string(), base: a.base.clone(), body };
        let (n, url) = crate::github::GitHubApi::create_pull_request(&client, &pr).await.map_err(|e| e.to_string())?;
        Ok(Some(if url.is_empty() { format!("PR #{n}") } else { format!("PR #{n} {url}") }))
    })
}

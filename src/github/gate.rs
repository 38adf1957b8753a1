//! `gate`: judge a PR's GitHub reviews and publish the verdict.
//!
//! The evidence is split by trust:
//! - The rules (policies, templates, risk model) and the request files come
//!   from the local clone at the PR's base and head commits, through
//!   [`run_check`]: the same judgment as `check`, so a PR cannot change the
//!   rules it is judged by. GitHub's list of changed files is only a
//!   cross-check: a request, policy or template file GitHub shows but the
//!   local diff lacks means the clone is not the PR, and the gate refuses to
//!   judge (fail closed) rather than approve what it did not read.
//! - The reviews, the PR author and GitHub-team members come from the API.
//!
//! The verdict is published as a check run (or a commit status, when asked
//! or when check runs are forbidden to the token), plus one sticky comment
//! that is found again by [`COMMENT_MARKER`] and edited in place.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{ApiError, CHECK_NAME, COMMENT_MARKER, CheckOutput, CheckRun, CommitStatus, Conclusion, GitHubApi, PullRequest};
use crate::approval::{Decision, Requirement};
use crate::check::{self, CheckOptions, CheckReport, Status, run_check};
use crate::render::card::{CardView, Header, render_card_template, short};
use crate::render::{escape_markdown, markdown};
use crate::source::GitTree;

/// The login of the Actions `GITHUB_TOKEN`: whose sticky comment to edit
/// when the token cannot read its own login.
const ACTIONS_BOT: &str = "github-actions[bot]";

/// GitHub's limit on comment bodies and check-run summaries is 65536.
const MAX_BODY: usize = 60_000;

/// The embedded default of `templates/pr-comment.md.j2`.
pub const DEFAULT_PR_COMMENT: &str = include_str!("../../templates/pr-comment.md.j2");

/// The check-run summary; not user-editable (branch protection reads it).
const CHECK_SUMMARY: &str = include_str!("check-run.md.j2");

#[derive(Debug, Clone)]
pub struct GateOptions {
    pub pr: u64,
    pub repo_dir: PathBuf,
    pub now: DateTime<Utc>,
    /// Publish a commit status instead of a check run.
    pub status_only: bool,
    /// Post or update the sticky comment.
    pub comment: bool,
}

/// Where the verdict went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Published {
    pub check_run: bool,
    pub status: bool,
    /// `created`, `updated`, `unchanged`, or absent when not posted.
    pub comment: Option<String>,
    pub comment_id: Option<u64>,
    /// Reviews requested by this run (users, then team slugs).
    pub requested_users: Vec<String>,
    pub requested_teams: Vec<String>,
    /// Logins and teams @-mentioned by this run.
    pub mentioned: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct GateOutcome {
    pub pr: PullRequest,
    pub conclusion: Conclusion,
    /// 0 satisfied, 1 judged and not satisfied, 2 could not judge or publish.
    pub exit: u8,
    pub decision: Decision,
    /// Why gitgrant could not judge, when it could not.
    pub error: Option<String>,
    pub notes: Vec<String>,
    pub check_run: CheckRun,
    pub published: Published,
    #[serde(skip)]
    pub comment_body: String,
    #[serde(skip)]
    pub report: Option<CheckReport>,
}

/// The gate could not even fetch the PR: nothing to publish to.
#[derive(Debug, thiserror::Error)]
#[error("cannot read PR #{pr}: {source}")]
pub struct GateError {
    pub pr: u64,
    #[source]
    pub source: ApiError,
}

/// The judgment before publishing.
struct Verdict {
    report: Option<CheckReport>,
    decision: Decision,
    error: Option<String>,
    notes: Vec<String>,
    /// Requesters, the PR author and commit authors: never approvers, never asked.
    excluded: Vec<String>,
}

/// Judges PR `opts.pr` and publishes the verdict.
pub async fn run_gate(api: &dyn GitHubApi, opts: &GateOptions) -> Result<GateOutcome, GateError> {
    let pr = api.pull_request(opts.pr).await.map_err(|source| GateError { pr: opts.pr, source })?;
    let verdict = judge(api, &pr, opts).await;
    let (conclusion, exit) = conclude(&verdict);
    let mut view = view_of(&pr, &verdict, conclusion);
    let mut notes = verdict.notes.clone();

    let templates = verdict.report.as_ref().map(|r| &r.policy.templates);
    let (summary, text) = render_check_summary(&mut view, templates);
    let details_url = Some(pr.html_url.clone()).filter(|u| !u.is_empty());
    let output = CheckOutput { title: view.title.clone(), summary, text };
    let mut exit = exit;
    let (check_run, mut published) = publish(api, &pr.head_sha, conclusion, details_url, output, opts.status_only, &mut notes, &mut exit).await;

    // Who was already asked for this head: the sticky comment's state line.
    let viewer = if opts.comment { api.viewer_login().await } else { None };
    let previous = if opts.comment { own_comment(api, pr.number, &viewer).await.ok().flatten().and_then(|c| ask::Asked::parse(&c.body)) } else { None };
    let asked = ask_reviewers(api, &pr, &verdict, conclusion, previous.as_ref(), &mut published, &mut notes).await;

    let base_template = verdict.report.as_ref().and_then(|r| r.policy.templates.get("pr-comment.md.j2")).map(String::as_str);
    view.notes = notes.clone();
    let mut comment_body = render_comment(&view, base_template, templates, &mut notes);
    if let Some(state) = asked.filter(|a| !(a.users.is_empty() && a.teams.is_empty() && a.mentioned.is_empty())) {
        // After the marker line, before the visible text.
        comment_body = comment_body.replacen(COMMENT_MARKER, &format!("{COMMENT_MARKER}\n{}", state.line()), 1);
    }
    if opts.comment {
        match upsert_comment(api, pr.number, &comment_body, &viewer).await {
            Ok((action, id)) => {
                published.comment = Some(action.to_string());
                published.comment_id = Some(id);
            }
            Err(e) => notes.push(format!("could not post the PR comment (the verdict stands): {e}")),
        }
    }
    Ok(GateOutcome {
        pr,
        conclusion,
        exit,
        decision: verdict.decision,
        error: verdict.error,
        notes,
        check_run,
        published,
        comment_body,
        report: verdict.report,
    })
}

fn cannot_judge(report: Option<CheckReport>, error: String, notes: Vec<String>) -> Verdict {
    Verdict { report, decision: unsatisfied(), error: Some(error), notes, excluded: Vec::new() }
}

/// The decision when nothing could be judged: never satisfied.
fn unsatisfied() -> Decision {
    Decision { satisfied: false, slots: Vec::new(), approvers: Vec::new(), ignored: Vec::new(), blockers: Vec::new() }
}

async fn judge(api: &dyn GitHubApi, pr: &PullRequest, opts: &GateOptions) -> Verdict {
    let mut notes = Vec::new();
    let reviews = match api.reviews(pr.number).await {
        Ok(r) => r,
        Err(e) => return cannot_judge(None, format!("cannot read the reviews: {e}"), notes),
    };
    let api_files = match api.changed_files(pr.number).await {
        Ok(f) => f,
        Err(e) => return cannot_judge(None, format!("cannot read the PR's changed files: {e}"), notes),
    };
    let check_opts = CheckOptions { base: Some(pr.base_sha.clone()), head: Some(pr.head_sha.clone()), all: false, only: None, now: opts.now };
    let report = match run_check(&opts.repo_dir, &check_opts) {
        Ok(r) => r,
        Err(e) => {
            return cannot_judge(
                None,
                format!("{e} (the gate reads the PR's base and head commits from the local clone: check out with `fetch-depth: 0`)"),
                notes,
            );
        }
    };
    match local_changes(&opts.repo_dir, &pr.base_sha, &pr.head_sha) {
        Ok(local) => {
            let missing: Vec<&String> = api_files.iter().filter(|f| is_judged_path(f) && !local.contains(f.as_str())).collect();
            if !missing.is_empty() {
                let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                return cannot_judge(
                    Some(report),
                    format!(
                        "GitHub lists {} as changed by PR #{} but the local clone's diff {}..{} does not: fetch the PR's base and head and rerun",
                        list.join(", "),
                        pr.number,
                        short(&pr.base_sha),
                        short(&pr.head_sha)
                    ),
                    notes,
                );
            }
        }
        Err(e) => return cannot_judge(Some(report), format!("reading the local clone: {e}"), notes),
    }

    let requirements = crate::engine::landing::requirements(&report);
    let groups = resolve_groups(api, &report, &requirements, &mut notes).await;
    let mut writers = match api.commit_authors(pr.number).await {
        Ok(logins) => logins,
        Err(e) => return cannot_judge(Some(report), format!("listing the PR's commits (their authors cannot approve): {e}"), notes),
    };
    // GitHub lists at most 250 commits of a PR: the local clone lists them all.
    match local_authors(&opts.repo_dir, &pr.base_sha, &pr.head_sha) {
        Ok(logins) => writers.extend(logins),
        Err(e) => return cannot_judge(Some(report), format!("listing the PR's commits in the local clone (their authors cannot approve): {e}"), notes),
    }
    let excluded = crate::engine::landing::exclusions(&report, Some(&pr.author), writers);
    let decision = crate::engine::landing::decide(&report, &groups, &reviews, &pr.head_sha, &excluded);
    if report.status == Status::Error {
        return Verdict {
            error: Some("the base policies or the repository are invalid (see diagnostics)".to_string()),
            report: Some(report),
            decision,
            notes,
            excluded,
        };
    }
    Verdict { report: Some(report), decision, error: None, notes, excluded }
}

/// Paths whose changes the judgment depends on: requests and rule files.
fn is_judged_path(path: &str) -> bool {
    crate::engine::classify::is_judged(path)
}

/// Authors and committers of the PR's commits, from the local clone.
fn local_authors(repo_dir: &std::path::Path, base: &str, head: &str) -> Result<BTreeSet<String>, check::CheckError> {
    let repo = crate::git::open(repo_dir)?;
    let head = check::resolve(&repo, head)?;
    let base = crate::git::merge_base(&repo, check::resolve(&repo, base)?, head, ("base", "head"))?;
    Ok(crate::git::authors_between(&repo, base, head)?)
}

/// The request, policy and template paths changed between the merge-base
/// of `base` and `head`, and `head`: what `run_check` read.
fn local_changes(repo_dir: &std::path::Path, base: &str, head: &str) -> Result<BTreeSet<String>, check::CheckError> {
    let repo = crate::git::open(repo_dir).map_err(check::CheckError::from)?;
    let head = check::resolve(&repo, head)?;
    let base = repo.merge_base(check::resolve(&repo, base)?, head)?;
    let (b, h) = (GitTree::new(&repo, base)?, GitTree::new(&repo, head)?);
    Ok(check::changed_paths(&b, &h)?.into_iter().map(|c| c.path).collect())
}

/// Group members for the approval engine: the policy's members, plus the
/// members of each group's GitHub team (only for groups a slot draws from).
/// A team that cannot be read adds nobody (fail closed) and is reported.
async fn resolve_groups(
    api: &dyn GitHubApi,
    report: &CheckReport,
    requirements: &[Requirement],
    notes: &mut Vec<String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut groups = report.policy.group_members();
    let wanted: BTreeSet<&String> = requirements.iter().flat_map(|r| &r.from).collect();
    for name in wanted {
        let Some(team) = report.policy.groups.get(name.as_str()).and_then(|g| g.github_team.as_ref()) else {
            continue;
        };
        let Some((org, slug)) = team.split_once('/') else {
            continue;
        };
        match api.team_members(org, slug).await {
            Ok(members) => groups.entry(name.clone()).or_default().extend(members),
            Err(e) => notes.push(format!(
                "group `{name}`: GitHub team `{team}` could not be read, so only its listed members count ({e}); the token needs organization members: read"
            )),
        }
    }
    groups
}

fn conclude(v: &Verdict) -> (Conclusion, u8) {
    if v.error.is_some() {
        return (Conclusion::Failure, 2);
    }
    match v.report.as_ref().map(|r| r.status) {
        Some(Status::Error) | None => (Conclusion::Failure, 2),
        Some(Status::Failed) => (Conclusion::Failure, 1),
        Some(Status::Ok) if v.decision.satisfied => (Conclusion::Success, 0),
        Some(Status::Ok) if !v.decision.blockers.is_empty() => (Conclusion::Failure, 1),
        Some(Status::Ok) => (Conclusion::ActionRequired, 1),
    }
}

/// Publishes the completed `gitgrant/approval` check run for `head_sha` (the
/// PR gate and the merge-queue gate alike); a failure to publish is a note
/// and exit 2, since the required check then stays unsatisfied. Returns the
/// run as sent, for the outcome.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn publish(
    api: &dyn GitHubApi,
    head_sha: &str,
    conclusion: Conclusion,
    details_url: Option<String>,
    output: CheckOutput,
    status_only: bool,
    notes: &mut Vec<String>,
    exit: &mut u8,
) -> (CheckRun, Published) {
    let run = CheckRun { name: CHECK_NAME.to_string(), head_sha: head_sha.to_string(), status: "completed".to_string(), conclusion, details_url, output };
    let mut published = Published::default();
    match publish_verdict(api, head_sha, &run, status_only, notes).await {
        Ok((check, status)) => {
            published.check_run = check;
            published.status = status;
        }
        Err(e) => {
            notes.push(format!("could not publish the verdict: {e}"));
            *exit = 2;
        }
    }
    (run, published)
}

/// Publishes the check run, or the commit status when asked or when check
/// runs are not allowed (403/404: a personal token, or GHES without checks).
/// Returns (check run published, status published).
async fn publish_verdict(api: &dyn GitHubApi, head_sha: &str, run: &CheckRun, status_only: bool, notes: &mut Vec<String>) -> Result<(bool, bool), ApiError> {
    if !status_only {
        match api.create_check_run(run).await {
            Ok(()) => return Ok((true, false)),
            Err(e) if matches!(e.status(), Some(403 | 404)) => {
                notes.push(format!("check runs are not available to this token ({e}); published a commit status instead"));
            }
            Err(e) => return Err(e),
        }
    }
    // GitHub caps status descriptions at 140 characters.
    let description = if run.output.title.chars().count() > 140 {
        run.output.title.chars().take(139).chain(std::iter::once('…')).collect()
    } else {
        run.output.title.clone()
    };
    let status =
        CommitStatus { state: run.conclusion.status_state().to_string(), context: CHECK_NAME.to_string(), description, target_url: run.details_url.clone() };
    api.create_status(head_sha, &status).await?;
    Ok((false, true))
}

/// Requests reviews from (and, when the policy says so, @-mentions) the
/// people and teams who can fill the open slots, once per head. Returns the
/// state to keep in the sticky comment. Failures are notes, never fatal.
async fn ask_reviewers(
    api: &dyn GitHubApi,
    pr: &PullRequest,
    v: &Verdict,
    conclusion: Conclusion,
    previous: Option<&ask::Asked>,
    published: &mut Published,
    notes: &mut Vec<String>,
) -> Option<ask::Asked> {
    let report = v.report.as_ref()?;
    // Keep what was asked for this head even when nothing is asked now.
    let mut state = previous.filter(|p| p.head == pr.head_sha).cloned().unwrap_or_else(|| ask::Asked { head: pr.head_sha.clone(), ..ask::Asked::default() });
    if conclusion != Conclusion::ActionRequired || v.error.is_some() || pr.state != "open" {
        return Some(state);
    }
    let policy = &report.policy;
    let new = ask::to_ask(&v.decision, policy, &v.excluded, &pr.head_sha, previous);
    let (users, teams): (Vec<String>, Vec<String>) = (new.users.iter().cloned().collect(), new.teams.iter().cloned().collect());
    if policy.notifications.request_reviews && !(users.is_empty() && teams.is_empty()) {
        match api.request_reviewers(pr.number, &users, &teams).await {
            Ok(()) => {
                state.users.extend(users.iter().cloned());
                state.teams.extend(teams.iter().cloned());
                published.requested_users = users;
                published.requested_teams = teams;
            }
            Err(e) => {
                let who = ask::mention_text(&new.users, &new.teams, None).replace('@', "");
                let teams_part =
                    if new.teams.is_empty() { String::new() } else { format!(" and team(s) {}", new.teams.iter().cloned().collect::<Vec<_>>().join(", ")) };
                notes.push(format!(
                    "could not request reviews from {who}{teams_part} ({e}); ask them yourself, or set `notifications: {{ request_reviews: false }}`"
                ));
                // Remembered anyway: a 422 would fail the same way on every rerun.
                state.users.extend(new.users.iter().cloned());
                state.teams.extend(new.teams.iter().cloned());
            }
        }
    }
    if policy.notifications.mention {
        let mut people = ask::to_ask(&v.decision, policy, &v.excluded, &pr.head_sha, None);
        people.users.retain(|u| !state.mentioned.contains(u));
        people.teams.retain(|t| !state.mentioned.contains(&format!("team:{t}")));
        let text = ask::mention_text(&people.users, &people.teams, ask::team_org(policy).as_deref());
        if !text.is_empty() {
            let body = format!("{text}: your review is needed on this access request ({}).", escape_markdown(&v.decision.summary()));
            match api.create_comment(pr.number, &body).await {
                Ok(_) => {
                    published.mentioned = text.split(", ").map(str::to_string).collect();
                    state.mentioned.extend(people.users);
                    state.mentioned.extend(people.teams.into_iter().map(|t| format!("team:{t}")));
                }
                Err(e) => notes.push(format!("could not post the review mention ({e})")),
            }
        }
    }
    Some(state)
}

/// gitgrant's sticky comment on PR `number`, if there is one (see [`upsert_comment`]).
async fn own_comment(api: &dyn GitHubApi, number: u64, viewer: &Option<String>) -> Result<Option<super::Comment>, ApiError> {
    Ok(find_own(api.comments(number).await?, viewer))
}

/// gitgrant's comment among `comments`: see [`upsert_comment`].
fn find_own(comments: Vec<super::Comment>, viewer: &Option<String>) -> Option<super::Comment> {
    comments.into_iter().find(|c| {
        c.body.contains(COMMENT_MARKER)
            && match viewer {
                Some(me) => c.author.eq_ignore_ascii_case(me),
                // The token cannot tell its own login: that is the Actions
                // token (GitHub answers 403 to `/user`), whose comments are
                // `github-actions[bot]`'s. Another bot's comment carrying the
                // marker is not ours (it may be a forged verdict): never edit
                // or trust it; post our own.
                None => c.author_type == "Bot" && c.author.eq_ignore_ascii_case(ACTIONS_BOT),
            }
    })
}

/// Updates gitgrant's comment in place, or creates it once.
///
/// The comment is gitgrant's if it carries the marker and was written by the
/// token's own login (when GitHub tells it) or, for Actions and App tokens
/// that cannot ask, by a bot: a person pasting the marker cannot hijack it.
/// Creating is not retried blindly (a failed POST may have created it): the
/// comments are listed again first.
async fn upsert_comment(api: &dyn GitHubApi, number: u64, body: &str, viewer: &Option<String>) -> Result<(&'static str, u64), ApiError> {
    let find = |comments: Vec<super::Comment>| find_own(comments, viewer);
    if let Some(existing) = find(api.comments(number).await?) {
        if existing.body == body {
            return Ok(("unchanged", existing.id));
        }
        api.update_comment(existing.id, body).await?;
        return Ok(("updated", existing.id));
    }
    match api.create_comment(number, body).await {
        Ok(id) => Ok(("created", id)),
        Err(first) => {
            if let Some(existing) = find(api.comments(number).await?) {
                api.update_comment(existing.id, body).await?;
                return Ok(("updated", existing.id));
            }
            if first.status().is_some_and(|s| s < 500) {
                return Err(first);
            }
            api.create_comment(number, body).await.map(|id| ("created", id))
        }
    }
}

/// The card view of a verdict (rendering is separate from judging).
fn view_of(pr: &PullRequest, v: &Verdict, conclusion: Conclusion) -> CardView {
    let d = &v.decision;
    let errors = v.report.as_ref().map_or(0, |r| r.diagnostics.iter().filter(|x| x.is_error()).count());
    let title = match (&v.error, conclusion) {
        (Some(_), _) => "could not judge this PR".to_string(),
        (None, Conclusion::Failure) if errors > 0 => format!("invalid change: {errors} error{}", if errors == 1 { "" } else { "s" }),
        _ => d.summary(),
    };
    let header = Header {
        pr: pr.number,
        head: short(&pr.head_sha).to_string(),
        conclusion: conclusion.as_str(),
        satisfied: conclusion == Conclusion::Success,
        title,
        error: v.error.clone(),
        notes: v.notes.clone(),
    };
    CardView::new(header, v.report.as_ref(), d)
}

fn render(name: &str, source: &str, view: &CardView, templates: Option<&BTreeMap<String, String>>) -> Result<String, minijinja::Error> {
    render_card_template(name, source, templates, view)
}

/// Cuts `s` to GitHub's size limit on a character boundary.
fn clamp(mut s: String, what: &str) -> String {
    if s.len() > MAX_BODY {
        let mut cut = MAX_BODY;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str(&format!("\n\n… ({what} truncated at {MAX_BODY} bytes)\n"));
    }
    s
}

/// The check-run summary and, when there are diagnostics, its text.
fn render_check_summary(view: &mut CardView, templates: Option<&BTreeMap<String, String>>) -> (String, Option<String>) {
    view.check_run = true;
    let summary = render("check-run.md.j2", CHECK_SUMMARY, view, templates)
        .or_else(|_| render("check-run.md.j2", CHECK_SUMMARY, view, None))
        .unwrap_or_else(|e| format!("{} (summary template failed: {})", escape_markdown(&view.title), escape_markdown(&e.to_string())));
    view.check_run = false;
    let text = (!view.diagnostics.is_empty()).then(|| {
        let lines: Vec<String> = view
            .diagnostics
            .iter()
            .map(|d| {
                format!(
                    "- {} {} at {}: {}",
                    markdown::code(d.code.as_str()),
                    d.severity.as_str(),
                    markdown::code(&format!("{}:{}:{}", d.file, d.line, d.column)),
                    markdown::rich(&d.message)
                )
            })
            .collect();
        clamp(lines.join("\n"), "diagnostics")
    });
    (clamp(summary, "summary"), text)
}

/// The sticky comment: the marker, then `templates/pr-comment.md.j2` from the
/// base (falling back to the built-in one if it fails to render).
fn render_comment(view: &CardView, base_template: Option<&str>, templates: Option<&BTreeMap<String, String>>, notes: &mut Vec<String>) -> String {
    let rendered = match base_template.map(|t| render("pr-comment.md.j2", t, view, templates)) {
        Some(Ok(s)) => Ok(s),
        Some(Err(e)) => {
            notes.push(format!("templates/pr-comment.md.j2 failed to render ({e}); used the built-in template"));
            render("pr-comment.md.j2", DEFAULT_PR_COMMENT, view, None)
        }
        None => render("pr-comment.md.j2", DEFAULT_PR_COMMENT, view, templates),
    };
    let body = rendered
        .unwrap_or_else(|e| format!("### gitgrant: {}\n\n(comment template failed: {})\n", escape_markdown(&view.title), escape_markdown(&e.to_string())));
    clamp(format!("{COMMENT_MARKER}\n{body}"), "comment")
}

mod ask;
pub mod merge_group;

#[cfg(test)]
mod tests;

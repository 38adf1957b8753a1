//! `gitgrant demo`: the whole lifecycle in a temporary repository on the local provider.
//!
//! Every gitgrant step is this same binary run as a subprocess, exactly as
//! shown (`$ gitgrant ...`), so the demo shows real behaviour and doubles as
//! a tutorial. Git steps are done with libgit2 (no user configuration,
//! hooks or signing can get in the way) and shown as the git commands they
//! stand for. The clock is fixed: every step runs at a time relative to
//! `--now`, so the output is the same on every run with the same `--now`.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Duration, SecondsFormat, Timelike, Utc};
use git2::{IndexAddOption, Repository, Signature, Time};

use super::{Global, fail};
use crate::check::{CheckOptions, run_check};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Build the repository in DIR (new or empty) and leave it there to explore.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

/// A step that did not do what the demo expects: the demo stops, exit 1.
struct Broken(String);

type Step<T = ()> = Result<T, Broken>;

struct Demo {
    dir: PathBuf,
    exe: PathBuf,
    repo: Repository,
}

pub fn run(g: &Global, a: Args) -> u8 {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return fail(format!("cannot find the gitgrant binary to run the steps: {e}")),
    };
    let (dir, _temp) = match &a.keep {
        Some(d) => {
            if std::fs::read_dir(d).is_ok_and(|mut r| r.next().is_some()) {
                return fail(format!("--keep {}: the directory is not empty; name a new or empty one", d.display()));
            }
            if let Err(e) = std::fs::create_dir_all(d) {
                return fail(format!("--keep {}: {e}", d.display()));
            }
            (d.clone(), None)
        }
        None => match TempDir::new() {
            Ok(t) => (t.0.clone(), Some(t)),
            Err(e) => return fail(format!("cannot create a temporary directory in {}: {e}", std::env::temp_dir().display())),
        },
    };
    // Whole minutes read better; with --now the clock is the caller's.
    let t0 = g.now.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(g.now);
    println!("gitgrant demo: one access request from start to finish, on the local provider (no cloud, no network)");
    println!("repository: {}", dir.display());
    println!("clock: {} (each step runs at a time relative to it, passed with --now)", stamp(t0));
    let code = match story(&dir, exe, t0) {
        Ok(()) => {
            println!("\n== done: requested, judged, approved, granted, revoked and audited");
            0
        }
        Err(Broken(msg)) => {
            eprintln!("\nerror: the demo failed: {msg}");
            1
        }
    };
    match &a.keep {
        Some(d) => {
            // The story's commits and windows are on the demo's clock, up to
            // LAST_MINUTE past it: explore with that clock, or everything
            // looks like it has not happened yet.
            let at = stamp(t0 + Duration::minutes(LAST_MINUTE));
            println!(
                "\nThe repository is kept in {dir}. Explore it on the demo's clock, with --now {at}:\n  cd {dir}\n  git log --graph --oneline --all\n  gitgrant check --all --now {at}\n  gitgrant plan --now {at}\n  gitgrant audit --now {at}",
                dir = d.display()
            );
        }
        None => println!("(the temporary repository is removed; `gitgrant demo --keep DIR` keeps it)"),
    }
    code
}

/// A fresh directory under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let base = std::env::temp_dir();
        let mut last = None;
        for _ in 0..16 {
            let p = base.join(format!("gitgrant-demo-{}-{:08x}", std::process::id(), fastrand::u32(..)));
            match std::fs::create_dir(&p) {
                Ok(()) => return Ok(TempDir(p)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no free name")))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The minute after the demo's clock at which its last step runs: the `--now`
/// to explore a kept repository with (its history is ahead of the real clock).
const LAST_MINUTE: i64 = 190;

/// Builds the demo repository and walks the lifecycle; returns the tolerated steps.
fn story(dir: &Path, exe: PathBuf, t0: DateTime<Utc>) -> Step {
    let m = |min: i64| t0 + Duration::minutes(min);
    heading("1. Scaffold an access repository");
    let out = run_gitgrant(dir, &exe, m(0), &["init", "."])?;
    expect(&out, 0, "gitgrant init")?;
    let repo = Repository::open(dir).map_err(|e| Broken(format!("init left no git repository in {}: {e}", dir.display())))?;
    let d = Demo { dir: dir.to_path_buf(), exe, repo };
    d.commit_all("admin", "Bootstrap the access policies", m(0))?;
    println!(
        "\nThe policies are the rules: who may ask for which role (groups.yaml, roles.yaml), what each resource is\n(resources.yaml: here two resources on the local provider), and how risk maps to approvals (risk.yaml)."
    );

    // The happy path: alice, read-only on a production database.
    heading("2. alice asks for read access to orders-db, on a branch");
    let alice_start = m(60);
    d.git_branch("request/alice-orders-db")?;
    let out = d.gitgrant(
        m(1),
        &[
            "request",
            "--as",
            "alice",
            "--role",
            "db-readonly",
            "--resource",
            "orders-db",
            "--start",
            &stamp(alice_start),
            "--duration",
            "2h",
            "--reason",
            "INC-4211: orders stuck in pending, inspect the queue table",
            "--ticket",
            "INC-4211",
        ],
    )?;
    expect(&out, 0, "gitgrant request")?;
    let alice_id = written_id(&out.stdout)?;
    d.commit_all("alice", "alice: db-readonly on orders-db for INC-4211", m(2))?;

    heading("3. CI judges the pull request: risk, tier, and who must approve");
    let out = d.gitgrant(m(3), &["check", "--base", "main", "--head", "request/alice-orders-db"])?;
    expect(&out, 0, "gitgrant check")?;
    let approvers = d.approvers_for("request/alice-orders-db", m(3))?;

    heading("4. The approvals are given and the pull request is merged");
    println!("In GitHub the reviews decide (`gitgrant gate`); in plain git they are `Approved-by:` trailers on the merge commit.");
    d.merge("request/alice-orders-db", &approvers, m(10))?;
    let out = d.gitgrant(m(10), &["approvals", "--commit", "main"])?;
    expect(&out, 0, "gitgrant approvals")?;

    // The denied path: heidi is a developer, db-admin is for dba and sre.
    heading("5. Denied: heidi asks for a role she is not eligible for");
    d.git_branch("request/heidi-db-admin")?;
    let heidi = ["--as", "heidi", "--role", "db-admin", "--resource", "orders-db", "--duration", "1h", "--reason", "CHG-77: add an index to orders"];
    let mut args = vec!["request"];
    args.extend(heidi);
    args.extend(["--ticket", "CHG-77"]);
    let out = d.gitgrant(m(12), &args)?;
    expect(&out, 1, "gitgrant request (ineligible)")?;
    println!("\nShe writes the file by hand and opens the pull request anyway:");
    let heidi_path = format!("requests/{}-heidi-db-admin.yaml", m(12).format("%Y-%m-%d"));
    let text = "requester: heidi\nrole: db-admin\nresources: [orders-db]\nduration: 1h\nreason: \"CHG-77: add an index to orders\"\nticket: CHG-77\n";
    d.write_shown(&heidi_path, text)?;
    d.commit_all("heidi", "heidi: db-admin on orders-db", m(13))?;
    let out = d.gitgrant(m(14), &["check", "--base", "main", "--head", "request/heidi-db-admin"])?;
    expect(&out, 1, "gitgrant check (ineligible)")?;
    println!("\nThe required check fails, so the pull request cannot merge. Nothing is granted.");
    d.git_switch("main")?;

    // Break-glass: bob is on call; one on-call approval, one hour at most.
    heading("6. Break-glass: bob needs admin now, during an incident");
    d.git_branch("request/bob-break-glass")?;
    let out = d.gitgrant(
        m(20),
        &[
            "request",
            "--as",
            "bob",
            "--role",
            "db-admin",
            "--resource",
            "orders-db",
            "--duration",
            "1h",
            "--reason",
            "INC-4300: orders table locked, kill the blocking migration",
            "--ticket",
            "INC-4300",
            "--break-glass",
        ],
    )?;
    expect(&out, 0, "gitgrant request --break-glass")?;
    let bob_id = written_id(&out.stdout)?;
    d.commit_all("bob", "bob: break-glass db-admin on orders-db for INC-4300", m(21))?;
    let out = d.gitgrant(m(22), &["check", "--base", "main", "--head", "request/bob-break-glass"])?;
    expect(&out, 0, "gitgrant check (break-glass)")?;
    let approvers = d.approvers_for("request/bob-break-glass", m(22))?;
    d.merge("request/bob-break-glass", &approvers, m(25))?;
    println!("\nIt has no `start:`, so its hour began when it landed on main.");

    heading("7. reconcile at alice's start time: both requests are active and granted");
    let out = d.gitgrant(m(60), &["reconcile", "--at", &stamp(alice_start)])?;
    expect(&out, 0, "gitgrant reconcile")?;
    let held = d.held()?;
    for who in ["alice", "bob"] {
        if !held.iter().any(|p| p == who) {
            return Err(Broken(format!("reconcile did not grant {who}; the local provider holds {held:?}")));
        }
    }
    println!("\nThe local provider now holds: {}", held.join(", "));

    heading("8. The break-glass grant is reviewed after the fact");
    d.commit_empty(
        "dave",
        &format!(
            "Review break-glass access {bob_id}\n\nINC-4300 postmortem: the access was used as stated.\n\nBreak-glass-review: {bob_id}\nApproved-by: erin"
        ),
        m(120),
    )?;

    heading("9. reconcile after the end time: access is revoked");
    let after = alice_start + Duration::hours(2) + Duration::minutes(5);
    let out = d.gitgrant(m(185), &["reconcile", "--at", &stamp(after)])?;
    expect(&out, 0, "gitgrant reconcile (expiry)")?;
    let held = d.held()?;
    if !held.is_empty() {
        return Err(Broken(format!("reconcile after the end time left grants in place: {held:?}")));
    }
    println!("\nThe local provider holds nothing: both grants ended on time.");

    heading("10. The audit trail: git history joined with the ledger");
    let out = d.gitgrant(m(LAST_MINUTE), &["audit"])?;
    expect(&out, 0, "gitgrant audit")?;
    let out = d.gitgrant(m(LAST_MINUTE), &["audit", "verify"])?;
    expect(&out, 0, "gitgrant audit verify")?;
    println!("\nRequests in this story: {alice_id} (approved), {bob_id} (break-glass); heidi's never merged.");
    Ok(())
}

fn heading(title: &str) {
    println!("\n== {title}\n");
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs this binary as the user would, in the repository, at time `t`.
fn run_gitgrant(dir: &Path, exe: &Path, t: DateTime<Utc>, args: &[&str]) -> Step<Out> {
    let shown: Vec<String> = args.iter().map(|a| shell_word(a)).collect();
    println!("$ gitgrant {} --now {}", shown.join(" "), stamp(t));
    let out = Command::new(exe)
        .args(args)
        .arg("--now")
        .arg(stamp(t))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        // The demo judges by trailers and never talks to GitHub or a CI event.
        .env_remove("GITHUB_TOKEN")
        .env_remove("GITHUB_APP_ID")
        .env_remove("GITHUB_EVENT_PATH")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("GITHUB_REPOSITORY")
        .output()
        .map_err(|e| Broken(format!("cannot run {}: {e}", exe.display())))?;
    let out = Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    print!("{}", out.stdout);
    print!("{}", out.stderr);
    if out.code != 0 {
        println!("(exit {})", out.code);
    }
    Ok(out)
}

fn expect(out: &Out, code: i32, what: &str) -> Step {
    if out.code == code {
        return Ok(());
    }
    Err(Broken(format!("`{what}` exited {} where the demo expects {code}", out.code)))
}

/// The id from `request`'s `wrote requests/<id>.yaml`.
fn written_id(stdout: &str) -> Step<String> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("wrote requests/").and_then(|r| r.strip_suffix(".yaml")))
        .map(str::to_string)
        .ok_or_else(|| Broken("`gitgrant request` did not say which file it wrote".to_string()))
}

/// Quotes a word for the shell when it needs it.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

impl Demo {
    fn gitgrant(&self, t: DateTime<Utc>, args: &[&str]) -> Step<Out> {
        run_gitgrant(&self.dir, &self.exe, t, args)
    }

    fn git_err(e: git2::Error) -> Broken {
        Broken(format!("git: {e}"))
    }

    fn sig(&self, login: &str, t: DateTime<Utc>) -> Step<Signature<'static>> {
        Signature::new(login, &format!("{login}@example.com"), &Time::new(t.timestamp(), 0)).map_err(Self::git_err)
    }

    /// `git add -A && git commit` as `login` at `t`.
    fn commit_all(&self, login: &str, message: &str, t: DateTime<Utc>) -> Step {
        println!("$ git add -A && git commit --author '{login} <{login}@example.com>' -m {}", shell_word(message));
        let mut index = self.repo.index().map_err(Self::git_err)?;
        index.add_all(["*"], IndexAddOption::DEFAULT, None).map_err(Self::git_err)?;
        index.write().map_err(Self::git_err)?;
        let tree_id = index.write_tree().map_err(Self::git_err)?;
        self.commit_tree(login, message, t, tree_id)
    }

    /// A commit that changes no file (a review record), on the current branch.
    fn commit_empty(&self, login: &str, message: &str, t: DateTime<Utc>) -> Step {
        println!("$ git commit --allow-empty --author '{login} <{login}@example.com>' -m {}", shell_word(message));
        let head = self.repo.head().and_then(|h| h.peel_to_tree()).map_err(Self::git_err)?;
        self.commit_tree(login, message, t, head.id())
    }

    fn commit_tree(&self, login: &str, message: &str, t: DateTime<Utc>, tree_id: git2::Oid) -> Step {
        let tree = self.repo.find_tree(tree_id).map_err(Self::git_err)?;
        let sig = self.sig(login, t)?;
        let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        self.repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents).map_err(Self::git_err)?;
        Ok(())
    }

    /// `git switch -c NAME` from the current commit.
    fn git_branch(&self, name: &str) -> Step {
        println!("$ git switch -c {name}");
        let head = self.repo.head().and_then(|h| h.peel_to_commit()).map_err(Self::git_err)?;
        self.repo.branch(name, &head, false).map_err(Self::git_err)?;
        self.repo.set_head(&format!("refs/heads/{name}")).map_err(Self::git_err)
    }

    /// `git switch NAME`: the working tree and index follow.
    fn git_switch(&self, name: &str) -> Step {
        println!("$ git switch {name}");
        let target = self.repo.revparse_single(&format!("refs/heads/{name}")).map_err(Self::git_err)?;
        let mut co = git2::build::CheckoutBuilder::new();
        co.force();
        self.repo.checkout_tree(&target, Some(&mut co)).map_err(Self::git_err)?;
        self.repo.set_head(&format!("refs/heads/{name}")).map_err(Self::git_err)
    }

    /// `git switch main && git merge --no-ff BRANCH` with `Approved-by:` trailers.
    /// Branches start at main's tip, so the merge takes the branch's tree.
    fn merge(&self, branch: &str, approvers: &[String], t: DateTime<Utc>) -> Step {
        let trailers: Vec<String> = approvers.iter().map(|a| format!("Approved-by: {a}")).collect();
        let message = format!("Merge {branch}\n\n{}\n", trailers.join("\n"));
        let shown: Vec<String> = trailers.iter().map(|t| format!("-m {}", shell_word(t))).collect();
        println!("$ git switch main && git merge --no-ff {branch} -m 'Merge {branch}' {}", shown.join(" "));
        let main = self.repo.revparse_single("refs/heads/main").and_then(|o| o.peel_to_commit()).map_err(Self::git_err)?;
        let side = self.repo.revparse_single(&format!("refs/heads/{branch}")).and_then(|o| o.peel_to_commit()).map_err(Self::git_err)?;
        if side.parent_id(0).ok() != Some(main.id()) {
            return Err(Broken(format!("{branch} does not start at main's tip")));
        }
        let tree = side.tree().map_err(Self::git_err)?;
        let sig = self.sig("merge-bot", t)?;
        self.repo.commit(Some("refs/heads/main"), &sig, &sig, &message, &tree, &[&main, &side]).map_err(Self::git_err)?;
        let mut co = git2::build::CheckoutBuilder::new();
        co.force();
        let tip = self.repo.revparse_single("refs/heads/main").map_err(Self::git_err)?;
        self.repo.checkout_tree(&tip, Some(&mut co)).map_err(Self::git_err)?;
        self.repo.set_head("refs/heads/main").map_err(Self::git_err)
    }

    /// Who approves: for each slot the check asked for, the first members of
    /// its groups who are not the requester and fill no other slot.
    fn approvers_for(&self, branch: &str, t: DateTime<Utc>) -> Step<Vec<String>> {
        let opts = CheckOptions { base: Some("main".into()), head: Some(branch.into()), all: false, only: None, now: t };
        let report = run_check(&self.dir, &opts).map_err(|e| Broken(e.to_string()))?;
        let requesters: Vec<&str> = report.requests.iter().map(|r| r.requester.as_str()).collect();
        let mut chosen: Vec<String> = Vec::new();
        for (label, rule) in report.required() {
            for _ in 0..rule.count {
                let pick = rule
                    .from
                    .iter()
                    .flat_map(|g| report.policy.members(g))
                    .find(|m| !requesters.contains(&m.as_str()) && !chosen.contains(m))
                    .ok_or_else(|| Broken(format!("nobody can approve {label}")))?;
                chosen.push(pick);
            }
        }
        Ok(chosen)
    }

    /// Principals the local provider holds grants for.
    fn held(&self) -> Step<Vec<String>> {
        let path = self.dir.join(crate::provider::local::DEFAULT_STATE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Broken(format!("{}: {e}", path.display()))),
        };
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Broken(format!("{}: {e}", path.display())))?;
        let mut out: Vec<String> = v["grants"]
            .as_array()
            .map(|g| g.iter().filter_map(|x| x.pointer("/access/principal").and_then(|p| p.as_str()).map(str::to_string)).collect())
            .unwrap_or_default();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Writes a file as `cat > PATH <<'YAML'` would, and shows it.
    fn write_shown(&self, rel: &str, text: &str) -> Step {
        println!("$ cat > {rel} <<'YAML'\n{text}YAML");
        let path = self.dir.join(rel);
        std::fs::write(&path, text).map_err(|e| Broken(format!("{}: {e}", path.display())))
    }
}

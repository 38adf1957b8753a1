//! Test support: real git repositories in temp dirs, and the binary under test.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

/// The crate root: the example access repository lives there.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Repo {
    pub dir: tempfile::TempDir,
    /// Seconds since the epoch for the next commit (deterministic history).
    clock: std::cell::Cell<i64>,
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Exit code, stdout and stderr in one string, for snapshots.
    pub fn all(&self) -> String {
        format!("exit: {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.all()))
    }
}

impl Repo {
    /// An empty repository on branch `main`.
    pub fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let r = Repo { dir, clock: std::cell::Cell::new(1_790_000_000) }; // 2026-09-21
        r.git(&["init", "-q", "-b", "main"]);
        r.git(&["config", "user.name", "tester"]);
        r.git(&["config", "user.email", "tester@example.com"]);
        r.git(&["config", "commit.gpgsign", "false"]);
        r
    }

    /// A repository whose first commit on main holds the example policies and templates.
    pub fn with_policies() -> Repo {
        let r = Repo::new();
        r.copy_dir("policies");
        r.copy_dir("templates");
        r.commit("bootstrap policies");
        r
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn copy_dir(&self, rel: &str) {
        let src = root().join(rel);
        for entry in walk(&src) {
            let relp = entry.strip_prefix(root()).unwrap();
            let dst = self.path().join(relp);
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            std::fs::copy(&entry, dst).unwrap();
        }
    }

    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> &Self {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap()
    }

    pub fn remove(&self, rel: &str) -> &Self {
        std::fs::remove_file(self.path().join(rel)).unwrap();
        self
    }

    pub fn git(&self, args: &[&str]) -> String {
        let t = self.clock.get();
        let date = format!("{t} +0000");
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Sets the time of the next commits.
    pub fn at(&self, rfc3339: &str) -> &Self {
        let t = chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp();
        self.clock.set(t);
        self
    }

    /// Commits everything; returns the commit id. Advances the clock a minute.
    pub fn commit(&self, msg: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", msg]);
        self.clock.set(self.clock.get() + 60);
        self.git(&["rev-parse", "HEAD"])
    }

    /// Commits as `login` (author `login@example.com`).
    pub fn commit_as(&self, login: &str, msg: &str) -> String {
        self.git(&["add", "-A"]);
        let author = format!("{login} <{login}@example.com>");
        self.git(&["commit", "-q", "--allow-empty", "--author", &author, "-m", msg]);
        self.clock.set(self.clock.get() + 60);
        self.git(&["rev-parse", "HEAD"])
    }

    pub fn branch(&self, name: &str) -> &Self {
        self.git(&["checkout", "-q", "-b", name]);
        self
    }

    pub fn checkout(&self, name: &str) -> &Self {
        self.git(&["checkout", "-q", name]);
        self
    }

    /// Merges `branch` into the current branch with a merge commit.
    pub fn merge(&self, branch: &str, msg: &str) -> String {
        self.git(&["merge", "-q", "--no-ff", "-m", msg, branch]);
        self.clock.set(self.clock.get() + 60);
        self.git(&["rev-parse", "HEAD"])
    }

    /// Runs gitgrant with `--repo <this repo>` and the given args.
    pub fn run(&self, args: &[&str]) -> Out {
        run_in(self.path(), args)
    }
}

/// Runs gitgrant in `dir`, replacing the temp path by `[REPO]` in outputs.
pub fn run_in(dir: &Path, args: &[&str]) -> Out {
    run_in_env(dir, args, &[])
}

/// [`run_in`] with extra environment variables for the child only (service DSNs, AWS endpoint).
pub fn run_in_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let out = Command::cargo_bin("gitgrant")
        .unwrap()
        .arg("--repo")
        .arg(dir)
        .args(args)
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("GITHUB_TOKEN")
        .env_remove("GITHUB_EVENT_PATH")
        .env("NO_COLOR", "1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let clean = |b: Vec<u8>| String::from_utf8_lossy(&b).replace(&dir.display().to_string(), "[REPO]");
    Out { code: out.status.code().unwrap_or(-1), stdout: clean(out.stdout), stderr: clean(out.stderr) }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Appends `lines` to the ledger branch as gitgrant would (a commit chained
/// by `Previous-ledger:`), creating the branch if it is absent.
pub fn append_ledger(r: &Repo, lines: &[serde_json::Value]) {
    let repo = git2::Repository::open(r.path()).unwrap();
    let head = repo.refname_to_id("refs/heads/gitgrant-ledger").ok();
    let parent = head.map(|h| repo.find_commit(h).unwrap());
    let tree = parent.as_ref().map(|p| p.tree().unwrap());
    let mut text = match tree.as_ref().and_then(|t| t.get_name("ledger.jsonl")) {
        Some(e) => String::from_utf8(repo.find_blob(e.id()).unwrap().content().to_vec()).unwrap(),
        None => String::new(),
    };
    for l in lines {
        text.push_str(&serde_json::to_string(l).unwrap());
        text.push('\n');
    }
    let blob = repo.blob(text.as_bytes()).unwrap();
    let mut tb = repo.treebuilder(tree.as_ref()).unwrap();
    tb.insert("ledger.jsonl", blob, 0o100644).unwrap();
    let tree = repo.find_tree(tb.write().unwrap()).unwrap();
    let sig = git2::Signature::now("mallory", "mallory@example.com").unwrap();
    let previous = head.map_or("none".to_string(), |h| h.to_string());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("refs/heads/gitgrant-ledger"), &sig, &sig, &format!("gitgrant ledger\n\nPrevious-ledger: {previous}\n"), &tree, &parents).unwrap();
}

/// A valid request body for the example policies.
pub fn request(requester: &str, role: &str, resources: &str, extra: &str) -> String {
    format!(
        "requester: {requester}\nrole: {role}\nresources: [{resources}]\nstart: 2026-12-01T10:00:00Z\nduration: 2h\nreason: \"INC-1: a long enough reason\"\n{extra}"
    )
}

/// The fixed clock for checks: before the example windows.
pub const NOW: &str = "2026-11-23T09:00:00Z";

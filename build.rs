//! Records the commit gitgrant is built from, for `gitgrant --version` and for
//! the action pin `gitgrant init` writes into an access repository's workflows.
//!
//! Sources, first that answers: `$GITGRANT_BUILD_COMMIT` (40 hex digits; release and container
//! builds that have no `.git`), `git rev-parse HEAD` when this crate's directory
//! is the top of a git checkout (never a parent repository that merely contains
//! an unpacked crate), the `.cargo_vcs_info.json` that `cargo package` writes
//! (installs from crates.io), else `unknown`. Never fails the build.
//!
//! Exports `GITGRANT_COMMIT` (full hex, or `unknown`), `GITGRANT_COMMIT_SHORT`
//! (12 hex digits, or `unknown`) and `GITGRANT_DIRTY` (`1` when tracked files
//! differ from that commit, or a packaged crate says so; `0` otherwise): a
//! dirty or unknown build never reuses stored landing verdicts, whose key is
//! the judge's version (`engine::verdict_store`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    println!("cargo:rerun-if-env-changed=GITGRANT_BUILD_COMMIT");
    let (commit, dirty) = match from_env() {
        Some(c) => (c, false),
        None => from_git(&dir).or_else(|| from_vcs_info(&dir)).unwrap_or_else(|| ("unknown".to_string(), true)),
    };
    println!("cargo:rustc-env=GITGRANT_DIRTY={}", u8::from(dirty));
    let short = if commit == "unknown" { commit.clone() } else { commit.chars().take(12).collect() };
    println!("cargo:rustc-env=GITGRANT_COMMIT={commit}");
    println!("cargo:rustc-env=GITGRANT_COMMIT_SHORT={short}");
}

/// A full or abbreviated commit id: 7 to 40 lowercase hex digits.
fn hex(s: &str) -> Option<String> {
    let s = s.trim().to_ascii_lowercase();
    ((7..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())).then_some(s)
}

/// Only a full 40-digit id: `init` pins the gitgrant action to it.
fn from_env() -> Option<String> {
    std::env::var("GITGRANT_BUILD_COMMIT").ok().and_then(|v| hex(&v)).filter(|c| c.len() == 40)
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn from_git(dir: &Path) -> Option<(String, bool)> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    let same = |a: &Path, b: &Path| a.canonicalize().ok().is_some_and(|a| b.canonicalize().ok().is_some_and(|b| a == b));
    if !same(Path::new(&top), dir) {
        return None;
    }
    let commit = hex(&git(dir, &["rev-parse", "HEAD"])?)?;
    // Rebuild when HEAD moves: the files git updates on checkout and commit.
    // Only existing paths: cargo reruns on every build for a missing one.
    let mut watched = false;
    let mut watch = |rel: &str| {
        if let Some(p) = git(dir, &["rev-parse", "--git-path", rel]) {
            // Relative to `dir` (git -C), or absolute in a linked worktree.
            let p = dir.join(p);
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
                watched = true;
            }
        }
    };
    watch("HEAD");
    watch("packed-refs");
    if let Some(head_ref) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch(&head_ref);
    }
    if !watched {
        println!("cargo:rerun-if-changed=build.rs");
    }
    // An edit to a tracked file makes the build dirty: rerun when sources change.
    for rel in ["src", "Cargo.toml", "build.rs"] {
        println!("cargo:rerun-if-changed={}", dir.join(rel).display());
    }
    let dirty = git(dir, &["status", "--porcelain", "--untracked-files=no"]).is_none_or(|s| !s.is_empty());
    Some((commit, dirty))
}

fn from_vcs_info(dir: &Path) -> Option<(String, bool)> {
    println!("cargo:rerun-if-changed=build.rs");
    let text = std::fs::read_to_string(dir.join(".cargo_vcs_info.json")).ok()?;
    // {"git": {"sha1": "<40 hex>"}, "path_in_vcs": ""}: no JSON parser in a build script.
    let rest = &text[text.find("\"sha1\"")? + 6..];
    let start = rest.find('"')? + 1;
    let end = start + rest[start..].find('"')?;
    let dirty = text.replace(' ', "").contains("\"dirty\":true");
    hex(&rest[start..end]).map(|c| (c, dirty))
}

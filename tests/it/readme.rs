//! The documentation is tested like code: the README's quickstart runs pasted
//! verbatim, the annotated policy example in the book passes `check --all`,
//! and every relative link in the README and the book leads somewhere.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::root;

/// A fenced code block: its info string (```` ```sh quickstart ```` gives
/// `sh quickstart`), its text and the line of its opening fence.
struct Block {
    info: String,
    body: String,
    line: usize,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match open.as_mut() {
            None if trimmed.starts_with("```") => {
                open = Some(Block { info: trimmed.trim_start_matches('`').trim().to_string(), body: String::new(), line: i + 1 });
            }
            Some(_) if trimmed.starts_with("```") => out.extend(open.take()),
            Some(b) => {
                b.body.push_str(line);
                b.body.push('\n');
            }
            None => {}
        }
    }
    assert!(open.is_none(), "an unclosed code fence");
    out
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A shell with the freshly built `gitgrant` first on PATH, a private HOME and a
/// git identity, as a newcomer's terminal would have after `cargo install`.
fn shell(dir: &Path, script: &str) -> std::process::Output {
    let bin = assert_cmd::cargo::cargo_bin("gitgrant");
    let bin_dir = bin.parent().unwrap().to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()))).unwrap();
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .current_dir(&work)
        .env("PATH", path)
        .env("HOME", &home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Newcomer")
        .env("GIT_AUTHOR_EMAIL", "newcomer@example.com")
        .env("GIT_COMMITTER_NAME", "Newcomer")
        .env("GIT_COMMITTER_EMAIL", "newcomer@example.com")
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_TOKEN")
        .env_remove("GITHUB_APP_ID")
        .env_remove("GITHUB_REPOSITORY")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("GITHUB_EVENT_PATH")
        .output()
        .unwrap()
}

#[test]
fn the_readme_quickstart_works_pasted_verbatim() {
    let readme = read("README.md");
    let steps: Vec<Block> = blocks(&readme).into_iter().filter(|b| b.info == "sh quickstart").collect();
    assert!(steps.len() >= 4, "the README's quickstart blocks are marked ```sh quickstart (found {})", steps.len());
    let script: String = steps.iter().map(|b| format!("# README.md:{}\n{}", b.line, b.body)).collect();
    let dir = tempfile::tempdir().unwrap();
    let out = shell(dir.path(), &script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!("--- script\n{script}--- stdout\n{stdout}--- stderr\n{stderr}");
    assert!(out.status.success(), "the quickstart failed ({}):\n{all}", out.status);
    for line in [
        "carol -> db-readonly on orders-db",
        "(tier medium)",
        "needs   1 from managers",
        "1 from managers: frank, grace",
        "1 of 1 approval: satisfied",
        "1 to grant, 0 to revoke",
        "ledger: 1 line(s) recorded on `gitgrant-ledger`",
        "granted       gitgrant",
    ] {
        assert!(stdout.contains(line), "the quickstart did not print `{line}`:\n{all}");
    }
    assert!(stderr.contains("check passed: 1 request"), "{all}");
    // The grant is real (the local provider's file) and the ledger reached the remote.
    let grants = std::fs::read_to_string(dir.path().join("work/access/.gitgrant/local-grants.json")).unwrap();
    assert!(grants.contains("carol"), "{grants}");
    let ledger = Command::new("git")
        .args(["--git-dir", "work/access-remote.git", "rev-parse", "--verify", "-q", "gitgrant-ledger"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(ledger.status.success(), "the ledger branch was not pushed to the quickstart's remote:\n{all}");
}

#[test]
fn the_annotated_policy_example_passes_check() {
    let chapter = read("docs/src/policies.md");
    let examples: Vec<Block> = chapter_blocks(&chapter, "yaml policy-example");
    assert_eq!(examples.len(), 1, "docs/src/policies.md has one ```yaml policy-example block");
    let example = &examples[0].body;
    for section in ["groups:", "identities:", "resources:", "roles:", "risk:", "  factors:", "  tiers:", "policy_changes:", "break_glass:", "monitor:"] {
        assert!(example.lines().any(|l| l.starts_with(section)), "the example lacks `{section}`");
    }
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "gitgrant init access >/dev/null\ncd access\nrm policies/*.yaml\ncat > policies/policy.yaml <<'GITGRANT_EXAMPLE'\n{example}GITGRANT_EXAMPLE\n\
         cat > requests/2026-12-01-carol-orders-db.yaml <<'YAML'\nrequester: carol\nrole: db-readonly\nresources: [orders-db]\nstart: 2026-12-01T10:00:00Z\nduration: 2h\nreason: \"INC-4211: orders stuck in pending\"\nticket: INC-4211\nYAML\n\
         gitgrant --now 2026-11-23T09:00:00Z check --all\n"
    );
    let out = shell(dir.path(), &script);
    let all = format!("--- stdout\n{}--- stderr\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "`gitgrant check --all` refused the policy example of docs/src/policies.md:\n{all}");
    // Judged under the example's own risk model: 25 + 10 + 4 + 10 = 49, tier medium.
    assert!(all.contains("risk    49 (tier medium)"), "{all}");
    assert!(all.contains("needs   1 from managers"), "{all}");
}

fn chapter_blocks(text: &str, info: &str) -> Vec<Block> {
    blocks(text).into_iter().filter(|b| b.info == info).collect()
}

/// Chapters other branches are writing at the same time. A link to one of them
/// is allowed while the file is missing; once it exists it is checked like the
/// rest. Empty this list when they have all landed.
const PENDING_CHAPTERS: &[&str] = &[];

/// GitHub's and mdBook's heading anchors: lowercase; letters, digits, `-` and
/// `_` kept; spaces become `-`; everything else dropped; repeats get `-1`, `-2`.
fn anchors(text: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        let slug: String = title
            .trim()
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let n = seen.iter().filter(|s| **s == slug || s.strip_prefix(&format!("{slug}-")).is_some_and(|r| r.parse::<u32>().is_ok())).count();
        seen.push(if n == 0 { slug } else { format!("{slug}-{n}") });
    }
    seen
}

/// Link targets outside code: `[text](target)` and `{{#include target}}`.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_code = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        // Drop inline code spans, then find `](`.
        let mut plain = String::new();
        for (k, part) in line.split('`').enumerate() {
            if k % 2 == 0 {
                plain.push_str(part);
            }
        }
        let mut rest = plain.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((i + 1, after[..end].trim().to_string()));
            rest = &after[end..];
        }
        if let Some(inc) = line.trim().strip_prefix("{{#include ").and_then(|l| l.strip_suffix("}}")) {
            out.push((i + 1, inc.trim().to_string()));
        }
    }
    out
}

fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut out = vec![root().join("README.md")];
    walk(&root().join("docs/src"), &mut out);
    out.sort();
    out
}

fn broken_links() -> Vec<String> {
    let root = root();
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let rel_file = file.strip_prefix(&root).unwrap().display().to_string();
        for (line, target) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let dest = if path.is_empty() { file.clone() } else { file.parent().unwrap().join(path) };
            let Ok(dest) = normalize(&dest) else {
                broken.push(format!("{rel_file}:{line}: `{target}` leaves the repository"));
                continue;
            };
            let rel_dest = dest.strip_prefix(&root).map(|p| p.display().to_string()).unwrap_or_default();
            if !dest.exists() {
                if !PENDING_CHAPTERS.contains(&rel_dest.as_str()) {
                    broken.push(format!("{rel_file}:{line}: `{target}`: no file {rel_dest}"));
                }
                continue;
            }
            if let Some(anchor) = anchor {
                let heads = std::fs::read_to_string(&dest).map(|t| anchors(&t)).unwrap_or_default();
                if !heads.iter().any(|h| h == anchor) {
                    broken.push(format!("{rel_file}:{line}: `{target}`: no heading `#{anchor}` in {rel_dest}"));
                }
            }
        }
    }
    broken
}

/// `a/b/../c` without touching the file system (the target may be missing).
fn normalize(p: &Path) -> Result<PathBuf, ()> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                if !out.pop() {
                    return Err(());
                }
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    if out.starts_with(root()) { Ok(out) } else { Err(()) }
}

#[test]
fn every_relative_link_in_the_readme_and_the_book_resolves() {
    let broken = broken_links();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_chapter_is_in_the_summary() {
    let summary = read("docs/src/SUMMARY.md");
    let listed: Vec<String> = links(&summary).into_iter().map(|(_, t)| t).collect();
    for file in markdown_files() {
        let Ok(rel) = file.strip_prefix(root().join("docs/src")) else { continue };
        let rel = rel.display().to_string();
        if rel != "SUMMARY.md" {
            assert!(listed.contains(&rel), "docs/src/{rel} is not listed in docs/src/SUMMARY.md");
        }
    }
}

#[test]
fn the_link_checker_finds_broken_links_and_anchors() {
    let text =
        "# Set up in your `GitHub` org\n## Set up in your GitHub org\n```\n# not a heading\n```\n[a](x.md) `[b](y.md)` [c](#set-up-in-your-github-org-1)\n";
    assert_eq!(anchors(text), ["set-up-in-your-github-org", "set-up-in-your-github-org-1"]);
    assert_eq!(links(text), [(6, "x.md".to_string()), (6, "#set-up-in-your-github-org-1".to_string())]);
    assert_eq!(anchors("## Emergency revoke: `gitgrant revoke --immediately`\n"), ["emergency-revoke-gitgrant-revoke---immediately"]);
}

//! `demo`, `init`, `request` and `extend` end to end: the built binary on real
//! git repositories; the interactive prompts under a pseudo-terminal
//! (rexpect); `--open-pr` against a wiremock GitHub and a local bare remote.

use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Out, Repo, run_in, run_in_env};

const DEMO_NOW: &str = "2026-12-01T09:00:00Z";

/// Runs the binary without `--repo` (demo, init with a DIR).
fn bare_run(args: &[&str], env: &[(&str, &str)]) -> Out {
    let out = Command::cargo_bin("gitgrant").unwrap().args(args).env("NO_COLOR", "1").envs(env.iter().copied()).output().unwrap();
    Out { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into(), stderr: String::from_utf8_lossy(&out.stderr).into() }
}

/// A repository holding `gitgrant init`'s scaffold, committed on main.
fn scaffolded() -> Repo {
    let r = Repo::new();
    r.at("2026-11-20T10:00:00Z");
    let out = run_in(r.path(), &["init"]);
    assert_eq!(out.code, 0, "{}", out.all());
    r.commit("bootstrap from gitgrant init");
    r
}

#[test]
fn demo_shows_the_whole_lifecycle() {
    let started = std::time::Instant::now();
    let out = bare_run(&["demo", "--now", DEMO_NOW], &[]);
    let took = started.elapsed();
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(out.stderr, "", "the demo prints everything on stdout");
    for step in
        ["check passed: 1 request", "error[GG206]", "[BREAK-GLASS]", "grant  local orders-db alice readonly: done", "revoke local orders-db bob admin: done"]
    {
        assert!(out.stdout.contains(step), "missing `{step}`:\n{}", out.stdout);
    }
    assert!(took.as_secs_f64() < 10.0, "the demo took {took:?}");
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"repository: .*", "repository: [DIR]");
    settings.add_filter(r"\b[0-9a-f]{10,40}\b", "[SHA]");
    settings.bind(|| insta::assert_snapshot!("demo", out.stdout));
}

#[test]
fn demo_keep_leaves_a_repository_that_checks() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("access");
    let out = bare_run(&["demo", "--now", DEMO_NOW, "--keep", keep.to_str().unwrap()], &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains(&format!("The repository is kept in {}", keep.display())), "{}", out.stdout);
    let check = run_in(&keep, &["--now", DEMO_NOW, "check", "--all"]);
    assert_eq!(check.code, 0, "{}", check.all());
    assert!(check.stdout.contains("2026-12-01-alice-db-readonly (unchanged)"), "{}", check.all());
    let git = |args: &[&str]| String::from_utf8(Command::new("git").args(args).current_dir(&keep).output().unwrap().stdout).unwrap();
    let branches = git(&["branch", "--format=%(refname:short)"]);
    for b in ["main", "gitgrant-ledger", "request/alice-orders-db", "request/heidi-db-admin", "request/bob-break-glass"] {
        assert!(branches.lines().any(|l| l == b), "no branch {b}: {branches}");
    }
    // The ledger records both grants and both revocations.
    let ledger = git(&["show", "gitgrant-ledger:ledger.jsonl"]);
    let actions: Vec<String> = ledger.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["action"].as_str().unwrap().to_string()).collect();
    assert_eq!(actions, ["grant", "grant", "revoke", "revoke"], "{ledger}");
    // A second demo never writes into a repository that is there.
    let again = bare_run(&["demo", "--now", DEMO_NOW, "--keep", keep.to_str().unwrap()], &[]);
    assert_eq!(again.code, 2, "{}", again.all());
    assert!(again.stderr.contains("not empty"), "{}", again.all());
}

#[test]
fn init_scaffold_passes_check_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("access");
    let out = bare_run(&["init", target.to_str().unwrap()], &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("initialised a git repository"), "{}", out.stdout);
    for f in [
        "policies/groups.yaml",
        "policies/roles.yaml",
        "policies/resources.yaml",
        "policies/risk.yaml",
        "policies/identities.yaml",
        "requests/.gitkeep",
        "templates/pr-comment.md.j2",
        "templates/job-summary.md.j2",
        ".github/workflows/gitgrant-check.yml",
        ".github/workflows/gitgrant-reconcile.yml",
        ".github/CODEOWNERS",
        "README.md",
    ] {
        assert!(target.join(f).is_file(), "{f} missing");
    }
    assert!(target.join(".git").is_dir());
    assert!(std::fs::read_to_string(target.join(".github/CODEOWNERS")).unwrap().contains("/policies/"));
    // Out of the box: the working tree (bootstrap) and, once committed, HEAD.
    let check = run_in(&target, &["--now", DEMO_NOW, "check", "--all"]);
    assert_eq!(check.code, 0, "{}", check.all());
    // Existing files: exit 2, each named, nothing written.
    std::fs::write(target.join("policies/roles.yaml"), "# mine\n").unwrap();
    std::fs::remove_file(target.join("README.md")).unwrap();
    let again = bare_run(&["init", target.to_str().unwrap()], &[]);
    assert_eq!(again.code, 2, "{}", again.all());
    assert!(again.stderr.contains("policies/roles.yaml") && again.stderr.contains("--force"), "{}", again.all());
    assert!(!target.join("README.md").exists(), "init half-applied");
    assert_eq!(std::fs::read_to_string(target.join("policies/roles.yaml")).unwrap(), "# mine\n");
    // --force replaces them, and an existing repository is not re-initialised.
    let forced = bare_run(&["init", "--force", target.to_str().unwrap()], &[]);
    assert_eq!(forced.code, 0, "{}", forced.all());
    assert!(forced.stdout.contains("policies/roles.yaml  (replaced)") && !forced.stdout.contains("initialised"), "{}", forced.stdout);
    assert!(target.join("README.md").is_file());
    let committed = Repo::new();
    let out = run_in(committed.path(), &["init"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(!out.stdout.contains("initialised"), "{}", out.stdout);
    committed.commit("bootstrap");
    let check = committed.run(&["--now", DEMO_NOW, "check", "--all"]);
    assert_eq!(check.code, 0, "{}", check.all());
    let check = committed.run(&["--now", DEMO_NOW, "check", "--base", "HEAD", "--head", "HEAD"]);
    assert_eq!(check.code, 0, "{}", check.all());
}

const ALICE: &[&str] = &[
    "--now",
    "2026-11-23T09:00:00Z",
    "request",
    "--as",
    "alice",
    "--role",
    "db-readonly",
    "--resource",
    "orders-db",
    "--start",
    "2026-12-01T10:00:00Z",
    "--duration",
    "2h",
    "--reason",
    "INC-4211: orders stuck: pending #1",
    "--ticket",
    "INC-4211",
];

#[test]
fn request_with_flags_writes_a_valid_unique_file() {
    let r = scaffolded();
    let out = r.run(ALICE);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("risk    49 (tier medium)") && out.stdout.contains("needs   1 from managers"), "{}", out.stdout);
    assert!(out.stdout.contains("wrote requests/2026-12-01-alice-db-readonly.yaml"), "{}", out.stdout);
    let text = r.read("requests/2026-12-01-alice-db-readonly.yaml");
    assert_eq!(
        text,
        "# yaml-language-server: $schema=../docs/schema/request.json\nrequester: alice\nrole: db-readonly\nresources: [orders-db]\nstart: 2026-12-01T10:00:00Z\nduration: 2h\nreason: \"INC-4211: orders stuck: pending #1\"\nticket: INC-4211\n"
    );
    // The same request again gets a new id; the first file is untouched.
    let again = r.run(ALICE);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(again.stdout.contains("wrote requests/2026-12-01-alice-db-readonly-2.yaml"), "{}", again.stdout);
    assert_eq!(r.read("requests/2026-12-01-alice-db-readonly.yaml"), text);
    // What it wrote passes check as written.
    let check = r.run(&["--now", "2026-11-23T09:00:00Z", "check"]);
    assert_eq!(check.code, 0, "{}", check.all());
    assert!(check.stdout.contains("2026-12-01-alice-db-readonly-2 (new)"), "{}", check.all());
}

#[test]
fn request_refuses_what_check_would_refuse_and_missing_flags() {
    let r = scaffolded();
    // heidi is not eligible for db-admin: nothing is written, exit 1.
    let out = r.run(&[
        "--now",
        "2026-11-23T09:00:00Z",
        "request",
        "--as",
        "heidi",
        "--role",
        "db-admin",
        "--resource",
        "orders-db",
        "--duration",
        "1h",
        "--reason",
        "CHG-1: add an index",
        "--ticket",
        "CHG-1",
    ]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("error[GG206]") && out.stderr.contains("not written"), "{}", out.all());
    assert_eq!(std::fs::read_dir(r.path().join("requests")).unwrap().count(), 1, "only .gitkeep");
    // Not on a terminal and flags missing: exit 2, naming them.
    let out = r.run(&["request", "--as", "alice", "--role", "db-readonly"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("missing --resource, --duration, --reason"), "{}", out.all());
    // No --as and no GitHub CLI login: a clear message.
    let home = tempfile::tempdir().unwrap();
    let h = home.path().to_str().unwrap();
    let out = run_in_env(r.path(), &["request", "--role", "db-readonly"], &[("HOME", h), ("GH_CONFIG_DIR", h), ("XDG_CONFIG_HOME", h)]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("cannot tell who you are: pass `--as LOGIN`"), "{}", out.all());
    // The login from GitHub CLI's hosts.yml.
    std::fs::write(home.path().join("hosts.yml"), "github.com:\n    git_protocol: https\n    user: bob\n").unwrap();
    let mut args = ALICE.to_vec();
    args.drain(3..5);
    let out = run_in_env(r.path(), &args, &[("GH_CONFIG_DIR", h)]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(r.read("requests/2026-12-01-bob-db-readonly.yaml").contains("requester: bob\n"));
}

#[test]
fn request_prompts_on_a_terminal() {
    let r = scaffolded();
    let bin = assert_cmd::cargo::cargo_bin("gitgrant");
    let mut cmd = Command::new(bin);
    cmd.arg("--repo").arg(r.path()).args(["--now", "2026-11-23T09:00:00Z", "request", "--as", "alice"]).env("NO_COLOR", "1").env("TERM", "dumb");
    let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).unwrap();
    // Roles alice is eligible for, sorted: db-admin, db-readonly, sandbox-user.
    p.exp_string("Role for alice").unwrap();
    p.exp_string("sandbox-user").unwrap();
    p.send("\x1b[B").unwrap(); // down: db-readonly
    p.send("\r").unwrap();
    p.flush().unwrap();
    // Resources db-readonly applies to: orders-db, sandbox.
    p.exp_string("Resources").unwrap();
    p.send(" ").unwrap();
    p.send("\r").unwrap();
    p.flush().unwrap();
    p.exp_string("Duration (at most 8h)").unwrap();
    p.send_line("2h").unwrap();
    p.exp_string("Reason").unwrap();
    p.send_line("INC-77: checking stuck orders").unwrap();
    p.exp_string("Ticket").unwrap();
    p.send_line("INC-77").unwrap();
    p.exp_string("Start (RFC 3339").unwrap();
    p.send_line("").unwrap();
    p.exp_string("Break-glass").unwrap();
    p.send_line("n").unwrap();
    // The verdict before writing: risk and approvals.
    p.exp_string("risk    ").unwrap();
    p.exp_string("needs   1 from managers").unwrap();
    p.exp_string("Write requests/2026-11-23-alice-db-readonly.yaml?").unwrap();
    p.send_line("y").unwrap();
    p.exp_string("wrote requests/2026-11-23-alice-db-readonly.yaml").unwrap();
    p.exp_eof().unwrap();
    let text = r.read("requests/2026-11-23-alice-db-readonly.yaml");
    assert!(
        text.contains("requester: alice\nrole: db-readonly\nresources: [orders-db]\nduration: 2h\nreason: \"INC-77: checking stuck orders\"\nticket: INC-77\n"),
        "{text}"
    );
    assert!(!text.contains("break_glass"), "{text}");
}

/// Lands a request on main with a merge commit carrying `Approved-by`.
fn land(r: &Repo, branch: &str, file: &str, text: &str, approver: &str) {
    r.branch(branch);
    r.write(file, text);
    r.commit("request");
    r.checkout("main");
    r.merge(branch, &format!("Merge {branch}\n\nApproved-by: {approver}\n"));
}

#[test]
fn extend_continues_a_merged_request_and_check_holds_it_to_that() {
    let r = scaffolded();
    let id = "2026-12-01-alice-db-readonly";
    let old = "requester: alice\nrole: db-readonly\nresources: [orders-db]\nstart: 2026-12-01T10:00:00Z\nduration: 2h\nreason: \"INC-4211: orders stuck\"\nticket: INC-4211\n";
    land(&r, "alice", &format!("requests/{id}.yaml"), old, "frank");
    r.branch("extend");
    let out = r.run(&["--now", "2026-12-01T11:30:00Z", "extend", id, "--by", "1h"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("window  2026-12-01 12:00 UTC -> 2026-12-01 13:00 UTC (1h)"), "{}", out.stdout);
    assert!(out.stdout.contains("needs   1 from managers"), "judged as a new request: {}", out.stdout);
    let text = r.read("requests/2026-12-01-alice-db-readonly-2.yaml");
    assert!(text.contains("start: 2026-12-01T12:00:00Z\nduration: 1h\nreason: \"Extends 2026-12-01-alice-db-readonly: INC-4211: orders stuck\"\nticket: INC-4211\nextends: 2026-12-01-alice-db-readonly\n"), "{text}");
    r.commit("extend");
    let check = r.run(&["--now", "2026-12-01T11:30:00Z", "check", "--base", "main", "--head", "extend"]);
    assert_eq!(check.code, 0, "{}", check.all());
    // By hand, wrong: another requester, another role, a gap.
    r.write(
        "requests/2026-12-01-bob-more.yaml",
        format!("requester: bob\nrole: db-admin\nresources: [orders-db]\nstart: 2026-12-01T12:30:00Z\nduration: 1h\nreason: \"INC-4211: orders stuck\"\nticket: INC-4211\nextends: {id}\n"),
    );
    r.commit("bad extension");
    let check = r.run(&["--now", "2026-12-01T11:30:00Z", "check", "--base", "main", "--head", "extend"]);
    assert_eq!(check.code, 1, "{}", check.all());
    assert_eq!(check.stderr.matches("error[GG219]").count(), 3, "{}", check.all());
    assert!(check.stderr.contains("must start when it ends (2026-12-01T12:00:00Z)"), "{}", check.all());
    // Nor one that is only on this branch.
    let out = r.run(&["--now", "2026-12-01T11:30:00Z", "extend", "2026-12-01-bob-more", "--by", "1h"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("is not on main yet"), "{}", out.all());
    // An unknown request cannot be extended.
    let out = r.run(&["--now", "2026-12-01T11:30:00Z", "extend", "nope-nope", "--by", "1h"]);
    assert_eq!(out.code, 2, "{}", out.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_open_pr_pushes_and_opens_the_pull_request() {
    let r = scaffolded();
    let remote = tempfile::tempdir().unwrap();
    let st = Command::new("git").args(["init", "-q", "--bare"]).arg(remote.path()).status().unwrap();
    assert!(st.success());
    r.git(&["remote", "add", "origin", remote.path().to_str().unwrap()]);
    r.git(&["push", "-q", "origin", "main"]);
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/access/pulls"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"number": 42, "html_url": "https://github.example/acme/access/pull/42"})))
        .expect(1)
        .mount(&server)
        .await;
    let api = server.uri();
    let dir = r.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        let mut args = ALICE.to_vec();
        args[14] = "INC-4211: *urgent* <b>@security</b> look";
        args.extend(["--open-pr", "--github-repo", "acme/access"]);
        run_in_env(&dir, &args, &[("GITHUB_API_URL", &api), ("GITHUB_TOKEN", "dummy")])
    })
    .await
    .unwrap();
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("opened pull request #42 on acme/access"), "{}", out.stdout);
    // The branch is on the remote with the request file.
    let branch = "request/2026-12-01-alice-db-readonly";
    let show = Command::new("git")
        .arg("--git-dir")
        .arg(remote.path())
        .args(["show", &format!("{branch}:requests/2026-12-01-alice-db-readonly.yaml")])
        .output()
        .unwrap();
    assert!(show.status.success(), "{}", String::from_utf8_lossy(&show.stderr));
    assert!(String::from_utf8_lossy(&show.stdout).contains("requester: alice"));
    let sent: Vec<Value> = server.received_requests().await.unwrap().iter().map(|q| q.body_json::<Value>().unwrap()).collect();
    assert_eq!(sent.len(), 1);
    let pr = &sent[0];
    assert_eq!(pr["head"], branch);
    assert_eq!(pr["base"], "main");
    let body = pr["body"].as_str().unwrap();
    assert!(body.contains("| risk | 49 (tier medium) |") && body.contains("| needs | 1 from managers |"), "{body}");
    assert!(body.contains("&#42;urgent&#42;") && body.contains("&lt;b&gt;") && body.contains("@\u{200d}security"), "user text must be escaped: {body}");
    assert!(!body.contains("<b>") && !body.contains("@security"), "{body}");
}

/// `--version` names the commit the binary was built from, and `init` pins the
/// gitgrant action in the workflows it writes to that same commit (a release
/// binary is built from its tag, so the pin names the release).
#[test]
fn version_names_the_build_commit_and_init_pins_the_action_to_it() {
    let out = bare_run(&["--version"], &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    let commit =
        out.stdout.trim().strip_prefix("gitgrant 0.1.0 (commit ").and_then(|s| s.strip_suffix(')')).unwrap_or_else(|| panic!("{}", out.stdout)).to_string();
    assert!(commit == "unknown" || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())), "{commit}");
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\(commit [0-9a-f]{12}\)", "(commit [COMMIT])");
    settings.add_filter(r"\(commit unknown\)", "(commit [COMMIT])");
    settings.bind(|| insta::assert_snapshot!("version", out.all()));

    let dir = tempfile::tempdir().unwrap();
    assert_eq!(bare_run(&["init", dir.path().to_str().unwrap()], &[]).code, 0);
    for wf in ["gitgrant-check.yml", "gitgrant-reconcile.yml"] {
        let text = std::fs::read_to_string(dir.path().join(".github/workflows").join(wf)).unwrap();
        assert!(!text.contains("@@"), "{wf}: a placeholder was left:\n{text}");
        assert!(text.contains("GITGRANT_VERSION: \"0.1.0\""), "{wf}");
        let pins: Vec<&str> = text.lines().filter_map(|l| l.trim().strip_prefix("uses: gitgrant/gitgrant@")).collect();
        assert!(!pins.is_empty(), "{wf} does not use the gitgrant action");
        for pin in pins {
            let (sha, tag) = pin.split_once(" # ").unwrap_or((pin, ""));
            if commit == "unknown" {
                assert_eq!(sha, "v0.1.0", "{wf}");
            } else {
                assert!(sha.len() == 40 && sha.starts_with(&commit), "{wf}: the action is pinned to `{sha}`, not the build commit {commit}");
                assert_eq!(tag, "v0.1.0", "{wf}");
            }
        }
    }
    // The rule files, including CODEOWNERS itself wherever GitHub looks for it.
    let owners = std::fs::read_to_string(dir.path().join(".github/CODEOWNERS")).unwrap();
    let owned: Vec<&str> = owners.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(owned, ["/policies/", "/templates/", "/.github/", "/.github/CODEOWNERS", "/CODEOWNERS", "/docs/CODEOWNERS"]);
}

//! Whole-command behaviour: schema, explain output, plain-git approvals.

use crate::support::{NOW, Repo, request, root};

#[test]
fn committed_schemas_match_the_binary() {
    for kind in ["request", "policy"] {
        let out = crate::support::run_in(&root(), &["schema", kind]);
        assert_eq!(out.code, 0);
        let committed = std::fs::read_to_string(root().join(format!("docs/schema/{kind}.json"))).unwrap();
        assert_eq!(out.stdout, committed, "docs/schema/{kind}.json is stale: run `gitgrant schema {kind} > docs/schema/{kind}.json`");
        let v: serde_json::Value = serde_json::from_str(&committed).unwrap();
        assert_eq!(v["additionalProperties"], false, "unknown fields must be rejected by editors too");
    }
}

/// The example requests in a fresh repository (stable history for snapshots).
fn example_repo() -> Repo {
    let r = Repo::with_policies();
    r.branch("pr");
    r.copy_dir("requests");
    r.commit("example requests");
    r
}

#[test]
fn explain_output_for_the_example_requests() {
    let r = example_repo();
    for id in ["2026-12-01-carol-orders-db", "2026-12-01-heidi-sandbox", "2026-12-02-bob-prod-aws", "2026-12-03-ivan-analytics"] {
        let out = r.run(&["explain", id, "--now", NOW]);
        assert_eq!(out.code, 0, "{}", out.all());
        let text = out.all().replace(&r.git(&["rev-parse", "HEAD"])[..12], "[BASE]");
        insta::assert_snapshot!(format!("explain-{id}"), text);
    }
}

#[test]
fn explain_accepts_a_path_and_reports_unknown_requests() {
    let r = example_repo();
    let out = r.run(&["explain", "requests/2026-12-01-heidi-sandbox.yaml", "--now", NOW, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(out.json()["request"]["id"], "2026-12-01-heidi-sandbox");
    let missing = r.run(&["explain", "2026-01-01-nobody", "--now", NOW]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("no request `2026-01-01-nobody`"), "{}", missing.stderr);
}

#[test]
fn check_human_output_on_the_example_requests() {
    let r = example_repo();
    let out = r.run(&["check", "--base", "main", "--head", "pr", "--now", NOW]);
    assert_eq!(out.code, 0, "{}", out.all());
    insta::assert_snapshot!("check-human-examples", out.all());
}

/// Lands `files` from branch `pr` with a merge commit carrying `trailers`.
fn land(r: &Repo, author: &str, files: &[(&str, String)], trailers: &str) -> String {
    r.branch("pr");
    for (p, c) in files {
        r.write(p, c);
    }
    r.commit_as(author, "request access");
    r.checkout("main");
    r.merge("pr", &format!("Merge pull request #7 from {author}/pr\n\n{trailers}"))
}

#[test]
fn approved_by_trailers_satisfy_the_tier() {
    let r = Repo::with_policies();
    // carol, db-readonly on orders-db: medium tier, 1 from managers.
    let sha =
        land(&r, "carol", &[("requests/2026-12-01-carol-db.yaml", request("carol", "db-readonly", "orders-db", "ticket: INC-1\n"))], "Approved-by: frank");
    let out = r.run(&["approvals", "--commit", &sha, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let j = out.json();
    assert_eq!(j["decision"]["satisfied"], true);
    assert_eq!(j["decision"]["slots"][0]["filled_by"], "frank");
    assert_eq!(j["direct_push"], false);
}

#[test]
fn the_requester_cannot_approve_their_own_request() {
    let r = Repo::with_policies();
    // bob asks for break-glass; the break-glass rule needs 1 from sre; bob is sre.
    let body = "requester: bob\nrole: db-write\nresources: [orders-db]\nstart: 2026-12-01T02:00:00Z\nduration: 1h\nreason: production is down\nticket: INC-77\nbreak_glass: true\n";
    let sha = land(&r, "bob", &[("requests/2026-12-01-bob-bg.yaml", body.to_string())], "Approved-by: bob");
    let out = r.run(&["approvals", "--commit", &sha]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains("could approve: alice"), "{}", out.stdout);
    let ok = {
        let r2 = Repo::with_policies();
        let sha = land(&r2, "bob", &[("requests/2026-12-01-bob-bg.yaml", body.to_string())], "Approved-by: alice");
        r2.run(&["approvals", "--commit", &sha])
    };
    assert_eq!(ok.code, 0, "{}", ok.all());
}

#[test]
fn one_person_fills_one_slot() {
    let r = Repo::with_policies();
    // carol, db-write, 3h, no prior history -> high tier: 1 manager + 1 security.
    let body =
        "requester: carol\nrole: db-write\nresources: [orders-db]\nstart: 2026-12-01T09:00:00Z\nduration: 3h\nreason: data fix for INC-9\nticket: INC-9\n";
    let sha = land(&r, "carol", &[("requests/2026-12-01-carol-fix.yaml", body.to_string())], "Approved-by: frank\nApproved-by: grace");
    let out = r.run(&["approvals", "--commit", &sha, "--format", "json"]);
    assert_eq!(out.code, 1, "two managers cannot fill the security slot: {}", out.all());
    let j = out.json();
    let unfilled: Vec<_> = j["decision"]["slots"].as_array().unwrap().iter().filter(|s| s["filled_by"].is_null()).collect();
    assert_eq!(unfilled.len(), 1);
    assert_eq!(unfilled[0]["candidates"], serde_json::json!(["dave", "erin"]));
}

#[test]
fn a_direct_push_is_reported() {
    let r = Repo::with_policies();
    r.write("requests/2026-12-01-carol-db.yaml", request("carol", "db-readonly", "orders-db", ""));
    let sha = r.commit_as("carol", "just push it");
    let out = r.run(&["approvals", "--commit", &sha]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains("direct push"), "{}", out.stdout);
}

#[test]
fn help_lists_every_command_with_examples() {
    let out = crate::support::run_in(&root(), &["--help"]);
    assert_eq!(out.code, 0);
    for cmd in ["check", "explain", "approvals", "schema"] {
        assert!(out.stdout.contains(cmd), "{cmd} missing from --help");
        let sub = crate::support::run_in(&root(), &[cmd, "--help"]);
        assert!(sub.stdout.contains("Example"), "`{cmd} --help` has no example");
    }
}

// Papercuts from issue 15 (item 11), one regression test each.

fn gitgrant() -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("gitgrant"));
    cmd.env("NO_COLOR", "1").env_remove("GITHUB_TOKEN").env_remove("GITHUB_STEP_SUMMARY");
    cmd
}

/// Runs `args` with stdout closed before it writes: as `gitgrant ... | head`
/// when head has already exited.
fn into_closed_pipe(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    use std::process::Stdio;
    let mut child = gitgrant().current_dir(dir).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn output_into_a_closed_pipe_exits_quietly() {
    let r = example_repo();
    for args in
        [&["schema", "policy"][..], &["check", "--all", "--format", "json", "--now", NOW], &["completions", "bash"], &["explain", "2026-12-01-carol-orders-db"]]
    {
        let (code, stderr) = into_closed_pipe(r.path(), args);
        assert_eq!(code, Some(141), "gitgrant {args:?} into a closed pipe: {stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "gitgrant {args:?}: {stderr}");
    }
}

#[test]
fn now_only_fixes_the_clock_and_revoke_acts_with_immediately() {
    let r = example_repo();
    let out = r.run(&["revoke", "2026-12-01-carol-orders-db", "--now"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("--immediately"), "a bare --now names the flag that acts now: {}", out.stderr);
    let out = r.run(&["revoke", "--now", "2026-12-01-carol-orders-db"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("is not an RFC 3339 time") && out.stderr.contains("--immediately"), "{}", out.stderr);
    let help = r.run(&["revoke", "--help"]);
    assert!(help.stdout.contains("--immediately"), "{}", help.stdout);
}

#[test]
fn term_dumb_gets_no_colour() {
    let r = Repo::with_policies();
    r.write("requests/2026-12-01-ivan-db.yaml", request("ivan", "db-write", "orders-db", "ticket: INC-1\n"));
    let colour_of = |term: &str| {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("gitgrant"));
        cmd.arg("--repo").arg(r.path()).args(["check", "--now", NOW]).env_remove("NO_COLOR").env_remove("CLICOLOR_FORCE").env("TERM", term);
        let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).unwrap();
        let text = p.exp_eof().unwrap();
        assert!(text.contains("GG206"), "{text}");
        text.contains("\u{1b}[")
    };
    assert!(colour_of("xterm-256color"), "a colour terminal gets colour (else this test proves nothing)");
    assert!(!colour_of("dumb"), "TERM=dumb gets none");
}

#[test]
fn man_pages_exist_for_every_page_they_refer_to() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::support::run_in(&root(), &["completions", "--man", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.all());
    let mut names: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    for expected in ["gitgrant.1", "gitgrant-check.1", "gitgrant-revoke.1", "gitgrant-audit.1", "gitgrant-audit-verify.1"] {
        assert!(names.iter().any(|n| n == expected), "{expected} not generated: {names:?}");
    }
    for name in &names {
        let page = std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert!(page.contains(".SH \"EXIT STATUS\""), "{name} has no EXIT STATUS section");
        assert!(page.contains(".SH ENVIRONMENT"), "{name} has no ENVIRONMENT section");
        // Every gitgrant-X(1) it points at was generated.
        for (at, _) in page.match_indices("(1)") {
            let start = page[..at].rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '\\')).map_or(0, |i| i + 1);
            let target = page[start..at].replace("\\-", "-");
            if target.starts_with("gitgrant") {
                assert!(names.contains(&format!("{target}.1")), "{name} refers to {target}(1), which was not generated");
            }
        }
    }
    // `--man` alone still prints the top page.
    let top = crate::support::run_in(&root(), &["completions", "--man"]);
    assert_eq!(top.code, 0);
    assert_eq!(top.stdout, std::fs::read_to_string(dir.path().join("gitgrant.1")).unwrap());
}

#[test]
fn times_print_to_the_second_in_utc() {
    // `gitgrant init`'s resources are all local: the plan needs no credentials.
    let r = Repo::new();
    assert_eq!(r.run(&["init"]).code, 0);
    r.commit("bootstrap from gitgrant init");
    let out = r.run(&["plan"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let first = out.stdout.lines().next().unwrap();
    let at = first.strip_prefix("plan at ").and_then(|l| l.split(' ').next()).unwrap();
    assert_eq!(at.len(), "2026-12-01T10:00:00Z".len(), "{first}");
    assert!(at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{first}");
}

#[test]
fn the_repository_root_is_found_from_a_subdirectory_and_its_absence_explained() {
    let r = example_repo();
    let out = gitgrant().current_dir(r.path().join("requests")).args(["check", "--all", "--now", NOW]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let empty = tempfile::tempdir().unwrap();
    let out = gitgrant().current_dir(empty.path()).args(["check"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not an access repository (no policies/ found in") && stderr.contains("or its parents); run `gitgrant init`"), "{stderr}");
    assert!(!stderr.contains("GG304"), "{stderr}");
}

#[test]
fn git_error_codes_do_not_leak_into_messages() {
    // An access repository on disk that is not a git repository.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    for cmd in ["plan", "audit", "revoke"] {
        let args: &[&str] = if cmd == "revoke" { &["revoke", "x"] } else { &[cmd] };
        let out = crate::support::run_in(dir.path(), args);
        assert_eq!(out.code, 2, "{}", out.all());
        assert!(out.stderr.contains("not a git repository"), "{}", out.all());
        assert!(!out.stderr.contains("class=") && !out.stderr.contains("code="), "libgit2's tail leaked: {}", out.stderr);
    }
}

#[test]
fn a_request_saved_as_yml_fails_the_check_with_a_rename_hint() {
    let r = Repo::with_policies();
    r.branch("pr");
    r.write("requests/2026-12-01-carol-db.yml", request("carol", "db-readonly", "orders-db", "ticket: INC-1\n"));
    r.commit("request, misnamed");
    for args in [&["check", "--base", "main", "--head", "pr", "--now", NOW][..], &["check", "--now", NOW, "--all"]] {
        let out = r.run(args);
        assert_eq!(out.code, 1, "a .yml request must not pass green: {}", out.all());
        assert!(out.stderr.contains("error[GG014]"), "{}", out.all());
        assert!(out.stderr.contains("git mv requests/2026-12-01-carol-db.yml requests/2026-12-01-carol-db.yaml"), "{}", out.all());
    }
}

#[test]
fn prompts_wait_for_enter_so_an_answer_never_spills_into_the_next_question() {
    let r = Repo::new();
    assert_eq!(r.run(&["init"]).code, 0);
    r.commit("bootstrap from gitgrant init");
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("gitgrant"));
    cmd.arg("--repo").arg(r.path()).args(["--now", NOW, "request", "--as", "alice", "--role", "db-readonly", "--resource", "orders-db", "--duration", "2h"]);
    cmd.args(["--ticket", "INC-77"]).env("NO_COLOR", "1").env("TERM", "dumb");
    let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).unwrap();
    p.exp_string("Reason").unwrap();
    p.send_line("INC-77: checking stuck orders").unwrap();
    p.exp_string("Start (RFC 3339").unwrap();
    p.send_line("").unwrap();
    // "n" and Enter: with one-keypress prompts the Enter answered "Write ...?" (yes).
    p.exp_string("Break-glass").unwrap();
    p.send_line("n").unwrap();
    p.exp_string("Write requests/2026-11-23-alice-db-readonly.yaml?").unwrap();
    p.send_line("n").unwrap();
    p.exp_string("nothing written").unwrap();
    p.exp_eof().unwrap();
    assert!(!r.path().join("requests/2026-11-23-alice-db-readonly.yaml").exists());
}

#[test]
fn demo_keep_prints_the_clock_to_explore_with() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("access");
    let out = crate::support::run_in(&root(), &["demo", "--keep", keep.to_str().unwrap(), "--now", "2026-11-23T09:00:00Z"]);
    assert_eq!(out.code, 0, "{}", out.all());
    // The story ends 190 minutes after its clock.
    assert!(out.stdout.contains("with --now 2026-11-23T12:10:00Z"), "{}", out.stdout);
    assert!(out.stdout.contains("gitgrant plan --now 2026-11-23T12:10:00Z"), "{}", out.stdout);
    let plan = crate::support::run_in(&keep, &["plan", "--now", "2026-11-23T12:10:00Z"]);
    assert_eq!(plan.code, 0, "the printed clock works in the kept repository: {}", plan.all());
}

//! Hostile input through every command and every format (issue 13, item 4):
//! a real repository whose file names, request fields, commit messages and
//! provider activity carry workflow commands (`\n::error::X`,
//! `\r::warning::X`, `::add-mask::`, the legacy `##[error]`), bidi overrides
//! and formula cells. No line of any output may begin a command that the
//! renderer did not write, carry a raw control character, or hold a CSV cell
//! a spreadsheet would run.

use gitgrant::render::escape::is_hidden;

use crate::support::{Out, Repo, run_in};

const POLICIES: &str = r#"
groups:
  dev: { members: [heidi, ivan] }
  managers: { members: [frank, grace] }
identities: { heidi: {}, ivan: {}, frank: {}, grace: {} }
resources:
  sandbox: { provider: local, environment: staging, sensitivity: low, config: { state: state/grants.json, activity: state/activity.jsonl } }
roles:
  user:
    privilege: read
    max_duration: 8h
    eligible: [dev]
    grants: { local: { role: user } }
risk:
  factors:
    sensitivity: { low: 0, high: 25 }
  tiers:
    - { name: auto, max_score: 10, approvals: [] }
    - { name: managed, max_score: 100, approvals: [ { from: [managers], count: 1 } ] }
policy_changes:
  approvals: [ { from: [managers], count: 1 } ]
monitor:
  rules:
    - { name: no-iam, roles: [user], deny_actions: ["iam:*"], revoke: true }
"#;

const NOW: &str = "2026-12-01T10:05:00Z";

/// A request whose free-text fields are hostile but valid (YAML escapes).
fn body(role: &str, resource: &str) -> String {
    format!(
        "requester: heidi\nrole: \"{role}\"\nresources: [\"{resource}\"]\nstart: 2026-12-01T10:00:00Z\nduration: 2h\n\
         reason: \"INC-9: \\u202Efix the sandbox\\n::error::reason-X ##[error]legacy-X\"\nticket: \"T-1\\n::add-mask::X\"\n"
    )
}

/// Lands `files` through a branch whose commit and merge messages are hostile.
fn land(r: &Repo, branch: &str, files: &[(&str, String)]) {
    r.branch(branch);
    for (p, c) in files {
        r.write(p, c);
    }
    r.commit_as("heidi", "ask for the sandbox\n\n::error::commit-body-X\n##[error]commit-legacy-X\n\u{202e}txt.exe");
    r.checkout("main");
    r.merge(branch, &format!("Merge pull request #9 from {branch}\n::warning::merge-subject-X\n\nApproved-by: frank\n"));
}

fn hostile_repo() -> Repo {
    let r = Repo::new();
    r.at("2026-11-20T10:00:00Z");
    r.write("policies/all.yaml", POLICIES);
    r.commit("bootstrap policies");
    // A valid request carrying hostile text: it is granted, so it reaches reconcile, the ledger, audit and monitor.
    land(&r, "heidi-ok", &[("requests/hostile-ok.yaml", body("user", "sandbox"))]);
    // Files that check refuses: the name itself, and role/resource values.
    land(
        &r,
        "heidi-bad",
        &[
            ("requests/evil\n::error::X.yaml", body("user", "sandbox")),
            ("requests/hostile-role.yaml", body("user\\n::error::role-X", "sandbox")),
            ("requests/hostile-resource.yaml", body("user", "sandbox\\r::warning::resource-X\\u202E ##[error]legacy-X")),
            ("requests/=cmd.yaml", body("user", "sandbox")),
        ],
    );
    // Policies to simulate against.
    r.branch("other-policies");
    r.write("policies/all.yaml", POLICIES.replace("max_score: 10", "max_score: 0"));
    r.commit("stricter auto tier");
    r.checkout("main");
    r
}

/// Provider activity (the local source) with hostile event ids and actions.
fn hostile_activity(r: &Repo) {
    let lines = [
        serde_json::json!({"id": "ev-1\n::error::event-X", "time": "2026-12-01T10:20:00Z", "principal": "heidi", "action": "iam:CreateUser\n::error::action-X\r::warning::X"}),
        serde_json::json!({"id": "ev-2", "time": "2026-12-01T10:21:00Z", "principal": "heidi", "action": "s3:List\u{202e}txt ##[error]X"}),
    ];
    r.write("state/activity.jsonl", lines.iter().map(|l| format!("{l}\n")).collect::<String>());
}

/// The workflow commands gitgrant's renderer writes (annotations; it writes no groups).
const COMMANDS: [&str; 3] = ["error", "warning", "notice"];

/// Every `%` in escaped command text starts one of the runner's escapes.
fn escaped(text: &str, escapes: &[&str]) -> bool {
    text.match_indices('%').all(|(i, _)| escapes.iter().any(|e| text[i + 1..].starts_with(e)))
}

/// Asserts the safety rules on one command's output; returns stdout and stderr joined.
fn assert_inert(what: &str, out: &Out) -> String {
    assert!(!out.stderr.contains("panicked"), "{what} panicked:\n{}", out.all());
    assert!(out.code >= 0 && out.code <= 2, "{what}: exit {}\n{}", out.code, out.all());
    for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        for line in text.split('\n') {
            let bad = line.chars().find(|c| is_hidden(*c));
            assert!(bad.is_none(), "{what} {stream}: raw {bad:?} in line {line:?}");
            assert!(!line.contains("##["), "{what} {stream}: legacy command prefix in {line:?}");
            let t = line.trim_start();
            let Some(rest) = t.strip_prefix("::") else { continue };
            // Only the renderer's own commands, properties and data escaped as the runner unescapes them.
            let end = rest.find("::").unwrap_or_else(|| panic!("{what} {stream}: `::` line without a command: {line:?}"));
            let (info, data) = (&rest[..end], &rest[end + 2..]);
            let (name, props) = info.split_once(' ').unwrap_or((info, ""));
            assert!(COMMANDS.contains(&name), "{what} {stream}: command `{name}` is not the renderer's: {line:?}");
            // The renderer's annotations always carry a title or a file: a bare `::error::X` is injected.
            assert!(props.starts_with("title=") || props.starts_with("file="), "{what} {stream}: annotation without properties (injected?): {line:?}");
            assert!(escaped(props, &["25", "0D", "0A", "3A", "2C"]), "{what} {stream}: unescaped property in {line:?}");
            assert!(escaped(data, &["25", "0D", "0A"]), "{what} {stream}: unescaped data in {line:?}");
            for p in props.split(',').filter(|p| !p.is_empty()) {
                let (k, _) = p.split_once('=').unwrap_or_else(|| panic!("{what}: property without `=`: {line:?}"));
                assert!(["file", "line", "col", "title"].contains(&k), "{what}: property `{k}` is not the renderer's: {line:?}");
            }
        }
    }
    format!("{}\n{}", out.stdout, out.stderr)
}

fn assert_csv(what: &str, out: &Out) {
    let mut rd = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(out.stdout.as_bytes());
    let mut rows = 0;
    for rec in rd.records() {
        let rec = rec.unwrap_or_else(|e| panic!("{what}: not CSV ({e}):\n{}", out.stdout));
        rows += 1;
        for cell in rec.iter() {
            assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']), "{what}: formula cell {cell:?}");
        }
    }
    assert!(rows > 0, "{what}: no CSV rows:\n{}", out.all());
}

fn assert_json(what: &str, out: &Out) {
    let text = out.stdout.trim();
    let whole = serde_json::from_str::<serde_json::Value>(text).is_ok();
    let lines = text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok());
    assert!(whole || lines, "{what}: stdout is not JSON:\n{}", out.all());
}

/// Runs one command in each format, checking every output.
fn every_format(r: &Repo, args: &[&str], formats: &[&str], seen: &mut String) {
    for f in formats {
        let mut full = vec!["--now", NOW, "--format", f];
        full.extend_from_slice(args);
        let out = run_in(r.path(), &full);
        let what = format!("gitgrant {} --format {f}", args.join(" "));
        seen.push_str(&assert_inert(&what, &out));
        match *f {
            "csv" => assert_csv(&what, &out),
            "json" => assert_json(&what, &out),
            _ => {}
        }
    }
}

#[test]
fn hostile_text_is_inert_in_every_command_and_format() {
    let r = hostile_repo();
    let mut seen = String::new();
    let all = ["human", "github", "json"];
    every_format(&r, &["check", "--all"], &all, &mut seen);
    every_format(&r, &["explain", "hostile-ok"], &all, &mut seen);
    every_format(&r, &["explain", "hostile-role"], &all, &mut seen);
    every_format(&r, &["plan"], &all, &mut seen);
    // What a reviewer reads in a CI log: the annotations, and the plan as people see it.
    // NOTE: the plan still grants the invalid ids `=cmd` and `evil\n::error::X` (issue 13 item 1,
    // fixed by the one decision engine); this snapshot changes when that lands: only the
    // escaping is asserted here.
    let check = run_in(r.path(), &["--now", NOW, "--format", "github", "check", "--all"]);
    insta::assert_snapshot!("hostile-check-github", check.all());
    let plan = run_in(r.path(), &["--now", NOW, "--format", "github", "plan"]);
    insta::with_settings!({ filters => vec![(r"\b[0-9a-f]{10,40}\b", "[SHA]")] }, {
        insta::assert_snapshot!("hostile-plan-github", plan.all());
    });
    // The first run grants hostile-ok at the local provider and writes the ledger.
    every_format(&r, &["reconcile"], &["github", "human", "json"], &mut seen);
    assert!(r.read("state/grants.json").contains("hostile-ok"), "hostile-ok was not granted; the later commands would see no hostile ledger data");
    every_format(&r, &["audit"], &["human", "json", "csv"], &mut seen);
    every_format(&r, &["audit", "verify"], &["human", "github", "json", "csv"], &mut seen);
    every_format(&r, &["audit", "who", "--resource", "sandbox"], &["human", "json", "csv"], &mut seen);
    every_format(&r, &["audit", "replay", "hostile-ok"], &["human", "json"], &mut seen);
    every_format(&r, &["simulate", "--policies", "other-policies"], &all, &mut seen);
    every_format(&r, &["prune", "--dry-run"], &["human", "json"], &mut seen);
    hostile_activity(&r);
    every_format(&r, &["monitor", "--at", "2026-12-01T10:30:00Z"], &["github", "human", "json"], &mut seen);
    every_format(&r, &["revoke", "hostile-ok", "--no-pr"], &["human", "json"], &mut seen);

    // The hostile text did reach the outputs, shown escaped (the test is not vacuous).
    if let Ok(dump) = std::env::var("GITGRANT_HOSTILE_DUMP") {
        std::fs::write(dump, &seen).unwrap();
    }
    for shown in ["\\u{202e}", "evil\\n::error::X.yaml", "user\\n::error::role-X", "sandbox\\r::warning::resource-X", "##\\[error]"] {
        assert!(seen.contains(shown), "`{shown}` never appeared in any output");
    }
    assert!(seen.contains("%0A::error::"), "no GitHub annotation carried the hostile text as escaped data");
    assert!(seen.contains("action-X"), "the monitor finding with the hostile action was not printed");
    // `requests/=cmd.yaml` reached the CSV outputs as a neutralised cell.
    assert!(seen.contains("'=cmd"), "no CSV cell carried the formula-looking request id");
}

/// The gate's stdout and stderr (its log lines) with a hostile reason and a
/// hostile file name in the PR's file list, against the GitHub API fake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_log_is_inert() {
    use crate::github_gate::{REQUEST, file, gate, mixed_reviews, mount_pr, mount_review_pages, pr_repo};
    let pr = pr_repo("INC-42: \u{202e}fix ::error::gate-X ##[error]legacy-X");
    let server = wiremock::MockServer::start().await;
    mount_pr(&server, &pr, vec![file(REQUEST, "added"), file("requests/evil\n::error::X.yaml", "added")], vec![]).await;
    mount_review_pages(&server, mixed_reviews(&pr)).await;
    let mut seen = String::new();
    for f in ["human", "github", "json"] {
        let out = gate(pr.repo.path(), &server.uri(), &["--format", f]).await;
        seen.push_str(&assert_inert(&format!("gate --format {f}"), &out));
        if f == "json" {
            assert_json("gate --format json", &out);
        }
    }
    if let Ok(dump) = std::env::var("GITGRANT_HOSTILE_GATE_DUMP") {
        std::fs::write(dump, &seen).unwrap();
    }
    assert!(seen.contains("evil\\n::error::X.yaml") || seen.contains("evil%0A::error::X.yaml"), "the hostile file name was not reported:\n{seen}");
}

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

//! `check` on real git histories: merge-base policies, change classes, exit codes.

use crate::support::{NOW, Repo, request};

/// A repo with policies on main and a branch `pr` holding `files`.
fn pr_with(files: &[(&str, &str)]) -> Repo {
    let r = Repo::with_policies();
    r.branch("pr");
    for (p, c) in files {
        r.write(p, c);
    }
    r.commit("pr change");
    r.checkout("main");
    r
}

#[test]
fn a_valid_new_request_passes_with_risk_and_approvals() {
    let r = pr_with(&[("requests/2026-12-01-carol-orders.yaml", &request("carol", "db-readonly", "orders-db", "ticket: INC-42\n"))]);
    let out = r.run(&["check", "--base", "main", "--head", "pr", "--now", NOW, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let j = out.json();
    assert_eq!(j["ok"], true);
    let req = &j["requests"][0];
    assert_eq!(req["id"], "2026-12-01-carol-orders");
    assert_eq!(req["change"], "new");
    // high sensitivity 25 + production 10 + 2h 4 + first time 10 = 49 -> medium
    assert_eq!(req["risk"]["score"], 49);
    assert_eq!(req["risk"]["tier"], "medium");
    assert_eq!(req["approvals"]["required"][0]["from"][0], "managers");
    assert_eq!(req["approvals"]["required"][0]["count"], 1);
    assert!(req["approvals"]["satisfied"].is_null());
    assert_eq!(req["start"], "2026-12-01T10:00:00Z");
    assert_eq!(req["end"], "2026-12-01T12:00:00Z");
}

#[test]
fn a_pr_that_adds_its_requester_to_a_group_is_judged_by_the_base_policies() {
    // heidi is not in dba; the PR adds her AND requests db-write: must fail,
    // both because the PR mixes policy and request changes and because the
    // base policy does not make her eligible.
    let r = Repo::with_policies();
    r.branch("pr");
    let groups = r.read("policies/groups.yaml").replace("members: [carol]", "members: [carol, heidi]");
    r.write("policies/groups.yaml", groups);
    r.write("requests/2026-12-01-heidi-write.yaml", request("heidi", "db-write", "orders-db", "ticket: INC-7\n"));
    r.commit("sneaky");
    let out = r.run(&["check", "--base", "main", "--head", "pr", "--now", NOW, "--format", "github"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains("::error file=requests/2026-12-01-heidi-write.yaml,line=1,col=12,title=GG206::"), "{}", out.stdout);
    assert!(out.stdout.contains("title=GG301::"), "{}", out.stdout);
}

#[test]
fn policy_changes_need_policy_change_approvals_from_the_base() {
    let r = Repo::with_policies();
    r.branch("pr");
    let risk = r.read("policies/risk.yaml").replace("break_glass: 25", "break_glass: 0");
    r.write("policies/risk.yaml", risk);
    r.commit("cheaper break glass");
    let out = r.run(&["check", "--base", "main", "--head", "pr", "--now", NOW, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let j = out.json();
    assert_eq!(j["policy_change"]["files"][0], "policies/risk.yaml");
    assert_eq!(j["policy_change"]["approvals"]["required"][0]["from"][0], "security");
    assert_eq!(j["policy_change"]["approvals"]["required"][0]["count"], 2);
}

#[test]
fn invalid_proposed_policies_exit_2() {
    let r = Repo::with_policies();
    r.branch("pr");
    r.write(
        "policies/extra.yaml",
        "roles:\n  broken:\n    privilege: read\n    max_duration: 1h\n    eligible: [nobody]\n    grants: { postgres: { role: x } }\n",
    );
    r.commit("bad policy");
    let out = r.run(&["check", "--base", "main", "--head", "pr", "--now", NOW, "--format", "github"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stdout.contains("::error file=policies/extra.yaml,line=5,col=16,title=GG102::"), "{}", out.stdout);
}

#[test]
fn removing_or_shrinking_a_merged_request_needs_no_approval() {
    let r = Repo::with_policies();
    r.write("requests/2026-12-01-carol-orders.yaml", request("carol", "db-readonly", "orders-db", ""));
    r.write("requests/2026-12-01-carol-two.yaml", request("carol", "analytics-viewer", "analytics-gcp, orders-db", ""));
    r.commit("land two");
    r.branch("pr");
    r.remove("requests/2026-12-01-carol-orders.yaml");
    let shrunk = r.read("requests/2026-12-01-carol-two.yaml").replace("duration: 2h", "duration: 1h").replace("analytics-gcp, orders-db", "orders-db");
    r.write("requests/2026-12-01-carol-two.yaml", shrunk);
    r.commit("revoke early");
    let out = r.run(&["check", "--base", "main", "--head", "pr", "--now", NOW, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let j = out.json();
    let changes: Vec<(&str, &str)> = j["requests"].as_array().unwrap().iter().map(|x| (x["id"].as_str().unwrap(), x["change"].as_str().unwrap())).collect();
    assert_eq!(changes, vec![("2026-12-01-carol-orders", "removed"), ("2026-12-01-carol-two", "shrink")]);
    for x in j["requests"].as_array().unwrap() {
        assert_eq!(x["approvals"]["required"].as_array().unwrap().len(), 0, "{x}");
    }
}

#[test]
fn widening_a_merged_request_is_judged_again() {
    let r = Repo::with_policies();
    r.write("requests/2026-12-01-carol-orders.yaml", request("carol", "db-readonly", "orders-db", ""));
    r.commit("land");
    r.branch("pr");
    let longer = r.read("requests/2026-12-01-carol-orders.yaml").replace("duration: 2h", "duration: 6h");
    r.write("requests/2026-12-01-carol-orders.yaml", longer);
    r.commit("longer");
    let out = r.run(&["check", "--base", "main", "--head", "pr", "--now", NOW, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let j = out.json();
    assert_eq!(j["requests"][0]["change"], "modified");
    assert!(!j["requests"][0]["approvals"]["required"].as_array().unwrap().is_empty());
    assert!(j["diagnostics"].as_array().unwrap().iter().any(|d| d["code"] == "GG302"));
}

#[test]
fn policies_come_from_the_merge_base_not_from_a_newer_main() {
    // main moves on after the PR branched (carol leaves dba); the PR is
    // judged by the merge-base, where she still was eligible.
    let r = Repo::with_policies();
    r.branch("pr");
    r.write("requests/2026-12-01-carol-orders.yaml", request("carol", "db-write", "orders-db", "ticket: INC-9\n"));
    r.commit("request");
    r.checkout("main");
    let groups = r.read("policies/groups.yaml").replace("members: [carol]", "members: [dave]");
    r.write("policies/groups.yaml", groups);
    let base_after = r.commit("carol leaves dba");
    let out = r.run(&["check", "--base", "main", "--head", "pr", "--now", NOW, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_ne!(out.json()["base"], base_after.as_str());
}

#[test]
fn working_tree_mode_checks_uncommitted_requests_against_head() {
    let r = Repo::with_policies();
    r.write("requests/2026-12-01-ivan-db.yaml", request("ivan", "db-write", "orders-db", "ticket: INC-1\n"));
    let out = r.run(&["check", "--now", NOW]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("error[GG206]: `ivan` is not a member of a group eligible for role `db-write`"), "{}", out.stderr);
    assert!(out.stderr.contains("--> requests/2026-12-01-ivan-db.yaml:1:12"), "{}", out.stderr);
}

#[test]
fn bad_refs_are_a_tool_error() {
    let r = Repo::with_policies();
    let out = r.run(&["check", "--base", "main", "--head", "nope"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("cannot resolve `nope`"), "{}", out.stderr);
}

#[test]
fn the_example_repository_passes_its_own_check() {
    let out = crate::support::run_in(&crate::support::root(), &["check", "--all", "--now", NOW, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.json()["requests"].as_array().unwrap().len() >= 3);
}

//! Risk scores on real histories: the SPEC's worked example and the history factors.

use crate::support::{NOW, Repo, request};

fn explain(r: &Repo, id: &str, head: Option<&str>) -> serde_json::Value {
    let mut args = vec!["explain", id, "--now", NOW, "--format", "json"];
    if let Some(h) = head {
        args.extend(["--head", h]);
    }
    let out = r.run(&args);
    assert_eq!(out.code, 0, "{}", out.all());
    out.json()
}

fn points(j: &serde_json::Value, name: &str) -> i64 {
    j["request"]["risk"]["factors"].as_array().unwrap().iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("no factor {name}: {j}"))["points"]
        .as_i64()
        .unwrap()
}

#[test]
fn the_spec_worked_example_scores_71_high() {
    // 3h write on a high-sensitivity production resource, first time, no
    // ticket, a weekday at 10:00 Berlin: 25 + 15 + 10 + 6 + 10 + 5 = 71.
    let r = Repo::new();
    r.copy_dir("policies");
    r.copy_dir("templates");
    let roles = r.read("policies/roles.yaml").replace("    require_ticket: true\n    ticket_pattern: \"^(INC|CHG)-[0-9]+$\"\n", "");
    r.write("policies/roles.yaml", roles);
    r.commit("policies");
    r.write(
        "requests/2026-12-01-carol-fix.yaml",
        "requester: carol\nrole: db-write\nresources: [orders-db]\nstart: 2026-12-01T09:00:00Z\nduration: 3h\nreason: fix the stuck orders\n",
    );
    let j = explain(&r, "2026-12-01-carol-fix", None);
    let risk = &j["request"]["risk"];
    assert_eq!(risk["score"], 71, "{j}");
    assert_eq!(risk["tier"], "high");
    for (f, p) in [
        ("sensitivity", 25),
        ("privilege", 15),
        ("environment", 10),
        ("duration", 6),
        ("off_hours", 0),
        ("first_time", 10),
        ("missing_ticket", 5),
        ("active_grants", 0),
        ("early_revocations", 0),
    ] {
        assert_eq!(points(&j, f), p, "factor {f}: {j}");
    }
    // high tier: one manager and one security member, with who can fill each.
    let slots = j["approvals"].as_array().unwrap();
    assert_eq!(slots[0]["from"][0], "managers");
    assert_eq!(slots[0]["candidates"], serde_json::json!(["frank", "grace"]));
    assert_eq!(slots[1]["candidates"], serde_json::json!(["dave", "erin"]));
}

#[test]
fn off_hours_follow_the_policy_time_zone() {
    let r = Repo::with_policies();
    // Saturday 03:00 Berlin.
    r.write(
        "requests/2026-12-05-bob-night.yaml",
        "requester: bob\nrole: db-readonly\nresources: [orders-db]\nstart: 2026-12-05T02:00:00Z\nduration: 1h\nreason: night-time incident\nticket: INC-3\n",
    );
    let j = explain(&r, "2026-12-05-bob-night", None);
    assert_eq!(points(&j, "off_hours"), 10, "{j}");
    assert!(j["request"]["risk"]["factors"].to_string().contains("Sat 03:00 Europe/Berlin"), "{j}");
    // Tuesday 17:59 Berlin is inside, 18:00 is outside.
    r.write(
        "requests/2026-12-01-bob-late.yaml",
        "requester: bob\nrole: db-readonly\nresources: [orders-db]\nstart: 2026-12-01T16:59:00Z\nduration: 1h\nreason: end of day check\nticket: INC-3\n",
    );
    assert_eq!(points(&explain(&r, "2026-12-01-bob-late", None), "off_hours"), 0);
    r.write(
        "requests/2026-12-01-bob-late.yaml",
        "requester: bob\nrole: db-readonly\nresources: [orders-db]\nstart: 2026-12-01T17:00:00Z\nduration: 1h\nreason: end of day check\nticket: INC-3\n",
    );
    assert_eq!(points(&explain(&r, "2026-12-01-bob-late", None), "off_hours"), 10);
}

#[test]
fn history_factors_come_from_first_parent_history_of_main() {
    let r = Repo::with_policies();
    // carol held db-readonly before (landed, started and granted in October).
    r.at("2026-10-01T08:00:00Z");
    r.write(
        "requests/2026-10-01-carol-a.yaml",
        "requester: carol\nrole: db-readonly\nresources: [orders-db]\nstart: 2026-10-01T09:00:00Z\nduration: 2h\nreason: earlier investigation\n",
    );
    r.commit("land a");
    // ... and reconcile granted it (only ledger grants count as "held before").
    crate::support::append_ledger(
        &r,
        &[
            serde_json::json!({"time": "2026-10-01T09:00:00Z", "action": "grant", "request": "2026-10-01-carol-a", "requester": "carol", "role": "db-readonly", "result": "ok"}),
        ],
    );
    // A grant removed while active: an early revocation.
    r.at("2026-10-02T08:00:00Z");
    r.write(
        "requests/2026-10-02-carol-b.yaml",
        "requester: carol\nrole: db-readonly\nresources: [orders-db]\nstart: 2026-10-02T08:00:00Z\nduration: 8h\nreason: second investigation\n",
    );
    r.commit("land b");
    r.at("2026-10-02T09:00:00Z");
    r.remove("requests/2026-10-02-carol-b.yaml");
    r.commit("revoke b early");
    // A grant active at the new request's start.
    r.at("2026-11-30T08:00:00Z");
    r.write(
        "requests/2026-12-01-carol-c.yaml",
        "requester: carol\nrole: db-write\nresources: [orders-db]\nstart: 2026-12-01T09:00:00Z\nduration: 4h\nreason: a data fix running long\nticket: CHG-1\n",
    );
    r.commit("land c");
    // The PR: carol asks for db-readonly again, starting during c.
    r.branch("pr");
    r.write("requests/2026-12-01-carol-d.yaml", request("carol", "db-readonly", "orders-db", "ticket: INC-5\n"));
    r.commit("ask d");
    let j = explain(&r, "2026-12-01-carol-d", Some("pr"));
    assert_eq!(points(&j, "first_time"), 0, "held before: {j}");
    assert_eq!(points(&j, "early_revocations"), 5, "one early revocation: {j}");
    assert_eq!(points(&j, "active_grants"), 3, "c is active at 10:00: {j}");
    assert!(j["request"]["risk"]["factors"].to_string().contains("2026-12-01-carol-c"), "{j}");
}

#[test]
fn a_side_branch_commit_is_not_main_history() {
    // A request that only ever existed on an unmerged branch does not count as "held before".
    let r = Repo::with_policies();
    r.branch("side");
    r.at("2026-10-01T08:00:00Z");
    r.write(
        "requests/2026-10-01-carol-a.yaml",
        "requester: carol\nrole: db-readonly\nresources: [orders-db]\nstart: 2026-10-01T09:00:00Z\nduration: 2h\nreason: earlier investigation\n",
    );
    r.commit("side");
    r.checkout("main");
    r.branch("pr");
    r.write("requests/2026-12-01-carol-d.yaml", request("carol", "db-readonly", "orders-db", "ticket: INC-5\n"));
    r.commit("ask d");
    let j = explain(&r, "2026-12-01-carol-d", Some("pr"));
    assert_eq!(points(&j, "first_time"), 10, "{j}");
}

#[test]
fn break_glass_gets_break_glass_approvals_and_is_flagged() {
    let r = Repo::with_policies();
    r.write("requests/2026-12-01-bob-bg.yaml", "requester: bob\nrole: db-write\nresources: [orders-db]\nstart: 2026-12-01T02:00:00Z\nduration: 1h\nreason: production is down, INC-77\nticket: INC-77\nbreak_glass: true\n");
    let j = explain(&r, "2026-12-01-bob-bg", None);
    assert_eq!(j["request"]["break_glass"], true);
    assert_eq!(points(&j, "break_glass"), 25);
    let slots = j["approvals"].as_array().unwrap();
    assert_eq!(slots.len(), 1, "{j}");
    assert_eq!(slots[0]["from"][0], "sre");
    // bob is the requester: only alice can approve.
    assert_eq!(slots[0]["candidates"], serde_json::json!(["alice"]));
    let human = r.run(&["explain", "2026-12-01-bob-bg", "--now", NOW]);
    assert!(human.stdout.contains("[BREAK-GLASS]"), "{}", human.stdout);
}

#[test]
fn scores_clamp_at_100() {
    let r = Repo::with_policies();
    r.write("requests/2026-12-05-carol-admin.yaml", "requester: carol\nrole: db-admin\nresources: [billing-db, orders-db]\nstart: 2026-12-05T02:00:00Z\nduration: 2h\nreason: emergency schema change\nticket: CHG-9\n");
    let j = explain(&r, "2026-12-05-carol-admin", None);
    // 40 + 30 + 10 + 4 + 10 + 10 = 104 -> 100, critical.
    assert_eq!(j["request"]["risk"]["raw_sum"], 104, "{j}");
    assert_eq!(j["request"]["risk"]["score"], 100);
    assert_eq!(j["request"]["risk"]["tier"], "critical");
}

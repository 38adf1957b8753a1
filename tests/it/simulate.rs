//! Policy PRs: the effective-access diff in `check`, `simulate` over main's
//! history, and the CLI polish (completions, man page, colour, quiet, verbose).

use crate::support::{NOW, Repo, request, run_in_env};

const R1: &str = "requests/2026-12-01-carol-orders-db.yaml";
const R2: &str = "requests/2026-12-01-heidi-sandbox.yaml";
const R3: &str = "requests/2026-12-01-alice-write.yaml";

/// Main with three requests landed one by one, then R1 widened from 2h to 3h.
/// Scores under the example policies (no ticket: +5; first time: +10):
/// R1 v1 carol db-readonly orders-db 2h: 25 high + 10 production + 4 = 54 (medium);
/// R1 v2 the same for 3h: 56 (medium); R2 heidi sandbox-user 2h: 2 + 4 + 15 = 21 (low);
/// R3 alice db-write orders-db 2h with a ticket: 25 + 15 + 10 + 4 + 10 = 64 (high).
fn landed_repo() -> Repo {
    let r = Repo::with_policies();
    r.write(R1, request("carol", "db-readonly", "orders-db", ""));
    r.commit("carol: orders-db");
    r.write(R2, request("heidi", "sandbox-user", "sandbox", ""));
    r.commit("heidi: sandbox");
    r.write(R3, request("alice", "db-write", "orders-db", "ticket: INC-7\n"));
    r.commit("alice: write");
    r.write(R1, request("carol", "db-readonly", "orders-db", "").replace("duration: 2h", "duration: 3h"));
    r.commit("carol: 3h");
    r
}

/// A branch off main that edits policy files (`(file, from, to)`), committed.
fn policy_branch(r: &Repo, name: &str, edits: &[(&str, &str, &str)]) {
    r.branch(name);
    for (file, from, to) in edits {
        let text = r.read(file);
        assert!(text.contains(from), "{file} does not contain {from:?}");
        r.write(file, text.replacen(from, to, 1));
    }
    r.commit(&format!("policy: {name}"));
    r.checkout("main");
}

const RAISE_LOW: (&str, &str, &str) = ("policies/risk.yaml", "{ name: low,      max_score: 29,", "{ name: low,      max_score: 56,");
const HEIDI_DBA: (&str, &str, &str) = ("policies/groups.yaml", "members: [carol]", "members: [carol, heidi]");
const READONLY_2H: (&str, &str, &str) = (
    "policies/roles.yaml",
    "privilege: read\n    max_duration: 8h\n    eligible: [sre, dba, developers]",
    "privilege: read\n    max_duration: 2h\n    eligible: [sre, dba, developers]",
);

#[test]
fn a_policy_pr_shows_who_gains_access_which_tiers_move_and_which_requests_change() {
    let r = landed_repo();
    policy_branch(&r, "pr", &[RAISE_LOW, HEIDI_DBA]);
    let human = r.run(&["check", "--base", "main", "--head", "pr", "--now", NOW]);
    assert_eq!(human.code, 0, "{}", human.all());
    insta::assert_snapshot!("policy-diff-human", human.stdout);

    let json = r.run(&["check", "--base", "main", "--head", "pr", "--now", NOW, "--format", "json"]).json();
    let diff = &json["policy_diff"];
    insta::assert_json_snapshot!("policy-diff-json", diff);
    // heidi gains the dba roles on every postgres resource; db-readonly she had already.
    let heidi: Vec<&str> = diff["eligibility"].as_array().unwrap().iter().filter(|e| e["login"] == "heidi").map(|e| e["role"].as_str().unwrap()).collect();
    assert_eq!(heidi, ["db-admin", "db-write"]);
    // carol's 3h request (56) drops from medium to the raised low tier; the others keep theirs.
    let reqs = diff["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 1, "{diff:#}");
    assert_eq!(reqs[0]["id"], "2026-12-01-carol-orders-db");
    assert_eq!(reqs[0]["state"], "upcoming");
    assert_eq!((reqs[0]["before"]["tier"].as_str(), reqs[0]["after"]["tier"].as_str()), (Some("medium"), Some("low")));
    assert_eq!(reqs[0]["after"]["approvals"], serde_json::json!([{"from": ["sre", "dba"], "count": 1}]));
}

#[test]
fn the_job_summary_carries_the_policy_diff_escaped() {
    let r = landed_repo();
    policy_branch(&r, "pr", &[RAISE_LOW, HEIDI_DBA]);
    let summary = r.path().join("summary.md");
    let out = run_in_env(
        r.path(),
        &["check", "--base", "main", "--head", "pr", "--now", NOW, "--format", "github"],
        &[("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    let md = std::fs::read_to_string(summary).unwrap();
    assert!(md.contains("#### Effective access change"), "{md}");
    assert!(md.contains("| heidi | **gains** | db-write | billing-db, orders-db, staging-db |"), "{md}");
    assert!(md.contains("| low | scores 20-29, needs 1 from sre or dba | scores 20-56, needs 1 from sre or dba |"), "{md}");
}

#[test]
fn a_policy_pr_that_changes_nothing_effective_says_so() {
    let r = landed_repo();
    policy_branch(&r, "pr", &[("policies/groups.yaml", "Database administrators", "Database administrators (DBA team)")]);
    let out = r.run(&["check", "--base", "main", "--head", "pr", "--now", NOW]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("effective access change:\n  none: nobody gains or loses access"), "{}", out.all());
}

#[test]
fn simulate_replays_every_landed_version_under_a_raised_threshold() {
    let r = landed_repo();
    policy_branch(&r, "raise-low", &[RAISE_LOW, READONLY_2H]);
    let out = r.run(&["simulate", "--policies", "raise-low", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let v = out.json();
    assert_eq!(v["replayed"], 4);
    let changed: Vec<(String, u64, Vec<String>)> = v["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_string(), c["version"].as_u64().unwrap(), serde_json::from_value(c["changes"].clone()).unwrap()))
        .collect();
    let s = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        changed,
        vec![
            ("2026-12-01-carol-orders-db".to_string(), 1, s(&["tier", "approvals"])),
            // 3h is now over db-readonly's 2h cap: invalid as well as cheaper.
            ("2026-12-01-carol-orders-db".to_string(), 2, s(&["tier", "approvals", "validity"])),
        ]
    );
    let c2 = &v["changed"][1];
    assert_eq!((c2["before"]["score"].as_i64(), c2["after"]["score"].as_i64()), (Some(56), Some(56)));
    assert_eq!(c2["change"], "modified");
    assert!(c2["after"]["errors"][0].as_str().unwrap().contains("longer than role `db-readonly` allows (2h)"), "{c2:#}");
    let tiers: Vec<(String, u64, u64)> = v["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["tier"].as_str().unwrap().to_string(), t["before"].as_u64().unwrap(), t["after"].as_u64().unwrap()))
        .collect();
    let t = |n: &str, b, a| (n.to_string(), b, a);
    assert_eq!(tiers, vec![t("auto", 0, 0), t("low", 1, 3), t("medium", 2, 0), t("high", 1, 1), t("critical", 0, 0)]);
    assert_eq!((v["invalid"]["before"].as_u64(), v["invalid"]["after"].as_u64()), (Some(0), Some(1)));

    let human = r.run(&["simulate", "--policies", "raise-low"]);
    assert_eq!(human.code, 0, "{}", human.all());
    assert!(human.stdout.contains("2 would be judged differently:"), "{}", human.stdout);
    assert!(human.stdout.contains("before: medium (score 54), needs 1 from managers\n    after:  low (score 54), needs 1 from sre or dba"), "{}", human.stdout);
    let low: Vec<&str> = human.stdout.lines().find(|l| l.starts_with("low ")).unwrap().split_whitespace().collect();
    assert_eq!(low, ["low", "1", "3"], "{}", human.stdout);
}

#[test]
fn simulate_under_the_same_policies_changes_nothing_and_bad_policies_exit_2() {
    let r = landed_repo();
    let same = r.run(&["simulate", "--policies", "main", "--format", "json"]).json();
    assert_eq!(same["changed"], serde_json::json!([]));
    assert_eq!(same["replayed"], 4);

    policy_branch(&r, "broken", &[("policies/risk.yaml", "max_score: 19,", "max_score: 200,")]);
    let out = r.run(&["simulate", "--policies", "broken"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("the policies at `broken` do not load"), "{}", out.stderr);
    assert!(out.stderr.contains("policies/risk.yaml"), "the diagnostics point at the file: {}", out.stderr);
}

#[test]
fn completions_for_each_shell_name_the_subcommands() {
    let r = Repo::new();
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef gitgrant"), ("fish", "complete -c gitgrant")] {
        let out = r.run(&["completions", shell]);
        assert_eq!(out.code, 0, "{}", out.all());
        assert!(out.stdout.contains(marker), "{shell}: {}", out.stdout);
        for sub in ["check", "reconcile", "simulate", "completions", "audit"] {
            assert!(out.stdout.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let bad = r.run(&["completions", "tcsh"]);
    assert_eq!(bad.code, 2);
}

#[test]
fn the_man_page_renders_as_roff() {
    let out = Repo::new().run(&["completions", "--man"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains(".TH gitgrant 1"), "{}", out.stdout);
    assert!(out.stdout.contains("gitgrant\\-simulate") || out.stdout.contains("simulate"), "{}", out.stdout);
}

/// A PR whose request has an error (unknown role): coloured diagnostics on stderr.
fn failing_pr() -> Repo {
    let r = Repo::with_policies();
    r.branch("pr");
    r.write("requests/2026-12-01-carol-x.yaml", request("carol", "no-such-role", "orders-db", ""));
    r.commit("bad request");
    r
}

#[test]
fn colour_is_forced_by_clicolor_force_and_always_off_with_no_color() {
    let r = failing_pr();
    let args = ["check", "--base", "main", "--head", "pr", "--now", NOW];
    let forced = run_in_env(r.path(), &args, &[("NO_COLOR", ""), ("CLICOLOR_FORCE", "1")]);
    assert_eq!(forced.code, 1);
    assert!(forced.stderr.contains("\x1b["), "expected ANSI colour: {}", forced.stderr);
    for no_color in ["1", "0"] {
        let plain = run_in_env(r.path(), &args, &[("NO_COLOR", no_color), ("CLICOLOR_FORCE", "1")]);
        assert_eq!(plain.code, 1);
        assert!(!plain.stderr.contains('\x1b'), "NO_COLOR={no_color} must win: {}", plain.stderr);
        assert!(plain.stderr.contains("error[GG"), "{}", plain.stderr);
    }
}

#[test]
fn quiet_prints_only_errors_and_verbose_shows_the_history_index() {
    let r = Repo::with_policies();
    r.branch("pr");
    r.write("requests/2026-12-01-carol-x.yaml", request("carol", "db-readonly", "orders-db", ""));
    r.commit("request");
    let args = ["check", "--base", "main", "--head", "pr", "--now", NOW];
    let verbose = r.run(&[&args[..], &["-v"]].concat());
    assert_eq!(verbose.code, 0);
    assert!(verbose.stderr.contains("history index cold: no usable index, full walk"), "{}", verbose.stderr);
    let again = r.run(&[&args[..], &["--verbose"]].concat());
    assert!(again.stderr.contains("history index warm"), "{}", again.stderr);
    assert_eq!(r.run(&[&args[..], &["-q", "-v"]].concat()).code, 2, "--quiet and --verbose conflict");

    let loud = r.run(&args);
    assert!(loud.stdout.contains("carol -> db-readonly") && loud.stderr.contains("check passed"), "{}", loud.all());

    let quiet = r.run(&[&args[..], &["--quiet"]].concat());
    assert_eq!((quiet.code, quiet.stdout.as_str(), quiet.stderr.as_str()), (0, "", ""), "{}", quiet.all());
    // plan: no postgres DSN here, so its provider errors are all it prints.
    let plan = r.run(&["plan", "-q", "--now", NOW]);
    assert_eq!((plan.code, plan.stdout.as_str()), (1, ""), "{}", plan.all());
    assert!(plan.stderr.starts_with("error: ") && plan.stderr.contains("error: postgres orders-db: "), "{}", plan.stderr);
    assert!(!plan.stderr.contains("to grant"), "the plan summary is not an error: {}", plan.stderr);
    let explain = r.run(&["explain", "2026-12-01-carol-x", "--head", "pr", "-q", "--now", NOW]);
    assert_eq!((explain.code, explain.stdout.as_str()), (0, ""), "{}", explain.all());
    // JSON is a document asked for: --quiet does not drop it.
    assert_eq!(r.run(&[&args[..], &["-q", "--format", "json"]].concat()).json()["ok"], true);

    let bad = failing_pr();
    let quiet_fail = bad.run(&[&args[..], &["-q"]].concat());
    assert_eq!((quiet_fail.code, quiet_fail.stdout.as_str()), (1, ""), "{}", quiet_fail.all());
    assert!(quiet_fail.stderr.contains("error[GG") && quiet_fail.stderr.contains("check failed"), "{}", quiet_fail.stderr);
}

#[test]
fn every_command_has_examples_in_its_help() {
    let r = Repo::new();
    for cmd in ["check", "explain", "plan", "reconcile", "demo", "init", "request", "extend", "revoke", "audit", "monitor", "simulate", "completions"] {
        let out = r.run(&[cmd, "--help"]);
        assert_eq!(out.code, 0, "{cmd}: {}", out.all());
        assert!(out.stdout.contains("Example"), "{cmd} --help has no example:\n{}", out.stdout);
        assert!(out.stdout.contains(&format!("gitgrant {cmd}")), "{cmd} --help example does not run {cmd}:\n{}", out.stdout);
    }
}

#[test]
fn reconcile_verbose_times_each_call_and_quiet_prints_nothing() {
    let r = Repo::new();
    r.at("2026-11-20T10:00:00Z");
    r.write(
        "policies/all.yaml",
        "groups:\n  dev: { members: [heidi] }\nidentities:\n  heidi: {}\nresources:\n  sandbox: { provider: local, environment: staging, sensitivity: low, config: { state: state/grants.json } }\nroles:\n  user: { privilege: read, max_duration: 8h, eligible: [dev], grants: { local: { role: user } } }\nrisk:\n  tiers:\n    - { name: auto, max_score: 100, approvals: [] }\npolicy_changes:\n  approvals: [ { from: [dev], count: 1 } ]\n",
    );
    r.commit("bootstrap policies");
    let body = "requester: heidi\nrole: user\nresources: [sandbox]\nstart: 2026-12-01T10:00:00Z\nduration: 2h\nreason: \"INC-1: investigate the incident\"\n";
    crate::reconcile::land(&r, "heidi", "heidi", &[("requests/heidi-sandbox.yaml", body.to_string())], &[]);

    let granted = r.run(&["reconcile", "--at", "2026-12-01T10:05:00Z", "--no-ledger", "-v"]);
    assert_eq!(granted.code, 0, "{}", granted.all());
    let line = granted.stderr.lines().find(|l| l.starts_with("grant local sandbox heidi user: ok in ")).unwrap_or_else(|| panic!("{}", granted.all()));
    assert!(line.ends_with(" ms (1 attempt(s))"), "{line}");
    // Not a terminal: no progress bar anywhere.
    assert!(!granted.stderr.contains("reconcile ["), "{}", granted.stderr);

    let revoked = r.run(&["reconcile", "--at", "2026-12-01T12:30:00Z", "--no-ledger", "-q"]);
    assert_eq!((revoked.code, revoked.stdout.as_str(), revoked.stderr.as_str()), (0, "", ""), "{}", revoked.all());
    let after = r.run(&["plan", "--at", "2026-12-01T12:31:00Z", "--format", "json"]).json();
    assert_eq!(after["actions"], serde_json::json!([]), "the quiet run still revoked: {after:#}");
}

//! The bad-input matrix of issue 2: every kind of defect in a request or a
//! policy file, each on its own PR branch, checked with
//! `check --base main --head pr`. Each test asserts the exit code and the
//! GitHub annotation (file, line, column, code) of the defect, and snapshots
//! the whole output in all three formats.

use std::path::Path;

use crate::support::{NOW, Out, Repo, request};

/// A repository with the example policies on main and a branch `pr` made by
/// `change` and committed; main is checked out again afterwards.
fn pr(change: impl FnOnce(&Repo)) -> Repo {
    let r = Repo::with_policies();
    r.branch("pr");
    change(&r);
    r.commit("pr change");
    r.checkout("main");
    r
}

/// A PR that adds one request file.
fn pr_file(path: &str, body: impl AsRef<[u8]>) -> Repo {
    pr(|r| {
        r.write(path, body);
    })
}

/// A PR that edits one policy file by replacing `from` with `to`.
fn pr_policy_edit(file: &str, from: &str, to: &str) -> Repo {
    pr(|r| {
        let text = r.read(file);
        assert!(text.contains(from), "{file} does not contain {from:?}");
        r.write(file, text.replacen(from, to, 1));
    })
}

fn symlink(r: &Repo, target: &Path, link: &str) {
    let at = r.path().join(link);
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, at).unwrap();
}

/// One check in the three formats.
struct Checked {
    code: i32,
    github: String,
    json: serde_json::Value,
    snapshot: String,
}

impl Checked {
    /// Asserts the GitHub annotation of one defect: exactly this file, line, column and code.
    #[track_caller]
    fn annotates(&self, level: &str, file: &str, line: u32, col: u32, code: &str) -> &Self {
        let want = format!("::{level} file={file},line={line},col={col},title={code}::");
        assert!(self.github.lines().any(|l| l.starts_with(&want)), "no `{want}` in:\n{}", self.github);
        self
    }
    #[track_caller]
    fn error(&self, file: &str, line: u32, col: u32, code: &str) -> &Self {
        self.annotates("error", file, line, col, code)
    }
    /// The codes of all error diagnostics, sorted as reported.
    fn error_codes(&self) -> Vec<String> {
        self.json["diagnostics"].as_array().unwrap().iter().filter(|d| d["severity"] == "error").map(|d| d["code"].as_str().unwrap().to_string()).collect()
    }
}

fn run(r: &Repo, format: &str) -> Out {
    r.run(&["check", "--base", "main", "--head", "pr", "--now", NOW, "--format", format])
}

/// Runs the check in human, github and json; all three must agree on the exit code.
fn check(r: &Repo) -> Checked {
    let (human, github, json) = (run(r, "human"), run(r, "github"), run(r, "json"));
    assert_eq!(human.code, github.code, "human and github disagree:\n{}\n{}", human.all(), github.all());
    assert_eq!(human.code, json.code, "human and json disagree:\n{}\n{}", human.all(), json.all());
    let full = json.json();
    assert_eq!(full["ok"], human.code == 0, "{}", json.all());
    // The JSON part of the snapshot keeps what a diagnostic consumer reads;
    // risk details are covered by the risk tests.
    let requests: Vec<serde_json::Value> = full["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| serde_json::json!({"id": q["id"], "file": q["file"], "change": q["change"], "valid": q["valid"]}))
        .collect();
    let brief = serde_json::json!({
        "ok": full["ok"],
        "diagnostics": full["diagnostics"],
        "requests": requests,
        "policy_change": full["policy_change"],
    });
    let mut snapshot = format!("exit: {}\n=== human (stderr)\n{}", human.code, human.stderr);
    if !human.stdout.is_empty() {
        snapshot.push_str(&format!("=== human (stdout)\n{}", human.stdout));
    }
    snapshot.push_str(&format!("=== github (stdout)\n{}=== json (abridged)\n{}\n", github.stdout, serde_json::to_string_pretty(&brief).unwrap()));
    Checked { code: human.code, github: github.stdout, json: full, snapshot }
}

/// Checks, asserts the exit code, snapshots the three formats under `name`.
#[track_caller]
fn judged(r: &Repo, code: i32, name: &str) -> Checked {
    let c = check(r);
    assert_eq!(c.code, code, "{}", c.snapshot);
    insta::assert_snapshot!(name, c.snapshot);
    c
}

const F: &str = "requests/2026-12-01-carol-x.yaml";

// ---------------------------------------------------------------------------
// Point 2: files that cannot be read as a request at all.

#[test]
fn a_file_over_1_mib_is_refused_unread() {
    let mut body = request("carol", "db-readonly", "orders-db", "");
    body.push_str(&format!("# {}\n", "x".repeat(1024 * 1024)));
    let r = pr_file(F, body);
    judged(&r, 1, "input-too-large").error(F, 1, 1, "GG005");
}

#[test]
fn an_alias_bomb_is_stopped_by_the_expansion_budget() {
    // Billion laughs: nine levels of nine aliases each. It is refused as a
    // bomb although its keys are not request fields (the typed parse would
    // stop at `a` without ever expanding anything).
    let mut body = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"].iter().zip(["b", "c", "d", "e", "f", "g", "h", "i"]) {
        body.push_str(&format!("{name}: &{name} [{}]\n", vec![format!("*{prev}"); 9].join(", ")));
    }
    let r = pr_file(F, body);
    let c = judged(&r, 1, "input-alias-bomb");
    assert_eq!(c.error_codes(), ["GG006"], "{}", c.snapshot);
    // The budget (10,000 replayed events) runs out at the 5th level: 9^4 * 9 > 10,000.
    c.error(F, 5, 8, "GG006");
}

#[test]
fn an_alias_bomb_inside_a_policy_value_is_stopped_too() {
    // `config` takes any mapping, so here the typed parse does expand aliases.
    let mut body = String::from("resources:\n  bomb:\n    provider: local\n    environment: staging\n    sensitivity: low\n    config:\n");
    body.push_str("      a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"].iter().zip(["b", "c", "d", "e", "f", "g", "h", "i"]) {
        body.push_str(&format!("      {name}: &{name} [{}]\n", vec![format!("*{prev}"); 9].join(", ")));
    }
    let r = pr_file("policies/bomb.yaml", body);
    let c = judged(&r, 2, "input-alias-bomb-policy");
    c.error("policies/bomb.yaml", 11, 14, "GG006");
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let body = format!(
        "resources:\n  deep:\n    provider: local\n    environment: staging\n    sensitivity: low\n    config: {{ a: {}1{} }}\n",
        "{ a: ".repeat(10_000),
        " }".repeat(10_000)
    );
    let r = pr_file("policies/deep.yaml", body);
    let c = check(&r);
    assert_eq!(c.code, 2, "{}", c.snapshot);
    assert_eq!(c.error_codes(), ["GG006"], "{}", c.snapshot);
    assert!(c.github.contains("file=policies/deep.yaml,line=6,") && c.github.contains("the YAML is nested too deeply"), "{}", c.github);
}

#[test]
fn duplicate_keys_are_reported_at_the_second_key() {
    let body = request("carol", "db-readonly", "orders-db", "role: db-write\n");
    let r = pr_file(F, body);
    let c = judged(&r, 1, "input-duplicate-key");
    assert_eq!(c.error_codes(), ["GG003"]);
    c.error(F, 7, 1, "GG003");
}

#[test]
fn duplicate_keys_in_a_policy_mapping_are_reported() {
    let r = pr_file("policies/more.yaml", "groups:\n  oncall:\n    members: [alice]\n  oncall:\n    members: [heidi]\n");
    judged(&r, 2, "input-duplicate-key-policy").error("policies/more.yaml", 4, 3, "GG003");
}

#[test]
fn invalid_utf8_is_reported_at_the_bad_byte() {
    // The column counts characters: `é` before the bad byte is one column.
    let mut body = b"requester: carol\nrole: db-readonly\nreason: \"r\xc3\xa9sum\xff\"\n".to_vec();
    body.extend_from_slice(b"resources: [orders-db]\nduration: 2h\n");
    let r = pr_file(F, body);
    judged(&r, 1, "input-invalid-utf8").error(F, 3, 15, "GG007");
}

#[test]
fn a_list_document_is_not_a_request() {
    // The schema comment on line 1, as in every example file: the document starts on line 2.
    let r = pr_file(F, "# yaml-language-server: $schema=../docs/schema/request.json\n- requester: carol\n- role: db-readonly\n");
    let c = judged(&r, 1, "input-not-a-mapping-list");
    assert_eq!(c.error_codes(), ["GG008"]);
    c.error(F, 2, 1, "GG008");
}

#[test]
fn a_scalar_document_is_not_a_request() {
    let r = pr_file(F, "carol wants db-readonly on orders-db for 2h\n");
    let c = judged(&r, 1, "input-not-a-mapping-scalar");
    assert_eq!(c.error_codes(), ["GG008"]);
    c.error(F, 1, 1, "GG008");
}

#[test]
fn an_empty_file_is_not_a_request() {
    let r = pr_file(F, "# nothing yet\n");
    judged(&r, 1, "input-empty").error(F, 1, 1, "GG008");
}

#[test]
fn a_second_document_is_refused() {
    let body = format!("{}---\nrequester: bob\n", request("carol", "db-readonly", "orders-db", ""));
    let r = pr_file(F, body);
    let c = judged(&r, 1, "input-multiple-documents");
    assert_eq!(c.error_codes(), ["GG009"]);
    c.error(F, 7, 1, "GG009");
}

#[test]
fn a_symlink_under_requests_is_refused_and_never_read() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.yaml");
    std::fs::write(&secret, "TOP-SECRET-LINE\n").unwrap();
    let r = Repo::with_policies();
    r.branch("pr");
    symlink(&r, &secret, F);
    r.commit("link");
    // Stay on the PR branch: the link is in the working tree, as in CI.
    let c = judged(&r, 1, "input-symlink-request");
    assert_eq!(c.error_codes(), ["GG010"]);
    c.error(F, 1, 1, "GG010");
    assert!(!c.snapshot.contains("TOP-SECRET"), "the link target leaked into the output:\n{}", c.snapshot);
    // Working-tree mode (authoring locally) refuses it the same way.
    let local = r.run(&["check", "--now", NOW]);
    assert_eq!(local.code, 1, "{}", local.all());
    assert!(local.stderr.contains("error[GG010]") && !local.all().contains("TOP-SECRET"), "{}", local.all());
}

#[test]
fn a_symlinked_directory_under_requests_is_refused() {
    let r = pr(|r| {
        r.write("elsewhere/2026-12-01-carol-x.yaml", request("carol", "db-readonly", "orders-db", ""));
        symlink(r, Path::new("../elsewhere"), "requests/team");
    });
    let c = judged(&r, 1, "input-symlink-request-dir");
    assert_eq!(c.error_codes(), ["GG010"]);
    c.error("requests/team", 1, 1, "GG010");
}

#[test]
fn a_symlinked_requests_directory_is_refused() {
    // Not silently "no requests": the PR replaces requests/ with a link.
    let r = pr(|r| {
        r.write("elsewhere/2026-12-01-carol-x.yaml", request("carol", "db-readonly", "orders-db", ""));
        symlink(r, Path::new("elsewhere"), "requests");
    });
    let c = judged(&r, 1, "input-symlink-requests-root");
    c.error("requests", 1, 1, "GG010");
}

#[test]
fn a_symlink_under_policies_is_refused_and_exits_2() {
    let r = pr(|r| symlink(r, Path::new("/etc/passwd"), "policies/extra.yaml"));
    let c = judged(&r, 2, "input-symlink-policy");
    assert_eq!(c.error_codes(), ["GG010"]);
    c.error("policies/extra.yaml", 1, 1, "GG010");
}

#[test]
fn an_id_field_that_disagrees_with_the_file_stem_is_refused() {
    let body = format!("id: 2026-12-01-carol-other\n{}", request("carol", "db-readonly", "orders-db", ""));
    let r = pr_file(F, body);
    let c = judged(&r, 1, "input-id-mismatch");
    assert_eq!(c.error_codes(), ["GG011"]);
    c.error(F, 1, 1, "GG011");
}

#[test]
fn a_file_name_that_is_not_a_valid_id_is_refused() {
    let path = "requests/Carol_Orders.yaml";
    let r = pr_file(path, request("carol", "db-readonly", "orders-db", ""));
    let c = judged(&r, 1, "input-invalid-id");
    assert_eq!(c.error_codes(), ["GG011"]);
    c.error(path, 1, 1, "GG011");
}

#[test]
fn two_files_with_the_same_id_clash() {
    let r = pr(|r| {
        r.write("requests/a/2026-12-01-carol-x.yaml", request("carol", "db-readonly", "orders-db", ""));
        r.write("requests/b/2026-12-01-carol-x.yaml", request("carol", "db-readonly", "staging-db", ""));
    });
    let c = judged(&r, 1, "input-id-clash");
    assert_eq!(c.error_codes(), ["GG012", "GG012"]);
    c.error("requests/a/2026-12-01-carol-x.yaml", 1, 1, "GG012").error("requests/b/2026-12-01-carol-x.yaml", 1, 1, "GG012");
}

#[test]
fn a_new_file_clashing_with_a_merged_request_is_refused() {
    // The first request lands on main through a merge commit; a later PR
    // reuses its id in a sub-directory.
    let r = Repo::with_policies();
    r.branch("first");
    r.write("requests/2026-12-01-carol-x.yaml", request("carol", "db-readonly", "orders-db", ""));
    r.commit("request");
    r.checkout("main");
    r.merge("first", "Merge pull request #1 from carol/first\n\nApproved-by: frank");
    r.branch("pr");
    r.write("requests/team/2026-12-01-carol-x.yaml", request("carol", "db-readonly", "staging-db", ""));
    r.commit("same id elsewhere");
    r.checkout("main");
    let c = check(&r);
    assert_eq!(c.code, 1, "{}", c.snapshot);
    c.error("requests/team/2026-12-01-carol-x.yaml", 1, 1, "GG012");
}

#[test]
fn an_unknown_field_is_reported_at_its_key() {
    let body = request("carol", "db-readonly", "orders-db", "  # a comment\napprover: frank\n");
    let r = pr_file(F, body);
    let c = judged(&r, 1, "input-unknown-field");
    assert_eq!(c.error_codes(), ["GG002"]);
    c.error(F, 8, 1, "GG002");
}

#[test]
fn an_unknown_nested_field_in_a_policy_is_reported_at_its_key() {
    let r = pr_policy_edit("policies/roles.yaml", "    privilege: admin\n    max_duration: 2h\n", "    privilege: admin\n    max_duraton: 2h\n");
    judged(&r, 2, "input-unknown-field-policy").error("policies/roles.yaml", 31, 5, "GG002");
}

#[test]
fn a_wrong_enum_value_is_reported_with_the_allowed_values() {
    let r = pr_policy_edit("policies/resources.yaml", "sensitivity: critical", "sensitivity: extreme");
    let c = judged(&r, 2, "input-wrong-enum");
    c.error("policies/resources.yaml", 19, 18, "GG004");
    assert!(c.github.contains("expected one of low, medium, high, critical"), "{}", c.github);
}

#[test]
fn a_yaml_1_1_boolean_is_a_wrong_type() {
    let r = pr_file(F, request("carol", "db-readonly", "orders-db", "break_glass: yes\n"));
    judged(&r, 1, "input-wrong-type-bool").error(F, 7, 14, "GG004");
}

#[test]
fn a_missing_field_is_reported_at_the_start_of_its_mapping() {
    // Not at the last key read (`reason`): the field is missing from the whole request.
    let r =
        pr_file(F, "# yaml-language-server: $schema=../docs/schema/request.json\nrequester: carol\nrole: db-readonly\nduration: 2h\nreason: a good reason\n");
    let c = judged(&r, 1, "input-missing-field");
    c.error(F, 2, 1, "GG004");
    assert!(c.github.contains("missing field `resources`"), "{}", c.github);
}

#[test]
fn a_tab_in_indentation_is_reported_where_it_is() {
    let r = pr_file(F, "requester: carol\n\trole: db-readonly\n");
    judged(&r, 1, "input-tab").error(F, 2, 1, "GG001");
}

#[test]
fn bad_durations_are_reported_at_their_value() {
    let r = pr(|r| {
        for (id, dur) in [("2-hours", "\"2 hours\""), ("zero", "0h"), ("negative", "-1h")] {
            let body = request("carol", "db-readonly", "orders-db", "").replace("duration: 2h", &format!("duration: {dur}"));
            r.write(&format!("requests/2026-12-01-carol-{id}.yaml"), body);
        }
    });
    let c = judged(&r, 1, "input-bad-duration");
    assert_eq!(c.error_codes(), ["GG207", "GG207", "GG207"], "{}", c.snapshot);
    c.error("requests/2026-12-01-carol-2-hours.yaml", 5, 11, "GG207").error("requests/2026-12-01-carol-zero.yaml", 5, 11, "GG207").error(
        "requests/2026-12-01-carol-negative.yaml",
        5,
        11,
        "GG207",
    );
}

// ---------------------------------------------------------------------------
// Point 5: requests that parse but break a policy rule.

#[test]
fn an_unknown_role() {
    let r = pr_file(F, request("carol", "db-reader", "orders-db", ""));
    let c = judged(&r, 1, "request-unknown-role");
    assert_eq!(c.error_codes(), ["GG201"]);
    c.error(F, 2, 7, "GG201");
}

#[test]
fn an_unknown_resource() {
    let r = pr_file(F, request("carol", "db-readonly", "orders-db, ordrs-db", ""));
    let c = judged(&r, 1, "request-unknown-resource");
    assert_eq!(c.error_codes(), ["GG202"]);
    c.error(F, 3, 24, "GG202");
}

#[test]
fn a_role_without_a_grant_for_the_resource_provider() {
    let r = pr_file(F, request("carol", "db-readonly", "orders-db, prod-aws", ""));
    let c = judged(&r, 1, "request-no-grant-for-provider");
    assert_eq!(c.error_codes(), ["GG203"]);
    c.error(F, 3, 24, "GG203");
}

#[test]
fn a_requester_without_an_identity() {
    let r = pr_file(F, request("mallory", "db-readonly", "orders-db", ""));
    let c = judged(&r, 1, "request-unknown-requester");
    assert_eq!(c.error_codes(), ["GG204", "GG206"]);
    c.error(F, 1, 12, "GG204");
}

#[test]
fn a_requester_without_a_principal_for_a_provider_involved() {
    // ivan has postgres and gcp principals, no aws one.
    let r = pr_file(F, request("ivan", "aws-readonly", "prod-aws", ""));
    let c = judged(&r, 1, "request-no-principal");
    assert_eq!(c.error_codes(), ["GG205"]);
    c.error(F, 3, 13, "GG205");
}

#[test]
fn a_requester_outside_the_eligible_groups() {
    let r = pr_file(F, request("frank", "db-readonly", "orders-db", ""));
    let c = judged(&r, 1, "request-not-eligible");
    assert_eq!(c.error_codes(), ["GG206"]);
    c.error(F, 1, 12, "GG206");
}

#[test]
fn a_zero_duration() {
    let r = pr_file(F, request("carol", "db-readonly", "orders-db", "").replace("duration: 2h", "duration: 0m"));
    let c = judged(&r, 1, "request-zero-duration");
    assert_eq!(c.error_codes(), ["GG207"]);
    c.error(F, 5, 11, "GG207");
}

#[test]
fn a_duration_over_the_role_maximum() {
    let r = pr_file(F, request("carol", "db-readonly", "orders-db", "").replace("duration: 2h", "duration: 9h"));
    let c = judged(&r, 1, "request-duration-over-max");
    assert_eq!(c.error_codes(), ["GG208"]);
    c.error(F, 5, 11, "GG208");
}

#[test]
fn until_before_start() {
    let body = request("carol", "db-readonly", "orders-db", "").replace("duration: 2h", "until: 2026-12-01T09:00:00Z");
    let r = pr_file(F, body);
    let c = judged(&r, 1, "request-until-before-start");
    assert_eq!(c.error_codes(), ["GG210"]);
    c.error(F, 5, 8, "GG210");
}

#[test]
fn both_duration_and_until_or_neither() {
    let r = pr(|r| {
        r.write("requests/2026-12-01-carol-both.yaml", request("carol", "db-readonly", "orders-db", "until: 2026-12-01T12:00:00Z\n"));
        r.write("requests/2026-12-01-carol-neither.yaml", request("carol", "db-readonly", "orders-db", "").replace("duration: 2h\n", ""));
        r.write("requests/2026-12-01-carol-stamp.yaml", request("carol", "db-readonly", "orders-db", "").replace("2026-12-01T10:00:00Z", "2026-12-01 10:00"));
    });
    let c = judged(&r, 1, "request-window-inconsistent");
    assert_eq!(c.error_codes(), ["GG209", "GG209", "GG210"], "{}", c.snapshot);
    c.error("requests/2026-12-01-carol-both.yaml", 5, 11, "GG209").error("requests/2026-12-01-carol-neither.yaml", 1, 12, "GG209").error(
        "requests/2026-12-01-carol-stamp.yaml",
        4,
        8,
        "GG210",
    );
}

#[test]
fn a_window_that_ends_before_the_check_time() {
    // --now is 2026-11-23T09:00Z; this window ended on 2026-11-01.
    let r = pr_file(F, request("carol", "db-readonly", "orders-db", "").replace("2026-12-01T10:00:00Z", "2026-11-01T10:00:00Z"));
    let c = judged(&r, 1, "request-ends-in-past");
    assert_eq!(c.error_codes(), ["GG211"]);
    c.error(F, 4, 8, "GG211");
}

#[test]
fn a_reason_too_short() {
    let r = pr_file(F, request("carol", "db-readonly", "orders-db", "").replace("\"INC-1: a long enough reason\"", "because"));
    let c = judged(&r, 1, "request-reason-too-short");
    assert_eq!(c.error_codes(), ["GG212"]);
    c.error(F, 6, 9, "GG212");
}

#[test]
fn a_reason_of_invisible_characters_is_too_short() {
    // Issue 13 item 4: twelve zero-width spaces passed the 10-character rule.
    let zw = "\u{200b}".repeat(12);
    let r = pr_file(F, request("carol", "db-readonly", "orders-db", "").replace("\"INC-1: a long enough reason\"", &format!("\"{zw}\"")));
    let c = judged(&r, 1, "request-reason-invisible");
    assert_eq!(c.error_codes(), ["GG212"]);
    c.error(F, 6, 9, "GG212");
    assert!(c.snapshot.contains("the reason has 0 visible characters"), "{}", c.snapshot);
    // The source line is shown with the invisible characters escaped, never raw.
    assert!(!c.snapshot.contains('\u{200b}'), "{}", c.snapshot);
}

#[test]
fn a_time_in_the_year_10000_is_refused_not_printed_as_plus_10000() {
    // Issue 13 item 4: `start` in year 9999 printed the end as `+10000-...`.
    let r = pr(|r| {
        r.write(
            "requests/2026-12-01-carol-late.yaml",
            request("carol", "db-readonly", "orders-db", "").replace("2026-12-01T10:00:00Z", "9999-12-31T23:00:00Z"),
        );
        r.write(
            "requests/2026-12-01-carol-until.yaml",
            request("carol", "db-readonly", "orders-db", "")
                .replace("duration: 2h\n", "")
                .replace("start: 2026-12-01T10:00:00Z\n", "until: +10000-01-01T00:00:00Z\n"),
        );
    });
    let c = judged(&r, 1, "request-window-after-9999");
    assert_eq!(c.error_codes(), ["GG210", "GG210"], "{}", c.snapshot);
    c.error("requests/2026-12-01-carol-late.yaml", 5, 11, "GG210").error("requests/2026-12-01-carol-until.yaml", 4, 8, "GG210");
    // The late request's end (9999-12-31T23:00Z + 2h) is never printed in the year 10000.
    assert!(!c.snapshot.contains("10000-01-01T01") && !c.snapshot.contains("10000-01-01 01"), "{}", c.snapshot);
}

#[test]
fn a_required_ticket_is_missing() {
    // The diagnostic points at the role that requires it.
    let r = pr_file(F, request("carol", "db-write", "orders-db", ""));
    let c = judged(&r, 1, "request-ticket-missing");
    assert_eq!(c.error_codes(), ["GG213"]);
    c.error(F, 2, 7, "GG213");
}

#[test]
fn a_ticket_that_does_not_match_the_pattern() {
    let r = pr_file(F, request("carol", "db-write", "orders-db", "ticket: JIRA-12\n"));
    let c = judged(&r, 1, "request-ticket-pattern");
    assert_eq!(c.error_codes(), ["GG214"]);
    c.error(F, 7, 9, "GG214");
}

#[test]
fn break_glass_on_a_role_that_forbids_it() {
    let body = request("carol", "db-admin", "orders-db", "ticket: CHG-1\nbreak_glass: true\n").replace("duration: 2h", "duration: 1h");
    let r = pr_file(F, body);
    let c = judged(&r, 1, "request-break-glass-role");
    assert_eq!(c.error_codes(), ["GG215"]);
    c.error(F, 8, 14, "GG215");
}

#[test]
fn break_glass_when_the_policies_have_no_break_glass_section() {
    let r = Repo::new();
    r.copy_dir("policies");
    r.copy_dir("templates");
    let risk = r.read("policies/risk.yaml");
    let cut = risk.find("\n# Emergency access").unwrap();
    r.write("policies/risk.yaml", &risk[..cut + 1]);
    r.commit("policies without break-glass");
    r.branch("pr");
    let body = request("bob", "db-write", "orders-db", "ticket: INC-1\nbreak_glass: true\n").replace("duration: 2h", "duration: 1h");
    r.write(F, body);
    r.commit("break glass");
    r.checkout("main");
    let c = judged(&r, 1, "request-break-glass-no-section");
    assert_eq!(c.error_codes(), ["GG215"]);
    c.error(F, 8, 14, "GG215");
}

#[test]
fn break_glass_over_the_break_glass_maximum() {
    // db-write allows 4h, break-glass at most 1h.
    let body = request("bob", "db-write", "orders-db", "ticket: INC-1\nbreak_glass: true\n").replace("duration: 2h", "duration: 3h");
    let r = pr_file(F, body);
    let c = judged(&r, 1, "request-break-glass-too-long");
    assert_eq!(c.error_codes(), ["GG208"]);
    c.error(F, 5, 11, "GG208");
}

// ---------------------------------------------------------------------------
// Invalid policies in a PR: the tool cannot judge with them (exit 2).

#[test]
fn policy_unknown_group_in_eligible() {
    let r = pr_policy_edit("policies/roles.yaml", "eligible: [dba]", "eligible: [dbas]");
    let c = judged(&r, 2, "policy-unknown-group-eligible");
    assert_eq!(c.error_codes(), ["GG102"]);
    c.error("policies/roles.yaml", 32, 16, "GG102");
}

#[test]
fn policy_unknown_group_in_approvals() {
    // Only the unknown group: no extra "cannot be satisfied" warning about it.
    let r = pr_policy_edit("policies/risk.yaml", "approvals: [ { from: [managers], count: 1 } ] }", "approvals: [ { from: [manager], count: 1 } ] }");
    let c = judged(&r, 2, "policy-unknown-group-approvals");
    assert_eq!(c.json["diagnostics"].as_array().unwrap().iter().filter(|d| d["severity"] != "note").count(), 1, "{}", c.snapshot);
    c.error("policies/risk.yaml", 20, 63, "GG102");
}

#[test]
fn policy_unknown_provider_in_grants() {
    let r = pr_policy_edit("policies/roles.yaml", "postgres: { role: dbadmin }", "postgress: { role: dbadmin }");
    let c = judged(&r, 2, "policy-unknown-provider");
    c.error("policies/roles.yaml", 37, 7, "GG002");
    assert!(c.github.contains("unknown field `postgress`"), "{}", c.github);
}

#[test]
fn policy_missing_template() {
    let r = pr_policy_edit("policies/roles.yaml", "aws/readonly.json.j2", "aws/read-only.json.j2");
    let c = judged(&r, 2, "policy-missing-template");
    assert_eq!(c.error_codes(), ["GG104"]);
    c.error("policies/roles.yaml", 44, 16, "GG104");
}

#[test]
fn policy_template_that_does_not_compile() {
    let r = pr_file("templates/aws/readonly.json.j2", "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": {{ statements \n}\n");
    let c = judged(&r, 2, "policy-template-syntax");
    assert_eq!(c.error_codes(), ["GG104"]);
    c.error("templates/aws/readonly.json.j2", 4, 1, "GG104");
}

#[test]
fn policy_tiers_not_ascending() {
    let r = pr_policy_edit("policies/risk.yaml", "max_score: 59", "max_score: 25");
    let c = judged(&r, 2, "policy-tiers-not-ascending");
    assert_eq!(c.error_codes(), ["GG105"]);
    c.error("policies/risk.yaml", 20, 36, "GG105");
}

#[test]
fn policy_last_tier_below_100() {
    let r = pr_policy_edit("policies/risk.yaml", "max_score: 100", "max_score: 90");
    let c = judged(&r, 2, "policy-last-tier-below-100");
    assert_eq!(c.error_codes(), ["GG105"]);
    c.error("policies/risk.yaml", 22, 36, "GG105");
}

#[test]
fn policy_non_positive_duration() {
    let r = pr_policy_edit("policies/roles.yaml", "max_duration: 4h", "max_duration: 0h");
    let c = judged(&r, 2, "policy-non-positive-duration");
    assert_eq!(c.error_codes(), ["GG106"]);
    c.error("policies/roles.yaml", 22, 19, "GG106");
}

#[test]
fn policy_name_defined_in_two_files() {
    let r = pr_file(
        "policies/more.yaml",
        "roles:\n  db-write:\n    privilege: read\n    max_duration: 1h\n    eligible: [sre]\n    grants: { postgres: { role: readonly } }\n",
    );
    let c = judged(&r, 2, "policy-name-defined-twice");
    // At both definitions, each naming the other.
    assert_eq!(c.error_codes(), ["GG101", "GG101"]);
    c.error("policies/more.yaml", 2, 3, "GG101").error("policies/roles.yaml", 19, 3, "GG101");
    assert!(c.github.contains("also defined at policies/roles.yaml:19:3"), "{}", c.github);
    assert!(c.github.contains("also defined at policies/more.yaml:2:3"), "{}", c.github);
}

// ---------------------------------------------------------------------------
// The rules come from the base, never from the PR.

#[test]
fn a_pr_that_makes_its_requester_eligible_is_judged_by_the_base() {
    // heidi is not in dba; the PR adds her AND asks for db-write (dba, sre).
    let r = pr(|r| {
        let groups = r.read("policies/groups.yaml").replace("members: [carol]", "members: [carol, heidi]");
        r.write("policies/groups.yaml", groups);
        r.write("requests/2026-12-01-heidi-write.yaml", request("heidi", "db-write", "orders-db", "ticket: INC-7\n"));
    });
    let c = judged(&r, 1, "base-policy-rule");
    assert_eq!(c.error_codes(), ["GG301", "GG206"], "{}", c.snapshot);
    c.error("requests/2026-12-01-heidi-write.yaml", 1, 12, "GG206").error("requests/2026-12-01-heidi-write.yaml", 1, 1, "GG301");
    c.annotates("notice", "policies/groups.yaml", 1, 1, "GG303");
}

#[test]
fn a_policy_only_pr_needs_policy_change_approvals() {
    let r = pr_policy_edit("policies/groups.yaml", "members: [carol]", "members: [carol, heidi]");
    let c = judged(&r, 0, "policy-only-pr");
    c.annotates("notice", "policies/groups.yaml", 1, 1, "GG303");
    let pc = &c.json["policy_change"];
    assert_eq!(pc["files"], serde_json::json!(["policies/groups.yaml"]));
    assert_eq!(pc["approvals"]["required"], serde_json::json!([{"from": ["security"], "count": 2}]));
}

#[test]
fn an_empty_value_is_a_missing_value_not_a_syntax_error() {
    let r = pr_file(F, request("carol", "db-readonly", "orders-db", "").replace("role: db-readonly", "role:"));
    let c = judged(&r, 1, "input-null-value");
    assert_eq!(c.error_codes(), ["GG004"]);
    c.error(F, 2, 5, "GG004");
    assert!(!c.github.contains("Option<"), "Rust types leaked into the message: {}", c.github);
}

#[test]
fn a_duration_too_long_to_have_an_end_is_refused() {
    // It parses (nine digits of weeks) but its end is beyond any calendar:
    // without a window every other check would skip it.
    let r = pr_file(F, request("carol", "db-readonly", "orders-db", "").replace("duration: 2h", "duration: 999999999w"));
    let c = judged(&r, 1, "request-duration-without-end");
    assert_eq!(c.error_codes(), ["GG207"]);
    c.error(F, 5, 11, "GG207");
}

#[test]
fn huge_factor_points_saturate_instead_of_crashing() {
    // Policies are numbers a reviewer may not read closely; the sum must not
    // overflow (it panicked in debug builds and wrapped in release ones).
    let r = Repo::new();
    r.copy_dir("policies");
    r.copy_dir("templates");
    let risk = r
        .read("policies/risk.yaml")
        .replace("per_hour: 2 ", &format!("per_hour: {} ", i64::MAX))
        .replace("first_time: 10", &format!("first_time: {}", i64::MAX));
    r.write("policies/risk.yaml", risk);
    r.commit("generous points");
    r.branch("pr");
    r.write(F, request("carol", "db-readonly", "orders-db", ""));
    r.commit("request");
    r.checkout("main");
    let out = run(&r, "json");
    assert_eq!(out.code, 0, "{}", out.all());
    let req = &out.json()["requests"][0];
    assert_eq!(req["risk"]["score"], 100, "{req}");
    assert_eq!(req["risk"]["tier"], "critical", "{req}");
}

#[test]
fn a_syntax_error_in_groups_is_not_buried_under_unknown_group_errors() {
    // groups.yaml no longer parses: every `eligible` and `from` would name an
    // "unknown group". Only the syntax error is the defect.
    let r = pr_policy_edit("policies/groups.yaml", "members: [carol]", "members: [carol");
    let c = judged(&r, 2, "policy-syntax-error-no-cascade");
    assert_eq!(c.error_codes(), ["GG001"], "{}", c.snapshot);
    c.error("policies/groups.yaml", 11, 11, "GG001");
}

#[test]
fn a_negative_approval_count_is_a_wrong_value() {
    let r = pr_policy_edit("policies/risk.yaml", "from: [security], count: 2 } ] }", "from: [security], count: -1 } ] }");
    let c = judged(&r, 2, "policy-negative-count");
    assert_eq!(c.error_codes(), ["GG004"], "{}", c.snapshot);
    c.error("policies/risk.yaml", 22, 81, "GG004");
}

/// A policy template too large for an IAM customer-managed policy is
/// refused by `check`, naming the fix (issue 16, "fail early").
#[test]
fn an_aws_policy_template_above_the_iam_limit_fails_check() {
    let r = crate::support::Repo::with_policies();
    let statements: Vec<String> =
        (0..200).map(|i| format!("{{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::bucket-{i}/*\"}}")).collect();
    let big = format!("{{\"Version\":\"2012-10-17\",\"Statement\":[{}]}}", statements.join(","));
    assert!(big.len() > 6_144);
    let roles = r.read("policies/roles.yaml");
    let template = roles.lines().find_map(|l| l.split("policy_template: ").nth(1)).map(|t| t.trim_end_matches(['}', ' ']).to_string());
    let Some(template) = template else { panic!("the example roles use no policy_template: {roles}") };
    r.write(&format!("templates/{template}"), &big);
    let out = r.run(&["check", "--all", "--now", crate::support::NOW, "--format", "json"]);
    assert_eq!(out.code, 2, "{}", out.all());
    let diags = out.json()["diagnostics"].as_array().unwrap().clone();
    let d = diags.iter().find(|d| d["code"] == "GG114").unwrap_or_else(|| panic!("no GG114: {diags:?}"));
    assert!(d["message"].as_str().unwrap().contains("above IAM's limit of 6144"), "{d}");
    assert!(d["help"].as_str().unwrap().contains("managed_policy_arn"), "{d}");
    assert_eq!(d["file"], "policies/roles.yaml", "{d}");
}

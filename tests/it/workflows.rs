//! The shipped GitHub workflows keep their security-relevant structure:
//! least-privilege permissions, the triggers the gate relies on, a reconcile
//! that never overlaps, and cloud credentials by OIDC only. (scripts/test also
//! runs actionlint over them when it is installed.)

use serde_json::{Value, json};

use crate::support::root;

fn workflow(name: &str) -> Value {
    let path = root().join(".github/workflows").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{name} is not valid YAML: {e}"))
}

fn steps(job: &Value) -> &Vec<Value> {
    job["steps"].as_array().expect("steps")
}

fn runs(job: &Value) -> String {
    steps(job).iter().filter_map(|s| s["run"].as_str()).collect::<Vec<_>>().join("\n")
}

/// Nothing by default at the top; every job lists its own permissions, none `write-all`.
fn assert_least_privilege(wf: &Value, name: &str) {
    assert_eq!(wf["permissions"], json!({}), "{name}: top-level permissions must be empty");
    for (job_name, job) in wf["jobs"].as_object().expect("jobs") {
        let perms = job["permissions"].as_object().unwrap_or_else(|| panic!("{name}: job `{job_name}` has no permissions block"));
        for (scope, level) in perms {
            assert!(matches!(level.as_str(), Some("read" | "write" | "none")), "{name}: {job_name}.{scope} = {level}");
        }
    }
}

#[test]
fn the_check_workflow_judges_prs_and_reviews_with_least_privilege() {
    let wf = workflow("gitgrant-check.yml");
    assert_least_privilege(&wf, "gitgrant-check.yml");
    assert!(wf["on"]["pull_request"].is_object(), "{}", wf["on"]);
    let review_types = wf["on"]["pull_request_review"]["types"].as_array().expect("review types");
    for t in ["submitted", "dismissed"] {
        assert!(review_types.contains(&json!(t)), "a {t} review must re-run the gate");
    }
    let job = &wf["jobs"]["gitgrant"];
    assert_eq!(job["permissions"], json!({"contents": "read", "pull-requests": "write", "checks": "write", "statuses": "write"}));
    let checkout = steps(job).iter().find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("actions/checkout@"))).expect("checkout");
    assert_eq!(checkout["with"]["fetch-depth"], json!(0), "the base commit and main's history must be in the clone");
    let script = runs(job);
    assert!(script.contains("gitgrant check --format github"), "{script}");
    assert!(script.contains("git worktree add --detach \"$RUNNER_TEMP/gitgrant-src\" \"$BASE_SHA\""), "gitgrant is built from the base, not the PR");
    let gate = steps(job).iter().find(|s| s["run"].as_str().is_some_and(|r| r.trim() == "gitgrant gate")).expect("gate step");
    assert_eq!(gate["if"], json!("${{ !cancelled() }}"), "the verdict is published even when check fails");
    assert_eq!(gate["env"]["GITHUB_TOKEN"], json!("${{ github.token }}"));
}

#[test]
fn the_reconcile_workflow_never_overlaps_and_uses_oidc() {
    let wf = workflow("gitgrant-reconcile.yml");
    assert_least_privilege(&wf, "gitgrant-reconcile.yml");
    assert_eq!(wf["on"]["push"]["branches"], json!(["main"]));
    assert_eq!(wf["on"]["schedule"], json!([{"cron": "*/10 * * * *"}]));
    assert!(wf["on"].get("workflow_dispatch").is_some());
    assert_eq!(wf["concurrency"], json!({"group": "gitgrant-reconcile", "cancel-in-progress": false}));
    let job = &wf["jobs"]["reconcile"];
    assert_eq!(job["permissions"]["id-token"], json!("write"), "OIDC needs id-token: write");
    let aws = steps(job).iter().find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("aws-actions/configure-aws-credentials@"))).expect("aws step");
    assert!(aws["with"]["role-to-assume"].is_string());
    let text = std::fs::read_to_string(root().join(".github/workflows/gitgrant-reconcile.yml")).unwrap();
    for key in ["aws-access-key-id", "aws-secret-access-key", "AWS_SECRET_ACCESS_KEY"] {
        assert!(!text.contains(key), "no long-lived cloud keys: found `{key}`");
    }
    assert!(runs(job).contains("gitgrant reconcile"));
}

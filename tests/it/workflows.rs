//! The GitHub workflows keep their security properties, in both sets: this
//! repository's (`.github/workflows/`, which build the judge from the base commit)
//! and the ones `gitgrant init` writes (which install the released binary with the
//! gitgrant action). scripts/test also runs actionlint and zizmor over both; this
//! test is what still holds where those tools cannot be installed.
//!
//! The properties: every action pinned by full commit SHA with its tag in a
//! comment, no local action (`uses: ./`), `persist-credentials: false` unless the
//! job pushes, least-privilege permissions, and, above all, no job that holds a
//! write permission runs anything but a verified gitgrant binary once a pull
//! request is checked out (no cargo, no rustup, no script from the tree).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{root, run_in};

struct Workflow {
    name: String,
    text: String,
    yaml: Value,
}

fn load(path: &Path) -> Workflow {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let yaml = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
    Workflow { name: path.display().to_string(), text, yaml }
}

fn own(name: &str) -> Workflow {
    load(&root().join(".github/workflows").join(name))
}

/// The workflows `gitgrant init` writes, rendered by the binary itself.
fn scaffolded() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["init", dir.path().to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.all());
    let wf = dir.path().join(".github/workflows");
    let files = vec![wf.join("gitgrant-check.yml"), wf.join("gitgrant-reconcile.yml")];
    (dir, files)
}

fn all_workflows() -> (tempfile::TempDir, Vec<Workflow>) {
    let (dir, files) = scaffolded();
    let mut all: Vec<Workflow> = files.iter().map(|p| load(p)).collect();
    for entry in std::fs::read_dir(root().join(".github/workflows")).unwrap() {
        all.push(load(&entry.unwrap().path()));
    }
    assert!(all.len() >= 5, "two scaffolded workflows and at least check, reconcile and release here");
    (dir, all)
}

fn jobs(wf: &Workflow) -> &serde_json::Map<String, Value> {
    wf.yaml["jobs"].as_object().unwrap_or_else(|| panic!("{}: no jobs", wf.name))
}

fn steps(job: &Value) -> &Vec<Value> {
    job["steps"].as_array().expect("steps")
}

fn runs(job: &Value) -> String {
    steps(job).iter().filter_map(|s| s["run"].as_str()).collect::<Vec<_>>().join("\n")
}

fn uses(step: &Value) -> &str {
    step["uses"].as_str().unwrap_or("")
}

fn is_checkout(step: &Value) -> bool {
    uses(step).starts_with("actions/checkout@")
}

fn writes(job: &Value) -> bool {
    job["permissions"].as_object().is_some_and(|p| p.values().any(|v| v == "write"))
}

fn on_pull_requests(wf: &Workflow) -> bool {
    ["pull_request", "pull_request_review", "merge_group", "pull_request_target"].iter().any(|t| wf.yaml["on"].get(t).is_some())
}

/// The job's checkout is of the PR (no `ref`, or a ref that is not the base).
fn checks_out_the_pr(step: &Value) -> bool {
    is_checkout(step) && step["with"]["ref"].as_str().is_none_or(|r| !(r.contains("base.sha") || r.contains("base_sha")))
}

/// Nothing by default at the top; every job lists its own permissions, none `write-all`.
fn assert_least_privilege(wf: &Workflow) {
    assert_eq!(wf.yaml["permissions"], json!({}), "{}: top-level permissions must be empty", wf.name);
    for (job_name, job) in jobs(wf) {
        let perms = job["permissions"].as_object().unwrap_or_else(|| panic!("{}: job `{job_name}` has no permissions block", wf.name));
        for (scope, level) in perms {
            assert!(matches!(level.as_str(), Some("read" | "write" | "none")), "{}: {job_name}.{scope} = {level}", wf.name);
        }
    }
}

#[test]
fn every_action_is_pinned_by_commit_sha_with_its_tag_and_none_is_local() {
    let (_dir, all) = all_workflows();
    let action = load(&root().join("action.yml"));
    for wf in all.iter().chain([&action]) {
        let mut seen = 0;
        for line in wf.text.lines() {
            let Some(rest) = line.trim().trim_start_matches("- ").strip_prefix("uses:") else { continue };
            seen += 1;
            let (reference, comment) = rest.trim().split_once(" # ").unwrap_or((rest.trim(), ""));
            assert!(!reference.starts_with("./") && !reference.starts_with('.'), "{}: local action `{reference}` runs code from the checkout", wf.name);
            assert!(!reference.starts_with("docker://"), "{}: `{reference}`", wf.name);
            let (_, sha) = reference.split_once('@').unwrap_or_else(|| panic!("{}: `{reference}` has no ref", wf.name));
            assert!(sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()), "{}: `{reference}` is not pinned to a full commit SHA", wf.name);
            assert!(comment.starts_with('v'), "{}: `{reference}` needs its tag in a comment (`# v1.2.3`)", wf.name);
        }
        assert!(seen > 0, "{}: no actions found", wf.name);
    }
}

#[test]
fn checkouts_keep_no_credentials_unless_the_job_pushes() {
    let (_dir, all) = all_workflows();
    for wf in &all {
        for (job_name, job) in jobs(wf) {
            for step in steps(job).iter().filter(|s| is_checkout(s)) {
                let persist = &step["with"]["persist-credentials"];
                // Only reconcile pushes (the ledger branch), and it says so.
                if job_name == "reconcile" {
                    assert_eq!(persist, &json!(true), "{}: reconcile pushes the ledger; say so explicitly", wf.name);
                    assert_eq!(job["permissions"]["contents"], json!("write"), "{}", wf.name);
                } else {
                    assert_eq!(persist, &json!(false), "{}: job `{job_name}` does not push: persist-credentials: false", wf.name);
                }
            }
        }
    }
}

/// The heart of it: a PR cannot make a job with a write token run its code.
#[test]
fn no_job_with_a_write_token_runs_anything_from_a_pull_request() {
    let (_dir, all) = all_workflows();
    let tools = ["cargo", "rustup", "rustc", "make", "npm", "npx", "pip", "python", "bash ", "sh ", "./", "source ", ". ", "go ", "just ", "node "];
    let mut judged = 0;
    for wf in all.iter().filter(|w| on_pull_requests(w)) {
        for (job_name, job) in jobs(wf) {
            let steps = steps(job);
            let checkout = steps.iter().position(checks_out_the_pr);
            if !writes(job) {
                // A read-only job may build, but only from the base, never after the PR is checked out.
                if let Some(at) = checkout {
                    for step in &steps[at..] {
                        let run = step["run"].as_str().unwrap_or("");
                        assert!(!run.contains("cargo") && !run.contains("rustup"), "{}: `{job_name}` builds after checking out the PR:\n{run}", wf.name);
                    }
                }
                continue;
            }
            judged += 1;
            for step in steps {
                assert!(!uses(step).starts_with('.'), "{}: `{job_name}` runs a local action", wf.name);
                let Some(run) = step["run"].as_str() else { continue };
                for line in run.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("set -")) {
                    for tool in tools {
                        assert!(
                            !line.starts_with(tool) && !line.contains(&format!("&& {tool}")) && !line.contains(&format!("; {tool}")),
                            "{}: `{job_name}` holds a write token and runs `{line}`",
                            wf.name
                        );
                    }
                }
            }
            // After the PR is checked out, only the verified gitgrant binary runs.
            let at = checkout.unwrap_or_else(|| panic!("{}: `{job_name}` never checks out the PR", wf.name));
            for step in &steps[at + 1..] {
                assert_eq!(step.get("uses"), None, "{}: `{job_name}` runs an action after the PR checkout", wf.name);
                let run = step["run"].as_str().unwrap_or_default().trim();
                assert!(
                    run.starts_with("gitgrant ") && !run.contains('\n') && !run.contains(';') && !run.contains('&') && !run.contains('|'),
                    "{}: `{job_name}` runs `{run}` after the PR checkout",
                    wf.name
                );
            }
            // ...and gitgrant was on PATH, verified, before the PR was there.
            let installed = steps[..at]
                .iter()
                .any(|s| uses(s).starts_with("gitgrant/gitgrant@") || s["run"].as_str().is_some_and(|r| r.contains("sha256sum --check --strict")));
            assert!(installed, "{}: `{job_name}` must install and verify gitgrant before checking out the PR", wf.name);
        }
    }
    assert_eq!(judged, 4, "two jobs in each check workflow hold write permissions: gate (PRs) and queue (merge groups)");
}

#[test]
fn the_check_workflows_judge_prs_reviews_retargets_and_merge_queues() {
    let (_dir, files) = scaffolded();
    for wf in [own("gitgrant-check.yml"), load(&files[0])] {
        assert_least_privilege(&wf);
        let types = wf.yaml["on"]["pull_request"]["types"].as_array().expect("pull_request types");
        for t in ["opened", "synchronize", "reopened", "edited"] {
            assert!(types.contains(&json!(t)), "{}: a PR that is {t} must be judged again (edited = retargeted)", wf.name);
        }
        let review_types = wf.yaml["on"]["pull_request_review"]["types"].as_array().expect("review types");
        for t in ["submitted", "dismissed"] {
            assert!(review_types.contains(&json!(t)), "{}: a {t} review must re-run the gate", wf.name);
        }
        assert!(wf.yaml["on"].get("merge_group").is_some(), "{}: merge queues need the merge_group trigger", wf.name);
        let check = &jobs(&wf)["check"];
        // Read-only: the commits, and the reviews of rule-file PRs (chain of trust).
        assert_eq!(check["permissions"], json!({"contents": "read", "pull-requests": "read"}), "{}: the judging job has no write token", wf.name);
        assert!(runs(check).contains("check --format github"), "{}", wf.name);
        assert!(runs(check).contains("--base \"$BASE_SHA\" --head \"$HEAD_SHA\""), "{}: the merge queue judges the merged result", wf.name);
        let gate = &jobs(&wf)["gate"];
        assert_eq!(gate["permissions"], json!({"contents": "read", "pull-requests": "write", "checks": "write", "statuses": "write"}), "{}", wf.name);
        let cond = gate["if"].as_str().unwrap_or_default();
        assert!(cond.contains("!cancelled()"), "{}: the verdict is published even when check fails", wf.name);
        let step = steps(gate).iter().find(|s| s["run"].as_str().is_some_and(|r| r.contains(" gate") || r.starts_with("gitgrant gate"))).expect("gate step");
        // A GitHub App when configured (the required check can be pinned to it), else the job's token.
        assert_eq!(step["env"]["GITHUB_APP_ID"], json!("${{ vars.GITGRANT_APP_ID }}"), "{}", wf.name);
        assert_eq!(step["env"]["GITHUB_APP_PRIVATE_KEY"], json!("${{ secrets.GITGRANT_APP_PRIVATE_KEY }}"), "{}", wf.name);
        assert_eq!(step["env"]["GITHUB_TOKEN"], json!("${{ vars.GITGRANT_APP_ID == '' && github.token || '' }}"), "{}", wf.name);
        assert!(cond.contains("github.event_name != 'merge_group'"), "{}: a merge group is the queue job's", wf.name);
        // The merge queue: gitgrant/approval on the group commit, with no PR write scope.
        let queue = &jobs(&wf)["queue"];
        assert_eq!(queue["permissions"], json!({"contents": "read", "pull-requests": "read", "checks": "write", "statuses": "write"}), "{}", wf.name);
        let cond = queue["if"].as_str().unwrap_or_default();
        assert!(cond.contains("!cancelled()") && cond.contains("github.event_name == 'merge_group'"), "{}: {cond}", wf.name);
        let gate_step = steps(queue).iter().find(|s| s["run"].as_str().is_some_and(|r| r.contains(" gate"))).expect("queue gate step");
        assert!(gate_step["run"].as_str().unwrap().ends_with("gate --merge-group"), "{}", wf.name);
        assert_eq!(gate_step["env"], step["env"], "{}: the queue publishes as the same app as the gate", wf.name);
        let checkout = steps(queue).iter().find(|s| is_checkout(s)).expect("queue checkout");
        assert_eq!(checkout["with"]["fetch-depth"], json!(0), "{}: the queue branches and the base must be in the clone", wf.name);
        assert!(checkout["with"].get("ref").is_none(), "{}: the event's commit (the group) is checked out", wf.name);
        for (name, job) in jobs(&wf) {
            for s in steps(job).iter().filter(|s| is_checkout(s)) {
                if checks_out_the_pr(s) {
                    assert_eq!(s["with"]["fetch-depth"], json!(0), "{}: {name}: the base commit and main's history must be in the clone", wf.name);
                }
            }
        }
    }
    // Here, the judge is built from the base commit, with a pinned toolchain, outside the PR checkout.
    let wf = own("gitgrant-check.yml");
    let build = &jobs(&wf)["build"];
    assert_eq!(build["permissions"], json!({"contents": "read"}));
    let checkout = steps(build).iter().find(|s| is_checkout(s)).expect("checkout");
    assert_eq!(checkout["with"]["ref"], json!("${{ github.event.pull_request.base.sha || github.event.merge_group.base_sha }}"));
    assert_eq!(checkout["with"]["path"], json!("base"));
    let script = runs(build);
    assert!(script.contains("cargo \"+$RUST_TOOLCHAIN\" build --locked --manifest-path base/Cargo.toml"), "{script}");
    assert!(wf.yaml["env"]["RUST_TOOLCHAIN"].as_str().is_some_and(|t| t.split('.').count() == 3), "a pinned toolchain version");
}

#[test]
fn the_reconcile_workflows_never_overlap_and_use_oidc_for_every_cloud() {
    let (_dir, files) = scaffolded();
    for wf in [own("gitgrant-reconcile.yml"), load(&files[1])] {
        assert_least_privilege(&wf);
        assert_eq!(wf.yaml["on"]["push"]["branches"], json!(["main"]));
        assert_eq!(wf.yaml["on"]["schedule"], json!([{"cron": "*/10 * * * *"}]));
        assert!(wf.yaml["on"].get("workflow_dispatch").is_some());
        assert_eq!(wf.yaml["concurrency"], json!({"group": "gitgrant-reconcile", "cancel-in-progress": false}));
        let job = &jobs(&wf)["reconcile"];
        assert_eq!(job["permissions"], json!({"contents": "write", "pull-requests": "read", "id-token": "write"}), "{}", wf.name);
        assert_eq!(job["environment"], json!("gitgrant"), "{}", wf.name);
        let step = |prefix: &str| steps(job).iter().find(|s| uses(s).starts_with(prefix)).unwrap_or_else(|| panic!("{}: no {prefix} step", wf.name)).clone();
        let aws = step("aws-actions/configure-aws-credentials@");
        assert_eq!(aws["with"]["role-to-assume"], json!("${{ vars.GITGRANT_AWS_ROLE_ARN }}"));
        let gcp = step("google-github-actions/auth@");
        assert_eq!(gcp["with"]["workload_identity_provider"], json!("${{ vars.GITGRANT_GCP_WORKLOAD_IDENTITY_PROVIDER }}"));
        assert_eq!(gcp["if"], json!("${{ vars.GITGRANT_GCP_WORKLOAD_IDENTITY_PROVIDER != '' }}"));
        let azure = step("azure/login@");
        for (k, v) in [("client-id", "CLIENT_ID"), ("tenant-id", "TENANT_ID"), ("subscription-id", "SUBSCRIPTION_ID")] {
            assert_eq!(azure["with"][k], json!(format!("${{{{ vars.GITGRANT_AZURE_{v} }}}}")), "{}", wf.name);
        }
        assert!(azure["with"].get("creds").is_none(), "federated credential, not a client secret");
        assert!(runs(job).contains("AZURE_ACCESS_TOKEN="), "the ARM token is handed to gitgrant");
        for key in ["aws-access-key-id", "aws-secret-access-key", "AWS_SECRET_ACCESS_KEY", "credentials_json", "AZURE_CLIENT_SECRET"] {
            assert!(!wf.text.contains(key), "{}: no long-lived cloud keys: found `{key}`", wf.name);
        }
        assert!(runs(job).contains("gitgrant reconcile"));
        assert!(!runs(job).contains("cargo") && !runs(job).contains("rustup"), "{}: the job with the cloud credentials builds nothing", wf.name);
    }
}

#[test]
fn the_release_builds_four_static_targets_with_checksums_and_provenance() {
    let wf = own("release.yml");
    assert_least_privilege(&wf);
    assert_eq!(wf.yaml["on"], json!({"push": {"tags": ["v*"]}}));
    let build = &jobs(&wf)["build"];
    assert_eq!(build["permissions"], json!({"contents": "read"}));
    let targets: Vec<&str> = build["strategy"]["matrix"]["include"].as_array().unwrap().iter().filter_map(|m| m["target"].as_str()).collect();
    assert_eq!(targets, ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl", "x86_64-apple-darwin", "aarch64-apple-darwin"]);
    let script = runs(build);
    assert!(script.contains("--locked --release --target \"$TARGET\""), "{script}");
    assert!(script.contains("name=\"gitgrant-$VERSION-$TARGET\"") && script.contains("\"dist/$name.tar.gz\""), "{script}");
    let publish = &jobs(&wf)["publish"];
    assert_eq!(publish["permissions"], json!({"contents": "write", "id-token": "write", "attestations": "write"}));
    let script = runs(publish);
    assert!(script.contains("sha256sum gitgrant-*.tar.gz > SHA256SUMS"), "{script}");
    assert!(script.contains("gh release create \"$TAG\" --verify-tag"), "{script}");
    assert!(!script.contains("cargo"), "the job with write permissions builds nothing");
    let attest = steps(publish).iter().find(|s| uses(s).starts_with("actions/attest-build-provenance@")).expect("attestation");
    assert_eq!(attest["with"]["subject-checksums"], json!("dist/SHA256SUMS"));
    assert!(!wf.text.contains("actions/cache"), "a release is built from the tag alone, never from a cache");
}

/// The action runs its own script (from its pinned ref, not the caller's checkout)
/// and passes inputs through the environment, never into the script's text.
#[test]
fn the_action_runs_its_own_install_script_with_inputs_in_the_environment() {
    let action = load(&root().join("action.yml"));
    assert_eq!(action.yaml["runs"]["using"], json!("composite"));
    assert_eq!(action.yaml["inputs"]["version"]["required"], json!(true));
    assert_eq!(action.yaml["inputs"]["sha256"]["required"], json!(false));
    let steps = action.yaml["runs"]["steps"].as_array().unwrap();
    let install = steps.iter().find(|s| s["id"] == "install").expect("install step");
    let run = install["run"].as_str().unwrap();
    assert!(run.contains("sh \"$GITHUB_ACTION_PATH/scripts/install-gitgrant.sh\""), "{run}");
    for s in steps {
        assert!(!s["run"].as_str().unwrap_or_default().contains("${{"), "no expression is pasted into a script (template injection)");
    }
    assert_eq!(install["env"]["GITGRANT_VERSION"], json!("${{ inputs.version }}"));
    assert_eq!(install["env"]["GITGRANT_SHA256"], json!("${{ inputs.sha256 }}"));
    assert!(root().join("scripts/install-gitgrant.sh").is_file());
}

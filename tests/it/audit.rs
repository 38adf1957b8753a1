//! `gitgrant audit` (timeline, who, replay) and `audit verify` on real git
//! histories built with the real binary (`reconcile` on the local provider
//! writes the ledger), with every case verify must find.

use gitgrant::ledger::{Entry, Ledger};

use crate::support::{Out, Repo};

const POLICIES: &str = r#"
groups:
  sre: { members: [alice, bob] }
  dev: { members: [heidi, ivan] }
  managers: { members: [frank, grace] }
  security: { members: [dave] }
identities:
  alice: {}
  bob: {}
  heidi: {}
  ivan: {}
  frank: {}
  grace: {}
  dave: {}
resources:
  sandbox: { provider: local, environment: staging, sensitivity: low, config: { state: state/grants.json } }
  tools:   { provider: local, environment: production, sensitivity: high, config: { state: state/grants.json } }
roles:
  user:
    privilege: read
    max_duration: 8h
    eligible: [sre, dev]
    grants: { local: { role: user } }
  writer:
    privilege: write
    max_duration: 8h
    eligible: [sre, dev]
    grants: { local: { role: writer } }
  admin:
    privilege: admin
    max_duration: 4h
    eligible: [sre]
    grants: { local: { role: admin } }
risk:
  factors:
    sensitivity: { low: 0, high: 25 }
    privilege: { read: 0, write: 5, admin: 30 }
  tiers:
    - { name: auto, max_score: 10, approvals: [] }
    - { name: managed, max_score: 100, approvals: [ { from: [managers], count: 1 } ] }
policy_changes:
  approvals: [ { from: [managers], count: 1 } ]
break_glass:
  approvals: [ { from: [sre], count: 1 } ]
  max_duration: 1h
  review_within: 24h
  reviewers: [security]
"#;

fn req(requester: &str, role: &str, resource: &str, start: &str, dur: &str, extra: &str) -> String {
    format!(
        "requester: {requester}\nrole: {role}\nresources: [{resource}]\nstart: {start}\nduration: {dur}\nreason: \"INC-9: investigate the incident\"\n{extra}"
    )
}

fn repo() -> Repo {
    let r = Repo::new();
    r.at("2026-11-20T10:00:00Z");
    r.write("policies/all.yaml", POLICIES);
    r.write(".gitignore", "state/\n");
    r.commit("bootstrap policies");
    r
}

/// Lands one request through PR `pr`, merged with `Approved-by` trailers.
fn land(r: &Repo, id: &str, author: &str, body: String, approvers: &[&str], pr: u32) -> String {
    r.branch(id);
    r.write(&format!("requests/{id}.yaml"), body);
    r.commit_as(author, &format!("request {id}"));
    r.checkout("main");
    let trailers: String = approvers.iter().map(|a| format!("Approved-by: {a}\n")).collect();
    r.merge(id, &format!("Merge pull request #{pr} from {author}/{id}\n\n{trailers}"))
}

fn reconcile(r: &Repo, at: &str) {
    let out = r.run(&["reconcile", "--at", at]);
    assert!(out.code <= 1, "{}", out.all());
    assert!(!out.stderr.contains("ledger could not be written"), "{}", out.all());
}

/// Findings as (code, request) pairs.
fn findings(out: &Out) -> Vec<(String, String)> {
    let j = out.json();
    j["findings"].as_array().unwrap().iter().map(|f| (f["code"].as_str().unwrap().to_string(), f["request"].as_str().unwrap_or("-").to_string())).collect()
}

/// A clean history: three approved requests granted and revoked (one early),
/// one break-glass grant reviewed in time and still open.
fn clean_history() -> Repo {
    let r = repo();
    land(&r, "heidi-sandbox", "heidi", req("heidi", "user", "sandbox", "2026-12-01T10:00:00Z", "2h", ""), &[], 11);
    land(&r, "alice-tools", "alice", req("alice", "admin", "tools", "2026-12-01T10:00:00Z", "4h", ""), &["frank"], 12);
    land(&r, "ivan-tools", "ivan", req("ivan", "writer", "tools", "2026-12-01T10:00:00Z", "2h", ""), &["grace"], 13);
    land(&r, "heidi-bg", "heidi", req("heidi", "user", "sandbox", "2026-12-02T03:00:00Z", "1h", "break_glass: true\n"), &["alice"], 14);
    reconcile(&r, "2026-12-01T10:05:00Z");
    reconcile(&r, "2026-12-01T12:01:00Z");
    r.at("2026-12-01T12:10:00Z");
    r.remove("requests/alice-tools.yaml");
    r.commit_as("alice", "done with the incident");
    reconcile(&r, "2026-12-01T12:30:00Z");
    reconcile(&r, "2026-12-02T03:05:00Z");
    r.at("2026-12-02T09:00:00Z");
    r.commit_as("frank", "Review break-glass access of heidi\n\nBreak-glass-review: heidi-bg\nApproved-by: dave");
    r
}

const NOW: &str = "2026-12-03T00:00:00Z";

#[test]
fn timeline_joins_history_and_ledger_in_every_format() {
    let r = clean_history();
    let table = r.run(&["--now", NOW, "audit"]);
    assert_eq!(table.code, 0, "{}", table.all());
    insta::assert_snapshot!("audit-table", table.stdout);
    let csv = r.run(&["--now", NOW, "audit", "--format", "csv"]);
    assert_eq!(csv.code, 0, "{}", csv.all());
    insta::assert_snapshot!("audit-csv", csv.stdout);
    let json = r.run(&["--now", NOW, "audit", "--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.all());
    insta::assert_snapshot!("audit-json", json.stdout);

    let lines: Vec<serde_json::Value> = json.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // The documented schema, on every line.
    for l in &lines {
        for k in ["time", "event", "request", "requester", "role", "resources", "actor", "commit", "pr", "detail"] {
            assert!(l.get(k).is_some(), "missing {k} in {l}");
        }
    }
    let alice: Vec<(&str, &str)> =
        lines.iter().filter(|l| l["request"] == "alice-tools").map(|l| (l["event"].as_str().unwrap(), l["actor"].as_str().unwrap())).collect();
    assert_eq!(alice, vec![("landed", "alice"), ("granted", "gitgrant"), ("removed", "alice"), ("revoked", "gitgrant")]);
    let landed = lines.iter().find(|l| l["request"] == "alice-tools" && l["event"] == "landed").unwrap();
    assert_eq!(landed["pr"], 12);
    assert_eq!(landed["approvers"], serde_json::json!(["frank"]));
    let removed = lines.iter().find(|l| l["request"] == "alice-tools" && l["event"] == "removed").unwrap();
    assert!(removed["detail"].as_str().unwrap().contains("early revocation"), "{removed}");
    let granted = lines.iter().find(|l| l["request"] == "alice-tools" && l["event"] == "granted").unwrap();
    assert_eq!(granted["commit"], landed["commit"], "the grant names the landing it relied on");
    assert!(granted["detail"].as_str().unwrap().contains("tier managed"), "{granted}");

    // Filters.
    let ids = |args: &[&str]| -> Vec<(String, String)> {
        let mut a = vec!["--now", NOW, "audit", "--format", "json"];
        a.extend_from_slice(args);
        let out = r.run(&a);
        assert_eq!(out.code, 0, "{}", out.all());
        out.stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|l| (l["request"].as_str().unwrap().into(), l["event"].as_str().unwrap().into()))
            .collect()
    };
    let by_role = ids(&["--role", "writer"]);
    assert_eq!(by_role, vec![("ivan-tools".into(), "landed".into()), ("ivan-tools".into(), "granted".into()), ("ivan-tools".into(), "revoked".into())]);
    assert!(ids(&["--resource", "sandbox"]).iter().all(|(id, _)| id.starts_with("heidi-")));
    // frank approved alice-tools and committed the break-glass review; --user matches approvers and actors.
    assert_eq!(ids(&["--user", "frank"]), vec![("alice-tools".into(), "landed".into()), ("alice-tools".into(), "granted".into())]);
    assert_eq!(ids(&["--request", "heidi-bg", "--since", "2026-12-02"]), vec![("heidi-bg".into(), "granted".into())]);
    assert_eq!(ids(&["--since", "2026-12-01T12:00:00Z", "--until", "2026-12-01T12:20:00Z"]).len(), 3, "two revokes at 12:01 and the removal at 12:10");
    // A duration back from --now: since 2026-12-01T12:00: two revokes at 12:01, the removal at 12:10, the revoke at 12:30, the grant at 03:05.
    assert_eq!(ids(&["--since", "1d12h"]).len(), 5);
    let bad = r.run(&["audit", "--since", "last tuesday"]);
    assert_eq!(bad.code, 2, "{}", bad.all());
    assert!(bad.stderr.contains("is not a date"), "{}", bad.all());
    // csv is audit's alone.
    let plan = r.run(&["plan", "--format", "csv"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stderr.contains("only supported by `gitgrant audit`"), "{}", plan.all());
}

#[test]
fn who_had_access_clips_to_the_window_and_shows_open_grants() {
    let r = clean_history();
    let who = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut a = vec!["--now", NOW, "--format", "json", "audit", "who"];
        a.extend_from_slice(args);
        let out = r.run(&a);
        assert_eq!(out.code, 0, "{}", out.all());
        out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let write = who(&["--resource", "tools", "--privilege", "write", "--between", "2026-12-01", "2026-12-02"]);
    let got: Vec<(&str, &str, &str, &str)> = write
        .iter()
        .map(|h| (h["principal"].as_str().unwrap(), h["privilege"].as_str().unwrap(), h["from"].as_str().unwrap(), h["to"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![("alice", "admin", "2026-12-01T10:05:00Z", "2026-12-01T12:30:00Z"), ("ivan", "write", "2026-12-01T10:05:00Z", "2026-12-01T12:01:00Z")]
    );
    let admin = who(&["--resource", "tools", "--privilege", "admin", "--between", "2026-12-01T11:00:00Z", "2026-12-01T12:15:00Z"]);
    assert_eq!(admin.len(), 1);
    assert_eq!((admin[0]["from"].as_str(), admin[0]["to"].as_str()), (Some("2026-12-01T11:00:00Z"), Some("2026-12-01T12:15:00Z")), "clipped");
    assert!(who(&["--resource", "tools", "--between", "2026-12-01T12:31:00Z", "2026-12-02"]).is_empty());
    let sandbox = who(&["--resource", "sandbox", "--between", "2026-12-02", "2026-12-03"]);
    assert_eq!(sandbox.len(), 1, "{sandbox:?}");
    assert_eq!(sandbox[0]["request"], "heidi-bg");
    assert_eq!(sandbox[0]["still_open"], true);
    assert_eq!(sandbox[0]["break_glass"], true);

    let text = r.run(&["--now", NOW, "audit", "who", "--resource", "sandbox", "--between", "2026-12-02", "2026-12-03"]);
    assert!(text.stdout.contains("still open (scheduled end 2026-12-02T04:00:00Z)"), "{}", text.all());
    assert!(text.stdout.contains("[BREAK-GLASS]"), "{}", text.all());
}

#[test]
fn replay_recomputes_a_recorded_decision() {
    let r = clean_history();
    let out = r.run(&["--now", NOW, "audit", "replay", "alice-tools"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("[ok]      approvals: "), "{}", out.all());
    assert!(out.stdout.contains("[ok]      risk: tier managed (score 55: sensitivity +25, privilege +30)"), "{}", out.all());
    assert!(out.stdout.contains("the decision holds"), "{}", out.all());
    // By line, in JSON: the first line of the ledger is a grant too.
    let j = r.run(&["--now", NOW, "--format", "json", "audit", "replay", "1"]).json();
    assert_eq!(j["holds"], true, "{j}");
    assert_eq!(j["entry"]["action"], "grant");
    // The ledger records the risk factors with the grant.
    let ledger = crate::reconcile::ledger(&r);
    let alice = ledger.iter().find(|e| e["request"] == "alice-tools" && e["action"] == "grant").unwrap();
    assert_eq!(alice["risk_factors"][1]["name"], "privilege");
    assert_eq!(alice["risk_factors"][1]["points"], 30);
    // A revoke records no decision.
    let rev = r.run(&["audit", "replay", "alice-tools:revoke"]);
    assert_eq!(rev.code, 2, "{}", rev.all());
    assert!(rev.stderr.contains("only `grant` entries"), "{}", rev.all());
    let missing = r.run(&["audit", "replay", "nobody-here"]);
    assert_eq!(missing.code, 2, "{}", missing.all());

    // A forged grant: alice-tools recorded with another tier and an approver who never approved.
    let repo = git2::Repository::open(r.path()).unwrap();
    let mut l = Ledger::read(&repo).unwrap();
    let mut forged = l.entries.iter().find(|e| e.request == "alice-tools" && e.action == "grant").unwrap().clone();
    forged.tier = Some("auto".into());
    forged.approvers[0].login = "grace".into();
    l.append(&repo, &[forged], "forged").unwrap();
    let out = r.run(&["--now", NOW, "audit", "replay", "alice-tools"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains("[FAILED]  risk: tier managed (score 55"), "{}", out.all());
    assert!(out.stdout.contains("[FAILED]  trailers: recorded approver(s) grace did not validly approve"), "{}", out.all());
    assert!(out.stdout.contains("DOES NOT HOLD"), "{}", out.all());
}

#[test]
fn verify_is_clean_on_a_clean_history() {
    let r = clean_history();
    let out = r.run(&["--now", NOW, "audit", "verify"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.ends_with("clean\n"), "{}", out.all());
    assert!(out.stdout.contains("checked: 4 landing(s), 4 grant(s), 1 break-glass grant(s), 4 ledger commit(s), 1 provider grant(s)"), "{}", out.all());
    let j = r.run(&["--now", NOW, "--format", "json", "audit", "verify"]).json();
    assert_eq!(j["clean"], true);
    assert_eq!(j["findings"], serde_json::json!([]));
}

/// Every case at once: a direct push, an admin merge without valid trailers,
/// an unreviewed break-glass grant, a forged ledger grant, drift at the provider.
#[test]
fn verify_finds_exactly_the_broken_cases() {
    let r = repo();
    land(&r, "alice-tools", "alice", req("alice", "admin", "tools", "2026-12-01T10:00:00Z", "4h", ""), &["frank"], 12);
    r.write("requests/bob-tools.yaml", req("bob", "admin", "tools", "2026-12-01T10:00:00Z", "4h", ""));
    let direct = r.commit_as("bob", "add my access");
    // Merged by an admin with the requester's own trailer: not a valid approval.
    land(&r, "ivan-writer", "ivan", req("ivan", "writer", "tools", "2026-12-01T10:00:00Z", "2h", ""), &["ivan"], 15);
    land(&r, "ivan-bg", "ivan", req("ivan", "user", "sandbox", "2026-12-02T03:00:00Z", "1h", "break_glass: true\n"), &["bob"], 16);
    reconcile(&r, "2026-12-01T10:05:00Z");
    reconcile(&r, "2026-12-02T03:05:00Z");
    // A grant written into the ledger that no request explains.
    let repo = git2::Repository::open(r.path()).unwrap();
    let mut l = Ledger::read(&repo).unwrap();
    let ghost = Entry {
        time: chrono::DateTime::parse_from_rfc3339("2026-12-02T05:00:00Z").unwrap().into(),
        action: "grant".into(),
        request: "ghost".into(),
        requester: "mallory".into(),
        role: "admin".into(),
        resources: vec!["tools".into()],
        provider: Some("local".into()),
        resource: Some("tools".into()),
        principal: Some("mallory".into()),
        access: Some("admin".into()),
        result: "ok".into(),
        ..Entry::default()
    };
    l.append(&repo, &[ghost], "forged").unwrap();
    // A managed grant made behind gitgrant's back (drift).
    let state = r.path().join("state/grants.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    v["grants"].as_array_mut().unwrap().push(serde_json::json!({
        "access": {"provider": "local", "resource": "tools", "principal": "eve", "access": "admin"},
        "requests": ["rogue"], "end": null, "handle": "tools/eve/admin", "granted_at": "2026-12-02T06:00:00Z"
    }));
    std::fs::write(&state, serde_json::to_string(&v).unwrap()).unwrap();

    let out = r.run(&["--now", "2026-12-04T00:00:00Z", "--format", "json", "audit", "verify"]);
    assert_eq!(out.code, 1, "{}", out.all());
    let want = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    assert_eq!(
        findings(&out),
        want(&[("AV001", "ghost"), ("AV002", "bob-tools"), ("AV002", "ivan-writer"), ("AV003", "ivan-bg"), ("AV004", "rogue")]),
        "{}",
        out.stdout
    );
    let j = out.json();
    let by = |code: &str| {
        j["findings"].as_array().unwrap().iter().filter(|f| f["code"] == code).map(|f| f["detail"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert!(by("AV002").iter().any(|d| d.contains("pushed directly to main")), "{:?}", by("AV002"));
    assert!(by("AV002").iter().any(|d| d.contains("merged without the approvals") && d.contains("Approved-by: ivan")), "{:?}", by("AV002"));
    assert!(j["findings"].as_array().unwrap().iter().any(|f| f["code"] == "AV002" && f["commit"] == direct.as_str()));

    // Human output: one line per finding with its code, and the count.
    let text = r.run(&["--now", "2026-12-04T00:00:00Z", "audit", "verify"]);
    assert_eq!(text.code, 1);
    assert!(text.stdout.contains("AV003 break-glass-unreviewed"), "{}", text.all());
    assert!(text.stdout.contains("5 finding(s)"), "{}", text.all());
    let csv = r.run(&["--now", "2026-12-04T00:00:00Z", "--format", "csv", "audit", "verify"]);
    assert!(csv.stdout.starts_with("code,name,request,commit,detail\nAV001,grant-unapproved,ghost,"), "{}", csv.all());

    // Within the review window the break-glass grant is pending, not a finding;
    // without providers, the drift is not looked for.
    let early = r.run(&["--now", "2026-12-02T10:00:00Z", "--format", "json", "audit", "verify", "--no-providers"]);
    assert_eq!(findings(&early), want(&[("AV001", "ghost"), ("AV002", "bob-tools"), ("AV002", "ivan-writer")]));
    assert_eq!(early.json()["checked"]["reviews_pending"][0], "ivan-bg (due 2026-12-03T03:05:00Z)");

    // The replay of the forged grant does not hold.
    let rep = r.run(&["--now", NOW, "audit", "replay", "ghost"]);
    assert_eq!(rep.code, 1, "{}", rep.all());
    assert!(rep.stdout.contains("no landing commit"), "{}", rep.all());

    // A late review does not count; a review in time by a security member does.
    r.at("2026-12-03T09:00:00Z");
    r.commit_as("frank", "Review ivan-bg\n\nBreak-glass-review: ivan-bg\nApproved-by: dave");
    let late = r.run(&["--now", "2026-12-04T00:00:00Z", "--format", "json", "audit", "verify", "--no-providers"]);
    assert!(findings(&late).contains(&("AV003".into(), "ivan-bg".into())));
    assert!(late.stdout.contains("after the deadline"), "{}", late.stdout);
}

#[test]
fn verify_detects_a_rewritten_ledger() {
    let r = repo();
    land(&r, "heidi-sandbox", "heidi", req("heidi", "user", "sandbox", "2026-12-01T10:00:00Z", "2h", ""), &[], 11);
    reconcile(&r, "2026-12-01T10:05:00Z");
    reconcile(&r, "2026-12-01T12:01:00Z");
    let head = r.git(&["rev-parse", "gitgrant-ledger"]);
    let clean = r.run(&["audit", "verify", "--no-providers", "--expect-head", &head]);
    assert_eq!(clean.code, 0, "{}", clean.all());
    assert!(clean.stdout.contains(&format!("ledger head: {head} (pin it: --expect-head {head})")), "{}", clean.all());

    // A force-push back to the first run: the chain itself is consistent,
    // but the reflog and the pinned head both show the lost entries.
    let first = r.git(&["rev-parse", "gitgrant-ledger^"]);
    r.git(&["update-ref", "-m", "push --force", "refs/heads/gitgrant-ledger", &first]);
    let out = r.run(&["--format", "json", "audit", "verify", "--no-providers", "--expect-head", &head]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(findings(&out), vec![("AV005".to_string(), "-".to_string()); 2], "{}", out.stdout);
    assert!(out.stdout.contains("not in the history of `gitgrant-ledger`"), "{}", out.stdout);
    assert!(out.stdout.contains("without a fast-forward (reflog: push --force)"), "{}", out.stdout);

    // A rewritten commit on top: it edits an earlier entry and names the lost head.
    let repo = git2::Repository::open(r.path()).unwrap();
    let parent = repo.find_commit(git2::Oid::from_str(&first).unwrap()).unwrap();
    let text = r.git(&["show", &format!("{first}:ledger.jsonl")]).replace("\"tier\":\"auto\"", "\"tier\":\"none\"") + "\n";
    let blob = repo.blob(text.as_bytes()).unwrap();
    let mut tb = repo.treebuilder(None).unwrap();
    tb.insert("ledger.jsonl", blob, 0o100644).unwrap();
    let tree = repo.find_tree(tb.write().unwrap()).unwrap();
    let sig = git2::Signature::now("mallory", "mallory@example.com").unwrap();
    let msg = format!("gitgrant reconcile\n\nPrevious-ledger: {head}\n");
    let forged = repo.commit(None, &sig, &sig, &msg, &tree, &[&parent]).unwrap();
    repo.reference("refs/heads/gitgrant-ledger", forged, true, "commit: rewrite").unwrap();
    let out = r.run(&["--format", "json", "audit", "verify", "--no-providers"]);
    assert_eq!(out.code, 1, "{}", out.all());
    let details: Vec<String> = out.json()["findings"].as_array().unwrap().iter().map(|f| format!("{} {}", f["code"], f["detail"])).collect();
    assert!(details.iter().all(|d| d.starts_with("\"AV005\"")), "{details:?}");
    assert!(details.iter().any(|d| d.contains("names") && d.contains("as the previous head, but its parent is")), "{details:?}");
    assert!(details.iter().any(|d| d.contains("changes or removes entries of its parent")), "{details:?}");
}

/// Drift at a real cloud API: a managed IAM policy gitgrant's ledger never recorded.
#[tokio::test]
#[ignore = "needs moto (GITGRANT_TEST_MOTO)"]
async fn verify_finds_drift_in_aws_iam_on_moto() {
    use gitgrant::provider::aws_iam::AwsIamProvider;
    use gitgrant::provider::{Access, GrantSpec, Provider};

    let (iam, _) = crate::provider_aws_iam::moto();
    let id = crate::provider_aws_iam::unique("audit");
    let mut arns = Vec::new();
    for login in ["alice", "bob"] {
        let u = iam.create_user().user_name(format!("{id}-{login}")).send().await.unwrap();
        arns.push(u.user().unwrap().arn().to_string());
    }
    let account = arns[0].split(':').nth(4).unwrap().to_string();
    let resource = format!("aws-{id}");
    let r = Repo::new();
    r.at("2026-11-20T10:00:00Z");
    r.write(
        "policies/all.yaml",
        format!(
            r#"
groups:
  sre: {{ members: [alice, bob] }}
  managers: {{ members: [frank] }}
identities:
  alice: {{ aws: "{a}" }}
  bob: {{ aws: "{b}" }}
  frank: {{}}
resources:
  {resource}: {{ provider: aws-iam, environment: production, sensitivity: high, config: {{ account_id: "{account}" }} }}
roles:
  ops-read:
    privilege: read
    max_duration: 8h
    eligible: [sre]
    grants: {{ aws-iam: {{ policy_template: aws/readonly.json.j2 }} }}
risk:
  factors: {{ sensitivity: {{ high: 25 }} }}
  tiers:
    - {{ name: managed, max_score: 100, approvals: [ {{ from: [managers], count: 1 }} ] }}
policy_changes:
  approvals: [ {{ from: [managers], count: 1 }} ]
"#,
            a = arns[0],
            b = arns[1]
        ),
    );
    r.copy_dir("templates");
    r.commit("bootstrap policies");
    land(
        &r,
        "alice-aws",
        "alice",
        format!(
            "requester: alice\nrole: ops-read\nresources: [{resource}]\nstart: 2026-12-01T10:00:00Z\nduration: 2h\nreason: \"INC-9: investigate the incident\"\n"
        ),
        &["frank"],
        21,
    );
    let moto = std::env::var("GITGRANT_TEST_MOTO").unwrap();
    let env = [
        ("AWS_ENDPOINT_URL", moto.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("GITGRANT_RETRY_BASE_MS", "10"),
    ];
    let run = |args: &[&str]| crate::support::run_in_env(r.path(), args, &env);
    let rec = run(&["reconcile", "--at", "2026-12-01T10:05:00Z"]);
    assert_eq!(rec.code, 0, "{}", rec.all());
    let clean = run(&["--now", "2026-12-01T10:10:00Z", "audit", "verify"]);
    assert_eq!(clean.code, 0, "{}", clean.all());
    assert!(clean.stdout.contains("1 provider grant(s)"), "{}", clean.all());

    // bob gets a gitgrant-marked policy outside gitgrant's run (no ledger line).
    let p = AwsIamProvider::new(iam.clone(), &resource, &Default::default()).unwrap();
    let grant = serde_json::json!({"policy_template": "aws/readonly.json.j2"});
    let access = p.access_for("rogue-bob", &grant).unwrap();
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}"#;
    let spec = GrantSpec {
        access: Access { provider: p.kind(), resource: resource.clone(), principal: arns[1].clone(), access },
        requests: ["rogue-bob".to_string()].into(),
        end: chrono::DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z").unwrap().into(),
        role: "ops-read".into(),
        grant,
        document: Some(doc.into()),
    };
    p.grant(&spec).await.unwrap();
    let out = run(&["--now", "2026-12-01T10:10:00Z", "--format", "json", "audit", "verify"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(findings(&out), vec![("AV004".to_string(), "rogue-bob".to_string())], "{}", out.stdout);
    assert!(out.stdout.contains(&format!("aws-iam {resource}")), "{}", out.stdout);
}

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;

use super::matching::max_matching;
use super::*;

const HEAD: &str = "h2";
const OLD: &str = "h1";

fn t(n: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + n, 0).single().unwrap()
}

fn rv(login: &str, state: ReviewState, commit: &str, at: i64) -> Review {
    Review { login: login.to_owned(), state, commit_id: commit.to_owned(), submitted_at: t(at), id: None }
}

use ReviewState::{Approved, ChangesRequested, Commented, Dismissed, Pending};

fn groups(spec: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
    spec.iter().map(|(g, ms)| ((*g).to_owned(), ms.iter().map(|m| (*m).to_owned()).collect())).collect()
}

fn reqs(spec: &[(&[&str], u32)]) -> Vec<Requirement> {
    spec.iter()
        .enumerate()
        .map(|(i, (from, count))| Requirement { from: from.iter().map(|g| (*g).to_owned()).collect(), count: *count, label: format!("req{i}") })
        .collect()
}

fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|x| (*x).to_owned()).collect()
}

/// The standard groups: `pat` is both a manager and in security.
const STD: &[(&str, &[&str])] = &[("managers", &["mia", "max", "pat", "alice", "bob"]), ("security", &["sam", "sue", "pat"]), ("dba", &["dan"])];

struct Case {
    name: &'static str,
    groups: &'static [(&'static str, &'static [&'static str])],
    reqs: &'static [(&'static [&'static str], u32)],
    excluded: &'static [&'static str],
    reviews: Vec<Review>,
    satisfied: bool,
    filled: &'static [Option<&'static str>],
    /// Candidates of each slot (empty for filled slots).
    candidates: &'static [&'static [&'static str]],
    approvers: &'static [&'static str],
    blockers: &'static [&'static str],
    ignored: Vec<(&'static str, IgnoreReason)>,
}

fn run(case: &Case) -> Decision {
    let groups = groups(case.groups);
    let requirements = reqs(case.reqs);
    let excluded = strings(case.excluded);
    evaluate(&ApprovalInput { requirements: &requirements, groups: &groups, reviews: &case.reviews, head_commit: HEAD, excluded: &excluded })
}

const MGR: &[&str] = &["managers"];
const SEC: &[&str] = &["security"];
const NONE: &[&str] = &[];

#[allow(clippy::too_many_lines)]
fn cases() -> Vec<Case> {
    use IgnoreReason as R;
    vec![
        Case {
            name: "reviewer in two groups fills one slot, another fills the other",
            groups: STD,
            reqs: &[(MGR, 1), (SEC, 1)],
            excluded: &["alice"],
            reviews: vec![rv("pat", Approved, HEAD, 1), rv("sam", Approved, HEAD, 2)],
            satisfied: true,
            filled: &[Some("pat"), Some("sam")],
            candidates: &[NONE, NONE],
            approvers: &["pat", "sam"],
            blockers: &[],
            ignored: vec![],
        },
        Case {
            name: "only approver in both manager and security groups: one slot stays open",
            groups: STD,
            reqs: &[(MGR, 1), (SEC, 1)],
            excluded: &["alice"],
            reviews: vec![rv("pat", Approved, HEAD, 1)],
            satisfied: false,
            filled: &[Some("pat"), None],
            candidates: &[NONE, &["sam", "sue"]],
            approvers: &["pat"],
            blockers: &[],
            ignored: vec![],
        },
        Case {
            name: "a slot accepting either group is still one person per slot",
            groups: STD,
            reqs: &[(&["managers", "security"], 2)],
            excluded: &["alice", "bob"],
            reviews: vec![rv("pat", Approved, HEAD, 1)],
            satisfied: false,
            filled: &[Some("pat"), None],
            candidates: &[NONE, &["max", "mia", "sam", "sue"]],
            approvers: &["pat"],
            blockers: &[],
            ignored: vec![],
        },
        Case {
            name: "requester in the approver group does not count",
            groups: STD,
            reqs: &[(MGR, 1)],
            excluded: &["alice"],
            reviews: vec![rv("alice", Approved, HEAD, 1)],
            satisfied: false,
            filled: &[None],
            candidates: &[&["bob", "max", "mia", "pat"]],
            approvers: &[],
            blockers: &[],
            ignored: vec![("alice", R::RequesterOrAuthor)],
        },
        Case {
            name: "PR author approving does not count",
            groups: STD,
            reqs: &[(MGR, 1)],
            excluded: &["alice", "bob"],
            reviews: vec![rv("bob", Approved, HEAD, 1), rv("mia", Approved, HEAD, 2)],
            satisfied: true,
            filled: &[Some("mia")],
            candidates: &[NONE],
            approvers: &["mia"],
            blockers: &[],
            ignored: vec![("bob", R::RequesterOrAuthor)],
        },
        Case {
            name: "author requesting changes does not block",
            groups: STD,
            reqs: &[(MGR, 1)],
            excluded: &["alice", "bob"],
            reviews: vec![rv("bob", ChangesRequested, HEAD, 1), rv("mia", Approved, HEAD, 2)],
            satisfied: true,
            filled: &[Some("mia")],
            candidates: &[NONE],
            approvers: &["mia"],
            blockers: &[],
            ignored: vec![("bob", R::RequesterOrAuthor)],
        },
        Case {
            name: "stale approval after a new push does not count",
            groups: STD,
            reqs: &[(MGR, 1)],
            excluded: &["alice"],
            reviews: vec![rv("mia", Approved, OLD, 1)],
            satisfied: false,
            filled: &[None],
            candidates: &[&["bob", "max", "mia", "pat"]],
            approvers: &[],
            blockers: &[],
            ignored: vec![("mia", R::StaleCommit { commit: OLD.to_owned() })],
        },
        Case {
            name: "re-approval of the head after a push counts",
            groups: STD,
            reqs: &[(MGR, 1)],
            excluded: &["alice"],
            reviews: vec![rv("mia", Approved, OLD, 1), rv("mia", Approved, HEAD, 2)],
            satisfied: true,
            filled: &[Some("mia")],
            candidates: &[NONE],
            approvers: &["mia"],
            blockers: &[],
            ignored: vec![("mia", R::Superseded)],
        },
        Case {
            name: "approval followed by changes requested blocks",
            groups: STD,
            reqs: &[(MGR, 1)],
            excluded: &["alice"],
            reviews: vec![rv("mia", Approved, HEAD, 1), rv("max", Approved, HEAD, 2), rv("mia", ChangesRequested, HEAD, 3)],
            satisfied: false,
            filled: &[Some("max")],
            candidates: &[NONE],
            approvers: &["max"],
            blockers: &["mia"],
            ignored: vec![("mia", R::Superseded)],
        },
        Case {
            name: "changes requested on an old commit by an eligible person still blocks",
            groups: STD,
            reqs: &[(MGR, 1)],
            excluded: &["alice"],
            reviews: vec![rv("max", ChangesRequested, OLD, 1), rv("mia", Approved, HEAD, 2)],
            satisfied: false,
            filled: &[Some("mia")],
            candidates: &[NONE],
            approvers: &["mia"],
            blockers: &["max"],
            ignored: vec![],
        },
        Case {
            name: "changes requested then approved counts",
            groups: STD,
            reqs: &[(MGR, 1)],
            excluded: &["alice"],
            reviews: vec![rv("mia", ChangesRequested, OLD, 1), rv("mia", Approved, HEAD, 2)],
            satisfied: true,
            filled: &[Some("mia")],
            candidates: &[NONE],
            approvers: &["mia"],
            blockers: &[],
            ignored: vec![("mia", R::Superseded)],
        },
        Case {
            name: "a dismissed approval does not count",
            groups: STD,
            reqs: &[(MGR, 1)],
            excluded: &["alice"],
            reviews: vec![rv("mia", Approved, OLD, 1), rv("mia", Dismissed, HEAD, 2)],
            satisfied: false,
            filled: &[None],
            candidates: &[&["bob", "max", "mia", "pat"]],
            approvers: &[],
            blockers: &[],
            ignored: vec![("mia", R::Superseded), ("mia", R::Dismissed)],
        },
        Case {
            name: "a dismissed change request no longer blocks",
            groups: STD,
            reqs: &[(MGR, 1)],
            excluded: &["alice"],
            reviews: vec![rv("sam", ChangesRequested, HEAD, 1), rv("mia", Approved, HEAD, 2), rv("sam", Dismissed, HEAD, 3)],
            satisfied: true,
            filled: &[Some("mia")],
            candidates: &[NONE],
            approvers: &["mia"],
            blockers: &[],
            ignored: vec![("sam", R::Superseded), ("sam", R::Dismissed)],
        },
        Case {
            name: "COMMENTED after APPROVED keeps the approval",
            groups: STD,
            reqs: &[(MGR, 1)],
            excluded: &["alice"],
            reviews: vec![rv("mia", Approved, HEAD, 1), rv("mia", Commented, HEAD, 2), rv("mia", Pending, HEAD, 3)],
            satisfied: true,
            filled: &[Some("mia")],
            candidates: &[NONE],
            approvers: &["mia"],
            blockers: &[],
            ignored: vec![],
        },
        Case {
            name: "COMMENTED after CHANGES_REQUESTED keeps the block",
            groups: STD,
            reqs: &[(MGR, 1)],
            excluded: &["alice"],
            reviews: vec![rv("mia", ChangesRequested, HEAD, 1), rv("mia", Commented, HEAD, 2), rv("max", Approved, HEAD, 3)],
            satisfied: false,
            filled: &[Some("max")],
            candidates: &[NONE],
            approvers: &["max"],
            blockers: &["mia"],
            ignored: vec![],
        },
        Case {
            name: "two requests in one PR sharing an approver need two people",
            groups: STD,
            reqs: &[(MGR, 1), (MGR, 1)],
            excluded: &["alice", "bob"],
            reviews: vec![rv("mia", Approved, HEAD, 1)],
            satisfied: false,
            filled: &[Some("mia"), None],
            candidates: &[NONE, &["max", "pat"]],
            approvers: &["mia"],
            blockers: &[],
            ignored: vec![],
        },
        Case {
            name: "two requests in one PR with two distinct approvers",
            groups: STD,
            reqs: &[(MGR, 1), (MGR, 1)],
            excluded: &["alice", "bob"],
            reviews: vec![rv("mia", Approved, HEAD, 1), rv("max", Approved, HEAD, 2)],
            satisfied: true,
            filled: &[Some("max"), Some("mia")],
            candidates: &[NONE, NONE],
            approvers: &["max", "mia"],
            blockers: &[],
            ignored: vec![],
        },
        Case {
            name: "matching moves a two-group approver to the slot only they can fill",
            // Greedy in order would give pat the manager slot and leave
            // security empty; the augmenting path gives it to ren instead.
            groups: &[("managers", &["pat", "ren"]), ("security", &["pat", "sam"])],
            reqs: &[(MGR, 1), (SEC, 1)],
            excluded: &[],
            reviews: vec![rv("pat", Approved, HEAD, 1), rv("ren", Approved, HEAD, 2)],
            satisfied: true,
            filled: &[Some("ren"), Some("pat")],
            candidates: &[NONE, NONE],
            approvers: &["pat", "ren"],
            blockers: &[],
            ignored: vec![],
        },
        Case {
            name: "logins compare case-insensitively and are reported as given",
            groups: &[("managers", &["Mia", "Max", "ALICE"])],
            reqs: &[(MGR, 2)],
            excluded: &["Alice"],
            reviews: vec![rv("alice", Approved, HEAD, 1), rv("MIA", Approved, HEAD, 2)],
            satisfied: false,
            filled: &[Some("MIA"), None],
            candidates: &[NONE, &["Max"]],
            approvers: &["MIA"],
            blockers: &[],
            ignored: vec![("alice", R::RequesterOrAuthor)],
        },
        Case {
            name: "reviews by the same person in different case are one reviewer",
            groups: STD,
            reqs: &[(MGR, 1)],
            excluded: &[],
            reviews: vec![rv("mia", Approved, HEAD, 1), rv("MIA", ChangesRequested, HEAD, 2)],
            satisfied: false,
            filled: &[None],
            candidates: &[&["alice", "bob", "max", "mia", "pat"]],
            approvers: &[],
            blockers: &["MIA"],
            ignored: vec![("mia", R::Superseded)],
        },
        Case {
            name: "zero requirements are satisfied",
            groups: STD,
            reqs: &[],
            excluded: &["alice"],
            reviews: vec![rv("mia", Approved, HEAD, 1)],
            satisfied: true,
            filled: &[],
            candidates: &[],
            approvers: &["mia"],
            blockers: &[],
            ignored: vec![("mia", R::NotEligible)],
        },
        Case {
            name: "a zero count requirement has no slots and makes nobody eligible",
            groups: STD,
            reqs: &[(MGR, 0)],
            excluded: &["alice"],
            reviews: vec![rv("mia", ChangesRequested, HEAD, 1)],
            satisfied: true,
            filled: &[],
            candidates: &[],
            approvers: &[],
            blockers: &[],
            ignored: vec![("mia", R::ChangesRequestedNotEligible)],
        },
        Case {
            name: "changes requested by a non-eligible person do not block",
            groups: STD,
            reqs: &[(MGR, 1)],
            excluded: &["alice"],
            reviews: vec![rv("olga", ChangesRequested, HEAD, 1), rv("mia", Approved, HEAD, 2)],
            satisfied: true,
            filled: &[Some("mia")],
            candidates: &[NONE],
            approvers: &["mia"],
            blockers: &[],
            ignored: vec![("olga", R::ChangesRequestedNotEligible)],
        },
        Case {
            name: "approval by someone in no slot group is not eligible",
            groups: STD,
            reqs: &[(SEC, 1)],
            excluded: &["alice"],
            reviews: vec![rv("mia", Approved, HEAD, 1), rv("olga", Approved, HEAD, 2)],
            satisfied: false,
            filled: &[None],
            candidates: &[&["pat", "sam", "sue"]],
            approvers: &["mia", "olga"],
            blockers: &[],
            ignored: vec![("mia", R::NotEligible), ("olga", R::NotEligible)],
        },
        Case {
            name: "an extra eligible approver is unused",
            groups: STD,
            reqs: &[(MGR, 1)],
            excluded: &["alice"],
            reviews: vec![rv("mia", Approved, HEAD, 1), rv("max", Approved, HEAD, 2)],
            satisfied: true,
            filled: &[Some("max")],
            candidates: &[NONE],
            approvers: &["max", "mia"],
            blockers: &[],
            ignored: vec![("mia", R::Unused)],
        },
        Case {
            name: "same timestamp: later input wins (changes requested)",
            groups: STD,
            reqs: &[(MGR, 1)],
            excluded: &["alice"],
            reviews: vec![rv("mia", Approved, HEAD, 1), rv("mia", ChangesRequested, HEAD, 1)],
            satisfied: false,
            filled: &[None],
            candidates: &[&["bob", "max", "mia", "pat"]],
            approvers: &[],
            blockers: &["mia"],
            ignored: vec![("mia", R::Superseded)],
        },
        Case {
            name: "same timestamp: later input wins (approved)",
            groups: STD,
            reqs: &[(MGR, 1)],
            excluded: &["alice"],
            reviews: vec![rv("mia", ChangesRequested, HEAD, 1), rv("mia", Approved, HEAD, 1)],
            satisfied: true,
            filled: &[Some("mia")],
            candidates: &[NONE],
            approvers: &["mia"],
            blockers: &[],
            ignored: vec![("mia", R::Superseded)],
        },
        Case {
            name: "latest is by submitted_at, not input order",
            groups: STD,
            reqs: &[(MGR, 1)],
            excluded: &["alice"],
            reviews: vec![rv("mia", Approved, HEAD, 5), rv("mia", ChangesRequested, HEAD, 1)],
            satisfied: true,
            filled: &[Some("mia")],
            candidates: &[NONE],
            approvers: &["mia"],
            blockers: &[],
            ignored: vec![("mia", R::Superseded)],
        },
        Case {
            name: "a count beyond the group size can never be met",
            groups: STD,
            reqs: &[(&["dba"], 1_000_000)],
            excluded: &[],
            reviews: vec![rv("dan", Approved, HEAD, 1)],
            satisfied: false,
            filled: &[Some("dan"), None],
            candidates: &[NONE, NONE],
            approvers: &["dan"],
            blockers: &[],
            ignored: vec![],
        },
        Case {
            name: "a requirement naming an unknown group cannot be met",
            groups: STD,
            reqs: &[(&["nosuchgroup"], 1)],
            excluded: &[],
            reviews: vec![rv("mia", Approved, HEAD, 1)],
            satisfied: false,
            filled: &[None],
            candidates: &[NONE],
            approvers: &["mia"],
            blockers: &[],
            ignored: vec![("mia", R::NotEligible)],
        },
    ]
}

#[test]
fn table() {
    for case in cases() {
        let d = run(&case);
        let name = case.name;
        assert_eq!(d.satisfied, case.satisfied, "{name}: satisfied");
        let filled: Vec<Option<&str>> = d.slots.iter().map(|s| s.filled_by.as_deref()).collect();
        assert_eq!(filled, case.filled, "{name}: filled");
        let candidates: Vec<Vec<&str>> = d.slots.iter().map(|s| s.candidates.iter().map(String::as_str).collect()).collect();
        let expected: Vec<Vec<&str>> = case.candidates.iter().map(|c| c.to_vec()).collect();
        assert_eq!(candidates, expected, "{name}: candidates");
        assert_eq!(d.approvers, strings(case.approvers), "{name}: approvers");
        assert_eq!(d.blockers, strings(case.blockers), "{name}: blockers");
        let ignored: Vec<(&str, IgnoreReason)> = d.ignored.iter().map(|i| (i.login.as_str(), i.reason.clone())).collect();
        assert_eq!(ignored, case.ignored, "{name}: ignored");
        // Slots are in requirement order and carry their requirement.
        let requirements = reqs(case.reqs);
        for slot in &d.slots {
            assert!(requirements.iter().any(|r| r.label == slot.label && r.from == slot.from), "{name}: slot label");
        }
    }
}

#[test]
fn slots_follow_requirement_order_with_labels() {
    let groups = groups(STD);
    let requirements = vec![
        Requirement { from: strings(&["security"]), count: 2, label: "request a: tier high".to_owned() },
        Requirement { from: strings(&["managers"]), count: 1, label: "policy change".to_owned() },
    ];
    let reviews = vec![rv("mia", Approved, HEAD, 1)];
    let d = evaluate(&ApprovalInput { requirements: &requirements, groups: &groups, reviews: &reviews, head_commit: HEAD, excluded: &[] });
    let labels: Vec<&str> = d.slots.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["request a: tier high", "request a: tier high", "policy change"]);
    assert_eq!(d.slots[2].filled_by.as_deref(), Some("mia"));
    assert_eq!(d.slots[0].candidates, strings(&["pat", "sam", "sue"]));
}

#[test]
fn empty_head_commit_validates_nothing() {
    let groups = groups(STD);
    let requirements = reqs(&[(MGR, 1)]);
    let reviews = vec![rv("mia", Approved, "", 1)];
    let d = evaluate(&ApprovalInput { requirements: &requirements, groups: &groups, reviews: &reviews, head_commit: "", excluded: &[] });
    assert!(!d.satisfied);
    assert!(d.approvers.is_empty());
}

#[test]
fn summary_lines() {
    let find = |name: &str| {
        let case = cases().into_iter().find(|c| c.name == name).unwrap();
        run(&case).summary()
    };
    assert_eq!(
        find("only approver in both manager and security groups: one slot stays open"),
        "1 of 2 approvals: missing 1 from security (could approve: sam, sue)"
    );
    assert_eq!(find("reviewer in two groups fills one slot, another fills the other"), "2 of 2 approvals: satisfied");
    assert_eq!(find("zero requirements are satisfied"), "no approvals required: satisfied");
    assert_eq!(find("approval followed by changes requested blocks"), "1 of 1 approval: changes requested by mia");
    assert_eq!(find("a requirement naming an unknown group cannot be met"), "0 of 1 approval: missing 1 from nosuchgroup (nobody else can approve)");

    let groups = groups(STD);
    let requirements = reqs(&[(MGR, 1), (SEC, 2), (&["managers", "dba"], 1)]);
    let reviews = vec![rv("sam", Approved, HEAD, 1), rv("mia", ChangesRequested, HEAD, 2)];
    let excluded = strings(&["alice", "bob"]);
    let d = evaluate(&ApprovalInput { requirements: &requirements, groups: &groups, reviews: &reviews, head_commit: HEAD, excluded: &excluded });
    assert_eq!(
        d.summary(),
        "1 of 4 approvals: missing 1 from managers (could approve: max, mia, pat); \
         missing 1 from security (could approve: pat, sue); \
         missing 1 from managers or dba (could approve: dan, max, mia, pat); \
         changes requested by mia"
    );
}

#[test]
fn serde_shapes() {
    assert_eq!(serde_json::to_string(&ChangesRequested).unwrap(), "\"CHANGES_REQUESTED\"");
    let review: Review = serde_json::from_str(r#"{"login":"mia","state":"APPROVED","commit_id":"h2","submitted_at":"2026-01-02T03:04:05Z"}"#).unwrap();
    assert_eq!(review.state, Approved);
    assert_eq!(review.id, None);
    let ignored = IgnoredReview { login: "mia".to_owned(), reason: IgnoreReason::StaleCommit { commit: "h1".to_owned() } };
    assert_eq!(serde_json::to_string(&ignored).unwrap(), r#"{"login":"mia","reason":{"kind":"stale_commit","commit":"h1"}}"#);
    assert_eq!(serde_json::to_value(IgnoreReason::ChangesRequestedNotEligible).unwrap(), serde_json::json!({"kind": "changes_requested_not_eligible"}));
    assert_eq!(serde_json::to_value(IgnoreReason::RequesterOrAuthor).unwrap(), serde_json::json!({"kind": "requester_or_author"}));
}

#[test]
fn matching_basics() {
    assert_eq!(max_matching(&[], 3), Vec::<Option<usize>>::new());
    assert_eq!(max_matching(&[vec![], vec![0]], 1), [None, Some(0)]);
    // Needs an augmenting path: slot 0 first takes 0, then moves to 1.
    assert_eq!(max_matching(&[vec![0, 1], vec![0]], 2), [Some(1), Some(0)]);
    // Longer chain.
    assert_eq!(max_matching(&[vec![0, 1], vec![1, 2], vec![0]], 3), [Some(1), Some(2), Some(0)]);
    // Out-of-range people are ignored.
    assert_eq!(max_matching(&[vec![7, 0]], 1), [Some(0)]);
}

#[test]
fn login_validation() {
    assert!(is_valid_login("a"));
    assert!(is_valid_login("Alice-Smith-2"));
    assert!(is_valid_login(&"a".repeat(39)));
    assert!(!is_valid_login(&"a".repeat(40)));
    assert!(!is_valid_login(""));
    assert!(!is_valid_login("-alice"));
    assert!(!is_valid_login("al_ice"));
    assert!(!is_valid_login("alice.smith"));
    assert!(!is_valid_login("élise"));
}

#[test]
fn trailers() {
    let cases: &[(&str, &[&str])] = &[
        (
            "Grant db access\n\nBody text.\n\nApproved-by: mia\nApproved-by: @Max\napproved-BY : sam <sam@example.com>\nSigned-off-by: Alice <a@example.com>\n",
            &["mia", "Max", "sam"],
        ),
        // Only the last paragraph holds trailers.
        ("Title\n\nApproved-by: mia\n\nSome closing words.\n", &[]),
        // The title is never a trailer block.
        ("Approved-by: mia\n", &[]),
        ("\n\nApproved-by: mia\n", &[]),
        // A paragraph mixing prose and trailers is not a trailer block.
        ("Title\n\nThis fixes things.\nApproved-by: mia\n", &[]),
        // Trailing blank lines, CRLF and comments are fine.
        ("Title\r\n\r\nApproved-by: mia\r\n# a comment\r\n\r\n\r\n", &["mia"]),
        // Invalid logins and values that are not `login [<email>]` are skipped.
        ("Title\n\nApproved-by: -bad\nApproved-by: Alice Smith <alice@example.com>\nApproved-by: ok_not\nApproved-by:\nApproved-by: dave\n", &["dave"]),
        // Duplicates (any case) are dropped, first spelling kept.
        ("Title\n\nApproved-by: Mia\nApproved-by: mia\n", &["Mia"]),
        // Continuation lines belong to the previous trailer.
        ("Title\n\nApproved-by: erin\n  <erin@example.com>\nApproved-by: fay\n", &["erin", "fay"]),
        // Other keys are not approvals.
        ("Title\n\nReviewed-by: mia\nApproved-byx: max\n", &[]),
        ("", &[]),
    ];
    for (message, expected) in cases {
        assert_eq!(parse_trailers(message), strings(expected), "{message:?}");
    }
}

#[test]
fn trailer_reviews_count_as_approvals() {
    let logins = parse_trailers("Grant\n\nApproved-by: mia\nApproved-by: sam\n");
    let reviews = reviews_from_trailers(&logins, HEAD, t(10));
    assert_eq!(reviews.len(), 2);
    assert!(reviews.iter().all(|r| r.state == Approved && r.commit_id == HEAD && r.submitted_at == t(10) && r.id.as_deref() == Some("trailer:Approved-by")));
    let groups = groups(STD);
    let requirements = reqs(&[(MGR, 1), (SEC, 1)]);
    let d = evaluate(&ApprovalInput { requirements: &requirements, groups: &groups, reviews: &reviews, head_commit: HEAD, excluded: &[] });
    assert!(d.satisfied, "{}", d.summary());
}

// ---------- property tests ----------

/// Brute force: the largest number of slots that can get distinct eligible
/// people, trying every assignment.
fn brute_max(adjacency: &[Vec<usize>], people: usize) -> usize {
    fn go(slot: usize, adjacency: &[Vec<usize>], used: &mut [bool]) -> usize {
        let Some(fits) = adjacency.get(slot) else {
            return 0;
        };
        let mut best = go(slot + 1, adjacency, used); // leave unfilled
        for &p in fits {
            if p < used.len() && !used[p] {
                used[p] = true;
                best = best.max(1 + go(slot + 1, adjacency, used));
                used[p] = false;
            }
        }
        best
    }
    go(0, adjacency, &mut vec![false; people])
}

fn instance() -> impl Strategy<Value = (Vec<Vec<usize>>, usize)> {
    (0usize..=6).prop_flat_map(|people| {
        let row = proptest::collection::btree_set(0..people.max(1), 0..=people).prop_map(|s| s.into_iter().collect::<Vec<_>>());
        (proptest::collection::vec(row, 0..=6), Just(people))
    })
}

/// A random decision instance over people p0..p5 and groups g0..g2.
#[derive(Debug, Clone)]
struct World {
    /// Membership bitmask (over 3 groups) per person.
    membership: Vec<u8>,
    /// 0 none, 1 approved head, 2 approved old, 3 changes requested,
    /// 4 commented, 5 dismissed.
    state: Vec<u8>,
    excluded: Vec<bool>,
    /// (group mask, count) per requirement.
    requirements: Vec<(u8, u32)>,
}

fn world() -> impl Strategy<Value = World> {
    (
        proptest::collection::vec(0u8..8, 6),
        proptest::collection::vec(0u8..6, 6),
        proptest::collection::vec(proptest::bool::weighted(0.2), 6),
        proptest::collection::vec((1u8..8, 0u32..=3), 0..=2),
    )
        .prop_map(|(membership, state, excluded, requirements)| World { membership, state, excluded, requirements })
}

proptest! {
    #[test]
    fn matching_is_valid_and_maximum((adjacency, people) in instance()) {
        let m = max_matching(&adjacency, people);
        prop_assert_eq!(m.len(), adjacency.len());
        let mut seen = BTreeSet::new();
        for (slot, assigned) in m.iter().enumerate() {
            if let Some(p) = assigned {
                prop_assert!(*p < people);
                prop_assert!(adjacency[slot].contains(p), "slot {} got ineligible {}", slot, p);
                prop_assert!(seen.insert(*p), "person {} used twice", p);
            }
        }
        prop_assert_eq!(seen.len(), brute_max(&adjacency, people));
    }

    #[test]
    fn evaluate_agrees_with_brute_force(w in world()) {
        let login = |i: usize| format!("p{i}");
        let group_names = ["g0", "g1", "g2"];
        let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (g, name) in group_names.iter().enumerate() {
            let members = (0..6)
                .filter(|&p| w.membership[p] & (1 << g) != 0)
                .map(login)
                .collect();
            groups.insert((*name).to_owned(), members);
        }
        let requirements: Vec<Requirement> = w
            .requirements
            .iter()
            .enumerate()
            .map(|(i, (mask, count))| Requirement {
                from: (0..3)
                    .filter(|g| mask & (1 << g) != 0)
                    .map(|g| group_names[g].to_owned())
                    .collect(),
                count: *count,
                label: format!("r{i}"),
            })
            .collect();
        let mut reviews = Vec::new();
        for p in 0..6 {
            let (state, commit) = match w.state[p] {
                1 => (Approved, HEAD),
                2 => (Approved, OLD),
                3 => (ChangesRequested, OLD),
                4 => (Commented, HEAD),
                5 => (Dismissed, HEAD),
                _ => continue,
            };
            // An earlier approval of the head that the state above overrides
            // (or, for a comment, does not override).
            reviews.push(rv(&login(p), Approved, HEAD, 0));
            reviews.push(rv(&login(p), state, commit, 1));
        }
        let excluded: Vec<String> = (0..6).filter(|&p| w.excluded[p]).map(login).collect();
        let d = evaluate(&ApprovalInput {
            requirements: &requirements,
            groups: &groups,
            reviews: &reviews,
            head_commit: HEAD,
            excluded: &excluded,
        });

        // Independent model of the rules.
        let in_req = |p: usize, mask: u8| w.membership[p] & mask != 0;
        let approves = |p: usize| !w.excluded[p] && matches!(w.state[p], 1 | 4);
        let eligible = |p: usize| w.requirements.iter().any(|&(mask, c)| c > 0 && in_req(p, mask));
        let blocked = (0..6).any(|p| !w.excluded[p] && w.state[p] == 3 && eligible(p));
        let adjacency: Vec<Vec<usize>> = w
            .requirements
            .iter()
            .flat_map(|&(mask, count)| {
                let fits: Vec<usize> = (0..6).filter(|&p| approves(p) && in_req(p, mask)).collect();
                std::iter::repeat_n(fits, count as usize)
            })
            .collect();
        let complete = brute_max(&adjacency, 6) == adjacency.len();
        prop_assert_eq!(d.satisfied, complete && !blocked, "{}", d.summary());

        // Filled slots use distinct, valid, eligible people; candidates are
        // unused, non-excluded members of the slot's groups.
        let mut used = BTreeSet::new();
        for slot in &d.slots {
            if let Some(who) = &slot.filled_by {
                let p: usize = who[1..].parse().unwrap();
                prop_assert!(approves(p));
                let mask = w.requirements[slot.label[1..].parse::<usize>().unwrap()].0;
                prop_assert!(in_req(p, mask));
                prop_assert!(used.insert(p));
                prop_assert!(slot.candidates.is_empty());
            }
        }
        for slot in d.slots.iter().filter(|s| s.filled_by.is_none()) {
            let mask = w.requirements[slot.label[1..].parse::<usize>().unwrap()].0;
            let expected: Vec<String> = (0..6)
                .filter(|&p| in_req(p, mask) && !w.excluded[p] && !used.contains(&p))
                .map(login)
                .collect();
            prop_assert_eq!(&slot.candidates, &expected);
        }
        let blockers: Vec<String> = (0..6)
            .filter(|&p| !w.excluded[p] && w.state[p] == 3 && eligible(p))
            .map(login)
            .collect();
        prop_assert_eq!(&d.blockers, &blockers);
        let approvers: Vec<String> = (0..6).filter(|&p| approves(p)).map(login).collect();
        prop_assert_eq!(&d.approvers, &approvers);
    }
}

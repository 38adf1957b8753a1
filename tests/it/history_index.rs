//! The incremental history index (`.git/gitgrant/history-index.json`) on real
//! repositories: a warm read must equal a cold one, and any index that does not
//! describe this repository's first-parent history must be rebuilt, never trusted.

use git2::{Oid, Repository};
use gitgrant::history::{CacheUse, Detail, History, index_path, read_history, read_history_cached, read_history_cached_with};

use crate::support::{NOW, Repo, request};

fn oid(r: &Repo, rev: &str) -> Oid {
    Oid::from_str(&r.git(&["rev-parse", rev])).unwrap()
}

fn open(r: &Repo) -> Repository {
    Repository::open(r.path()).unwrap()
}

/// Reads through the index at `main`, and checks the result equals a cold read.
fn cached(r: &Repo) -> (History, CacheUse) {
    let repo = open(r);
    let head = oid(r, "main");
    let (h, used) = read_history_cached(&repo, head, &index_path(&repo)).unwrap();
    let cold = read_history(&repo, head).unwrap();
    assert_eq!(h, cold, "history through the index ({used:?}) differs from a cold read");
    (h, used)
}

/// Policies, then three landings: carol (added, then shrunk) and bob.
fn repo_with_history() -> Repo {
    let r = Repo::with_policies();
    r.write("requests/2026-12-01-carol-a.yaml", request("carol", "db-readonly", "orders-db", ""));
    r.commit_as("carol", "carol: orders-db\n\nApproved-by: frank");
    r.write("requests/2026-12-02-bob-a.yaml", request("bob", "db-readonly", "orders-db", ""));
    r.commit_as("bob", "bob: orders-db (#7)\n\nApproved-by: frank");
    r.write("requests/2026-12-01-carol-a.yaml", request("carol", "db-readonly", "orders-db", "").replace("duration: 2h", "duration: 1h"));
    r.commit_as("carol", "carol: shorten");
    r
}

#[test]
fn cold_build_then_warm_reuse_then_incremental_walk() {
    let r = repo_with_history();
    let repo = open(&r);
    let path = index_path(&repo);
    assert!(path.ends_with(".git/gitgrant/history-index.bin"), "{}", path.display());
    assert!(!path.exists());

    let (first, used) = cached(&r);
    assert_eq!(used, CacheUse::Cold);
    assert!(path.exists(), "a cold read saves the index");
    assert_eq!(first.commits.len(), 3, "three commits touched requests/");
    assert_eq!(first.walked, 4);

    let (again, used) = cached(&r);
    assert_eq!(used, CacheUse::Warm(0));
    assert_eq!(again, first);

    // Three more first-parent commits on main: a direct landing, a merged PR
    // (its side commit is not walked) and a removal.
    r.write("requests/2026-12-03-heidi-a.yaml", request("heidi", "sandbox-user", "sandbox", ""));
    r.commit_as("heidi", "heidi: sandbox");
    r.branch("pr");
    r.write("requests/2026-12-04-carol-b.yaml", request("carol", "db-readonly", "orders-db", ""));
    r.commit_as("carol", "carol: again");
    r.checkout("main");
    r.merge("pr", "Merge pull request #9 from carol/again\n\nApproved-by: frank");
    r.remove("requests/2026-12-02-bob-a.yaml");
    r.commit_as("bob", "bob: done early");

    let (h, used) = cached(&r);
    assert_eq!(used, CacheUse::Warm(3), "only the three new first-parent commits are walked");
    assert_eq!(h.commits.len(), 6);
    assert_eq!(h.walked, 7);
    assert_eq!(h.head, Some(oid(&r, "main")));
    assert_eq!(h.commits[4].pr, Some(9));
    assert_eq!(h.commits[4].approved_by, ["frank"]);
    assert!(h.requests["2026-12-02-bob-a"].removed_at.is_some());
    assert!(h.requests["2026-12-04-carol-b"].removed_at.is_none());
    assert_eq!(h.by_requester["carol"], ["2026-12-01-carol-a", "2026-12-04-carol-b"]);

    // The saved index now covers the new head.
    assert_eq!(cached(&r).1, CacheUse::Warm(0));
}

#[test]
fn a_rewritten_main_is_rebuilt_from_scratch() {
    let r = repo_with_history();
    assert_eq!(cached(&r).1, CacheUse::Cold);

    // Reset main two commits back and land something different instead.
    r.git(&["reset", "-q", "--hard", "HEAD~2"]);
    r.write("requests/2026-12-05-ivan-a.yaml", request("ivan", "db-readonly", "orders-db", ""));
    r.commit_as("ivan", "ivan: orders-db");
    let (h, used) = cached(&r);
    assert_eq!(used, CacheUse::Cold, "the indexed head is no longer in main's history");
    assert!(!h.requests.contains_key("2026-12-02-bob-a"), "nothing of the dropped commits survives");
    assert!(h.requests.contains_key("2026-12-05-ivan-a"));

    // Amending the tip rewrites it too.
    r.write("requests/2026-12-05-ivan-a.yaml", request("ivan", "db-readonly", "orders-db", "").replace("2h", "3h"));
    r.git(&["add", "-A"]);
    r.git(&["commit", "-q", "--amend", "-m", "ivan: orders-db, 3h"]);
    let (h, used) = cached(&r);
    assert_eq!(used, CacheUse::Cold);
    assert_eq!(h.requests["2026-12-05-ivan-a"].latest.as_ref().unwrap().duration_secs, Some(3 * 3600));
    assert_eq!(h.commits.last().unwrap().summary, "ivan: orders-db, 3h");
}

#[test]
fn an_index_of_a_side_branch_is_not_main_history() {
    // The index covers a commit that is an ancestor of main, but only through
    // a merge's second parent: its first-parent chain is not main's.
    let r = repo_with_history();
    r.branch("side");
    r.write("requests/2026-12-06-bob-side.yaml", request("bob", "db-readonly", "orders-db", ""));
    r.commit_as("bob", "bob: side");
    let repo = open(&r);
    let side = oid(&r, "side");
    assert_eq!(read_history_cached(&repo, side, &index_path(&repo)).unwrap().1, CacheUse::Cold);
    r.checkout("main");
    r.write("requests/2026-12-07-heidi-a.yaml", request("heidi", "sandbox-user", "sandbox", ""));
    r.commit_as("heidi", "heidi: sandbox");
    r.merge("side", "Merge branch side");
    let (h, used) = cached(&r);
    assert_eq!(used, CacheUse::Cold);
    // The side commit is not a first-parent commit of main: only the merge is.
    assert!(h.commits.iter().all(|c| c.summary != "bob: side"));
    assert_eq!(h.requests["2026-12-06-bob-side"].landed_commit, h.commits.len() - 1);
}

#[test]
fn a_corrupt_or_foreign_format_index_is_rebuilt_without_error() {
    let r = repo_with_history();
    let repo = open(&r);
    let path = index_path(&repo);
    let (good, _) = cached(&r);
    let saved = std::fs::read(&path).unwrap();
    let mut flipped = saved.clone();
    flipped[7] ^= 0xff; // the format version in the header

    for bad in [b"{not json".to_vec(), Vec::new(), saved[..saved.len() / 2].to_vec(), flipped, [&saved[..], b"trailing"].concat()] {
        std::fs::write(&path, &bad).unwrap();
        let (h, used) = cached(&r);
        assert_eq!(used, CacheUse::Cold, "index {:?}", String::from_utf8_lossy(&bad[..bad.len().min(60)]));
        assert_eq!(h, good);
        // And it was replaced by a good one.
        assert_eq!(cached(&r).1, CacheUse::Warm(0));
    }
}

#[test]
fn an_index_from_another_repository_is_rejected() {
    let a = repo_with_history();
    let b = Repo::with_policies();
    b.write("requests/2026-12-09-mallory-a.yaml", request("bob", "db-admin", "orders-db", ""));
    b.commit_as("bob", "other repo");
    assert_eq!(cached(&b).1, CacheUse::Cold);
    let (ra, rb) = (open(&a), open(&b));
    std::fs::create_dir_all(index_path(&ra).parent().unwrap()).unwrap();
    std::fs::copy(index_path(&rb), index_path(&ra)).unwrap();

    let (h, used) = cached(&a);
    assert_eq!(used, CacheUse::Cold);
    assert!(!h.requests.contains_key("2026-12-09-mallory-a"));
    assert_eq!(h.commits.len(), 3);
}

#[test]
fn an_index_ahead_of_the_asked_head_is_kept_for_later_runs() {
    // A check of an older PR (older merge-base) must not throw away the index
    // of main's tip that every newer PR reuses.
    let r = repo_with_history();
    let repo = open(&r);
    let path = index_path(&repo);
    assert_eq!(cached(&r).1, CacheUse::Cold);
    let old = oid(&r, "main~2");
    let (h, used) = read_history_cached(&repo, old, &path).unwrap();
    assert_eq!(used, CacheUse::Cold);
    assert_eq!(h, read_history(&repo, old).unwrap());
    assert_eq!(h.commits.len(), 1);
    assert_eq!(cached(&r).1, CacheUse::Warm(0), "the tip's index survived");
}

#[test]
fn check_builds_the_index_and_reuses_it() {
    let r = repo_with_history();
    r.branch("pr");
    r.write("requests/2026-12-10-carol-c.yaml", request("carol", "db-readonly", "orders-db", ""));
    r.commit_as("carol", "carol: c");
    let path = index_path(&open(&r));
    let first = r.run(&["check", "--base", "main", "--head", "pr", "--now", NOW, "--format", "json"]);
    assert_eq!(first.code, 0, "{}", first.all());
    assert!(path.exists(), "check saved the history index");
    let second = r.run(&["check", "--base", "main", "--head", "pr", "--now", NOW, "--format", "json"]);
    assert_eq!(first.json(), second.json(), "a warm check says exactly what a cold one did");
    // carol's earlier grant is active when this one starts: the history reached the check.
    let factors = &first.json()["requests"][0]["risk"]["factors"];
    let active = factors.as_array().unwrap().iter().find(|f| f["name"] == "active_grants").unwrap();
    assert_eq!(active["points"], 3, "{factors}");
    assert!(active["detail"].as_str().unwrap().contains("2026-12-01-carol-a"), "{factors}");
}

#[test]
fn a_request_handed_to_someone_else_counts_for_its_new_requester_only() {
    let r = repo_with_history();
    // carol-a becomes bob's (an edit that is a new request, judged again).
    r.write("requests/2026-12-01-carol-a.yaml", request("bob", "db-write", "orders-db", ""));
    r.commit_as("bob", "hand over");
    let (h, _) = cached(&r);
    let t = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:30:00Z").unwrap().to_utc();
    assert_eq!(h.active_at("carol", t, ""), Vec::<String>::new());
    assert_eq!(h.active_at("bob", t, ""), ["2026-12-02-bob-a", "2026-12-01-carol-a"]);
    let later = chrono::DateTime::parse_from_rfc3339("2026-12-09T00:00:00Z").unwrap().to_utc();
    assert!(!h.held_before("carol", "db-write", later, ""), "carol never held db-write");
    // Git history alone grants nothing: "held before" counts ledger grants only (issue 13).
    assert!(!h.held_before("bob", "db-write", later, ""));
    let mut h = h;
    h.record_grant("bob", "db-write", t);
    assert!(h.held_before("bob", "db-write", later, ""));
    // The one-pass query check uses agrees with the three separate ones.
    for who in ["carol", "bob", "heidi", "nobody"] {
        for role in ["db-readonly", "db-write"] {
            for when in [t, later] {
                for except in ["", "2026-12-01-carol-a"] {
                    let expected = (h.held_before(who, role, when, except), h.early_revocations(who, when), h.active_at(who, when, except));
                    assert_eq!(h.facts(who, role, when, except), expected, "{who} {role} {when} {except}");
                }
            }
        }
    }
}

#[test]
fn a_decisions_read_extends_the_index_without_losing_commits_or_events() {
    let r = repo_with_history();
    assert_eq!(cached(&r).1, CacheUse::Cold);
    r.write("requests/2026-12-11-heidi-b.yaml", request("heidi", "sandbox-user", "sandbox", ""));
    r.commit_as("heidi", "heidi: b\n\nApproved-by: alice");
    r.remove("requests/2026-12-11-heidi-b.yaml");
    r.commit_as("heidi", "heidi: b done");
    let repo = open(&r);
    let head = oid(&r, "main");
    // check's read: no commit metadata decoded, only what it walked.
    let (lite, used) = read_history_cached_with(&repo, head, &index_path(&repo), Detail::Decisions).unwrap();
    assert_eq!(used, CacheUse::Warm(2));
    assert_eq!(lite.commits.len(), 2);
    assert_eq!(lite.commit_count(), 5);
    let cold = read_history(&repo, head).unwrap();
    for (id, rec) in &cold.requests {
        let l = &lite.requests[id];
        assert_eq!(
            (&l.latest, l.landed, l.landed_commit, &l.windows, l.removed_at, &l.ended_early_at),
            (&rec.latest, rec.landed, rec.landed_commit, &rec.windows, rec.removed_at, &rec.ended_early_at),
            "{id}"
        );
    }
    assert_eq!(lite.by_requester, cold.by_requester);
    // The index it saved is complete: a full read equals the cold one.
    let (full, used) = cached(&r);
    assert_eq!(used, CacheUse::Warm(0));
    assert_eq!(full.commits.len(), 5);
    assert_eq!(full.requests["2026-12-11-heidi-b"].events.len(), 2);
    // A decisions read of an up-to-date index is the same as a full one, minus commits and events.
    let (again, used) = read_history_cached_with(&repo, head, &index_path(&repo), Detail::Decisions).unwrap();
    assert_eq!(used, CacheUse::Warm(0));
    assert!(again.commits.is_empty() && again.requests.values().all(|r| r.events.is_empty()));
}

//! `check` judges a big tree on several threads (`GITGRANT_THREADS`): its
//! output (diagnostics, their order, the requests, the exit code) must be
//! exactly the one thread's, in every format and in both modes.

use crate::support::{NOW, Out, Repo, run_in_env};

/// Request `i` of a mixed tree: valid ones by three requesters, and now and
/// then one that fails validation, does not parse or names an unknown role.
fn body(i: usize) -> String {
    let who = ["carol", "dave", "alice"][i % 3];
    let role = ["db-readonly", "db-write", "sandbox-user"][i % 3];
    let day = 1 + i % 27;
    let hours = 1 + i % 4;
    match i % 23 {
        5 => format!(
            "requester: {who}\nrole: no-such-role\nresources: [orders-db]\nstart: 2026-12-{day:02}T10:00:00Z\nduration: 1h\nreason: \"INC-{i}: a long enough reason\"\n"
        ),
        11 => format!("requester: {who}\nrole: [unclosed\n"),
        17 => format!("requester: {who}\nrole: {role}\nresources: [orders-db]\nstart: 2026-12-{day:02}T10:00:00Z\nduration: 90d\nreason: short\n"),
        _ => format!(
            "requester: {who}\nrole: {role}\nresources: [orders-db]\nstart: 2026-12-{day:02}T{:02}:00:00Z\nduration: {hours}h\nreason: \"INC-{i}: a long enough reason\"\nticket: INC-{i}\n",
            8 + i % 10
        ),
    }
}

fn id(i: usize) -> String {
    format!("2026-12-01-req-{i:04}")
}

/// main: 200 requests landed one commit each (history for the facts); pr:
/// edits (widened, shrunk, comment only), removals, new files, an extension,
/// a clashing id in a sub-directory and a file that is no request.
fn repo() -> Repo {
    let r = Repo::with_policies();
    for i in 0..200 {
        r.write(&format!("requests/{}.yaml", id(i)), body(i));
        if i % 20 == 19 {
            r.commit(&format!("land {i}"));
        }
    }
    r.branch("pr");
    for i in (0..200).step_by(9) {
        let path = format!("requests/{}.yaml", id(i));
        let text = r.read(&path);
        let edited = match i % 4 {
            0 => text.replace("resources: [orders-db]", "resources: [orders-db, analytics]"),
            1 => text.replace("duration: 2h", "duration: 1h"),
            2 => format!("# reviewed\n{text}"),
            _ => text.replace("INC-", "INC-9"),
        };
        r.write(&path, edited);
    }
    for i in (3..200).step_by(31) {
        r.remove(&format!("requests/{}.yaml", id(i)));
    }
    for i in 200..260 {
        r.write(&format!("requests/{}.yaml", id(i)), body(i));
    }
    r.write(
        "requests/2026-12-02-carol-more.yaml",
        format!("requester: carol\nrole: db-readonly\nresources: [orders-db]\nstart: 2026-12-02T10:00:00Z\nduration: 1h\nreason: \"INC-7: a long enough reason\"\nticket: INC-7\nextends: {}\n", id(0)),
    );
    r.write(&format!("requests/team/{}.yaml", id(6)), body(6));
    r.write("requests/notes.txt", "not a request\n");
    r.commit("pr change");
    r
}

fn check(r: &Repo, threads: Option<&str>, args: &[&str]) -> Out {
    let mut full = vec!["--now", NOW];
    full.extend_from_slice(args);
    let env: Vec<(&str, &str)> = threads.map(|t| vec![("GITGRANT_THREADS", t)]).unwrap_or_default();
    run_in_env(r.path(), &full, &env)
}

#[test]
fn check_all_on_threads_prints_what_one_thread_prints() {
    let r = repo();
    for mode in [&["--base", "main", "--head", "pr"][..], &[]] {
        if mode.is_empty() {
            // Working-tree mode: main checked out with the PR's files on disk.
            r.checkout("pr");
            r.git(&["reset", "-q", "--soft", "main"]);
        }
        for format in ["human", "json", "github"] {
            let mut args = vec!["check", "--all", "--format", format];
            args.extend_from_slice(mode);
            let one = check(&r, Some("1"), &args);
            // Judged and failed: the tree holds broken files.
            assert_eq!(one.code, 1, "{}", one.all());
            for threads in [Some("2"), Some("3"), None] {
                let many = check(&r, threads, &args);
                assert_eq!(many.all(), one.all(), "{format}, {mode:?}, {threads:?} threads");
            }
            if format == "json" {
                let j = one.json();
                let requests = j["requests"].as_array().unwrap();
                assert!(requests.len() > 200, "{}", requests.len());
                let changes: std::collections::BTreeSet<&str> = requests.iter().filter_map(|q| q["change"].as_str()).collect();
                assert_eq!(changes.into_iter().collect::<Vec<_>>(), ["modified", "new", "removed", "shrink", "unchanged"], "{mode:?}");
                let codes: std::collections::BTreeSet<&str> = j["diagnostics"].as_array().unwrap().iter().filter_map(|d| d["code"].as_str()).collect();
                assert!(codes.len() >= 5, "{codes:?}");
            }
        }
    }
}

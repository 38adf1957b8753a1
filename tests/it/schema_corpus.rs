//! The JSON Schema (`gitgrant schema request`, what editors run) and `check`
//! agree on a corpus of request files, wherever the schema can decide.
//!
//! Each file in `tests/fixtures/schema-corpus/` starts with `# expect: X`:
//! - `valid`: both accept it;
//! - `invalid`: both refuse it (a rule the schema expresses);
//! - `check-only`: `check` refuses it for what a schema cannot know (the id
//!   is the file name; roles and identities live in policies/), and the
//!   schema accepts it.
//!
//! Whatever the label, the schema never refuses what `check` accepts.

use std::collections::BTreeSet;

use crate::support::{NOW, Repo, root};

fn corpus() -> Vec<(String, String)> {
    let dir = root().join("tests/fixtures/schema-corpus");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    files.sort();
    files
}

fn expectation(text: &str) -> &str {
    text.lines().next().and_then(|l| l.strip_prefix("# expect: ")).unwrap_or_else(|| panic!("no `# expect:` line in {text}"))
}

#[test]
fn the_schema_and_check_agree_on_the_corpus() {
    let files = corpus();
    assert!(files.len() >= 30, "the corpus has {} files", files.len());

    let r = Repo::with_policies();
    let schema_out = r.run(&["schema", "request"]);
    assert_eq!(schema_out.code, 0, "{}", schema_out.all());
    let schema: serde_json::Value = serde_json::from_str(&schema_out.stdout).unwrap();
    let validator = jsonschema::options().should_validate_formats(true).build(&schema).unwrap();

    for (name, text) in &files {
        r.write(&format!("requests/{name}"), text);
    }
    let out = r.run(&["check", "--all", "--now", NOW, "--format", "json"]);
    let report = out.json();
    let refused: BTreeSet<String> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["severity"] == "error")
        .filter_map(|d| d["file"].as_str().and_then(|f| f.strip_prefix("requests/")).map(str::to_string))
        .collect();

    let mut wrong = Vec::new();
    for (name, text) in &files {
        let check_ok = !refused.contains(name);
        // A file the YAML loader refuses is not JSON either: the schema cannot run.
        let schema_ok = match serde_saphyr::from_str::<serde_json::Value>(text) {
            Ok(v) => validator.is_valid(&v),
            Err(_) => false,
        };
        let expect = expectation(text);
        let (want_check, want_schema) = match expect {
            "valid" => (true, true),
            "invalid" => (false, false),
            "check-only" => (false, true),
            other => panic!("{name}: unknown expectation {other}"),
        };
        if (check_ok, schema_ok) != (want_check, want_schema) {
            wrong.push(format!(
                "{name} ({expect}): check {}, schema {}",
                if check_ok { "accepts" } else { "refuses" },
                if schema_ok { "accepts" } else { "refuses" }
            ));
        }
        assert!(check_ok || !schema_ok || expect == "check-only", "{name}: the schema accepts what check refuses, but it could decide");
        assert!(!check_ok || schema_ok, "{name}: the schema refuses what check accepts");
    }
    assert!(wrong.is_empty(), "disagreements:\n{}\ncheck said: {}", wrong.join("\n"), out.stdout);
}

#[test]
fn a_quoted_true_and_a_number_reason_are_errors_with_their_position() {
    let r = Repo::with_policies();
    let files = corpus();
    let text = |n: &str| files.iter().find(|(f, _)| f == n).map(|(_, t)| t.clone()).unwrap();
    r.write("requests/break-glass-string.yaml", text("break-glass-string.yaml"));
    r.write("requests/reason-number.yaml", text("reason-number.yaml"));
    let out = r.run(&["check", "--all", "--now", NOW, "--format", "json"]);
    assert_eq!(out.code, 1, "{}", out.all());
    let diags = out.json()["diagnostics"].as_array().unwrap().clone();
    let at =
        |file: &str| diags.iter().find(|d| d["file"] == format!("requests/{file}")).unwrap_or_else(|| panic!("no diagnostic for {file}: {diags:?}")).clone();
    let bg = at("break-glass-string.yaml");
    assert_eq!((bg["line"].as_u64(), bg["severity"].as_str()), (Some(10), Some("error")), "{bg}");
    assert_eq!(bg["column"].as_u64(), Some(14), "at the value: {bg}");
    assert!(bg["message"].as_str().unwrap().contains("expected `true` or `false`, found the text `true`"), "{bg}");
    let reason = at("reason-number.yaml");
    assert_eq!(reason["line"].as_u64(), Some(8), "{reason}");
    assert_eq!(reason["column"].as_u64(), Some(9), "at the value: {reason}");
    assert!(reason["message"].as_str().unwrap().contains("expected text, found the number `12345678901`"), "{reason}");
    assert!(reason["help"].as_str().unwrap().contains("quote it"), "{reason}");
}

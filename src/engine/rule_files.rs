//! Which paths are *rule files* (SPEC "Approvals"): everything that decides who
//! gets access or what runs with the reconciler's credentials. A change to one
//! needs `policy_changes` approvals and may not share a PR with request changes.

/// Is `path` the directory `dir` itself or below it? (A directory replaced by
/// a symbolic link shows up as a change of the directory itself.)
pub fn under(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The rule-file roots, for messages and docs.
pub const RULE_DIRS: &[&str] = &["policies", "templates", ".github"];

/// CODEOWNERS in every place GitHub reads it, and gitgrant's own config files.
pub const RULE_FILES: &[&str] = &["CODEOWNERS", ".github/CODEOWNERS", "docs/CODEOWNERS", "gitgrant.toml", ".gitgrant.toml", ".gitgrant.yaml"];

/// True for a path whose change needs `policy_changes` approvals.
pub fn is_rule_file(path: &str) -> bool {
    RULE_DIRS.iter().any(|d| under(path, d)) || RULE_FILES.contains(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_files() {
        for p in
            ["policies", "policies/roles.yaml", "templates/pr-comment.md.j2", ".github/workflows/x.yml", "CODEOWNERS", "docs/CODEOWNERS", ".github/CODEOWNERS"]
        {
            assert!(is_rule_file(p), "{p}");
        }
        for p in ["requests/a.yaml", "policiesx/a.yaml", "README.md", "docs/x.md", "src/CODEOWNERS"] {
            assert!(!is_rule_file(p), "{p}");
        }
    }
}

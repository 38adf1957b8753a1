//! Which files differ between two trees: requests and every rule file
//! ([`super::rule_files`]) — the paths whose change `check` judges.

use std::collections::BTreeMap;

use crate::source::{Entry, Tree, TreeError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    pub in_base: bool,
    pub in_head: bool,
}

/// The directories whose files a change is judged by.
const DIRS: [&str; 4] = ["policies", "requests", "templates", ".github"];

/// Is `path` one `check` judges (a request file or a rule file)?
pub fn is_judged(path: &str) -> bool {
    super::rule_files::under(path, crate::validate::request::REQUEST_DIR) || super::rule_files::is_rule_file(path)
}

/// How a request version relates to the one before it at the same path:
/// new (none before), unchanged content (a comment), a shrink (later
/// start, earlier end, fewer resources, nothing else changed), or a
/// modification (anything else: a new request). `landed` is the default
/// start of both (when the id first landed).
pub fn change_of(
    new: &crate::model::request::Request,
    old: Option<&crate::model::request::Request>,
    landed: chrono::DateTime<chrono::Utc>,
) -> super::request::Change {
    use super::request::Change;
    match old {
        None => Change::New,
        Some(old) if new.same_content(old) => Change::Unchanged,
        Some(old) if new.is_shrink_of(old, landed) => Change::Shrink,
        Some(_) => Change::Modified,
    }
}

/// Content identity of an entry: its blob id, or a hash of the bytes on disk.
fn identity(tree: &dyn Tree, e: &Entry) -> Option<git2::Oid> {
    if let Some(b) = e.blob {
        return Some(b);
    }
    match tree.read_bytes(&e.path) {
        Ok(Some(bytes)) => git2::Oid::hash_object(git2::ObjectType::Blob, &bytes).ok(),
        // Unreadable (too large): a distinct identity so it counts as changed.
        _ => None,
    }
}

/// Added, modified and removed files under policies/, requests/, templates/.
pub fn changed_paths(base: &dyn Tree, head: &dyn Tree) -> Result<Vec<FileChange>, TreeError> {
    let mut out = Vec::new();
    for dir in DIRS {
        let a: BTreeMap<String, Entry> = base.list(dir)?.into_iter().map(|e| (e.path.clone(), e)).collect();
        let b: BTreeMap<String, Entry> = head.list(dir)?.into_iter().map(|e| (e.path.clone(), e)).collect();
        for (path, eb) in &b {
            match a.get(path) {
                None => out.push(FileChange { path: path.clone(), in_base: false, in_head: true }),
                Some(ea) => {
                    let same = ea.kind == eb.kind && identity(base, ea).is_some() && identity(base, ea) == identity(head, eb);
                    if !same {
                        out.push(FileChange { path: path.clone(), in_base: true, in_head: true });
                    }
                }
            }
        }
        for path in a.keys() {
            if !b.contains_key(path) {
                out.push(FileChange { path: path.clone(), in_base: true, in_head: false });
            }
        }
    }
    for path in super::rule_files::RULE_FILES.iter().filter(|p| !DIRS.iter().any(|d| super::rule_files::under(p, d))) {
        let (ea, eb) = (base.entry(path), head.entry(path));
        let changed = match (&ea, &eb) {
            (None, None) => false,
            (Some(ea), Some(eb)) => !(ea.kind == eb.kind && identity(base, ea).is_some() && identity(base, ea) == identity(head, eb)),
            _ => true,
        };
        if changed {
            out.push(FileChange { path: path.to_string(), in_base: ea.is_some(), in_head: eb.is_some() });
        }
    }
    out.sort_by(|x, y| x.path.cmp(&y.path));
    Ok(out)
}

/// [`changed_paths`] between two commits, by libgit2's tree diff: it skips
/// identical sub-trees by id and never lists the 10,000 unchanged requests
/// of a big tree into maps (a third of a PR check's time before).
pub fn changed_paths_git(repo: &git2::Repository, base: git2::Oid, head: git2::Oid) -> Result<Vec<FileChange>, TreeError> {
    let (bt, ht) = (repo.find_commit(base)?.tree()?, repo.find_commit(head)?.tree()?);
    let mut opts = git2::DiffOptions::new();
    for dir in DIRS {
        opts.pathspec(format!("{dir}/"));
    }
    for file in super::rule_files::RULE_FILES {
        opts.pathspec(*file);
    }
    // One delta per path when a file becomes a link or the reverse (a file
    // replacing a directory still lists every file of the directory).
    opts.include_typechange(true);
    let diff = repo.diff_tree_to_tree(Some(&bt), Some(&ht), Some(&mut opts))?;
    let mut out = Vec::new();
    for delta in diff.deltas() {
        let Some(path) = delta.new_file().path().or(delta.old_file().path()) else { continue };
        let path = path.to_string_lossy().replace('\\', "/");
        if !is_judged(&path) {
            continue;
        }
        let (in_base, in_head) = match delta.status() {
            git2::Delta::Added => (false, true),
            git2::Delta::Deleted => (true, false),
            _ => (true, true),
        };
        out.push(FileChange { path, in_base, in_head });
    }
    out.sort_by(|x, y| x.path.cmp(&y.path));
    out.dedup_by(|a, b| a.path == b.path);
    Ok(out)
}

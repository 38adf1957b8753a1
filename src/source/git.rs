//! A git revision as a [`Tree`], read with git2 without touching the work tree.

use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};

use super::{Entry, EntryKind, MAX_FILE_BYTES, Tree, TreeError};

pub struct GitTree<'r> {
    repo: &'r Repository,
    tree: git2::Tree<'r>,
    commit: Oid,
    /// Directories looked up so far. libgit2 caches no tree over 4 KiB, so
    /// without this every file read re-inflated and re-parsed the whole
    /// `requests/` tree (400 KB with 10,000 requests).
    dirs: std::cell::RefCell<std::collections::HashMap<String, Option<git2::Tree<'r>>>>,
}

impl<'r> GitTree<'r> {
    pub fn new(repo: &'r Repository, commit: Oid) -> Result<Self, git2::Error> {
        // Reads are of the local repository: skip libgit2's re-hashing of every
        // object read (SHA-1 with collision detection), as git itself does.
        git2::opts::strict_hash_verification(false);
        let tree = repo.find_commit(commit)?.tree()?;
        Ok(GitTree { repo, tree, commit, dirs: Default::default() })
    }

    /// The tree of directory `dir` ("" for the root), cached.
    fn dir(&self, dir: &str) -> Option<git2::Tree<'r>> {
        if dir.is_empty() {
            return Some(self.tree.clone());
        }
        if let Some(t) = self.dirs.borrow().get(dir) {
            return t.clone();
        }
        let t =
            self.tree.get_path(std::path::Path::new(dir)).ok().filter(|e| e.kind() == Some(ObjectType::Tree)).and_then(|e| self.repo.find_tree(e.id()).ok());
        self.dirs.borrow_mut().insert(dir.to_string(), t.clone());
        t
    }

    /// The entry at `path`, looked up in its (cached) directory.
    fn lookup(&self, path: &str) -> Option<git2::TreeEntry<'static>> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        self.dir(dir)?.get_name(name).map(|e| e.to_owned())
    }

    pub fn commit(&self) -> Oid {
        self.commit
    }

    pub fn tree(&self) -> &git2::Tree<'r> {
        &self.tree
    }

    /// The blob id at `path`, if it is a file in this tree.
    pub fn blob_id(&self, path: &str) -> Option<Oid> {
        self.tree.get_path(std::path::Path::new(path)).ok().map(|e| e.id())
    }
}

pub(crate) fn kind_of(filemode: i32, kind: Option<ObjectType>) -> EntryKind {
    match (filemode, kind) {
        (0o120000, _) => EntryKind::Symlink,
        (_, Some(ObjectType::Blob)) => EntryKind::File,
        _ => EntryKind::Other,
    }
}

impl Tree for GitTree<'_> {
    fn list(&self, dir: &str) -> Result<Vec<Entry>, TreeError> {
        let entry = match self.tree.get_path(std::path::Path::new(dir)) {
            Ok(e) => e,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        if entry.filemode() == 0o120000 {
            return Ok(vec![Entry { path: dir.to_string(), kind: EntryKind::Symlink, blob: Some(entry.id()) }]);
        }
        let sub = match entry.kind() {
            Some(ObjectType::Tree) => self.repo.find_tree(entry.id())?,
            _ => return Ok(Vec::new()),
        };
        let mut out = Vec::new();
        sub.walk(TreeWalkMode::PreOrder, |root, e| {
            if e.kind() == Some(ObjectType::Tree) {
                return TreeWalkResult::Ok;
            }
            let name = String::from_utf8_lossy(e.name_bytes());
            out.push(Entry { path: format!("{dir}/{root}{name}"), kind: kind_of(e.filemode(), e.kind()), blob: Some(e.id()) });
            TreeWalkResult::Ok
        })?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn read_bytes(&self, path: &str) -> Result<Option<Vec<u8>>, TreeError> {
        match self.lookup(path) {
            Some(entry) => read_blob(self.repo, entry.id()).map(Some),
            None => Ok(None),
        }
    }

    fn label(&self) -> String {
        self.commit.to_string()
    }

    fn entry(&self, path: &str) -> Option<Entry> {
        let e = self.lookup(path)?;
        Some(Entry { path: path.to_string(), kind: kind_of(e.filemode(), e.kind()), blob: Some(e.id()) })
    }
}

/// Reads a blob, checking its size from the object header before loading it.
pub fn read_blob(repo: &Repository, id: Oid) -> Result<Vec<u8>, TreeError> {
    let odb = repo.odb()?;
    let (size, _) = odb.read_header(id)?;
    if size as u64 > MAX_FILE_BYTES {
        return Err(TreeError::TooLarge(size as u64));
    }
    Ok(repo.find_blob(id)?.content().to_vec())
}

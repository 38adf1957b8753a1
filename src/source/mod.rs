//! Where files come from: the working tree or a git revision, behind one
//! [`Tree`] trait so every check runs the same on both. Reading is hardened
//! here, once: symlinks are refused (they can point outside the repository),
//! files over [`MAX_FILE_BYTES`] are not read, and text must be UTF-8.

pub(crate) mod git;
mod yaml;

pub use git::GitTree;
pub use yaml::{YamlError, parse_yaml, span_pos};

use std::path::{Path, PathBuf};

use crate::diag::{Code, Diagnostic, Pos};

/// Request and policy files are small; anything larger is hostile or a mistake.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Symlink,
    /// Submodules and other things that are not plain files.
    Other,
}

/// A file found under a directory of a tree, before it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Repository-relative, `/`-separated.
    pub path: String,
    pub kind: EntryKind,
    /// Git blob id when the tree is a git revision: equal ids mean equal content.
    pub blob: Option<git2::Oid>,
}

/// A file's text, read and checked.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

/// A snapshot of repository files.
pub trait Tree {
    /// Every entry below `dir` (recursively), sorted by path.
    fn list(&self, dir: &str) -> Result<Vec<Entry>, TreeError>;
    /// Raw bytes of one file, or `None` if it is absent. Must refuse (with
    /// [`TreeError::TooLarge`]) before reading more than [`MAX_FILE_BYTES`].
    fn read_bytes(&self, path: &str) -> Result<Option<Vec<u8>>, TreeError>;
    /// A label for messages: `working tree` or a commit id.
    fn label(&self) -> String;

    /// The entry for one file path, if it exists.
    fn entry(&self, path: &str) -> Option<Entry> {
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        self.list(dir).ok()?.into_iter().find(|e| e.path == path)
    }

    /// Reads `entry` as checked text, or returns the diagnostic explaining why not.
    fn read_source(&self, entry: &Entry) -> Result<SourceFile, Diagnostic> {
        let path = entry.path.clone();
        match entry.kind {
            EntryKind::Symlink => {
                return Err(Diagnostic::new(Code::Symlink, &path, Pos::FILE, format!("`{path}` is a symbolic link"))
                    .help("replace the link with the real file or directory: links can point outside the repository"));
            }
            EntryKind::Other => {
                return Err(Diagnostic::new(Code::UnexpectedFile, &path, Pos::FILE, format!("`{path}` is not a regular file"))
                    .help("only regular YAML files are read here"));
            }
            EntryKind::File => {}
        }
        let bytes = match self.read_bytes(&path) {
            Ok(Some(b)) => b,
            Ok(None) => {
                return Err(Diagnostic::new(Code::UnexpectedFile, &path, Pos::FILE, format!("`{path}` disappeared while reading")));
            }
            Err(TreeError::TooLarge(size)) => {
                return Err(Diagnostic::new(
                    Code::FileTooLarge,
                    &path,
                    Pos::FILE,
                    format!("`{path}` is {size} bytes; the limit is {MAX_FILE_BYTES} bytes (1 MiB)"),
                )
                .help("request and policy files are small; split large policies into several files under policies/"));
            }
            Err(e) => {
                return Err(Diagnostic::new(Code::UnexpectedFile, &path, Pos::FILE, format!("cannot read `{path}`: {e}")));
            }
        };
        match String::from_utf8(bytes) {
            Ok(text) => Ok(SourceFile { path, text }),
            Err(e) => {
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let text = String::from_utf8_lossy(valid);
                let line = text.matches('\n').count() + 1;
                let column = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                Err(Diagnostic::new(Code::InvalidUtf8, &path, Pos::new(line as u32, column as u32), "invalid UTF-8 byte sequence")
                    .help("save the file as UTF-8"))
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("file is {0} bytes, over the 1 MiB limit")]
    TooLarge(u64),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// The working tree on disk (for `check` without refs: authoring locally).
pub struct FsTree {
    root: PathBuf,
}

impl FsTree {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsTree { root: root.into() }
    }

    fn walk(&self, dir: &Path, rel: &str, out: &mut Vec<Entry>) -> Result<(), TreeError> {
        let read = match std::fs::read_dir(dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for item in read {
            let item = item?;
            let name = item.file_name().to_string_lossy().into_owned();
            let path = format!("{rel}/{name}");
            // symlink_metadata: never follow a link while listing.
            let ft = item.file_type()?;
            if ft.is_symlink() {
                out.push(Entry { path, kind: EntryKind::Symlink, blob: None });
            } else if ft.is_dir() {
                self.walk(&item.path(), &path, out)?;
            } else if ft.is_file() {
                out.push(Entry { path, kind: EntryKind::File, blob: None });
            } else {
                out.push(Entry { path, kind: EntryKind::Other, blob: None });
            }
        }
        Ok(())
    }
}

impl Tree for FsTree {
    fn list(&self, dir: &str) -> Result<Vec<Entry>, TreeError> {
        let mut out = Vec::new();
        let base = self.root.join(dir);
        // The directory itself may be a link to elsewhere: report it as one entry.
        if let Ok(meta) = std::fs::symlink_metadata(&base)
            && meta.file_type().is_symlink()
        {
            return Ok(vec![Entry { path: dir.to_string(), kind: EntryKind::Symlink, blob: None }]);
        }
        self.walk(&base, dir, &mut out)?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn read_bytes(&self, path: &str) -> Result<Option<Vec<u8>>, TreeError> {
        use std::io::Read;
        let full = self.root.join(path);
        // A linked directory on the way would lead outside the repository too.
        let mut dir = self.root.clone();
        for part in Path::new(path).parent().into_iter().flat_map(Path::components) {
            dir.push(part);
            if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(std::io::Error::other(format!("{} is a symbolic link", dir.display())).into());
            }
        }
        let meta = match std::fs::symlink_metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // Never follow a link or read a device or FIFO (it could block forever).
        if !meta.is_file() {
            return Err(std::io::Error::other("not a regular file").into());
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(TreeError::TooLarge(meta.len()));
        }
        let mut buf = Vec::new();
        std::fs::File::open(&full)?.take(MAX_FILE_BYTES + 1).read_to_end(&mut buf)?;
        if buf.len() as u64 > MAX_FILE_BYTES {
            return Err(TreeError::TooLarge(buf.len() as u64));
        }
        Ok(Some(buf))
    }

    fn label(&self) -> String {
        "working tree".to_string()
    }
}

/// An empty tree: the base of a repository with no commits yet.
pub struct EmptyTree;

impl Tree for EmptyTree {
    fn list(&self, _dir: &str) -> Result<Vec<Entry>, TreeError> {
        Ok(Vec::new())
    }
    fn read_bytes(&self, _path: &str) -> Result<Option<Vec<u8>>, TreeError> {
        Ok(None)
    }
    fn label(&self) -> String {
        "empty tree".to_string()
    }
}

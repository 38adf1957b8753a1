//! A tree with one file added: how `request` judges a request before it is
//! written, with the same engine `check` runs on the working tree.

use crate::source::{Entry, EntryKind, Tree, TreeError};

pub struct Overlay<'a> {
    pub inner: &'a dyn Tree,
    /// Repository-relative, `/`-separated.
    pub path: String,
    pub text: String,
}

impl Tree for Overlay<'_> {
    fn list(&self, dir: &str) -> Result<Vec<Entry>, TreeError> {
        let mut out = self.inner.list(dir)?;
        let inside = dir.is_empty() || self.path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'));
        if inside {
            out.retain(|e| e.path != self.path);
            out.push(Entry { path: self.path.clone(), kind: EntryKind::File, blob: None });
            out.sort_by(|a, b| a.path.cmp(&b.path));
        }
        Ok(out)
    }

    fn read_bytes(&self, path: &str) -> Result<Option<Vec<u8>>, TreeError> {
        if path == self.path {
            return Ok(Some(self.text.clone().into_bytes()));
        }
        self.inner.read_bytes(path)
    }

    fn label(&self) -> String {
        self.inner.label()
    }
}

//! Diffing successive versions of one big tree (`requests/`) fast.
//!
//! Why not libgit2's tree diff: with 10,000 files in `requests/`, every
//! first-parent commit's tree is ~400 KB, and a general diff visits every
//! entry of both versions (git's own `log --raw` does too). Consecutive
//! versions usually differ in one entry, so here the raw tree bytes are
//! compared at memcmp speed: the common prefix and suffix are skipped without
//! parsing, entry boundaries are carried over from the previous version, and
//! only the few entries in between are parsed and merged in git's tree order.
//!
//! Raw tree format: entries `<octal mode> <name>\0<20-byte id>`, sorted by
//! name, a directory's name compared as if it ended in `/`.

use std::cmp::Ordering;

use git2::{ObjectType, Odb, Oid};

const TREE_MODE: u32 = 0o40000;

/// One version of a tree, raw, with the byte offset of every entry.
pub(super) struct RawTree<'o> {
    pub id: Oid,
    /// The object as libgit2 read it (not copied: a copy per version of a
    /// 400 KB tree was a tenth of a cold walk).
    obj: git2::OdbObject<'o>,
    /// Start of each entry, then `data.len()`.
    starts: Vec<u32>,
}

/// One parsed entry.
#[derive(Clone, Copy)]
pub(super) struct RawEntry<'a> {
    pub mode: u32,
    pub name: &'a [u8],
    pub id: Oid,
}

impl RawEntry<'_> {
    fn is_tree(&self) -> bool {
        self.mode == TREE_MODE
    }
    /// A regular file (not a symlink, directory or submodule): a request candidate.
    pub fn is_file(&self) -> bool {
        self.mode & 0o170000 == 0o100000
    }
}

fn corrupt(id: Oid) -> git2::Error {
    git2::Error::from_str(&format!("tree {id} is corrupt (run `git fsck`)"))
}

/// Parses the entry at `at`, returning it and where the next one starts.
fn parse_at(data: &[u8], at: usize, id: Oid) -> Result<(RawEntry<'_>, usize), git2::Error> {
    let rest = data.get(at..).ok_or_else(|| corrupt(id))?;
    let sp = rest.iter().position(|&b| b == b' ').ok_or_else(|| corrupt(id))?;
    let mut mode = 0u32;
    for &b in &rest[..sp] {
        if !(b'0'..=b'7').contains(&b) {
            return Err(corrupt(id));
        }
        mode = mode.checked_mul(8).and_then(|m| m.checked_add(u32::from(b - b'0'))).ok_or_else(|| corrupt(id))?;
    }
    let nul = sp + 1 + rest[sp + 1..].iter().position(|&b| b == 0).ok_or_else(|| corrupt(id))?;
    let raw_id = rest.get(nul + 1..nul + 21).ok_or_else(|| corrupt(id))?;
    let entry = RawEntry { mode, name: &rest[sp + 1..nul], id: Oid::from_bytes(raw_id)? };
    Ok((entry, at + nul + 21))
}

impl<'o> RawTree<'o> {
    /// Reads tree `id` and finds all its entry boundaries.
    pub fn read(odb: &'o Odb<'_>, id: Oid) -> Result<RawTree<'o>, git2::Error> {
        let obj = read_tree_object(odb, id)?;
        let data = obj.data();
        let mut starts = Vec::new();
        let mut at = 0;
        while at < data.len() {
            starts.push(at as u32);
            at = parse_at(data, at, id)?.1;
        }
        starts.push(data.len() as u32);
        Ok(RawTree { id, obj, starts })
    }

    fn data(&self) -> &[u8] {
        self.obj.data()
    }

    fn len(&self) -> usize {
        self.starts.len() - 1
    }

    fn entry(&self, i: usize) -> Result<RawEntry<'_>, git2::Error> {
        Ok(parse_at(self.data(), self.starts[i] as usize, self.id)?.0)
    }

    /// Reads tree `id`, a later version of `self`, and returns it with the
    /// ranges of entry indices that differ (in `self`, in the new tree); the
    /// entries outside them are byte-identical in both.
    pub fn next_version(&self, odb: &'o Odb<'_>, id: Oid) -> Result<(RawTree<'o>, std::ops::Range<usize>, std::ops::Range<usize>), git2::Error> {
        let obj = read_tree_object(odb, id)?;
        let (old, new) = (self.data(), obj.data());
        let prefix = common_prefix(old, new);
        // The entry containing the first difference; everything before it is shared.
        let k = self.starts.partition_point(|&s| s as usize <= prefix).saturating_sub(1).min(self.len());
        let from = self.starts[k] as usize;
        let room = old.len().min(new.len()) - from;
        let suffix = common_suffix(&old[from..], &new[from..]).min(room);
        // Old entries wholly inside the shared suffix keep their bytes, shifted.
        let mut j = self.starts.partition_point(|&s| (s as usize) < old.len() - suffix);
        let shift = new.len() as i64 - old.len() as i64;
        let mut starts = Vec::with_capacity(self.starts.len() + 4);
        starts.extend_from_slice(&self.starts[..k]);
        let mut at = from;
        loop {
            // Line up with the next shifted old boundary at or after `at`.
            while j < self.len() && (self.starts[j] as i64 + shift) < at as i64 {
                j += 1;
            }
            if j < self.len() && (self.starts[j] as i64 + shift) == at as i64 {
                let new_end = starts.len();
                starts.extend(self.starts[j..].iter().map(|&s| (s as i64 + shift) as u32));
                return Ok((RawTree { id, obj, starts }, k..j, k..new_end));
            }
            if at >= new.len() {
                let new_end = starts.len();
                starts.push(new.len() as u32);
                return Ok((RawTree { id, obj, starts }, k..self.len(), k..new_end));
            }
            starts.push(at as u32);
            at = parse_at(new, at, id)?.1;
        }
    }
}

fn read_tree_object<'o>(odb: &'o Odb<'_>, id: Oid) -> Result<git2::OdbObject<'o>, git2::Error> {
    let obj = odb.read(id)?;
    if obj.kind() != ObjectType::Tree {
        return Err(git2::Error::from_str(&format!("{id} is not a tree")));
    }
    Ok(obj)
}

/// Length of the common prefix, compared in blocks (memcmp) first.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 256;
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + BLOCK <= n && a[i..i + BLOCK] == b[i..i + BLOCK] {
        i += BLOCK;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 256;
    let n = a.len().min(b.len());
    let (mut ea, mut eb) = (a.len(), b.len());
    let mut i = 0;
    while i + BLOCK <= n && a[ea - BLOCK..ea] == b[eb - BLOCK..eb] {
        i += BLOCK;
        ea -= BLOCK;
        eb -= BLOCK;
    }
    while i < n && a[a.len() - 1 - i] == b[b.len() - 1 - i] {
        i += 1;
    }
    i
}

/// Git's tree order: names compared bytewise, a directory as if it ended in `/`.
fn git_order(a: &RawEntry, b: &RawEntry) -> Ordering {
    let n = a.name.len().min(b.name.len());
    a.name[..n].cmp(&b.name[..n]).then_with(|| {
        let end = |e: &RawEntry| if e.is_tree() { b'/' } else { 0 };
        let ca = a.name.get(n).copied().unwrap_or_else(|| end(a));
        let cb = b.name.get(n).copied().unwrap_or_else(|| end(b));
        ca.cmp(&cb)
    })
}

/// A changed file: its path and blob id before and after (None: absent or not a file).
pub(super) type FileChange = (String, Option<Oid>, Option<Oid>);

/// Files that differ between versions `old` and `new` of the tree at `dir`,
/// given the entry ranges outside which they are identical. Recurses into
/// sub-directories that differ.
pub(super) fn diff(
    odb: &Odb,
    old: Option<&RawTree<'_>>,
    new: Option<&RawTree<'_>>,
    ranges: (std::ops::Range<usize>, std::ops::Range<usize>),
    dir: &str,
    out: &mut Vec<FileChange>,
) -> Result<(), git2::Error> {
    let (mut i, mut j) = (ranges.0.start, ranges.1.start);
    let (ie, je) = (ranges.0.end, ranges.1.end);
    loop {
        let a = if i < ie { old.map(|t| t.entry(i)).transpose()? } else { None };
        let b = if j < je { new.map(|t| t.entry(j)).transpose()? } else { None };
        let (a, b) = match (a, b) {
            (None, None) => return Ok(()),
            (Some(a), Some(b)) => match git_order(&a, &b) {
                Ordering::Less => (Some(a), None),
                Ordering::Greater => (None, Some(b)),
                Ordering::Equal => (Some(a), Some(b)),
            },
            other => other,
        };
        if a.is_some() {
            i += 1;
        }
        if b.is_some() {
            j += 1;
        }
        if let (Some(x), Some(y)) = (a, b)
            && x.id == y.id
            && x.mode == y.mode
        {
            continue;
        }
        let any = a.or(b).map_or(&[][..], |e| e.name);
        let path = format!("{dir}/{}", String::from_utf8_lossy(any));
        let sub = |e: Option<RawEntry>| e.filter(|e| e.is_tree()).map(|e| RawTree::read(odb, e.id)).transpose();
        let (ta, tb) = (sub(a)?, sub(b)?);
        if ta.is_some() || tb.is_some() {
            let ra = 0..ta.as_ref().map_or(0, RawTree::len);
            let rb = 0..tb.as_ref().map_or(0, RawTree::len);
            diff(odb, ta.as_ref(), tb.as_ref(), (ra, rb), &path, out)?;
        }
        let file = |e: Option<RawEntry>| e.filter(RawEntry::is_file).map(|e| e.id);
        let (fa, fb) = (file(a), file(b));
        if fa.is_some() || fb.is_some() {
            out.push((path, fa, fb));
        }
    }
}

/// All files that differ between two versions of a tree (either may be absent).
pub(super) fn diff_versions<'o>(
    odb: &'o Odb<'_>,
    old: Option<&RawTree<'o>>,
    new_id: Option<Oid>,
    dir: &str,
) -> Result<(Option<RawTree<'o>>, Vec<FileChange>), git2::Error> {
    let mut out = Vec::new();
    let new = match (old, new_id) {
        (_, None) => None,
        (Some(o), Some(id)) if o.id == id => return Ok((Some(RawTree::read(odb, id)?), out)),
        (Some(o), Some(id)) => {
            let (t, ro, rn) = o.next_version(odb, id)?;
            diff(odb, old, Some(&t), (ro, rn), dir, &mut out)?;
            return Ok((Some(t), out));
        }
        (None, Some(id)) => Some(RawTree::read(odb, id)?),
    };
    let ro = 0..old.map_or(0, RawTree::len);
    let rn = 0..new.as_ref().map_or(0, RawTree::len);
    diff(odb, old, new.as_ref(), (ro, rn), dir, &mut out)?;
    Ok((new, out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeMap;

    use git2::Repository;

    use super::*;

    /// A tiny deterministic PRNG (xorshift), so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// Names chosen to stress git's tree order (`a` vs `a.b` vs directory `a/`).
    const NAMES: [&str; 12] = ["a", "a.yaml", "a-b.yaml", "a.b", "b.yaml", "b", "z.yaml", "x-1.yaml", "x.yaml", "x0.yaml", "aa", "m.yaml"];

    /// Builds a tree from `files` (path -> content); paths have at most one `/`.
    fn build(repo: &Repository, files: &BTreeMap<String, String>, blobs: &mut BTreeMap<String, Oid>) -> Oid {
        let mut blob = |c: &str| *blobs.entry(c.to_string()).or_insert_with(|| repo.blob(c.as_bytes()).unwrap());
        let mut dirs: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
        let mut root = repo.treebuilder(None).unwrap();
        for (p, c) in files {
            match p.split_once('/') {
                Some((d, f)) => dirs.entry(d).or_default().push((f, c)),
                None => {
                    root.insert(p, blob(c), 0o100644).unwrap();
                }
            }
        }
        for (d, fs) in dirs {
            let mut b = repo.treebuilder(None).unwrap();
            for (f, c) in fs {
                b.insert(f, blob(c), 0o100644).unwrap();
            }
            root.insert(d, b.write().unwrap(), 0o040000).unwrap();
        }
        root.write().unwrap()
    }

    /// libgit2's answer: changed files as (path, old blob, new blob).
    fn reference(repo: &Repository, old: Option<Oid>, new: Option<Oid>) -> Vec<FileChange> {
        let t = |o: Option<Oid>| o.map(|o| repo.find_tree(o).unwrap());
        let diff = repo.diff_tree_to_tree(t(old).as_ref(), t(new).as_ref(), None).unwrap();
        let mut out: Vec<FileChange> = diff
            .deltas()
            .map(|d| {
                let id = |f: git2::DiffFile| (!f.id().is_zero()).then(|| f.id());
                let path = d.new_file().path().or(d.old_file().path()).unwrap().to_str().unwrap();
                (format!("requests/{path}"), id(d.old_file()), id(d.new_file()))
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn successive_versions_diff_like_libgit2() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let odb = repo.odb().unwrap();
        let mut blobs = BTreeMap::new();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut files: BTreeMap<String, String> = BTreeMap::new();
        // A big flat part, so prefixes and suffixes are long.
        for i in 0..300 {
            files.insert(format!("r-{i:04}.yaml"), format!("v{i}"));
        }
        let mut prev: Option<RawTree> = None;
        let mut prev_id: Option<Oid> = None;
        for step in 0..400 {
            // 1 to 3 edits: add, modify or remove a file, at random places, in
            // the flat part or in a sub-directory; sometimes empty the tree.
            for _ in 0..=rng.next(3) {
                let name = match rng.next(3) {
                    0 => format!("r-{:04}.yaml", rng.next(400)),
                    1 => NAMES[rng.next(NAMES.len())].to_string(),
                    _ => format!("{}/{}", NAMES[rng.next(NAMES.len())], NAMES[rng.next(NAMES.len())]),
                };
                // A path can't be both a file and a directory.
                let clash = files.keys().any(|k| k.starts_with(&format!("{name}/")) || name.starts_with(&format!("{k}/")));
                match rng.next(3) {
                    0 => {
                        files.remove(&name);
                    }
                    _ if clash => {}
                    _ => {
                        files.insert(name, format!("s{step}"));
                    }
                }
            }
            if step % 97 == 96 {
                files.clear();
            }
            let id = (!files.is_empty()).then(|| build(&repo, &files, &mut blobs));
            if id == prev_id {
                continue;
            }
            let (tree, mut got) = diff_versions(&odb, prev.as_ref(), id, "requests").unwrap();
            got.sort();
            assert_eq!(got, reference(&repo, prev_id, id), "step {step}");
            // The carried-over boundaries are exactly a fresh parse's.
            if let (Some(t), Some(id)) = (&tree, id) {
                assert_eq!(t.starts, RawTree::read(&odb, id).unwrap().starts, "step {step}");
            }
            prev = tree;
            prev_id = id;
        }
    }

    #[test]
    fn a_corrupt_tree_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let odb = repo.odb().unwrap();
        for bad in [&b"100644 a"[..], b"10x644 a\0", b"100644 a\0short", b" a\0"] {
            let id = odb.write(ObjectType::Tree, bad).unwrap();
            assert!(RawTree::read(&odb, id).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}

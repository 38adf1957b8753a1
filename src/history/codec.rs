//! A compact binary encoding of [`History`] for the incremental index.
//!
//! Why not JSON: on a 100,000-commit history the JSON index is tens of MB and
//! parsing it alone took longer than the whole warm `check` may (200 ms).
//! This format is varints and length-prefixed strings, about a third of the
//! size, and decodes without parsing text. Decoding checks every length and
//! index, so a truncated or corrupt file is rejected (and rebuilt), never trusted
//! half-way and never a panic.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use git2::Oid;

use super::{CommitInfo, Event, EventKind, History, RequestRecord, Version};
use crate::model::request::Window;

const MAGIC: &[u8; 8] = b"GGHIDX\0\x05";

struct W(Vec<u8>);

impl W {
    fn u(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn i(&mut self, v: i64) {
        self.u(((v << 1) ^ (v >> 63)) as u64);
    }
    fn s(&mut self, v: &str) {
        self.u(v.len() as u64);
        self.0.extend_from_slice(v.as_bytes());
    }
    fn b(&mut self, v: bool) {
        self.0.push(u8::from(v));
    }
    fn t(&mut self, t: DateTime<Utc>) {
        self.i(t.timestamp());
        self.u(u64::from(t.timestamp_subsec_nanos()));
    }
    fn ot(&mut self, t: Option<DateTime<Utc>>) {
        self.b(t.is_some());
        if let Some(t) = t {
            self.t(t);
        }
    }
    fn os(&mut self, v: Option<&str>) {
        self.b(v.is_some());
        if let Some(v) = v {
            self.s(v);
        }
    }
    fn vs(&mut self, v: &[String]) {
        self.u(v.len() as u64);
        for x in v {
            self.s(x);
        }
    }
}

struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }
    fn n(&mut self) -> Option<usize> {
        usize::try_from(self.u()?).ok()
    }
    /// A count of items each at least one byte long: bounded by what is left.
    fn len(&mut self) -> Option<usize> {
        self.n().filter(|&n| n <= self.0.len())
    }
    fn i(&mut self) -> Option<i64> {
        let v = self.u()?;
        Some(((v >> 1) as i64) ^ -((v & 1) as i64))
    }
    fn s(&mut self) -> Option<String> {
        let n = self.len()?;
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8(head.to_vec()).ok()
    }
    fn b(&mut self) -> Option<bool> {
        match self.byte()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    fn t(&mut self) -> Option<DateTime<Utc>> {
        let secs = self.i()?;
        let nanos = u32::try_from(self.u()?).ok()?;
        DateTime::from_timestamp(secs, nanos)
    }
    fn ot(&mut self) -> Option<Option<DateTime<Utc>>> {
        if self.b()? { self.t().map(Some) } else { Some(None) }
    }
    fn os(&mut self) -> Option<Option<String>> {
        if self.b()? { self.s().map(Some) } else { Some(None) }
    }
    fn vs(&mut self) -> Option<Vec<String>> {
        let n = self.len()?;
        (0..n).map(|_| self.s()).collect()
    }
}

fn put_version(w: &mut W, v: &Version) {
    w.s(&v.requester);
    w.s(&v.role);
    w.vs(&v.resources);
    w.ot(v.start);
    w.ot(v.until);
    w.b(v.duration_secs.is_some());
    if let Some(d) = v.duration_secs {
        w.i(d);
    }
    w.s(&v.reason);
    w.os(v.ticket.as_deref());
    w.b(v.break_glass);
    w.os(v.extends.as_deref());
}

fn get_version(r: &mut R) -> Option<Version> {
    Some(Version {
        requester: r.s()?,
        role: r.s()?,
        resources: r.vs()?,
        start: r.ot()?,
        until: r.ot()?,
        duration_secs: if r.b()? { Some(r.i()?) } else { None },
        reason: r.s()?,
        ticket: r.os()?,
        break_glass: r.b()?,
        extends: r.os()?,
    })
}

/// Where the commit and event sections of an index decoded without them
/// ([`Detail::Decisions`]) lie in its file, so the index can be extended and
/// saved again by copying them, never decoding them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Skipped {
    pub commits: usize,
    header: Header,
    /// Only some requesters were decoded: this history can't be saved.
    pub partial: bool,
}

/// The fixed part: counts and section lengths (state, then commits, then events).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Header {
    head: Option<Oid>,
    /// The root (parentless) commit the walk started from: verified on read,
    /// so an index built before `git fetch --unshallow` is never reused.
    root: Option<Oid>,
    walked: usize,
    n_commits: usize,
    commits_len: usize,
    n_events: usize,
    events_len: usize,
    state_len: usize,
    /// Bytes before the state section.
    size: usize,
}

/// A header is far shorter than this.
const HEADER_MAX: usize = 256;

fn put_header(w: &mut W, h: &Header) {
    w.0.extend_from_slice(MAGIC);
    w.os(h.head.map(|o| o.to_string()).as_deref());
    w.os(h.root.map(|o| o.to_string()).as_deref());
    for v in [h.walked, h.n_commits, h.commits_len, h.n_events, h.events_len, h.state_len] {
        w.u(v as u64);
    }
}

fn get_header(bytes: &[u8]) -> Option<Header> {
    let mut r = R(bytes.strip_prefix(MAGIC)?);
    let mut oid = || -> Option<Option<Oid>> {
        match r.os()? {
            Some(s) => Some(Some(Oid::from_str(&s).ok()?)),
            None => Some(None),
        }
    };
    let (head, root) = (oid()?, oid()?);
    let mut h = Header { head, root, walked: r.n()?, n_commits: r.n()?, commits_len: r.n()?, n_events: r.n()?, events_len: r.n()?, state_len: r.n()?, size: 0 };
    h.size = bytes.len() - r.0.len();
    Some(h)
}

fn put_commit(w: &mut W, c: &CommitInfo) {
    w.s(&c.id);
    w.t(c.time);
    w.s(&c.author);
    w.s(&c.author_email);
    w.s(&c.summary);
    w.u(c.parents as u64);
    w.vs(&c.approved_by);
    w.b(c.pr.is_some());
    if let Some(pr) = c.pr {
        w.u(pr);
    }
    w.vs(&c.break_glass_reviews);
}

fn get_commit(r: &mut R) -> Option<CommitInfo> {
    Some(CommitInfo {
        id: r.s()?,
        time: r.t()?,
        author: r.s()?,
        author_email: r.s()?,
        summary: r.s()?,
        parents: r.n()?,
        approved_by: r.vs()?,
        pr: if r.b()? { Some(r.u()?) } else { None },
        break_glass_reviews: r.vs()?,
    })
}

fn put_record(w: &mut W, r: &RequestRecord) {
    w.s(&r.id);
    w.b(r.latest.is_some());
    if let Some(v) = &r.latest {
        put_version(w, v);
    }
    w.t(r.landed);
    w.u(r.landed_commit as u64);
    w.ot(r.removed_at);
    w.u(r.windows.len() as u64);
    for (from, win) in &r.windows {
        w.t(*from);
        w.b(win.is_some());
        if let Some(win) = win {
            w.t(win.start);
            w.t(win.end);
        }
    }
    w.u(r.ended_early_at.len() as u64);
    for t in &r.ended_early_at {
        w.t(*t);
    }
}

fn get_record(r: &mut R, n_commits: usize) -> Option<RequestRecord> {
    let id = r.s()?;
    let latest = if r.b()? { Some(get_version(r)?) } else { None };
    let landed = r.t()?;
    let landed_commit = r.n().filter(|&c| c < n_commits)?;
    let removed_at = r.ot()?;
    let nw = r.len()?;
    let mut windows = Vec::with_capacity(nw);
    for _ in 0..nw {
        let from = r.t()?;
        let win = if r.b()? { Some(Window { start: r.t()?, end: r.t()? }) } else { None };
        windows.push((from, win));
    }
    let nx = r.len()?;
    let ended_early_at = (0..nx).map(|_| r.t()).collect::<Option<Vec<_>>>()?;
    Some(RequestRecord { id, events: Vec::new(), latest, landed, landed_commit, removed_at, windows, ended_early_at })
}

/// The state: one group per requester (their `by_requester` list and the
/// records whose latest version is theirs; `""` for records that never
/// parsed), each prefixed by its byte length so a reader can skip it.
fn put_state(w: &mut W, h: &History) {
    let mut groups: BTreeMap<&str, (Option<&Vec<String>>, Vec<&RequestRecord>)> = BTreeMap::new();
    for (k, ids) in &h.by_requester {
        groups.entry(k.as_str()).or_default().0 = Some(ids);
    }
    for r in h.requests.values() {
        groups.entry(r.latest.as_ref().map_or("", |v| v.requester.as_str())).or_default().1.push(r);
    }
    w.u(groups.len() as u64);
    for (who, (ids, records)) in groups {
        let mut g = W(Vec::new());
        g.b(ids.is_some());
        g.vs(ids.map_or(&[][..], |v| &v[..]));
        g.u(records.len() as u64);
        for r in records {
            put_record(&mut g, r);
        }
        w.s(who);
        w.u(g.0.len() as u64);
        w.0.extend_from_slice(&g.0);
    }
}

/// Encodes `h`. When `h` was decoded with [`Detail::Decisions`], `old` must be
/// the commit and event sections of the file it came from ([`read_skipped`]).
pub(super) fn encode(h: &History, old: Option<(&[u8], &[u8])>) -> Vec<u8> {
    let (old_commits, old_events) = old.unwrap_or((&[], &[]));
    let mut c = W(old_commits.to_vec());
    for x in &h.commits {
        put_commit(&mut c, x);
    }
    let mut e = W(old_events.to_vec());
    let mut n_events = h.skipped.as_ref().map_or(0, |s| s.header.n_events);
    for r in h.requests.values() {
        for ev in &r.events {
            e.s(&r.id);
            e.0.push(match ev.kind {
                EventKind::Added => 0,
                EventKind::Modified => 1,
                EventKind::Removed => 2,
            });
            e.u(ev.commit as u64);
            e.s(&ev.path);
            n_events += 1;
        }
    }
    let mut st = W(Vec::with_capacity(h.requests.len() * 160));
    put_state(&mut st, h);
    let header = Header {
        head: h.head,
        root: h.root,
        walked: h.walked,
        n_commits: h.commit_count(),
        commits_len: c.0.len(),
        n_events,
        events_len: e.0.len(),
        state_len: st.0.len(),
        size: 0,
    };
    let mut w = W(Vec::with_capacity(HEADER_MAX + st.0.len() + c.0.len() + e.0.len()));
    put_header(&mut w, &header);
    w.0.extend_from_slice(&st.0);
    w.0.extend_from_slice(&c.0);
    w.0.extend_from_slice(&e.0);
    w.0
}

/// How much of an index to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail<'a> {
    /// Everything: commits and each request's events (audit).
    Full,
    /// What risk and approval decisions read: request records and windows.
    /// `commits` and every record's `events` are left empty (they then hold
    /// only what was walked since), and the file's commit and event sections
    /// are not even read.
    Decisions,
    /// [`Detail::Decisions`] for these requesters (lowercase) only: a PR
    /// check asks about a handful of people, not the 50,000 requests of a long
    /// history. Only served from an index that is exactly at the asked head;
    /// otherwise the read falls back to [`Detail::Decisions`].
    Requesters(&'a std::collections::BTreeSet<String>),
}

/// Reads and decodes the index at `path`; `None` if absent, corrupt or of another format.
pub(super) fn read(path: &std::path::Path, detail: Detail<'_>) -> Option<History> {
    use std::io::Read;
    match detail {
        Detail::Full => decode(&std::fs::read(path).ok()?, detail),
        Detail::Decisions | Detail::Requesters(_) => {
            let mut f = std::fs::File::open(path).ok()?;
            let mut head = vec![0u8; HEADER_MAX];
            let mut got = 0;
            while got < HEADER_MAX {
                match f.read(&mut head[got..]).ok()? {
                    0 => break,
                    n => got += n,
                }
            }
            let header = get_header(&head[..got])?;
            let file_len = usize::try_from(f.metadata().ok()?.len()).ok()?;
            if header.size + header.state_len + header.commits_len + header.events_len != file_len {
                return None;
            }
            let mut bytes = head[..got.min(header.size + header.state_len)].to_vec();
            let want = header.size + header.state_len;
            if bytes.len() < want {
                let mut rest = vec![0u8; want - bytes.len()];
                f.read_exact(&mut rest).ok()?;
                bytes.extend_from_slice(&rest);
            }
            decode_state(&bytes[header.size..], header, detail)
        }
    }
}

/// The commit and event sections of the file `h` (decoded with
/// [`Detail::Decisions`]) came from, if that file is still the same index.
pub(super) fn read_skipped(path: &std::path::Path, skipped: &Skipped) -> Option<(Vec<u8>, Vec<u8>)> {
    let bytes = std::fs::read(path).ok()?;
    let header = get_header(&bytes)?;
    if header != skipped.header || skipped.partial {
        return None;
    }
    let start = header.size + header.state_len;
    let commits = bytes.get(start..start + header.commits_len)?.to_vec();
    let events = bytes.get(start + header.commits_len..start + header.commits_len + header.events_len)?.to_vec();
    Some((commits, events))
}

fn decode_state(state: &[u8], header: Header, detail: Detail<'_>) -> Option<History> {
    let mut r = R(state);
    let only = match detail {
        Detail::Requesters(who) => Some(who),
        _ => None,
    };
    let mut requests = BTreeMap::new();
    let mut by_requester = HashMap::new();
    let n = r.len()?;
    for _ in 0..n {
        let who = r.s()?;
        let len = r.len()?;
        let (group, rest) = r.0.split_at(len);
        r.0 = rest;
        if only.is_some_and(|o| !who.is_empty() && !o.contains(&who)) {
            continue;
        }
        let mut g = R(group);
        let has_ids = g.b()?;
        let ids = g.vs()?;
        let nr = g.len()?;
        for _ in 0..nr {
            let rec = get_record(&mut g, header.n_commits)?;
            if rec.latest.as_ref().map_or("", |v| v.requester.as_str()) != who {
                return None;
            }
            let id = rec.id.clone();
            if requests.insert(id, rec).is_some() {
                return None;
            }
        }
        if !g.0.is_empty() {
            return None;
        }
        if has_ids && by_requester.insert(who, ids).is_some() {
            return None;
        }
    }
    if !r.0.is_empty() {
        return None;
    }
    // A complete state lists no id it lacks (a partial one may: handed-over requests).
    if only.is_none() && by_requester.values().flatten().any(|id: &String| !requests.contains_key(id)) {
        return None;
    }
    let commits = header.n_commits;
    let partial = only.is_some();
    Some(History {
        commits: Vec::new(),
        requests,
        by_requester,
        head: header.head,
        root: header.root,
        walked: header.walked,
        skipped: Some(Skipped { commits, header, partial }),
        ledger: Default::default(),
        lookup: Default::default(),
        listed: Default::default(),
    })
}

/// `None` for anything that is not a complete, consistent encoding.
pub(super) fn decode(bytes: &[u8], detail: Detail<'_>) -> Option<History> {
    let header = get_header(bytes)?;
    let body = &bytes[header.size..];
    if body.len() != header.state_len + header.commits_len + header.events_len {
        return None;
    }
    let (state, rest) = body.split_at(header.state_len);
    let (commit_bytes, event_bytes) = rest.split_at(header.commits_len);
    let (n_commits, n_events) = (header.n_commits, header.n_events);
    let mut h = decode_state(state, header, detail)?;
    if detail != Detail::Full {
        return Some(h);
    }
    h.skipped = None;
    let mut c = R(commit_bytes);
    h.commits = (0..n_commits.min(commit_bytes.len())).map(|_| get_commit(&mut c)).collect::<Option<_>>()?;
    if h.commits.len() != n_commits || !c.0.is_empty() {
        return None;
    }
    let mut e = R(event_bytes);
    for _ in 0..n_events.min(event_bytes.len()) {
        let id = e.s()?;
        let kind = match e.byte()? {
            0 => EventKind::Added,
            1 => EventKind::Modified,
            2 => EventKind::Removed,
            _ => return None,
        };
        let commit = e.n().filter(|&c| c < n_commits)?;
        let path = e.s()?;
        h.requests.get_mut(&id)?.events.push(Event { kind, commit, path });
    }
    if !e.0.is_empty() {
        return None;
    }
    Some(h)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use chrono::TimeZone;

    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).single().unwrap()
    }

    fn sample() -> History {
        let v = Version {
            requester: "carol".into(),
            role: "db-readonly".into(),
            resources: vec!["orders-db".into(), "billing-db".into()],
            start: Some(t(1_800_000_000)),
            until: None,
            duration_secs: Some(7200),
            reason: "INC-1: ünïcode reason".into(),
            ticket: Some("INC-1".into()),
            break_glass: true,
            extends: None,
        };
        let mut requests = BTreeMap::new();
        requests.insert(
            "2026-12-01-carol-a".to_string(),
            RequestRecord {
                id: "2026-12-01-carol-a".into(),
                events: vec![
                    Event { kind: EventKind::Added, commit: 0, path: "requests/2026-12-01-carol-a.yaml".into() },
                    Event { kind: EventKind::Removed, commit: 1, path: "requests/x/2026-12-01-carol-a.yaml".into() },
                ],
                latest: Some(v),
                landed: t(1_790_000_000),
                landed_commit: 0,
                removed_at: Some(t(1_790_000_060)),
                windows: vec![
                    (t(1_790_000_000), Some(Window { start: t(1_800_000_000), end: Utc.timestamp_opt(1_800_007_200, 5).single().unwrap() })),
                    (t(1_790_000_060), None),
                ],
                ended_early_at: vec![t(-5)],
            },
        );
        requests.insert(
            "2026-12-02-x".to_string(),
            RequestRecord {
                id: "2026-12-02-x".into(),
                events: vec![],
                latest: None,
                landed: t(0),
                landed_commit: 1,
                removed_at: None,
                windows: vec![],
                ended_early_at: vec![],
            },
        );
        let commit = |i: i64| CommitInfo {
            id: format!("{i:040}"),
            time: t(1_790_000_000 + i * 60),
            author: "Carol".into(),
            author_email: "carol@example.com".into(),
            summary: "Merge pull request #7".into(),
            parents: 2,
            approved_by: vec!["frank".into()],
            pr: (i == 0).then_some(7),
            break_glass_reviews: vec![],
        };
        History {
            commits: vec![commit(0), commit(1)],
            requests,
            by_requester: HashMap::from([("carol".to_string(), vec!["2026-12-01-carol-a".to_string()])]),
            head: Some(Oid::from_str("0123456789abcdef0123456789abcdef01234567").unwrap()),
            root: Some(Oid::from_str("89abcdef0123456789abcdef0123456789abcdef").unwrap()),
            walked: 9,
            skipped: None,
            ledger: Default::default(),
            lookup: Default::default(),
            listed: Default::default(),
        }
    }

    #[test]
    fn round_trips_exactly_and_deterministically() {
        let h = sample();
        let bytes = encode(&h, None);
        assert_eq!(decode(&bytes, Detail::Full), Some(h));
        assert_eq!(encode(&decode(&bytes, Detail::Full).unwrap(), None), bytes);
        assert_eq!(decode(&encode(&History::default(), None), Detail::Full), Some(History::default()));
    }

    #[test]
    fn every_truncation_and_trailing_garbage_is_rejected() {
        let bytes = encode(&sample(), None);
        for n in 0..bytes.len() {
            assert_eq!(decode(&bytes[..n], Detail::Full), None, "truncated at {n}");
            assert_eq!(decode(&bytes[..n], Detail::Decisions), None, "truncated at {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer, Detail::Full), None);
    }

    #[test]
    fn corrupt_bytes_never_panic() {
        let bytes = encode(&sample(), None);
        for i in 0..bytes.len() {
            for x in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] = x;
                let _ = decode(&b, Detail::Full); // Some (a different but consistent value) or None
                let _ = decode(&b, Detail::Decisions);
            }
        }
        // Out-of-range commit indices are refused.
        let mut h = sample();
        h.requests.get_mut("2026-12-02-x").unwrap().landed_commit = 2;
        assert_eq!(decode(&encode(&h, None), Detail::Full), None);
    }

    #[test]
    fn decisions_skip_commits_and_events_and_round_trip_through_them() {
        let full = sample();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        std::fs::write(&path, encode(&full, None)).unwrap();
        let lite = read(&path, Detail::Decisions).unwrap();
        assert!(lite.commits.is_empty() && lite.requests.values().all(|r| r.events.is_empty()));
        assert_eq!(lite.commit_count(), 2);
        for (id, r) in &full.requests {
            let l = &lite.requests[id];
            assert_eq!((&l.latest, l.landed, &l.windows, &l.ended_early_at, l.removed_at), (&r.latest, r.landed, &r.windows, &r.ended_early_at, r.removed_at));
        }
        assert_eq!(read(&path, Detail::Full), Some(full.clone()));
        // Saved again with the sections it skipped, nothing is lost.
        let old = read_skipped(&path, lite.skipped.as_ref().unwrap()).unwrap();
        assert_eq!(decode(&encode(&lite, Some((&old.0, &old.1))), Detail::Full), Some(full.clone()));
        // A file replaced meanwhile is not mixed in.
        let mut other = full;
        other.walked += 1;
        std::fs::write(&path, encode(&other, None)).unwrap();
        assert_eq!(read_skipped(&path, lite.skipped.as_ref().unwrap()), None);
        // A decisions read checks the file length against the header.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.pop();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read(&path, Detail::Decisions), None);
    }
}

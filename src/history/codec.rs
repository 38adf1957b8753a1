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

const MAGIC: &[u8; 8] = b"GGHIDX\0\x02";

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

pub(super) fn encode(h: &History) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(64 + h.commits.len() * 96 + h.requests.len() * 160));
    w.0.extend_from_slice(MAGIC);
    w.os(h.head.map(|o| o.to_string()).as_deref());
    w.u(h.walked as u64);
    w.u(h.commits.len() as u64);
    for c in &h.commits {
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
    w.u(h.requests.len() as u64);
    for r in h.requests.values() {
        w.s(&r.id);
        w.u(r.events.len() as u64);
        for e in &r.events {
            w.0.push(match e.kind {
                EventKind::Added => 0,
                EventKind::Modified => 1,
                EventKind::Removed => 2,
            });
            w.u(e.commit as u64);
            w.s(&e.path);
        }
        w.b(r.latest.is_some());
        if let Some(v) = &r.latest {
            put_version(&mut w, v);
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
    // Sorted so the bytes are deterministic.
    let mut by: Vec<(&String, &Vec<String>)> = h.by_requester.iter().collect();
    by.sort();
    w.u(by.len() as u64);
    for (k, ids) in by {
        w.s(k);
        w.vs(ids);
    }
    w.0
}

/// `None` for anything that is not a complete, consistent encoding.
pub(super) fn decode(bytes: &[u8]) -> Option<History> {
    let mut r = R(bytes.strip_prefix(MAGIC)?);
    let head = match r.os()? {
        Some(s) => Some(Oid::from_str(&s).ok()?),
        None => None,
    };
    let walked = r.n()?;
    let n = r.len()?;
    let mut commits = Vec::with_capacity(n);
    for _ in 0..n {
        commits.push(CommitInfo {
            id: r.s()?,
            time: r.t()?,
            author: r.s()?,
            author_email: r.s()?,
            summary: r.s()?,
            parents: r.n()?,
            approved_by: r.vs()?,
            pr: if r.b()? { Some(r.u()?) } else { None },
            break_glass_reviews: r.vs()?,
        });
    }
    let n = r.len()?;
    let mut requests = BTreeMap::new();
    for _ in 0..n {
        let id = r.s()?;
        let ne = r.len()?;
        let mut events = Vec::with_capacity(ne);
        for _ in 0..ne {
            let kind = match r.byte()? {
                0 => EventKind::Added,
                1 => EventKind::Modified,
                2 => EventKind::Removed,
                _ => return None,
            };
            let commit = r.n().filter(|&c| c < commits.len())?;
            events.push(Event { kind, commit, path: r.s()? });
        }
        let latest = if r.b()? { Some(get_version(&mut r)?) } else { None };
        let landed = r.t()?;
        let landed_commit = r.n().filter(|&c| c < commits.len())?;
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
        let rec = RequestRecord { id: id.clone(), events, latest, landed, landed_commit, removed_at, windows, ended_early_at };
        if requests.insert(id, rec).is_some() {
            return None;
        }
    }
    let n = r.len()?;
    let mut by_requester = HashMap::with_capacity(n);
    for _ in 0..n {
        let k = r.s()?;
        let ids = r.vs()?;
        if ids.iter().any(|id| !requests.contains_key(id)) {
            return None;
        }
        by_requester.insert(k, ids);
    }
    if !r.0.is_empty() {
        return None;
    }
    Some(History { commits, requests, by_requester, head, walked })
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
            walked: 9,
        }
    }

    #[test]
    fn round_trips_exactly_and_deterministically() {
        let h = sample();
        let bytes = encode(&h);
        assert_eq!(decode(&bytes), Some(h));
        assert_eq!(encode(&decode(&bytes).unwrap()), bytes);
        assert_eq!(decode(&encode(&History::default())), Some(History::default()));
    }

    #[test]
    fn every_truncation_and_trailing_garbage_is_rejected() {
        let bytes = encode(&sample());
        for n in 0..bytes.len() {
            assert_eq!(decode(&bytes[..n]), None, "truncated at {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None);
    }

    #[test]
    fn corrupt_bytes_never_panic() {
        let bytes = encode(&sample());
        for i in 0..bytes.len() {
            for x in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] = x;
                let _ = decode(&b); // Some (a different but consistent value) or None
            }
        }
        // Out-of-range commit indices are refused.
        let mut h = sample();
        h.requests.get_mut("2026-12-02-x").unwrap().landed_commit = 2;
        assert_eq!(decode(&encode(&h)), None);
    }
}

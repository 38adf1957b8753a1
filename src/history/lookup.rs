//! Requester facts as lookups: per requester, once, the roles they held
//! (earliest grant per role), the sorted times their grants ended early, and
//! the intervals during which each of their requests was active, bucketed by
//! length and sorted by start. "Facts at time t" is then a few binary
//! searches, not a scan of every record the requester ever had (10,000 live
//! requests from 3 requesters made `check --all` quadratic: 38 s).
//!
//! The answers are exactly those of the scans they replace (a test compares
//! them on random histories): same records (the requester's, by
//! [`History::of`]), same window rule ([`RequestRecord::window_at`]: the last
//! entry whose time is not after `t`), same order (landing order).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::{History, MAX_EARLY_REVOCATIONS, RequestRecord};

/// One requester's pre-aggregated facts.
#[derive(Debug, Default)]
pub(crate) struct PerRequester {
    /// What the facts were built from; rebuilt when it changes.
    stamp: (usize, usize, usize),
    /// Role -> earliest ledger grant.
    held: HashMap<String, DateTime<Utc>>,
    /// Every early end of every record of theirs, sorted.
    early: Vec<DateTime<Utc>>,
    /// Active intervals [from, to) with (landing-order position, id), one
    /// bucket per power-of-two length in seconds, each sorted by `from`.
    buckets: Vec<Vec<Interval>>,
    /// Records whose window entries are not in time order (clock skew on
    /// main): judged by [`RequestRecord::window_at`] directly.
    irregular: Vec<(usize, String)>,
}

#[derive(Debug, Clone)]
struct Interval {
    from: i64,
    to: i64,
    pos: usize,
    id: String,
}

/// The per-requester cache a [`History`] carries. Not part of its value:
/// clones start empty and every cache compares equal.
#[derive(Debug, Default)]
pub struct Cache(Mutex<HashMap<String, Arc<PerRequester>>>);

impl Clone for Cache {
    fn clone(&self) -> Self {
        Cache::default()
    }
}

impl PartialEq for Cache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Cache {}

/// Nanosecond-free seconds are what windows and commit times carry; a
/// sub-second part is kept by comparing (secs, nanos) through `DateTime`
/// where it matters: intervals use whole seconds rounded outwards and each
/// candidate is re-checked exactly.
fn secs(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

impl History {
    fn stamp(&self, who: &str) -> (usize, usize, usize) {
        (self.walked, self.requests.len(), self.grants.get(who).map_or(0, Vec::len))
    }

    pub(crate) fn per_requester(&self, requester: &str) -> Arc<PerRequester> {
        let who = requester.to_ascii_lowercase();
        let stamp = self.stamp(&who);
        if let Ok(cache) = self.lookup.0.lock()
            && let Some(p) = cache.get(&who).filter(|p| p.stamp == stamp)
        {
            return p.clone();
        }
        let built = Arc::new(self.build(&who, stamp));
        if let Ok(mut cache) = self.lookup.0.lock() {
            cache.insert(who, built.clone());
        }
        built
    }

    fn build(&self, who: &str, stamp: (usize, usize, usize)) -> PerRequester {
        let mut p = PerRequester { stamp, ..PerRequester::default() };
        for (role, at) in self.grants.get(who).into_iter().flatten() {
            let e = p.held.entry(role.clone()).or_insert(*at);
            if *at < *e {
                *e = *at;
            }
        }
        for (pos, r) in self.of(who).enumerate() {
            p.early.extend(r.ended_early_at.iter().copied());
            if r.removed_at.is_some() {
                continue;
            }
            if r.windows.windows(2).any(|w| w[1].0 < w[0].0) {
                p.irregular.push((pos, r.id.clone()));
                continue;
            }
            for (i, (from, w)) in r.windows.iter().enumerate() {
                let Some(w) = w else { continue };
                // In force from `from` until the next entry; active while it contains t.
                let next = r.windows.get(i + 1).map(|(t, _)| *t);
                let start = (*from).max(w.start);
                let end = next.map_or(w.end, |n| n.min(w.end));
                if start >= end {
                    continue;
                }
                // Whole seconds, widened: candidates are re-checked exactly.
                let (a, b) = (secs(start), secs(end) + 1);
                let k = (64 - ((b - a).max(1) as u64).leading_zeros()) as usize;
                if p.buckets.len() <= k {
                    p.buckets.resize(k + 1, Vec::new());
                }
                p.buckets[k].push(Interval { from: a, to: b, pos, id: r.id.clone() });
            }
        }
        p.early.sort();
        for b in &mut p.buckets {
            b.sort_by_key(|i| i.from);
        }
        p
    }
}

impl PerRequester {
    pub(crate) fn held_before(&self, role: &str, t: DateTime<Utc>) -> bool {
        self.held.get(role).is_some_and(|at| *at < t)
    }

    pub(crate) fn early_before(&self, t: DateTime<Utc>) -> u32 {
        (self.early.partition_point(|e| *e < t) as u32).min(MAX_EARLY_REVOCATIONS)
    }

    /// Ids of requests active at `t` except `except`, in landing order.
    pub(crate) fn active_at(&self, h: &History, t: DateTime<Utc>, except: &str) -> Vec<String> {
        let ts = secs(t);
        let mut hits: Vec<(usize, &str)> = Vec::new();
        for (k, bucket) in self.buckets.iter().enumerate() {
            // Lengths in this bucket are below 2^k seconds: a hit started after t - 2^k.
            let span = 1i64.checked_shl(k as u32).unwrap_or(i64::MAX);
            let lo = bucket.partition_point(|i| i.from < ts.saturating_sub(span));
            let hi = bucket.partition_point(|i| i.from <= ts);
            for i in &bucket[lo..hi] {
                if i.to > ts && i.id != except && h.requests.get(&i.id).is_some_and(|r| active(r, t)) {
                    hits.push((i.pos, &i.id));
                }
            }
        }
        for (pos, id) in &self.irregular {
            if id != except && h.requests.get(id).is_some_and(|r| active(r, t)) {
                hits.push((*pos, id));
            }
        }
        hits.sort_unstable();
        hits.dedup();
        hits.into_iter().map(|(_, id)| id.to_string()).collect()
    }
}

/// The exact rule the scans used.
fn active(r: &RequestRecord, t: DateTime<Utc>) -> bool {
    r.removed_at.is_none() && r.window_at(t).is_some_and(|w| w.contains(t))
}

//! Requester facts as lookups: per requester, the sorted times their grants
//! ended early and the intervals during which each of their requests was
//! active, bucketed by length and ordered by start, built on first use and
//! then kept up to date record by record as the history grows (the roles
//! they held come from the ledger: [`super::LedgerFacts`]). "Facts at time t" is then a few binary
//! searches, not a scan of every record the requester ever had (10,000 live
//! requests from 3 requesters made `check --all` quadratic: 38 s).
//!
//! The answers are exactly those of the scans they replace (a test compares
//! them on random histories): same records (the requester's, by
//! [`RequestRecord::counts_for`]), same window rule ([`RequestRecord::window_at`]: the last
//! entry whose time is not after `t`), same order (landing order).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::{History, MAX_EARLY_REVOCATIONS, RequestRecord};

/// One requester's pre-aggregated facts, kept up to date as the history
/// grows: a forward walk (one landing judged after another) changes a few
/// records per step, and only those are re-aggregated, never all of the
/// requester's records per landing.
#[derive(Debug, Default, Clone)]
pub(crate) struct PerRequester {
    /// How much of the cache's change log is applied.
    at: usize,
    /// How many ids of the requester's `by_requester` list are slotted.
    listed: usize,
    /// Id -> its index in the requester's `by_requester` list (landing order).
    slot: HashMap<String, usize>,
    /// Per slot, what its record adds below (to take it out again).
    parts: Vec<Part>,
    /// Every early end of every record of theirs, sorted.
    early: Vec<DateTime<Utc>>,
    /// Active intervals (from, slot, to) over [from, to), one bucket per
    /// power-of-two length in seconds, ordered by `from`.
    buckets: Vec<BTreeSet<(i64, usize, i64)>>,
    /// Slots whose window entries are not in time order (clock skew on
    /// main): judged by [`RequestRecord::window_at`] directly.
    irregular: BTreeSet<usize>,
}

/// What one record adds to its requester's facts.
#[derive(Debug, Default, Clone)]
struct Part {
    early: Vec<DateTime<Utc>>,
    /// (bucket, from, to).
    intervals: Vec<(usize, i64, i64)>,
    irregular: bool,
}

/// The per-requester cache a [`History`] carries, and the ids of the records
/// changed since its entries were built (logged only while it holds some).
/// Not part of the history's value: clones start empty and every cache
/// compares equal.
#[derive(Debug, Default)]
pub struct Cache {
    map: Mutex<HashMap<String, Arc<PerRequester>>>,
    log: Vec<String>,
}

impl Cache {
    /// The record `id` changed: cached facts re-aggregate it when next asked.
    pub(super) fn changed(&mut self, id: &str) {
        if self.map.get_mut().is_ok_and(|m| !m.is_empty()) {
            self.log.push(id.to_string());
        }
    }
}

/// Nanosecond-free seconds are what windows and commit times carry; a
/// sub-second part is kept by comparing (secs, nanos) through `DateTime`
/// where it matters: intervals use whole seconds rounded outwards and each
/// candidate is re-checked exactly.
fn secs(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

impl History {
    pub(crate) fn per_requester(&self, requester: &str) -> Arc<PerRequester> {
        let who = requester.to_ascii_lowercase();
        let listed = self.by_requester.get(&who).map_or(0, Vec::len);
        let at = self.lookup.log.len();
        let cached = match self.lookup.map.lock() {
            Ok(mut cache) => match cache.get(&who) {
                Some(p) if p.at == at && p.listed == listed => return p.clone(),
                Some(_) => cache.remove(&who),
                None => None,
            },
            Err(_) => None,
        };
        // Brought up to date (or built) outside the lock: threads judging
        // other requesters' requests do not wait for it.
        let mut p = cached.map_or_else(PerRequester::default, |p| Arc::try_unwrap(p).unwrap_or_else(|p| (*p).clone()));
        p.refresh(self, &who);
        let p = Arc::new(p);
        if let Ok(mut cache) = self.lookup.map.lock() {
            cache.insert(who, p.clone());
        }
        p
    }
}

impl PerRequester {
    /// Takes in the ids listed since, and the records changed since.
    fn refresh(&mut self, h: &History, who: &str) {
        let ids: &[String] = h.by_requester.get(who).map_or(&[], Vec::as_slice);
        let old = self.listed;
        for (slot, id) in ids.iter().enumerate().skip(old) {
            self.slot.insert(id.clone(), slot);
            self.parts.push(Part::default());
            self.set(slot, h.requests.get(id).filter(|r| r.counts_for(who)));
        }
        self.listed = ids.len();
        for id in h.lookup.log.get(self.at..).unwrap_or_default() {
            if let Some(&slot) = self.slot.get(id).filter(|s| **s < old) {
                self.set(slot, h.requests.get(id).filter(|r| r.counts_for(who)));
            }
        }
        self.at = h.lookup.log.len();
    }

    /// Replaces what slot `slot` adds by what `record` (None: nothing) adds.
    fn set(&mut self, slot: usize, record: Option<&RequestRecord>) {
        let Some(part) = self.parts.get_mut(slot) else { return };
        let old = std::mem::take(part);
        for t in &old.early {
            if let Ok(i) = self.early.binary_search(t) {
                self.early.remove(i);
            }
        }
        for (k, from, to) in &old.intervals {
            if let Some(b) = self.buckets.get_mut(*k) {
                b.remove(&(*from, slot, *to));
            }
        }
        if old.irregular {
            self.irregular.remove(&slot);
        }
        let Some(r) = record else { return };
        let new = part_of(r);
        for t in &new.early {
            let i = self.early.partition_point(|e| e <= t);
            self.early.insert(i, *t);
        }
        for &(k, from, to) in &new.intervals {
            if self.buckets.len() <= k {
                self.buckets.resize(k + 1, BTreeSet::new());
            }
            self.buckets[k].insert((from, slot, to));
        }
        if new.irregular {
            self.irregular.insert(slot);
        }
        self.parts[slot] = new;
    }

    pub(crate) fn early_before(&self, t: DateTime<Utc>) -> u32 {
        (self.early.partition_point(|e| *e < t) as u32).min(MAX_EARLY_REVOCATIONS)
    }

    /// Ids of `who`'s requests active at `t` except `except`, in landing order.
    pub(crate) fn active_at(&self, h: &History, who: &str, t: DateTime<Utc>, except: &str) -> Vec<String> {
        let ids: &[String] = h.by_requester.get(&who.to_ascii_lowercase()).map_or(&[], Vec::as_slice);
        let ts = secs(t);
        let mut hits: Vec<usize> = Vec::new();
        let mut hit = |slot: usize| {
            if let Some(id) = ids.get(slot)
                && id != except
                && h.requests.get(id).is_some_and(|r| active(r, t))
            {
                hits.push(slot);
            }
        };
        for (k, bucket) in self.buckets.iter().enumerate() {
            // Lengths in this bucket are below 2^k seconds: a hit started after t - 2^k.
            let span = 1i64.checked_shl(k as u32).unwrap_or(i64::MAX);
            for &(_, slot, to) in bucket.range((ts.saturating_sub(span), 0, i64::MIN)..=(ts, usize::MAX, i64::MAX)) {
                if to > ts {
                    hit(slot);
                }
            }
        }
        for &slot in &self.irregular {
            hit(slot);
        }
        hits.sort_unstable();
        hits.dedup();
        hits.into_iter().filter_map(|s| ids.get(s).cloned()).collect()
    }
}

/// What record `r` adds to its requester's facts.
fn part_of(r: &RequestRecord) -> Part {
    let mut p = Part { early: r.ended_early_at.clone(), ..Part::default() };
    if r.removed_at.is_some() {
        return p;
    }
    if r.windows.windows(2).any(|w| w[1].0 < w[0].0) {
        p.irregular = true;
        return p;
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
        p.intervals.push((k, a, b));
    }
    p
}

/// The exact rule the scans used.
fn active(r: &RequestRecord, t: DateTime<Utc>) -> bool {
    r.removed_at.is_none() && r.window_at(t).is_some_and(|w| w.contains(t))
}

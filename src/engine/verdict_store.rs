//! Landing verdicts kept between runs, beside the history index
//! (`.git/gitgrant/verdicts.jsonl`), so that `plan`, `reconcile`, `audit
//! verify` and `audit replay` on an unchanged main read one file instead of
//! judging every landing again.
//!
//! A landing's verdict is a pure function of its commit (an immutable tree,
//! parents, message and the history before it) and of the judge: the key is
//! the commit id, and the whole file is bound to one judge version
//! ([`judge_version`]: the crate version and the commit gitgrant was built
//! from). A dirty or unknown build has no version and never reuses nor
//! writes verdicts. One input is not in the commit: when the landing's
//! policies count ledger facts (`first_time`, `monitor_findings`), the
//! verdict also records a fingerprint of the ledger facts before its landing
//! time ([`super::facts::LedgerPrint`]) and is reused only while it holds.
//! GitHub reviews are never stored: reconcile reads them from the API each
//! run and decides them against the stored report.
//!
//! Format (version [`FORMAT`]): a header line `gitgrant-verdicts<TAB>1<TAB>judge`,
//! one line per verdict `commit<TAB>json`, and a trailer `end<TAB>count<TAB>fnv`
//! (FNV-1a of every byte before it). A file with another header, judge or
//! format, a wrong count or checksum, or a line that does not parse is
//! ignored as a whole and rewritten; a verdict that does not convert back is
//! judged again. Written to a temporary file and renamed.
//!
//! Not stored (no consumer of a landing verdict reads them): the file texts
//! (`sources`, for rendering `check` output), the effective-access diff of a
//! policy change, and each outcome's parsed request and requester facts.
//! The policies are re-read from the commit they were judged by, once per
//! distinct `policies/` and `templates/` tree ([`super::verdict::BasePolicies`]).

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use git2::Repository;
use serde::{Deserialize, Serialize};

use super::landing::LandingVerdict;
use super::request::{Approvals, Change, RequestOutcome};
use super::verdict::{CheckReport, PolicyChange, Status};
use crate::approval::Decision;
use crate::diag::{Code, Diagnostic, Severity};
use crate::model::policy::{ApprovalRule, Policy};
use crate::risk::{Factor, RequesterFacts, Risk};

const MAGIC: &str = "gitgrant-verdicts";
/// Bumped whenever the stored shape changes.
pub const FORMAT: u32 = 1;

/// The version of the judge this binary is: its crate version and the commit
/// it was built from. `None` for a build from a dirty or unknown tree, whose
/// rules cannot be named: its verdicts are never stored nor reused.
pub fn judge_version() -> Option<String> {
    let commit = env!("GITGRANT_COMMIT");
    (commit != "unknown" && env!("GITGRANT_DIRTY") == "0").then(|| format!("{} {commit}", env!("CARGO_PKG_VERSION")))
}

/// Where the store lives: beside the history index, inside the git directory.
pub fn store_path(repo: &Repository) -> PathBuf {
    repo.path().join("gitgrant").join("verdicts.jsonl")
}

#[derive(Debug, Serialize, Deserialize)]
struct SDiag {
    code: String,
    severity: Severity,
    file: String,
    line: u32,
    column: u32,
    message: String,
    help: Option<String>,
    len: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct SRisk {
    score: i64,
    tier: String,
    /// (name, points, detail)
    factors: Vec<(String, i64, String)>,
    raw_sum: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct SOutcome {
    id: String,
    file: String,
    change: Change,
    requester: String,
    role: String,
    resources: Vec<String>,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    break_glass: bool,
    valid: bool,
    risk: Option<SRisk>,
    required: Vec<ApprovalRule>,
    satisfied: Option<bool>,
}

/// One stored verdict: what every consumer of a [`LandingVerdict`] reads.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Stored {
    commit: String,
    parent: Option<String>,
    pub(crate) time: DateTime<Utc>,
    direct_push: bool,
    approved_by: Vec<String>,
    excluded: Vec<String>,
    decision: Decision,
    /// The ledger facts it was judged with ([`super::facts::LedgerPrint::at`]
    /// its time); `None` when its policies count none.
    pub(crate) ledger: Option<String>,
    /// The commit whose policies judged it (its parent; the commit itself
    /// for a bootstrap root).
    pub(crate) policy_from: String,
    ok: bool,
    status: u8,
    base: Option<String>,
    head: String,
    diagnostics: Vec<SDiag>,
    requests: Vec<SOutcome>,
    /// (files, required, satisfied)
    policy_change: Option<(Vec<String>, Vec<ApprovalRule>, Option<bool>)>,
}

/// Every name a risk factor has: stored names are mapped back to these.
const FACTOR_NAMES: &[&str] = &[
    "sensitivity",
    "privilege",
    "environment",
    "duration",
    "off_hours",
    "first_time",
    "early_revocations",
    "active_grants",
    "monitor_findings",
    "missing_ticket",
    "break_glass",
];

impl Stored {
    /// The stored form of `v`, or `None` when some part of it would not
    /// convert back exactly (then it is simply not stored).
    pub(crate) fn from_verdict(v: &LandingVerdict, ledger: Option<String>, policy_from: String) -> Option<Stored> {
        let r = &v.report;
        let mut requests = Vec::with_capacity(r.requests.len());
        for o in &r.requests {
            let risk = match &o.risk {
                None => None,
                Some(k) => {
                    if k.factors.iter().any(|f| !FACTOR_NAMES.contains(&f.name)) {
                        return None;
                    }
                    let factors = k.factors.iter().map(|f| (f.name.to_string(), f.points, f.detail.clone())).collect();
                    Some(SRisk { score: k.score, tier: k.tier.clone(), factors, raw_sum: k.raw_sum })
                }
            };
            requests.push(SOutcome {
                id: o.id.clone(),
                file: o.file.clone(),
                change: o.change,
                requester: o.requester.clone(),
                role: o.role.clone(),
                resources: o.resources.clone(),
                start: o.start,
                end: o.end,
                break_glass: o.break_glass,
                valid: o.valid,
                risk,
                required: o.approvals.required.clone(),
                satisfied: o.approvals.satisfied,
            });
        }
        let diagnostics = r
            .diagnostics
            .iter()
            .map(|d| SDiag {
                code: d.code.as_str().to_string(),
                severity: d.severity,
                file: d.file.clone(),
                line: d.line,
                column: d.column,
                message: d.message.clone(),
                help: d.help.clone(),
                len: d.len,
            })
            .collect();
        Some(Stored {
            commit: v.commit.clone(),
            parent: v.parent.clone(),
            time: v.time,
            direct_push: v.direct_push,
            approved_by: v.approved_by.clone(),
            excluded: v.excluded.clone(),
            decision: v.decision.clone(),
            ledger,
            policy_from,
            ok: r.ok,
            status: r.status.code(),
            base: r.base.clone(),
            head: r.head.clone(),
            diagnostics,
            requests,
            policy_change: r.policy_change.as_ref().map(|p| (p.files.clone(), p.approvals.required.clone(), p.approvals.satisfied)),
        })
    }

    /// The verdict again, with `policy` (read from [`Stored::policy_from`]).
    /// `None` when a code or factor name is unknown to this build.
    pub(crate) fn into_verdict(self, policy: std::sync::Arc<Policy>) -> Option<LandingVerdict> {
        let status = match self.status {
            0 => Status::Ok,
            1 => Status::Failed,
            2 => Status::Error,
            _ => return None,
        };
        let mut diagnostics = Vec::with_capacity(self.diagnostics.len());
        for d in self.diagnostics {
            let code = Code::ALL.iter().copied().find(|c| c.as_str() == d.code)?;
            diagnostics.push(Diagnostic {
                code,
                severity: d.severity,
                file: d.file,
                line: d.line,
                column: d.column,
                message: d.message,
                help: d.help,
                len: d.len,
            });
        }
        let mut requests = Vec::with_capacity(self.requests.len());
        for o in self.requests {
            let risk = match o.risk {
                None => None,
                Some(k) => {
                    let mut factors = Vec::with_capacity(k.factors.len());
                    for (name, points, detail) in k.factors {
                        let name = FACTOR_NAMES.iter().copied().find(|n| *n == name)?;
                        factors.push(Factor { name, points, detail });
                    }
                    Some(Risk { score: k.score, tier: k.tier, factors, raw_sum: k.raw_sum })
                }
            };
            requests.push(RequestOutcome {
                id: o.id,
                file: o.file,
                change: o.change,
                requester: o.requester,
                role: o.role,
                resources: o.resources,
                start: o.start,
                end: o.end,
                break_glass: o.break_glass,
                valid: o.valid,
                risk,
                approvals: Approvals { required: o.required, satisfied: o.satisfied },
                facts: RequesterFacts::default(),
                request: None,
            });
        }
        let report = CheckReport {
            ok: self.ok,
            diagnostics,
            requests,
            policy_change: self.policy_change.map(|(files, required, satisfied)| PolicyChange { files, approvals: Approvals { required, satisfied } }),
            policy_diff: None,
            base: self.base,
            head: self.head,
            status,
            sources: Default::default(),
            policy,
            history_status: None,
        };
        Some(LandingVerdict {
            commit: self.commit,
            parent: self.parent,
            time: self.time,
            direct_push: self.direct_push,
            approved_by: self.approved_by,
            excluded: self.excluded,
            decision: self.decision,
            report,
        })
    }
}

/// The verdicts of one repository for one judge version.
#[derive(Debug)]
pub struct Store {
    /// `None`: disabled (no judge version), nothing read or written.
    path: Option<PathBuf>,
    judge: String,
    /// Commit -> its verdict's JSON, parsed only when asked for.
    lines: HashMap<String, String>,
    changed: bool,
}

impl Store {
    /// A store that keeps nothing.
    pub fn disabled() -> Store {
        Store { path: None, judge: String::new(), lines: HashMap::new(), changed: false }
    }

    /// The store of `repo` for this build ([`judge_version`]).
    pub fn of(repo: &Repository) -> Store {
        Store::open(store_path(repo), judge_version())
    }

    /// The store at `path` for the judge `judge` (`None`: disabled). A file
    /// that is missing, foreign, for another judge, truncated or corrupt is
    /// read as empty.
    pub fn open(path: PathBuf, judge: Option<String>) -> Store {
        let Some(judge) = judge else { return Store::disabled() };
        let lines = std::fs::read(&path).ok().and_then(|bytes| decode(&bytes, &judge)).unwrap_or_default();
        Store { path: Some(path), judge, lines, changed: false }
    }

    pub fn enabled(&self) -> bool {
        self.path.is_some()
    }

    /// How many verdicts it holds.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub(crate) fn get(&self, commit: &str) -> Option<Stored> {
        serde_json::from_str(self.lines.get(commit)?).ok()
    }

    pub(crate) fn put(&mut self, stored: &Stored) {
        if self.path.is_none() {
            return;
        }
        if let Ok(json) = serde_json::to_string(stored) {
            self.lines.insert(stored.commit.clone(), json);
            self.changed = true;
        }
    }

    /// Writes the store if anything was added. Best effort: a store that
    /// cannot be written only costs time next run.
    pub fn save(&mut self) {
        let Some(path) = &self.path else { return };
        if !self.changed {
            return;
        }
        let Some(dir) = path.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let bytes = encode(&self.judge, &self.lines);
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, path).is_ok() {
            self.changed = false;
        } else {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

fn encode(judge: &str, lines: &HashMap<String, String>) -> Vec<u8> {
    let mut keys: Vec<&String> = lines.keys().collect();
    keys.sort();
    let mut out = format!("{MAGIC}\t{FORMAT}\t{judge}\n");
    for k in &keys {
        out.push_str(k);
        out.push('\t');
        out.push_str(&lines[*k]);
        out.push('\n');
    }
    let sum = crate::provider::fnv1a64(out.as_bytes());
    out.push_str(&format!("end\t{}\t{sum:016x}\n", keys.len()));
    out.into_bytes()
}

/// The verdict lines of a store file written for `judge`, or `None` when
/// anything about it is off (then it is ignored as a whole).
fn decode(bytes: &[u8], judge: &str) -> Option<HashMap<String, String>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let body = text.strip_suffix('\n')?;
    let cut = body.rfind('\n')? + 1;
    let (before, trailer) = text.split_at(cut);
    let mut t = trailer.trim_end_matches('\n').split('\t');
    let (Some("end"), Some(count), Some(sum), None) = (t.next(), t.next(), t.next(), t.next()) else { return None };
    let count: usize = count.parse().ok()?;
    if u64::from_str_radix(sum, 16).ok()? != crate::provider::fnv1a64(before.as_bytes()) {
        return None;
    }
    let mut rows = before.lines();
    let mut h = rows.next()?.split('\t');
    let format = FORMAT.to_string();
    if (h.next(), h.next(), h.next(), h.next()) != (Some(MAGIC), Some(format.as_str()), Some(judge), None) {
        return None;
    }
    let mut out = HashMap::with_capacity(count);
    for row in rows {
        let (commit, json) = row.split_once('\t')?;
        if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) || !json.starts_with('{') {
            return None;
        }
        out.insert(commit.to_string(), json.to_string());
    }
    (out.len() == count).then_some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn sample() -> HashMap<String, String> {
        (0..3).map(|i| (format!("{i:040x}"), format!("{{\"n\":{i}}}"))).collect()
    }

    #[test]
    fn a_store_file_reads_back_only_whole_and_for_its_own_judge() {
        let bytes = encode("1.0 abc", &sample());
        assert_eq!(decode(&bytes, "1.0 abc"), Some(sample()));
        assert_eq!(decode(&bytes, "1.0 abd"), None, "another judge version");
        for cut in 1..bytes.len() {
            assert_eq!(decode(&bytes[..cut], "1.0 abc"), None, "truncated at {cut}");
        }
        let mut flipped = bytes.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 1;
        assert_eq!(decode(&flipped, "1.0 abc"), None, "one bit changed");
        assert_eq!(decode(b"", "1.0 abc"), None);
        assert_eq!(decode(b"end\t0\t0\n", "1.0 abc"), None);
    }

    #[test]
    fn a_disabled_store_neither_reads_nor_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.jsonl");
        std::fs::write(&path, encode("j", &sample())).unwrap();
        let s = Store::open(path.clone(), None);
        assert!(!s.enabled() && s.is_empty());
        let s = Store::open(path, Some("j".into()));
        assert_eq!(s.len(), 3);
    }
}

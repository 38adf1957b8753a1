//! The one judge. Every command that decides whether a request may be
//! granted asks this module, and nothing else re-implements a rule:
//!
//! - [`classify`]: which files a change touches and how (new, modified,
//!   shrink, unchanged content, removed; rule files; mixed changes).
//! - [`request`]: one request's verdict (change kind, risk, tier, approvals).
//! - [`verdict`]: the verdict of a change — every diagnostic,
//!   risk, tier, required approvals — as `check` prints it.
//! - [`landing`]: the verdict of a commit on main, judged exactly as
//!   `check --base L^ --head L` would, plus its approvals (trailers or the
//!   PR's GitHub reviews) and whether it was a direct push.
//! - [`files`]: the request files on main, each traced to the landing
//!   that last changed *its path* (never another file with the same id).
//! - [`breakglass`]: which landings review a break-glass request.
//! - [`facts`]: the requester facts the risk factors read (history and ledger).
//! - [`policy_diff`]: the effective-access diff of a policy change.
//! - [`trust`]: the chain of trust for rule files (are the policies in force approved?).
//!
//! `check`, `gate`, reconcile's desired state, `audit verify`, `audit replay`
//! and `simulate` call it. The engine sits below all of them and imports
//! none of them.

pub mod breakglass;
pub mod classify;
pub mod facts;
pub mod files;
pub mod grant;
pub mod judgement;
pub mod landing;
pub mod policy_diff;
pub mod request;
pub mod rule_files;
pub mod trust;
pub mod verdict;
pub mod verdict_store;

pub use classify::{FileChange, changed_paths};
pub use judgement::{Judgement, judge};
pub use verdict::*;

//! gitgrant: temporary production access as code.
//!
//! Data flows one way: `source` (files from git or disk) → `model` (raw types
//! with positions) → `validate` (diagnostics) → `risk` (score) → `approval`
//! (decision) → actions. Every decision is a pure function of loaded data.

pub mod approval;
pub mod audit;
pub mod check;
pub mod cli;
pub mod diag;
pub mod engine;
pub mod git;
pub mod github;
pub mod history;
pub mod ledger;
pub mod model;
pub mod monitor;
pub mod notify;
pub mod provider;
pub mod reconcile;
pub mod render;
pub mod risk;
pub mod scaffold;
pub mod simulate;
pub mod source;
pub mod validate;

//! Simulation: judge requests under two sets of policies and compare.
//!
//! Both uses run the one engine `check` runs (validation, [`crate::engine::verdict::evaluate`]
//! for risk and approvals): [`diff`] re-judges the open and active requests of
//! a policy PR under the base and head policies; [`replay`] re-judges every
//! request version that ever landed on main under the policies at another ref.

pub mod replay;

pub use crate::engine::judgement::{Judgement, judge};
pub use crate::engine::policy_diff::{self as diff, PolicyDiff, policy_diff};
pub use replay::{SimulateError, SimulateOptions, SimulateReport, simulate};

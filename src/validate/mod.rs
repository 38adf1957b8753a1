//! Rules over policies and requests. Each function collects every diagnostic
//! it finds into a [`Diagnostics`](crate::diag::Diagnostics) and keeps going:
//! a PR author sees all their mistakes in one run.

pub mod policy;
pub mod request;

pub use policy::{load_policy, PolicyLoad};
pub use request::{load_request, validate_request, RequestContext};

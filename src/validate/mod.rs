//! Rules over policies and requests. Each function collects every diagnostic
//! it finds into a [`Diagnostics`](crate::diag::Diagnostics) and keeps going:
//! a PR author sees all their mistakes in one run.

pub mod policy;
pub mod request;

pub use policy::{PolicyLoad, load_policy};
pub use request::{RequestContext, load_request, validate_request};

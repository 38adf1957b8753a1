//! The decision engine: rules shared by check, reconcile and audit.
pub mod rule_files;
pub mod trust;

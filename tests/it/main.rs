//! One integration-test binary (shared build); modules by area.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod check_git;
mod check_inputs;
mod cli;
mod history_index;
mod prune;
mod risk;

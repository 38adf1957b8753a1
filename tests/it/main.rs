//! One integration-test binary (shared build); modules by area.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
mod trust;
mod verdicts;

mod attacks;
mod audit;
mod check_git;
mod check_inputs;
mod cli;
mod crash;
mod faults;
mod github_gate;
mod history_index;
mod hostile;
mod index_ref;
mod install;
mod ledger_remote;
mod merge_queue;
mod monitor;
mod notify;
mod parallel_check;
mod provider_aws_iam;
mod provider_aws_sso;
mod provider_azure_rbac;
mod provider_gcp_iam;
mod provider_kubernetes;
mod provider_postgres;
mod prune;
mod readme;
mod reconcile;
mod reconcile_e2e;
mod risk;
mod scaffold;
mod schema_corpus;
mod shallow;
mod simulate;
mod workflows;

//! Audit: one timeline per request from git history joined with the ledger; verification of the trail.

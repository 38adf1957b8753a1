//! Monitoring: provider activity for active grants checked against the policy's monitor rules.

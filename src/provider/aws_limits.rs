//! IAM's size limits, known without the AWS SDK: `check` reports a
//! template that can never fit (GG114) in every build, slim ones included.

/// IAM's limit on a customer-managed policy document, in characters not
/// counting whitespace (IAM quotas: "Managed policy size").
pub const MANAGED_POLICY_MAX_CHARS: usize = 6_144;

/// The size IAM counts for a policy document (whitespace excluded), when it
/// is above [`MANAGED_POLICY_MAX_CHARS`]; `None` when it fits. Kept separate
/// so `check` (on a template) and `plan` (on a rendered grant) share it.
pub fn policy_size_over_limit(document: &str) -> Option<usize> {
    let size = document.chars().filter(|c| !c.is_whitespace()).count();
    (size > MANAGED_POLICY_MAX_CHARS).then_some(size)
}

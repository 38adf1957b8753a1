//! What a request becomes at a provider, as far as the engine decides it:
//! the principal of the requester there (the key providers list grants by).
//! `reconcile` grants it; `audit verify` compares ledger lines with it.

use crate::model::policy::{Policy, ProviderKind};

/// The provider principal `requester` is granted `resource` as, in the form
/// the provider lists it (an IAM ARN without its path, a GCP member key, an
/// Azure object id in lowercase). `Err`: why there is none.
pub fn principal_key(policy: &Policy, requester: &str, resource: &str) -> Result<(String, String), String> {
    let res = policy.resources.get(resource).ok_or_else(|| format!("unknown resource `{resource}`"))?;
    let identity = policy.identities.get(requester).ok_or_else(|| format!("`{requester}` has no identity"))?;
    let principal = identity.principal(requester, res.provider).ok_or_else(|| format!("`{requester}` has no principal for {}", res.provider))?;
    let key = match res.provider {
        #[cfg(feature = "aws")]
        ProviderKind::AwsIam => crate::provider::aws_iam::principal_key(&principal),
        #[cfg(feature = "gcp")]
        ProviderKind::GcpIam => crate::provider::gcp_iam::member_key(&principal),
        ProviderKind::AzureRbac => principal.to_ascii_lowercase(),
        _ => principal.clone(),
    };
    Ok((principal, key))
}

//! The `azure-rbac` provider (not implemented yet).

use super::{Provider, ProviderContext, ProviderError};

pub async fn build(ctx: &ProviderContext<'_>) -> Result<Box<dyn Provider>, ProviderError> {
    Err(ProviderError::Permanent {
        provider: ctx.config.provider,
        resource: ctx.resource.to_string(),
        message: "this provider is not available in this build yet; remove the resource from policies/ or use `local`".into(),
    })
}

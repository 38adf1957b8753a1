//! gitgrant: temporary production access as code.
//!
//! Data flows one way: `source` (files from git or disk) → `model` (raw types
//! with positions) → `validate` (diagnostics) → `risk` (score) → `approval`
//! (decision) → actions. Every decision is a pure function of loaded data.

pub mod approval;
pub mod audit;
pub mod check;
pub mod cli;
pub mod diag;
pub mod engine;
pub mod git;
pub mod github;
pub mod history;
pub mod ledger;
pub mod model;
pub mod monitor;
pub mod notify;
pub mod par;
pub mod provider;
pub mod reconcile;
pub mod render;
pub mod risk;
pub mod scaffold;
pub mod simulate;
pub mod source;
pub mod validate;

/// Installs rustls' ring crypto provider as the process default, once.
///
/// Every TLS client (reqwest, the Google and Azure SDKs, kube, the AWS SDK)
/// runs on rustls with ring: one crypto stack, and no C build of aws-lc-rs.
/// reqwest and google-cloud-auth need the provider installed before their
/// first client is built; every constructor of an HTTP client in gitgrant
/// calls this first (it is cheap after the first call).
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider is already installed: that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client builder with the crypto provider installed: the one way
/// gitgrant builds an HTTP client (reqwest panics without a provider).
pub fn http_client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

/// A default HTTP client (see [`http_client_builder`]); `Err` only if the TLS
/// backend cannot start, which callers report as a delivery failure.
pub fn http_client() -> Result<reqwest::Client, String> {
    http_client_builder().build().map_err(|e| format!("cannot start the HTTP client: {e}"))
}

//! The TLS side of deliveries: which certificate authorities a receiver's
//! certificate may chain to (the system's roots, plus an operator's CA file
//! for internal receivers) and the client that speaks `https://` and `http://`
//! over the address-checked connector ([`super::GuardedConnector`]).

use super::GuardedConnector;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;

/// The client deliveries use.
pub type Client = hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<GuardedConnector>, String>;

/// The certificates in a PEM file; an error names the file and says why.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("{}: not a PEM certificate file ({error})", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certificates)
}

/// The roots: the system's (as many as load; none is not an error when a CA
/// file is given) and every certificate of `ca_file`.
fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    for error in &system.errors {
        tracing::debug!(%error, "a system certificate was not loaded");
    }
    let (added, _ignored) = roots.add_parsable_certificates(system.certs);
    if let Some(path) = ca_file {
        for certificate in read_ca_file(path)? {
            roots.add(certificate).map_err(|error| format!("{}: {error}", path.display()))?;
        }
    } else if added == 0 {
        tracing::warn!("no system CA certificates found: https webhooks will fail until --webhook-ca-file is given");
    }
    Ok(roots)
}

/// The delivery client: TLS 1.2 and 1.3 with ring's ciphers, HTTP/1.1, no
/// idle connections kept (one open connection per worker at most).
pub fn client(allow_private_targets: bool, ca_file: Option<&Path>) -> Result<Client, String> {
    // ring's provider, deprecated in rustls 0.23.48 for lacking post-quantum
    // key exchange: the alternative (aws-lc-rs) adds a large C build, and a
    // notification's confidentiality horizon is short (docs/security.md).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots(ca_file)?)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(GuardedConnector::new(allow_private_targets));
    Ok(hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).pool_max_idle_per_host(0).build(connector))
}

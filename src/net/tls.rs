//! TLS: the proxy listener's rustls server config from PEM certificate and key files (ALPN for
//! HTTP/2 and HTTP/1.1), and the HTTPS-capable connector every outgoing client uses (upstream,
//! webhooks, the CLI), verifying servers against the Mozilla roots.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

/// The connector for outgoing HTTP/1.1 requests: plain `http://`, or `https://` with the ring
/// provider and the webpki roots.
pub fn client_connector(
    mut http: hyper_util::client::legacy::connect::HttpConnector,
) -> hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector> {
    // The TLS layer handles https:// itself; the TCP connector must let such URLs through.
    http.enforce_http(false);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .expect("the ring provider supports the default protocol versions")
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read certificates from {0}: {1}")]
    Certs(String, String),
    #[error("cannot read a private key from {0}: {1}")]
    Key(String, String),
    #[error("certificate and key do not form a usable TLS config: {0}")]
    Config(String),
}

/// Loads the certificate chain and private key (PEM files) and builds the server config (ring
/// provider, TLS 1.2 and 1.3).
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_name = cert_file.display().to_string();
    let key_name = key_file.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Certs(cert_name.clone(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Certs(cert_name, "no CERTIFICATE block found".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::Key(key_name, e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

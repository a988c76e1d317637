//! TLS on the proxy listener: HTTP/2 and HTTP/1.1 by ALPN, with a certificate generated here;
//! and TLS config errors that name the field.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokengate::config::Config;
use tokengate::token::TokenKind;

use support::gate::{Gate, bearer, embedded_config};
use support::upstream::Upstream;
use support::{minter, new_token};
use tokengate::store::Issue as _;

struct Pki {
    dir: tempfile::TempDir,
    cert_pem: String,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    Pki { dir, cert_pem: ck.cert.pem() }
}

fn tls_yaml(p: &Pki) -> String {
    format!(
        "proxy:\n  tls:\n    cert_file: {}\n    key_file: {}\n",
        p.dir.path().join("cert.pem").display(),
        p.dir.path().join("key.pem").display()
    )
}

async fn request_over_tls(p: &Pki, port: u16, token: &str, http2: bool) -> (http::Version, serde_json::Value) {
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(p.cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_only();
    let connector = if http2 { builder.enable_http2().build() } else { builder.enable_http1().build() };
    let mut client = Client::builder(TokioExecutor::new());
    if http2 {
        client.http2_only(true);
    }
    let client: Client<_, Full<Bytes>> = client.build(connector);
    let req = http::Request::builder()
        .uri(format!("https://localhost:{port}/secure"))
        .header("authorization", bearer(token))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let version = resp.version();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (version, serde_json::from_slice(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_serves_http2_and_http1_by_alpn() {
    let p = pki();
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    let gate = Gate::start(&embedded_config(&upstream.url(), dir.path(), &tls_yaml(&p))).await;
    let (token, _) =
        minter().issue(gate.store.as_ref(), &new_token(TokenKind::Organization, "tls", "acme")).await.unwrap();
    for http2 in [true, false] {
        let (version, echo) = request_over_tls(&p, gate.addr.port(), token.expose(), http2).await;
        assert_eq!(version, if http2 { http::Version::HTTP_2 } else { http::Version::HTTP_11 });
        let headers: Vec<(String, String)> = serde_json::from_value(echo["headers"].clone()).unwrap();
        assert!(headers.contains(&("x-forwarded-proto".into(), "https".into())), "{headers:?}");
        assert!(headers.contains(&("x-auth-subject".into(), "acme".into())));
    }
}

#[test]
fn bad_tls_files_are_config_errors_naming_the_field() {
    let p = pki();
    let load = |yaml: String| Config::from_yaml(&format!("upstream: http://u:1\n{yaml}"), &BTreeMap::new());
    let cert = p.dir.path().join("cert.pem");
    let key = p.dir.path().join("key.pem");
    std::fs::write(p.dir.path().join("empty.pem"), "").unwrap();
    let empty = p.dir.path().join("empty.pem");
    let cases = [
        (
            format!("proxy:\n  tls:\n    cert_file: /nonexistent.pem\n    key_file: {}\n", key.display()),
            "`proxy.tls.cert_file`",
        ),
        (
            format!("proxy:\n  tls:\n    cert_file: {}\n    key_file: {}\n", empty.display(), key.display()),
            "`proxy.tls.cert_file`",
        ),
        (
            format!("proxy:\n  tls:\n    cert_file: {}\n    key_file: {}\n", cert.display(), empty.display()),
            "`proxy.tls.key_file`",
        ),
        (format!("proxy:\n  tls:\n    cert_file: {}\n", cert.display()), "`proxy.tls.key_file`"),
    ];
    for (yaml, field) in cases {
        let err = load(yaml.clone()).unwrap_err().to_string();
        assert!(err.starts_with(field), "{yaml}: {err}");
    }
    // A key that does not match the certificate.
    let other = rcgen::generate_simple_self_signed(vec!["other".to_string()]).unwrap();
    std::fs::write(p.dir.path().join("other.pem"), other.signing_key.serialize_pem()).unwrap();
    let yaml = format!(
        "proxy:\n  tls:\n    cert_file: {}\n    key_file: {}\n",
        cert.display(),
        p.dir.path().join("other.pem").display()
    );
    let err = load(yaml).unwrap_err().to_string();
    assert!(err.starts_with("`proxy.tls.cert_file`") && err.contains("usable TLS config"), "{err}");
}

//! The Tokens page in headless Chromium (Debian's `chromium`, driven by `playwright-core` from
//! `tests/e2e`). `scripts/test.sh` installs both where missing.

mod support;

use std::time::Duration;

use support::admin::{Admin, OPERATOR_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tokens_page_creates_shows_once_revokes_and_deletes() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists()
            && std::path::Path::new("tests/e2e/node_modules/playwright-core").exists(),
        "the browser test needs Debian's chromium and `npm ci --prefix tests/e2e`; ./scripts/test.sh installs both"
    );
    // A route rule naming a scope (offered to operators in the picker); uses recorded at once.
    let a =
        Admin::start("routes:\n  - path: /prod\n    scopes: [env:prod]\nlast_used:\n  flush_interval: 50ms\n").await;
    a.principal("alice", Some("acme"), &["viewer"]).await;
    // A path prefix for the screenshots, e.g. docs/screenshots/tokens (writes tokens-light.png,
    // tokens-dark.png, tokens-390.png, tokens-390-secret.png).
    let screenshot = std::env::var("TOKENGATE_SCREENSHOT").unwrap_or_default();
    let run = tokio::process::Command::new("node")
        .arg("tests/e2e/tokens_page.mjs")
        .env("ADMIN_URL", a.gate.admin_url(""))
        .env("PROXY_URL", a.gate.url(""))
        .env("ADMIN_KEY", OPERATOR_KEY)
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOT", screenshot)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(240), run).await.expect("the browser test finishes").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("tokens page: all checks passed"), "{stdout}");
}

/// A real OpenID provider (npm's `oidc-provider`, tests/e2e/oidc_provider.mjs) on a loopback
/// port; killed on drop.
struct Provider {
    issuer: String,
    _child: tokio::process::Child,
}

impl Provider {
    async fn start(redirect_uri: &str, client_secret: &str) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new("node")
            .arg("tests/e2e/oidc_provider.mjs")
            .env("REDIRECT_URI", redirect_uri)
            .env("CLIENT_ID", "tokengate")
            .env("CLIENT_SECRET", client_secret)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs tests/e2e/oidc_provider.mjs");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let issuer = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(issuer) = line.strip_prefix("issuer ") {
                    return issuer.to_string();
                }
            }
            panic!("the provider exited before listening");
        })
        .await
        .expect("the provider starts");
        Self { issuer, _child: child }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_through_a_real_openid_provider_creates_a_usable_token_and_signs_out() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new("tests/e2e/node_modules/oidc-provider").exists(),
        "the OpenID provider needs `npm ci --prefix tests/e2e`; ./scripts/test.sh runs it"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect = format!("http://{}/auth/callback", listener.local_addr().unwrap());
    let client_secret = "provider-client-secret-0123456789";
    let provider = Provider::start(&redirect, client_secret).await;
    let dir = tempfile::tempdir().unwrap();
    let (secret_file, keys_file) = (dir.path().join("client-secret"), dir.path().join("session-keys"));
    std::fs::write(&secret_file, client_secret).unwrap();
    std::fs::write(&keys_file, "session-key-for-the-browser-test-0123456789\n").unwrap();
    let extra = format!(
        "identity:
  groups:
    engineering: {{roles: [viewer, developer], scopes: [\"env:staging\"]}}
    platform: {{roles: [viewer], admin: operator}}
  oidc:
    issuer: {issuer}
    client_id: tokengate
    client_secret_file: {secret}
    redirect_url: {redirect}
    scopes: [profile, email, groups]
  sessions:
    keys_file: {keys}
",
        issuer = provider.issuer,
        secret = secret_file.display(),
        keys = keys_file.display(),
    );
    let a = Admin::start_bound(&extra, listener).await;
    let run = tokio::process::Command::new("node")
        .arg("tests/e2e/oidc_signin.mjs")
        .env("ADMIN_URL", a.gate.admin_url(""))
        .env("PROXY_URL", a.gate.url(""))
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOT", std::env::var("TOKENGATE_SCREENSHOT").unwrap_or_default())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run).await.expect("the browser test finishes").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("oidc sign-in: all checks passed"), "{stdout}");
    // The sign-in created alice from the claims, with roles from her groups.
    let p = a.gate.store.get_principal("alice").await.unwrap().expect("alice was created at sign-in");
    assert_eq!((p.display_name.as_str(), p.groups.as_slice()), ("Alice Example", &["engineering".to_string()][..]));
}

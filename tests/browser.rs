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

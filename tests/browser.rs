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
        // Keep reading what it prints: a closed pipe would end it (EPIPE).
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { issuer, _child: child }
    }
}

/// A gate whose sign-in is a real OpenID provider (alice is in `engineering`, olga in
/// `platform`), and the provider; both stop on drop.
async fn gate_with_provider() -> (Admin, Provider, tempfile::TempDir) {
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
    (a, provider, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_through_a_real_openid_provider_creates_a_usable_token_and_signs_out() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new("tests/e2e/node_modules/oidc-provider").exists(),
        "the OpenID provider needs `npm ci --prefix tests/e2e`; ./scripts/test.sh runs it"
    );
    let (a, _provider, _dir) = gate_with_provider().await;
    let run = tokio::process::Command::new("node")
        .arg("tests/e2e/oidc_signin.mjs")
        .env("ADMIN_URL", a.gate.admin_url(""))
        .env("PROXY_URL", a.gate.url(""))
        .env("CHROMIUM", &chromium)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_signs_in_with_a_device_code_stores_a_private_session_and_signs_out() {
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::AsyncBufReadExt;
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let (a, _provider, dir) = gate_with_provider().await;
    let session_file = dir.path().join("config/tokengate/session.json");
    let cli = |args: &[&str]| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokengate"));
        c.args(args)
            .env("TOKENGATE_ADMIN_URL", a.gate.admin_url(""))
            .env("TOKENGATE_SESSION_FILE", &session_file)
            .env_remove("TOKENGATE_ADMIN_KEY")
            .env_remove("TOKENGATE_TOKEN")
            .kill_on_drop(true);
        c
    };
    // Not signed in: commands say how to.
    let out = cli(&["token", "list"]).output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tokengate login"), "{out:?}");

    let mut login = cli(&["login"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(login.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("To sign in, open ") {
                return url.split_whitespace().next().unwrap().to_string();
            }
        }
        panic!("login printed no URL");
    })
    .await
    .unwrap();
    let person = tokio::process::Command::new("node")
        .arg("tests/e2e/device_signin.mjs")
        .env("VERIFICATION_URL", &url)
        .env("LOGIN", "alice")
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), person).await.expect("the person signs in").unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let status = tokio::time::timeout(Duration::from_secs(60), login.wait()).await.expect("login finishes").unwrap();
    let mut rest = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push_str(&line);
    }
    assert!(status.success(), "login failed: {rest}");
    assert!(rest.contains("Signed in as alice"), "{rest}");

    // The stored session is the user's alone and holds nothing readable about them but the
    // sealed credential.
    let meta = std::fs::metadata(&session_file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(session_file.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    let stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&session_file).unwrap()).unwrap();
    assert!(stored["session"].as_str().unwrap().starts_with("tgs1."));

    // Commands now act as alice: create a token with her role, list it.
    let out = cli(&["token", "create", "--name", "from-cli", "--expires", "30", "--role", "developer", "--json"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["owner"], "alice");
    let out = cli(&["token", "list"]).output().await.unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("from-cli"));
    // The CLI session is no cookie: it cannot be replayed as one.
    let cookie = format!("tokengate_session={}", stored["session"].as_str().unwrap());
    let r = support::gate::get(&a.gate.admin_url("/v1/session"), &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 401);

    let out = cli(&["logout"]).output().await.unwrap();
    assert!(out.status.success());
    assert!(!session_file.exists());
    let out = cli(&["token", "list"]).output().await.unwrap();
    assert!(!out.status.success(), "signed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_after_the_provider_rotates_its_keys_succeeds() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let (a, provider, _dir) = gate_with_provider().await;
    let run = tokio::process::Command::new("node")
        .arg("tests/e2e/oidc_rotation.mjs")
        .env("ADMIN_URL", a.gate.admin_url(""))
        .env("ISSUER", &provider.issuer)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run).await.expect("the browser test finishes").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("oidc key rotation: signed in with k1 then k2"), "{stdout}");
    // olga's `platform` group made her an operator at sign-in.
    let olga = a.gate.store.get_principal("olga").await.unwrap().unwrap();
    assert_eq!(olga.admin, Some(tokengate::token::AdminRole::Operator));
}

/// Runs tests/e2e/headers_signin.mjs against a gate that trusts identity headers from `peers`.
async fn headers_sign_in(peers: &str, expect_refused: bool) -> String {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let a = Admin::start(&format!(
        "identity:\n  groups:\n    engineering: {{roles: [viewer, developer]}}\n  trusted_headers:\n    peers: [{peers}]\n"
    ))
    .await;
    let run = tokio::process::Command::new("node")
        .arg("tests/e2e/headers_signin.mjs")
        .env("ADMIN_URL", a.gate.admin_url(""))
        .env("PROXY_URL", a.gate.url(""))
        .env("CHROMIUM", &chromium)
        .env("EXPECT_REFUSED", if expect_refused { "1" } else { "" })
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run).await.expect("the browser test finishes").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    if expect_refused {
        assert!(a.gate.store.get_principal("tess").await.unwrap().is_none(), "nobody is created");
    }
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_proxys_headers_sign_people_in_from_its_address_and_are_refused_from_another() {
    assert!(headers_sign_in("127.0.0.1", false).await.contains("headers sign-in: all checks passed"));
    // The browser connects from 127.0.0.1; the configured auth proxy is 10.0.0.7.
    assert!(headers_sign_in("10.0.0.7", true).await.contains("refused from an untrusted peer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_names_another_issuer_is_not_believed() {
    // The provider says it is http://127.0.0.1:PORT; tokengate is told http://localhost:PORT
    // (the same server): discovery must refuse the mismatch rather than sign anyone in.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect = format!("http://{}/auth/callback", listener.local_addr().unwrap());
    let provider = Provider::start(&redirect, "provider-client-secret-0123456789").await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("session-keys");
    std::fs::write(&keys, "session-key-for-the-browser-test-0123456789\n").unwrap();
    let issuer = provider.issuer.replace("127.0.0.1", "localhost");
    let a = Admin::start_bound(
        &format!(
            "identity:\n  oidc:\n    issuer: {issuer}\n    client_id: tokengate\n    redirect_url: {redirect}\n  sessions:\n    keys_file: {}\n",
            keys.display()
        ),
        listener,
    )
    .await;
    let r = support::gate::get(&a.gate.admin_url("/auth/login"), &[]).await;
    assert_eq!(r.status, 502, "{:?}", r.json());
    assert_eq!(r.json()["error"]["code"], "provider_unavailable");
    assert!(r.headers.get("set-cookie").is_none(), "no sign-in was started");
}

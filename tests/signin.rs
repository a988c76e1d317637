//! Signing in without a browser: an auth proxy's trusted headers (believed only from its
//! configured addresses), hostile session credentials, and deactivated people. The browser
//! sign-in through a real OpenID provider is in tests/browser.rs.

mod support;

use bytes::Bytes;
use http::Method;
use serde_json::json;
use support::admin::Admin;
use support::gate::send;

const GROUPS: &str = "identity:
  groups:
    engineering: {roles: [viewer, developer], scopes: [\"env:staging\"]}
    security: {roles: [viewer], admin: auditor}
    platform: {roles: [viewer], admin: operator}
";

fn trusted(peers: &str) -> String {
    format!("{GROUPS}  trusted_headers:\n    peers: [{peers}]\n")
}

async fn as_proxy(
    a: &Admin,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> support::gate::Reply {
    let mut h = headers.to_vec();
    if body.is_some() {
        h.push(("content-type", "application/json"));
    }
    send(method, &a.gate.admin_url(path), &h, body.map_or(Bytes::new(), |b| Bytes::from(b.to_string()))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_headers_sign_people_in_from_the_auth_proxy_only() {
    let a = Admin::start(&trusted("127.0.0.1")).await;
    let tess = [
        ("x-forwarded-user", "tess"),
        ("x-forwarded-email", "tess@example.com"),
        ("x-forwarded-preferred-username", "Tess\tExample"),
        ("x-forwarded-groups", "engineering, unknown"),
    ];
    let r = as_proxy(&a, Method::GET, "/v1/session", &tess, None).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let caller = &r.json()["caller"];
    assert_eq!((caller["id"].as_str(), caller["signed_in_with"].as_str()), (Some("tess"), Some("headers")));
    assert_eq!(caller["roles"], json!(["viewer", "developer"]));
    assert_eq!(caller["scopes"], json!(["env:staging"]));
    let stored = a.gate.store.get_principal("tess").await.unwrap().unwrap();
    assert_eq!(
        (stored.display_name.as_str(), stored.email.as_deref()),
        ("TessExample", Some("tess@example.com")),
        "control characters dropped"
    );

    // Changes need the custom header (a cross-site form cannot send one).
    let create = json!({"name": "via-proxy", "expires_in_days": 30, "roles": ["developer"], "scopes": ["env:staging"]});
    let r = as_proxy(&a, Method::POST, "/v1/tokens", &tess, Some(create.clone())).await;
    assert_eq!(r.status, 403, "{:?}", r.json());
    let with_csrf = [&tess[..], &[("x-csrf-token", "1")]].concat();
    let r = as_proxy(&a, Method::POST, "/v1/tokens", &with_csrf, Some(create.clone())).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let secret = r.json()["token"].as_str().unwrap().to_string();
    let used = support::gate::get(&a.gate.url("/x"), &[("authorization", &format!("Bearer {secret}"))]).await;
    assert_eq!(used.upstream_header("x-auth-subject"), ["tess"]);

    // Two of one identity header (a proxy that appends instead of replacing): refused.
    let twice = [("x-forwarded-user", "evil"), ("x-forwarded-user", "tess")];
    let r = as_proxy(&a, Method::GET, "/v1/session", &twice, None).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["field"].as_str()), (400, Some("x-forwarded-user")));
    let groups_twice =
        [("x-forwarded-user", "tess"), ("x-forwarded-groups", "engineering"), ("x-forwarded-groups", "platform")];
    assert_eq!(as_proxy(&a, Method::GET, "/v1/session", &groups_twice, None).await.status, 400);

    // A person the headers name with a bad id, and a role beyond theirs.
    let r = as_proxy(&a, Method::GET, "/v1/session", &[("x-forwarded-user", "tess example")], None).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["field"].as_str()), (400, Some("x-forwarded-user")));
    let r = as_proxy(
        &a,
        Method::POST,
        "/v1/tokens",
        &with_csrf,
        Some(json!({"name": "x", "expires_in_days": 30, "roles": ["admin"]})),
    )
    .await;
    assert_eq!(r.status, 403);

    // Groups follow the proxy: leaving engineering drops the roles on the next request.
    let moved = [("x-forwarded-user", "tess"), ("x-forwarded-groups", "security")];
    let r = as_proxy(&a, Method::GET, "/v1/session", &moved, None).await;
    assert_eq!(r.json()["caller"]["roles"], json!(["viewer"]));
    assert_eq!(r.json()["caller"]["admin"], "auditor");
    // An auditor reads the audit log and every token, and changes nothing but their own.
    assert_eq!(as_proxy(&a, Method::GET, "/v1/audit", &moved, None).await.status, 200);
    let other = a
        .create(
            support::admin::OPERATOR_KEY,
            json!({"name": "ops", "expires_in_days": 30, "kind": "organization", "owner": "acme"}),
        )
        .await;
    let id = other["id"].as_str().unwrap();
    assert_eq!(as_proxy(&a, Method::GET, &format!("/v1/tokens/{id}"), &moved, None).await.status, 200);
    let moved_csrf = [&moved[..], &[("x-csrf-token", "1")]].concat();
    let r = as_proxy(&a, Method::POST, &format!("/v1/tokens/{id}/revoke"), &moved_csrf, None).await;
    assert_eq!(r.status, 403, "{:?}", r.json());

    // A signed-in operator may do what a key may; a personal token they make is never one.
    let olga = [("x-forwarded-user", "olga"), ("x-forwarded-groups", "platform"), ("x-csrf-token", "1")];
    assert_eq!(as_proxy(&a, Method::GET, "/v1/audit", &olga, None).await.status, 200);
    let r = as_proxy(&a, Method::POST, &format!("/v1/tokens/{id}/revoke"), &olga, None).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let r =
        as_proxy(&a, Method::POST, "/v1/tokens", &olga, Some(json!({"name": "olga-laptop", "expires_in_days": 30})))
            .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let olga_token = r.json()["token"].as_str().unwrap().to_string();
    let r = a.call(Method::GET, "/v1/audit", &olga_token, None).await;
    assert_eq!(r.status, 403, "a leaked personal token is never an operator");

    // A deactivated person is refused, and their personal token with them.
    let mut p = a.gate.store.get_principal("tess").await.unwrap().unwrap();
    p.deactivated = true;
    a.gate.store.put_principal(&p).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(as_proxy(&a, Method::GET, "/v1/session", &tess, None).await.status, 403);
    let used = support::gate::get(&a.gate.url("/x"), &[("authorization", &format!("Bearer {secret}"))]).await;
    assert_eq!(used.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_from_another_peer_are_refused_and_create_nobody() {
    // The auth proxy is 10.0.0.7; the test connects from 127.0.0.1.
    let a = Admin::start(&trusted("10.0.0.7")).await;
    let r = as_proxy(
        &a,
        Method::GET,
        "/v1/session",
        &[("x-forwarded-user", "mallory"), ("x-forwarded-groups", "security")],
        None,
    )
    .await;
    assert_eq!(r.status, 403, "{:?}", r.json());
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("identity.trusted_headers.peers"));
    assert!(a.gate.store.get_principal("mallory").await.unwrap().is_none());
    // Even beside an admin key, forged identity headers are not silently believed.
    let r = as_proxy(&a, Method::GET, "/v1/session", &[("x-forwarded-user", "mallory")], None).await;
    assert_eq!(r.status, 403);
    // Without the headers, the usual credentials still work.
    assert_eq!(a.op(Method::GET, "/v1/session", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_or_foreign_session_credentials_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "a-session-key-of-at-least-32-characters\n").unwrap();
    let a = Admin::start(&format!("{GROUPS}  sessions:\n    keys_file: {}\n", keys.display())).await;
    for credential in [
        "tgs1.",
        "tgs1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "tgs1.%00%00",
        &format!("tgs1.{}", "A".repeat(5000)),
    ] {
        let r = a.call(Method::GET, "/v1/session", credential, None).await;
        assert_eq!(r.status, 401, "{credential:.20}");
        let cookie = format!("tokengate_session={credential}");
        let r = as_proxy(&a, Method::GET, "/v1/session", &[("cookie", &cookie)], None).await;
        assert_eq!(r.status, 401, "cookie {credential:.20}");
    }
    // Two session cookies: neither is guessed at.
    let r = as_proxy(
        &a,
        Method::GET,
        "/v1/session",
        &[("cookie", "tokengate_session=tgs1.a; tokengate_session=tgs1.b")],
        None,
    )
    .await;
    assert_eq!(r.status, 401);
    // No OpenID provider configured: its routes say so.
    let r = as_proxy(&a, Method::GET, "/auth/login", &[], None).await;
    assert_eq!(r.status, 404);
    let r = as_proxy(&a, Method::GET, "/auth/methods", &[], None).await;
    assert_eq!(r.json(), json!({"oidc": false, "login_url": null, "trusted_headers": false}));
    let r = as_proxy(&a, Method::DELETE, "/auth/logout", &[], None).await;
    assert_eq!(r.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_directory_a_provisioned_persons_groups_are_the_directorys() {
    let dir = tempfile::tempdir().unwrap();
    let scim = dir.path().join("scim-token");
    std::fs::write(&scim, "a-scim-token-of-at-least-32-characters-00").unwrap();
    let a = Admin::start(&format!("{}scim:\n  token_file: {}\n", trusted("127.0.0.1"), scim.display())).await;
    // Provisioned by the directory in `engineering`.
    let sam = tokengate::token::Principal {
        id: "sam".into(),
        display_name: "Sam".into(),
        roles: vec!["viewer".into(), "developer".into()],
        groups: vec!["engineering".into()],
        created_at: Some(tokengate::clock::Timestamp::now()),
        ..Default::default()
    };
    a.gate.store.put_principal(&sam).await.unwrap();
    // The auth proxy says `security`: the directory's groups stand.
    let r = as_proxy(
        &a,
        Method::GET,
        "/v1/session",
        &[("x-forwarded-user", "sam"), ("x-forwarded-groups", "security")],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["caller"]["roles"], json!(["viewer", "developer"]));
    assert_eq!(r.json()["caller"]["admin"], json!(null));
    assert_eq!(a.gate.store.get_principal("sam").await.unwrap().unwrap().groups, ["engineering"]);
    // With a directory, people come from it: someone it does not know (or has deleted) is not
    // created by a sign-in.
    let newcomer = [("x-forwarded-user", "newcomer"), ("x-forwarded-groups", "security")];
    let r = as_proxy(&a, Method::GET, "/v1/session", &newcomer, None).await;
    assert_eq!(r.status, 403, "{:?}", r.json());
    assert!(a.gate.store.get_principal("newcomer").await.unwrap().is_none());
    a.gate.store.delete_principal("sam", "test").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let r = as_proxy(&a, Method::GET, "/v1/session", &[("x-forwarded-user", "sam")], None).await;
    assert_eq!(r.status, 403, "a deleted person stays out");
    assert!(a.gate.store.get_principal("sam").await.unwrap().is_none());
}

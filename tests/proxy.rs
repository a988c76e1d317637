//! The data path end to end: tokengate in-process in front of a real echo upstream, on the
//! embedded store. (Redis-backed behaviour: `tests/proxy_redis.rs`; the real binary:
//! `tests/binary.rs`.)

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use tokengate::token::{Action, Principal, TokenKind};

use support::gate::{Gate, bearer, embedded_config, get, send};
use support::upstream::Upstream;
use support::{minter, new_token};
use tokengate::store::Issue as _;

const ROUTES: &str = "
routes:
  - path: /public
    public: true
  - path: /admin
    roles: [admin]
  - path: /deploy/*/prod
    scopes: [env:prod]
";

struct Setup {
    _dir: tempfile::TempDir,
    _upstream: Upstream,
    gate: Gate,
    /// alice: viewer + developer, in org acme.
    personal: String,
    personal_id: String,
    /// An organization token of acme with role admin.
    org: String,
}

async fn setup_with(extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    let gate = Gate::start(&embedded_config(&upstream.url(), dir.path(), &format!("{ROUTES}{extra}"))).await;
    let alice = Principal {
        id: "alice".into(),
        display_name: "Alice".into(),
        org: Some("acme".into()),
        roles: vec!["viewer".into(), "developer".into()],
        limits: Default::default(),
        ..Default::default()
    };
    gate.store.put_principal(&alice).await.unwrap();
    let mut req = new_token(TokenKind::Personal, "laptop", "alice");
    req.roles = vec!["viewer".into(), "developer".into(), "admin".into()];
    req.scopes = vec!["env:prod".parse().unwrap()];
    let (personal, token) = minter().issue(gate.store.as_ref(), &req).await.unwrap();
    let mut req = new_token(TokenKind::Organization, "ci", "acme");
    req.roles = vec!["admin".into()];
    req.scopes = vec!["account".parse().unwrap()];
    let (org, _) = minter().issue(gate.store.as_ref(), &req).await.unwrap();
    Setup {
        _dir: dir,
        _upstream: upstream,
        gate,
        personal: personal.expose().to_string(),
        personal_id: token.id.to_string(),
        org: org.expose().to_string(),
    }
}

async fn setup() -> Setup {
    setup_with("").await
}

fn identity(reply: &support::gate::Reply) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> =
        reply.upstream_headers().into_iter().filter(|(k, _)| k.starts_with("x-auth")).collect();
    h.sort();
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_is_forwarded_with_exactly_the_injected_headers() {
    let s = setup().await;
    let auth = bearer(&s.personal);
    let reply = get(
        &s.gate.url("/api/items?page=2"),
        &[
            ("authorization", &auth),
            ("x-auth-subject", "mallory"),
            ("X-Auth-Subject", "mallory2"),
            ("x_auth_subject", "underscore"),
            ("X-AUTH-ROLES", "admin"),
            ("x-auth-org", "evil"),
            ("x-auth-extra", "1"),
            ("connection", "X-Auth-Subject, x-drop-me"),
            ("x-drop-me", "1"),
            ("x-keep-me", "1"),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let echo = reply.json();
    assert_eq!(echo["target"], "/api/items?page=2");
    assert_eq!(
        identity(&reply),
        vec![
            ("x-auth-org".into(), "acme".into()),
            ("x-auth-roles".into(), "viewer,developer".into()),
            ("x-auth-scopes".into(), "env:prod".into()),
            ("x-auth-subject".into(), "alice".into()),
            ("x-auth-token-id".into(), s.personal_id.clone()),
            ("x-auth-token-kind".into(), "personal".into()),
        ],
        "exactly the injected identity: spoofed, underscored and duplicated ones are gone, and \
         `Connection: X-Auth-Subject` did not drop the injected subject"
    );
    assert!(reply.upstream_header("authorization").is_empty(), "Authorization is not forwarded by default");
    assert!(reply.upstream_header("x-drop-me").is_empty(), "headers named in Connection are removed");
    assert_eq!(reply.upstream_header("x-keep-me"), vec!["1"]);
    assert_eq!(reply.upstream_header("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(reply.upstream_header("x-forwarded-proto"), vec!["http"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organization_tokens_carry_the_organization() {
    let s = setup().await;
    let reply = get(&s.gate.url("/admin/users"), &[("authorization", &bearer(&s.org))]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let h = identity(&reply);
    assert!(h.contains(&("x-auth-subject".into(), "acme".into())));
    assert!(h.contains(&("x-auth-org".into(), "acme".into())));
    assert!(h.contains(&("x-auth-token-kind".into(), "organization".into())));
    assert!(h.contains(&("x-auth-roles".into(), "admin".into())));
}

async fn assert_refused(reply: support::gate::Reply, status: u16, www: Option<&str>, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "{:?}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.headers.get("www-authenticate").map(|v| v.to_str().unwrap()), www);
    assert_eq!(reply.json()["error"], code);
    assert_eq!(reply.headers["content-type"], "application/json");
}

const INVALID_TOKEN: &str = r#"Bearer realm="tokengate", error="invalid_token", error_description="The access token is invalid, expired or revoked.""#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_pinned_response() {
    let s = setup().await;
    let url = s.gate.url("/api");

    // No credentials, or not a bearer credential.
    assert_refused(get(&url, &[]).await, 401, Some(r#"Bearer realm="tokengate""#), "missing_credentials").await;
    assert_refused(
        get(&url, &[("authorization", "Basic YTpi")]).await,
        401,
        Some(r#"Bearer realm="tokengate""#),
        "missing_credentials",
    )
    .await;

    // Malformed requests.
    let two = [("authorization", bearer(&s.personal)), ("authorization", bearer(&s.org))];
    let two: Vec<(&str, &str)> = two.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = get(&url, &two).await;
    assert_eq!(r.status, 400);
    assert!(r.headers["www-authenticate"].to_str().unwrap().contains(r#"error="invalid_request""#));
    assert_eq!(r.json()["error"], "invalid_request");
    assert_eq!(get(&url, &[("authorization", "Bearer ")]).await.status, 400);
    let in_query = format!("{url}?access_token={}", s.personal);
    let r = get(&in_query, &[]).await;
    assert_eq!(r.status, 400);
    assert!(!String::from_utf8_lossy(&r.body).contains(&s.personal), "the token is never echoed");

    // Invalid tokens: one generic answer whatever the reason.
    let (_, unknown) = tokengate::token::TokenFormat::default().generate(TokenKind::Personal);
    let forged = tokengate::token::TokenFormat::default()
        .generate_with_id(TokenKind::Personal, tokengate::token::TokenId::parse(&s.personal_id).unwrap());
    let mut bodies = Vec::new();
    for presented in
        ["garbage".to_string(), format!("{}x", s.personal), unknown.expose().to_string(), forged.expose().to_string()]
    {
        let r = get(&url, &[("authorization", &bearer(&presented))]).await;
        bodies.push(r.body.clone());
        assert!(!String::from_utf8_lossy(&r.body).contains(&presented));
        assert_refused(r, 401, Some(INVALID_TOKEN), "invalid_token").await;
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "the reason is not revealed");

    // Missing role, missing scope.
    let personal = bearer(&s.personal);
    let r = get(&s.gate.url("/admin/x"), &[("authorization", &personal)]).await;
    assert_eq!(r.status, 403, "admin role on the token, but alice no longer holds it");
    assert!(r.headers["www-authenticate"].to_str().unwrap().contains(r#"error="insufficient_scope""#));
    assert_eq!(get(&s.gate.url("/deploy/api/prod"), &[("authorization", &personal)]).await.status, 200);
    let mut req = new_token(TokenKind::Personal, "staging only", "alice");
    req.scopes = vec!["env:staging".parse().unwrap()];
    let (staging, _) = minter().issue(s.gate.store.as_ref(), &req).await.unwrap();
    let r = get(&s.gate.url("/deploy/api/prod"), &[("authorization", &bearer(staging.expose()))]).await;
    assert_eq!(r.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_changes_take_effect_on_the_next_request() {
    let s = setup().await;
    let auth = bearer(&s.personal);
    let url = s.gate.url("/api");
    let id = tokengate::token::TokenId::parse(&s.personal_id).unwrap();
    assert_eq!(get(&url, &[("authorization", &auth)]).await.status, 200);

    s.gate.store.transition(&id, Action::Suspend, "op").await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_refused(get(&url, &[("authorization", &auth)]).await, 401, Some(INVALID_TOKEN), "invalid_token").await;
    s.gate.store.transition(&id, Action::Activate, "op").await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(get(&url, &[("authorization", &auth)]).await.status, 200);

    // Demoting the owner changes what the token grants; deleting the owner stops it.
    let demoted = Principal {
        id: "alice".into(),
        display_name: "A".into(),
        org: Some("acme".into()),
        roles: vec!["viewer".into()],
        limits: Default::default(),
        ..Default::default()
    };
    s.gate.store.put_principal(&demoted).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(get(&url, &[("authorization", &auth)]).await.upstream_header("x-auth-roles"), vec!["viewer"]);
    // Deactivating the owner (SCIM `active: false`) stops the token and keeps it; reactivating
    // brings it back.
    s.gate.store.put_principal(&Principal { deactivated: true, ..demoted.clone() }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_refused(get(&url, &[("authorization", &auth)]).await, 401, Some(INVALID_TOKEN), "invalid_token").await;
    assert_eq!(get(&url, &[("authorization", &bearer(&s.org))]).await.status, 200, "org tokens keep working");
    s.gate.store.put_principal(&demoted).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(get(&url, &[("authorization", &auth)]).await.status, 200);
    s.gate.store.delete_principal("alice", "operator").await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(get(&url, &[("authorization", &auth)]).await.status, 401);
    assert_eq!(get(&url, &[("authorization", &bearer(&s.org))]).await.status, 200, "org tokens keep working");

    s.gate.store.transition(&id, Action::Revoke, "op").await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(get(&url, &[("authorization", &auth)]).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_refused() {
    let s = setup().await;
    let mut req = new_token(TokenKind::Organization, "short", "acme");
    req.lifetime = Duration::from_secs(2);
    let (short, _) = minter().issue(s.gate.store.as_ref(), &req).await.unwrap();
    let auth = bearer(short.expose());
    assert_eq!(get(&s.gate.url("/api"), &[("authorization", &auth)]).await.status, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_refused(
        get(&s.gate.url("/api"), &[("authorization", &auth)]).await,
        401,
        Some(INVALID_TOKEN),
        "invalid_token",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_routes_need_no_token_but_still_lose_spoofed_identity() {
    let s = setup().await;
    let r = get(&s.gate.url("/public/docs"), &[("x-auth-subject", "mallory"), ("X_Auth_Roles", "admin")]).await;
    assert_eq!(r.status, 200);
    assert!(identity(&r).is_empty(), "{:?}", identity(&r));

    // Paths that only look public are normalized first and refused without a token.
    for path in ["/public/../admin", "/public/%2e%2e/admin", "/public/.%2E/admin", "//public/..//admin"] {
        let r = get(&s.gate.url(path), &[]).await;
        assert_eq!(r.status, 401, "{path}");
    }
    // Both rules and upstream see the normalized path.
    let r = get(&s.gate.url("/public/a/../b//c"), &[]).await;
    assert_eq!(r.json()["target"], "/public/b/c");
    // Ambiguous encodings are refused.
    for path in ["/public%2F..%2Fadmin", "/public/a%5Cb", "/public/%zz"] {
        let r = get(&s.gate.url(path), &[]).await;
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.json()["error"], "invalid_request");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_map_to_502_and_504() {
    let dir = tempfile::tempdir().unwrap();
    let closed = support::free_port();
    let gate = Gate::start(&embedded_config(&format!("http://127.0.0.1:{closed}"), dir.path(), "")).await;
    let (org, _) =
        minter().issue(gate.store.as_ref(), &new_token(TokenKind::Organization, "ci", "acme")).await.unwrap();
    let auth = bearer(org.expose());
    assert_refused(get(&gate.url("/x"), &[("authorization", &auth)]).await, 502, None, "bad_gateway").await;

    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gate =
        Gate::start(&embedded_config(&upstream.url(), dir.path(), "proxy:\n  upstream_response_timeout: 200ms\n"))
            .await;
    let (org, _) =
        minter().issue(gate.store.as_ref(), &new_token(TokenKind::Organization, "ci", "acme")).await.unwrap();
    let auth = bearer(org.expose());
    assert_refused(get(&gate.url("/slow?ms=1000"), &[("authorization", &auth)]).await, 504, None, "gateway_timeout")
        .await;
    assert_eq!(get(&gate.url("/slow?ms=10"), &[("authorization", &auth)]).await.status, 200);
    // Upstream error statuses pass through untouched.
    assert_eq!(get(&gate.url("/status/503"), &[("authorization", &auth)]).await.status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_431() {
    let s = setup_with("proxy:\n  max_header_bytes: 8192\n").await;
    let big = "x".repeat(10_000);
    let r = get(&s.gate.url("/api"), &[("authorization", &bearer(&s.org)), ("x-big", &big)]).await;
    assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // Many smaller headers adding up count too.
    let many: Vec<(String, String)> = (0..40).map(|i| (format!("x-h{i}"), "y".repeat(250))).collect();
    let mut headers: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let auth = bearer(&s.org);
    headers.push(("authorization", &auth));
    assert_eq!(get(&s.gate.url("/api"), &headers).await.status, 431);
    assert_eq!(get(&s.gate.url("/api"), &[("authorization", &auth)]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_authorization_can_be_enabled() {
    let s = setup_with("proxy:\n  forward_authorization: true\n  x_forwarded: set\n").await;
    let auth = bearer(&s.org);
    let r = get(&s.gate.url("/api"), &[("authorization", &auth), ("x-forwarded-for", "6.6.6.6")]).await;
    assert_eq!(r.upstream_header("authorization"), vec![auth]);
    assert_eq!(r.upstream_header("x-forwarded-for"), vec!["127.0.0.1"], "set mode replaces client values");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_both_ways() {
    let s = setup().await;
    let auth = bearer(&s.org);
    // 32 MiB up: the upstream counts what arrives.
    let chunk = Bytes::from(vec![7u8; 1024 * 1024]);
    let stream = futures_util::stream::iter(
        (0..32).map(move |_| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(chunk.clone()))),
    );
    let client: hyper_util::client::legacy::Client<_, http_body_util::StreamBody<_>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let req = http::Request::builder()
        .method(Method::POST)
        .uri(s.gate.url("/upload"))
        .header("authorization", &auth)
        .body(http_body_util::StreamBody::new(stream))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["body_len"], 32 * 1024 * 1024);

    // 32 MiB down.
    let r = send(Method::GET, &s.gate.url("/download?bytes=33554432"), &[("authorization", &auth)], Bytes::new()).await;
    assert_eq!(r.body.len(), 32 * 1024 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_pass_through_after_authentication() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

    let s = setup().await;
    let url = format!("ws://{}/ws", s.gate.addr);
    let mut request = url.clone().into_client_request().unwrap();
    request.headers_mut().insert("authorization", bearer(&s.org).parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), 101);
    for text in ["hello", "through", "tokengate"] {
        ws.send(Message::text(text)).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
    }
    ws.close(None).await.unwrap();

    // Without a token the upgrade is refused before reaching the upstream.
    let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 401),
        other => panic!("expected an HTTP 401, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_is_served() {
    let s = setup().await;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).http2_only(true).build_http();
    let req = http::Request::builder()
        .uri(s.gate.url("/api/h2"))
        .header("authorization", bearer(&s.personal))
        .header("x-auth-subject", "mallory")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let headers: Vec<(String, String)> = serde_json::from_value(echo["headers"].clone()).unwrap();
    assert!(headers.contains(&("x-auth-subject".into(), "alice".into())));
    assert!(!headers.iter().any(|(_, v)| v == "mallory"));
    assert!(headers.iter().any(|(k, v)| k == "host" && v.starts_with("127.0.0.1:")), "authority kept as Host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_used_is_recorded_off_the_request_path_and_flushed_on_shutdown() {
    let s = setup_with("last_used:\n  flush_interval: 1h\n").await;
    let id = tokengate::token::TokenId::parse(&s.personal_id).unwrap();
    for _ in 0..20 {
        assert_eq!(get(&s.gate.url("/api"), &[("authorization", &bearer(&s.personal))]).await.status, 200);
    }
    assert_eq!(s.gate.store.get(&id).await.unwrap().unwrap().last_used_at, None, "nothing written yet");
    let store = s.gate.store.clone();
    s.gate.stop().await;
    let token = store.get(&id).await.unwrap().unwrap();
    assert!(token.last_used_at.is_some(), "flushed on shutdown");
    assert_eq!(token.last_used_from.as_deref(), Some("127.0.0.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_port_serves_health_readiness_and_metrics() {
    let s = setup().await;
    assert_eq!(get(&s.gate.admin_url("/healthz"), &[]).await.status, 200);
    let ready = get(&s.gate.admin_url("/readyz"), &[]).await;
    assert_eq!((ready.status.as_u16(), ready.json()["status"].as_str()), (200, Some("ready")));
    get(&s.gate.url("/api"), &[("authorization", &bearer(&s.org))]).await;
    get(&s.gate.url("/api"), &[("authorization", "Bearer nope")]).await;
    let metrics = String::from_utf8(get(&s.gate.admin_url("/metrics"), &[]).await.body.to_vec()).unwrap();
    for line in [
        "tokengate_requests_total{outcome=\"forwarded\"} 1",
        "tokengate_requests_total{outcome=\"invalid_token\"} 1",
        "tokengate_token_rejections_total{reason=\"malformed\"} 1",
        "tokengate_upstream_responses_total{class=\"2xx\"} 1",
        "tokengate_open_connections",
        "tokengate_auth_duration_seconds_count 1",
        "tokengate_cache_lookups_total{result=\"miss\"}",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    assert!(!metrics.contains(&s.org) && !metrics.contains(&s.personal_id), "no token material in metrics");
    assert_eq!(get(&s.gate.admin_url("/nope"), &[]).await.status, 404);
    assert_eq!(send(Method::POST, &s.gate.admin_url("/healthz"), &[], Bytes::new()).await.status, 405);
    // The proxy port never serves the admin endpoints: /metrics there is just an upstream path.
    assert_eq!(get(&s.gate.url("/metrics"), &[]).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_by_the_header_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = setup_with("proxy:\n  header_read_timeout: 300ms\n").await;
    let mut slow = tokio::net::TcpStream::connect(s.gate.addr).await.unwrap();
    slow.write_all(b"GET /api HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was closed");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(3), "closed after {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_closes_an_idle_connection_to_serve_a_new_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = setup_with("proxy:\n  max_connections: 1\n").await;
    let mut first = tokio::net::TcpStream::connect(s.gate.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut second = tokio::net::TcpStream::connect(s.gate.addr).await.unwrap();
    let request =
        format!("GET /api HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n", s.org);
    second.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), second.read(&mut buf)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&buf[..n]));
    let closed = tokio::time::timeout(Duration::from_secs(1), first.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the idle first connection made room: {closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_websockets_are_drained_up_to_the_deadline_on_shutdown() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

    let s = setup_with("shutdown:\n  drain_timeout: 600ms\n").await;
    let mut request = format!("ws://{}/ws", s.gate.addr).into_client_request().unwrap();
    request.headers_mut().insert("authorization", bearer(&s.org).parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let started = std::time::Instant::now();
    let stopping = tokio::spawn(s.gate.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    ws.send(Message::text("still here")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("still here"), "tunnels keep working while draining");
    stopping.await.unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(500) && took < Duration::from_secs(5), "shutdown waited {took:?}");
}

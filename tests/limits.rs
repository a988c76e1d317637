//! Per-token limits end to end, over real sockets: a rate limit (429 with Retry-After and the
//! IETF RateLimit fields), a quota (403 once used up), allowed networks (403 elsewhere, with
//! `X-Forwarded-For` believed only from trusted proxies), bad limits refused at creation with
//! nothing stored, the store-outage modes, and two replicas sharing one limit through Redis.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};

use support::RedisServer;
use support::admin::{Admin, OPERATOR_KEY};
use support::gate::{Gate, Reply, bearer, get, redis_config};
use support::upstream::Upstream;

fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.headers.get(name).map_or("", |v| v.to_str().unwrap())
}

async fn metered(a: &Admin, limits: Value) -> String {
    a.principal("alice", None, &["viewer"]).await;
    let created = a
        .create(OPERATOR_KEY, json!({"name": "metered", "expires_in_days": 30, "owner": "alice", "limits": limits}))
        .await;
    assert_eq!(created["limits"], limits, "the view shows the limits as set");
    created["token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_token_gets_429_with_the_ratelimit_fields() {
    let a = Admin::start("").await;
    let secret = metered(&a, json!({"rate": {"requests": 5, "window_secs": 1}})).await;
    let auth = bearer(&secret);
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..8 {
        let r = get(&a.gate.url("/x"), &[("authorization", &auth)]).await;
        statuses.push(r.status.as_u16());
        if r.status == 200 {
            assert_eq!(header(&r, "ratelimit-policy"), r#""token";q=5;w=1"#);
            assert!(header(&r, "ratelimit").starts_with(r#""token";r="#), "{:?}", r.headers);
        }
        last = Some(r);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    let refused = last.unwrap();
    assert_eq!(refused.json()["error"], "rate_limited");
    assert_eq!(header(&refused, "retry-after"), "1");
    assert_eq!(header(&refused, "ratelimit-policy"), r#""token";q=5;w=1"#);
    assert_eq!(header(&refused, "ratelimit"), r#""token";r=0;t=1"#);
    // One permit frees up every 200 ms.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(get(&a.gate.url("/x"), &[("authorization", &auth)]).await.status, 200);
    let metrics = String::from_utf8_lossy(&get(&a.gate.admin_url("/metrics"), &[]).await.body).to_string();
    assert!(metrics.contains(r#"tokengate_limit_refusals_total{limit="rate"} 3"#), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_is_used_up_for_good() {
    let a = Admin::start("").await;
    let secret = metered(&a, json!({"quota": 3})).await;
    let auth = bearer(&secret);
    for _ in 0..3 {
        assert_eq!(get(&a.gate.url("/x"), &[("authorization", &auth)]).await.status, 200);
    }
    let r = get(&a.gate.url("/x"), &[("authorization", &auth)]).await;
    assert_eq!((r.status.as_u16(), r.json()["error"].as_str()), (403, Some("quota_exhausted")));
    assert_eq!(header(&r, "ratelimit-policy"), r#""quota";q=3"#);
    assert!(r.headers.get("retry-after").is_none(), "waiting does not help");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_networks_trust_forwarded_addresses_only_from_trusted_proxies() {
    // The test client is 127.0.0.1. Without trusted proxies, X-Forwarded-For is ignored.
    let a = Admin::start("").await;
    let secret = metered(&a, json!({"networks": ["10.0.0.0/8"]})).await;
    let auth = bearer(&secret);
    let r = get(&a.gate.url("/x"), &[("authorization", &auth), ("x-forwarded-for", "10.1.2.3")]).await;
    assert_eq!((r.status.as_u16(), r.json()["error"].as_str()), (403, Some("network_not_allowed")));

    // Behind a trusted proxy (127.0.0.1), the rightmost untrusted forwarded address counts.
    let b = Admin::start("proxy:\n  trusted_proxies: [127.0.0.1]\n").await;
    let secret = metered(&b, json!({"networks": ["10.0.0.0/8", "2001:db8::/32"]})).await;
    // Whole numbers written as floats and single addresses are read as such.
    let r = b
        .op(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "n", "expires_in_days": 30, "owner": "alice", "limits": {"quota": 5.0, "networks": ["10.1.2.3"]}})),
        )
        .await;
    assert_eq!(r.json()["limits"], json!({"quota": 5, "networks": ["10.1.2.3/32"]}));
    let auth = bearer(&secret);
    for (xff, status) in [
        ("10.1.2.3", 200),
        ("2001:db8::7", 200),
        // What the client prepended itself is not believed.
        ("10.1.2.3, 203.0.113.9", 403),
        ("203.0.113.9", 403),
        ("not-an-address", 403),
    ] {
        let r = get(&b.gate.url("/x"), &[("authorization", &auth), ("x-forwarded-for", xff)]).await;
        assert_eq!(r.status.as_u16(), status, "{xff}");
    }
    assert_eq!(get(&b.gate.url("/x"), &[("authorization", &auth)]).await.status, 403, "the proxy itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_limits_are_refused_at_creation_and_nothing_is_stored() {
    let a = Admin::start("").await;
    a.principal("alice", None, &["viewer"]).await;
    let before = a.snapshot().await;
    for (limits, expected) in [
        (json!({"rate": {"requests": 0, "window_secs": 1}}), "rate.requests"),
        (json!({"rate": {"requests": 10, "window_secs": 0}}), "rate.window_secs"),
        (json!({"rate": {"requests": 10, "window_secs": 1, "burst": 1_000_001}}), "rate.burst"),
        (json!({"rate": {"requests": -1, "window_secs": 1}}), "limits"),
        (json!({"rate": {"requests": 10}}), "window_secs"),
        (json!({"quota": 0}), "quota"),
        (json!({"quota": "lots"}), "limits"),
        (json!({"networks": ["10.0.0.0/33"]}), "limits"),
        (json!({"networks": ["example.com"]}), "limits"),
        (json!({"networks": "10.0.0.0/8"}), "limits"),
        (json!({"rates": {}}), "limits"),
        (json!(null), "limits"),
        (json!([]), "limits"),
        (json!({"rate": [5, 1]}), "limits.rate"),
        (json!({"quota": null}), "limits.quota"),
        (json!({"quota": 1.5}), "limits.quota"),
        (json!({"rate": {"requests": 10, "window_secs": 1, "burst": 10_055_236_233_077_882_880u64}}), "burst"),
    ] {
        let r = a
            .op(
                Method::POST,
                "/v1/tokens",
                Some(json!({"name": "bad", "expires_in_days": 30, "owner": "alice", "limits": limits})),
            )
            .await;
        assert_eq!(r.status, 400, "{limits}: {:?}", r.json());
        let text = r.json().to_string();
        assert!(text.contains(expected), "{limits}: {text}");
    }
    // A positional array is not a body serde should read as an object.
    let r = a.op(Method::POST, "/v1/tokens", Some(json!(["bad", 30]))).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["error"]["message"].as_str()),
        (400, Some("the body must be a JSON object"))
    );
    assert_eq!(a.snapshot().await, before, "nothing stored");
}

/// The limiter's store calls fail: `open` (the default) lets the request through and counts
/// it; `closed` answers 503 with Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_fails_open_or_closed_as_configured() {
    for (mode, expected) in [("open", 200), ("closed", 503)] {
        let redis = RedisServer::start();
        let upstream = Upstream::start().await;
        let extra = format!("proxy:\n  token_limits_on_store_error: {mode}\ncache:\n  max_staleness: 60s\n");
        let gate = Gate::start(&redis_config(&upstream.url(), &redis.url(), &extra)).await;
        let limits = tokengate::token::limits::TokenLimits {
            rate: Some(tokengate::token::limits::RateLimit { requests: 1000, window_secs: 1, burst: Some(1) }),
            ..Default::default()
        };
        let mut request = support::new_token(tokengate::token::TokenKind::Organization, "m", "acme");
        request.limits = limits;
        use tokengate::store::Issue as _;
        let (secret, _) = support::minter().issue(gate.store.as_ref(), &request).await.unwrap();
        let auth = bearer(secret.expose());
        assert_eq!(get(&gate.url("/x"), &[("authorization", &auth)]).await.status, 200);
        redis.pause();
        // The token itself is still served from the cache (max_staleness); the permit is not.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let r = get(&gate.url("/x"), &[("authorization", &auth)]).await;
        redis.resume();
        assert_eq!(r.status.as_u16(), expected, "{mode}");
        if expected == 503 {
            assert!(r.headers.contains_key("retry-after"));
        }
        let metrics = String::from_utf8_lossy(&get(&gate.admin_url("/metrics"), &[]).await.body).to_string();
        assert!(metrics.contains("tokengate_limit_store_errors_total"), "{metrics}");
    }
}

/// Two replicas on one Redis, one token limited to 100 requests a second, 1,000 requests a
/// second offered, split across both: the accepted rate stays within 5 % of 100 a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_rate_limit() {
    let redis = RedisServer::start();
    let upstream = Upstream::start().await;
    let config = redis_config(&upstream.url(), &redis.url(), "");
    let (a, b) = (Gate::start(&config).await, Gate::start(&config).await);
    let mut request = support::new_token(tokengate::token::TokenKind::Organization, "shared", "acme");
    request.limits = tokengate::token::limits::TokenLimits {
        rate: Some(tokengate::token::limits::RateLimit { requests: 100, window_secs: 1, burst: Some(10) }),
        ..Default::default()
    };
    use tokengate::store::Issue as _;
    let (secret, _) = support::minter().issue(a.store.as_ref(), &request).await.unwrap();
    let auth = Arc::new(bearer(secret.expose()));

    // 20 clients, each 50 requests a second, alternating replicas; accepted requests counted
    // after the first second (which includes the burst).
    let (seconds, warmup) = (6u64, Duration::from_secs(1));
    let accepted = Arc::new(AtomicUsize::new(0));
    let offered = Arc::new(AtomicUsize::new(0));
    let start = Instant::now() + Duration::from_millis(100);
    let urls = [a.url("/x"), b.url("/x")];
    let mut clients = Vec::new();
    for c in 0..20u64 {
        let (auth, accepted, offered, url) =
            (auth.clone(), accepted.clone(), offered.clone(), urls[c as usize % 2].clone());
        clients.push(tokio::spawn(async move {
            let first = start + Duration::from_micros(c * 1000);
            let mut tick = tokio::time::interval_at(first.into(), Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            while start.elapsed() < Duration::from_secs(seconds) {
                tick.tick().await;
                let status = get(&url, &[("authorization", &auth)]).await.status.as_u16();
                assert!(status == 200 || status == 429, "{status}");
                if start.elapsed() >= warmup {
                    offered.fetch_add(1, Ordering::Relaxed);
                    if status == 200 {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let window = (seconds - 1) as f64;
    let (accepted, offered) =
        (accepted.load(Ordering::Relaxed) as f64 / window, offered.load(Ordering::Relaxed) as f64 / window);
    println!("two replicas, limit 100/s: offered {offered:.0}/s, accepted {accepted:.1}/s");
    assert!(offered > 800.0, "the test could not offer enough load: {offered:.0}/s");
    assert!((95.0..=105.0).contains(&accepted), "accepted {accepted:.1}/s for a limit of 100/s");
}

/// `PUT /v1/tokens/{id}/limits`: operators set anything and it applies at once; people stay
/// within their own limits (set on their principal by an operator), when editing and when
/// creating, so a limit cannot be shed by minting a new token; bad bodies and other people's
/// tokens are refused with nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_edited_by_operators_and_by_people_within_their_own() {
    let a = Admin::start("").await;
    let cap = json!({"quota": 5, "rate": {"requests": 10, "window_secs": 1}});
    let r = a
        .op(
            Method::PUT,
            "/v1/principals/alice",
            Some(json!({"display_name": "Alice", "roles": ["viewer"], "limits": cap})),
        )
        .await;
    assert_eq!((r.status.as_u16(), &r.json()["limits"]), (200, &cap));
    a.principal("bob", None, &["viewer"]).await;
    let create = |owner: &str| json!({"name": format!("{owner}-token"), "expires_in_days": 30, "owner": owner});
    let alice = a.create(OPERATOR_KEY, create("alice")).await;
    let bob = a.create(OPERATOR_KEY, create("bob")).await;
    let (alice_secret, alice_id) = (alice["token"].as_str().unwrap(), alice["id"].as_str().unwrap());
    let path = format!("/v1/tokens/{alice_id}/limits");

    // An operator sets a quota of 2 (beyond alice's own cap: operators may); it applies at once.
    let r = a.op(Method::PUT, &path, Some(json!({"quota": 2, "rate": {"requests": 100, "window_secs": 1}}))).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["limits"]["quota"], 2);
    let auth = bearer(alice_secret);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(get(&a.gate.url("/x"), &[("authorization", &auth)]).await.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 403]);
    let audit = a.op(Method::GET, "/v1/audit?limit=1", None).await.json();
    assert_eq!(audit["events"][0]["action"], "limits");

    // Alice (signed in with her own token) may set anything within her own limits...
    for within in [json!({"quota": 1, "rate": {"requests": 5, "window_secs": 1}}), cap.clone()] {
        let r = a.call(Method::PUT, &path, alice_secret, Some(within.clone())).await;
        assert_eq!(r.status, 200, "{within}: {:?}", r.json());
    }
    // ...and nothing beyond them, nor a new token beyond them; a new token gets them by default.
    let before = a.snapshot().await;
    for looser in [json!({}), json!({"quota": 6, "rate": {"requests": 10, "window_secs": 1}}), json!({"quota": 1})] {
        let r = a.call(Method::PUT, &path, alice_secret, Some(looser.clone())).await;
        assert_eq!((r.status.as_u16(), r.json()["error"]["code"].as_str()), (403, Some("forbidden")), "{looser}");
        assert!(r.json()["error"]["message"].as_str().unwrap().contains("quota 5"), "{:?}", r.json());
        let body = json!({"name": "more", "expires_in_days": 30, "limits": looser});
        assert_eq!(a.call(Method::POST, "/v1/tokens", alice_secret, Some(body)).await.status, 403);
    }
    // Someone else's token: not found (existence is not revealed).
    let bob_path = format!("/v1/tokens/{}/limits", bob["id"].as_str().unwrap());
    assert_eq!(a.call(Method::PUT, &bob_path, alice_secret, Some(json!({"quota": 1}))).await.status, 404);
    // Bad bodies and paths.
    for (body, field) in [
        (json!({"quota": 0}), "limits"),
        (json!({"rate": {"requests": 1}}), "rate"),
        (json!({"networks": ["10.0.0.0/40"]}), "networks"),
        (json!({"unknown": 1}), "unknown"),
        (json!([]), ""),
    ] {
        let r = a.op(Method::PUT, &path, Some(body.clone())).await;
        assert_eq!(r.status, 400, "{body}: {:?}", r.json());
        assert!(r.json().to_string().contains(field), "{body}: {:?}", r.json());
    }
    assert_eq!(a.op(Method::PUT, "/v1/tokens/ZZZZZZZZZZZZ/limits", Some(json!({}))).await.status, 404);
    let r = a.op(Method::PUT, &path, None).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["message"].as_str()), (400, Some("a JSON body is required")));
    assert_eq!(a.op(Method::GET, &path, None).await.status, 405);
    assert_eq!(a.snapshot().await, before, "nothing changed by the refused calls");
    assert_eq!(a.op(Method::GET, &format!("/v1/tokens/{alice_id}"), None).await.json()["limits"], cap);
    let made = a.create(alice_secret, json!({"name": "default", "expires_in_days": 30})).await;
    assert_eq!(made["limits"], cap, "a person's new token gets their own limits");
}

/// Sends `prefix` and then a request with `token` over a raw connection to `addr`; returns the
/// response's status line, or "" when the connection was closed without one.
async fn raw_request(addr: std::net::SocketAddr, prefix: &[u8], token: &str, split: bool) -> String {
    raw_request_with(addr, prefix, token, split, "").await
}

/// [`raw_request`] with `extra` header lines (each ending in `\r\n`).
async fn raw_request_with(addr: std::net::SocketAddr, prefix: &[u8], token: &str, split: bool, extra: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    if split && prefix.len() > 10 {
        s.write_all(&prefix[..10]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.write_all(&prefix[10..]).await.unwrap();
    } else {
        s.write_all(prefix).await.unwrap();
    }
    let request =
        format!("GET /x HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n{extra}Connection: close\r\n\r\n");
    let _ = s.write_all(request.as_bytes()).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).lines().next().unwrap_or_default().to_string()
}

/// Behind a load balancer speaking the PROXY protocol (v1 or v2), the client address is the
/// one in the header, believed only from `proxy.trusted_proxies`; a connection without a valid
/// header is closed unanswered; the admin port does not take the protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_headers_give_the_client_address_only_from_trusted_balancers() {
    let v1 = |ip: &str| format!("PROXY TCP4 {ip} 10.0.0.1 5555 8080\r\n").into_bytes();
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend([0x21, 0x11, 0, 12, 203, 0, 113, 9, 10, 0, 0, 1, 0x15, 0xb3, 0x1f, 0x90]);

    let a = Admin::start("proxy:\n  proxy_protocol: true\n  trusted_proxies: [127.0.0.1]\n").await;
    let secret = metered(&a, json!({"networks": ["203.0.113.0/24"]})).await;
    let addr = a.gate.addr;
    assert!(raw_request(addr, &v1("203.0.113.7"), &secret, false).await.contains(" 200 "));
    assert!(raw_request(addr, &v1("203.0.113.7"), &secret, true).await.contains(" 200 "), "a split header");
    assert!(raw_request(addr, &v2, &secret, false).await.contains(" 200 "), "v2");
    assert!(raw_request(addr, &v1("198.51.100.1"), &secret, false).await.contains(" 403 "));
    assert_eq!(raw_request(addr, b"", &secret, false).await, "", "no header: closed unanswered");
    assert_eq!(raw_request(addr, b"PROXY TCP4 nonsense\r\n", &secret, false).await, "");
    assert_eq!(raw_request(addr, b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n", &secret, false).await, "");
    assert_eq!(get(&a.gate.admin_url("/healthz"), &[]).await.status, 200, "the admin port is plain HTTP");

    // A client the balancer named (even one inside the trusted networks) cannot rename itself
    // with X-Forwarded-For.
    let c = Admin::start("proxy:\n  proxy_protocol: true\n  trusted_proxies: [127.0.0.1, 10.0.0.0/8]\n").await;
    let secret = metered(&c, json!({"networks": ["203.0.113.0/24"]})).await;
    let status =
        raw_request_with(c.gate.addr, &v1("10.9.9.9"), &secret, false, "X-Forwarded-For: 203.0.113.5\r\n").await;
    assert!(status.contains(" 403 "), "{status}");

    // From a peer that is not a trusted balancer, the header is read and ignored.
    let b = Admin::start("proxy:\n  proxy_protocol: true\n  trusted_proxies: [192.0.2.1]\n").await;
    let secret = metered(&b, json!({"networks": ["203.0.113.0/24"]})).await;
    assert!(raw_request(b.gate.addr, &v1("203.0.113.7"), &secret, false).await.contains(" 403 "));
}

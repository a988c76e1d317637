//! The admin API end to end: every endpoint, every error row (with stored data checked
//! unchanged after each failure), permissions, and webhooks. Responses are checked against
//! `docs/openapi.yaml` by `tests/openapi.rs`.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use support::admin::{Admin, OPERATOR_KEY};
use support::gate::{Reply, bearer, get, send};

fn error_code(r: &Reply) -> String {
    r.json()["error"]["code"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_lifecycle_through_the_api() {
    let a = Admin::start("").await;
    a.principal("alice", Some("acme"), &["viewer", "developer"]).await;
    let created = a
        .create(OPERATOR_KEY, json!({"name": "  ci-deploy  ", "expires_in_days": 90, "owner": "alice", "roles": ["developer"], "scopes": ["env:prod"]}))
        .await;
    let secret = created["token"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["name"], "ci-deploy", "names are trimmed");
    assert_eq!(created["authorization_header"], format!("Bearer {secret}"));
    assert_eq!(created["display"], format!("tgp_{}...", &id[..8]));
    assert_eq!(
        (created["status"].as_str(), created["kind"].as_str(), created["created_by"].as_str()),
        (Some("active"), Some("personal"), Some("key:ops"))
    );
    assert!(created["last_used_at"].is_null());
    assert!(created.get("digest").is_none());
    let expires = humantime::parse_rfc3339(created["expires_at"].as_str().unwrap()).unwrap();
    let in_days = expires.duration_since(std::time::SystemTime::now()).unwrap().as_secs() as f64 / 86_400.0;
    assert!((89.9..=90.0).contains(&in_days), "{in_days}");

    // The new token works through the proxy.
    assert_eq!(get(&a.gate.url("/x"), &[("authorization", &bearer(&secret))]).await.status, 200);

    // Read it back: never the secret again.
    let shown = a.op(Method::GET, &format!("/v1/tokens/{id}"), None).await;
    assert_eq!(shown.status, 200);
    let text = String::from_utf8_lossy(&shown.body).to_string();
    assert!(!text.contains(&secret[16..]) && !text.contains("digest"));
    let listed = a.op(Method::GET, "/v1/tokens", None).await;
    assert!(!String::from_utf8_lossy(&listed.body).contains(&secret[16..]));

    for (action, status) in [("suspend", "suspended"), ("activate", "active"), ("revoke", "revoked")] {
        let r = a.op(Method::POST, &format!("/v1/tokens/{id}/{action}"), None).await;
        assert_eq!((r.status.as_u16(), r.json()["status"].as_str()), (200, Some(status)), "{action}");
    }
    assert_eq!(get(&a.gate.url("/x"), &[("authorization", &bearer(&secret))]).await.status, 401, "revoked at once");
    let r = a.op(Method::POST, &format!("/v1/tokens/{id}/restore"), None).await;
    assert_eq!((r.status.as_u16(), error_code(&r).as_str()), (403, "forbidden"), "restore is disabled by default");
    let r = a.op(Method::DELETE, &format!("/v1/tokens/{id}"), None).await;
    assert_eq!(r.status, 204);
    assert_eq!(a.op(Method::GET, &format!("/v1/tokens/{id}"), None).await.status, 404);

    let audit = a.op(Method::GET, "/v1/audit?limit=10", None).await.json();
    let actions: Vec<&str> =
        audit["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["delete", "revoke", "activate", "suspend", "create"]);
    assert_eq!(audit["events"][0]["token_name"], "ci-deploy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_is_newest_first_with_filters_and_cursors() {
    let a = Admin::start("").await;
    a.principal("alice", None, &["viewer"]).await;
    for name in ["Alpha", "beta", "ALPHABET", "gamma", "alpha-2"] {
        a.create(OPERATOR_KEY, json!({"name": name, "expires_in_days": 30, "owner": "alice"})).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let names = |v: &Value| -> Vec<String> {
        v["tokens"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
    };
    let all = a.op(Method::GET, "/v1/tokens", None).await.json();
    assert_eq!(names(&all), vec!["alpha-2", "gamma", "ALPHABET", "beta", "Alpha"]);
    let filtered = a.op(Method::GET, "/v1/tokens?name=ALPHA", None).await.json();
    assert_eq!(names(&filtered), vec!["alpha-2", "ALPHABET", "Alpha"]);
    let first = a.op(Method::GET, "/v1/tokens?limit=2", None).await.json();
    assert_eq!(names(&first), vec!["alpha-2", "gamma"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = a.op(Method::GET, &format!("/v1/tokens?limit=2&cursor={cursor}"), None).await.json();
    assert_eq!(names(&second), vec!["ALPHABET", "beta"]);
    let id = all["tokens"][0]["id"].as_str().unwrap();
    a.op(Method::POST, &format!("/v1/tokens/{id}/suspend"), None).await;
    let suspended = a.op(Method::GET, "/v1/tokens?status=suspended&owner=alice&kind=personal", None).await.json();
    assert_eq!(names(&suspended), vec!["alpha-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_row_changes_nothing() {
    let a = Admin::start("").await;
    a.principal("alice", None, &["viewer"]).await;
    let created = a.create(OPERATOR_KEY, json!({"name": "keep", "expires_in_days": 30, "owner": "alice"})).await;
    let id = created["id"].as_str().unwrap().to_string();
    let before = a.snapshot().await;

    let raw = |method: Method, path: String, headers: Vec<(&'static str, String)>, body: &'static [u8]| {
        let url = a.gate.admin_url(&path);
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            send(method, &url, &h, Bytes::from_static(body)).await
        }
    };
    let op = ("authorization", bearer(OPERATOR_KEY));
    let json_ct = ("content-type", "application/json".to_string());
    // A JSON `POST /v1/tokens` as the operator.
    let create_with =
        |body: &'static [u8]| raw(Method::POST, "/v1/tokens".into(), vec![op.clone(), json_ct.clone()], body);
    let cases: Vec<(Reply, u16, &str, Option<&str>)> = vec![
        (
            raw(Method::POST, "/v1/tokens".into(), vec![op.clone(), json_ct.clone()], b"{not json").await,
            400,
            "bad_request",
            None,
        ),
        (
            create_with(br#"{"name":"x","expires_in_days":30,"owner":"alice","colour":"red"}"#).await,
            400,
            "bad_request",
            Some("colour"),
        ),
        (
            create_with(br#"{"name":"x","expires_in_days":7,"owner":"alice"}"#).await,
            400,
            "bad_request",
            Some("expires_in_days"),
        ),
        (
            create_with(br#"{"name":"x","expires_in_days":"30","owner":"alice"}"#).await,
            400,
            "bad_request",
            Some("expires_in_days"),
        ),
        (
            create_with(br#"{"name":"   ","expires_in_days":30,"owner":"alice"}"#).await,
            400,
            "bad_request",
            Some("name"),
        ),
        (
            create_with(b"{\"name\":\"a\\u0007\",\"expires_in_days\":30,\"owner\":\"alice\"}").await,
            400,
            "bad_request",
            Some("name"),
        ),
        (
            create_with(br#"{"name":"x","expires_in_days":30,"owner":"alice","roles":["root"]}"#).await,
            400,
            "bad_request",
            Some("roles[0]"),
        ),
        (
            create_with(br#"{"name":"x","expires_in_days":30,"owner":"alice","scopes":["account","prod"]}"#).await,
            400,
            "bad_request",
            Some("scopes[1]"),
        ),
        (create_with(br#"{"name":"x","expires_in_days":30,"owner":"nobody"}"#).await, 404, "not_found", Some("owner")),
        (create_with(br#"{"name":"x","expires_in_days":30}"#).await, 403, "forbidden", None),
        (
            create_with(br#"{"name":"x","expires_in_days":30,"owner":"alice","scopes":null}"#).await,
            400,
            "bad_request",
            Some("scopes"),
        ),
        (
            create_with(br#"{"name":"x","expires_in_days":30.5,"owner":"alice"}"#).await,
            400,
            "bad_request",
            Some("expires_in_days"),
        ),
        (create_with(br#"{"name":"x","expires_in_days":30,"owner":"a b"}"#).await, 400, "bad_request", Some("owner")),
        (
            create_with(br#"{"name":"x","expires_in_days":30,"owner":"alice","kind":"team"}"#).await,
            400,
            "bad_request",
            Some("kind"),
        ),
        (
            raw(
                Method::POST,
                "/v1/tokens".into(),
                vec![op.clone(), ("content-type", "text/plain".into())],
                br#"{"name":"x","expires_in_days":30,"owner":"alice"}"#,
            )
            .await,
            415,
            "unsupported_media_type",
            None,
        ),
        (
            raw(Method::POST, "/v1/tokens".into(), vec![op.clone(), json_ct.clone()], &[b' '; 20_000]).await,
            413,
            "payload_too_large",
            None,
        ),
        (raw(Method::GET, "/v1/tokens?limit=0".into(), vec![op.clone()], b"").await, 400, "bad_request", Some("limit")),
        (
            raw(Method::GET, "/v1/tokens?status=gone".into(), vec![op.clone()], b"").await,
            400,
            "bad_request",
            Some("status"),
        ),
        (
            raw(Method::GET, "/v1/tokens?cursor=abc".into(), vec![op.clone()], b"").await,
            400,
            "bad_request",
            Some("cursor"),
        ),
        (
            raw(Method::GET, "/v1/tokens?colour=red".into(), vec![op.clone()], b"").await,
            400,
            "bad_request",
            Some("colour"),
        ),
        (raw(Method::GET, "/v1/tokens".into(), vec![], b"").await, 401, "unauthorized", None),
        (
            raw(Method::GET, "/v1/tokens".into(), vec![("authorization", bearer("wrong-key-0123456789"))], b"").await,
            401,
            "unauthorized",
            None,
        ),
        (raw(Method::GET, "/v1/tokens/short".into(), vec![op.clone()], b"").await, 400, "bad_request", Some("id")),
        (raw(Method::GET, "/v1/tokens/AAAAAAAAAAAA".into(), vec![op.clone()], b"").await, 404, "not_found", None),
        (raw(Method::POST, format!("/v1/tokens/{id}/explode"), vec![op.clone()], b"").await, 404, "not_found", None),
        (raw(Method::GET, "/v1/nothing".into(), vec![op.clone()], b"").await, 404, "not_found", None),
        (raw(Method::PUT, "/v1/tokens".into(), vec![op.clone()], b"").await, 405, "method_not_allowed", None),
        (
            raw(Method::GET, format!("/v1/tokens/{id}/revoke"), vec![op.clone()], b"").await,
            405,
            "method_not_allowed",
            None,
        ),
        (raw(Method::DELETE, format!("/v1/tokens/{id}"), vec![op.clone()], b"").await, 409, "conflict", None),
        (
            raw(
                Method::POST,
                format!("/v1/tokens/{id}/rotate"),
                vec![op.clone(), json_ct.clone()],
                br#"{"grace_seconds":99999999}"#,
            )
            .await,
            400,
            "bad_request",
            Some("grace_seconds"),
        ),
        (
            raw(
                Method::PUT,
                "/v1/principals/bob".into(),
                vec![op.clone(), json_ct.clone()],
                br#"{"display_name":"Bob","roles":["root"]}"#,
            )
            .await,
            400,
            "bad_request",
            Some("roles[0]"),
        ),
        (
            raw(
                Method::PUT,
                "/v1/principals/bob".into(),
                vec![op.clone(), json_ct.clone()],
                br#"{"display_name":"","roles":[]}"#,
            )
            .await,
            400,
            "bad_request",
            Some("display_name"),
        ),
        (
            raw(
                Method::PUT,
                "/v1/principals/b%20b".into(),
                vec![op.clone(), json_ct.clone()],
                br#"{"display_name":"B","roles":[]}"#,
            )
            .await,
            400,
            "bad_request",
            Some("id"),
        ),
        (raw(Method::DELETE, "/v1/principals/nobody".into(), vec![op.clone()], b"").await, 404, "not_found", None),
        (raw(Method::GET, "/v1/audit?limit=x".into(), vec![op.clone()], b"").await, 400, "bad_request", Some("limit")),
    ];
    for (i, (reply, status, code, field)) in cases.iter().enumerate() {
        assert_eq!(reply.status.as_u16(), *status, "case {i}: {:?}", String::from_utf8_lossy(&reply.body));
        let body = reply.json();
        assert_eq!(body["error"]["code"], *code, "case {i}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "case {i}");
        assert_eq!(body["error"]["field"].as_str(), *field, "case {i}: {body}");
    }
    let unauthorized = &cases.iter().find(|c| c.1 == 401).unwrap().0;
    assert_eq!(unauthorized.headers["www-authenticate"], r#"Bearer realm="tokengate-admin""#);
    assert_eq!(cases.iter().find(|c| c.1 == 405).unwrap().0.headers["allow"], "GET, POST");
    assert_eq!(a.snapshot().await, before, "no failed request changed anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_manage_only_their_own_tokens_and_org_admins_their_orgs() {
    let a = Admin::start("").await;
    a.principal("alice", Some("acme"), &["viewer", "developer"]).await;
    a.principal("bob", Some("acme"), &["viewer"]).await;
    a.principal("carol", Some("acme"), &["viewer", "admin"]).await;
    a.principal("dave", Some("globex"), &["viewer", "admin"]).await;
    let token_for = |owner: &str, roles: Value, scopes: Value| json!({"name": format!("{owner}'s"), "expires_in_days": 30, "owner": owner, "roles": roles, "scopes": scopes});
    let alice = a.create(OPERATOR_KEY, token_for("alice", json!(["viewer", "developer"]), json!(["env:prod"]))).await;
    let bob = a.create(OPERATOR_KEY, token_for("bob", json!(["viewer"]), json!([]))).await;
    let carol = a.create(OPERATOR_KEY, token_for("carol", json!(["viewer", "admin"]), json!(["account"]))).await;
    let dave = a.create(OPERATOR_KEY, token_for("dave", json!(["admin"]), json!(["account"]))).await;
    let (alice_key, bob_id) = (alice["token"].as_str().unwrap(), bob["id"].as_str().unwrap());
    let before = a.snapshot().await;

    // Alice sees only her own tokens, and cannot read or touch Bob's.
    let mine = a.call(Method::GET, "/v1/tokens", alice_key, None).await.json();
    let owners: Vec<&str> = mine["tokens"].as_array().unwrap().iter().map(|t| t["owner"].as_str().unwrap()).collect();
    assert_eq!(owners, vec!["alice"]);
    assert_eq!(a.call(Method::GET, "/v1/tokens?owner=bob", alice_key, None).await.status, 403);
    assert_eq!(a.call(Method::GET, &format!("/v1/tokens/{bob_id}"), alice_key, None).await.status, 404);
    for action in ["suspend", "revoke", "rotate"] {
        assert_eq!(a.call(Method::POST, &format!("/v1/tokens/{bob_id}/{action}"), alice_key, None).await.status, 404);
    }
    assert_eq!(a.call(Method::DELETE, &format!("/v1/tokens/{bob_id}"), alice_key, None).await.status, 404);
    // ...nor create tokens for others, with roles or scopes beyond her own, or for the org.
    for beyond in [
        json!({"owner": "bob"}),
        json!({"roles": ["admin"]}),
        json!({"scopes": ["account"]}),
        json!({"kind": "organization"}),
    ] {
        let mut body = json!({"name": "x", "expires_in_days": 30});
        body.as_object_mut().unwrap().extend(beyond.as_object().unwrap().clone());
        let r = a.call(Method::POST, "/v1/tokens", alice_key, Some(body.clone())).await;
        assert_eq!(r.status, 403, "{body}");
    }
    assert_eq!(a.call(Method::GET, "/v1/audit", alice_key, None).await.status, 403);
    assert_eq!(
        a.call(Method::PUT, "/v1/principals/alice", alice_key, Some(json!({"display_name": "A", "roles": ["admin"]})))
            .await
            .status,
        403
    );
    assert_eq!(a.snapshot().await, before, "refused calls changed nothing");

    // Within her rights she can create (narrower) tokens and manage them.
    let own = a
        .create(
            alice_key,
            json!({"name": "mine", "expires_in_days": 60, "roles": ["viewer"], "scopes": ["deployment:api@prod"]}),
        )
        .await;
    assert_eq!((own["owner"].as_str(), own["created_by"].as_str()), (Some("alice"), Some("alice")));
    let own_id = own["id"].as_str().unwrap();
    assert_eq!(a.call(Method::POST, &format!("/v1/tokens/{own_id}/revoke"), alice_key, None).await.status, 200);
    assert_eq!(a.call(Method::DELETE, &format!("/v1/tokens/{own_id}"), alice_key, None).await.status, 204);
    assert_eq!(a.call(Method::GET, "/v1/principals/alice", alice_key, None).await.status, 200);
    assert_eq!(a.call(Method::GET, "/v1/principals/bob", alice_key, None).await.status, 403);

    // Carol administers acme's organization tokens, not globex's.
    let carol_key = carol["token"].as_str().unwrap();
    let org = a
        .create(
            carol_key,
            json!({"name": "acme ci", "expires_in_days": 90, "kind": "organization", "roles": ["admin"]}),
        )
        .await;
    assert_eq!((org["owner"].as_str(), org["kind"].as_str()), (Some("acme"), Some("organization")));
    let org_id = org["id"].as_str().unwrap();
    let listed = a.call(Method::GET, "/v1/tokens?owner=acme", carol_key, None).await.json();
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 1);
    assert_eq!(a.call(Method::POST, &format!("/v1/tokens/{org_id}/suspend"), carol_key, None).await.status, 200);
    let dave_key = dave["token"].as_str().unwrap();
    assert_eq!(a.call(Method::GET, &format!("/v1/tokens/{org_id}"), dave_key, None).await.status, 404);
    assert_eq!(a.call(Method::GET, "/v1/tokens?owner=acme", dave_key, None).await.status, 403);
    let r = a
        .call(
            Method::POST,
            "/v1/tokens",
            dave_key,
            Some(json!({"name": "x", "expires_in_days": 30, "kind": "organization", "owner": "acme"})),
        )
        .await;
    assert_eq!(r.status, 403);
    // Bob is in acme but not an admin.
    assert_eq!(
        a.call(Method::GET, &format!("/v1/tokens/{org_id}"), bob["token"].as_str().unwrap(), None).await.status,
        404
    );

    // Organization tokens cannot use the admin API; they survive their creator.
    a.op(Method::POST, &format!("/v1/tokens/{org_id}/activate"), None).await;
    let org_key = org["token"].as_str().unwrap();
    assert_eq!(a.call(Method::GET, "/v1/tokens", org_key, None).await.status, 403);
    assert_eq!(a.op(Method::DELETE, "/v1/principals/carol", None).await.status, 204);
    assert_eq!(
        get(&a.gate.url("/x"), &[("authorization", &bearer(org_key))]).await.status,
        200,
        "org token outlives its creator"
    );
    assert_eq!(
        get(&a.gate.url("/x"), &[("authorization", &bearer(carol_key))]).await.status,
        401,
        "personal token stops with its owner"
    );
    assert_eq!(a.call(Method::GET, "/v1/tokens", carol_key, None).await.status, 401);

    // The operator sees everything.
    let all = a.op(Method::GET, "/v1/tokens", None).await.json();
    assert_eq!(all["tokens"].as_array().unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_issues_a_new_secret_with_a_grace_period() {
    let a = Admin::start("").await;
    a.principal("alice", None, &["viewer"]).await;
    let created = a.create(OPERATOR_KEY, json!({"name": "rotating", "expires_in_days": 30, "owner": "alice"})).await;
    let (old, id) = (created["token"].as_str().unwrap().to_string(), created["id"].as_str().unwrap().to_string());
    let r = a.op(Method::POST, &format!("/v1/tokens/{id}/rotate"), Some(json!({"grace_seconds": 3600}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["cache-control"], "no-store");
    let rotated = r.json();
    let new = rotated["token"].as_str().unwrap().to_string();
    assert_eq!(rotated["id"], id.as_str());
    assert!(new != old && new.starts_with(&format!("tgp_{id}")));
    assert!(rotated["previous_secret_valid_until"].is_string());
    for secret in [&old, &new] {
        assert_eq!(get(&a.gate.url("/x"), &[("authorization", &bearer(secret))]).await.status, 200);
    }
    let r = a.op(Method::POST, &format!("/v1/tokens/{id}/rotate"), None).await;
    let newest = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(
        get(&a.gate.url("/x"), &[("authorization", &bearer(&new))]).await.status,
        401,
        "no grace: old secret stops"
    );
    assert_eq!(get(&a.gate.url("/x"), &[("authorization", &bearer(&newest))]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_works_when_enabled_and_session_describes_the_caller() {
    let a = Admin::start("tokens:\n  allow_restore: true\n").await;
    a.principal("alice", Some("acme"), &["viewer"]).await;
    let created = a.create(OPERATOR_KEY, json!({"name": "r", "expires_in_days": 30, "owner": "alice"})).await;
    let id = created["id"].as_str().unwrap();
    a.op(Method::POST, &format!("/v1/tokens/{id}/revoke"), None).await;
    let r = a.op(Method::POST, &format!("/v1/tokens/{id}/restore"), None).await;
    assert_eq!(r.json()["status"], "active");
    let session = a.op(Method::GET, "/v1/session", None).await.json();
    assert_eq!(session["caller"]["kind"], "operator");
    assert_eq!(session["caller"]["key"], "ops", "the key's name");
    assert_eq!(session["expiry_days"], json!([30, 60, 90, 180, 365]));
    assert_eq!(session["allow_restore"], true);
    let session = a.call(Method::GET, "/v1/session", created["token"].as_str().unwrap(), None).await.json();
    assert_eq!((session["caller"]["kind"].as_str(), session["caller"]["id"].as_str()), (Some("person"), Some("alice")));
    assert_eq!(a.op(Method::GET, "/v1/principals/alice", None).await.json()["org"], "acme");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_mutations_are_refused() {
    let a = Admin::start("").await;
    a.principal("alice", None, &["viewer"]).await;
    let body = Bytes::from(json!({"name": "x", "expires_in_days": 30, "owner": "alice"}).to_string());
    let url = a.gate.admin_url("/v1/tokens");
    let auth = bearer(OPERATOR_KEY);
    let base = [("authorization", auth.as_str()), ("content-type", "application/json")];
    for extra in [("origin", "http://evil.example"), ("sec-fetch-site", "cross-site"), ("origin", "null")] {
        let r = send(Method::POST, &url, &[base[0], base[1], extra], body.clone()).await;
        assert_eq!(r.status, 403, "{extra:?}");
    }
    let same_origin = format!("http://{}", a.gate.admin);
    let r = send(
        Method::POST,
        &url,
        &[base[0], base[1], ("origin", &same_origin), ("sec-fetch-site", "same-origin")],
        body,
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(a.op(Method::GET, "/v1/tokens", None).await.json()["tokens"].as_array().unwrap().len(), 1);

    // Over HTTP/2 the authority is in the URI, not in a Host header: same-origin still passes.
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).http2_only(true).build_http();
    let req = http::Request::post(&url)
        .header("authorization", &auth)
        .header("content-type", "application/json")
        .header("origin", &same_origin)
        .body(http_body_util::Full::new(Bytes::from(
            json!({"name": "h2", "expires_in_days": 30, "owner": "alice"}).to_string(),
        )))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!((resp.version(), resp.status().as_u16()), (http::Version::HTTP_2, 201));
    let req = http::Request::post(&url)
        .header("authorization", &auth)
        .header("content-type", "application/json")
        .header("origin", "http://evil.example")
        .body(http_body_util::Full::new(Bytes::from(
            json!({"name": "h2", "expires_in_days": 30, "owner": "alice"}).to_string(),
        )))
        .unwrap();
    assert_eq!(client.request(req).await.unwrap().status(), 403);
}

/// A webhook receiver that fails its first `failures` deliveries.
async fn receiver(failures: usize, delay: Duration) -> (String, Arc<Mutex<Vec<(http::HeaderMap, Bytes)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<(http::HeaderMap, Bytes)>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let log = log.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = http_body_util::BodyExt::collect(body).await.unwrap().to_bytes();
                        tokio::time::sleep(delay).await;
                        let n = {
                            let mut log = log.lock().unwrap();
                            log.push((parts.headers, body));
                            log.len()
                        };
                        let status = if n <= failures { 500 } else { 200 };
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .status(status)
                                .body(http_body_util::Full::new(Bytes::new()))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_creation_is_announced_to_webhooks_signed_and_retried() {
    let (url, seen) = receiver(2, Duration::from_millis(1500)).await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("webhook-secret");
    std::fs::write(&secret_file, "whsec-0123456789abcdef\n").unwrap();
    let a = Admin::start(&format!(
        "notifications:\n  webhooks:\n    - url: {url}\n  secret_file: {}\n",
        secret_file.display()
    ))
    .await;
    a.principal("alice", None, &["viewer"]).await;
    let started = Instant::now();
    let created = a.create(OPERATOR_KEY, json!({"name": "announced", "expires_in_days": 30, "owner": "alice"})).await;
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "the API call does not wait for the webhook (1.5 s per attempt)"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "three attempts (two failures, one success) expected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (headers, body) = seen.lock().unwrap()[2].clone();
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["event"], "token.created");
    assert_eq!(event["creator"], "key:ops");
    assert_eq!(event["token_name"], "announced");
    assert_eq!(event["owner"], "alice");
    assert_eq!(event["token"], created["display"]);
    assert!(!String::from_utf8_lossy(&body).contains(&created["token"].as_str().unwrap()[16..]), "never the secret");
    let ts = headers["x-tokengate-timestamp"].to_str().unwrap();
    let expected = tokengate::admin::webhook::signature(b"whsec-0123456789abcdef", ts, &body);
    assert_eq!(headers["x-tokengate-signature"], expected.as_str());
    let metrics = String::from_utf8(get(&a.gate.admin_url("/metrics"), &[]).await.body.to_vec()).unwrap();
    assert!(metrics.contains("tokengate_webhook_deliveries_total{result=\"delivered\"} 1"), "{metrics}");
    assert!(metrics.contains("tokengate_webhook_retries_total 2"));
}

/// Rotate, activate and restore yield a working secret or put a token back to work, so they
/// obey the rule creation obeys: the caller may only produce what they could have created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_activate_and_restore_are_limited_to_what_the_caller_could_create() {
    let a = Admin::start("tokens:\n  allow_restore: true\n").await;
    a.principal("alice", Some("acme"), &["viewer", "developer"]).await;
    a.principal("carol", Some("acme"), &["viewer", "admin"]).await;
    let token = |owner: &str, kind: &str, roles: Value, scopes: Value| json!({"name": format!("{owner} {kind}"), "expires_in_days": 30, "owner": owner, "kind": kind, "roles": roles, "scopes": scopes});
    // Alice's account-wide developer token, and a narrower one scoped to env:dev.
    let wide =
        a.create(OPERATOR_KEY, token("alice", "personal", json!(["viewer", "developer"]), json!(["account"]))).await;
    let dev = a.create(OPERATOR_KEY, token("alice", "personal", json!(["viewer"]), json!(["env:dev"]))).await;
    // Carol administers acme but lacks `developer`; acme has a developer token.
    let carol =
        a.create(OPERATOR_KEY, token("carol", "personal", json!(["viewer", "admin"]), json!(["account"]))).await;
    let org_dev = a.create(OPERATOR_KEY, token("acme", "organization", json!(["developer"]), json!(["account"]))).await;
    let org_viewer = a.create(OPERATOR_KEY, token("acme", "organization", json!(["viewer"]), json!(["env:dev"]))).await;
    let key = |t: &Value| t["token"].as_str().unwrap().to_string();
    let id = |t: &Value| t["id"].as_str().unwrap().to_string();
    let works = async |secret: &str| get(&a.gate.url("/x"), &[("authorization", &bearer(secret))]).await.status == 200;
    // After a change, the proxy's cache learns of it asynchronously (invalidations): wait for
    // the token to work again, within a bound.
    let works_soon = async |secret: &str| {
        for _ in 0..40 {
            if works(secret).await {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        false
    };

    for (caller, target, who) in [
        (key(&dev), &wide, "env:dev token on its owner's account-wide token"),
        (key(&carol), &org_dev, "org admin without developer on a developer org token"),
    ] {
        let tid = id(target);
        // Rotation: refused, nothing changes, the old secret keeps working.
        let before = a.snapshot().await;
        let r = a.call(Method::POST, &format!("/v1/tokens/{tid}/rotate"), &caller, None).await;
        assert_eq!((r.status.as_u16(), error_code(&r).as_str()), (403, "forbidden"), "rotate, {who}: {:?}", r.json());
        assert!(!String::from_utf8_lossy(&r.body).contains("tg"), "no secret in a refusal");
        assert_eq!(a.snapshot().await, before, "rotate, {who}: nothing changed");
        assert!(works(&key(target)).await, "rotate, {who}: the old secret still works");

        // Activation: the caller may suspend (take access away) but not bring it back.
        assert_eq!(
            a.call(Method::POST, &format!("/v1/tokens/{tid}/suspend"), &caller, None).await.status,
            200,
            "{who}"
        );
        let before = a.snapshot().await;
        let r = a.call(Method::POST, &format!("/v1/tokens/{tid}/activate"), &caller, None).await;
        assert_eq!(r.status, 403, "activate, {who}: {:?}", r.json());
        assert_eq!(a.snapshot().await, before, "activate, {who}: nothing changed");
        assert!(!works(&key(target)).await, "activate, {who}: still suspended");

        // Restore: revoke may be done, restore may not.
        assert_eq!(a.call(Method::POST, &format!("/v1/tokens/{tid}/revoke"), &caller, None).await.status, 200, "{who}");
        let before = a.snapshot().await;
        let r = a.call(Method::POST, &format!("/v1/tokens/{tid}/restore"), &caller, None).await;
        assert_eq!(r.status, 403, "restore, {who}: {:?}", r.json());
        assert_eq!(a.snapshot().await, before, "restore, {who}: nothing changed");

        // The operator key may do all three.
        let r = a.op(Method::POST, &format!("/v1/tokens/{tid}/restore"), None).await;
        assert_eq!((r.status.as_u16(), r.json()["status"].as_str()), (200, Some("active")), "operator restore");
        a.op(Method::POST, &format!("/v1/tokens/{tid}/suspend"), None).await;
        assert_eq!(
            a.op(Method::POST, &format!("/v1/tokens/{tid}/activate"), None).await.status,
            200,
            "operator activate"
        );
        let r = a.op(Method::POST, &format!("/v1/tokens/{tid}/rotate"), None).await;
        assert_eq!(r.status, 200, "operator rotate");
        assert!(works(r.json()["token"].as_str().unwrap()).await);
    }

    // Creation follows the same rule for the org admin.
    let r = a
        .call(
            Method::POST,
            "/v1/tokens",
            &key(&carol),
            Some(json!({"name": "x", "expires_in_days": 30, "kind": "organization", "roles": ["developer"]})),
        )
        .await;
    assert_eq!(r.status, 403, "{:?}", r.json());

    // Within their rights, people and org admins rotate, activate and restore.
    for (caller, target) in [(key(&dev), &dev), (key(&carol), &org_viewer)] {
        let tid = id(target);
        let r = a.call(Method::POST, &format!("/v1/tokens/{tid}/rotate"), &caller, None).await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        let rotated = r.json()["token"].as_str().unwrap().to_string();
        assert!(works_soon(&rotated).await);
        if tid == id(&dev) {
            continue; // the caller's own token: rotating it without grace ended the secret used here
        }
        for (action, status) in [("suspend", 200), ("activate", 200), ("revoke", 200), ("restore", 200)] {
            let r = a.call(Method::POST, &format!("/v1/tokens/{tid}/{action}"), &caller, None).await;
            assert_eq!(r.status.as_u16(), status, "{action}: {:?}", r.json());
        }
        assert!(works_soon(&rotated).await);
    }
}

/// Deleting a principal revokes their personal tokens for good: re-creating the id (a reused
/// e-mail, delete-and-re-add) brings none back. Their organization's tokens keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_principal_revokes_their_tokens_and_re_adding_the_id_brings_none_back() {
    let a = Admin::start("").await;
    a.principal("dave@example.com", Some("acme"), &["viewer", "admin"]).await;
    let personal = a
        .create(
            OPERATOR_KEY,
            json!({"name": "laptop", "expires_in_days": 30, "owner": "dave@example.com", "roles": ["viewer", "admin"]}),
        )
        .await;
    let secret = personal["token"].as_str().unwrap().to_string();
    let org = a
        .create(&secret, json!({"name": "acme ci", "expires_in_days": 30, "kind": "organization", "roles": ["viewer"]}))
        .await;
    let org_secret = org["token"].as_str().unwrap().to_string();
    let status = async |s: &str| get(&a.gate.url("/x"), &[("authorization", &bearer(s))]).await.status.as_u16();
    assert_eq!((status(&secret).await, status(&org_secret).await), (200, 200));

    assert_eq!(a.op(Method::DELETE, "/v1/principals/dave@example.com", None).await.status, 204);
    // The invalidation reaches the proxy's cache asynchronously (at once in practice; allow a
    // loaded CI machine a moment).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while status(&secret).await != 401 {
        assert!(std::time::Instant::now() < deadline, "the deleted principal's token still works after 2 s");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let id = personal["id"].as_str().unwrap();
    let shown = a.op(Method::GET, &format!("/v1/tokens/{id}"), None).await.json();
    assert_eq!(shown["status"], "revoked", "the record says so too");
    let audit = a.op(Method::GET, "/v1/audit?limit=1", None).await.json();
    let event = &audit["events"][0];
    assert_eq!(
        (event["action"].as_str(), event["token_id"].as_str(), event["actor"].as_str()),
        (Some("revoke"), Some(id), Some("key:ops"))
    );

    // The id comes back (same roles): the old token stays refused through the proxy.
    a.principal("dave@example.com", Some("acme"), &["viewer", "admin"]).await;
    assert_eq!(status(&secret).await, 401, "re-creating the principal must not revive their old token");
    assert_eq!(a.call(Method::GET, "/v1/session", &secret, None).await.status, 401);
    assert_eq!(status(&org_secret).await, 200, "the organization's token outlives its creator");
}

/// Inputs an attacker tries: invisible and bidirectional characters, non-JSON content types on
/// empty bodies, credentials in the query however spelled, encoded path tricks. Each gets a
/// clear error naming the field, and nothing stored changes. Every mismatch is reported at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_are_refused_naming_the_field_and_change_nothing() {
    let a = Admin::start("").await;
    a.principal("alice", None, &["viewer"]).await;
    let created = a.create(OPERATOR_KEY, json!({"name": "keep", "expires_in_days": 30, "owner": "alice"})).await;
    let id = created["id"].as_str().unwrap().to_string();
    let before = a.snapshot().await;
    let auth = bearer(OPERATOR_KEY);
    let json_ct = ("content-type", "application/json");
    let create = |name: &str| json!({"name": name, "expires_in_days": 30, "owner": "alice"}).to_string();
    let put_principal = |name: &str| json!({"display_name": name, "roles": []}).to_string();
    /// Method, path, Content-Type, body; expected status, error code, error field.
    type Case<'a> = (Method, String, Option<(&'a str, &'a str)>, String, u16, &'a str, Option<&'a str>);
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        (Method::POST, "/v1/tokens".into(), Some(json_ct), create("invoice-\u{202E}gpj.exe"), 400, "bad_request", Some("name")),
        (Method::POST, "/v1/tokens".into(), Some(json_ct), create("zero\u{200B}width"), 400, "bad_request", Some("name")),
        (Method::POST, "/v1/tokens".into(), Some(json_ct), create("bom\u{FEFF}"), 400, "bad_request", Some("name")),
        (Method::POST, "/v1/tokens".into(), Some(json_ct), create("isolate\u{2066}x\u{2069}"), 400, "bad_request", Some("name")),
        (Method::PUT, "/v1/principals/bob".into(), Some(json_ct), put_principal("Bob\u{202E}"), 400, "bad_request", Some("display_name")),
        (Method::PUT, "/v1/principals/bob".into(), Some(json_ct), put_principal("B\u{200D}ob"), 400, "bad_request", Some("display_name")),
        (Method::POST, format!("/v1/tokens/{id}/suspend"), Some(("content-type", "text/plain")), String::new(), 415, "unsupported_media_type", None),
        (Method::POST, format!("/v1/tokens/{id}/rotate"), Some(("content-type", "application/x-www-form-urlencoded")), String::new(), 415, "unsupported_media_type", None),
        (Method::DELETE, "/v1/principals/alice".into(), Some(("content-type", "text/plain")), String::new(), 415, "unsupported_media_type", None),
        (Method::GET, "/v1/tokens?access_token=tgp_x".into(), None, String::new(), 400, "bad_request", Some("access_token")),
        (Method::GET, "/v1/tokens?access%5Ftoken=tgp_x".into(), None, String::new(), 400, "bad_request", Some("access_token")),
        (Method::GET, "/v1/tokens?Access_Token=tgp_x".into(), None, String::new(), 400, "bad_request", Some("access_token")),
        (Method::GET, format!("/v1/tokens/{id}?access%5ftoken=tgp_x"), None, String::new(), 400, "bad_request", Some("access_token")),
        (Method::POST, format!("/v1/tokens/{id}/revoke?access_token=tgp_x"), None, String::new(), 400, "bad_request", Some("access_token")),
        (Method::GET, format!("/v1/tokens/{id}?colour=red"), None, String::new(), 400, "bad_request", Some("colour")),
        (Method::GET, "/v1/tokens?limit=1&limit=2".into(), None, String::new(), 400, "bad_request", Some("limit")),
        (Method::GET, "/v1/tokens?name=%FF".into(), None, String::new(), 400, "bad_request", Some("query")),
        (Method::GET, "/v1/audit?limit=%30".into(), None, String::new(), 400, "bad_request", Some("limit")),
        (Method::GET, "/v1/tokens/%FF".into(), None, String::new(), 400, "bad_request", Some("path")),
        (Method::GET, format!("/v1/tokens/{}%2F..", &id), None, String::new(), 400, "bad_request", Some("id")),
        (Method::PUT, "/v1/principals/a%2Fb".into(), Some(json_ct), put_principal("A"), 400, "bad_request", Some("id")),
        (Method::PUT, "/v1/principals/a%252Fb".into(), Some(json_ct), put_principal("A"), 400, "bad_request", Some("id")),
        (Method::PUT, "/v1/principals/%2E%2E".into(), Some(json_ct), put_principal("A"), 400, "bad_request", Some("id")),
        (Method::PUT, "/v1/principals/%2E".into(), Some(json_ct), put_principal("A"), 400, "bad_request", Some("id")),
        (Method::DELETE, "/v1/principals/..%2Falice".into(), None, String::new(), 400, "bad_request", Some("id")),
        (Method::GET, "/v1/tokens%2Fx".into(), None, String::new(), 404, "not_found", None),
    ];
    let mut wrong = Vec::new();
    for (method, path, ct, body, status, code, field) in &cases {
        let mut headers = vec![("authorization", auth.as_str())];
        headers.extend(ct.iter().copied());
        let r = send(method.clone(), &a.gate.admin_url(path), &headers, Bytes::from(body.clone())).await;
        let got = serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null);
        let (got_code, got_field) = (got["error"]["code"].as_str(), got["error"]["field"].as_str());
        let message_ok = got["error"]["message"].as_str().is_some_and(|m| !m.is_empty());
        if (r.status.as_u16(), got_code, got_field) != (*status, Some(*code), *field) || !message_ok {
            wrong.push(format!("{method} {path}: got {} {got}", r.status.as_u16()));
        }
    }
    assert!(wrong.is_empty(), "{} of {} cases wrong:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
    assert_eq!(a.snapshot().await, before, "no refused request changed anything");
}

/// Percent-encoding is decoded exactly once, before validation: encoded forms mean what their
/// plain forms mean. Empty bodies without a Content-Type, or with JSON's, stay accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_paths_and_queries_mean_their_plain_forms() {
    let a = Admin::start("").await;
    let r = a
        .op(
            Method::PUT,
            "/v1/principals/dave%40example.com",
            Some(json!({"display_name": "Dave", "roles": ["viewer"]})),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.json()["id"].as_str()), (200, Some("dave@example.com")), "{:?}", r.json());
    assert_eq!(a.op(Method::GET, "/v1/principals/dave@example.com", None).await.status, 200);
    assert_eq!(a.op(Method::GET, "/v1/principals/dave%40example%2Ecom", None).await.status, 200);
    let created =
        a.create(OPERATOR_KEY, json!({"name": "ci deploy", "expires_in_days": 30, "owner": "dave@example.com"})).await;
    let id = created["id"].as_str().unwrap();
    let listed = a.op(Method::GET, "/v1/tokens?owner=dave%40example.com&name=ci+DEPLOY&limit=%32", None).await;
    assert_eq!(listed.status, 200, "{:?}", listed.json());
    assert_eq!(listed.json()["tokens"][0]["id"], id);
    let audit = a.op(Method::GET, "/v1/audit?limit=%35", None).await;
    assert_eq!((audit.status.as_u16(), audit.json()["events"].as_array().map(Vec::len)), (200, Some(1)));
    // An encoded token id is the id.
    let encoded: String = id.chars().map(|c| format!("%{:02X}", c as u32)).collect();
    assert_eq!(a.op(Method::GET, &format!("/v1/tokens/{encoded}"), None).await.json()["id"], id);

    let url = a.gate.admin_url(&format!("/v1/tokens/{id}/suspend"));
    let auth = bearer(OPERATOR_KEY);
    let r = send(Method::POST, &url, &[("authorization", &auth)], Bytes::new()).await;
    assert_eq!(r.status, 200, "an empty body without a Content-Type");
    let url = a.gate.admin_url(&format!("/v1/tokens/{id}/activate"));
    let r =
        send(Method::POST, &url, &[("authorization", &auth), ("content-type", "application/json")], Bytes::new()).await;
    assert_eq!(r.status, 200, "an empty body labelled JSON");
    // Non-ASCII text that is neither Cc nor Cf is fine.
    let r =
        a.op(Method::PUT, "/v1/principals/zoe", Some(json!({"display_name": "Zoë Ünal 山田 🙂", "roles": []}))).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn principals_are_listed_by_id_for_operators_only() {
    let a = Admin::start("").await;
    for id in ["carol", "alice", "bob@example.com", "Zed"] {
        a.principal(id, None, &["viewer"]).await;
    }
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/principals?limit=3&cursor={c}"),
            None => "/v1/principals?limit=3".to_string(),
        };
        let r = a.op(Method::GET, &path, None).await;
        assert_eq!(r.status, 200);
        let v = r.json();
        ids.extend(v["principals"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_string()));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(ids, ["Zed", "alice", "bob@example.com", "carol"], "ordered by id, bytewise");
    // A person cannot list people, even with a valid personal token.
    let token = a.create(OPERATOR_KEY, json!({"name": "t", "expires_in_days": 30, "owner": "alice"})).await;
    let r = a.call(Method::GET, "/v1/principals", token["token"].as_str().unwrap(), None).await;
    assert_eq!((r.status.as_u16(), error_code(&r)), (403, "forbidden".to_string()));
    for bad in
        ["/v1/principals?limit=0", "/v1/principals?limit=201", "/v1/principals?cursor=a%20b", "/v1/principals?x=1"]
    {
        let r = a.op(Method::GET, bad, None).await;
        assert_eq!(r.status, 400, "{bad}");
    }
    assert_eq!(a.op(Method::POST, "/v1/principals", Some(json!({}))).await.status, 405);
}

/// What the Tokens page's picker is built from: an operator's session names the configured roles
/// and the scopes the route rules require (sorted, once each); a person's, what their token
/// holds. A token's view names the last use's client address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_offers_what_may_be_granted_and_views_name_the_last_client() {
    let routes = "routes:\n  - path: /prod\n    scopes: [env:prod, account]\n  - path: /deploy\n    scopes: [env:prod]\n  - path: /open\n    public: true\nlast_used:\n  flush_interval: 50ms\n";
    let a = Admin::start(routes).await;
    a.principal("alice", Some("acme"), &["viewer", "admin"]).await;
    let session = a.op(Method::GET, "/v1/session", None).await.json();
    assert_eq!(session["roles"], json!(["viewer", "developer", "admin"]));
    assert_eq!(session["scopes"], json!(["account", "env:prod"]));
    let created = a
        .create(
            OPERATOR_KEY,
            json!({"name": "s", "expires_in_days": 30, "owner": "alice", "roles": ["viewer", "admin"], "scopes": ["env:prod"]}),
        )
        .await;
    let secret = created["token"].as_str().unwrap();
    assert_eq!(created["last_used_from"], Value::Null, "null, not absent");
    let session = a.call(Method::GET, "/v1/session", secret, None).await.json();
    assert_eq!(session["caller"]["roles"], json!(["viewer", "admin"]));
    assert_eq!(session["caller"]["scopes"], json!(["env:prod"]));
    assert_eq!(session["caller"]["admin_of"], "acme");

    assert_eq!(get(&a.gate.url("/x"), &[("authorization", &bearer(secret))]).await.status, 200);
    let path = format!("/v1/tokens/{}", created["id"].as_str().unwrap());
    let mut view = Value::Null;
    for _ in 0..100 {
        view = a.op(Method::GET, &path, None).await.json();
        if !view["last_used_at"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!view["last_used_at"].is_null(), "{view}");
    assert_eq!(view["last_used_from"], "127.0.0.1");
}

//! Checks the running admin listener against `docs/openapi.yaml`: every response's status is
//! documented for its operation, every JSON body validates against the documented schema, and
//! every documented operation is exercised successfully at least once.

mod support;

use std::collections::BTreeSet;

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use support::admin::{Admin, OPERATOR_KEY};
use support::gate::{Reply, bearer, send};

struct Spec {
    doc: Value,
    /// `components.schemas` with `#/components/schemas/` refs rewritten to `#/$defs/`.
    defs: Value,
    seen: BTreeSet<(String, u16)>,
}

fn rewrite_refs(v: &Value) -> Value {
    let text = v.to_string().replace("#/components/schemas/", "#/$defs/");
    serde_json::from_str(&text).unwrap()
}

impl Spec {
    fn load() -> Self {
        let doc: Value = serde_saphyr::from_str(&std::fs::read_to_string("docs/openapi.yaml").unwrap()).unwrap();
        let defs = rewrite_refs(&doc["components"]["schemas"]);
        Self { doc, defs, seen: BTreeSet::new() }
    }

    /// The operation documented for `method` on a concrete `path`.
    fn operation(&self, method: &Method, path: &str) -> (String, &Value) {
        let concrete: Vec<&str> = path.split('?').next().unwrap().split('/').collect();
        for (template, item) in self.doc["paths"].as_object().unwrap() {
            let parts: Vec<&str> = template.split('/').collect();
            let matches = parts.len() == concrete.len()
                && parts.iter().zip(&concrete).all(|(t, c)| (t.starts_with('{') && !c.is_empty()) || t == c);
            if matches && let Some(op) = item.get(method.as_str().to_lowercase()) {
                return (template.clone(), op);
            }
        }
        panic!("{method} {path} is not documented in docs/openapi.yaml");
    }

    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let mut node = &self.doc;
                for part in r.trim_start_matches("#/").split('/') {
                    node = &node[part];
                }
                node
            }
            None => v,
        }
    }

    /// Asserts that `reply` is documented for the call and matches its schema.
    fn check(&mut self, method: Method, path: &str, reply: &Reply) {
        let (template, op) = self.operation(&method, path);
        let status = reply.status.as_u16();
        let response = op["responses"].get(status.to_string()).unwrap_or_else(|| {
            panic!(
                "{method} {template} answered {status}, which is not documented: {:?}",
                String::from_utf8_lossy(&reply.body)
            )
        });
        let response = self.resolve(response);
        match response["content"].get("application/json") {
            Some(media) => {
                let mut schema = rewrite_refs(&media["schema"]);
                schema["$defs"] = self.defs.clone();
                let validator = jsonschema::validator_for(&schema).expect("the documented schema compiles");
                let body = reply.json();
                let errors: Vec<String> =
                    validator.iter_errors(&body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
                assert!(errors.is_empty(), "{method} {template} {status}: {errors:?}\nbody: {body}");
            }
            None if status == 204 => assert!(reply.body.is_empty()),
            None => {}
        }
        self.seen.insert((format!("{method} {template}"), status));
    }

    /// Every documented operation answered with a 2xx at least once.
    fn assert_coverage(&self) {
        for (template, item) in self.doc["paths"].as_object().unwrap() {
            for method in ["get", "post", "put", "delete"] {
                if item.get(method).is_some() {
                    let key = format!("{} {template}", method.to_uppercase());
                    assert!(
                        self.seen.iter().any(|(k, s)| *k == key && (200..300).contains(s)),
                        "{key} was never exercised successfully"
                    );
                }
            }
        }
    }
}

async fn call(a: &Admin, spec: &mut Spec, method: Method, path: &str, body: Option<Value>) -> Reply {
    let reply = a.op(method.clone(), path, body).await;
    spec.check(method, path, &reply);
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_matches_its_openapi_document() {
    let mut spec = Spec::load();
    assert_eq!(spec.doc["openapi"], "3.1.0");
    let a = Admin::start("").await;

    for path in ["/healthz", "/readyz", "/metrics", "/"] {
        call(&a, &mut spec, Method::GET, path, None).await;
    }
    call(&a, &mut spec, Method::GET, "/v1/session", None).await;
    call(
        &a,
        &mut spec,
        Method::PUT,
        "/v1/principals/alice",
        Some(json!({"display_name": "Alice", "org": "acme", "roles": ["viewer"]})),
    )
    .await;
    call(&a, &mut spec, Method::GET, "/v1/principals/alice", None).await;
    call(&a, &mut spec, Method::PUT, "/v1/principals/bob", Some(json!({"display_name": "Bob", "roles": ["viewer"]})))
        .await;
    let page = call(&a, &mut spec, Method::GET, "/v1/principals?limit=1", None).await;
    assert_eq!(page.json()["next_cursor"], "alice");
    call(&a, &mut spec, Method::GET, "/v1/principals?cursor=alice", None).await;
    call(&a, &mut spec, Method::GET, "/v1/principals?limit=0", None).await; // 400
    let created = call(
        &a,
        &mut spec,
        Method::POST,
        "/v1/tokens",
        Some(json!({"name": "spec", "expires_in_days": 30, "owner": "alice", "scopes": ["env:prod"]})),
    )
    .await;
    let id = created.json()["id"].as_str().unwrap().to_string();
    let limits = json!({"rate": {"requests": 100, "window_secs": 60, "burst": 20}, "quota": 1000, "networks": ["10.0.0.0/8", "2001:db8::/32"]});
    call(
        &a,
        &mut spec,
        Method::POST,
        "/v1/tokens",
        Some(json!({"name": "metered", "expires_in_days": 30, "owner": "alice", "limits": limits})),
    )
    .await;
    call(&a, &mut spec, Method::PUT, &format!("/v1/tokens/{id}/limits"), Some(json!({"quota": 5}))).await;
    call(&a, &mut spec, Method::PUT, &format!("/v1/tokens/{id}/limits"), Some(json!({"quota": 0}))).await; // 400
    call(&a, &mut spec, Method::GET, "/v1/tokens?name=SPEC&limit=1", None).await;
    call(&a, &mut spec, Method::GET, &format!("/v1/tokens/{id}"), None).await;
    for action in ["suspend", "activate"] {
        call(&a, &mut spec, Method::POST, &format!("/v1/tokens/{id}/{action}"), None).await;
    }
    call(&a, &mut spec, Method::POST, &format!("/v1/tokens/{id}/rotate"), Some(json!({"grace_seconds": 60}))).await;
    call(&a, &mut spec, Method::DELETE, &format!("/v1/tokens/{id}"), None).await; // 409: not revoked
    call(&a, &mut spec, Method::POST, &format!("/v1/tokens/{id}/restore"), None).await; // 403: disabled
    call(&a, &mut spec, Method::POST, &format!("/v1/tokens/{id}/revoke"), None).await;
    call(&a, &mut spec, Method::POST, &format!("/v1/tokens/{id}/rotate"), None).await; // 409: revoked
    call(&a, &mut spec, Method::DELETE, &format!("/v1/tokens/{id}"), None).await;
    call(&a, &mut spec, Method::GET, &format!("/v1/tokens/{id}"), None).await; // 404
    call(&a, &mut spec, Method::GET, "/v1/tokens/bad", None).await; // 400
    call(&a, &mut spec, Method::GET, "/v1/audit?limit=5", None).await;
    call(&a, &mut spec, Method::GET, "/v1/keys", None).await;
    call(&a, &mut spec, Method::GET, "/v1/keys?x=1", None).await; // 400
    call(&a, &mut spec, Method::POST, "/v1/tokens", Some(json!({"name": "", "expires_in_days": 30, "owner": "alice"})))
        .await;
    call(&a, &mut spec, Method::DELETE, "/v1/principals/alice", None).await;
    call(&a, &mut spec, Method::DELETE, "/v1/principals/alice", None).await; // 404

    // Unauthenticated, wrong media type, too large, wrong method.
    let url = a.gate.admin_url("/v1/tokens");
    let r = send(Method::GET, &url, &[], Bytes::new()).await;
    spec.check(Method::GET, "/v1/tokens", &r);
    let auth = bearer(OPERATOR_KEY);
    let r =
        send(Method::POST, &url, &[("authorization", &auth), ("content-type", "text/plain")], Bytes::from_static(b"x"))
            .await;
    spec.check(Method::POST, "/v1/tokens", &r);
    let r = send(
        Method::POST,
        &url,
        &[("authorization", &auth), ("content-type", "application/json")],
        Bytes::from(vec![b' '; 20_000]),
    )
    .await;
    spec.check(Method::POST, "/v1/tokens", &r);

    // Statuses that only some inputs reach: each must be documented for its operation.
    let alice_id = "/v1/principals/alice";
    call(&a, &mut spec, Method::GET, alice_id, None).await; // 404: deleted above
    call(&a, &mut spec, Method::POST, "/v1/tokens", Some(json!({"name": "n", "expires_in_days": 30, "owner": "gone"})))
        .await; // 404: no such principal
    call(&a, &mut spec, Method::POST, "/v1/tokens", Some(json!({"name": "n", "expires_in_days": 30}))).await; // 403
    call(&a, &mut spec, Method::GET, "/v1/tokens?access%5Ftoken=x", None).await; // 400
    call(&a, &mut spec, Method::GET, "/v1/session?x=1", None).await; // 400
    for (method, path) in [
        (Method::POST, "/v1/tokens/AAAAAAAAAAAA/suspend"),
        (Method::POST, "/v1/tokens/AAAAAAAAAAAA/rotate"),
        (Method::DELETE, "/v1/tokens/AAAAAAAAAAAA"),
        (Method::DELETE, "/v1/principals/alice"),
        (Method::PUT, "/v1/principals/alice"),
    ] {
        let r = send(
            method.clone(),
            &a.gate.admin_url(path),
            &[("authorization", &auth), ("content-type", "text/plain")],
            Bytes::new(),
        )
        .await;
        assert_eq!(r.status, 415, "{method} {path}");
        spec.check(method, path, &r);
    }

    // A restore-enabled server for the restore operation's success.
    let b = Admin::start("tokens:\n  allow_restore: true\n").await;
    b.principal("bob", None, &["viewer"]).await;
    let created = b.create(OPERATOR_KEY, json!({"name": "r", "expires_in_days": 30, "owner": "bob"})).await;
    let id = created["id"].as_str().unwrap();
    let r = b.op(Method::POST, &format!("/v1/tokens/{id}/revoke"), None).await;
    spec.check(Method::POST, &format!("/v1/tokens/{id}/revoke"), &r);
    let r = b.op(Method::POST, &format!("/v1/tokens/{id}/restore"), None).await;
    spec.check(Method::POST, &format!("/v1/tokens/{id}/restore"), &r);

    spec.assert_coverage();
}

#[test]
fn the_schemas_reject_what_must_never_be_sent() {
    let spec = Spec::load();
    let mut schema = json!({ "$ref": "#/$defs/Token" });
    schema["$defs"] = spec.defs.clone();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let good = json!({
        "id": "AAAAAAAAAAAA", "display": "tgp_AAAAAAAA...", "name": "n", "kind": "personal", "owner": "alice",
        "status": "active", "roles": [], "scopes": ["env:prod"], "created_at": "2026-11-22T12:00:00.000Z",
        "created_by": "key:ops", "expires_at": "2026-12-22T12:00:00.000Z", "last_used_at": null,
        "last_used_from": null, "previous_secret_valid_until": null
    });
    assert!(validator.is_valid(&good));
    let mut leaked = good.clone();
    leaked["digest"] = "ab".repeat(32).into();
    assert!(!validator.is_valid(&leaked), "a digest in a token view must fail the schema");
    let mut secret = good.clone();
    secret["token"] = "tgp_x".into();
    assert!(!validator.is_valid(&secret), "a secret outside creation/rotation must fail the schema");
    let mut used = good.clone();
    used["last_used_at"] = "2026-11-23T08:00:00.000Z".into();
    used["last_used_from"] = "2001:db8::7".into();
    assert!(validator.is_valid(&used));
    for field in ["last_used_at", "last_used_from"] {
        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove(field);
        assert!(!validator.is_valid(&missing), "{field} is null, never absent");
    }
}

/// The document's `Text` pattern is the server's rule for names and display names, character
/// for character: trimmed of Unicode White_Space, 1 to 100 characters, no Cc or Cf anywhere.
#[test]
fn the_text_and_id_patterns_are_the_servers_rules() {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    let spec = Spec::load();
    let validator = |name: &str| {
        let mut schema = json!({ "$ref": format!("#/$defs/{name}") });
        schema["$defs"] = spec.defs.clone();
        jsonschema::validator_for(&schema).expect("the documented schema compiles")
    };
    let text = validator("Text");
    let mut wrong = Vec::new();
    for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
        let refused = matches!(c.general_category(), GeneralCategory::Control | GeneralCategory::Format);
        if text.is_valid(&json!(format!("a{c}b"))) == refused {
            wrong.push(format!("U+{:04X}", u32::from(c)));
        }
    }
    assert!(
        wrong.is_empty(),
        "the pattern disagrees with Cc/Cf on {} characters: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(20)]
    );
    let x100 = "x".repeat(100);
    for (value, valid) in [
        ("x".to_string(), true),
        (format!(" \t{x100}\u{3000} "), true),
        (format!("{x100}y"), false),
        ("a b".into(), true),
        ("   ".into(), false),
        (String::new(), false),
        ("invoice-\u{202E}gpj.exe".into(), false),
        ("\u{200B}x".into(), false),
        ("\u{FEFF}".into(), false),
    ] {
        assert_eq!(text.is_valid(&json!(value)), valid, "{value:?}");
    }
    let id = validator("SubjectId");
    for (value, valid) in [
        ("alice@example.com", true),
        (".", false),
        ("..", false),
        ("...", true),
        (".a", true),
        ("a/b", false),
        ("", false),
    ] {
        assert_eq!(id.is_valid(&json!(value)), valid, "{value:?}");
        assert_eq!(tokengate::token::valid_subject_id(value), valid, "{value:?}");
    }
    let long = "a".repeat(128);
    assert!(id.is_valid(&json!(long)) && !id.is_valid(&json!(format!("{long}a"))));
}

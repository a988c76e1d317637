//! SCIM 2.0 (`/scim/v2`) end to end over real sockets: the user and group lifecycle, filters,
//! paging, PATCH in the shapes Entra ID and Okta send, discovery, credentials kept apart, and
//! hostile input (each refused with the right status and a SCIM error body, with the stored
//! principals, groups and audit log checked unchanged). The deprovisioning test runs two
//! replicas on one real Redis and measures how long a deactivated or deleted person's personal
//! token keeps working.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use support::admin::OPERATOR_KEY;
use support::gate::{Gate, Reply, bearer, embedded_config, get, redis_config, send};
use support::upstream::Upstream;
use support::{RedisServer, minter, new_token};
use tokengate::store::Issue as _;
use tokengate::token::TokenKind;

const SCIM_TOKEN: &str = "scim-token-0123456789-abcdefghijklmnop";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The config every SCIM gate shares: operator key and SCIM token files, groups mapped to roles.
fn scim_extra(dir: &std::path::Path, with_scim: bool) -> String {
    let keys = dir.join("admin-keys");
    std::fs::write(&keys, format!("{OPERATOR_KEY}\n")).unwrap();
    let token = dir.join("scim-token");
    std::fs::write(&token, format!("{SCIM_TOKEN}\n")).unwrap();
    let scim =
        if with_scim { format!("scim:\n  token_file: {}\n  org: acme\n", token.display()) } else { String::new() };
    format!(
        "admin:\n  keys_file: {}\nidentity:\n  groups:\n    eng: {{roles: [viewer, developer]}}\n    admins: {{roles: [admin], admin: operator}}\n    readers: {{roles: [viewer]}}\n{scim}",
        keys.display()
    )
}

struct Scim {
    _dir: tempfile::TempDir,
    _upstream: Upstream,
    gate: Gate,
}

impl Scim {
    async fn start() -> Self {
        Self::start_with(true).await
    }

    async fn start_with(with_scim: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let upstream = Upstream::start().await;
        let yaml = embedded_config(&upstream.url(), dir.path(), &scim_extra(dir.path(), with_scim));
        let gate = Gate::start(&yaml).await;
        Self { _dir: dir, _upstream: upstream, gate }
    }

    /// A request with `credential`, a raw body and its content type.
    async fn raw(&self, method: Method, path: &str, credential: &str, body: &str, content_type: &str) -> Reply {
        let auth = bearer(credential);
        let mut headers = vec![("authorization", auth.as_str())];
        if !content_type.is_empty() {
            headers.push(("content-type", content_type));
        }
        send(method, &self.gate.admin_url(path), &headers, Bytes::from(body.to_string())).await
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let (body, ct) = match body {
            Some(b) => (b.to_string(), "application/scim+json"),
            None => (String::new(), ""),
        };
        self.raw(method, &format!("/scim/v2{path}"), SCIM_TOKEN, &body, ct).await
    }

    async fn create_user(&self, user_name: &str, extra: Value) -> Value {
        let mut body = json!({"schemas": [USER], "userName": user_name, "displayName": format!("{user_name} name")});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = self.call(Method::POST, "/Users", Some(body)).await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    }

    async fn create_group(&self, name: &str, members: &[&str]) -> Value {
        let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
        let r = self
            .call(Method::POST, "/Groups", Some(json!({"schemas": [GROUP], "displayName": name, "members": members})))
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    }

    async fn patch(&self, path: &str, ops: Value) -> Reply {
        self.call(Method::PATCH, path, Some(json!({"schemas": [PATCH], "Operations": ops}))).await
    }

    async fn principal(&self, id: &str) -> Option<tokengate::token::Principal> {
        self.gate.store.get_principal(id).await.unwrap()
    }

    /// Everything SCIM could change: principals, groups, the audit log.
    async fn snapshot(&self) -> (Vec<tokengate::token::Principal>, Vec<tokengate::token::Group>, usize) {
        let s = &self.gate.store;
        (
            s.list_principals(None, 1000).await.unwrap().items,
            s.list_groups(None, 1000).await.unwrap().items,
            s.audit(10_000).await.unwrap().len(),
        )
    }
}

/// A SCIM error body with this status (and `scimType`, when given).
fn assert_scim_error(r: &Reply, status: u16, scim_type: Option<&str>, what: &str) {
    assert_eq!(r.status.as_u16(), status, "{what}: {}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.headers["content-type"], "application/scim+json", "{what}");
    let body = r.json();
    assert_eq!(body["schemas"], json!([ERROR]), "{what}");
    assert_eq!(body["status"], status.to_string(), "{what}");
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{what}");
    if let Some(t) = scim_type {
        assert_eq!(body["scimType"], t, "{what}: {body}");
    }
    assert!(!String::from_utf8_lossy(&r.body).contains(SCIM_TOKEN), "{what}: the token leaked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_is_off_without_a_credential() {
    let s = Scim::start_with(false).await;
    for credential in [SCIM_TOKEN, OPERATOR_KEY] {
        let r = s.raw(Method::GET, "/scim/v2/Users", credential, "", "").await;
        assert_eq!(r.status, 404);
        let r = s.raw(Method::GET, "/scim/v2/ServiceProviderConfig", credential, "", "").await;
        assert_eq!(r.status, 404);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_kept_apart() {
    let s = Scim::start().await;
    // A person with a working personal token.
    s.create_user("alice", json!({})).await;
    let (secret, _) =
        minter().issue(s.gate.store.as_ref(), &new_token(TokenKind::Personal, "t", "alice")).await.unwrap();
    let personal = secret.expose().to_string();
    assert_eq!(s.raw(Method::GET, "/v1/tokens", &personal, "", "").await.status, 200);

    let url = s.gate.admin_url("/scim/v2/Users");
    // Missing, malformed, wrong, nearly right, other schemes.
    let almost = format!("{}x", &SCIM_TOKEN[..SCIM_TOKEN.len() - 1]);
    let longer = format!("{SCIM_TOKEN}x");
    let basic = format!("Basic {SCIM_TOKEN}");
    let bad_headers: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![("authorization", "Bearer".into())],
        vec![("authorization", "Bearer ".into())],
        vec![("authorization", bearer("wrong"))],
        vec![("authorization", bearer(&almost))],
        vec![("authorization", bearer(&longer))],
        vec![("authorization", bearer(&SCIM_TOKEN[..SCIM_TOKEN.len() - 1]))],
        vec![("authorization", basic)],
        vec![("authorization", bearer(OPERATOR_KEY))],
        vec![("authorization", bearer(&personal))],
        vec![("authorization", bearer(SCIM_TOKEN)), ("authorization", bearer(SCIM_TOKEN))],
    ];
    for headers in &bad_headers {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = get(&url, &h).await;
        assert_scim_error(&r, 401, None, &format!("{headers:?}"));
        assert!(r.headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
        // Mutations too, and nothing is written.
        let body = Bytes::from(json!({"schemas": [USER], "userName": "mallory"}).to_string());
        let mut h2 = h.clone();
        h2.push(("content-type", "application/scim+json"));
        let r = send(Method::POST, &url, &h2, body).await;
        assert_eq!(r.status, 401);
        assert!(s.principal("mallory").await.is_none());
    }
    // The SCIM token opens nothing outside /scim/v2.
    for path in ["/v1/tokens", "/v1/session", "/v1/principals/alice", "/v1/audit"] {
        assert_eq!(s.raw(Method::GET, path, SCIM_TOKEN, "", "").await.status, 401, "{path}");
    }
    // The SCIM token on the proxy port is not a token.
    let r = get(&s.gate.url("/x"), &[("authorization", &bearer(SCIM_TOKEN))]).await;
    assert_eq!(r.status, 401);
    // The right one works, in any letter case of the scheme.
    assert_eq!(get(&url, &[("authorization", &format!("bearer {SCIM_TOKEN}"))]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_lifecycle() {
    let s = Scim::start().await;
    let created = s
        .create_user(
            "alice@example.com",
            json!({
                "externalId": "e-1",
                "name": {"givenName": "Alice", "familyName": "Smith"},
                "displayName": null,
                "emails": [{"value": "alice@home.org", "type": "home"}, {"value": "alice@example.com", "type": "work"}],
            }),
        )
        .await;
    assert_eq!(created["id"], "alice@example.com");
    assert_eq!(created["displayName"], "Alice Smith");
    assert_eq!(created["emails"], json!([{"value": "alice@example.com", "type": "work"}]));
    assert_eq!(created["active"], true);
    assert_eq!(created[ENTERPRISE]["organization"], "acme", "scim.org applies");
    let meta = &created["meta"];
    assert_eq!(meta["resourceType"], "User");
    assert!(meta["location"].as_str().unwrap().ends_with("/scim/v2/Users/alice@example.com"));
    assert!(meta["created"].is_string() && meta["lastModified"].is_string() && meta["version"].is_string());
    let p = s.principal("alice@example.com").await.unwrap();
    assert_eq!(
        (p.display_name.as_str(), p.email.as_deref(), p.org.as_deref()),
        ("Alice Smith", Some("alice@example.com"), Some("acme"))
    );
    assert_eq!(p.external_id.as_deref(), Some("e-1"));

    // GET, with ETag and the SCIM media type.
    let r = s.call(Method::GET, "/Users/alice@example.com", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/scim+json");
    assert_eq!(r.headers["etag"].to_str().unwrap(), meta["version"].as_str().unwrap());
    assert_eq!(r.json(), created);
    // Percent-encoded ids mean the same.
    assert_eq!(s.call(Method::GET, "/Users/alice%40example.com", None).await.status, 200);

    // A second POST of the same userName conflicts.
    let r = s.call(Method::POST, "/Users", Some(json!({"schemas": [USER], "userName": "alice@example.com"}))).await;
    assert_scim_error(&r, 409, Some("uniqueness"), "duplicate");

    // PUT replaces what a user body says; roles are untouched.
    let r = s
        .call(
            Method::PUT,
            "/Users/alice@example.com",
            Some(json!({"schemas": [USER, ENTERPRISE], "userName": "alice@example.com", "displayName": "Alice S.", ENTERPRISE: {"organization": "globex"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let p = s.principal("alice@example.com").await.unwrap();
    assert_eq!(
        (p.display_name.as_str(), p.email, p.org.as_deref(), p.external_id),
        ("Alice S.", None, Some("globex"), None)
    );
    // userName cannot change.
    let r = s.call(Method::PUT, "/Users/alice@example.com", Some(json!({"schemas": [USER], "userName": "bob"}))).await;
    assert_scim_error(&r, 400, Some("mutability"), "rename");

    // PATCH in Entra ID's shapes.
    let r = s
        .patch(
            "/Users/alice@example.com",
            json!([
                {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "a@example.com"},
                {"op": "Replace", "path": "displayName", "value": "Alice Work"},
                {"op": "Replace", "path": format!("{ENTERPRISE}:organization"), "value": "initech"},
                {"op": "Add", "path": "externalId", "value": "e-2"},
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let p = s.principal("alice@example.com").await.unwrap();
    assert_eq!(
        (p.email.as_deref(), p.display_name.as_str(), p.org.as_deref(), p.external_id.as_deref()),
        (Some("a@example.com"), "Alice Work", Some("initech"), Some("e-2"))
    );
    let r = s
        .patch(
            "/Users/alice@example.com",
            json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "b@example.com"}]),
        )
        .await;
    assert_eq!(r.json()["emails"][0]["value"], "b@example.com");
    let r = s.patch("/Users/alice@example.com", json!([{"op": "remove", "path": "emails[type eq \"work\"]"}])).await;
    assert!(r.json().get("emails").is_none());
    // The extension as a whole: removed, the configured default organization applies.
    let r = s.patch("/Users/alice@example.com", json!([{"op": "remove", "path": ENTERPRISE}])).await;
    assert_eq!(r.json()[ENTERPRISE]["organization"], "acme");
    let r = s
        .patch(
            "/Users/alice@example.com",
            json!([{"op": "add", "path": ENTERPRISE, "value": {"organization": "umbrella"}}]),
        )
        .await;
    assert_eq!(r.json()[ENTERPRISE]["organization"], "umbrella");
    // Deactivation, three ways.
    for (ops, active) in [
        (json!([{"op": "Replace", "value": {"active": false}}]), false),
        (json!([{"op": "replace", "path": "active", "value": true}]), true),
        (json!([{"op": "Replace", "path": "active", "value": "False"}]), false),
    ] {
        let r = s.patch("/Users/alice@example.com", ops).await;
        assert_eq!(r.json()["active"], active);
        assert_eq!(s.principal("alice@example.com").await.unwrap().deactivated, !active);
    }

    // If-Match with a stale version: 412, nothing changes.
    let stale = meta["version"].as_str().unwrap().to_string();
    let r = send(
        Method::PATCH,
        &s.gate.admin_url("/scim/v2/Users/alice@example.com"),
        &[("authorization", &bearer(SCIM_TOKEN)), ("content-type", "application/scim+json"), ("if-match", &stale)],
        Bytes::from(
            json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": true}]}).to_string(),
        ),
    )
    .await;
    assert_scim_error(&r, 412, None, "stale If-Match");
    assert!(s.principal("alice@example.com").await.unwrap().deactivated);
    let current =
        s.call(Method::GET, "/Users/alice@example.com", None).await.headers["etag"].to_str().unwrap().to_string();
    let r = send(
        Method::PATCH,
        &s.gate.admin_url("/scim/v2/Users/alice@example.com"),
        &[("authorization", &bearer(SCIM_TOKEN)), ("content-type", "application/json"), ("if-match", &current)],
        Bytes::from(
            json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": true}]}).to_string(),
        ),
    )
    .await;
    assert_eq!(r.status, 200);

    // attributes / excludedAttributes.
    let r = s.call(Method::GET, "/Users/alice@example.com?attributes=displayName", None).await.json();
    assert_eq!(r.as_object().unwrap().keys().collect::<Vec<_>>(), ["displayName", "id", "schemas"]);
    let r = s.call(Method::GET, "/Users/alice@example.com?excludedAttributes=displayName,meta", None).await.json();
    assert!(r.get("displayName").is_none() && r.get("meta").is_none() && r.get("userName").is_some());

    // DELETE revokes the person's personal tokens with the principal.
    let (_, token) =
        minter().issue(s.gate.store.as_ref(), &new_token(TokenKind::Personal, "t", "alice@example.com")).await.unwrap();
    let r = s.call(Method::DELETE, "/Users/alice@example.com", None).await;
    assert_eq!(r.status, 204);
    assert!(s.principal("alice@example.com").await.is_none());
    let t = s.gate.store.get(&token.id).await.unwrap().unwrap();
    assert_eq!(t.status, tokengate::token::TokenStatus::Revoked);
    assert_scim_error(&s.call(Method::GET, "/Users/alice@example.com", None).await, 404, None, "deleted");
    assert_scim_error(&s.call(Method::DELETE, "/Users/alice@example.com", None).await, 404, None, "deleted twice");
}

/// `GET /Users?<q>`: totalResults, itemsPerPage, startIndex and the ids listed.
async fn list(s: &Scim, q: &str) -> (u64, u64, u64, Vec<String>) {
    let r = s.call(Method::GET, &format!("/Users?{q}"), None).await;
    assert_eq!(r.status, 200, "{q}: {}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"]));
    let ids = v["Resources"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_string()).collect();
    (v["totalResults"].as_u64().unwrap(), v["itemsPerPage"].as_u64().unwrap(), v["startIndex"].as_u64().unwrap(), ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_paging() {
    let s = Scim::start().await;
    for i in 0..7 {
        s.create_user(&format!("user{i}"), json!({"externalId": format!("ext-{i}"), "active": i % 2 == 0})).await;
    }
    s.create_user("Zed", json!({"displayName": "Zed Zebra"})).await;
    let enc = |f: &str| url::form_urlencoded::byte_serialize(f.as_bytes()).collect::<String>();
    assert_eq!(list(&s, &format!("filter={}", enc(r#"userName eq "user3""#))).await.3, ["user3"]);
    assert_eq!(
        list(&s, &format!("filter={}", enc(r#"userName eq "USER3""#))).await.3,
        Vec::<String>::new(),
        "ids are case-exact"
    );
    assert_eq!(list(&s, &format!("filter={}", enc(r#"id eq "Zed""#))).await.3, ["Zed"]);
    assert_eq!(list(&s, &format!("filter={}", enc(r#"externalId eq "ext-5""#))).await.3, ["user5"]);
    assert_eq!(list(&s, &format!("filter={}", enc(r#"displayName co "zebra""#))).await.3, ["Zed"]);
    assert_eq!(
        list(&s, &format!("filter={}", enc(r#"userName sw "user" and active eq false"#))).await.3,
        ["user1", "user3", "user5"]
    );
    assert_eq!(
        list(&s, &format!("filter={}", enc(r#"userName eq "user0" or externalId eq "ext-6""#))).await.3,
        ["user0", "user6"]
    );
    assert_eq!(list(&s, &format!("filter={}", enc("externalId pr"))).await.0, 7);
    assert_eq!(list(&s, &format!("filter={}", enc("not (externalId pr)"))).await.3, ["Zed"]);
    assert_eq!(list(&s, &format!("filter={}", enc(r#"emails[type eq "work"]"#))).await.0, 0);
    // Plus-encoded spaces, as form encoders write them.
    assert_eq!(list(&s, "filter=userName+eq+%22user2%22").await.3, ["user2"]);
    // Paging: 1-based, in id order, totalResults counts every match.
    assert_eq!(list(&s, "startIndex=1&count=3").await, (8, 3, 1, vec!["Zed".into(), "user0".into(), "user1".into()]));
    assert_eq!(list(&s, "startIndex=7&count=3").await, (8, 2, 7, vec!["user5".into(), "user6".into()]));
    assert_eq!(list(&s, "startIndex=20").await.1, 0);
    assert_eq!(list(&s, "count=0").await, (8, 0, 1, vec![]));
    assert_eq!(list(&s, "startIndex=0&count=-5").await.1, 0, "below 1 is 1, negative is 0");
    assert_eq!(list(&s, "count=100000").await.1, 8, "capped at 200, not refused");
    // The same through POST /Users/.search.
    let r = s
        .call(
            Method::POST,
            "/Users/.search",
            Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName sw \"user\"", "startIndex": 2, "count": 2, "attributes": ["userName"]})),
        )
        .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!((v["totalResults"].clone(), v["Resources"][0]["userName"].clone()), (json!(7), json!("user1")));
    assert!(v["Resources"][0].get("displayName").is_none());
    // And across resource types, at the root: users first, then groups.
    s.create_group("user-group", &["user1"]).await;
    let r = s
        .call(
            Method::POST,
            "/.search",
            Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName eq \"user1\" or displayName sw \"user-\""})),
        )
        .await
        .json();
    assert_eq!(r["totalResults"], 2);
    assert_eq!(
        (r["Resources"][0]["id"].clone(), r["Resources"][1]["displayName"].clone()),
        (json!("user1"), json!("user-group"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_grant_roles_through_identity_groups() {
    let s = Scim::start().await;
    for u in ["alice", "bob", "carol"] {
        s.create_user(u, json!({})).await;
    }
    assert_eq!(s.principal("alice").await.unwrap().roles, Vec::<String>::new(), "no groups, no roles");
    let eng = s.create_group("eng", &["alice", "bob"]).await;
    let id = eng["id"].as_str().unwrap().to_string();
    assert_eq!(eng["members"].as_array().unwrap().len(), 2);
    assert!(eng["members"][0]["$ref"].as_str().unwrap().ends_with("/scim/v2/Users/alice"));
    let roles = |p: tokengate::token::Principal| (p.roles, p.groups, p.admin);
    assert_eq!(
        roles(s.principal("alice").await.unwrap()),
        (vec!["viewer".to_string(), "developer".into()], vec!["eng".to_string()], None)
    );
    // A second group with the same name conflicts; a group of unknown people is refused.
    assert_scim_error(
        &s.call(Method::POST, "/Groups", Some(json!({"schemas": [GROUP], "displayName": "eng"}))).await,
        409,
        Some("uniqueness"),
        "dup",
    );
    let r = s
        .call(
            Method::POST,
            "/Groups",
            Some(json!({"schemas": [GROUP], "displayName": "x", "members": [{"value": "nobody"}]})),
        )
        .await;
    assert_scim_error(&r, 400, Some("invalidValue"), "unknown member");

    let admins = s.create_group("admins", &["carol"]).await;
    let p = s.principal("carol").await.unwrap();
    assert_eq!((p.roles.clone(), p.admin), (vec!["admin".to_string()], Some(tokengate::token::AdminRole::Operator)));

    // Okta: replace members; Entra: add and remove with a value list.
    let r = s
        .patch(
            &format!("/Groups/{id}"),
            json!([{"op": "replace", "path": "members", "value": [{"value": "bob"}, {"value": "carol"}]}]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(s.principal("alice").await.unwrap().roles, Vec::<String>::new());
    let carol = s.principal("carol").await.unwrap();
    assert_eq!(carol.roles, ["viewer", "developer", "admin"]);
    assert_eq!(carol.groups, ["admins", "eng"]);
    let r = s.patch(&format!("/Groups/{id}"), json!([{"op": "Remove", "path": "members", "value": [{"value": "bob"}]}, {"op": "Add", "path": "members", "value": [{"value": "alice"}]}])).await;
    assert_eq!(r.status, 200);
    assert_eq!(s.principal("bob").await.unwrap().roles, Vec::<String>::new());
    assert_eq!(s.principal("alice").await.unwrap().roles, ["viewer", "developer"]);
    let r = s.patch(&format!("/Groups/{id}"), json!([{"op": "remove", "path": "members[value eq \"alice\"]"}])).await;
    assert_eq!(r.status, 200);
    assert!(s.principal("alice").await.unwrap().roles.is_empty());
    // Renaming a group changes what it grants: "readers" grants only viewer.
    let r = s.patch(&format!("/Groups/{id}"), json!([{"op": "replace", "value": {"displayName": "readers"}}])).await;
    assert_eq!(r.json()["displayName"], "readers");
    assert_eq!(s.principal("carol").await.unwrap().roles, ["viewer", "admin"]);
    // A user deleted leaves their groups; a group deleted takes its grants with it.
    assert_eq!(s.call(Method::DELETE, "/Users/bob", None).await.status, 204);
    let admins_id = admins["id"].as_str().unwrap();
    assert_eq!(s.call(Method::DELETE, &format!("/Groups/{admins_id}"), None).await.status, 204);
    let carol = s.principal("carol").await.unwrap();
    assert_eq!(
        (carol.roles, carol.admin, carol.groups),
        (vec!["viewer".to_string()], None, vec!["readers".to_string()])
    );
    // Filters on groups.
    let enc = |f: &str| url::form_urlencoded::byte_serialize(f.as_bytes()).collect::<String>();
    let r = s.call(Method::GET, &format!("/Groups?filter={}", enc(r#"displayName eq "readers""#)), None).await.json();
    assert_eq!(r["totalResults"], 1);
    let r = s.call(Method::GET, &format!("/Groups?filter={}", enc(r#"members[value eq "carol"]"#)), None).await.json();
    assert_eq!(r["Resources"][0]["id"], id);
    let r = s
        .call(
            Method::GET,
            &format!("/Groups?filter={}&excludedAttributes=members", enc(&format!("id eq \"{id}\""))),
            None,
        )
        .await
        .json();
    assert!(r["Resources"][0].get("members").is_none());
    // PUT replaces the member list.
    let r = s
        .call(
            Method::PUT,
            &format!("/Groups/{id}"),
            Some(json!({"schemas": [GROUP], "displayName": "eng", "members": [{"value": "alice"}]})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(s.principal("carol").await.unwrap().roles, Vec::<String>::new());
    assert_eq!(s.principal("alice").await.unwrap().roles, ["viewer", "developer"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_documents() {
    let s = Scim::start().await;
    let spc = s.call(Method::GET, "/ServiceProviderConfig", None).await.json();
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["filter"]["maxResults"], 200);
    assert_eq!(spc["bulk"]["supported"], false);
    let types = s.call(Method::GET, "/ResourceTypes", None).await.json();
    assert_eq!(types["totalResults"], 2);
    assert_eq!(s.call(Method::GET, "/ResourceTypes/User", None).await.json()["endpoint"], "/Users");
    let schemas = s.call(Method::GET, "/Schemas", None).await.json();
    assert_eq!(schemas["totalResults"], 3);
    assert_eq!(s.call(Method::GET, &format!("/Schemas/{USER}"), None).await.json()["name"], "User");
    assert_scim_error(&s.call(Method::GET, "/Schemas/urn:nope", None).await, 404, None, "unknown schema");
    assert_scim_error(&s.call(Method::GET, "/Nope", None).await, 404, None, "unknown endpoint");
    let r = s.call(Method::POST, "/ServiceProviderConfig", Some(json!({}))).await;
    assert_scim_error(&r, 405, None, "POST SPC");
    assert_eq!(r.headers["allow"], "GET");
    assert_scim_error(&s.call(Method::DELETE, "/Users", None).await, 405, None, "DELETE /Users");
}

/// Method, path under /scim/v2, body, content type, the status and scimType expected.
type Case<'a> = (Method, String, String, &'a str, u16, Option<&'a str>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_refused_and_changes_nothing() {
    let s = Scim::start().await;
    s.create_user("alice", json!({"externalId": "e"})).await;
    let g = s.create_group("eng", &["alice"]).await;
    let gid = g["id"].as_str().unwrap().to_string();
    let before = s.snapshot().await;
    let big = "x".repeat(70 * 1024);
    let deep = format!("{}userName pr{}", "(".repeat(200), ")".repeat(200));
    let long_filter = format!("userName eq \"{}\"", "a".repeat(5000));
    let many_ops: Vec<Value> =
        (0..101).map(|_| json!({"op": "replace", "path": "displayName", "value": "x"})).collect();
    let enc = |f: &str| url::form_urlencoded::byte_serialize(f.as_bytes()).collect::<String>();
    let user = |v: Value| {
        let mut b = json!({"schemas": [USER]});
        for (k, x) in v.as_object().unwrap() {
            b[k] = x.clone();
        }
        b.to_string()
    };
    let patch = |ops: Value| json!({"schemas": [PATCH], "Operations": ops}).to_string();
    let ug = format!("/Groups/{gid}");
    let cases: Vec<Case> = vec![
        // Bodies.
        (Method::POST, "/Users".into(), "{".into(), "application/scim+json", 400, Some("invalidSyntax")),
        (Method::POST, "/Users".into(), "[]".into(), "application/scim+json", 400, Some("invalidSyntax")),
        (Method::POST, "/Users".into(), "null".into(), "application/scim+json", 400, Some("invalidSyntax")),
        (Method::POST, "/Users".into(), user(json!({"userName": "bob"})), "text/plain", 415, None),
        (Method::POST, "/Users".into(), user(json!({"userName": "bob"})), "", 415, None),
        (
            Method::POST,
            "/Users".into(),
            user(json!({"userName": "bob", "displayName": big})),
            "application/scim+json",
            413,
            None,
        ),
        (
            Method::POST,
            "/Users".into(),
            json!({"userName": "bob"}).to_string(),
            "application/scim+json",
            400,
            Some("invalidSyntax"),
        ),
        (
            Method::POST,
            "/Users".into(),
            json!({"schemas": "x", "userName": "bob"}).to_string(),
            "application/scim+json",
            400,
            Some("invalidSyntax"),
        ),
        (Method::POST, "/Users".into(), user(json!({})), "application/scim+json", 400, Some("invalidValue")),
        (
            Method::POST,
            "/Users".into(),
            user(json!({"userName": "bob smith"})),
            "application/scim+json",
            400,
            Some("invalidValue"),
        ),
        (
            Method::POST,
            "/Users".into(),
            user(json!({"userName": "bob\r\nX-Auth-Roles: admin"})),
            "application/scim+json",
            400,
            Some("invalidValue"),
        ),
        (
            Method::POST,
            "/Users".into(),
            user(json!({"userName": ".."})),
            "application/scim+json",
            400,
            Some("invalidValue"),
        ),
        (
            Method::POST,
            "/Users".into(),
            user(json!({"userName": "a".repeat(129)})),
            "application/scim+json",
            400,
            Some("invalidValue"),
        ),
        (
            Method::POST,
            "/Users".into(),
            user(json!({"userName": ["bob"]})),
            "application/scim+json",
            400,
            Some("invalidValue"),
        ),
        (
            Method::POST,
            "/Users".into(),
            user(json!({"userName": "bob", "active": "maybe"})),
            "application/scim+json",
            400,
            Some("invalidValue"),
        ),
        (
            Method::POST,
            "/Users".into(),
            user(json!({"userName": "bob", "displayName": "B\u{202e}ob"})),
            "application/scim+json",
            400,
            Some("invalidValue"),
        ),
        (
            Method::POST,
            "/Users".into(),
            user(json!({"userName": "bob", "emails": [{"value": "not an email"}]})),
            "application/scim+json",
            400,
            Some("invalidValue"),
        ),
        (
            Method::POST,
            "/Users".into(),
            user(json!({"userName": "bob", ENTERPRISE: {"organization": "a/b"}})),
            "application/scim+json",
            400,
            Some("invalidValue"),
        ),
        (
            Method::POST,
            "/Users".into(),
            user(json!({"userName": "bob", "UserName": "eve"})),
            "application/scim+json",
            400,
            Some("invalidSyntax"),
        ),
        (
            Method::POST,
            "/Users".into(),
            user(json!({"userName": "alice"})),
            "application/scim+json",
            409,
            Some("uniqueness"),
        ),
        (
            Method::POST,
            "/Groups".into(),
            json!({"schemas": [GROUP]}).to_string(),
            "application/scim+json",
            400,
            Some("invalidValue"),
        ),
        (
            Method::POST,
            "/Groups".into(),
            json!({"schemas": [GROUP], "displayName": "a\u{0}b"}).to_string(),
            "application/scim+json",
            400,
            Some("invalidValue"),
        ),
        (
            Method::POST,
            "/Groups".into(),
            json!({"schemas": [GROUP], "displayName": "x", "members": [{"value": "../alice"}]}).to_string(),
            "application/scim+json",
            400,
            Some("invalidValue"),
        ),
        (
            Method::POST,
            "/Groups".into(),
            json!({"schemas": [GROUP], "displayName": "x", "members": "alice"}).to_string(),
            "application/scim+json",
            400,
            Some("invalidValue"),
        ),
        (
            Method::PUT,
            "/Users/alice".into(),
            user(json!({"userName": "root"})),
            "application/scim+json",
            400,
            Some("mutability"),
        ),
        (Method::PUT, "/Users/nobody".into(), user(json!({"userName": "nobody"})), "application/scim+json", 404, None),
        (
            Method::PUT,
            ug.clone(),
            json!({"schemas": [GROUP], "displayName": "eng", "members": [{"value": "ghost"}]}).to_string(),
            "application/scim+json",
            400,
            Some("invalidValue"),
        ),
        // PATCH.
        (Method::PATCH, "/Users/alice".into(), patch(json!([])), "application/scim+json", 400, Some("invalidSyntax")),
        (
            Method::PATCH,
            "/Users/alice".into(),
            json!({"Operations": [{"op": "add", "path": "displayName", "value": "x"}]}).to_string(),
            "application/scim+json",
            400,
            Some("invalidSyntax"),
        ),
        (
            Method::PATCH,
            "/Users/alice".into(),
            patch(Value::Array(many_ops)),
            "application/scim+json",
            400,
            Some("invalidSyntax"),
        ),
        (
            Method::PATCH,
            "/Users/alice".into(),
            patch(json!([{"op": "copy", "path": "displayName"}])),
            "application/scim+json",
            400,
            Some("invalidSyntax"),
        ),
        (
            Method::PATCH,
            "/Users/alice".into(),
            patch(json!([{"op": "remove"}])),
            "application/scim+json",
            400,
            Some("noTarget"),
        ),
        (
            Method::PATCH,
            "/Users/alice".into(),
            patch(json!([{"op": "replace", "path": "emails[type eq", "value": "x"}])),
            "application/scim+json",
            400,
            Some("invalidPath"),
        ),
        (
            Method::PATCH,
            "/Users/alice".into(),
            patch(json!([{"op": "replace", "path": deep.clone(), "value": "x"}])),
            "application/scim+json",
            400,
            Some("invalidPath"),
        ),
        (
            Method::PATCH,
            "/Users/alice".into(),
            patch(json!([{"op": "replace", "path": "id", "value": "root"}])),
            "application/scim+json",
            400,
            Some("mutability"),
        ),
        // Not a character boundary four bytes in: once a panic (found by the scim_filter fuzz target).
        (
            Method::PATCH,
            "/Users/alice".into(),
            patch(json!([{"op": "replace", "path": "ur\u{e9}\u{e9}", "value": "x"}])),
            "application/scim+json",
            400,
            Some("invalidPath"),
        ),
        (
            Method::PATCH,
            "/Users/alice".into(),
            patch(json!([{"op": "replace", "value": {"\u{0}\u{0}\u{0}\u{71b}i": "x"}}])),
            "application/scim+json",
            400,
            Some("invalidPath"),
        ),
        (
            Method::PATCH,
            "/Users/alice".into(),
            patch(json!([{"op": "replace", "path": "userName", "value": "root"}])),
            "application/scim+json",
            400,
            Some("mutability"),
        ),
        (
            Method::PATCH,
            "/Users/alice".into(),
            patch(json!([{"op": "replace", "path": "groups", "value": [{"value": "admins"}]}])),
            "application/scim+json",
            400,
            Some("mutability"),
        ),
        (
            Method::PATCH,
            "/Users/alice".into(),
            patch(json!([{"op": "replace", "path": "active", "value": "nope"}])),
            "application/scim+json",
            400,
            Some("invalidValue"),
        ),
        // A valid first operation and an invalid second: nothing of the first is kept.
        (
            Method::PATCH,
            "/Users/alice".into(),
            patch(
                json!([{"op": "replace", "path": "active", "value": false}, {"op": "replace", "path": "displayName", "value": ""}]),
            ),
            "application/scim+json",
            400,
            Some("invalidValue"),
        ),
        (
            Method::PATCH,
            "/Users/alice".into(),
            patch(json!([{"op": "replace", "path": "urn:evil:x:organization", "value": "y"}])),
            "application/scim+json",
            400,
            Some("invalidPath"),
        ),
        (
            Method::PATCH,
            ug.clone(),
            patch(json!([{"op": "add", "path": "members", "value": [{"value": "ghost"}]}])),
            "application/scim+json",
            400,
            Some("invalidValue"),
        ),
        (
            Method::PATCH,
            ug.clone(),
            patch(json!([{"op": "replace", "path": "displayName", "value": 7}])),
            "application/scim+json",
            400,
            Some("invalidValue"),
        ),
        (
            Method::PATCH,
            ug.clone(),
            patch(json!([{"op": "replace", "path": "id", "value": "0"}])),
            "application/scim+json",
            400,
            Some("mutability"),
        ),
        (
            Method::PATCH,
            "/Users/nobody".into(),
            patch(json!([{"op": "replace", "path": "active", "value": false}])),
            "application/scim+json",
            404,
            None,
        ),
        // Filters and query parameters.
        (Method::GET, format!("/Users?filter={}", enc("userName eq")), String::new(), "", 400, Some("invalidFilter")),
        (
            Method::GET,
            format!("/Users?filter={}", enc("userName eq alice")),
            String::new(),
            "",
            400,
            Some("invalidFilter"),
        ),
        (Method::GET, format!("/Users?filter={}", enc(&deep)), String::new(), "", 400, Some("invalidFilter")),
        (Method::GET, format!("/Users?filter={}", enc(&long_filter)), String::new(), "", 400, Some("invalidFilter")),
        (
            Method::GET,
            format!("/Users?filter={}", enc("userName eq \"a\" and")),
            String::new(),
            "",
            400,
            Some("invalidFilter"),
        ),
        (
            Method::GET,
            format!("/Groups?filter={}", enc("members[value eq \"a\"")),
            String::new(),
            "",
            400,
            Some("invalidFilter"),
        ),
        (Method::GET, "/Users?count=ten".into(), String::new(), "", 400, Some("invalidValue")),
        (Method::GET, "/Users?count=1&count=2".into(), String::new(), "", 400, Some("invalidValue")),
        (Method::GET, "/Users?attributes=a&excludedAttributes=b".into(), String::new(), "", 400, Some("invalidValue")),
        (Method::GET, "/Users?attributes=%20%22".into(), String::new(), "", 400, Some("invalidValue")),
        (Method::GET, "/Users".into(), "{}".into(), "application/scim+json", 400, Some("invalidSyntax")),
        // Paths.
        (Method::GET, "/Users/..".into(), String::new(), "", 404, None),
        (Method::GET, "/Users/a%2Fb".into(), String::new(), "", 404, None),
        (Method::GET, "/Groups/alice".into(), String::new(), "", 404, None),
        (Method::GET, "/Groups/00000000000000000000000000000000".into(), String::new(), "", 404, None),
        (Method::GET, "/Users/alice/extra".into(), String::new(), "", 404, None),
        (Method::DELETE, "/Groups/nope".into(), String::new(), "", 404, None),
        (
            Method::DELETE,
            "/Users/alice".into(),
            "{\"x\":1}".into(),
            "application/scim+json",
            400,
            Some("invalidSyntax"),
        ),
        (Method::POST, "/Users/alice".into(), user(json!({"userName": "alice"})), "application/scim+json", 405, None),
    ];
    for (method, path, body, ct, status, scim_type) in cases {
        let what = format!("{method} {path} {}", &body.chars().take(120).collect::<String>());
        let r = s.raw(method, &format!("/scim/v2{path}"), SCIM_TOKEN, &body, ct).await;
        assert_scim_error(&r, status, scim_type, &what);
        assert_eq!(s.snapshot().await, before, "{what} changed the store");
    }
    // A bad percent-encoding in the path is refused before SCIM (the admin listener's own 400).
    let r = s.raw(Method::GET, "/scim/v2/Users/%FF", SCIM_TOKEN, "", "").await;
    assert_eq!(r.status, 400);
    // Cross-site mutations are refused.
    let r = send(
        Method::POST,
        &s.gate.admin_url("/scim/v2/Users"),
        &[
            ("authorization", &bearer(SCIM_TOKEN)),
            ("content-type", "application/scim+json"),
            ("sec-fetch-site", "cross-site"),
        ],
        Bytes::from(user(json!({"userName": "bob"}))),
    )
    .await;
    assert_scim_error(&r, 403, None, "cross-site");
    assert_eq!(s.snapshot().await, before);
}

/// Deprovisioning on two replicas sharing one real Redis: a person's personal token works
/// through both proxies until SCIM deactivates (and, separately, deletes) them; the time until
/// both refuse it is measured. Their organization's token keeps working, and a group change
/// changes the roles their token carries on the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deprovisioning_reaches_every_replica() {
    let redis = RedisServer::start();
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = scim_extra(dir.path(), true);
    let a = Gate::start(&redis_config(&upstream.url(), &redis.url(), &extra)).await;
    let b = Gate::start(&redis_config(&upstream.url(), &redis.url(), &extra)).await;
    for g in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while get(&g.admin_url("/readyz"), &[]).await.status != 200 {
            assert!(Instant::now() < deadline, "not ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let scim = |method: Method, path: &str, body: Value| {
        let url = a.admin_url(&format!("/scim/v2{path}"));
        let body = if body.is_null() { Bytes::new() } else { Bytes::from(body.to_string()) };
        async move {
            send(
                method,
                &url,
                &[("authorization", &bearer(SCIM_TOKEN)), ("content-type", "application/scim+json")],
                body,
            )
            .await
        }
    };
    for user in ["dave", "erin"] {
        let r = scim(Method::POST, "/Users", json!({"schemas": [USER], "userName": user})).await;
        assert_eq!(r.status, 201);
    }
    let r = scim(
        Method::POST,
        "/Groups",
        json!({"schemas": [GROUP], "displayName": "eng", "members": [{"value": "dave"}, {"value": "erin"}]}),
    )
    .await;
    assert_eq!(r.status, 201);
    let group = r.json()["id"].as_str().unwrap().to_string();
    let mut personal = Vec::new();
    for user in ["dave", "erin"] {
        let mut req = new_token(TokenKind::Personal, "laptop", user);
        req.roles = vec!["viewer".into(), "developer".into()];
        let (secret, _) = minter().issue(a.store.as_ref(), &req).await.unwrap();
        personal.push(bearer(secret.expose()));
    }
    let mut req = new_token(TokenKind::Organization, "ci", "acme");
    req.created_by = "dave".into();
    req.roles = vec!["viewer".into()];
    let (org_secret, _) = minter().issue(a.store.as_ref(), &req).await.unwrap();
    let org = bearer(org_secret.expose());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = |g: &Gate, auth: &str| {
        let url = g.url("/x");
        let auth = auth.to_string();
        async move { get(&url, &[("authorization", &auth)]).await }
    };
    for g in [&a, &b] {
        for auth in personal.iter().chain([&org]) {
            assert_eq!(status(g, auth).await.status, 200);
        }
        assert_eq!(status(g, &personal[0]).await.upstream_header("x-auth-roles"), ["viewer,developer"]);
    }

    // Changing a group changes x-auth-roles on the next request (through the other replica).
    let r = scim(
        Method::PATCH,
        &format!("/Groups/{group}"),
        json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"displayName": "readers"}}]}),
    )
    .await;
    assert_eq!(r.status, 200);
    let started = Instant::now();
    loop {
        let roles = status(&b, &personal[0]).await.upstream_header("x-auth-roles");
        if roles == ["viewer"] {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "roles still {roles:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("group change reached replica b in {:?}", started.elapsed());

    /// Polls both replicas until both refuse `auth`; returns how long that took.
    async fn until_refused(gates: [&Gate; 2], auth: &str, since: Instant) -> Duration {
        let mut refused = [false, false];
        loop {
            for (i, g) in gates.iter().enumerate() {
                if !refused[i] {
                    refused[i] = get(&g.url("/x"), &[("authorization", auth)]).await.status == 401;
                }
            }
            if refused == [true, true] {
                return since.elapsed();
            }
            assert!(since.elapsed() < Duration::from_secs(5), "still accepted after 5 s: {refused:?}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    // Deactivation through SCIM (replica a's admin port).
    let started = Instant::now();
    let r = scim(
        Method::PATCH,
        "/Users/dave",
        json!({"schemas": [PATCH], "Operations": [{"op": "Replace", "value": {"active": false}}]}),
    )
    .await;
    assert_eq!(r.status, 200);
    let answered = started.elapsed();
    let took = until_refused([&a, &b], &personal[0], started).await;
    println!("deactivation: SCIM answered in {answered:?}; both replicas refuse the personal token after {took:?}");
    for g in [&a, &b] {
        assert_eq!(status(g, &org).await.status, 200, "the organization's token keeps working");
        assert_eq!(status(g, &personal[1]).await.status, 200, "someone else's token keeps working");
    }
    // Reactivation brings it back.
    let r = scim(
        Method::PATCH,
        "/Users/dave",
        json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": true}]}),
    )
    .await;
    assert_eq!(r.status, 200);
    let started = Instant::now();
    while status(&b, &personal[0]).await.status != 200 {
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Deletion through SCIM.
    let started = Instant::now();
    let r = scim(Method::DELETE, "/Users/erin", json!(null)).await;
    assert_eq!(r.status, 204);
    let answered = started.elapsed();
    let took = until_refused([&a, &b], &personal[1], started).await;
    println!("deletion: SCIM answered in {answered:?}; both replicas refuse the personal token after {took:?}");
    for g in [&a, &b] {
        assert_eq!(status(g, &org).await.status, 200, "the organization's token keeps working");
    }
}

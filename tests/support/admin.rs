//! The admin API as a test client sees it: a gate with an operator key, and call helpers.

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use super::gate::{Gate, Reply, bearer, embedded_config, send};
use super::upstream::Upstream;

pub const OPERATOR_KEY: &str = "operator-key-0123456789";
/// The operator key's name in the keys file; the audit log records `key:ops`.
pub const OPERATOR_KEY_NAME: &str = "ops";

pub struct Admin {
    pub _dir: tempfile::TempDir,
    pub _upstream: Upstream,
    pub gate: Gate,
}

impl Admin {
    pub async fn start(extra: &str) -> Self {
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_bound(extra, admin).await
    }

    /// [`Admin::start`] on an admin listener bound beforehand.
    #[allow(dead_code)]
    pub async fn start_bound(extra: &str, admin: tokio::net::TcpListener) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("admin-keys");
        std::fs::write(&keys, format!("# operators\n{OPERATOR_KEY_NAME} {OPERATOR_KEY}\n")).unwrap();
        let upstream = Upstream::start().await;
        let yaml =
            embedded_config(&upstream.url(), dir.path(), &format!("admin:\n  keys_file: {}\n{extra}", keys.display()));
        let gate = Gate::start_bound(&yaml, admin).await;
        Self { _dir: dir, _upstream: upstream, gate }
    }

    /// Calls the API with `credential` as the bearer and an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, credential: &str, body: Option<Value>) -> Reply {
        let auth = bearer(credential);
        let mut headers = vec![("authorization", auth.as_str())];
        let body = match body {
            Some(v) => {
                headers.push(("content-type", "application/json"));
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        send(method, &self.gate.admin_url(path), &headers, body).await
    }

    pub async fn op(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call(method, path, OPERATOR_KEY, body).await
    }

    pub async fn principal(&self, id: &str, org: Option<&str>, roles: &[&str]) {
        let r = self
            .op(
                Method::PUT,
                &format!("/v1/principals/{id}"),
                Some(json!({"display_name": id, "org": org, "roles": roles})),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json());
    }

    /// Creates a token with `credential`; returns the response body.
    pub async fn create(&self, credential: &str, body: Value) -> Value {
        let r = self.call(Method::POST, "/v1/tokens", credential, Some(body)).await;
        assert_eq!(r.status, 201, "{:?}", r.json());
        r.json()
    }

    /// Everything an operator can observe of the stored state.
    pub async fn snapshot(&self) -> (Value, Value) {
        let tokens = self.op(Method::GET, "/v1/tokens?limit=200", None).await.json();
        let audit = self.op(Method::GET, "/v1/audit?limit=1000", None).await.json();
        (tokens, audit)
    }
}

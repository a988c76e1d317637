//! Runs tokengate in-process on ephemeral loopback ports, plus a small HTTP client.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokengate::app::App;
use tokengate::config::Config;
use tokengate::store::Store;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running tokengate.
pub struct Gate {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub store: Store,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Gate {
    /// Starts tokengate with `yaml` (which must set `upstream` and the store).
    pub async fn start(yaml: &str) -> Self {
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_bound(yaml, admin).await
    }

    /// [`Gate::start`] with an admin listener bound beforehand (when the config must name its
    /// address, e.g. an OpenID Connect redirect URL).
    #[allow(dead_code)]
    pub async fn start_bound(yaml: &str, admin: TcpListener) -> Self {
        let config = Config::from_yaml(yaml, &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let app = App::build(config).await.unwrap();
        let store = app.store().clone();
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, admin_addr) = (proxy.local_addr().unwrap(), admin.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run(proxy, admin, async move {
            let _ = stopped.await;
        }));
        Self { addr, admin: admin_addr, store, stop: Some(stop), task: Some(task) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Asks it to shut down (as SIGTERM would) and waits until it has drained and flushed.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// YAML for a gate in front of `upstream` with an embedded store in `dir`, plus `extra`.
pub fn embedded_config(upstream: &str, dir: &std::path::Path, extra: &str) -> String {
    format!("upstream: {upstream}\nstore:\n  embedded:\n    path: {}\n{extra}", dir.join("tokens.redb").display())
}

/// YAML for a gate in front of `upstream` with a Redis store, plus `extra`.
pub fn redis_config(upstream: &str, redis_url: &str, extra: &str) -> String {
    format!(
        "upstream: {upstream}\nstore:\n  redis:\n    url: {redis_url}\n    key_prefix: test\n    connect_timeout: 300ms\n    command_timeout: 500ms\n{extra}"
    )
}

/// A response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The headers the echo upstream received, lowercased names, in order.
    pub fn upstream_headers(&self) -> Vec<(String, String)> {
        serde_json::from_value(self.json()["headers"].clone()).unwrap()
    }

    /// Values of one header as the upstream received it.
    pub fn upstream_header(&self, name: &str) -> Vec<String> {
        self.upstream_headers().into_iter().filter(|(k, _)| k == name).map(|(_, v)| v).collect()
    }
}

/// Sends one HTTP/1.1 request with the given headers (repeats allowed) and body.
pub async fn send(method: Method, url: &str, headers: &[(&str, &str)], body: Bytes) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::builder().method(method).uri(url).body(Full::new(body)).unwrap();
    for (k, v) in headers {
        req.headers_mut().append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    let resp = client.request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    Reply { status: parts.status, headers: parts.headers, body: body.collect().await.unwrap().to_bytes() }
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    send(Method::GET, url, headers, Bytes::new()).await
}

/// `Authorization: Bearer <token>`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

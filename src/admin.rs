//! The admin listener: health, readiness and metrics. (The token lifecycle API and the Tokens
//! page are served here too once they exist.)
//!
//! - `GET /healthz`: the process is alive.
//! - `GET /readyz`: the store answers and the invalidation feed is connected, and the process is
//!   not draining; 503 with the reason otherwise.
//! - `GET /metrics`: Prometheus text format.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use prometheus::Registry;

use crate::server::ConnInfo;
use crate::store::Store;

/// How long readiness waits for the store to answer.
const READY_PING_TIMEOUT: Duration = Duration::from_secs(1);

/// A cheap-to-clone handle to the admin service.
#[derive(Clone)]
pub struct Admin {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    registry: Registry,
    draining: AtomicBool,
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json(status, serde_json::json!({ "error": { "code": code, "message": message } }))
}

impl Admin {
    pub fn new(store: Store, registry: Registry) -> Self {
        Self { inner: Arc::new(Inner { store, registry, draining: AtomicBool::new(false) }) }
    }

    /// From now on readiness reports "draining" so load balancers stop sending traffic.
    pub fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::Release);
    }

    pub async fn handle(&self, req: Request<Incoming>, _conn: ConnInfo) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        let known = matches!(path, "/healthz" | "/readyz" | "/metrics");
        if !known {
            return error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "use GET");
            r.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        match path {
            "/healthz" => json(StatusCode::OK, serde_json::json!({ "status": "ok" })),
            "/readyz" => self.readiness().await,
            _ => {
                let mut r = Response::new(Full::new(Bytes::from(crate::metrics::render(&self.inner.registry))));
                r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
                r
            }
        }
    }

    async fn readiness(&self) -> Response<Full<Bytes>> {
        let store = &self.inner.store;
        if self.inner.draining.load(Ordering::Acquire) {
            return json(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({ "status": "draining" }));
        }
        let ping = match tokio::time::timeout(READY_PING_TIMEOUT, store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the store did not answer in time".to_string()),
        };
        let subscribed = store.invalidations_connected();
        match (ping, subscribed) {
            (Ok(()), true) => json(StatusCode::OK, serde_json::json!({ "status": "ready", "store": store.backend() })),
            (ping, subscribed) => json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({
                    "status": "unavailable",
                    "store": store.backend(),
                    "store_error": ping.err(),
                    "invalidations_connected": subscribed,
                }),
            ),
        }
    }
}

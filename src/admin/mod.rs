//! The admin listener: the token lifecycle API, the Tokens page, health, readiness, metrics.
//!
//! | module          | what lives there                                                        |
//! |-----------------|-------------------------------------------------------------------------|
//! | `mod.rs`        | [`Admin`]: the listener's routes, the `/v1` call limit, cross-site refusal, readiness |
//! | [`api`]         | the JSON API under `/v1`: routing, input checks, tokens, principals, audit |
//! | [`views`]       | the API's token responses as types (also read by the CLI)               |
//! | [`access`]      | who is calling (operator key, personal token, signed-in person) and what they may do |
//! | [`keys`]        | the operator keys in force; `admin.keys_file` re-read when it changes   |
//! | [`signin`]      | OpenID Connect, trusted headers, sealed sessions (`/auth/*`)            |
//! | [`scim`]        | SCIM 2.0 directory sync under `/scim/v2` (its own credential)           |
//! | [`error`]       | [`error::ApiError`], the only place an admin failure becomes HTTP       |
//! | [`webhook`]     | notifications of created tokens                                         |
//! | `ui.rs`         | the Tokens page and its embedded assets                                 |
//!
//! What it may use: auth, store, token, policy, net, config, metrics (and the cross-cutting
//! clock, logging, shutdown). Never the proxy: the data path and the admin listener only meet in
//! [`crate::app`]. Outside tests, only `app` and `cli` use this module.
//!
//! | path                      | what                                                    |
//! |---------------------------|---------------------------------------------------------|
//! | `GET /`                   | the Tokens page (assets embedded in the binary)         |
//! | `/v1/...`                 | the JSON API ([`api`]); an admin key, a personal token or a sign-in |
//! | `/auth/...`               | sign-in: `methods`, `login`, `callback`, `logout` ([`signin`]) |
//! | `/scim/v2/...`            | SCIM ([`scim`]); only the SCIM token, 404 when none is set |
//! | `GET /healthz`            | the process is alive                                    |
//! | `GET /readyz`             | store reachable, invalidations subscribed, not draining |
//! | `GET /metrics`            | Prometheus text format                                  |
//!
//! At most `admin.max_concurrent_calls` `/v1` calls run at once (503 with `Retry-After` beyond
//! it), fewer than `admin.max_connections`, so health checks never queue behind API calls;
//! `/healthz`, `/readyz`, `/metrics` and the page are not limited.
//!
//! Path segments are split at literal `/` and then percent-decoded exactly once, before any
//! matching or validation (so a decoded `/` or `..` stays inside its segment, and `%252F`
//! decodes to the literal text `%2F`); the query is parsed once, by [`api::Query::parse`].
//!
//! Mutations are refused when the browser says they are cross-site (`Sec-Fetch-Site:
//! cross-site`, or an `Origin` whose host is not this listener's `Host`). Keys and tokens travel
//! only in the `Authorization` header. The one credential a browser sends by itself, the
//! sign-in session cookie (`SameSite=Lax`), authorizes a change only beside the `X-CSRF-Token`
//! header holding the session's own value, and an auth proxy's identity headers only beside a
//! non-empty `X-CSRF-Token`; no CORS headers are served, so a foreign page can send neither.

pub mod access;
pub mod api;
pub mod error;
pub mod keys;
pub mod scim;
pub mod signin;
mod ui;
pub mod views;
pub mod webhook;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, HeaderValue, ORIGIN};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use prometheus::Registry;

use crate::admin::error::ApiError;
use crate::auth::Authenticator;
use crate::net::json::json_response;
use crate::net::server::ConnInfo;
use crate::store::Store;
use access::Caller;
use api::Api;

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
    auth: Authenticator,
    api: Api,
    signin: signin::SignIn,
    /// `/scim/v2`, when a SCIM credential is configured.
    scim: Option<scim::Scim>,
    /// Permits for `/v1` and `/scim/v2` calls in progress.
    calls: tokio::sync::Semaphore,
    /// Permits for `/auth` calls in progress (apart from the API's, so that anonymous sign-in
    /// traffic cannot crowd out the API).
    signins: tokio::sync::Semaphore,
}

/// Whether a state-changing request comes from another site.
fn cross_site(req: &Request<Incoming>) -> bool {
    let h = req.headers();
    if h.get("sec-fetch-site").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site")) {
        return true;
    }
    // HTTP/2 carries the authority in the request URI rather than in a Host header.
    let host = h.get(HOST).and_then(|v| v.to_str().ok()).or_else(|| req.uri().authority().map(|a| a.as_str()));
    match (h.get(ORIGIN).and_then(|v| v.to_str().ok()), host) {
        (Some("null"), _) => true,
        (Some(origin), Some(host)) => url::Url::parse(origin).ok().is_none_or(|o| {
            let origin_host = match o.port() {
                Some(p) => format!("{}:{p}", o.host_str().unwrap_or_default()),
                None => o.host_str().unwrap_or_default().to_string(),
            };
            !origin_host.eq_ignore_ascii_case(host)
        }),
        (Some(_), None) => true,
        (None, _) => false,
    }
}

impl Admin {
    pub fn new(store: Store, registry: Registry, auth: Authenticator, api: Api) -> Self {
        let calls = tokio::sync::Semaphore::new(api.config.admin.max_concurrent_calls);
        let signins = tokio::sync::Semaphore::new(api.config.admin.max_concurrent_calls);
        let signin = signin::SignIn::new(&api.config, store.clone(), auth.clone());
        let scim = scim::Scim::new(api.store.clone(), api.config.clone());
        Self {
            inner: Arc::new(Inner {
                store,
                registry,
                draining: AtomicBool::new(false),
                auth,
                api,
                signin,
                scim,
                calls,
                signins,
            }),
        }
    }

    /// From now on readiness reports "draining" so load balancers stop sending traffic.
    pub fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::Release);
    }

    pub async fn handle(&self, req: Request<Incoming>, conn: ConnInfo) -> Response<Full<Bytes>> {
        match self.route(req, conn).await {
            Ok(r) => r,
            Err(e) => {
                match &e {
                    ApiError::StoreUnavailable(reason) => tracing::warn!(%reason, "token store unavailable"),
                    ApiError::StoreCorrupt(reason) => tracing::error!(%reason, "corrupt record in the token store"),
                    ApiError::Provider(reason) => tracing::warn!(%reason, "sign-in: the identity provider failed"),
                    ApiError::SignIn(reason) => tracing::info!(%reason, "sign-in refused"),
                    _ => {}
                }
                e.response()
            }
        }
    }

    async fn route(&self, req: Request<Incoming>, conn: ConnInfo) -> Result<Response<Full<Bytes>>, ApiError> {
        let path = req.uri().path().to_string();
        let decoded = path
            .trim_start_matches('/')
            .split('/')
            .map(|s| percent_encoding::percent_decode_str(s).decode_utf8().map(|d| d.into_owned()))
            .collect::<Result<Vec<String>, _>>()
            .map_err(|_| ApiError::bad("path", "not valid UTF-8 once percent-decoded"))?;
        let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
        let read_only = matches!(*req.method(), Method::GET | Method::HEAD);
        match segments.as_slice() {
            ["scim", "v2", rest @ ..] => {
                let scim = self.inner.scim.as_ref().ok_or_else(|| ApiError::NotFound("no such endpoint".into()))?;
                let call = self.inner.calls.try_acquire();
                let cross = !read_only && cross_site(&req);
                Ok(scim.handle(req, rest, call.is_err(), cross).await)
            }
            ["v1", rest @ ..] => {
                let _call = self.inner.calls.try_acquire().map_err(|_| ApiError::Busy)?;
                if !read_only && cross_site(&req) {
                    return Err(ApiError::Forbidden("cross-site requests are refused".into()));
                }
                let query = api::Query::parse(req.uri().query())?;
                let i = &self.inner;
                let (caller, set_cookie) = Caller::identify(
                    req.headers(),
                    conn.peer.ip(),
                    !read_only,
                    &i.api.keys.current(),
                    &i.auth,
                    &i.signin,
                )
                .await?;
                let (parts, body) = req.into_parts();
                let mut response = i.api.handle(&caller, &parts.method, rest, query, &parts.headers, body).await?;
                if let Some(cookie) = set_cookie {
                    response.headers_mut().append(http::header::SET_COOKIE, cookie);
                }
                Ok(response)
            }
            ["auth", rest @ ..] => {
                if !read_only && cross_site(&req) {
                    return Err(ApiError::Forbidden("cross-site requests are refused".into()));
                }
                let _call = self.inner.signins.try_acquire().map_err(|_| ApiError::Busy)?;
                self.inner.signin.handle(req, rest, self.inner.api.config.admin.max_body_bytes).await
            }
            _ if !read_only => match segments.as_slice() {
                ["healthz" | "readyz" | "metrics" | ""] | ["assets", _] => Err(ApiError::MethodNotAllowed("GET, HEAD")),
                _ => Err(ApiError::NotFound("no such endpoint".into())),
            },
            ["healthz"] => Ok(json_response(StatusCode::OK, &serde_json::json!({ "status": "ok" }))),
            ["readyz"] => Ok(self.readiness().await),
            ["metrics"] => {
                let mut r = Response::new(Full::new(Bytes::from(crate::metrics::render(&self.inner.registry))));
                r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
                Ok(r)
            }
            [""] => Ok(ui::page()),
            ["assets", name] => ui::asset(name).ok_or_else(|| ApiError::NotFound("no such asset".into())),
            _ => Err(ApiError::NotFound("no such endpoint".into())),
        }
    }

    async fn readiness(&self) -> Response<Full<Bytes>> {
        let store = &self.inner.store;
        if self.inner.draining.load(Ordering::Acquire) {
            return json_response(StatusCode::SERVICE_UNAVAILABLE, &serde_json::json!({ "status": "draining" }));
        }
        let ping = match tokio::time::timeout(READY_PING_TIMEOUT, store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the store did not answer in time".to_string()),
        };
        let subscribed = store.invalidations_connected();
        match (ping, subscribed) {
            (Ok(()), true) => {
                json_response(StatusCode::OK, &serde_json::json!({ "status": "ready", "store": store.backend() }))
            }
            (ping, subscribed) => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({
                    "status": "unavailable",
                    "store": store.backend(),
                    "store_error": ping.err(),
                    "invalidations_connected": subscribed,
                }),
            ),
        }
    }
}

//! The data path: authenticate each request and forward it to the upstream.
//!
//! Per request, in order:
//! 0. refuse a head with more than `proxy.max_headers` fields (hyper does it for HTTP/1; this
//!    covers HTTP/2) or over `proxy.max_header_bytes`, and a request whose framing is ambiguous
//!    (RFC 9112 §6.3: `Content-Length` with `Transfer-Encoding`, a transfer coding other than
//!    exactly `chunked`, or two `Host` headers): 400 and the connection is closed, so nothing
//!    the client meant as a second request can reach the upstream's keep-alive connection;
//! 1. normalize the path once ([`crate::policy::path`]); the rules and the upstream both see the result;
//! 2. refuse malformed credentials (two `Authorization` headers, an empty token, a token in the
//!    query string) and find the first matching route rule;
//! 3. unless the rule is public: parse the token (no store access for garbage), look it up
//!    through the cache, check digest / status / expiry / owner, then the rule's roles and scopes;
//! 4. remove hop-by-hop headers (including those named in `Connection`), every identity-looking
//!    header and, unless configured otherwise, `Authorization`; then inject the identity;
//! 5. note the token's use for the last-used recorder (never waits);
//! 6. forward with streaming bodies; upgrades (WebSocket) become tracked tunnels.
//!
//! Every failure is a [`Failure`], turned into a response in one place ([`failure`]).

pub mod failure;
pub mod headers;
pub mod recorder;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONNECTION, CONTENT_LENGTH, HOST, HeaderValue, TRANSFER_ENCODING, UPGRADE};
use http::uri::{Authority, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_util::task::TaskTracker;

use crate::auth::limiter::FailureLimiter;
use crate::auth::{self, AuthError, Authenticated, Authenticator};
use crate::clock::Timestamp;
use crate::config::{Config, ProxyConfig};
use crate::metrics::{Outcome, ProxyMetrics};
use crate::net::server::ConnInfo;
use crate::policy::path::PathError;
use crate::policy::routes::RouteTable;
use crate::proxy::recorder::Recorder;
use crate::token::TokenFormat;
use failure::Failure;
use headers::{Identity, IdentityHeaders};

/// Response bodies: the upstream's, streamed, or one of ours.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

type UpstreamClient = Client<HttpsConnector<HttpConnector>, Incoming>;

/// A cheap-to-clone handle to the data-path service.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    routes: RouteTable,
    auth: Authenticator,
    format: TokenFormat,
    identity: IdentityHeaders,
    config: ProxyConfig,
    upstream: Upstream,
    client: UpstreamClient,
    recorder: Recorder,
    limiter: FailureLimiter,
    metrics: ProxyMetrics,
    tunnels: TaskTracker,
}

/// Where requests go: scheme and authority, and a base path prefixed to every request path.
struct Upstream {
    scheme: Scheme,
    authority: Authority,
    base_path: String,
}

impl Upstream {
    fn new(url: &url::Url) -> Self {
        let authority = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        Self {
            scheme: if url.scheme() == "https" { Scheme::HTTPS } else { Scheme::HTTP },
            authority: authority.parse().expect("validated upstream URL has a valid authority"),
            base_path: url.path().trim_end_matches('/').to_string(),
        }
    }
}

fn path_problem(e: PathError) -> &'static str {
    match e {
        PathError::NotAbsolute => "the request target must be an absolute path",
        PathError::BadEncoding => "malformed percent-encoding in the request path",
        PathError::AmbiguousEncoding => "encoded '/', '\\' or NUL in the request path",
        PathError::Backslash => "backslash in the request path",
        PathError::Parameters => "path parameters (';') are not accepted",
    }
}

/// The 429 for a client over its failed-authentication limit.
fn throttled(client: IpAddr, wait: std::time::Duration) -> Failure {
    tracing::info!(client = %crate::auth::limiter::counted_as(client), "too many failed authentications; refusing");
    Failure::TooManyFailures(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
}

/// Refuses a request whose length or target is ambiguous (RFC 9112 §6.3, §3.2). hyper already
/// refuses `Transfer-Encoding` on HTTP/1.0 and a final coding other than `chunked`, and HTTP/2
/// refuses `Transfer-Encoding` as a protocol error; hyper drops a `Content-Length` that follows
/// `Transfer-Encoding`, but keeps one that precedes it.
fn check_framing(parts: &http::request::Parts) -> Result<(), Failure> {
    let mut hosts = parts.headers.get_all(HOST).iter();
    if hosts.next().is_some() && hosts.next().is_some() {
        return Err(Failure::Malformed("more than one Host header"));
    }
    let mut codings = parts.headers.get_all(TRANSFER_ENCODING).iter();
    let Some(coding) = codings.next() else { return Ok(()) };
    if codings.next().is_some() || !coding.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked") {
        return Err(Failure::Malformed("Transfer-Encoding must be exactly chunked"));
    }
    if parts.headers.contains_key(CONTENT_LENGTH) {
        return Err(Failure::Malformed("both Content-Length and Transfer-Encoding"));
    }
    Ok(())
}

/// Whether an upstream error is a timeout (connect timeout) rather than a refusal.
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(err) = source {
        if err.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
            return true;
        }
        source = err.source();
    }
    false
}

impl Proxy {
    pub fn new(
        config: &Config,
        auth: Authenticator,
        recorder: Recorder,
        metrics: ProxyMetrics,
        tunnels: TaskTracker,
    ) -> Self {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(config.proxy.upstream_connect_timeout));
        http.set_nodelay(true);
        let https = crate::net::tls::client_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.proxy.upstream_idle_timeout)
            .pool_timer(TokioTimer::new())
            .build(https);
        Self {
            inner: Arc::new(Inner {
                routes: config.routes.clone(),
                auth,
                format: config.tokens.format.clone(),
                identity: IdentityHeaders::new(&config.proxy.identity_header_prefix),
                config: config.proxy.clone(),
                upstream: Upstream::new(&config.upstream),
                client,
                recorder,
                limiter: FailureLimiter::new(&config.proxy.failed_auth),
                metrics,
                tunnels,
            }),
        }
    }

    /// Handles one request; never fails (failures become responses).
    pub async fn handle(&self, req: Request<Incoming>, conn: ConnInfo) -> Response<ProxyBody> {
        match self.inner.forward(req, conn).await {
            Ok(response) => response,
            Err(failure) => {
                self.inner.metrics.outcome(failure.outcome());
                failure.response().map(Either::Right)
            }
        }
    }
}

impl Inner {
    async fn forward(&self, req: Request<Incoming>, conn: ConnInfo) -> Result<Response<ProxyBody>, Failure> {
        let (mut parts, body) = req.into_parts();
        // hyper counts HTTP/1 header fields; this is the same limit for HTTP/2.
        if parts.headers.len() > self.config.max_headers {
            return Err(Failure::HeadersTooLarge);
        }
        // hyper's buffer limit is a backstop; this is the exact limit, for HTTP/1 and HTTP/2 alike.
        let head_size: usize = parts.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>()
            + parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
        if head_size > self.config.max_header_bytes {
            return Err(Failure::HeadersTooLarge);
        }
        check_framing(&parts)?;
        // Methods are case-sensitive and every registered one is upper case; a rule on `DELETE`
        // must not be walked around with `delete`, which some upstreams treat alike.
        if parts.method.as_str().bytes().any(|b| b.is_ascii_lowercase()) {
            return Err(Failure::InvalidRequest("the method must be upper case"));
        }
        let path =
            crate::policy::path::normalize(parts.uri.path()).map_err(|e| Failure::InvalidRequest(path_problem(e)))?;
        let rule_path = crate::policy::path::rule_path(&path, self.config.allow_path_parameters)
            .map_err(|e| Failure::InvalidRequest(path_problem(e)))?;
        let query = parts.uri.query();
        let bearer = auth::bearer(&parts.headers, query)?;
        let route = self.routes.resolve(parts.method.as_str(), &rule_path);
        let authenticated =
            if route.is_public() { None } else { Some(self.authenticate(bearer, conn.peer.ip()).await?) };
        let roles = authenticated.as_ref().map(Authenticated::roles).unwrap_or_default();
        if let Some(a) = &authenticated
            && let Err(rule) = route.permits(&roles, &a.token.scopes)
        {
            tracing::info!(token_id = %a.token.id, route = rule, "token lacks the route's role or scope");
            return Err(Failure::InsufficientScope);
        }

        let mut path_and_query =
            String::with_capacity(self.upstream.base_path.len() + path.len() + 1 + query.map_or(0, str::len));
        path_and_query.push_str(&self.upstream.base_path);
        path_and_query.push_str(&path);
        if let Some(q) = query {
            path_and_query.push('?');
            path_and_query.push_str(q);
        }
        let host = parts
            .headers
            .get(HOST)
            .cloned()
            .or_else(|| parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()));

        let headers = &mut parts.headers;
        let upgrade = headers::upgrade_request(headers);
        headers::remove_hop_by_hop(headers);
        self.identity.strip(headers);
        if !self.config.forward_authorization {
            headers.remove(AUTHORIZATION);
        }
        if let Some(a) = &authenticated {
            let id = Identity {
                subject: a.subject(),
                token_id: &a.token.id,
                kind: a.token.kind,
                org: a.org(),
                roles: &roles,
                scopes: &a.token.scopes,
            };
            self.identity.inject(headers, &id);
            self.recorder.record(a.token.id, Timestamp::now(), Some(conn.peer.ip()));
        }
        if let Some(h) = &host
            && !headers.contains_key(HOST)
        {
            headers.insert(HOST, h.clone());
        }
        let proto = if conn.tls { "https" } else { "http" };
        headers::forwarded(headers, self.config.x_forwarded, conn.peer.ip(), proto, host);
        if let Some(protocol) = &upgrade {
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(UPGRADE, protocol.clone());
        }

        parts.uri = Uri::builder()
            .scheme(self.upstream.scheme.clone())
            .authority(self.upstream.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| Failure::InvalidRequest("the request target cannot be forwarded"))?;
        parts.version = Version::HTTP_11;
        let mut upstream_req = Request::from_parts(parts, body);
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut upstream_req));

        let started = Instant::now();
        let sent = tokio::time::timeout(self.config.upstream_response_timeout, self.client.request(upstream_req)).await;
        let mut response = match sent {
            Err(_) => return Err(Failure::UpstreamTimeout),
            Ok(Err(e)) if is_timeout(&e) => return Err(Failure::UpstreamTimeout),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "upstream request failed");
                return Err(Failure::UpstreamUnavailable);
            }
            Ok(Ok(r)) => r,
        };
        self.metrics.upstream_seconds.observe(started.elapsed().as_secs_f64());
        self.metrics.upstream_status(response.status().as_u16());

        match client_upgrade {
            Some(client_upgrade) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
                let upstream_upgrade = hyper::upgrade::on(&mut response);
                let gauge = self.metrics.upgraded_connections.clone();
                self.tunnels.spawn(async move {
                    let (Ok(client), Ok(upstream)) = tokio::join!(client_upgrade, upstream_upgrade) else { return };
                    gauge.inc();
                    let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(client), &mut TokioIo::new(upstream)).await;
                    gauge.dec();
                });
            }
            _ => headers::remove_hop_by_hop(response.headers_mut()),
        }
        self.metrics.outcome(if authenticated.is_some() { Outcome::Forwarded } else { Outcome::Public });
        Ok(response.map(Either::Left))
    }

    /// Authenticates the bearer token (the rule's requirements are checked by the caller).
    /// Failures are charged to the client's address; over its limit, a request that fails or
    /// would need the store gets 429 instead (see [`crate::auth::limiter`]).
    async fn authenticate(&self, bearer: Option<&str>, client: IpAddr) -> Result<Authenticated, Failure> {
        let started = Instant::now();
        let raw = bearer.ok_or(Failure::MissingCredentials)?;
        let limiter = &self.limiter;
        let authenticated = match self.auth.authenticate(raw, Timestamp::now(), || limiter.check(client)).await {
            Ok(a) => a,
            Err(AuthError::Rejected(reason)) => {
                self.metrics.rejection(reason.as_str());
                match self.format.parse(raw) {
                    Ok(p) => tracing::info!(token_id = %p.id, reason = reason.as_str(), "token refused"),
                    Err(_) => tracing::info!(reason = reason.as_str(), "token refused"),
                }
                return Err(match limiter.charge(client) {
                    Ok(()) => Failure::InvalidToken,
                    Err(wait) => throttled(client, wait),
                });
            }
            Err(AuthError::Refused(wait)) => return Err(throttled(client, wait)),
            Err(AuthError::Busy) => {
                tracing::warn!("too many token lookups in flight; shedding");
                return Err(Failure::StoreUnavailable);
            }
            Err(AuthError::Store(e)) => {
                tracing::warn!(error = %e, "token store unavailable");
                return Err(Failure::StoreUnavailable);
            }
        };
        self.metrics.auth_seconds.observe(started.elapsed().as_secs_f64());
        Ok(authenticated)
    }
}

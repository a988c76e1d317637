//! Admission: everything that decides whether a request may pass, in order. Nothing here
//! changes the request.
//!
//! 1. limits: more than `proxy.max_headers` fields (hyper counts HTTP/1; this covers HTTP/2) or
//!    over `proxy.max_header_bytes`: 431;
//! 2. framing (RFC 9112 §6.3): `Content-Length` with `Transfer-Encoding`, a transfer coding
//!    other than exactly `chunked`, or two `Host` headers: 400 and the connection is closed, so
//!    nothing the client meant as a second request can reach the upstream's keep-alive connection;
//! 3. method and path: a lowercase letter in the method, a path that does not normalize, path
//!    parameters unless allowed: 400 ([`crate::policy::path`]);
//! 4. the credential ([`crate::auth::credential`]) and the route rules ([`crate::policy::routes`]);
//! 5. unless the route is public: authentication through the cache, failures charged to the
//!    client's address ([`crate::auth::limiter`]), then the rules' roles and scopes;
//! 6. the token's own limits ([`crate::auth::metering`]): allowed networks (403), rate (429)
//!    and quota (403).
//!
//! The client's address is the socket's peer, or, behind `proxy.trusted_proxies`, the one they
//! forwarded ([`super::headers::client_address`]).

use std::net::IpAddr;
use std::time::Instant;

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::request::Parts;

use super::Inner;
use super::failure::Failure;
use super::headers;
use crate::auth::metering::{RateStatus, Refusal};
use crate::auth::{self, AuthError, Authenticated};
use crate::clock::Timestamp;
use crate::net::server::ConnInfo;
use crate::policy::path::{self, PathError};

/// A request that may pass: where it goes upstream, and who is calling (`None` on a public
/// route).
pub(super) struct Admission {
    /// The upstream's base path, the normalized path and the query as sent.
    pub target: String,
    pub caller: Option<Authenticated>,
    /// The client's address (see [`super::headers::client_address`]).
    pub client: IpAddr,
    /// The caller's rate limit and what is left of it, for the response's `RateLimit` fields.
    pub rate: Option<RateStatus>,
}

impl Inner {
    pub(super) async fn admit(&self, parts: &Parts, conn: ConnInfo) -> Result<Admission, Failure> {
        // hyper counts HTTP/1 header fields; this is the same limit for HTTP/2.
        if parts.headers.len() > self.config.connections.max_headers {
            return Err(Failure::HeadersTooLarge);
        }
        // hyper's buffer limit is a backstop; this is the exact limit, for HTTP/1 and HTTP/2 alike.
        let head_size: usize = parts.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>()
            + parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
        if head_size > self.config.connections.max_header_bytes {
            return Err(Failure::HeadersTooLarge);
        }
        check_framing(parts)?;
        // Methods are case-sensitive and every registered one is upper case; a rule on `DELETE`
        // must not be walked around with `delete`, which some upstreams treat alike.
        if parts.method.as_str().bytes().any(|b| b.is_ascii_lowercase()) {
            return Err(Failure::InvalidRequest("the method must be upper case"));
        }
        let path = path::normalize(parts.uri.path()).map_err(|e| Failure::InvalidRequest(path_problem(e)))?;
        let rule_path = path::rule_path(&path, self.config.allow_path_parameters)
            .map_err(|e| Failure::InvalidRequest(path_problem(e)))?;
        let query = parts.uri.query();
        let bearer = auth::bearer(&parts.headers, query).map_err(|e| Failure::InvalidRequest(e.text()))?;
        let route = self.routes.resolve(parts.method.as_str(), &rule_path);
        let client = if conn.proxied {
            // A trusted balancer named the client in a PROXY header: nobody behind it renames it.
            conn.peer.ip()
        } else {
            headers::client_address(&parts.headers, conn.peer.ip(), &self.config.trusted_proxies)
        };
        let caller = if route.is_public() { None } else { Some(self.authenticate(bearer, client).await?) };
        let mut rate = None;
        if let Some(a) = &caller {
            if let Err(rule) = route.permits(&a.roles(), &a.token.scopes) {
                tracing::info!(token_id = %a.token.id, route = rule, "token lacks the route's role or scope");
                return Err(Failure::InsufficientScope);
            }
            rate = self.metering.check(&a.token, client).await.map_err(limit_failure)?;
        }
        Ok(Admission { target: self.upstream.target(&path, query), caller, client, rate })
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
            Err(AuthError::Rejected { reason, token_id }) => {
                self.metrics.rejection(reason.as_str());
                match token_id {
                    Some(id) => tracing::info!(token_id = %id, reason = reason.as_str(), "token refused"),
                    None => tracing::info!(reason = reason.as_str(), "token refused"),
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

fn limit_failure(refusal: Refusal) -> Failure {
    match refusal {
        Refusal::Network => Failure::NetworkNotAllowed,
        Refusal::Rate { retry_after, limit } => Failure::RateLimited {
            retry_after: retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0),
            requests: limit.requests,
            window: limit.window_secs,
        },
        Refusal::Quota { quota } => Failure::QuotaExhausted { quota },
        Refusal::StoreUnavailable => Failure::StoreUnavailable,
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

//! The data path: every request on the proxy listener is admitted, rewritten and sent, in three
//! named steps ([`Inner::forward`]):
//!
//! 1. [`admit`]: limits, framing, method and path, credential, route rules, authentication and
//!    authorization; nothing is changed yet;
//! 2. [`rewrite`]: hop-by-hop and identity headers removed, the identity injected, the target
//!    pointed at the upstream, the use noted for the last-used [`recorder`];
//! 3. [`upstream`]: sent with streaming bodies; upgrades (WebSocket) become tracked tunnels.
//!
//! Every failure is a [`Failure`], turned into a response in one place ([`failure`]).
//!
//! May use: `auth`, `policy`, `token`, `net`, `config` (its own section), `metrics`, `clock`;
//! never `admin` or `cli`. Nothing but `app` uses it.

mod admit;
pub mod failure;
pub mod headers;
pub mod recorder;
mod rewrite;
mod upstream;

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::auth::limiter::FailureLimiter;
use crate::auth::metering::Metering;
use crate::config::{Config, ProxyConfig};
use crate::metrics::{Outcome, ProxyMetrics};
use crate::net::server::ConnInfo;
use crate::policy::routes::RouteTable;
use failure::Failure;
use headers::IdentityHeaders;
use recorder::Recorder;
use upstream::{Upstream, UpstreamClient};

/// Response bodies: the upstream's, streamed, or one of ours.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// A cheap-to-clone handle to the data-path service.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    routes: RouteTable,
    auth: Authenticator,
    identity: IdentityHeaders,
    config: ProxyConfig,
    upstream: Upstream,
    client: UpstreamClient,
    recorder: Recorder,
    limiter: FailureLimiter,
    metering: Metering,
    metrics: ProxyMetrics,
    tunnels: TaskTracker,
}

impl Proxy {
    pub fn new(
        config: &Config,
        auth: Authenticator,
        metering: Metering,
        recorder: Recorder,
        metrics: ProxyMetrics,
        tunnels: TaskTracker,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                routes: config.routes.clone(),
                auth,
                identity: IdentityHeaders::new(&config.proxy.identity_header_prefix),
                config: config.proxy.clone(),
                upstream: Upstream::new(&config.upstream),
                client: upstream::client(&config.proxy),
                recorder,
                limiter: FailureLimiter::new(&config.proxy.failed_auth),
                metering,
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
    /// Admit, rewrite, send.
    async fn forward(&self, req: Request<Incoming>, conn: ConnInfo) -> Result<Response<ProxyBody>, Failure> {
        let (mut parts, body) = req.into_parts();
        let admission = self.admit(&parts, conn).await?;
        let outcome = if admission.caller.is_some() { Outcome::Forwarded } else { Outcome::Public };
        let rate = admission.rate;
        let upgrade = self.rewrite(&mut parts, admission, conn)?;
        let mut response = self.send(Request::from_parts(parts, body), upgrade).await?;
        if let Some(r) = rate {
            // The caller's rate limit, as the IETF RateLimit fields (replacing any the upstream set).
            let headers = response.headers_mut();
            headers.insert(failure::RATELIMIT_POLICY, failure::rate_policy(r.limit.requests, r.limit.window_secs));
            headers.insert(failure::RATELIMIT, failure::rate_status(r.remaining, 0));
        }
        self.metrics.outcome(outcome);
        Ok(response)
    }
}

//! Sending to the upstream: the pooled keep-alive client (HTTP/1.1, or HTTPS for an `https`
//! upstream), the response timeout, the mapping of upstream errors (502 refused, 504 timed out),
//! and upgraded connections (WebSocket) turned into tracked tunnels.

use std::time::Instant;

use http::header::HeaderValue;
use http::uri::{Authority, Scheme};
use http::{Request, Response, StatusCode};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::failure::Failure;
use super::headers;
use super::{Inner, ProxyBody};
use crate::config::ProxyConfig;

pub(super) type UpstreamClient = Client<HttpsConnector<HttpConnector>, Incoming>;

/// The pooled client every request is sent with.
pub(super) fn client(config: &ProxyConfig) -> UpstreamClient {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(config.upstream_connect_timeout));
    http.set_nodelay(true);
    let https = crate::net::tls::client_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(config.upstream_idle_timeout)
        .pool_timer(TokioTimer::new())
        .build(https)
}

/// Where requests go: scheme and authority, and a base path prefixed to every request path.
pub(super) struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
    base_path: String,
}

impl Upstream {
    pub fn new(url: &url::Url) -> Self {
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

    /// The upstream request target: the base path, the normalized path, the query as sent.
    pub fn target(&self, path: &str, query: Option<&str>) -> String {
        let mut target = String::with_capacity(self.base_path.len() + path.len() + 1 + query.map_or(0, str::len));
        target.push_str(&self.base_path);
        target.push_str(path);
        if let Some(q) = query {
            target.push('?');
            target.push_str(q);
        }
        target
    }
}

impl Inner {
    /// Sends the rewritten request and returns the upstream's response (streamed), tunnelling
    /// an accepted upgrade.
    pub(super) async fn send(
        &self,
        mut request: Request<Incoming>,
        upgrade: Option<HeaderValue>,
    ) -> Result<Response<ProxyBody>, Failure> {
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
        let started = Instant::now();
        let sent = tokio::time::timeout(self.config.upstream_response_timeout, self.client.request(request)).await;
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
        Ok(response.map(Either::Left))
    }
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

//! Prometheus metrics, registered per component on one explicit [`Registry`] (served by the
//! admin listener at `/metrics`).
//!
//! Label values are resolved into handles once, at construction, so the request path only
//! increments atomics. No label ever carries a token secret; token ids appear only in logs.

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// Seconds buckets for in-process work (authentication): 5 µs to 100 ms.
const FAST_BUCKETS: &[f64] =
    &[0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005, 0.025, 0.1];
/// Seconds buckets for upstream round trips: 100 µs to 60 s.
const UPSTREAM_BUCKETS: &[f64] = &[0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0];

fn counter_vec(registry: &Registry, name: &str, help: &str, label: &str) -> IntCounterVec {
    let v = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
    registry.register(Box::new(v.clone())).expect("metric registered once");
    v
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("metric registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("metric registered once");
    g
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())).expect("valid metric");
    registry.register(Box::new(h.clone())).expect("metric registered once");
    h
}

/// How a proxied request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Forwarded,
    Public,
    MissingCredentials,
    InvalidRequest,
    InvalidToken,
    InsufficientScope,
    TooManyFailures,
    TokenLimit,
    StoreUnavailable,
    UpstreamError,
    UpstreamTimeout,
}

impl Outcome {
    pub const ALL: [Outcome; 11] = [
        Self::Forwarded,
        Self::Public,
        Self::MissingCredentials,
        Self::InvalidRequest,
        Self::InvalidToken,
        Self::InsufficientScope,
        Self::TooManyFailures,
        Self::TokenLimit,
        Self::StoreUnavailable,
        Self::UpstreamError,
        Self::UpstreamTimeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forwarded => "forwarded",
            Self::Public => "public",
            Self::MissingCredentials => "missing_credentials",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::TooManyFailures => "too_many_failures",
            Self::TokenLimit => "token_limit",
            Self::StoreUnavailable => "store_unavailable",
            Self::UpstreamError => "upstream_error",
            Self::UpstreamTimeout => "upstream_timeout",
        }
    }
}

/// Why a token was refused (the detail clients never see).
pub const REJECTION_REASONS: [&str; 8] =
    ["malformed", "unknown", "mismatch", "suspended", "revoked", "expired", "owner_missing", "owner_deactivated"];

/// Data-path metrics.
#[derive(Clone)]
pub struct ProxyMetrics {
    outcomes: Vec<IntCounter>,
    rejections: Vec<IntCounter>,
    pub auth_seconds: Histogram,
    upstream_status: Vec<IntCounter>,
    pub upstream_seconds: Histogram,
    pub open_connections: IntGauge,
    pub upgraded_connections: IntGauge,
}

impl ProxyMetrics {
    pub fn new(registry: &Registry) -> Self {
        let outcomes = counter_vec(registry, "tokengate_requests_total", "Proxied requests by outcome.", "outcome");
        let rejections = counter_vec(
            registry,
            "tokengate_token_rejections_total",
            "Tokens refused, by reason (clients see one generic error).",
            "reason",
        );
        let status =
            counter_vec(registry, "tokengate_upstream_responses_total", "Upstream responses by status class.", "class");
        Self {
            outcomes: Outcome::ALL.iter().map(|o| outcomes.with_label_values(&[o.as_str()])).collect(),
            rejections: REJECTION_REASONS.iter().map(|r| rejections.with_label_values(&[r])).collect(),
            auth_seconds: histogram(
                registry,
                "tokengate_auth_duration_seconds",
                "Time to authenticate and authorize a request.",
                FAST_BUCKETS,
            ),
            upstream_status: ["1xx", "2xx", "3xx", "4xx", "5xx"]
                .iter()
                .map(|c| status.with_label_values(&[c]))
                .collect(),
            upstream_seconds: histogram(
                registry,
                "tokengate_upstream_duration_seconds",
                "Time from forwarding a request to the upstream's response head.",
                UPSTREAM_BUCKETS,
            ),
            open_connections: gauge(
                registry,
                "tokengate_open_connections",
                "Open client connections on the proxy listener.",
            ),
            upgraded_connections: gauge(
                registry,
                "tokengate_upgraded_connections",
                "Open upgraded (WebSocket) tunnels through the proxy.",
            ),
        }
    }

    pub fn outcome(&self, o: Outcome) {
        self.outcomes[o as usize].inc();
    }

    pub fn rejection(&self, reason: &str) {
        if let Some(i) = REJECTION_REASONS.iter().position(|r| *r == reason) {
            self.rejections[i].inc();
        }
    }

    pub fn upstream_status(&self, status: u16) {
        if let Some(c) = self.upstream_status.get(usize::from(status / 100).wrapping_sub(1)) {
            c.inc();
        }
    }
}

/// Token and principal cache metrics.
#[derive(Clone)]
pub struct CacheMetrics {
    pub hits: IntCounter,
    pub misses: IntCounter,
    pub negative_hits: IntCounter,
    pub stale_served: IntCounter,
    pub store_errors: IntCounter,
    pub fetches_shed: IntCounter,
    pub invalidations_token: IntCounter,
    pub invalidations_principal: IntCounter,
    pub invalidations_all: IntCounter,
}

impl CacheMetrics {
    pub fn new(registry: &Registry) -> Self {
        let lookups = counter_vec(registry, "tokengate_cache_lookups_total", "Cache lookups by result.", "result");
        let inval = counter_vec(registry, "tokengate_invalidations_total", "Invalidations received, by kind.", "kind");
        Self {
            hits: lookups.with_label_values(&["hit"]),
            misses: lookups.with_label_values(&["miss"]),
            negative_hits: lookups.with_label_values(&["negative_hit"]),
            stale_served: lookups.with_label_values(&["stale_served"]),
            store_errors: counter(registry, "tokengate_store_errors_total", "Store calls that failed."),
            fetches_shed: counter(
                registry,
                "tokengate_store_lookups_shed_total",
                "Request-path store lookups refused because cache.max_concurrent_fetches were in flight.",
            ),
            invalidations_token: inval.with_label_values(&["token"]),
            invalidations_principal: inval.with_label_values(&["principal"]),
            invalidations_all: inval.with_label_values(&["all"]),
        }
    }
}

/// Last-used recorder metrics.
#[derive(Clone)]
pub struct RecorderMetrics {
    pub batches: IntCounter,
    pub written: IntCounter,
    pub dropped: IntCounter,
    pub flush_errors: IntCounter,
}

impl RecorderMetrics {
    pub fn new(registry: &Registry) -> Self {
        Self {
            batches: counter(registry, "tokengate_last_used_batches_total", "Last-used batches written to the store."),
            written: counter(registry, "tokengate_last_used_written_total", "Token last-used times moved forward."),
            dropped: counter(
                registry,
                "tokengate_last_used_dropped_total",
                "Token uses not recorded because the pending buffer was full.",
            ),
            flush_errors: counter(registry, "tokengate_last_used_flush_errors_total", "Last-used batches that failed."),
        }
    }
}

/// Webhook delivery metrics.
#[derive(Clone)]
pub struct WebhookMetrics {
    pub delivered: IntCounter,
    pub retries: IntCounter,
    pub failed: IntCounter,
    pub dropped: IntCounter,
}

impl WebhookMetrics {
    pub fn new(registry: &Registry) -> Self {
        let deliveries =
            counter_vec(registry, "tokengate_webhook_deliveries_total", "Webhook deliveries by result.", "result");
        Self {
            delivered: deliveries.with_label_values(&["delivered"]),
            failed: deliveries.with_label_values(&["failed"]),
            dropped: deliveries.with_label_values(&["dropped"]),
            retries: counter(
                registry,
                "tokengate_webhook_retries_total",
                "Webhook delivery attempts that will be retried.",
            ),
        }
    }
}

/// The operator keys (`admin::keys`).
#[derive(Clone)]
pub struct AdminKeyMetrics {
    /// Keys that work now (not expired), from the file and the environment.
    pub keys: IntGauge,
    /// Re-reads of `admin.keys_file` that found it unreadable or invalid (the last good keys stay).
    pub reload_errors: IntCounter,
}

impl AdminKeyMetrics {
    pub fn new(registry: &Registry) -> Self {
        Self {
            keys: gauge(registry, "tokengate_admin_keys", "Operator keys that work now (not expired)."),
            reload_errors: counter(
                registry,
                "tokengate_admin_keys_reload_errors_total",
                "Re-reads of admin.keys_file that were refused; the last good keys stay in use.",
            ),
        }
    }
}

/// Renders a registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut out = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut out).expect("text encoding cannot fail");
    String::from_utf8(out).expect("text format is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_is_exposed_from_the_start() {
        let registry = Registry::new();
        let proxy = ProxyMetrics::new(&registry);
        CacheMetrics::new(&registry);
        RecorderMetrics::new(&registry);
        proxy.outcome(Outcome::InvalidToken);
        proxy.rejection("revoked");
        proxy.upstream_status(503);
        proxy.upstream_status(99);
        let text = render(&registry);
        assert!(text.contains("tokengate_requests_total{outcome=\"invalid_token\"} 1"), "{text}");
        assert!(text.contains("tokengate_requests_total{outcome=\"forwarded\"} 0"));
        assert!(text.contains("tokengate_token_rejections_total{reason=\"revoked\"} 1"));
        assert!(text.contains("tokengate_upstream_responses_total{class=\"5xx\"} 1"));
        assert!(text.contains("tokengate_cache_lookups_total{result=\"negative_hit\"} 0"));
        assert!(text.contains("tokengate_last_used_dropped_total 0"));
    }
}

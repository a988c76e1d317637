//! Per-token limits on the request path ([`Metering::check`]): the allowed client networks, then
//! the rate limit and quota, spent from leases of permits taken from the store.
//!
//! A token without limits costs one branch. A metered token takes a lease of permits from the
//! store ([`crate::store::TokenStore::take_permits`]: one Redis round trip, shared by every
//! replica) and spends it locally, so only every `lease_size`-th request waits on the store:
//! the lease is 1/20 of the per-second rate (at least 1, at most the burst), and with a quota
//! at most 1/100 of what is left. Concurrent requests of one token wait for one store call.
//! Permits not spent within [`LEASE_TTL`] lapse: the rate state heals by itself (GCRA), and a
//! quota may count at most one lease per replica more than was used. A change of the token's
//! limits drops its lease. Because every permit comes from the shared state, replicas together
//! never admit more than the limit allows. After a rate refusal, requests are refused locally
//! until a permit frees up; after a failed store call, for [`STORE_BACKOFF`] the outage
//! decision is taken without asking again, so concurrent requests never queue on a dead store.
//!
//! When the store cannot answer, `limits.on_store_error` decides: `open` (the default) admits
//! the request, `closed` refuses it with 503; both are counted.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounterVec, Opts, Registry};
use tokio::sync::Mutex;
use tokio::time::Instant;

pub use crate::config::OnStoreError;
use crate::store::Store;
use crate::token::limits::{RateLimit, TokenLimits};
use crate::token::{Token, TokenId};

/// How long unspent permits stay usable.
pub const LEASE_TTL: Duration = Duration::from_secs(2);
/// Tokens whose lease state is kept at once (least recently used dropped beyond).
const MAX_LEASES: u64 = 100_000;
/// How long a store call for permits may take.
const TAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// After a failed store call, how long a token's requests are decided without asking again.
const STORE_BACKOFF: Duration = Duration::from_secs(1);

/// Why a request was refused for its token's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client address is outside the token's allowed networks.
    Network,
    /// The rate limit is spent; a permit frees up after `retry_after`.
    Rate { retry_after: Duration, limit: RateLimit },
    /// The quota is used up (waiting does not help).
    Quota { quota: u64 },
    /// The store could not be asked and `limits.on_store_error` is `closed`.
    StoreUnavailable,
}

/// What the response may tell the client about its rate limit (the IETF `RateLimit` fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    pub limit: RateLimit,
    /// Requests still available at once, as last known.
    pub remaining: u32,
}

#[derive(Default)]
struct Lease {
    /// The limits the permits were taken under: a change of limits drops them.
    limits: Option<TokenLimits>,
    permits: u32,
    expires: Option<Instant>,
    /// What the store had left after the last grant.
    remaining: u32,
    /// Until then, requests are refused for the rate without asking the store (none is free).
    refused_until: Option<(Instant, RateLimit)>,
    /// Until then, the store is not asked (it just failed): `limits.on_store_error` decides.
    store_down_until: Option<Instant>,
}

/// A cheap-to-clone handle.
#[derive(Clone)]
pub struct Metering {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    leases: moka::sync::Cache<TokenId, Arc<Mutex<Lease>>>,
    on_store_error: OnStoreError,
    refusals: [prometheus::IntCounter; 3],
    store_errors: prometheus::IntCounter,
}

impl Metering {
    pub fn new(store: Store, on_store_error: OnStoreError, registry: &Registry) -> Self {
        let refused = IntCounterVec::new(
            Opts::new("tokengate_limit_refusals_total", "Requests refused for their token's limits, by limit"),
            &["limit"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "tokengate_limit_store_errors_total",
                "Permit requests the store could not answer, by what was done (limits.on_store_error)",
            ),
            &["admitted"],
        )
        .expect("valid metric");
        registry.register(Box::new(refused.clone())).expect("metric registered once");
        registry.register(Box::new(errors.clone())).expect("metric registered once");
        let admitted = if on_store_error == OnStoreError::Open { "true" } else { "false" };
        Self {
            inner: Arc::new(Inner {
                store,
                leases: moka::sync::Cache::builder().max_capacity(MAX_LEASES).time_to_idle(LEASE_TTL * 2).build(),
                on_store_error,
                refusals: ["network", "rate", "quota"].map(|l| refused.with_label_values(&[l])),
                store_errors: errors.with_label_values(&[admitted]),
            }),
        }
    }

    /// Admits or refuses a request of `token` from `client`; for a rate-limited token, what
    /// the response may say about the limit.
    pub async fn check(&self, token: &Token, client: IpAddr) -> Result<Option<RateStatus>, Refusal> {
        let limits = &token.limits;
        if limits.is_unlimited() {
            return Ok(None);
        }
        if !limits.allows(client) {
            self.inner.refusals[0].inc();
            tracing::info!(token_id = %token.id, %client, "token used from outside its allowed networks");
            return Err(Refusal::Network);
        }
        if !limits.is_metered() {
            return Ok(None);
        }
        let status = |remaining| limits.rate.map(|limit| RateStatus { limit, remaining });
        let slot = self.inner.leases.get_with(token.id, Default::default);
        let mut lease = slot.lock().await;
        if lease.limits.as_ref() != Some(limits) {
            *lease = Lease { limits: Some(limits.clone()), ..Lease::default() };
        }
        let now = Instant::now();
        if lease.permits > 0 && lease.expires.is_some_and(|e| now < e) {
            lease.permits -= 1;
            return Ok(status(lease.remaining.saturating_add(lease.permits)));
        }
        // Answers that need no store call: a rate refusal until a permit frees up, and the
        // outage decision while the store just failed (so waiters do not queue on it).
        if let Some((until, limit)) = lease.refused_until
            && now < until
        {
            self.inner.refusals[1].inc();
            return Err(Refusal::Rate { retry_after: until - now, limit });
        }
        if lease.store_down_until.is_some_and(|until| now < until) {
            return self.store_error(token, "failed a moment ago");
        }
        let n = lease_size(limits, lease.remaining);
        let grant = match tokio::time::timeout(TAKE_TIMEOUT, self.inner.store.take_permits(&token.id, limits, n)).await
        {
            Ok(Ok(grant)) => grant,
            Ok(Err(e)) => {
                lease.store_down_until = Some(now + STORE_BACKOFF);
                return self.store_error(token, &e.to_string());
            }
            Err(_) => {
                lease.store_down_until = Some(now + STORE_BACKOFF);
                return self.store_error(token, "timed out");
            }
        };
        if grant.quota_exhausted {
            self.inner.refusals[2].inc();
            tracing::info!(token_id = %token.id, "token quota used up");
            return Err(Refusal::Quota { quota: limits.quota.unwrap_or(0) });
        }
        if grant.granted == 0 {
            self.inner.refusals[1].inc();
            let limit = limits.rate.expect("only a rate refuses with quota left");
            lease.remaining = 0;
            lease.refused_until = Some((now + grant.retry_after, limit));
            return Err(Refusal::Rate { retry_after: grant.retry_after, limit });
        }
        lease.permits = grant.granted - 1;
        lease.expires = Some(now + LEASE_TTL);
        lease.remaining = grant.remaining;
        lease.refused_until = None;
        lease.store_down_until = None;
        Ok(status(lease.remaining.saturating_add(lease.permits)))
    }

    fn store_error(&self, token: &Token, error: &str) -> Result<Option<RateStatus>, Refusal> {
        self.inner.store_errors.inc();
        tracing::warn!(token_id = %token.id, error, "cannot take permits from the store");
        match self.inner.on_store_error {
            OnStoreError::Open => Ok(None),
            OnStoreError::Closed => Err(Refusal::StoreUnavailable),
        }
    }
}

/// How many permits to take at once: 1/20 of the per-second rate (between 1 and the burst);
/// with a quota, at most 1/100 of what the store had left (`remaining`, 0 when unknown).
fn lease_size(limits: &TokenLimits, remaining: u32) -> u32 {
    let by_rate = limits.rate.map_or(u32::MAX, |r| ((r.per_second() / 20.0) as u32).clamp(1, r.burst()));
    let by_quota = if limits.quota.is_some() { (remaining / 100).clamp(1, 100) } else { u32::MAX };
    by_rate.min(by_quota).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(requests: u32, window_secs: u32, burst: Option<u32>, quota: Option<u64>) -> TokenLimits {
        TokenLimits { rate: Some(RateLimit { requests, window_secs, burst }), quota, networks: vec![] }
    }

    #[test]
    fn leases_are_a_twentieth_of_the_rate_within_the_burst_and_the_quota() {
        assert_eq!(lease_size(&limits(100, 1, None, None), 0), 5);
        assert_eq!(lease_size(&limits(100, 1, Some(2), None), 0), 2);
        assert_eq!(lease_size(&limits(10, 60, None, None), 0), 1);
        assert_eq!(lease_size(&limits(100_000, 1, None, None), 0), 5000);
        assert_eq!(lease_size(&limits(100_000, 1, None, Some(1_000_000)), 0), 1);
        assert_eq!(lease_size(&limits(100_000, 1, None, Some(1_000_000)), 50_000), 100);
        let quota_only = TokenLimits { quota: Some(10), ..Default::default() };
        assert_eq!(lease_size(&quota_only, 10), 1);
    }
}

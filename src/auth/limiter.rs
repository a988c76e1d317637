//! Failed-authentication limits per client address.
//!
//! Every failed authentication (a malformed, unknown, wrong, suspended, revoked or expired
//! token) is charged to the client's address; IPv6 addresses count by /64, since one host
//! usually holds a whole /64. Each address may fail `burst` times, then once more per
//! `refill_interval` (a GCRA token bucket: one atomic per address, no lock). An address over
//! its limit gets 429 with `Retry-After` for requests that fail or would need a store lookup;
//! a token already cached as valid keeps working, so a flood from a shared address (a NAT, an
//! ingress) never locks out the tokens its legitimate clients already use.
//!
//! The limiter is consulted only on the slow paths (a cache miss, a failure): a request with
//! a cached valid token never touches it. At most `max_clients` addresses are tracked; the
//! least recently seen are forgotten first.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::sync::Cache;
use tokio::time::Instant;

use crate::config::FailedAuthConfig;

/// The key an address is counted under: IPv4 as is, IPv6 by its /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4(u32),
    V6(u64),
}

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.into()),
                None => Self::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// A cheap-to-clone handle to the per-address limits.
#[derive(Clone)]
pub struct FailureLimiter {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    /// Per address: the GCRA "theoretical arrival time", in microseconds since `base`.
    buckets: Cache<ClientKey, Arc<AtomicU64>>,
    /// Time one failure's worth of budget takes to come back.
    interval_us: u64,
    /// How far ahead of now the arrival time may run: `burst` intervals.
    tolerance_us: u64,
    base: Instant,
}

impl FailureLimiter {
    pub fn new(config: &FailedAuthConfig) -> Self {
        if config.burst == 0 {
            return Self { inner: None };
        }
        let interval_us = u64::try_from(config.refill_interval.as_micros()).unwrap_or(u64::MAX).max(1);
        Self {
            inner: Some(Arc::new(Inner {
                buckets: Cache::builder()
                    .max_capacity(config.max_clients)
                    // A bucket that has refilled completely carries no information.
                    .time_to_idle(config.refill_interval.saturating_mul(config.burst).max(Duration::from_secs(1)))
                    .build(),
                interval_us,
                tolerance_us: interval_us.saturating_mul(u64::from(config.burst)),
                base: Instant::now(),
            })),
        }
    }

    /// A limiter that never limits.
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// `Err(retry_after)` when `client` has no failures left to spend; charges nothing.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let Some(inner) = &self.inner else { return Ok(()) };
        let Some(bucket) = inner.buckets.get(&ClientKey::from(client)) else { return Ok(()) };
        let now = inner.now_us();
        let tat = bucket.load(Ordering::Acquire).max(now);
        inner.verdict(tat + inner.interval_us, now)
    }

    /// Charges one failure to `client`. `Err(retry_after)` when it had no failures left
    /// (the failure is then not recorded, so a client that stops is let back in on time).
    pub fn charge(&self, client: IpAddr) -> Result<(), Duration> {
        let Some(inner) = &self.inner else { return Ok(()) };
        let bucket = inner.buckets.get_with(ClientKey::from(client), || Arc::new(AtomicU64::new(0)));
        let now = inner.now_us();
        let mut current = bucket.load(Ordering::Acquire);
        loop {
            let next = current.max(now) + inner.interval_us;
            inner.verdict(next, now)?;
            match bucket.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }
}

impl Inner {
    fn now_us(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether an arrival time of `next` is within the tolerance, else how long until it is.
    fn verdict(&self, next: u64, now: u64) -> Result<(), Duration> {
        let ahead = next - now;
        if ahead <= self.tolerance_us { Ok(()) } else { Err(Duration::from_micros(ahead - self.tolerance_us)) }
    }
}

/// For logs: the address as counted (IPv6 shown as its /64).
pub fn counted_as(ip: IpAddr) -> IpAddr {
    match ClientKey::from(ip) {
        ClientKey::V4(v4) => IpAddr::V4(v4.into()),
        ClientKey::V6(prefix) => IpAddr::V6(Ipv6Addr::from(u128::from(prefix) << 64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u32, refill: Duration) -> FailureLimiter {
        FailureLimiter::new(&FailedAuthConfig { burst, refill_interval: refill, max_clients: 1000 })
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_one_per_interval() {
        let l = limiter(3, Duration::from_secs(1));
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(l.check(ip), Ok(()));
            assert_eq!(l.charge(ip), Ok(()));
        }
        let wait = l.check(ip).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO, "{wait:?}");
        assert!(l.charge(ip).is_err());
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert_eq!(l.charge(ip), Ok(()), "one more after an interval");
        assert!(l.charge(ip).is_err());
        // Other addresses are unaffected.
        assert_eq!(l.charge("10.1.2.4".parse().unwrap()), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        let l = limiter(2, Duration::from_secs(60));
        l.charge("2001:db8:1:2::1".parse().unwrap()).unwrap();
        l.charge("2001:db8:1:2:ffff::9".parse().unwrap()).unwrap();
        assert!(l.check("2001:db8:1:2:abcd::1".parse().unwrap()).is_err(), "same /64");
        assert!(l.check("2001:db8:1:3::1".parse().unwrap()).is_ok(), "another /64");
        l.charge("::ffff:192.0.2.1".parse().unwrap()).unwrap();
        l.charge("192.0.2.1".parse().unwrap()).unwrap();
        assert!(l.check("192.0.2.1".parse().unwrap()).is_err());
        assert_eq!(counted_as("2001:db8:1:2::1".parse().unwrap()), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn burst_zero_disables() {
        let l = limiter(0, Duration::from_secs(1));
        for _ in 0..1000 {
            l.charge("10.0.0.1".parse().unwrap()).unwrap();
        }
    }
}

//! Per-token limits: a request rate ([`RateLimit`], enforced as GCRA), a total-use quota, and
//! the client networks a token may be used from. Pure: the arithmetic both stores apply
//! ([`Gcra`]) and the validation; enforcement is in `proxy::limits`, the shared state in the
//! store (`TokenStore::take_permits`).

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Largest `requests` of a rate limit.
pub const MAX_RATE_REQUESTS: u32 = 1_000_000;
/// Longest rate-limit window.
pub const MAX_RATE_WINDOW_SECS: u32 = 86_400;
/// Most allowed networks on one token.
pub const MAX_NETWORKS: usize = 64;
/// Largest quota.
pub const MAX_QUOTA: u64 = 1_000_000_000_000_000;

/// CIDRs or single addresses, each read on its own (so an error names its index).
fn networks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    struct Network(IpNet);
    impl<'de> Deserialize<'de> for Network {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let t = String::deserialize(d)?;
            t.parse::<IpNet>()
                .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
                .map(Network)
                .map_err(|_| serde::de::Error::custom(format!("{t:?} is not an IP address or CIDR")))
        }
    }
    Ok(Vec::<Network>::deserialize(d)?.into_iter().map(|n| n.0).collect())
}

/// What a token may do beyond its roles and scopes. The default limits nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateLimit>,
    /// Total requests over the token's life; once used up, requests are refused (403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<u64>,
    /// Client networks the token may be used from; empty: any. Read as CIDRs or as single
    /// addresses (a /32 or /128).
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "networks")]
    pub networks: Vec<IpNet>,
}

/// `requests` per `window_secs` seconds, with up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests: u32,
    pub window_secs: u32,
    /// How many requests may arrive at once (default: `requests`, the whole window; may be
    /// more than `requests`, for clients that save up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LimitError {
    #[error("rate.requests must be between 1 and {MAX_RATE_REQUESTS}")]
    Requests,
    #[error("rate.window_secs must be between 1 and {MAX_RATE_WINDOW_SECS}")]
    Window,
    #[error("rate.burst must be between 1 and {MAX_RATE_REQUESTS}")]
    Burst,
    #[error("quota must be between 1 and {MAX_QUOTA}")]
    Quota,
    #[error("at most {MAX_NETWORKS} networks")]
    TooManyNetworks,
}

impl TokenLimits {
    pub fn is_unlimited(&self) -> bool {
        self.rate.is_none() && self.quota.is_none() && self.networks.is_empty()
    }

    /// Whether a request needs permits from the store (a rate or a quota is set).
    pub fn is_metered(&self) -> bool {
        self.rate.is_some() || self.quota.is_some()
    }

    /// Checks the bounds and normalises networks (host bits cleared, duplicates dropped).
    pub fn validated(mut self) -> Result<Self, LimitError> {
        if let Some(rate) = &self.rate {
            rate.check()?;
        }
        if self.quota.is_some_and(|q| q == 0 || q > MAX_QUOTA) {
            return Err(LimitError::Quota);
        }
        if self.networks.len() > MAX_NETWORKS {
            return Err(LimitError::TooManyNetworks);
        }
        let mut networks: Vec<IpNet> = self.networks.iter().map(IpNet::trunc).collect();
        networks.sort();
        networks.dedup();
        self.networks = networks;
        Ok(self)
    }

    /// Whether these limits are at least as strict as `current` (a person's own limits bound
    /// what they give their tokens): no higher rate or burst, no larger quota, and networks
    /// inside the current ones. Anything is within no limits.
    pub fn is_within(&self, current: &TokenLimits) -> bool {
        let rate_ok = match (&current.rate, &self.rate) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(c), Some(n)) => n.per_second() <= c.per_second() && n.burst() <= c.burst(),
        };
        let quota_ok = match (current.quota, self.quota) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(c), Some(n)) => n <= c,
        };
        let networks_ok = current.networks.is_empty()
            || (!self.networks.is_empty()
                && self.networks.iter().all(|n| current.networks.iter().any(|c| c.contains(n))));
        rate_ok && quota_ok && networks_ok
    }

    /// Whether `client` may use the token.
    pub fn allows(&self, client: IpAddr) -> bool {
        // An IPv4 client seen over IPv6 (`::ffff:a.b.c.d`) is matched as IPv4.
        let client = match client {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
            v4 => v4,
        };
        self.networks.is_empty() || self.networks.iter().any(|n| n.contains(&client))
    }
}

/// `100/60s burst 20, quota 100000, from 10.0.0.0/8`; `none` when unlimited.
impl std::fmt::Display for TokenLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(r) = &self.rate {
            let burst = r.burst.map(|b| format!(" burst {b}")).unwrap_or_default();
            parts.push(format!("{}/{}s{burst}", r.requests, r.window_secs));
        }
        if let Some(q) = self.quota {
            parts.push(format!("quota {q}"));
        }
        if !self.networks.is_empty() {
            let nets: Vec<String> = self.networks.iter().map(ToString::to_string).collect();
            parts.push(format!("from {}", nets.join(" ")));
        }
        if parts.is_empty() { f.write_str("none") } else { f.write_str(&parts.join(", ")) }
    }
}

impl std::str::FromStr for RateLimit {
    type Err = String;

    /// `REQUESTS/WINDOW`: `100/s`, `100/1s`, `1000/1m`, `5000/1h` (whole seconds).
    fn from_str(s: &str) -> Result<Self, String> {
        let shape = || format!("{s:?}: expected REQUESTS/WINDOW, e.g. 100/1s, 1000/1m");
        let (requests, window) = s.split_once('/').ok_or_else(shape)?;
        let requests: u32 = requests.trim().parse().map_err(|_| shape())?;
        let window = window.trim();
        let window =
            if window.starts_with(|c: char| c.is_ascii_digit()) { window.to_string() } else { format!("1{window}") };
        let window = humantime::parse_duration(&window).map_err(|_| shape())?;
        if window.subsec_nanos() != 0 {
            return Err(format!("{s:?}: the window must be whole seconds"));
        }
        let window_secs = u32::try_from(window.as_secs()).map_err(|_| shape())?;
        let rate = Self { requests, window_secs, burst: None };
        rate.check().map_err(|e| e.to_string())?;
        Ok(rate)
    }
}

impl RateLimit {
    fn check(&self) -> Result<(), LimitError> {
        if !(1..=MAX_RATE_REQUESTS).contains(&self.requests) {
            return Err(LimitError::Requests);
        }
        if !(1..=MAX_RATE_WINDOW_SECS).contains(&self.window_secs) {
            return Err(LimitError::Window);
        }
        if self.burst.is_some_and(|b| b == 0 || b > MAX_RATE_REQUESTS) {
            return Err(LimitError::Burst);
        }
        Ok(())
    }

    pub fn burst(&self) -> u32 {
        self.burst.unwrap_or(self.requests)
    }

    /// The GCRA parameters of this limit.
    pub fn gcra(&self) -> Gcra {
        // Rounded to the nearest microsecond: exact for rates up to 1,000,000 per window whose
        // interval is whole; beyond 20,000 a second the error can pass 1 %.
        let window_us = u64::from(self.window_secs) * 1_000_000;
        let requests = u64::from(self.requests);
        Gcra { interval_us: ((window_us + requests / 2) / requests).max(1), burst: self.burst() }
    }

    /// The sustained rate, in requests per second.
    pub fn per_second(&self) -> f64 {
        f64::from(self.requests) / f64::from(self.window_secs)
    }
}

/// The generic cell rate algorithm: each permit moves a theoretical arrival time (TAT) forward
/// by `interval_us`; a permit is granted while the TAT stays within `burst` intervals of now.
/// The Redis script (`store/redis/lua/take.lua`) applies the same arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    pub interval_us: u64,
    pub burst: u32,
}

/// The outcome of asking for permits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// How many of the permits asked for were granted (0: refused).
    pub granted: u32,
    /// When refused for the rate: how long until one permit frees up.
    pub retry_after: Duration,
    /// Permits still available at once after this grant (for the `RateLimit` header).
    pub remaining: u32,
    /// Whether the quota is used up (a refusal that waiting does not cure).
    pub quota_exhausted: bool,
}

impl Gcra {
    /// Grants up to `n` permits at `now_us` from the stored TAT (`None`: never used). Returns
    /// the grant and the new TAT.
    pub fn take(&self, tat: Option<u64>, now_us: u64, n: u32) -> (Grant, u64) {
        let tat = tat.unwrap_or(0).max(now_us);
        let horizon = now_us + self.interval_us * u64::from(self.burst);
        // Permits fit while tat + k * interval <= horizon.
        let room = horizon.saturating_sub(tat) / self.interval_us;
        let granted = room.min(u64::from(n)) as u32;
        let new_tat = tat + self.interval_us * u64::from(granted);
        let remaining = (horizon.saturating_sub(new_tat) / self.interval_us) as u32;
        let retry_after = if granted == 0 {
            Duration::from_micros((tat + self.interval_us).saturating_sub(horizon))
        } else {
            Duration::ZERO
        };
        (Grant { granted, retry_after, remaining, quota_exhausted: false }, new_tat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_grants_the_burst_then_one_per_interval() {
        let g = RateLimit { requests: 10, window_secs: 1, burst: Some(3) }.gcra();
        assert_eq!(g.interval_us, 100_000);
        let (a, tat) = g.take(None, 1_000_000, 5);
        assert_eq!((a.granted, a.remaining), (3, 0));
        let (b, tat) = g.take(Some(tat), 1_000_000, 1);
        assert_eq!((b.granted, b.retry_after), (0, Duration::from_millis(100)));
        let (c, _) = g.take(Some(tat), 1_100_000, 2);
        assert_eq!(c.granted, 1);
        // Over a long run the sustained rate is exactly requests / window.
        let (mut tat, mut granted) = (None, 0u32);
        for ms in 0..10_000u64 {
            let (grant, next) = g.take(tat, 5_000_000 + ms * 1000, 1);
            granted += grant.granted;
            tat = Some(next);
        }
        assert!((100..=103).contains(&granted), "{granted}");
    }

    #[test]
    fn stricter_limits_are_within_looser_ones() {
        let rate = |requests, window_secs, burst| Some(RateLimit { requests, window_secs, burst });
        let current = TokenLimits {
            rate: rate(100, 60, Some(20)),
            quota: Some(1000),
            networks: vec!["10.0.0.0/8".parse().unwrap()],
        };
        let stricter =
            TokenLimits { rate: rate(1, 1, Some(1)), quota: Some(10), networks: vec!["10.1.0.0/16".parse().unwrap()] };
        assert!(stricter.is_within(&current) && current.is_within(&current));
        assert!(current.is_within(&TokenLimits::default()) && !TokenLimits::default().is_within(&current));
        for looser in [
            TokenLimits { rate: rate(101, 60, Some(20)), ..current.clone() },
            TokenLimits { rate: rate(100, 60, Some(21)), ..current.clone() },
            TokenLimits { rate: None, ..current.clone() },
            TokenLimits { quota: Some(1001), ..current.clone() },
            TokenLimits { quota: None, ..current.clone() },
            TokenLimits { networks: vec!["0.0.0.0/0".parse().unwrap()], ..current.clone() },
            TokenLimits { networks: vec![], ..current.clone() },
        ] {
            assert!(!looser.is_within(&current), "{looser}");
        }
    }

    #[test]
    fn rates_parse_and_limits_display() {
        let r: RateLimit = "100/1m".parse().unwrap();
        assert_eq!((r.requests, r.window_secs), (100, 60));
        assert_eq!("5/s".parse::<RateLimit>().unwrap().window_secs, 1);
        for bad in ["", "100", "x/1s", "100/1.5s", "0/1s", "100/0s", "100/2days"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad:?}");
        }
        let l = TokenLimits {
            rate: Some(RateLimit { requests: 100, window_secs: 60, burst: Some(20) }),
            quota: Some(5),
            networks: vec!["10.0.0.0/8".parse().unwrap()],
        };
        assert_eq!(l.to_string(), "100/60s burst 20, quota 5, from 10.0.0.0/8");
        assert_eq!(TokenLimits::default().to_string(), "none");
    }

    #[test]
    fn limits_are_validated_and_networks_normalised() {
        let ok = TokenLimits {
            rate: Some(RateLimit { requests: 100, window_secs: 60, burst: None }),
            quota: Some(5),
            networks: vec![
                "10.1.2.3/8".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
                "2001:db8::1/32".parse().unwrap(),
            ],
        }
        .validated()
        .unwrap();
        assert_eq!(ok.networks, vec!["10.0.0.0/8".parse::<IpNet>().unwrap(), "2001:db8::/32".parse().unwrap()]);
        assert!(ok.allows("10.9.9.9".parse().unwrap()) && ok.allows("::ffff:10.1.1.1".parse().unwrap()));
        assert!(!ok.allows("11.0.0.1".parse().unwrap()) && !ok.allows("2001:db9::1".parse().unwrap()));
        let bad = |rate: RateLimit| TokenLimits { rate: Some(rate), ..Default::default() }.validated().unwrap_err();
        assert_eq!(bad(RateLimit { requests: 0, window_secs: 1, burst: None }), LimitError::Requests);
        assert_eq!(bad(RateLimit { requests: 1, window_secs: 0, burst: None }), LimitError::Window);
        assert_eq!(bad(RateLimit { requests: 5, window_secs: 1, burst: Some(0) }), LimitError::Burst);
        assert_eq!(TokenLimits { quota: Some(0), ..Default::default() }.validated().unwrap_err(), LimitError::Quota);
        assert!(TokenLimits::default().allows("1.2.3.4".parse().unwrap()));
    }
}

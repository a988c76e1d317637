//! The documented defaults (`config/tokengate.yaml`): the value of every optional field, and the
//! `Default` of the sections other parts of the crate (and the tests) build without a file.

use super::{CacheConfig, FailedAuthConfig};

pub const LISTEN: &str = "0.0.0.0:8080";
pub const ADMIN_LISTEN: &str = "127.0.0.1:9091";
pub const EMBEDDED_PATH: &str = "data/tokengate.redb";
pub const REDIS_KEY_PREFIX: &str = "tokengate";
pub const REDIS_CONNECT_TIMEOUT: &str = "1s";
pub const REDIS_COMMAND_TIMEOUT: &str = "1s";
pub const EXPIRY_DAYS: &[u32] = &[30, 60, 90, 180, 365];
pub const ROLES: &[&str] = &["viewer", "developer", "admin"];
pub const DEFAULT_ROLES: &[&str] = &["viewer"];
pub const AUDIT_MAX_EVENTS: usize = 10_000;
pub const DRAIN_TIMEOUT: &str = "30s";
pub const IDENTITY_HEADER_PREFIX: &str = "X-Auth-";
pub const MAX_CONNECTIONS: usize = 10_000;
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
pub const MAX_HEADERS: usize = 100;
pub const HEADER_READ_TIMEOUT: &str = "10s";
pub const IDLE_TIMEOUT: &str = "60s";
pub const HTTP2_KEEPALIVE_INTERVAL: &str = "30s";
pub const UPSTREAM_CONNECT_TIMEOUT: &str = "2s";
pub const UPSTREAM_RESPONSE_TIMEOUT: &str = "60s";
pub const UPSTREAM_IDLE_TIMEOUT: &str = "90s";
pub const CACHE_TTL: &str = "30s";
pub const CACHE_NEGATIVE_TTL: &str = "5s";
pub const CACHE_MAX_STALENESS: &str = "5m";
/// About 100 MiB of cached records (the load harness measures about 1 KiB per entry).
pub const CACHE_MAX_ENTRIES: u64 = 100_000;
pub const CACHE_TTL_WITHOUT_INVALIDATIONS: &str = "1s";
pub const CACHE_MAX_NEGATIVE_ENTRIES: u64 = 10_000;
pub const CACHE_MAX_CONCURRENT_FETCHES: usize = 64;
pub const CACHE_LOOKUP_TIMEOUT: &str = "500ms";
pub const FAILED_AUTH_BURST: u32 = 30;
pub const FAILED_AUTH_REFILL_INTERVAL: &str = "1s";
pub const FAILED_AUTH_MAX_CLIENTS: u64 = 100_000;
pub const LAST_USED_FLUSH_INTERVAL: &str = "10s";
pub const LAST_USED_MAX_PENDING: usize = 100_000;
pub const LOG_LEVEL: &str = "info";
pub const ADMIN_MAX_BODY_BYTES: usize = 16 * 1024;
pub const ADMIN_MAX_CONNECTIONS: usize = 64;
pub const ADMIN_MAX_CONCURRENT_CALLS: usize = 16;
pub const WEBHOOK_MAX_ATTEMPTS: u32 = 6;
pub const WEBHOOK_TIMEOUT: &str = "5s";
/// How long a sign-in lasts at most (`identity.sessions.lifetime`).
pub const SESSION_LIFETIME: &str = "12h";
/// How long a signed-in session lasts without use (`identity.sessions.idle_timeout`).
pub const SESSION_IDLE_TIMEOUT: &str = "1h";

impl Default for CacheConfig {
    /// The documented defaults (`config/tokengate.yaml`).
    fn default() -> Self {
        let d = |s: &str| humantime::parse_duration(s).expect("default durations parse");
        Self {
            ttl: d(CACHE_TTL),
            negative_ttl: d(CACHE_NEGATIVE_TTL),
            max_staleness: d(CACHE_MAX_STALENESS),
            max_entries: CACHE_MAX_ENTRIES,
            ttl_without_invalidations: d(CACHE_TTL_WITHOUT_INVALIDATIONS),
            max_negative_entries: CACHE_MAX_NEGATIVE_ENTRIES,
            max_concurrent_fetches: CACHE_MAX_CONCURRENT_FETCHES,
            lookup_timeout: d(CACHE_LOOKUP_TIMEOUT),
        }
    }
}

impl Default for FailedAuthConfig {
    fn default() -> Self {
        Self {
            burst: FAILED_AUTH_BURST,
            refill_interval: humantime::parse_duration(FAILED_AUTH_REFILL_INTERVAL).expect("parses"),
            max_clients: FAILED_AUTH_MAX_CLIENTS,
        }
    }
}

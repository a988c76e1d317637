//! `store`, `last_used` and `audit`: the backend, and what is written to it.

use std::path::PathBuf;

use super::Ctx;
use crate::config::raw::{RawAudit, RawLastUsed, RawStore};
use crate::config::{
    AuditConfig, ConfigError, EmbeddedConfig, LastUsedConfig, RedisConfig, StoreConfig, defaults, redact_url,
};

pub(super) fn validate_store(raw: RawStore, ctx: &Ctx) -> Result<StoreConfig, ConfigError> {
    match (raw.embedded, raw.redis) {
        (Some(_), Some(_)) => Err(ctx.error("store", "set either `store.embedded` or `store.redis`, not both")),
        (_, Some(r)) => {
            let url = r.url.ok_or_else(|| ctx.error("store.redis.url", "required when `store.redis` is set"))?;
            if let Err(e) = redis::Client::open(url.as_str()) {
                return Err(ctx.error("store.redis.url", format!("invalid Redis URL {}: {e}", redact_url(&url))));
            }
            let key_prefix = r.key_prefix.unwrap_or_else(|| defaults::REDIS_KEY_PREFIX.to_string());
            let ok = (1..=64).contains(&key_prefix.len())
                && key_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
            if !ok {
                return Err(ctx.error(
                    "store.redis.key_prefix",
                    format!("invalid prefix {key_prefix:?}: 1-64 letters, digits, '-', '_', '.' or ':'"),
                ));
            }
            Ok(StoreConfig::Redis(RedisConfig {
                url,
                key_prefix,
                connect_timeout: ctx.duration(
                    "store.redis.connect_timeout",
                    r.connect_timeout,
                    defaults::REDIS_CONNECT_TIMEOUT,
                )?,
                command_timeout: ctx.duration(
                    "store.redis.command_timeout",
                    r.command_timeout,
                    defaults::REDIS_COMMAND_TIMEOUT,
                )?,
            }))
        }
        (embedded, None) => {
            let path = embedded.and_then(|e| e.path).unwrap_or_else(|| defaults::EMBEDDED_PATH.to_string());
            if path.trim().is_empty() {
                return Err(ctx.error("store.embedded.path", "must not be empty"));
            }
            Ok(StoreConfig::Embedded(EmbeddedConfig { path: PathBuf::from(path) }))
        }
    }
}

pub(super) fn validate_last_used(last_used: RawLastUsed, ctx: &Ctx) -> Result<LastUsedConfig, ConfigError> {
    let last_used = LastUsedConfig {
        flush_interval: ctx.duration(
            "last_used.flush_interval",
            last_used.flush_interval,
            defaults::LAST_USED_FLUSH_INTERVAL,
        )?,
        max_pending: last_used.max_pending.unwrap_or(defaults::LAST_USED_MAX_PENDING),
    };
    if last_used.max_pending == 0 {
        return Err(ctx.error("last_used.max_pending", "must be greater than zero"));
    }
    Ok(last_used)
}

pub(super) fn validate_audit(audit: RawAudit, ctx: &Ctx) -> Result<AuditConfig, ConfigError> {
    let max_events = audit.max_events.unwrap_or(defaults::AUDIT_MAX_EVENTS);
    if !(1..=10_000_000).contains(&max_events) {
        return Err(ctx.error("audit.max_events", "must be between 1 and 10000000"));
    }
    Ok(AuditConfig { max_events })
}

//! `store`, `last_used` and `audit`: the backend, and what is written to it (`store.redis` has its
//! own file, `redis.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::Ctx;
use super::redis::validate_redis;
use crate::config::raw::{RawAudit, RawLastUsed, RawStore};
use crate::config::{AuditConfig, ConfigError, EmbeddedConfig, LastUsedConfig, StoreConfig, defaults};

pub(super) fn validate_store(
    raw: RawStore,
    env: &BTreeMap<String, String>,
    ctx: &Ctx,
) -> Result<StoreConfig, ConfigError> {
    match (raw.embedded, raw.redis) {
        (Some(_), Some(_)) => Err(ctx.error("store", "set either `store.embedded` or `store.redis`, not both")),
        (_, Some(r)) => Ok(StoreConfig::Redis(Box::new(validate_redis(r, env, ctx)?))),
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

//! `cache`: how long records are trusted without asking the store, and how much is kept.

use super::Ctx;
use crate::config::raw::RawCache;
use crate::config::{CacheConfig, ConfigError, defaults};

pub(super) fn validate_cache(cache: RawCache, ctx: &Ctx) -> Result<CacheConfig, ConfigError> {
    let cache = CacheConfig {
        ttl: ctx.duration("cache.ttl", cache.ttl, defaults::CACHE_TTL)?,
        negative_ttl: ctx.duration("cache.negative_ttl", cache.negative_ttl, defaults::CACHE_NEGATIVE_TTL)?,
        max_staleness: ctx.duration("cache.max_staleness", cache.max_staleness, defaults::CACHE_MAX_STALENESS)?,
        max_entries: cache.max_entries.unwrap_or(defaults::CACHE_MAX_ENTRIES),
        ttl_without_invalidations: ctx.duration(
            "cache.ttl_without_invalidations",
            cache.ttl_without_invalidations,
            defaults::CACHE_TTL_WITHOUT_INVALIDATIONS,
        )?,
        max_negative_entries: cache.max_negative_entries.unwrap_or(defaults::CACHE_MAX_NEGATIVE_ENTRIES),
        max_concurrent_fetches: cache.max_concurrent_fetches.unwrap_or(defaults::CACHE_MAX_CONCURRENT_FETCHES),
        lookup_timeout: ctx.duration("cache.lookup_timeout", cache.lookup_timeout, defaults::CACHE_LOOKUP_TIMEOUT)?,
    };
    if cache.ttl_without_invalidations > cache.ttl {
        return Err(ctx.error("cache.ttl_without_invalidations", "must not be longer than `cache.ttl`"));
    }
    if cache.max_negative_entries == 0 {
        return Err(ctx.error("cache.max_negative_entries", "must be greater than zero"));
    }
    if cache.max_concurrent_fetches == 0 {
        return Err(ctx.error("cache.max_concurrent_fetches", "must be greater than zero"));
    }
    if cache.max_staleness < cache.ttl {
        return Err(ctx.error("cache.max_staleness", "must be at least `cache.ttl`"));
    }
    if cache.max_entries == 0 {
        return Err(ctx.error("cache.max_entries", "must be greater than zero"));
    }
    Ok(cache)
}

//! `tokengate store migrate`: moves tokens written by an earlier release to the current Redis
//! format (see `store::redis`), straight against the configured store.

use anyhow::Context;

use crate::config::{Config, StoreConfig};
use crate::store::StoreOptions;
use crate::store::redis::RedisStore;

/// Migrates the configured Redis store and prints what it did.
pub async fn migrate(config: Config) -> anyhow::Result<()> {
    let StoreConfig::Redis(redis) = &config.store else {
        println!("the embedded store has nothing to migrate");
        return Ok(());
    };
    let options = StoreOptions { allow_restore: config.tokens.allow_restore, audit_limit: config.audit.max_events };
    let store = RedisStore::open(redis, options).context("opening the Redis store")?;
    let done = store.migrate().await.context("migrating the Redis store")?;
    println!("migrated {} tokens to the current format ({} stale index entries removed)", done.migrated, done.dangling);
    println!("indexed {} principals written before principals could be listed", done.principals_indexed);
    Ok(())
}

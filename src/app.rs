//! Builds the running service from config and runs it until the shutdown future resolves.

use std::future::Future;

use anyhow::Context;

use crate::config::Config;
use crate::store::{self, Store, StoreOptions};

/// The assembled service: config plus the shared handles every part uses.
pub struct App {
    config: Config,
    store: Store,
}

impl App {
    /// Opens the configured store. A Redis store that is down does not stop startup: it
    /// reconnects by itself, and the outage is logged.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let options = StoreOptions { allow_restore: config.tokens.allow_restore, audit_limit: config.audit.max_events };
        let store = store::open(&config.store, options).await.context("opening the token store")?;
        if let Err(e) = store.ping().await {
            tracing::warn!(backend = store.backend(), error = %e, "token store not reachable yet; will keep retrying");
        }
        Ok(Self { config, store })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tracing::info!(
            backend = self.store.backend(),
            listen = %self.config.listen,
            admin = %self.config.admin.listen,
            "tokengate started"
        );
        shutdown.await;
        tracing::info!("tokengate stopped");
        Ok(())
    }
}

//! The authentication cache: token and principal records in front of the store.
//!
//! - It holds records, never decisions: status, expiry, digest, roles and route requirements are
//!   checked on every request against the cached record.
//! - A record is used without asking the store for `cache.ttl` (30 s); "no such token" for
//!   `cache.negative_ttl` (5 s).
//! - Concurrent lookups of one key that need the store make one store call: moka serialises
//!   compute operations per key, and the callers that waited find the fresh entry.
//! - Invalidations from the store (every replica's lifecycle changes, via Redis pub/sub or the
//!   embedded store's channel) evict the entry at once. When messages may have been lost
//!   (subscription dropped, receiver lagged) the whole cache is flushed: every entry is marked as
//!   needing revalidation, in O(1), by bumping an epoch.
//! - When the store is unreachable, a record fetched less than `cache.max_staleness` ago keeps
//!   being used; anything else is a [`StoreError`], which the proxy answers with 503.
//!
//! Freshness is measured with `tokio::time::Instant`, so tests drive it with a paused clock.

use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use moka::future::Cache;
use moka::ops::compute::Op;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::CacheConfig;
use crate::metrics::CacheMetrics;
use crate::model::{Principal, Token};
use crate::store::{Invalidation, Store, StoreError};
use crate::token::TokenId;

/// A cached lookup result: the record, or its known absence.
struct Entry<T> {
    value: Option<Arc<T>>,
    fetched: Instant,
    /// The flush epoch the entry was fetched in; `None` when a change raced with the fetch, so
    /// the entry must be revalidated on next use.
    epoch: Option<u64>,
}

// Manual impl: cloning shares the record, so `T` itself need not be `Clone`.
impl<T> Clone for Entry<T> {
    fn clone(&self) -> Self {
        Self { value: self.value.clone(), fetched: self.fetched, epoch: self.epoch }
    }
}

/// A cheap-to-clone handle to the cache. Its invalidation listener stops when the last handle
/// is dropped.
#[derive(Clone)]
pub struct AuthCache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    tokens: Cache<TokenId, Entry<Token>>,
    principals: Cache<String, Entry<Principal>>,
    config: CacheConfig,
    /// Bumped by every flush; entries from older epochs must be revalidated.
    epoch: AtomicU64,
    /// Bumped by every invalidation, to notice one that lands while a fetch is in flight.
    changes: AtomicU64,
    metrics: CacheMetrics,
    _stop_listener: DropGuard,
}

impl AuthCache {
    /// Creates the cache and starts listening to the store's invalidations.
    pub fn new(store: Store, config: CacheConfig, metrics: CacheMetrics) -> Self {
        let reclaim_after = config.max_staleness + config.ttl;
        let stop = CancellationToken::new();
        let receiver = store.invalidations();
        let inner = Arc::new(Inner {
            store,
            tokens: Cache::builder().max_capacity(config.max_entries).time_to_live(reclaim_after).build(),
            principals: Cache::builder().max_capacity(config.max_entries / 4 + 1).time_to_live(reclaim_after).build(),
            config,
            epoch: AtomicU64::new(0),
            changes: AtomicU64::new(0),
            metrics,
            _stop_listener: stop.clone().drop_guard(),
        });
        tokio::spawn(listen(Arc::downgrade(&inner), receiver, stop));
        Self { inner }
    }

    /// The token record for `id`, `None` when the store has no such token.
    pub async fn token(&self, id: &TokenId) -> Result<Option<Arc<Token>>, StoreError> {
        let store = &self.inner.store;
        self.inner.lookup(&self.inner.tokens, id, || store.get(id)).await
    }

    /// The principal `id`, `None` when there is no such principal.
    pub async fn principal(&self, id: &str) -> Result<Option<Arc<Principal>>, StoreError> {
        let store = &self.inner.store;
        self.inner.lookup(&self.inner.principals, id, || store.get_principal(id)).await
    }

    /// Marks every cached record as needing revalidation. Records stay available for use while
    /// the store is unreachable (up to `cache.max_staleness`).
    pub fn flush(&self) {
        self.inner.changes.fetch_add(1, Ordering::AcqRel);
        self.inner.flush();
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Number of cached token entries (approximate; for tests and diagnostics).
    pub async fn token_entries(&self) -> u64 {
        self.inner.tokens.run_pending_tasks().await;
        self.inner.tokens.entry_count()
    }
}

impl Inner {
    fn is_fresh<T>(&self, e: &Entry<T>, now: Instant) -> bool {
        let ttl = if e.value.is_some() { self.config.ttl } else { self.config.negative_ttl };
        e.epoch == Some(self.epoch.load(Ordering::Acquire)) && now.saturating_duration_since(e.fetched) < ttl
    }

    /// Looks `key` up; the owned key is only built when the store must be asked.
    async fn lookup<K, Q, V, F, Fut>(
        &self,
        cache: &Cache<K, Entry<V>>,
        key: &Q,
        fetch: F,
    ) -> Result<Option<Arc<V>>, StoreError>
    where
        K: Hash + Eq + Send + Sync + Clone + Borrow<Q> + 'static,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        V: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, StoreError>>,
    {
        let now = Instant::now();
        let cached = cache.get(key).await;
        if let Some(e) = &cached
            && self.is_fresh(e, now)
        {
            if e.value.is_some() { &self.metrics.hits } else { &self.metrics.negative_hits }.inc();
            return Ok(e.value.clone());
        }
        self.metrics.misses.inc();
        let computed = cache
            .entry(key.to_owned())
            .and_try_compute_with(|existing| async move {
                if let Some(e) = existing
                    && self.is_fresh(e.value(), Instant::now())
                {
                    return Ok(Op::Nop);
                }
                let epoch = self.epoch.load(Ordering::Acquire);
                let changes = self.changes.load(Ordering::Acquire);
                let fetched = Instant::now();
                let value = fetch().await?;
                let raced = self.changes.load(Ordering::Acquire) != changes;
                Ok(Op::Put(Entry { value: value.map(Arc::new), fetched, epoch: (!raced).then_some(epoch) }))
            })
            .await;
        match computed {
            Ok(result) => Ok(result.into_entry().and_then(|e| e.into_value().value)),
            Err(e) => {
                self.metrics.store_errors.inc();
                match cached {
                    Some(Entry { value: Some(v), fetched, .. })
                        if now.saturating_duration_since(fetched) < self.config.max_staleness =>
                    {
                        self.metrics.stale_served.inc();
                        Ok(Some(v))
                    }
                    _ => Err(e),
                }
            }
        }
    }

    async fn apply(&self, inv: Invalidation) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        match inv {
            Invalidation::Token(id) => {
                self.metrics.invalidations_token.inc();
                self.tokens.invalidate(&id).await;
            }
            Invalidation::Principal(p) => {
                self.metrics.invalidations_principal.inc();
                self.principals.invalidate(&p).await;
            }
            Invalidation::All => self.flush(),
        }
    }

    /// Marks every entry as needing revalidation (kept for use while the store is down).
    fn flush(&self) {
        self.metrics.invalidations_all.inc();
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

async fn listen(
    inner: std::sync::Weak<Inner>,
    mut receiver: tokio::sync::broadcast::Receiver<Invalidation>,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return,
            m = receiver.recv() => m,
        };
        let Some(inner) = inner.upgrade() else { return };
        match message {
            Ok(inv) => inner.apply(inv).await,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "invalidation receiver lagged; flushing the cache");
                inner.changes.fetch_add(1, Ordering::AcqRel);
                inner.flush();
            }
            Err(RecvError::Closed) => return,
        }
    }
}

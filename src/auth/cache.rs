//! The authentication cache: token and principal records in front of the store.
//!
//! - It holds records, never decisions: status, expiry, digest, roles and route requirements are
//!   checked on every request against the cached record.
//! - A record is used without asking the store for `cache.ttl` (30 s), or for
//!   `cache.ttl_without_invalidations` (1 s) while the store's invalidation channel is down or
//!   was down when the record was fetched, so a change made on another replica is seen within
//!   that bound whatever the channel's state. "No such token" is remembered for
//!   `cache.negative_ttl` (5 s) in a cache of its own (`cache.max_negative_entries`), so a flood
//!   of unknown ids cannot evict real tokens.
//! - Concurrent lookups of one key that need the store make one store call: moka serialises
//!   compute operations per key, and the callers that waited find the fresh entry. At most
//!   `cache.max_concurrent_fetches` store calls run at once ([`LookupError::Busy`] beyond), each
//!   bounded by `cache.lookup_timeout`.
//! - Invalidations (every replica's lifecycle changes, via Redis pub/sub or the embedded store's
//!   channel) remove the entry through the same per-key compute path as a fetch. A fetch that
//!   read the record before the change therefore finishes inserting before the removal runs:
//!   an invalidation can never be lost between a fetch and its insertion.
//! - When messages may have been lost (subscription dropped, receiver lagged) the whole cache is
//!   flushed: every entry is marked as needing revalidation, in O(1), by bumping an epoch; a
//!   fetch records the epoch it started in, so one that straddles a flush is stale at once.
//! - When the store is unreachable, a record fetched less than `cache.max_staleness` ago keeps
//!   being used (only a record that was never invalidated: a removed entry is gone); anything
//!   else is an error, which the proxy answers with 503. After a failed store call, such records
//!   are served at once for [`STORE_BACKOFF`] instead of each request waiting for the deadline.
//!
//! Freshness is measured with `tokio::time::Instant`, so tests drive it with a paused clock.

use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::future::Cache;
use moka::ops::compute::{CompResult, Op};
use thiserror::Error;
use tokio::sync::Semaphore;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::CacheConfig;
use crate::metrics::CacheMetrics;
use crate::store::{Invalidation, Store, StoreError};
use crate::token::TokenId;
use crate::token::{Principal, Token};

/// After a failed store call, how long cached records are served without trying the store.
pub const STORE_BACKOFF: Duration = Duration::from_secs(1);

/// Why a lookup has no answer.
#[derive(Debug, Error)]
pub enum LookupError {
    /// The store failed or did not answer within `cache.lookup_timeout`.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Too many store lookups in flight (`cache.max_concurrent_fetches`).
    #[error("too many token lookups in flight")]
    Busy,
    /// The caller's admission check refused the store lookup; carries its retry delay.
    #[error("lookup refused for this client")]
    Refused(Duration),
}

/// A cached record.
struct Entry<T> {
    value: Arc<T>,
    fetched: Instant,
    /// The flush epoch the fetch started in; older entries must be revalidated.
    epoch: u64,
    /// Whether the invalidation channel was connected when the fetch started.
    watched: bool,
}

// Manual impl: cloning shares the record, so `T` itself need not be `Clone`.
impl<T> Clone for Entry<T> {
    fn clone(&self) -> Self {
        Self { value: self.value.clone(), fetched: self.fetched, epoch: self.epoch, watched: self.watched }
    }
}

/// A remembered absence.
#[derive(Clone, Copy)]
struct Absent {
    fetched: Instant,
    epoch: u64,
}

/// Records of one kind and their known absences.
struct Slot<K, V> {
    records: Cache<K, Entry<V>>,
    absent: Cache<K, Absent>,
}

impl<K: Hash + Eq + Send + Sync + Clone + 'static, V: Send + Sync + 'static> Slot<K, V> {
    fn new(max_records: u64, max_absent: u64, reclaim_after: Duration) -> Self {
        Self {
            records: Cache::builder().max_capacity(max_records).time_to_live(reclaim_after).build(),
            absent: Cache::builder().max_capacity(max_absent).time_to_live(reclaim_after).build(),
        }
    }

    /// Removes `key`, serialised with any fetch of it (see the module docs).
    async fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.records
            .entry_by_ref(key)
            .and_compute_with(|_| async {
                self.absent.invalidate(key).await;
                Op::Remove
            })
            .await;
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
    tokens: Slot<TokenId, Token>,
    principals: Slot<String, Principal>,
    config: CacheConfig,
    /// Bumped by every flush; entries from older epochs must be revalidated.
    epoch: AtomicU64,
    fetches: Semaphore,
    /// When the last store call failed, in milliseconds since `base` (0: never).
    failed_at: AtomicU64,
    base: Instant,
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
            tokens: Slot::new(config.max_entries, config.max_negative_entries, reclaim_after),
            principals: Slot::new(config.max_entries / 4 + 1, config.max_negative_entries / 4 + 1, reclaim_after),
            fetches: Semaphore::new(config.max_concurrent_fetches),
            config,
            epoch: AtomicU64::new(1),
            failed_at: AtomicU64::new(0),
            base: Instant::now(),
            metrics,
            _stop_listener: stop.clone().drop_guard(),
        });
        tokio::spawn(listen(Arc::downgrade(&inner), receiver, stop));
        Self { inner }
    }

    /// The token record for `id`, `None` when the store has no such token.
    pub async fn token(&self, id: &TokenId) -> Result<Option<Arc<Token>>, LookupError> {
        self.token_admitted(id, || Ok(())).await
    }

    /// [`AuthCache::token`], asking `admit` before the store is asked (never on a fresh cache
    /// entry); its `Err(retry_after)` refuses the lookup.
    pub async fn token_admitted(
        &self,
        id: &TokenId,
        admit: impl FnOnce() -> Result<(), Duration>,
    ) -> Result<Option<Arc<Token>>, LookupError> {
        let store = &self.inner.store;
        self.inner.lookup(&self.inner.tokens, id, admit, || store.get(id)).await
    }

    /// The principal `id`, `None` when there is no such principal.
    pub async fn principal(&self, id: &str) -> Result<Option<Arc<Principal>>, LookupError> {
        let store = &self.inner.store;
        self.inner.lookup(&self.inner.principals, id, || Ok(()), || store.get_principal(id)).await
    }

    /// Marks every cached record as needing revalidation. Records stay available for use while
    /// the store is unreachable (up to `cache.max_staleness`).
    pub fn flush(&self) {
        self.inner.flush();
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Number of cached token records (approximate; for tests and diagnostics).
    pub async fn token_entries(&self) -> u64 {
        self.inner.tokens.records.run_pending_tasks().await;
        self.inner.tokens.records.entry_count()
    }

    /// Number of remembered unknown token ids (approximate; for tests and diagnostics).
    pub async fn unknown_token_entries(&self) -> u64 {
        self.inner.tokens.absent.run_pending_tasks().await;
        self.inner.tokens.absent.entry_count()
    }
}

impl Inner {
    fn current_epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn is_fresh<T>(&self, e: &Entry<T>, now: Instant) -> bool {
        let ttl = if e.watched && self.store.invalidations_connected() {
            self.config.ttl
        } else {
            self.config.ttl_without_invalidations
        };
        e.epoch == self.current_epoch() && now.saturating_duration_since(e.fetched) < ttl
    }

    fn is_fresh_absence(&self, a: &Absent, now: Instant) -> bool {
        a.epoch == self.current_epoch() && now.saturating_duration_since(a.fetched) < self.config.negative_ttl
    }

    fn usable_stale<T>(&self, e: &Entry<T>, now: Instant) -> bool {
        now.saturating_duration_since(e.fetched) < self.config.max_staleness
    }

    fn millis_since_base(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX).max(1)
    }

    fn store_failed(&self) {
        self.metrics.store_errors.inc();
        self.failed_at.store(self.millis_since_base(Instant::now()), Ordering::Release);
    }

    /// Whether a store call failed less than [`STORE_BACKOFF`] ago.
    fn backing_off(&self, now: Instant) -> bool {
        let failed = self.failed_at.load(Ordering::Acquire);
        failed != 0 && self.millis_since_base(now).saturating_sub(failed) < STORE_BACKOFF.as_millis() as u64
    }

    /// Looks `key` up; the owned key is only built when the store must be asked.
    async fn lookup<K, Q, V, A, F, Fut>(
        &self,
        slot: &Slot<K, V>,
        key: &Q,
        admit: A,
        fetch: F,
    ) -> Result<Option<Arc<V>>, LookupError>
    where
        K: Hash + Eq + Send + Sync + Clone + Borrow<Q> + 'static,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        V: Send + Sync + 'static,
        A: FnOnce() -> Result<(), Duration>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, StoreError>>,
    {
        let now = Instant::now();
        let cached = slot.records.get(key).await;
        if let Some(e) = &cached {
            if self.is_fresh(e, now) {
                self.metrics.hits.inc();
                return Ok(Some(e.value.clone()));
            }
            if self.backing_off(now) && self.usable_stale(e, now) {
                self.metrics.stale_served.inc();
                return Ok(Some(e.value.clone()));
            }
        } else if let Some(a) = slot.absent.get(key).await
            && self.is_fresh_absence(&a, now)
        {
            self.metrics.negative_hits.inc();
            return Ok(None);
        }
        admit().map_err(LookupError::Refused)?;
        self.metrics.misses.inc();
        let computed = slot
            .records
            .entry_by_ref(key)
            .and_try_compute_with(|existing| async move {
                let now = Instant::now();
                if let Some(e) = &existing
                    && self.is_fresh(e.value(), now)
                {
                    return Ok(Op::Nop);
                }
                if existing.is_none()
                    && let Some(a) = slot.absent.get(key).await
                    && self.is_fresh_absence(&a, now)
                {
                    return Ok(Op::Nop);
                }
                let Ok(_permit) = self.fetches.try_acquire() else {
                    self.metrics.fetches_shed.inc();
                    return Err(LookupError::Busy);
                };
                let epoch = self.current_epoch();
                let watched = self.store.invalidations_connected();
                let fetched = Instant::now();
                let value = match tokio::time::timeout(self.config.lookup_timeout, fetch()).await {
                    Ok(Ok(value)) => value,
                    Ok(Err(e)) => return Err(LookupError::Store(e)),
                    Err(_) => return Err(LookupError::Store(StoreError::Unavailable("store lookup timed out".into()))),
                };
                Ok(match value {
                    Some(v) => Op::Put(Entry { value: Arc::new(v), fetched, epoch, watched }),
                    None => {
                        slot.absent.insert(key.to_owned(), Absent { fetched, epoch }).await;
                        if existing.is_some() { Op::Remove } else { Op::Nop }
                    }
                })
            })
            .await;
        match computed {
            Ok(CompResult::Inserted(e) | CompResult::ReplacedWith(e) | CompResult::Unchanged(e)) => {
                Ok(Some(e.into_value().value))
            }
            Ok(CompResult::Removed(_) | CompResult::StillNone(_)) => Ok(None),
            Err(LookupError::Store(e)) => {
                self.store_failed();
                match cached {
                    // Only an entry that was never invalidated: an invalidated one was removed.
                    Some(e) if self.usable_stale(&e, now) => {
                        self.metrics.stale_served.inc();
                        Ok(Some(e.value))
                    }
                    _ => Err(LookupError::Store(e)),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn apply(&self, inv: Invalidation) {
        match inv {
            Invalidation::Token(id) => {
                self.metrics.invalidations_token.inc();
                self.tokens.invalidate(&id).await;
            }
            Invalidation::Principal(p) => {
                self.metrics.invalidations_principal.inc();
                self.principals.invalidate(p.as_str()).await;
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
                inner.flush();
            }
            Err(RecvError::Closed) => return,
        }
    }
}

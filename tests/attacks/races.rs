//! Invalidations racing fetches (issue 9, findings 9 and 10), and the cache's own bounds under a
//! flood (finding 6): a revoked token must never stay cached as valid because its invalidation
//! landed while a fetch of the old record was in flight, nor be served stale afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::Registry;
use tokengate::auth::cache::{AuthCache, LookupError};
use tokengate::config::CacheConfig;
use tokengate::metrics::CacheMetrics;
use tokengate::store::embedded::EmbeddedStore;
use tokengate::store::{Store, StoreError, StoreOptions, TokenStore};
use tokengate::token::{Action, TokenKind, TokenStatus};
use tokengate::token::{TokenFormat, TokenId};

use crate::support::{Counting, minter, new_token};
use tokengate::store::Issue as _;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Counting>,
    cache: AuthCache,
    metrics: CacheMetrics,
}

async fn fixture(config: CacheConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let inner = EmbeddedStore::open(&dir.path().join("t.redb"), StoreOptions::default()).await.unwrap();
    let store = Arc::new(Counting::new(inner));
    let metrics = CacheMetrics::new(&Registry::new());
    let cache = AuthCache::new(store.clone() as Store, config, metrics.clone());
    Fixture { _dir: dir, store, cache, metrics }
}

impl Fixture {
    async fn issue(&self) -> TokenId {
        let id = minter().issue(self.store.as_ref(), &new_token(TokenKind::Personal, "t", "alice")).await.unwrap().1.id;
        // Let the creation's invalidation pass.
        tokio::time::sleep(Duration::from_millis(50)).await;
        id
    }

    /// The cached status, polled until it equals `want` or `within` passes.
    async fn converges(&self, id: &TokenId, want: TokenStatus, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.cache.token(id).await.unwrap().unwrap().status == want {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Finding 10: a fetch reads the active record, the token is revoked (and the invalidation
/// delivered) before the fetch's answer reaches the cache. The cache may hand that one answer
/// to the caller that was already waiting, but must never keep it: not fresh, and not as a
/// stale fallback when the store then fails (that would let a revoked token pass for up to
/// `max_staleness`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_raced_by_its_invalidation_is_never_served_stale() {
    let config = CacheConfig {
        max_staleness: Duration::from_secs(300),
        lookup_timeout: Duration::from_secs(30),
        ..CacheConfig::default()
    };
    let f = fixture(config).await;
    let id = f.issue().await;
    f.store.hold_gets();
    let cache = f.cache.clone();
    let fetch = tokio::spawn(async move { cache.token(&id).await });
    while f.store.gets_waiting() == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The fetch holds the active record; revoke and let the invalidation be delivered.
    f.store.transition(&id, Action::Revoke, "op").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.metrics.invalidations_token.get() < 2 {
        assert!(Instant::now() < deadline, "the revocation's invalidation was never delivered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    f.store.release_gets();
    let first = fetch.await.unwrap().unwrap().unwrap();
    assert_eq!(first.status, TokenStatus::Active, "the waiting caller gets what the store said");
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The store fails: nothing cached may answer for the revoked token.
    f.store.set_down(true);
    let outage = f.cache.token(&id).await;
    assert!(
        matches!(outage, Err(LookupError::Store(StoreError::Unavailable(_)))),
        "a raced record was served during the outage: {:?}",
        outage.map(|t| t.map(|t| t.status))
    );
    f.store.set_down(false);
    assert_eq!(f.cache.token(&id).await.unwrap().unwrap().status, TokenStatus::Revoked);
}

/// Finding 9: fetches and invalidations interleaved thousands of times on a multi-thread
/// runtime. Each round marks the record for revalidation, then a lookup (whose store read
/// pauses for a random few milliseconds after reading, as a slow network would) races a
/// lifecycle change. The cache must converge on the store's state at once, never keep the
/// pre-change record for its TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_invalidation_is_lost_between_a_fetch_and_its_insertion() {
    const ROUNDS: usize = 2000;
    let f = fixture(CacheConfig { ttl: Duration::from_secs(300), ..CacheConfig::default() }).await;
    let id = f.issue().await;
    f.store.set_get_jitter(Duration::from_millis(8));
    let started = Instant::now();
    let mut status = TokenStatus::Active;
    for round in 0..ROUNDS {
        f.cache.flush();
        let cache = f.cache.clone();
        let reader = tokio::spawn(async move { cache.token(&id).await.map(|_| ()) });
        if round % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let action = if status == TokenStatus::Active { Action::Suspend } else { Action::Activate };
        status = f.store.transition(&id, action, "op").await.unwrap().status;
        reader.await.unwrap().unwrap();
        assert!(
            f.converges(&id, status, Duration::from_secs(2)).await,
            "round {round}: the cache kept a {:?} record after the token became {status:?}",
            f.cache.token(&id).await.unwrap().unwrap().status
        );
    }
    println!("{ROUNDS} fetch/change races in {:?}", started.elapsed());
}

/// Finding 6: unknown ids have a bounded cache of their own, so a flood of them neither grows
/// memory without bound nor evicts the records of real tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_cannot_evict_real_tokens() {
    let config = CacheConfig { max_entries: 100, max_negative_entries: 50, ..CacheConfig::default() };
    let f = fixture(config).await;
    let id = f.issue().await;
    f.cache.token(&id).await.unwrap().unwrap();
    let format = TokenFormat::default();
    for _ in 0..2000 {
        let (unknown, _) = format.generate(TokenKind::Personal);
        assert!(f.cache.token(&unknown).await.unwrap().is_none());
    }
    assert!(f.cache.unknown_token_entries().await <= 50, "{}", f.cache.unknown_token_entries().await);
    let before = f.store.calls();
    f.cache.token(&id).await.unwrap().unwrap();
    assert_eq!(f.store.calls(), before, "the real token is still cached");
}

/// Finding 6: store lookups in flight are bounded; the excess is refused at once (the proxy
/// answers 503 with Retry-After), never queued without bound and never "unknown".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_lookups_in_flight_are_bounded() {
    let f = fixture(CacheConfig { max_concurrent_fetches: 2, ..CacheConfig::default() }).await;
    f.store.hold_gets();
    let format = TokenFormat::default();
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (cache, (id, _)) = (f.cache.clone(), format.generate(TokenKind::Personal));
            tokio::spawn(async move { cache.token(&id).await })
        })
        .collect();
    while f.store.gets_waiting() < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (third, _) = format.generate(TokenKind::Personal);
    assert!(matches!(f.cache.token(&third).await, Err(LookupError::Busy)));
    assert_eq!(f.metrics.fetches_shed.get(), 1);
    f.store.release_gets();
    for h in held {
        assert!(h.await.unwrap().unwrap().is_none());
    }
    assert!(f.cache.token(&third).await.unwrap().is_none(), "served again once lookups finish");
}

/// Finding 7 (store deadline): a store that stops answering costs one lookup deadline, not one
/// per request: after a failed lookup, cached records are served at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_store_costs_one_deadline_then_stale_answers_come_at_once() {
    let config = CacheConfig {
        ttl: Duration::from_millis(200),
        ttl_without_invalidations: Duration::from_millis(200),
        lookup_timeout: Duration::from_millis(300),
        ..CacheConfig::default()
    };
    let f = fixture(config).await;
    let id = f.issue().await;
    f.cache.token(&id).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    f.store.hold_gets();
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(f.cache.token(&id).await.unwrap().unwrap().id, id, "stale record served");
    }
    let took = started.elapsed();
    f.store.release_gets();
    // One deadline (300 ms) for the first; the other 19 at once. Without the backoff: 20 x 300 ms.
    assert!(took < Duration::from_millis(1500), "20 stale answers took {took:?}");
    assert!(f.metrics.stale_served.get() >= 20);
}

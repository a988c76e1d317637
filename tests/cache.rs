//! The authentication cache over a real embedded store (wrapped in a call counter), with a paused
//! clock for TTLs.

mod support;

use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use tokengate::auth::cache::{AuthCache, LookupError};
use tokengate::config::CacheConfig;
use tokengate::metrics::CacheMetrics;
use tokengate::store::embedded::EmbeddedStore;
use tokengate::store::{Store, StoreError, StoreOptions, TokenStore};
use tokengate::token::TokenId;
use tokengate::token::{Action, Principal, TokenKind, TokenStatus};

use support::{Counting, minter, new_token};
use tokengate::store::Issue as _;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Counting>,
    cache: AuthCache,
    metrics: CacheMetrics,
}

const TTL: Duration = Duration::from_secs(30);
const NEGATIVE_TTL: Duration = Duration::from_secs(5);
const MAX_STALENESS: Duration = Duration::from_secs(300);

/// The lifetimes these tests drive with a paused clock.
fn config() -> CacheConfig {
    CacheConfig {
        ttl: TTL,
        negative_ttl: NEGATIVE_TTL,
        max_staleness: MAX_STALENESS,
        max_entries: 1000,
        ..CacheConfig::default()
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let inner = EmbeddedStore::open(&dir.path().join("t.redb"), StoreOptions::default()).await.unwrap();
    let store = Arc::new(Counting::new(inner));
    let metrics = CacheMetrics::new(&Registry::new());
    let cache = AuthCache::new(store.clone() as Store, config(), metrics.clone());
    Fixture { _dir: dir, store, cache, metrics }
}

impl Fixture {
    /// Issues a token and lets the cache see its creation event.
    async fn issue(&self) -> TokenId {
        let id = minter().issue(self.store.as_ref(), &new_token(TokenKind::Personal, "t", "alice")).await.unwrap().1.id;
        self.settle().await;
        id
    }

    /// Lets the invalidation listener run.
    async fn settle(&self) {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_on_one_id_make_one_store_call() {
    let f = fixture().await;
    let id = f.issue().await;
    let before = f.store.calls();
    let lookups: Vec<_> = (0..64)
        .map(|_| {
            let cache = f.cache.clone();
            tokio::spawn(async move { cache.token(&id).await.unwrap().unwrap().id })
        })
        .collect();
    for l in lookups {
        assert_eq!(l.await.unwrap(), id);
    }
    assert_eq!(f.store.calls() - before, 1, "64 concurrent lookups, one store call");
    assert_eq!(f.metrics.misses.get() + f.metrics.hits.get(), 64);
}

#[tokio::test(start_paused = true)]
async fn records_are_reused_for_the_ttl_then_refetched() {
    let f = fixture().await;
    let id = f.issue().await;
    let before = f.store.calls();
    f.cache.token(&id).await.unwrap().unwrap();
    tokio::time::advance(TTL - Duration::from_millis(1)).await;
    f.cache.token(&id).await.unwrap().unwrap();
    assert_eq!(f.store.calls() - before, 1);
    tokio::time::advance(Duration::from_millis(2)).await;
    f.cache.token(&id).await.unwrap().unwrap();
    assert_eq!(f.store.calls() - before, 2, "refetched after the TTL");
    assert_eq!((f.metrics.hits.get(), f.metrics.misses.get()), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn unknown_ids_are_cached_negatively_for_a_short_time() {
    let f = fixture().await;
    let id = TokenId::generate();
    assert!(f.cache.token(&id).await.unwrap().is_none());
    assert!(f.cache.token(&id).await.unwrap().is_none());
    assert_eq!(f.store.calls(), 1);
    assert_eq!(f.metrics.negative_hits.get(), 1);
    tokio::time::advance(NEGATIVE_TTL).await;
    assert!(f.cache.token(&id).await.unwrap().is_none());
    assert_eq!(f.store.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_changes_evict_the_record_at_once() {
    let f = fixture().await;
    let id = f.issue().await;
    assert_eq!(f.cache.token(&id).await.unwrap().unwrap().status, TokenStatus::Active);
    f.store.transition(&id, Action::Revoke, "op").await.unwrap();
    f.settle().await;
    assert_eq!(f.cache.token(&id).await.unwrap().unwrap().status, TokenStatus::Revoked, "no stale active record");
    assert!(f.metrics.invalidations_token.get() >= 2, "create and revoke both invalidate");

    let alice = Principal {
        id: "alice".into(),
        display_name: "A".into(),
        org: None,
        roles: vec!["viewer".into()],
        limits: Default::default(),
        ..Default::default()
    };
    f.store.put_principal(&alice).await.unwrap();
    f.settle().await;
    assert_eq!(f.cache.principal("alice").await.unwrap().unwrap().roles, vec!["viewer"]);
    f.store.put_principal(&Principal { roles: vec![], ..alice }).await.unwrap();
    f.settle().await;
    assert!(f.cache.principal("alice").await.unwrap().unwrap().roles.is_empty(), "role change seen at once");
    f.store.delete_principal("alice", "operator").await.unwrap();
    f.settle().await;
    assert!(f.cache.principal("alice").await.unwrap().is_none(), "deleted principal seen at once");
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_store_serves_cached_records_up_to_the_staleness_limit() {
    let f = fixture().await;
    let id = f.issue().await;
    f.cache.token(&id).await.unwrap().unwrap();
    f.store.set_down(true);

    // Within the TTL: served from cache without asking.
    f.cache.token(&id).await.unwrap().unwrap();
    // Past the TTL: the refresh fails, the stale record is used.
    tokio::time::advance(TTL * 2).await;
    assert!(f.cache.token(&id).await.unwrap().is_some());
    assert_eq!(f.metrics.stale_served.get(), 1);
    // An uncached token is an error, never "unknown".
    assert!(matches!(f.cache.token(&TokenId::generate()).await, Err(LookupError::Store(StoreError::Unavailable(_)))));
    // Past the staleness limit: an error too.
    tokio::time::advance(MAX_STALENESS).await;
    assert!(matches!(f.cache.token(&id).await, Err(LookupError::Store(StoreError::Unavailable(_)))));

    // Recovery needs no restart.
    f.store.set_down(false);
    assert!(f.cache.token(&id).await.unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn a_flush_forces_revalidation_but_keeps_records_for_outages() {
    let f = fixture().await;
    let id = f.issue().await;
    f.cache.token(&id).await.unwrap().unwrap();
    let before = f.store.calls();
    f.cache.flush();
    f.cache.token(&id).await.unwrap().unwrap();
    assert_eq!(f.store.calls() - before, 1, "revalidated after the flush");

    f.cache.flush();
    f.store.set_down(true);
    assert!(f.cache.token(&id).await.unwrap().is_some(), "still usable while the store is down");
    assert_eq!(f.metrics.stale_served.get(), 1);
}

/// With Redis, losing the invalidation subscription flushes the cache (messages may be lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_redis_subscription_flushes_the_cache() {
    let mut server = support::RedisServer::start();
    let store: Store =
        Arc::new(tokengate::store::redis::RedisStore::open(&server.config("c"), StoreOptions::default()).unwrap());
    let metrics = CacheMetrics::new(&Registry::new());
    let cache = AuthCache::new(store.clone(), config(), metrics.clone());
    for _ in 0..400 {
        if store.invalidations_connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (_, token) = minter().issue(store.as_ref(), &new_token(TokenKind::Personal, "t", "alice")).await.unwrap();
    // Let the creation's own invalidation arrive first: one that lands after the fetch removes
    // the entry, which must then never be served stale.
    tokio::time::sleep(Duration::from_millis(100)).await;
    cache.token(&token.id).await.unwrap().unwrap();
    let flushes = metrics.invalidations_all.get();
    server.kill();
    for _ in 0..400 {
        if metrics.invalidations_all.get() > flushes {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(metrics.invalidations_all.get() > flushes, "subscription loss flushed the cache");
    // The cached record still serves while Redis is down (staleness-bounded).
    assert_eq!(cache.token(&token.id).await.unwrap().unwrap().id, token.id);
    assert_eq!(metrics.stale_served.get(), 1);
}

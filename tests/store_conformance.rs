//! Runs the conformance suite (`tests/conformance`) against every backend and Redis topology:
//! the embedded redb store in a temporary directory, and Redis as a plain server, over mutual
//! TLS as a restricted ACL user, under Sentinel and as a Cluster, each made of real
//! `redis-server` / `redis-sentinel` processes started for each test on free loopback ports.
//! A "restart" is a restart of the embedded store or the plain server, and a failover (the
//! master killed, a replica promoted) for Sentinel and Cluster.

mod conformance;
mod support;

use std::sync::Arc;

use tokengate::store::embedded::EmbeddedStore;
use tokengate::store::redis::RedisStore;
use tokengate::store::{Store, StoreOptions};

use conformance::Backend;
use support::RedisServer;
use support::topology::{RedisCluster, SentinelSet, TlsRedis};

struct Embedded {
    dir: tempfile::TempDir,
    options: StoreOptions,
    store: Option<Store>,
}

impl Embedded {
    async fn open(&mut self) {
        let path = self.dir.path().join("tokens.redb");
        self.store = Some(Arc::new(EmbeddedStore::open(&path, self.options).await.unwrap()));
    }
}

impl Backend for Embedded {
    async fn start(options: StoreOptions) -> Self {
        let mut b = Self { dir: tempfile::tempdir().unwrap(), options, store: None };
        b.open().await;
        b
    }

    fn store(&self) -> Store {
        self.store.clone().unwrap()
    }

    async fn restart(&mut self) {
        let store = self.store.take().unwrap();
        assert_eq!(Arc::strong_count(&store), 1, "the test must not hold store handles across a restart");
        drop(store);
        self.open().await;
    }
}

struct Redis {
    server: RedisServer,
    store: Store,
}

impl Backend for Redis {
    async fn start(options: StoreOptions) -> Self {
        let server = RedisServer::start();
        let store: Store = Arc::new(RedisStore::open(&server.config("test"), options).unwrap());
        Self { server, store }
    }

    fn store(&self) -> Store {
        self.store.clone()
    }

    /// Kills and restarts redis-server under the running store, which must reconnect by itself.
    async fn restart(&mut self) {
        self.server.restart();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.store.ping().await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "the store did not reconnect within 10 s");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// Waits until the store answers again (it must recover by itself).
async fn wait_until_answering(store: &Store) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while store.ping().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the store did not recover within 20 s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

struct RedisTlsAcl {
    server: TlsRedis,
    store: Store,
}

impl Backend for RedisTlsAcl {
    async fn start(options: StoreOptions) -> Self {
        let server = TlsRedis::start("test");
        let store: Store = Arc::new(RedisStore::open(&server.config("test"), options).unwrap());
        Self { server, store }
    }

    fn store(&self) -> Store {
        self.store.clone()
    }

    async fn restart(&mut self) {
        self.server.server.restart();
        wait_until_answering(&self.store).await;
    }
}

struct RedisSentinel {
    set: SentinelSet,
    store: Store,
}

impl Backend for RedisSentinel {
    async fn start(options: StoreOptions) -> Self {
        let set = tokio::task::block_in_place(SentinelSet::start);
        let store: Store = Arc::new(RedisStore::open(&set.config("test"), options).unwrap());
        Self { set, store }
    }

    fn store(&self) -> Store {
        self.store.clone()
    }

    /// Kills the master; the sentinels promote the replica, which the store must follow.
    async fn restart(&mut self) {
        tokio::task::block_in_place(|| self.set.fail_over());
        wait_until_answering(&self.store).await;
    }
}

struct RedisClusterBackend {
    cluster: RedisCluster,
    store: Store,
}

impl Backend for RedisClusterBackend {
    async fn start(options: StoreOptions) -> Self {
        let cluster = tokio::task::block_in_place(RedisCluster::start);
        let store: Store = Arc::new(RedisStore::open(&cluster.config("test"), options).unwrap());
        Self { cluster, store }
    }

    fn store(&self) -> Store {
        self.store.clone()
    }

    /// Kills the master owning the deployment's slot; its replica takes over.
    async fn restart(&mut self) {
        tokio::task::block_in_place(|| self.cluster.fail_over("test"));
        wait_until_answering(&self.store).await;
    }
}

macro_rules! conformance_suite {
    ($module:ident, $backend:ident: $($case:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::conformance::$case::<crate::$backend>().await;
                }
            )*
        }
    };
}

macro_rules! every_backend {
    ($($case:ident),* $(,)?) => {
        conformance_suite!(embedded, Embedded: $($case),*);
        conformance_suite!(redis, Redis: $($case),*);
        conformance_suite!(redis_tls_acl, RedisTlsAcl: $($case),*);
        conformance_suite!(redis_sentinel, RedisSentinel: $($case),*);
        conformance_suite!(redis_cluster, RedisClusterBackend: $($case),*);
    };
}

every_backend!(
    create_and_get_round_trip,
    ids_are_unique_and_never_reused,
    every_transition_follows_the_rules,
    only_revoked_tokens_can_be_deleted,
    concurrent_transitions_are_atomic,
    listing_is_newest_first_with_filters_and_pagination,
    filtered_listing_scans_a_bounded_number_of_entries,
    last_used_only_moves_forward,
    principal_deletion_revokes_personal_tokens_only,
    audit_is_newest_first_and_capped,
    changes_publish_invalidations,
    restart_keeps_data_and_the_store_recovers,
    rotation_replaces_the_secret_with_an_optional_grace_period,
    concurrent_rotations_have_exactly_one_winner,
    permits_follow_the_rate_limit_and_the_quota,
    limits_can_be_replaced_without_touching_the_rest,
    principals_are_listed_by_id_with_a_cursor,
    groups_round_trip_and_are_listed_by_id,
);

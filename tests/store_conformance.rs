//! Runs the conformance suite (`tests/conformance`) against both backends: the embedded redb
//! store in a temporary directory, and Redis on a real `redis-server` started for each test on a
//! free loopback port.

mod conformance;
mod support;

use std::sync::Arc;

use tokengate::store::embedded::EmbeddedStore;
use tokengate::store::redis::RedisStore;
use tokengate::store::{Store, StoreOptions};

use conformance::Backend;
use support::RedisServer;

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

macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        conformance_suite!(embedded, Embedded: $($case),*);
        conformance_suite!(redis, Redis: $($case),*);
    };
}

both_backends!(
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
);

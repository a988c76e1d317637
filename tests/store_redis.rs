//! Redis-only behaviour: outages surface as errors (never as "not found"), the store and its
//! invalidation subscription recover by themselves, and every key carries the hash tag.

mod support;

use std::sync::Arc;
use std::time::Duration;

use tokengate::store::redis::RedisStore;
use tokengate::store::{Invalidation, Store, StoreError, StoreOptions};
use tokengate::token::{Action, TokenKind};

use support::{RedisServer, minter, new_token};
use tokengate::store::Issue as _;

async fn wait_until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_an_error_not_a_missing_token_and_recovery_is_automatic() {
    let mut server = RedisServer::start();
    let store: Store = Arc::new(RedisStore::open(&server.config("t"), StoreOptions::default()).unwrap());
    let (_, token) = minter().issue(store.as_ref(), &new_token(TokenKind::Personal, "x", "alice")).await.unwrap();
    wait_until("subscribed", async || store.invalidations_connected()).await;
    let mut rx = store.invalidations();

    server.kill();
    match store.get(&token.id).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("a lookup during an outage must fail loudly, got {other:?}"),
    }
    assert!(matches!(store.transition(&token.id, Action::Revoke, "op").await, Err(StoreError::Unavailable(_))));
    wait_until("subscription reported down", async || !store.invalidations_connected()).await;

    server.restart();
    wait_until("store answers again", async || store.ping().await.is_ok()).await;
    wait_until("resubscribed", async || store.invalidations_connected()).await;
    assert_eq!(store.get(&token.id).await.unwrap().unwrap().status, tokengate::token::TokenStatus::Active);

    // The subscriber was told to drop everything, because messages may have been missed.
    let mut flushes = 0;
    while let Ok(inv) = rx.try_recv() {
        if inv == Invalidation::All {
            flushes += 1;
        }
    }
    assert!(flushes >= 1, "a lost subscription must flush caches");

    // And invalidations flow again.
    store.transition(&token.id, Action::Suspend, "op").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match rx.recv().await.unwrap() {
                Invalidation::All => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("invalidation after resubscription");
    assert_eq!(got, Invalidation::Token(token.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_opened_while_redis_is_down_starts_and_connects_later() {
    let mut server = RedisServer::start();
    server.kill();
    let store: Store = Arc::new(RedisStore::open(&server.config("t"), StoreOptions::default()).unwrap());
    assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
    assert!(!store.invalidations_connected());
    server.restart();
    wait_until("store connects", async || store.ping().await.is_ok()).await;
    wait_until("subscribed", async || store.invalidations_connected()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_carries_the_hash_tag() {
    let server = RedisServer::start();
    let store: Store = Arc::new(RedisStore::open(&server.config("acme"), StoreOptions::default()).unwrap());
    let (_, token) = minter().issue(store.as_ref(), &new_token(TokenKind::Personal, "x", "alice")).await.unwrap();
    store.transition(&token.id, Action::Revoke, "op").await.unwrap();
    store.delete(&token.id, "op").await.unwrap();
    let p = tokengate::token::Principal { id: "alice".into(), display_name: "A".into(), org: None, roles: vec![] };
    store.put_principal(&p).await.unwrap();
    let (secret, other) = minter().issue(store.as_ref(), &new_token(TokenKind::Personal, "y", "alice")).await.unwrap();
    let keys = server.command(&["KEYS", "*"]);
    let names: Vec<&str> = keys.lines().filter(|l| !l.starts_with(['*', '$'])).collect();
    assert!(names.len() >= 5, "{keys}");
    assert!(names.iter().all(|k| k.starts_with("{acme}:")), "{names:?}");
    let bucket = format!("{{acme}}:t:{}", &other.id.as_str()[..2]);
    assert!(names.contains(&bucket.as_str()), "{names:?}");
    // Only the digest is stored, never the secret.
    let record = server.command(&["HGET", &bucket, other.id.as_str()]);
    assert!(record.len() > 64, "{record}");
    let dump = server.command(&["HGETALL", &bucket]);
    assert!(!dump.contains(&secret.expose()[16..56]), "the secret part never reaches the store");
}

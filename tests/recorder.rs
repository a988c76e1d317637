//! The last-used recorder over a real embedded store (wrapped in a call counter).

mod support;

use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use tokengate::clock::Timestamp;
use tokengate::metrics::RecorderMetrics;
use tokengate::proxy::recorder::Recorder;
use tokengate::store::embedded::EmbeddedStore;
use tokengate::store::{Store, StoreOptions, TokenStore};
use tokengate::token::TokenKind;

use support::{Counting, minter, new_token};
use tokengate::store::Issue as _;

const INTERVAL: Duration = Duration::from_secs(10);

async fn setup() -> (tempfile::TempDir, Arc<Counting>, RecorderMetrics) {
    let dir = tempfile::tempdir().unwrap();
    let inner = EmbeddedStore::open(&dir.path().join("t.redb"), StoreOptions::default()).await.unwrap();
    (dir, Arc::new(Counting::new(inner)), RecorderMetrics::new(&Registry::new()))
}

/// Lets the recorder task drain its channel and finish a flush.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_flood_on_one_token_makes_one_write_per_interval() {
    let (_dir, store, metrics) = setup().await;
    let (_, token) = minter().issue(store.as_ref(), &new_token(TokenKind::Personal, "t", "alice")).await.unwrap();
    let (recorder, task) = Recorder::start(store.clone() as Store, INTERVAL, 1000, metrics.clone());
    let ip = "192.0.2.7".parse().ok();
    let before = store.calls();
    for i in 0..900 {
        recorder.record(token.id, Timestamp(1_000 + i), ip);
        if i % 100 == 0 {
            settle().await;
        }
    }
    settle().await;
    assert_eq!(store.calls(), before, "nothing written before the interval");
    tokio::time::advance(INTERVAL).await;
    settle().await;
    assert_eq!(store.calls() - before, 1, "900 uses, one write");
    assert_eq!((metrics.batches.get(), metrics.written.get(), metrics.dropped.get()), (1, 1, 0));
    let stored = store.get(&token.id).await.unwrap().unwrap();
    assert_eq!(stored.last_used_at, Some(Timestamp(1_899)), "the latest use wins");
    assert_eq!(stored.last_used_from.as_deref(), Some("192.0.2.7"));

    // Nothing pending: the next interval writes nothing.
    let before = store.calls();
    tokio::time::advance(INTERVAL).await;
    settle().await;
    assert_eq!(store.calls(), before);
    task.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_flushes_what_is_pending() {
    let (_dir, store, metrics) = setup().await;
    let (_, token) = minter().issue(store.as_ref(), &new_token(TokenKind::Personal, "t", "alice")).await.unwrap();
    let (recorder, task) = Recorder::start(store.clone() as Store, INTERVAL, 1000, metrics.clone());
    recorder.record(token.id, Timestamp(5_000), None);
    task.shutdown().await;
    assert_eq!(store.get(&token.id).await.unwrap().unwrap().last_used_at, Some(Timestamp(5_000)));
    assert_eq!(metrics.batches.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn memory_is_bounded_and_drops_are_counted() {
    let (_dir, store, metrics) = setup().await;
    let (recorder, task) = Recorder::start(store.clone() as Store, INTERVAL, 10, metrics.clone());
    // 10 distinct tokens fit; the channel holds 10 more; the rest are dropped at the door.
    for _ in 0..50 {
        recorder.record(tokengate::token::TokenId::generate(), Timestamp(1), None);
    }
    settle().await;
    for _ in 0..5 {
        recorder.record(tokengate::token::TokenId::generate(), Timestamp(1), None);
    }
    settle().await;
    assert_eq!(metrics.dropped.get(), 50 + 5 - 10, "everything beyond 10 pending tokens is counted");
    task.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_write_is_retried_at_the_next_interval() {
    let (_dir, store, metrics) = setup().await;
    let (_, token) = minter().issue(store.as_ref(), &new_token(TokenKind::Personal, "t", "alice")).await.unwrap();
    let (recorder, task) = Recorder::start(store.clone() as Store, INTERVAL, 1000, metrics.clone());
    recorder.record(token.id, Timestamp(7_000), None);
    store.set_down(true);
    tokio::time::advance(INTERVAL).await;
    settle().await;
    assert_eq!(metrics.flush_errors.get(), 1);
    store.set_down(false);
    tokio::time::advance(INTERVAL).await;
    settle().await;
    assert_eq!(store.get(&token.id).await.unwrap().unwrap().last_used_at, Some(Timestamp(7_000)));
    task.shutdown().await;
}

/// Issue 9, finding 12: on shutdown with the store down, pending times are retried until the
/// drain deadline (not tried once and lost), and what is finally lost is counted.
#[tokio::test(start_paused = true)]
async fn shutdown_retries_until_the_drain_deadline_and_counts_what_is_lost() {
    let (_dir, store, metrics) = setup().await;
    let (_, token) = minter().issue(store.as_ref(), &new_token(TokenKind::Personal, "t", "alice")).await.unwrap();
    let (recorder, task) = Recorder::start(store.clone() as Store, INTERVAL, 1000, metrics.clone());
    recorder.record(token.id, Timestamp(9_000), None);
    settle().await;
    store.set_down(true);
    let stopping = tokio::spawn(task.shutdown_by(tokio::time::Instant::now() + Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(metrics.flush_errors.get() >= 2, "retried while the store is down");
    store.set_down(false);
    stopping.await.unwrap();
    assert_eq!(store.get(&token.id).await.unwrap().unwrap().last_used_at, Some(Timestamp(9_000)));
    assert_eq!(metrics.dropped.get(), 0);

    // The store stays down past the deadline: the use is counted as dropped.
    let (recorder, task) = Recorder::start(store.clone() as Store, INTERVAL, 1000, metrics.clone());
    recorder.record(token.id, Timestamp(10_000), None);
    settle().await;
    store.set_down(true);
    let started = tokio::time::Instant::now();
    task.shutdown_by(started + Duration::from_secs(1)).await;
    assert!(started.elapsed() <= Duration::from_millis(1300), "{:?}", started.elapsed());
    assert_eq!(metrics.dropped.get(), 1);
    store.set_down(false);
    assert_eq!(store.get(&token.id).await.unwrap().unwrap().last_used_at, Some(Timestamp(9_000)));
}

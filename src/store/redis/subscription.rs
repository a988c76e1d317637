//! The invalidation subscription: one pub/sub connection kept alive in the background, pinged
//! to detect a dead peer, resubscribed after any failure, and [`Invalidation::All`] emitted
//! whenever messages may have been missed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::store::Invalidation;

/// How often the subscription connection is pinged, and how long an answer may take: a dead
/// subscription is noticed (and the cache flushed) within twice this.
const SUBSCRIPTION_PING: Duration = Duration::from_secs(1);
/// Largest backoff between resubscription attempts.
const MAX_RESUBSCRIBE_DELAY: Duration = Duration::from_secs(2);
/// Keeps one pub/sub subscription to `channel` alive until `stop` is cancelled.
pub(super) async fn subscribe_forever(
    client: redis::Client,
    channel: String,
    events: broadcast::Sender<Invalidation>,
    connected: Arc<AtomicBool>,
    connect_timeout: Duration,
    stop: CancellationToken,
) {
    let mut delay = Duration::from_millis(50);
    while !stop.is_cancelled() {
        let subscribe = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            _ = stop.cancelled() => return,
            r = tokio::time::timeout(connect_timeout, subscribe) => r,
        };
        match pubsub {
            Ok(Ok(pubsub)) => {
                delay = Duration::from_millis(50);
                connected.store(true, Ordering::Relaxed);
                tracing::info!(%channel, "invalidation subscription established");
                // Anything published while we were not subscribed is lost: start clean.
                let _ = events.send(Invalidation::All);
                let reason = pump(pubsub, &events, &stop).await;
                connected.store(false, Ordering::Relaxed);
                let _ = events.send(Invalidation::All);
                if stop.is_cancelled() {
                    return;
                }
                tracing::warn!(%channel, %reason, "invalidation subscription lost; resubscribing");
            }
            Ok(Err(e)) => tracing::warn!(%channel, error = %e, "cannot subscribe to invalidations"),
            Err(_) => tracing::warn!(%channel, "subscribing to invalidations timed out"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(MAX_RESUBSCRIBE_DELAY);
    }
}

/// Forwards messages until the connection fails, a ping goes unanswered or `stop` fires.
async fn pump(
    pubsub: redis::aio::PubSub,
    events: &broadcast::Sender<Invalidation>,
    stop: &CancellationToken,
) -> String {
    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval(SUBSCRIPTION_PING);
    ping.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return "stopping".into(),
            msg = stream.next() => match msg {
                Some(msg) => {
                    let payload: String = msg.get_payload().unwrap_or_default();
                    match Invalidation::decode(&payload) {
                        Some(inv) => { let _ = events.send(inv); }
                        None => tracing::warn!(payload = %payload.escape_debug(), "ignoring malformed invalidation message"),
                    }
                }
                None => return "connection closed".into(),
            },
            _ = ping.tick() => {
                // While subscribed, a RESP2 server answers PING with `["pong", ""]`, not `PONG`:
                // take any answer as proof of life.
                match tokio::time::timeout(SUBSCRIPTION_PING, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return format!("ping failed: {e}"),
                    Err(_) => return "ping timed out".into(),
                }
            }
        }
    }
}

//! The invalidation subscription: one pub/sub connection kept alive in the background, pinged
//! to detect a dead peer, resubscribed after any failure (and, under Sentinel, when the master
//! changes), and [`Invalidation::All`] emitted whenever messages may have been missed. On
//! Cluster the channel is a sharded one (`SSUBSCRIBE`, see [`sharded`]).

mod sharded;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::connect::FeedSource;
use super::sentinel::MasterLink;
use crate::store::Invalidation;

/// How often the subscription connection is pinged, and how long an answer may take: a dead
/// subscription is noticed (and the cache flushed) within twice this.
const SUBSCRIPTION_PING: Duration = Duration::from_secs(1);
/// Largest backoff between resubscription attempts.
const MAX_RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);
/// Keeps one subscription to `channel` alive until `stop` is cancelled. `probe_key` is a key in
/// the channel's slot (Cluster pings the shard through it).
pub(super) async fn subscribe_forever(
    source: FeedSource,
    channel: String,
    probe_key: String,
    events: broadcast::Sender<Invalidation>,
    connected: Arc<AtomicBool>,
    connect_timeout: Duration,
    stop: CancellationToken,
) {
    let master = match source {
        FeedSource::Cluster(builder) => {
            return sharded::subscribe_forever(*builder, channel, probe_key, events, connected, connect_timeout, stop)
                .await;
        }
        FeedSource::Direct(client) => Master::Fixed(client),
        FeedSource::Sentinel(link) => Master::Sentinel(link),
    };
    let mut delay = Duration::from_millis(50);
    while !stop.is_cancelled() {
        let subscribe = async {
            let (client, generation) = master.client().await?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>((pubsub, generation))
        };
        let pubsub = tokio::select! {
            _ = stop.cancelled() => return,
            r = tokio::time::timeout(connect_timeout, subscribe) => r,
        };
        match pubsub {
            Ok(Ok((pubsub, generation))) => {
                delay = Duration::from_millis(50);
                connected.store(true, Ordering::Relaxed);
                tracing::info!(%channel, "invalidation subscription established");
                // Anything published while we were not subscribed is lost: start clean.
                let _ = events.send(Invalidation::All);
                let reason = pump(pubsub, &events, &stop, || master.moved_since(generation)).await;
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

/// Where the plain pub/sub subscription connects.
enum Master {
    Fixed(Box<redis::Client>),
    Sentinel(MasterLink),
}

impl Master {
    async fn client(&self) -> redis::RedisResult<(redis::Client, u64)> {
        match self {
            Self::Fixed(client) => Ok((redis::Client::clone(client), 0)),
            Self::Sentinel(link) => link.master_client().await,
        }
    }

    fn moved_since(&self, generation: u64) -> bool {
        match self {
            Self::Fixed(_) => false,
            Self::Sentinel(link) => link.moved_since(generation),
        }
    }
}

/// Forwards messages until the connection fails, a ping goes unanswered, `moved` says the
/// master changed, or `stop` fires.
async fn pump(
    pubsub: redis::aio::PubSub,
    events: &broadcast::Sender<Invalidation>,
    stop: &CancellationToken,
    moved: impl Fn() -> bool,
) -> String {
    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval(SUBSCRIPTION_PING);
    ping.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return "stopping".into(),
            msg = stream.next() => match msg {
                Some(msg) => {
                    forward(&msg.get_payload::<String>().unwrap_or_default(), events);
                }
                None => return "connection closed".into(),
            },
            _ = ping.tick() => {
                if moved() {
                    return "the master changed".into();
                }
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

/// Passes one channel message on, or logs it when it is not an invalidation.
fn forward(payload: &str, events: &broadcast::Sender<Invalidation>) {
    match Invalidation::decode(payload) {
        Some(inv) => {
            let _ = events.send(inv);
        }
        None => tracing::warn!(payload = %payload.escape_debug(), "ignoring malformed invalidation message"),
    }
}

//! The Cluster invalidation feed: a sharded subscription (`SSUBSCRIBE`, Redis 7) on a cluster
//! connection of its own, over RESP3 so messages arrive as pushes.
//!
//! The channel `{prefix}:inval` hashes to the same slot as every key of the deployment, so the
//! scripts publish to it with `SPUBLISH` atomically with their writes, and only the shard that
//! owns the slot carries the messages. When that shard fails over or the slot moves, Redis drops
//! the subscription (a disconnection or an `sunsubscribe` push): the feed reports itself down,
//! emits [`Invalidation::All`], and subscribes again; the cluster client routes the new
//! subscription to the slot's new owner. Every [`SUBSCRIPTION_PING`] a read of `probe_key`
//! (same slot) checks that the shard answers, which also makes the client notice a dead master
//! when nothing else is happening.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::{SUBSCRIPTION_PING, forward};
use crate::store::Invalidation;

pub(super) async fn subscribe_forever(
    builder: ClusterClientBuilder,
    channel: String,
    probe_key: String,
    events: broadcast::Sender<Invalidation>,
    connected: Arc<AtomicBool>,
    connect_timeout: Duration,
    stop: CancellationToken,
) {
    let (pushes, mut received) = mpsc::unbounded_channel::<PushInfo>();
    let conn = match builder.push_sender(pushes).build() {
        Ok(client) => client.get_pending_async_connection_with_config(
            redis::cluster::ClusterConfig::new()
                .set_connection_timeout(connect_timeout)
                .set_response_timeout(SUBSCRIPTION_PING),
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot build the cluster client for invalidations");
            return;
        }
    };
    let mut feed = Feed { conn, channel, probe_key, events, connected, subscribed: false };
    let mut tick = tokio::time::interval(SUBSCRIPTION_PING);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                feed.lost("stopping");
                return;
            }
            push = received.recv() => match push {
                Some(push) => feed.on_push(push),
                None => return,
            },
            // One attempt a tick while down: at most one subscription attempt a second.
            _ = tick.tick() => {
                if feed.subscribed {
                    feed.probe().await;
                } else {
                    feed.try_subscribe().await;
                }
            }
        }
    }
}

struct Feed {
    conn: ClusterConnection,
    channel: String,
    probe_key: String,
    events: broadcast::Sender<Invalidation>,
    connected: Arc<AtomicBool>,
    subscribed: bool,
}

impl Feed {
    /// Subscribes; on success the feed is up and everything cached is dropped, since messages
    /// may have been missed while it was down.
    async fn try_subscribe(&mut self) {
        match tokio::time::timeout(SUBSCRIPTION_PING, self.conn.ssubscribe(&self.channel)).await {
            Ok(Ok(())) => {
                self.subscribed = true;
                self.connected.store(true, Ordering::Relaxed);
                let _ = self.events.send(Invalidation::All);
                tracing::info!(channel = %self.channel, "sharded invalidation subscription established");
            }
            Ok(Err(e)) => tracing::warn!(channel = %self.channel, error = %e, "cannot subscribe to invalidations"),
            Err(_) => tracing::warn!(channel = %self.channel, "subscribing to invalidations timed out"),
        }
    }

    /// Reads a key of the channel's slot: an error means the shard is unreachable.
    async fn probe(&mut self) {
        let mut exists = redis::cmd("EXISTS");
        exists.arg(&self.probe_key);
        match tokio::time::timeout(SUBSCRIPTION_PING, exists.query_async::<Value>(&mut self.conn)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => self.lost(&format!("probe failed: {e}")),
            Err(_) => self.lost("probe timed out"),
        }
    }

    fn on_push(&mut self, push: PushInfo) {
        match push.kind {
            PushKind::SMessage => match push.data.get(1) {
                Some(Value::BulkString(payload)) => forward(&String::from_utf8_lossy(payload), &self.events),
                _ => tracing::warn!("ignoring a sharded message without a payload"),
            },
            PushKind::Disconnection => self.lost("a cluster connection closed"),
            PushKind::SUnsubscribe => self.lost("the server ended the subscription (slot moved or failover)"),
            _ => {}
        }
    }

    /// Marks the feed down (resubscribed on the next tick) and drops everything cached.
    fn lost(&mut self, reason: &str) {
        if self.subscribed {
            tracing::warn!(channel = %self.channel, reason, "invalidation subscription lost; resubscribing");
        }
        self.subscribed = false;
        self.connected.store(false, Ordering::Relaxed);
        let _ = self.events.send(Invalidation::All);
    }
}

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

use std::future::Future;
use std::pin::Pin;
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
    // The subscription attempt or probe in flight: it runs beside the loop, so messages are
    // passed on while the shard is slow to answer.
    let mut check: Option<Pin<Box<dyn Future<Output = Check> + Send>>> = None;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => {
                feed.lost("stopping");
                return;
            }
            push = received.recv() => match push {
                Some(push) => feed.on_push(push),
                None => return,
            },
            done = async { check.as_mut().expect("guarded").await }, if check.is_some() => {
                check = None;
                feed.checked(done);
            }
            // One check a tick: at most one subscription attempt or probe a second.
            _ = tick.tick(), if check.is_none() => check = Some(feed.check()),
        }
    }
}

/// What a subscription attempt or a probe found.
enum Check {
    Subscribed,
    SubscribeFailed(String),
    Answered,
    ProbeFailed(String),
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
    /// Subscribes while down; reads a key of the channel's slot while up (an error means the
    /// shard is unreachable).
    fn check(&self) -> Pin<Box<dyn Future<Output = Check> + Send>> {
        let mut conn = self.conn.clone();
        let (channel, probe_key, subscribed) = (self.channel.clone(), self.probe_key.clone(), self.subscribed);
        Box::pin(async move {
            if subscribed {
                let mut exists = redis::cmd("EXISTS");
                exists.arg(&probe_key);
                match tokio::time::timeout(SUBSCRIPTION_PING, exists.query_async::<Value>(&mut conn)).await {
                    Ok(Ok(_)) => Check::Answered,
                    Ok(Err(e)) => Check::ProbeFailed(format!("probe failed: {e}")),
                    Err(_) => Check::ProbeFailed("probe timed out".into()),
                }
            } else {
                match tokio::time::timeout(SUBSCRIPTION_PING, conn.ssubscribe(&channel)).await {
                    Ok(Ok(())) => Check::Subscribed,
                    Ok(Err(e)) => Check::SubscribeFailed(e.to_string()),
                    Err(_) => Check::SubscribeFailed("timed out".into()),
                }
            }
        })
    }

    /// On subscription the feed is up and everything cached is dropped, since messages may
    /// have been missed while it was down.
    fn checked(&mut self, check: Check) {
        match check {
            Check::Subscribed => {
                self.subscribed = true;
                self.connected.store(true, Ordering::Relaxed);
                let _ = self.events.send(Invalidation::All);
                tracing::info!(channel = %self.channel, "sharded invalidation subscription established");
            }
            Check::SubscribeFailed(e) => {
                tracing::warn!(channel = %self.channel, error = %e, "cannot subscribe to invalidations");
            }
            Check::Answered => {}
            Check::ProbeFailed(reason) => self.lost(&reason),
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

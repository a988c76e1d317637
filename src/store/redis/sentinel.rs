//! [`MasterLink`]: a command connection to whichever server the sentinels currently name as
//! master, so a failover needs no restart.
//!
//! The master is looked up (and its role checked) on first use. A command that fails in a way
//! that says "this is no longer the master" (connection lost, refused or timed out, `READONLY`,
//! `MASTERDOWN`, `LOADING`) drops the connection, and the next command looks the master up
//! again; the failed command itself is not retried (a script may have run), so its caller sees
//! the error (503 on the request path). [`MasterLink::watch`] also asks the sentinels every
//! [`WATCH_INTERVAL`] and switches when they name another master, which covers an old master
//! that is cut off from the sentinels but still reachable from here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::SentinelClient;
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};
use tokio_util::sync::CancellationToken;

/// How often the sentinels are asked whether the master moved.
pub(super) const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// A cheap-to-clone handle; every clone shares one connection to the current master.
#[derive(Clone)]
pub(super) struct MasterLink {
    inner: Arc<Shared>,
}

struct Shared {
    /// Held while looking the master up, so concurrent failures cause one lookup.
    sentinel: tokio::sync::Mutex<SentinelClient>,
    current: Mutex<Option<Master>>,
    /// Bumped each time a new master connection is installed.
    generation: AtomicU64,
    config: AsyncConnectionConfig,
    lookup_timeout: Duration,
}

#[derive(Clone)]
struct Master {
    generation: u64,
    client: redis::Client,
    conn: MultiplexedConnection,
}

impl MasterLink {
    pub(super) fn new(sentinel: SentinelClient, connect_timeout: Duration, command_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Shared {
                sentinel: tokio::sync::Mutex::new(sentinel),
                current: Mutex::new(None),
                generation: AtomicU64::new(0),
                config: AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(command_timeout)),
                // Ask the sentinels, then connect to the master and check its role.
                lookup_timeout: connect_timeout * 3,
            }),
        }
    }

    fn installed(&self) -> Option<Master> {
        self.inner.current.lock().expect("master lock").clone()
    }

    /// The current master connection, looking the master up when there is none.
    async fn master(&self) -> RedisResult<Master> {
        if let Some(m) = self.installed() {
            return Ok(m);
        }
        let mut sentinel = self.inner.sentinel.lock().await;
        if let Some(m) = self.installed() {
            return Ok(m);
        }
        let lookup = async {
            let client = sentinel.async_get_client().await?;
            let conn = client.get_multiplexed_async_connection_with_config(&self.inner.config).await?;
            Ok::<_, RedisError>((client, conn))
        };
        let (client, conn) = tokio::time::timeout(self.inner.lookup_timeout, lookup)
            .await
            .map_err(|_| RedisError::from((ErrorKind::Io, "timed out asking the sentinels for the master")))??;
        let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(master = %describe(&client), generation, "connected to the Redis master named by Sentinel");
        let master = Master { generation, client, conn };
        *self.inner.current.lock().expect("master lock") = Some(master.clone());
        Ok(master)
    }

    /// Drops the connection of `generation` (if it is still the current one).
    fn discard(&self, generation: u64, why: &str) {
        let mut current = self.inner.current.lock().expect("master lock");
        if current.as_ref().is_some_and(|m| m.generation == generation) {
            tracing::warn!(generation, reason = why, "dropping the Redis master connection; asking Sentinel again");
            *current = None;
        }
    }

    /// A client for the current master (the subscription connects with it) and the generation
    /// it belongs to.
    pub(super) async fn master_client(&self) -> RedisResult<(redis::Client, u64)> {
        self.master().await.map(|m| (m.client, m.generation))
    }

    /// Whether the master of `generation` has been replaced or dropped since.
    pub(super) fn moved_since(&self, generation: u64) -> bool {
        self.installed().is_none_or(|m| m.generation != generation)
    }

    /// Asks the sentinels every [`WATCH_INTERVAL`] and drops the connection when they name
    /// another master. Runs until `stop` fires.
    pub(super) async fn watch(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Some(current) = self.installed() else { continue };
            let named = {
                let mut sentinel = self.inner.sentinel.lock().await;
                tokio::time::timeout(self.inner.lookup_timeout, sentinel.async_get_client()).await
            };
            match named {
                Ok(Ok(client)) if describe(&client) != describe(&current.client) => {
                    self.discard(current.generation, "the sentinels name another master");
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "asking the sentinels for the master failed"),
                Err(_) => tracing::debug!("asking the sentinels for the master timed out"),
            }
        }
    }

    /// Drops the connection of `generation` when `result` says it is no longer usable as the
    /// master's.
    fn check<T>(&self, generation: u64, result: &RedisResult<T>) {
        if let Err(e) = result
            && let Some(why) = not_the_master(e)
        {
            self.discard(generation, why);
        }
    }
}

/// Why an error means the connection must go to a (new) master, if it does.
fn not_the_master(e: &RedisError) -> Option<&'static str> {
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        return Some("connection lost");
    }
    match e.kind() {
        ErrorKind::Server(ServerErrorKind::ReadOnly) => Some("the server is a replica now (READONLY)"),
        ErrorKind::Server(ServerErrorKind::MasterDown) => Some("MASTERDOWN"),
        ErrorKind::Server(ServerErrorKind::BusyLoading) => Some("the server is loading its data"),
        _ => None,
    }
}

fn describe(client: &redis::Client) -> String {
    match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port) | redis::ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        other => format!("{other:?}"),
    }
}

impl ConnectionLike for MasterLink {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut master = self.master().await?;
            let result = master.conn.req_packed_command(cmd).await;
            self.check(master.generation, &result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut master = self.master().await?;
            let result = master.conn.req_packed_commands(pipeline, offset, count).await;
            self.check(master.generation, &result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.installed().map_or(0, |m| m.conn.get_db())
    }
}

//! Last-used recording, off the request path.
//!
//! A request hands `(token id, time, client address)` to a bounded channel (`try_send`: no lock,
//! no wait). A background task keeps the latest use per token and writes all of them in one
//! forward-only batch per `last_used.flush_interval`, so a flood of requests on one token makes
//! one store write per interval. Memory is bounded by `last_used.max_pending` distinct tokens;
//! uses beyond that are dropped and counted. Stopping flushes what is pending, retrying (every
//! [`SHUTDOWN_RETRY`]) until the drain deadline while the store is unreachable; what still
//! could not be written then is logged with its count and counted as dropped.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clock::Timestamp;
use crate::metrics::RecorderMetrics;
use crate::store::{LastUse, Store};
use crate::token::TokenId;

/// The request-path side: cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<LastUse>,
    metrics: RecorderMetrics,
}

/// Pause between flush attempts while stopping with the store unreachable.
pub const SHUTDOWN_RETRY: Duration = Duration::from_millis(200);

/// The background task; [`RecorderTask::shutdown`] flushes and waits for it.
pub struct RecorderTask {
    stop: tokio::sync::oneshot::Sender<Instant>,
    handle: JoinHandle<()>,
}

impl Recorder {
    /// Starts the flushing task.
    pub fn start(
        store: Store,
        interval: Duration,
        max_pending: usize,
        metrics: RecorderMetrics,
    ) -> (Self, RecorderTask) {
        let (tx, rx) = mpsc::channel(max_pending);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let worker = Worker { store, rx, pending: HashMap::new(), max_pending, metrics: metrics.clone() };
        // The schedule starts now, not when the task is first polled.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let handle = tokio::spawn(worker.run(tick, stopped));
        (Self { tx, metrics }, RecorderTask { stop, handle })
    }

    /// Notes a use of `id`. Never waits; a full buffer drops the use and counts it.
    pub fn record(&self, id: TokenId, at: Timestamp, from: Option<IpAddr>) {
        if self.tx.try_send(LastUse { id, at, from }).is_err() {
            self.metrics.dropped.inc();
        }
    }
}

impl RecorderTask {
    /// Writes what is pending (one attempt) and stops.
    pub async fn shutdown(self) {
        self.shutdown_by(Instant::now()).await;
    }

    /// Writes what is pending, retrying until `deadline` while the store fails, and stops.
    pub async fn shutdown_by(self, deadline: Instant) {
        let _ = self.stop.send(deadline);
        if let Err(e) = self.handle.await {
            tracing::error!(error = %e, "last-used recorder task failed");
        }
    }
}

struct Worker {
    store: Store,
    rx: mpsc::Receiver<LastUse>,
    pending: HashMap<TokenId, LastUse>,
    max_pending: usize,
    metrics: RecorderMetrics,
}

impl Worker {
    async fn run(mut self, mut tick: tokio::time::Interval, mut stopped: tokio::sync::oneshot::Receiver<Instant>) {
        let deadline = loop {
            tokio::select! {
                use_ = self.rx.recv() => match use_ {
                    Some(u) => self.merge(u),
                    None => break Instant::now(),
                },
                _ = tick.tick() => self.flush().await,
                deadline = &mut stopped => break deadline.unwrap_or_else(|_| Instant::now()),
            }
        };
        self.rx.close();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                self.flush().await;
            } else if tokio::time::timeout(remaining, self.flush()).await.is_err() {
                self.metrics.flush_errors.inc();
            }
            if self.pending.is_empty() {
                return;
            }
            if Instant::now() + SHUTDOWN_RETRY > deadline {
                break;
            }
            tokio::time::sleep(SHUTDOWN_RETRY).await;
        }
        let lost = self.pending.len();
        self.metrics.dropped.inc_by(lost as u64);
        tracing::warn!(
            tokens = lost,
            "last-used times not written: the store stayed unreachable until the drain deadline"
        );
    }

    fn merge(&mut self, u: LastUse) {
        let len = self.pending.len();
        match self.pending.entry(u.id) {
            Entry::Occupied(mut e) => {
                if u.at > e.get().at {
                    e.insert(u);
                }
            }
            Entry::Vacant(e) if len < self.max_pending => {
                e.insert(u);
            }
            Entry::Vacant(_) => self.metrics.dropped.inc(),
        }
    }

    async fn flush(&mut self) {
        // Include what is already queued (bounded, so a flood cannot hold the flush back).
        for _ in 0..self.max_pending {
            match self.rx.try_recv() {
                Ok(u) => self.merge(u),
                Err(_) => break,
            }
        }
        if self.pending.is_empty() {
            return;
        }
        // Pending uses are cleared only once written: a failed or abandoned write loses nothing.
        let batch: Vec<LastUse> = self.pending.values().copied().collect();
        match self.store.record_last_used(&batch).await {
            Ok(moved) => {
                self.pending.clear();
                self.metrics.batches.inc();
                self.metrics.written.inc_by(moved as u64);
            }
            Err(e) => {
                self.metrics.flush_errors.inc();
                tracing::warn!(error = %e, tokens = batch.len(), "cannot write last-used times; will retry");
            }
        }
    }
}

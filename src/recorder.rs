//! Last-used recording, off the request path.
//!
//! A request hands `(token id, time, client address)` to a bounded channel (`try_send`: no lock,
//! no wait). A background task keeps the latest use per token and writes all of them in one
//! forward-only batch per `last_used.flush_interval`, so a flood of requests on one token makes
//! one store write per interval. Memory is bounded by `last_used.max_pending` distinct tokens;
//! uses beyond that are dropped and counted. Stopping flushes what is pending.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

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

/// The background task; [`RecorderTask::shutdown`] flushes and waits for it.
pub struct RecorderTask {
    stop: tokio::sync::oneshot::Sender<()>,
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
    /// Writes what is pending and stops.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
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
    async fn run(mut self, mut tick: tokio::time::Interval, mut stopped: tokio::sync::oneshot::Receiver<()>) {
        loop {
            tokio::select! {
                use_ = self.rx.recv() => match use_ {
                    Some(u) => self.merge(u),
                    None => break,
                },
                _ = tick.tick() => self.flush().await,
                _ = &mut stopped => break,
            }
        }
        self.rx.close();
        self.flush().await;
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
        let batch: Vec<LastUse> = self.pending.drain().map(|(_, u)| u).collect();
        match self.store.record_last_used(&batch).await {
            Ok(moved) => {
                self.metrics.batches.inc();
                self.metrics.written.inc_by(moved as u64);
            }
            Err(e) => {
                self.metrics.flush_errors.inc();
                tracing::warn!(error = %e, tokens = batch.len(), "cannot write last-used times; will retry");
                for u in batch {
                    self.merge(u);
                }
            }
        }
    }
}

//! One connection's state and deadlines, and the table of open connections (see
//! [`super::server`] for the rules they implement).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::Version;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4).max(1)
}

/// "Not set" for the timestamps in [`Conn`].
pub(super) const NONE: u64 = u64::MAX;

#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Timestamps are milliseconds since this instant.
    pub(super) epoch: Instant,
    pub(super) header_ms: u64,
    pub(super) idle_ms: u64,
}

/// One connection's state. Written by its own request path and IO only.
pub(super) struct Conn {
    pub(super) id: u64,
    pub(super) limits: Limits,
    accepted: u64,
    /// Requests whose service was called and whose response body is not finished or dropped.
    pub(super) in_flight: AtomicU32,
    /// When `in_flight` last dropped to zero (or the accept time).
    pub(super) idle_since: AtomicU64,
    /// When the first byte of an HTTP/1 request head arrived on an idle keep-alive connection.
    head_since: AtomicU64,
    /// When writes started to block (the client does not read).
    write_blocked_since: AtomicU64,
    /// Whether a request head was ever completed.
    requested: AtomicBool,
    h2: AtomicBool,
    /// Set (and notified) when the connection limit needs this idle connection's slot.
    pub(super) shedding: AtomicBool,
    pub(super) shed: Notify,
}

impl Conn {
    pub(super) fn new(id: u64, limits: Limits) -> Self {
        let now = millis_since(limits.epoch);
        Self {
            id,
            limits,
            accepted: now,
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(now),
            head_since: AtomicU64::new(NONE),
            write_blocked_since: AtomicU64::new(NONE),
            requested: AtomicBool::new(false),
            h2: AtomicBool::new(false),
            shedding: AtomicBool::new(false),
            shed: Notify::new(),
        }
    }

    pub(super) fn now(&self) -> u64 {
        millis_since(self.limits.epoch)
    }

    pub(super) fn on_read(&self) {
        if self.head_since.load(Ordering::Relaxed) == NONE
            && self.in_flight.load(Ordering::Relaxed) == 0
            && self.requested.load(Ordering::Relaxed)
            && !self.h2.load(Ordering::Relaxed)
        {
            self.head_since.store(self.now(), Ordering::Relaxed);
        }
    }

    pub(super) fn on_write(&self, blocked: bool) {
        let since = self.write_blocked_since.load(Ordering::Relaxed);
        if blocked && since == NONE {
            self.write_blocked_since.store(self.now(), Ordering::Relaxed);
        } else if !blocked && since != NONE {
            self.write_blocked_since.store(NONE, Ordering::Relaxed);
        }
    }
}

pub(super) fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(NONE - 1)
}

/// Counts one request in flight, from the service call until the response body ends or drops.
pub(super) struct InFlight(Arc<Conn>);

impl InFlight {
    pub(super) fn start(conn: Arc<Conn>, version: Version) -> Self {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        conn.head_since.store(NONE, Ordering::Relaxed);
        if !conn.requested.load(Ordering::Relaxed) {
            conn.requested.store(true, Ordering::Relaxed);
            conn.h2.store(version == Version::HTTP_2, Ordering::Relaxed);
        }
        Self(conn)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle_since.store(self.0.now(), Ordering::Relaxed);
        }
    }
}

/// A response body that ends its request's [`InFlight`] when finished or dropped.
pub struct Tracked<B> {
    pub(super) inner: B,
    pub(super) in_flight: Option<InFlight>,
}

impl<B: http_body::Body + Unpin> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.in_flight = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's IO, noting the first byte of a request head on an idle keep-alive
/// connection and writes blocked on a client that does not read.
pub(super) struct Watched<T> {
    pub(super) io: T,
    pub(super) conn: Arc<Conn>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.on_read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.conn.on_write(polled.is_pending());
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.conn.on_write(polled.is_pending());
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Why the watchdog fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// No request in flight for `idle_timeout`: close gracefully.
    Idle,
    /// Close at once, for this reason.
    Close(&'static str),
}

impl Verdict {
    pub(super) fn reason(self) -> &'static str {
        match self {
            Self::Idle => "idle timeout",
            Self::Close(reason) => reason,
        }
    }
}

/// Turns a connection's state into its next deadline. Re-arms its timer only when a deadline
/// moves earlier or the armed one passes, so a busy connection costs a few atomic loads per
/// poll and no timer operations.
pub(super) struct Watchdog {
    pub(super) conn: Arc<Conn>,
    sleep: Pin<Box<Sleep>>,
    armed: u64,
    closing_since: Option<u64>,
}

impl Watchdog {
    pub(super) fn new(conn: Arc<Conn>) -> Self {
        let armed = conn.accepted + conn.limits.header_ms;
        let sleep = Box::pin(tokio::time::sleep_until(conn.limits.epoch + Duration::from_millis(armed)));
        Self { conn, sleep, armed, closing_since: None }
    }

    /// The connection was told to close gracefully; it gets `header_read_timeout` to do so.
    pub(super) fn closing(&mut self) {
        self.closing_since = Some(self.conn.now());
    }

    /// The current deadline (none while a request is in flight and writes progress) and what
    /// happens at it.
    pub(super) fn target(&self) -> (Option<u64>, Verdict) {
        let c = &self.conn;
        let Limits { header_ms, idle_ms, .. } = c.limits;
        if let Some(since) = self.closing_since {
            return (Some(since + header_ms), Verdict::Close("did not close in time after the idle timeout"));
        }
        let blocked = c.write_blocked_since.load(Ordering::Relaxed);
        if blocked != NONE {
            return (Some(blocked + idle_ms), Verdict::Close("the client stopped reading"));
        }
        if c.in_flight.load(Ordering::Acquire) > 0 {
            return (None, Verdict::Idle);
        }
        if !c.requested.load(Ordering::Relaxed) {
            return (
                Some(c.accepted + header_ms),
                Verdict::Close("no complete request head within the header timeout"),
            );
        }
        let head = c.head_since.load(Ordering::Relaxed);
        if head != NONE {
            return (Some(head + header_ms), Verdict::Close("request head not completed within the header timeout"));
        }
        (Some(c.idle_since.load(Ordering::Relaxed) + idle_ms), Verdict::Idle)
    }

    pub(super) fn arm(&mut self, at: u64) {
        self.armed = at;
        self.sleep.as_mut().reset(self.conn.limits.epoch + Duration::from_millis(at));
    }
}

impl Future for Watchdog {
    type Output = Verdict;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Verdict> {
        let this = &mut *self;
        if let (Some(at), _) = this.target()
            && at < this.armed
        {
            this.arm(at);
        }
        loop {
            ready!(this.sleep.as_mut().poll(cx));
            let now = this.conn.now();
            match this.target() {
                (Some(at), verdict) if at <= now => return Poll::Ready(verdict),
                (Some(at), _) => this.arm(at),
                // Busy: look again after an idle timeout (any later deadline is further away).
                (None, _) => this.arm(now + this.conn.limits.idle_ms),
            }
        }
    }
}

/// The open connections, for the connection limit. Locked at accept and close only.
#[derive(Default)]
pub(super) struct Table {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Table {
    pub(super) fn insert(self: &Arc<Self>, conn: Arc<Conn>) -> Entry {
        let id = conn.id;
        self.conns.lock().expect("the connection table lock is never poisoned").insert(id, conn);
        Entry { table: self.clone(), id }
    }

    /// Whether a new connection may be served: under the limit, or once the connection idle for
    /// longest has been told to close.
    pub(super) fn make_room(&self, max: usize) -> bool {
        let conns = self.conns.lock().expect("the connection table lock is never poisoned");
        if conns.len() < max {
            return true;
        }
        let mut leaving = 0;
        let mut oldest: Option<((u64, u64), &Arc<Conn>)> = None;
        for conn in conns.values() {
            if conn.shedding.load(Ordering::Relaxed) {
                leaving += 1;
            } else if conn.in_flight.load(Ordering::Acquire) == 0 {
                // Idle for longest; among equals, the one accepted first.
                let key = (conn.idle_since.load(Ordering::Relaxed), conn.id);
                if oldest.is_none_or(|(k, _)| key < k) {
                    oldest = Some((key, conn));
                }
            }
        }
        if conns.len() - leaving < max {
            return true;
        }
        match oldest {
            Some((_, conn)) => {
                conn.shedding.store(true, Ordering::Relaxed);
                conn.shed.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Removes its connection from the table when the connection's task ends.
pub(super) struct Entry {
    table: Arc<Table>,
    pub(super) id: u64,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.table.conns.lock().expect("the connection table lock is never poisoned").remove(&self.id);
    }
}

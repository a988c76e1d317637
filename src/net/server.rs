//! Serving one listener: HTTP/1.1 and HTTP/2 (ALPN over TLS, or h2c with prior knowledge),
//! optional TLS, connection deadlines, a connection limit that sheds idle connections, and a
//! graceful drain when the shutdown future resolves.
//!
//! Every connection has its own [`Conn`] state (atomics, never shared with other connections):
//! requests in flight (counted from the service call until the response body is finished or
//! dropped), when it last became idle, when the first byte of a pending request head arrived,
//! and whether the client has stopped reading. A watchdog, polled in the connection's own task
//! after the connection itself, turns that state into deadlines:
//!
//! | state                                                      | deadline                 | then                |
//! |------------------------------------------------------------|--------------------------|---------------------|
//! | accepted, no complete request head yet (TLS handshake, HTTP/2 preface, partial HTTP/1 head) | `header_read_timeout` after accept | closed |
//! | HTTP/1 keep-alive: first byte of the next head arrived     | `header_read_timeout` after that byte | closed |
//! | no request in flight                                       | `idle_timeout`           | graceful close (HTTP/2 `GOAWAY`) |
//! | writes blocked because the client does not read            | `idle_timeout`           | closed              |
//!
//! hyper's own HTTP/1 header timeout is off: it starts when a connection becomes idle, so it
//! cannot tell an idle keep-alive connection from a slow request head.
//!
//! The connection limit: when `max_connections` are open, the connection idle for longest (no
//! request in flight, including ones that never sent anything) is closed to make room; when
//! every connection has a request in flight, the new connection is closed at once rather than
//! left waiting in the backlog. The connection table behind this is touched at accept and close
//! only, never per request.
//!
//! Shutdown: stop accepting, let in-flight requests finish (connections are told to close after
//! their current request), wait for upgraded tunnels in the given [`TaskTracker`], and after
//! `drain_timeout` drop whatever is left.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus::IntGauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Connection-level limits and timeouts.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    /// Most header fields in an HTTP/1 request head (hyper answers 431 beyond it).
    pub max_headers: usize,
    /// Time from accept (or, on a keep-alive connection, from the first byte of the next
    /// request) to a complete request head.
    pub header_read_timeout: Duration,
    /// How long a connection with no request in flight is kept; also how long writes may stay
    /// blocked on a client that does not read.
    pub idle_timeout: Duration,
    pub http2_keepalive_interval: Duration,
    pub drain_timeout: Duration,
}

/// What a handler knows about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
}

/// Serves `listener` until `shutdown` resolves, then drains.
pub async fn serve<H, Fut, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    settings: ServerSettings,
    handler: H,
    open_connections: Option<IntGauge>,
    tunnels: TaskTracker,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>, ConnInfo) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The watchdog enforces the head deadline; hyper's would also cut idle keep-alive.
        .header_read_timeout(None)
        .max_buf_size(settings.max_header_bytes)
        .max_headers(settings.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(settings.http2_keepalive_interval)
        .keep_alive_timeout(settings.http2_keepalive_interval);
    let limits = Limits {
        epoch: Instant::now(),
        header_ms: millis(settings.header_read_timeout),
        idle_ms: millis(settings.idle_timeout),
    };
    let table = Arc::new(Table::default());
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    let mut next_id: u64 = 0;
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if !table.make_room(settings.max_connections) {
            tracing::debug!(%peer, "connection limit reached and no idle connection to close; refusing");
            drop(stream);
            continue;
        }
        next_id += 1;
        let conn = Arc::new(Conn::new(next_id, limits));
        let entry = table.insert(conn.clone());
        let handler = handler.clone();
        let builder = builder.clone();
        let tls = tls.clone();
        let gauge = open_connections.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let _entry = entry;
            let _open = gauge.map(OpenConnection::new);
            let _ = stream.set_nodelay(true);
            let io = Watched { io: stream, conn: conn.clone() };
            let mut watchdog = Watchdog::new(conn.clone());
            match tls {
                None => {
                    let service = service(handler, ConnInfo { peer, tls: false }, conn.clone());
                    drive(io, &builder, service, &conn, &mut watchdog, &stop, peer).await;
                }
                Some(acceptor) => {
                    let shed = conn.shed.notified();
                    let io = tokio::select! {
                        biased;
                        accepted = acceptor.accept(io) => match accepted {
                            Ok(io) => io,
                            Err(e) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        },
                        _ = shed => return tracing::debug!(%peer, "idle connection closed to make room"),
                        _ = stop.cancelled() => return,
                        verdict = &mut watchdog => return tracing::debug!(%peer, reason = verdict.reason(), "connection closed"),
                    };
                    let service = service(handler, ConnInfo { peer, tls: true }, conn.clone());
                    drive(io, &builder, service, &conn, &mut watchdog, &stop, peer).await;
                }
            }
        });
    }
    drop(listener);

    stop.cancel();
    connections.close();
    let drained = async {
        connections.wait().await;
        tunnels.close();
        tunnels.wait().await;
    };
    if tokio::time::timeout(settings.drain_timeout, drained).await.is_err() {
        tracing::warn!(timeout = ?settings.drain_timeout, "drain deadline reached; closing remaining connections");
    }
}

/// Serves one connection until it ends, its watchdog or the limit closes it, or the drain does.
async fn drive<I, S, B>(
    io: I,
    builder: &auto::Builder<TokioExecutor>,
    service: S,
    conn: &Conn,
    watchdog: &mut Watchdog,
    stop: &CancellationToken,
    peer: SocketAddr,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let shed = conn.shed.notified();
    tokio::pin!(shed);
    let mut closing = false;
    loop {
        // Biased: the connection first, so the watchdog always sees what its reads just noted.
        tokio::select! {
            biased;
            ended = connection.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = &mut shed, if !closing => {
                if conn.in_flight.load(Ordering::Acquire) == 0 {
                    return tracing::debug!(%peer, "idle connection closed to make room");
                }
                // A request started since it was chosen: finish it, then close.
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = stop.cancelled(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            verdict = &mut *watchdog => match verdict {
                Verdict::Idle if !closing => {
                    tracing::debug!(%peer, "idle timeout; closing the connection");
                    closing = true;
                    watchdog.closing();
                    connection.as_mut().graceful_shutdown();
                }
                verdict => return tracing::debug!(%peer, reason = verdict.reason(), "connection closed"),
            },
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4).max(1)
}

/// "Not set" for the timestamps in [`Conn`].
const NONE: u64 = u64::MAX;

#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Timestamps are milliseconds since this instant.
    epoch: Instant,
    header_ms: u64,
    idle_ms: u64,
}

/// One connection's state. Written by its own request path and IO only.
struct Conn {
    id: u64,
    limits: Limits,
    accepted: u64,
    /// Requests whose service was called and whose response body is not finished or dropped.
    in_flight: AtomicU32,
    /// When `in_flight` last dropped to zero (or the accept time).
    idle_since: AtomicU64,
    /// When the first byte of an HTTP/1 request head arrived on an idle keep-alive connection.
    head_since: AtomicU64,
    /// When writes started to block (the client does not read).
    write_blocked_since: AtomicU64,
    /// Whether a request head was ever completed.
    requested: AtomicBool,
    h2: AtomicBool,
    /// Set (and notified) when the connection limit needs this idle connection's slot.
    shedding: AtomicBool,
    shed: Notify,
}

impl Conn {
    fn new(id: u64, limits: Limits) -> Self {
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

    fn now(&self) -> u64 {
        millis_since(self.limits.epoch)
    }

    fn on_read(&self) {
        if self.head_since.load(Ordering::Relaxed) == NONE
            && self.in_flight.load(Ordering::Relaxed) == 0
            && self.requested.load(Ordering::Relaxed)
            && !self.h2.load(Ordering::Relaxed)
        {
            self.head_since.store(self.now(), Ordering::Relaxed);
        }
    }

    fn on_write(&self, blocked: bool) {
        let since = self.write_blocked_since.load(Ordering::Relaxed);
        if blocked && since == NONE {
            self.write_blocked_since.store(self.now(), Ordering::Relaxed);
        } else if !blocked && since != NONE {
            self.write_blocked_since.store(NONE, Ordering::Relaxed);
        }
    }
}

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(NONE - 1)
}

/// Counts one request in flight, from the service call until the response body ends or drops.
struct InFlight(Arc<Conn>);

impl InFlight {
    fn start(conn: Arc<Conn>, version: Version) -> Self {
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
    inner: B,
    in_flight: Option<InFlight>,
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
struct Watched<T> {
    io: T,
    conn: Arc<Conn>,
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
enum Verdict {
    /// No request in flight for `idle_timeout`: close gracefully.
    Idle,
    /// Close at once, for this reason.
    Close(&'static str),
}

impl Verdict {
    fn reason(self) -> &'static str {
        match self {
            Self::Idle => "idle timeout",
            Self::Close(reason) => reason,
        }
    }
}

/// Turns a connection's state into its next deadline. Re-arms its timer only when a deadline
/// moves earlier or the armed one passes, so a busy connection costs a few atomic loads per
/// poll and no timer operations.
struct Watchdog {
    conn: Arc<Conn>,
    sleep: Pin<Box<Sleep>>,
    armed: u64,
    closing_since: Option<u64>,
}

impl Watchdog {
    fn new(conn: Arc<Conn>) -> Self {
        let armed = conn.accepted + conn.limits.header_ms;
        let sleep = Box::pin(tokio::time::sleep_until(conn.limits.epoch + Duration::from_millis(armed)));
        Self { conn, sleep, armed, closing_since: None }
    }

    /// The connection was told to close gracefully; it gets `header_read_timeout` to do so.
    fn closing(&mut self) {
        self.closing_since = Some(self.conn.now());
    }

    /// The current deadline (none while a request is in flight and writes progress) and what
    /// happens at it.
    fn target(&self) -> (Option<u64>, Verdict) {
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

    fn arm(&mut self, at: u64) {
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
struct Table {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Table {
    fn insert(self: &Arc<Self>, conn: Arc<Conn>) -> Entry {
        let id = conn.id;
        self.conns.lock().expect("the connection table lock is never poisoned").insert(id, conn);
        Entry { table: self.clone(), id }
    }

    /// Whether a new connection may be served: under the limit, or once the connection idle for
    /// longest has been told to close.
    fn make_room(&self, max: usize) -> bool {
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
struct Entry {
    table: Arc<Table>,
    id: u64,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.table.conns.lock().expect("the connection table lock is never poisoned").remove(&self.id);
    }
}

fn service<H, Fut, B>(
    handler: H,
    info: ConnInfo,
    conn: Arc<Conn>,
) -> impl hyper::service::Service<Request<Incoming>, Response = Response<Tracked<B>>, Error = Infallible, Future: Send> + Clone
where
    H: Fn(Request<Incoming>, ConnInfo) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body + Unpin,
{
    hyper::service::service_fn(move |req: Request<Incoming>| {
        let in_flight = InFlight::start(conn.clone(), req.version());
        let fut = handler(req, info);
        async move { Ok::<_, Infallible>(fut.await.map(|inner| Tracked { inner, in_flight: Some(in_flight) })) }
    })
}

/// Counts an open connection for as long as it lives.
struct OpenConnection(IntGauge);

impl OpenConnection {
    fn new(gauge: IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

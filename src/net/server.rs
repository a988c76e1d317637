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

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use ipnet::IpNet;
use prometheus::IntGauge;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::conn::{Conn, InFlight, Limits, Table, Tracked, Verdict, Watchdog, Watched, millis};
use super::proxy_protocol;

/// One listener's connection limits and timeouts (`proxy.*` in `config/tokengate.yaml`; the
/// admin port takes the same with its own `admin.max_connections`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Most connections at once; at the limit the one idle for longest is shed.
    pub max_connections: usize,
    /// Largest request head accepted (431 beyond it).
    pub max_header_bytes: usize,
    /// Most header fields in a request, HTTP/1 and HTTP/2 alike (431 beyond it).
    pub max_headers: usize,
    /// Time a client has to send a complete request head: from accept (TLS handshake and HTTP/2
    /// preface included), and on a keep-alive connection from the next request's first byte.
    pub header_read_timeout: Duration,
    /// How long a connection with no request in flight is kept, and how long writes may stay
    /// blocked on a client that does not read.
    pub idle_timeout: Duration,
    /// HTTP/2 ping interval; a peer that does not answer within the same time is disconnected.
    pub http2_keepalive_interval: Duration,
    /// With `Some`, every connection opens with a PROXY protocol header, believed from these
    /// networks only ([`super::proxy_protocol`]).
    pub proxy_protocol: Option<Arc<[IpNet]>>,
}

/// How a listener drains when its shutdown future resolves: in-flight requests and the
/// upgraded tunnels in `tunnels` get up to `timeout`.
#[derive(Debug, Clone)]
pub struct Drain {
    pub timeout: Duration,
    pub tunnels: TaskTracker,
}

/// What a handler knows about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    /// Whether `peer` is the client a trusted balancer named in a PROXY protocol header.
    pub proxied: bool,
}

/// Serves `listener` until `shutdown` resolves, then drains.
pub async fn serve<H, Fut, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    settings: ServerSettings,
    handler: H,
    open_connections: Option<IntGauge>,
    drain: Drain,
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
        // A dual-stack listener sees IPv4 clients as `::ffff:a.b.c.d`: every address check
        // (trusted proxies, allowed networks, failure limits) works on the plain IPv4 form.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
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
        let proxy_protocol = settings.proxy_protocol.clone();
        let header_read_timeout = settings.header_read_timeout;
        connections.spawn(async move {
            let _entry = entry;
            let _open = gauge.map(OpenConnection::new);
            let mut stream = stream;
            let (peer, proxied) = match proxy_protocol {
                None => (peer, false),
                Some(trusted) => {
                    let header = tokio::time::timeout(header_read_timeout, proxy_protocol::read(&mut stream, peer, &trusted));
                    tokio::select! {
                        read = header => match read {
                            Ok(Ok(client)) => client,
                            Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "no valid PROXY header; closing"),
                            Err(_) => return tracing::debug!(%peer, "no PROXY header in time; closing"),
                        },
                        _ = stop.cancelled() => return,
                    }
                }
            };
            let _ = stream.set_nodelay(true);
            let io = Watched { io: stream, conn: conn.clone() };
            let mut watchdog = Watchdog::new(conn.clone());
            match tls {
                None => {
                    let service = service(handler, ConnInfo { peer, tls: false, proxied }, conn.clone());
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
                    let service = service(handler, ConnInfo { peer, tls: true, proxied }, conn.clone());
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
        drain.tunnels.close();
        drain.tunnels.wait().await;
    };
    if tokio::time::timeout(drain.timeout, drained).await.is_err() {
        tracing::warn!(timeout = ?drain.timeout, "drain deadline reached; closing remaining connections");
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

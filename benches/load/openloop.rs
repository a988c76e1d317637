//! An open-loop load generator: requests leave at a fixed rate whatever the server does (wrk
//! is closed-loop, so it cannot hold a rate), each on an idle keep-alive connection, and the
//! latency of each is taken from the moment it is sent to the end of its response.
//!
//! A plain thread paces the requests with `thread::sleep` (the tokio timer ticks in whole
//! milliseconds, which would send them in bursts); the requests themselves run on the
//! caller's tokio runtime.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Connections the generator may open (more than the rate ever needs at sane latencies).
const MAX_CONNECTIONS: usize = 64;

/// Latency percentiles of one open-loop run, in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub sent: usize,
    pub p50_us: f64,
    pub p99_us: f64,
}

type Conn = SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Conn> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(send)
}

/// Sends `rate` requests per second for `duration` to `addr` and returns the latencies. Every
/// response must be `200 OK`.
pub async fn run(addr: SocketAddr, path: &str, token: Option<&str>, rate: u32, duration: Duration) -> Result<Latency> {
    let total = (rate as f64 * duration.as_secs_f64()) as usize;
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let (tick_tx, mut ticks) = mpsc::unbounded_channel::<()>();
    let pacer = std::thread::spawn(move || {
        let start = Instant::now();
        for i in 0..total {
            let at = start + period * i as u32;
            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if tick_tx.send(()).is_err() {
                return;
            }
        }
    });

    let uri = format!("http://{addr}{path}");
    let host = addr.to_string();
    let auth = token.map(|t| format!("Bearer {t}"));
    let (done_tx, mut done) = mpsc::unbounded_channel::<Result<(Conn, Duration)>>();
    let mut idle: Vec<Conn> = Vec::new();
    let mut open = 0usize;
    let mut latencies: Vec<Duration> = Vec::with_capacity(total);
    let mut in_flight = 0usize;
    let mut ticks_open = true;
    let mut waiting = 0usize;

    while ticks_open || in_flight > 0 || waiting > 0 {
        tokio::select! {
            tick = ticks.recv(), if ticks_open => match tick {
                Some(()) => waiting += 1,
                None => ticks_open = false,
            },
            Some(result) = done.recv(), if in_flight > 0 => {
                in_flight -= 1;
                let (conn, latency) = result?;
                latencies.push(latency);
                idle.push(conn);
            }
        }
        while waiting > 0 {
            let conn = match idle.pop() {
                Some(c) => c,
                None if open < MAX_CONNECTIONS => {
                    open += 1;
                    connect(addr).await.with_context(|| format!("connecting to {addr}"))?
                }
                None => break,
            };
            waiting -= 1;
            in_flight += 1;
            let mut req = Request::get(&uri).header("host", &host);
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            let req = req.body(Empty::new())?;
            let tx = done_tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(send(conn, req).await);
            });
        }
    }
    pacer.join().ok();
    if latencies.len() != total {
        bail!("{} of {total} requests completed", latencies.len());
    }
    latencies.sort_unstable();
    let pct = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    Ok(Latency { sent: total, p50_us: pct(0.50), p99_us: pct(0.99) })
}

async fn send(mut conn: Conn, req: Request<Empty<Bytes>>) -> Result<(Conn, Duration)> {
    let started = Instant::now();
    conn.ready().await?;
    let resp = conn.send_request(req).await?;
    let status = resp.status();
    resp.into_body().collect().await?;
    let latency = started.elapsed();
    if status != StatusCode::OK {
        bail!("unexpected status {status}");
    }
    Ok((conn, latency))
}

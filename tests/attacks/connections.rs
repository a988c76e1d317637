//! Connection-level attacks over real sockets: idle and silent connections, partial request
//! heads, the connection limits of both listeners, ambiguous request framing, and header counts.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use tokengate::token::TokenKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::admin::{Admin, OPERATOR_KEY};
use crate::support::gate::{Gate, bearer, embedded_config, get, send};
use crate::support::upstream::Upstream;
use crate::support::{minter, new_token};
use tokengate::store::Issue as _;

const ROUTES: &str = "routes:\n  - path: /public\n    public: true\n";

struct Setup {
    _dir: tempfile::TempDir,
    upstream: Upstream,
    gate: Gate,
    /// `Bearer <an organization token>`.
    auth: String,
}

async fn setup(extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    let gate = Gate::start(&embedded_config(&upstream.url(), dir.path(), &format!("{ROUTES}{extra}"))).await;
    let (token, _) =
        minter().issue(gate.store.as_ref(), &new_token(TokenKind::Organization, "ci", "acme")).await.unwrap();
    Setup { _dir: dir, upstream, gate, auth: bearer(token.expose()) }
}

/// Opens `n` connections that never send anything.
async fn silent(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(TcpStream::connect(addr).await.unwrap());
    }
    // Let the server accept them all.
    tokio::time::sleep(Duration::from_millis(300)).await;
    out
}

/// How long until the peer closes `stream` (reading and discarding), or `None` if it is still
/// open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_all).await.ok().map(|()| started.elapsed())
}

/// Reads one HTTP/1.1 response: status, head (lowercased) and a `Content-Length` body.
async fn read_response(stream: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "connection closed before a response: {:?}", String::from_utf8_lossy(&data));
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let len: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
    while data.len() < head_end + len {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "connection closed mid-body");
        data.extend_from_slice(&buf[..n]);
    }
    (status, head, data[head_end..head_end + len].to_vec())
}

async fn timed_get(url: &str, headers: &[(&str, &str)]) -> (StatusCode, Duration) {
    let started = Instant::now();
    let reply = tokio::time::timeout(Duration::from_secs(3), get(url, headers))
        .await
        .unwrap_or_else(|_| panic!("{url} did not answer within 3 s"));
    (reply.status, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_at_the_limit_do_not_lock_out_clients_or_health_checks() {
    // A header timeout long enough that only shedding can make room.
    let s = setup("proxy:\n  max_connections: 50\n  header_read_timeout: 30s\n").await;
    let mut proxy_flood = silent(s.gate.addr, 50).await;
    let (status, latency) = timed_get(&s.gate.url("/api"), &[("authorization", &s.auth)]).await;
    assert_eq!(status, 200);
    println!("authenticated request with 50 silent sockets at the limit: {latency:?}");
    assert!(
        closed_within(&mut proxy_flood[0], Duration::from_secs(2)).await.is_some(),
        "the oldest silent connection was closed to make room"
    );
    let mut open = 0;
    for socket in &mut proxy_flood[1..] {
        open += usize::from(closed_within(socket, Duration::from_millis(5)).await.is_none());
    }
    assert_eq!(open, 49, "only as many as needed were closed");

    // The admin port has its own, smaller limit (default 64) and sheds the same way.
    let _admin_flood = silent(s.gate.admin, 300).await;
    for path in ["/healthz", "/readyz"] {
        let (status, latency) = timed_get(&s.gate.admin_url(path), &[]).await;
        assert_eq!(status, 200, "{path}");
        println!("{path} with 300 silent sockets on the admin port: {latency:?}");
    }
    // And the proxy's flood does not touch the admin port's slots, or the other way round.
    assert_eq!(timed_get(&s.gate.url("/api"), &[("authorization", &s.auth)]).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_beyond_the_limit_is_closed_at_once_when_every_slot_is_busy() {
    let s = setup("proxy:\n  max_connections: 3\n").await;
    let url = s.gate.url("/slow?ms=2500");
    let busy: Vec<_> = (0..3)
        .map(|_| {
            let (url, auth) = (url.clone(), s.auth.clone());
            tokio::spawn(async move { get(&url, &[("authorization", &auth)]).await.status })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut extra = TcpStream::connect(s.gate.addr).await.unwrap();
    let closed = closed_within(&mut extra, Duration::from_secs(1)).await;
    assert!(closed.is_some(), "refused explicitly, not left waiting in the backlog");
    for b in busy {
        assert_eq!(b.await.unwrap(), 200, "requests in flight are never shed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_http2_preface_is_closed_after_the_header_timeout() {
    let s = setup("proxy:\n  header_read_timeout: 1s\n").await;
    let mut stream = TcpStream::connect(s.gate.addr).await.unwrap();
    stream.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let closed = closed_within(&mut stream, Duration::from_secs(4)).await.expect("closed");
    assert!(closed >= Duration::from_millis(800), "{closed:?}");
}

/// Writes `bytes` one at a time, `every` apart, until the peer closes.
fn trickle(mut writer: tokio::net::tcp::OwnedWriteHalf, bytes: &'static [u8], every: Duration) {
    tokio::spawn(async move {
        for b in bytes {
            if writer.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(every).await;
        }
    });
}

async fn closed_after(mut reader: tokio::net::tcp::OwnedReadHalf, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_all).await.ok().map(|()| started.elapsed())
}

const TRICKLED: &[u8] = b"GET /public/x HTTP/1.1\r\nHost: gate\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_http1_head_is_closed_after_the_header_timeout_on_new_and_keep_alive_connections() {
    let s = setup("proxy:\n  header_read_timeout: 1s\n  idle_timeout: 30s\n").await;
    // A new connection: the head must be complete within the timeout, however steady the drip.
    let (reader, writer) = TcpStream::connect(s.gate.addr).await.unwrap().into_split();
    trickle(writer, TRICKLED, Duration::from_millis(50));
    let closed = closed_after(reader, Duration::from_secs(4)).await.expect("closed");
    assert!(closed >= Duration::from_millis(800) && closed < Duration::from_millis(2500), "{closed:?}");

    // A keep-alive connection idle for a while: the timeout counts from the next head's first
    // byte, not from when it went idle.
    let mut stream = TcpStream::connect(s.gate.addr).await.unwrap();
    stream.write_all(b"GET /public/a HTTP/1.1\r\nHost: gate\r\n\r\n").await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (reader, writer) = stream.into_split();
    trickle(writer, TRICKLED, Duration::from_millis(50));
    let closed = closed_after(reader, Duration::from_secs(4)).await.expect("closed");
    assert!(closed >= Duration::from_millis(800) && closed < Duration::from_millis(2500), "{closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let s = setup("proxy:\n  header_read_timeout: 5s\n  idle_timeout: 1s\n").await;
    let mut stream = TcpStream::connect(s.gate.addr).await.unwrap();
    let request = format!("GET /api HTTP/1.1\r\nHost: gate\r\nAuthorization: {}\r\n\r\n", s.auth);
    stream.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, 200);
    // Within the idle timeout the connection is reused.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stream.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, 200);
    let closed = closed_within(&mut stream, Duration::from_secs(4)).await.expect("closed");
    assert!(closed >= Duration::from_millis(800) && closed < Duration::from_millis(2500), "{closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_streaming_response_is_not_cut_by_the_idle_or_header_timeout() {
    let s = setup("proxy:\n  header_read_timeout: 1s\n  idle_timeout: 1s\n").await;
    let started = Instant::now();
    let reply = get(&s.gate.url("/drip?chunks=6&ms=500"), &[("authorization", &s.auth)]).await;
    assert_eq!((reply.status.as_u16(), reply.body.as_ref()), (200, b"......".as_ref()));
    assert!(started.elapsed() >= Duration::from_millis(2900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_calls_beyond_their_limit_get_503_and_health_checks_still_answer() {
    let admin = Admin::start("  max_connections: 4\n  max_concurrent_calls: 1\n").await;
    // One API call in progress: its body never finishes arriving.
    let mut slow = TcpStream::connect(admin.gate.admin).await.unwrap();
    let head = format!(
        "POST /v1/tokens HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {OPERATOR_KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let r = admin.op(Method::GET, "/v1/tokens", None).await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(r.headers["retry-after"], "2");
    assert_eq!(r.json()["error"]["code"], "unavailable");
    // Silent sockets on top of it: health checks still get a connection and an answer.
    let _flood = silent(admin.gate.admin, 10).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(timed_get(&admin.gate.admin_url(path), &[]).await.0, 200, "{path}");
    }
    drop(slow);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(admin.op(Method::GET, "/v1/tokens", None).await.status, 200, "the permit came back");
}

/// Sends `request` on a new connection; returns the response and whether the connection was
/// then closed.
async fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String, bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let (status, head, _) = read_response(&mut stream).await;
    let closed = closed_within(&mut stream, Duration::from_millis(1500)).await.is_some();
    (status, head, closed)
}

/// A chunked body whose only chunk carries a second request, the smuggling payload.
const SMUGGLING_BODY: &str = "2b\r\nhelloGET /smuggled HTTP/1.1\r\nHost: gate\r\n\r\n\r\n0\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_framing_is_refused_and_the_connection_closed() {
    let s = setup("").await;
    let auth = &s.auth;
    let cases = [
        ("content-length before transfer-encoding", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n".to_string()),
        ("gzip then chunked", "Transfer-Encoding: gzip, chunked\r\n".to_string()),
        ("chunked twice", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n".to_string()),
        ("two hosts", "Host: other\r\nTransfer-Encoding: chunked\r\n".to_string()),
    ];
    for (case, framing) in cases {
        let request = format!(
            "POST /api/{} HTTP/1.1\r\nHost: gate\r\nAuthorization: {auth}\r\n{framing}\r\n{SMUGGLING_BODY}",
            case.len()
        );
        let (status, head, closed) = exchange(s.gate.addr, request.as_bytes()).await;
        assert_eq!(status, 400, "{case}: {head}");
        assert!(head.contains("connection: close"), "{case}: {head}");
        assert!(closed, "{case}: the connection is closed after the refusal");
    }
    // Transfer-Encoding then Content-Length: hyper drops the Content-Length (RFC 9112 §6.3
    // lets an intermediary forward after removing it), so the upstream gets consistent framing.
    let request = format!(
        "POST /api/te-first HTTP/1.1\r\nHost: gate\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n{SMUGGLING_BODY}"
    );
    let mut stream = TcpStream::connect(s.gate.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let (status, _, body) = read_response(&mut stream).await;
    assert_eq!(status, 200);
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["body_len"], 43, "the whole de-chunked body, as the body");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = s.upstream.seen();
    assert!(!seen.iter().any(|t| t.contains("smuggled")), "the upstream never saw the smuggled request: {seen:?}");
    assert_eq!(seen, vec!["/api/te-first"], "none of the refused requests reached the upstream");
}

/// HPACK for a literal header field without indexing, new name, no Huffman coding.
fn hpack_literal(out: &mut Vec<u8>, name: &str, value: &str) {
    assert!(name.len() < 127 && value.len() < 127);
    out.push(0x00);
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    out.push(value.len() as u8);
    out.extend_from_slice(value.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_encoding_on_http2_is_a_protocol_error() {
    let s = setup("").await;
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
    hpack_literal(&mut block, ":path", "/public/te");
    hpack_literal(&mut block, ":authority", "gate");
    hpack_literal(&mut block, "transfer-encoding", "chunked");
    let mut wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    wire.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]); // SETTINGS, empty
    let len = block.len() as u32;
    wire.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, 0x1, 0x5, 0, 0, 0, 1]); // HEADERS, END_STREAM | END_HEADERS, stream 1
    wire.extend_from_slice(&block);
    let mut stream = TcpStream::connect(s.gate.addr).await.unwrap();
    stream.write_all(&wire).await.unwrap();

    // Read frames until the stream is reset (or the connection goes away).
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let reset = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            let mut at = 0;
            while data.len() >= at + 9 {
                let len = (data[at] as usize) << 16 | (data[at + 1] as usize) << 8 | data[at + 2] as usize;
                let (kind, stream_id) = (data[at + 3], u32::from_be_bytes(data[at + 5..at + 9].try_into().unwrap()));
                if data.len() < at + 9 + len {
                    break;
                }
                match kind {
                    0x3 if stream_id == 1 => return u32::from_be_bytes(data[at + 9..at + 13].try_into().unwrap()),
                    0x7 => return u32::from_be_bytes(data[at + 13..at + 17].try_into().unwrap()),
                    0x1 if stream_id == 1 => panic!("a response was sent for a request with Transfer-Encoding"),
                    _ => {}
                }
                at += 9 + len;
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed without a reset");
            data.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("a reset within 3 s");
    assert_eq!(reset, 0x1, "PROTOCOL_ERROR");
    assert!(s.upstream.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_header_fields_than_max_headers_get_431_over_http1_and_http2() {
    // The default limit: 100 fields.
    let s = setup("").await;
    let fields: Vec<(String, String)> = (0..150).map(|i| (format!("x-h{i}"), "y".into())).collect();
    let h2: hyper_util::client::legacy::Client<_, http_body_util::Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).http2_only(true).build_http();
    for (count, expected) in [(90, 200), (150, 431)] {
        let mut headers: Vec<(&str, &str)> = fields[..count].iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        headers.push(("authorization", &s.auth));
        let r = send(Method::GET, &s.gate.url("/api"), &headers, Bytes::new()).await;
        assert_eq!(r.status, expected, "HTTP/1.1 with {count} fields");

        let mut req = http::Request::builder().uri(s.gate.url("/api"));
        for (k, v) in &headers {
            req = req.header(*k, *v);
        }
        let resp = h2.request(req.body(http_body_util::Full::new(Bytes::new())).unwrap()).await.unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(resp.status(), expected, "HTTP/2 with {count} fields");
    }
}

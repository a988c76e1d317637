//! Differential test of the path tokengate authorizes against the path the upstream receives.
//!
//! Nasty HTTP/1.1 request lines go over a raw TCP connection (so nothing is cleaned up on the
//! way) with a valid organization token, to a tokengate in front of the echo upstream. For each
//! one, either tokengate refuses it (4xx, and the answer is not the upstream's echo), or the
//! upstream answered and received:
//! - the method exactly as sent;
//! - the path `tokengate::policy::path::normalize(p)`, where `p` is the path of the request target as
//!   `http::Uri` (hyper's parser) reads it: the path the route rules saw;
//! - the query exactly as sent.
//!
//! Some lines have a fixed expected status too (path parameters, lowercase methods: 400). The
//! same check runs over HTTP/2 for the targets an HTTP/2 client can send.

use tokengate::token::TokenKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{Proto, request};
use crate::support::gate::{Gate, bearer, embedded_config};
use crate::support::upstream::Upstream;
use crate::support::{minter, new_token};
use tokengate::store::Issue as _;

struct Setup {
    _dir: tempfile::TempDir,
    _upstream: Upstream,
    gate: Gate,
    auth: String,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    let gate = Gate::start(&embedded_config(&upstream.url(), dir.path(), "")).await;
    let (token, _) =
        minter().issue(gate.store.as_ref(), &new_token(TokenKind::Organization, "ci", "acme")).await.unwrap();
    Setup { _dir: dir, _upstream: upstream, gate, auth: bearer(token.expose()) }
}

/// A status and the de-chunked body.
struct Raw {
    status: u16,
    body: Vec<u8>,
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else { return out };
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
}

/// Sends `request_line` with a Host and an Authorization header and reads the whole answer (the
/// request asks the server to close the connection).
async fn raw(gate: &Gate, request_line: &str, auth: &str) -> Raw {
    let mut stream = TcpStream::connect(gate.addr).await.unwrap();
    let head = format!("{request_line}\r\nHost: tokengate.test\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
        panic!("{request_line:.80}: no complete response head: {:?}", String::from_utf8_lossy(&answer))
    });
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    let body = &answer[split + 4..];
    let chunked = head.lines().any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
    Raw { status, body: if chunked { dechunk(body) } else { body.to_vec() } }
}

/// What the upstream must have received for `method target` if tokengate forwarded it:
/// (method, path and query).
fn expected(method: &str, target: &str) -> Option<(String, String)> {
    let uri: http::Uri = target.parse().ok()?;
    let path = tokengate::policy::path::normalize(uri.path()).ok()?;
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    Some((method.to_string(), format!("{path}{query}")))
}

/// Checks one answer: a refusal that never reached the upstream, or the echo of exactly the
/// normalized path, the query and the method.
fn check(what: &str, method: &str, target: &str, status: u16, body: &[u8], want_status: Option<u16>) {
    if let Some(want) = want_status {
        assert_eq!(status, want, "{what}: {:?}", String::from_utf8_lossy(body));
    }
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    if (400..500).contains(&status) {
        assert!(
            json.as_ref().is_none_or(|j| j.get("target").is_none()),
            "{what}: a {status} carrying the upstream's echo: {:?}",
            String::from_utf8_lossy(body)
        );
        return;
    }
    assert_eq!(status, 200, "{what}: neither refused nor forwarded: {:?}", String::from_utf8_lossy(body));
    let echo = json.unwrap_or_else(|| panic!("{what}: not the upstream's echo: {:?}", String::from_utf8_lossy(body)));
    let (want_method, want_target) =
        expected(method, target).unwrap_or_else(|| panic!("{what}: forwarded, but its path does not normalize"));
    assert_eq!(echo["method"], want_method.as_str(), "{what}");
    assert_eq!(echo["target"], want_target.as_str(), "{what}: the upstream got another path than the rules saw");
}

/// (request line, expected status when fixed)
fn corpus() -> Vec<(String, Option<u16>)> {
    let mut lines: Vec<(String, Option<u16>)> = [
        ("GET /a/../b HTTP/1.1", Some(200)),
        ("GET /a/%2e%2e/b HTTP/1.1", Some(200)),
        ("GET /a/%2E%2E/b HTTP/1.1", Some(200)),
        ("GET /a/.%2e/b HTTP/1.1", Some(200)),
        ("GET //a HTTP/1.1", Some(200)),
        ("GET //a//b///c HTTP/1.1", Some(200)),
        ("GET /a/./b/ HTTP/1.1", Some(200)),
        ("GET /./ HTTP/1.1", Some(200)),
        ("GET /.. HTTP/1.1", Some(200)),
        ("GET /../../etc/passwd HTTP/1.1", Some(200)),
        ("GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1", Some(200)),
        ("GET /a/b/../../../../c HTTP/1.1", Some(200)),
        ("GET /%41dmin HTTP/1.1", Some(200)),
        ("GET /%7euser HTTP/1.1", Some(200)),
        ("GET /a%20b HTTP/1.1", Some(200)),
        ("GET /a%3ab HTTP/1.1", Some(200)),
        ("GET /caf%C3%A9 HTTP/1.1", Some(200)),
        ("GET /caf%c3%a9 HTTP/1.1", Some(200)),
        ("GET /a?b=../c HTTP/1.1", Some(200)),
        ("GET /a/../b?x=/../y&z=%2F HTTP/1.1", Some(200)),
        ("GET /a?x=;y HTTP/1.1", Some(200)),
        ("GET /a? HTTP/1.1", Some(200)),
        ("GET /a?%zz HTTP/1.1", Some(200)),
        ("GET /a#frag HTTP/1.1", Some(200)),
        ("GET /a/..#/../b HTTP/1.1", Some(200)),
        ("GET http://tokengate.test/a/../b HTTP/1.1", Some(200)),
        ("GET http://evil.example/a/%2e%2e/b?q=1 HTTP/1.1", Some(200)),
        ("GET http://tokengate.test HTTP/1.1", Some(200)),
        ("GET https://tokengate.test/a HTTP/1.1", Some(200)),
        ("OPTIONS * HTTP/1.1", Some(400)),
        ("CONNECT tokengate.test:443 HTTP/1.1", Some(400)),
        ("GET /a/b;x HTTP/1.1", Some(400)),
        ("GET /public/..;/admin HTTP/1.1", Some(400)),
        ("GET /a%3Bx HTTP/1.1", Some(400)),
        ("GET /a%3bx HTTP/1.1", Some(400)),
        ("get /a HTTP/1.1", Some(400)),
        ("Get /a HTTP/1.1", Some(400)),
        ("GET /a%2fb HTTP/1.1", Some(400)),
        ("GET /a%2F..%2Fb HTTP/1.1", Some(400)),
        ("GET /a%5Cb HTTP/1.1", Some(400)),
        ("GET /a%00 HTTP/1.1", Some(400)),
        ("GET /a% HTTP/1.1", Some(400)),
        ("GET /a%zz HTTP/1.1", Some(400)),
        ("GET /a\\..\\b HTTP/1.1", Some(400)),
        ("GET a/b HTTP/1.1", None),
        ("GET /a?access_token=x HTTP/1.1", Some(400)),
        ("POST /a/../b HTTP/1.1", Some(200)),
        ("PUT /a/%2e/b/%2E%2E/c HTTP/1.1", Some(200)),
        ("DELETE /a/./b HTTP/1.1", Some(200)),
        ("PATCH //x HTTP/1.1", Some(200)),
        ("M-SEARCH /a HTTP/1.1", Some(200)),
        ("GET /a b HTTP/1.1", None),
        ("GET /caf\u{e9} HTTP/1.1", Some(200)),
        ("GET /a\t/b HTTP/1.1", None),
        ("GET  /a HTTP/1.1", None),
        ("GET /a HTTP/1.0", Some(200)),
    ]
    .iter()
    .map(|(l, s)| (l.to_string(), *s))
    .collect();
    // Long paths: well within the header limit (64 KiB), and beyond it (hyper's 431). The lines
    // left at `None` are refused by hyper's parser (400 or 431), which is hyper's call.
    lines.push((format!("GET /{} HTTP/1.1", "a/".repeat(2_000)), Some(200)));
    lines.push((format!("GET /{}x HTTP/1.1", "../".repeat(5_000)), Some(200)));
    lines.push((format!("GET /{}x HTTP/1.1", "%2e%2e/".repeat(2_000)), Some(200)));
    lines.push((format!("GET /{} HTTP/1.1", "a".repeat(100_000)), None));
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_upstream_gets_exactly_the_path_the_rules_saw() {
    let s = setup().await;
    for (line, want) in corpus() {
        let answer = raw(&s.gate, &line, &s.auth).await;
        let mut words = line.splitn(3, ' ');
        let (method, target) = (words.next().unwrap(), words.next().unwrap_or_default());
        let what = format!("{:.100}", line);
        check(&what, method, target, answer.status, &answer.body, want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_upstream_gets_exactly_the_path_the_rules_saw() {
    let s = setup().await;
    let cases: &[(&str, &str, Option<u16>)] = &[
        ("GET", "/a/../b", Some(200)),
        ("GET", "/a/%2e%2e/b", Some(200)),
        ("GET", "//a", Some(200)),
        ("GET", "/a/./b/", Some(200)),
        ("GET", "/%41dmin", Some(200)),
        ("GET", "/a%20b", Some(200)),
        ("GET", "/caf%C3%A9", Some(200)),
        ("GET", "/a?b=../c", Some(200)),
        ("DELETE", "/x/%2E/y/..", Some(200)),
        ("GET", "/a/b;x", Some(400)),
        ("GET", "/a%2Fb", Some(400)),
        ("get", "/a", Some(400)),
    ];
    for (method, target, want) in cases {
        let a = request(Proto::H2, s.gate.addr, None, method, target, &[("authorization", &s.auth)]).await;
        check(&format!("h2 {method} {target}"), method, target, a.status.as_u16(), &a.body, *want);
    }
}

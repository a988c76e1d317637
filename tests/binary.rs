//! The real `tokengate` binary: draining on SIGTERM and streaming large bodies in bounded
//! memory, measured on the process itself.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use tokengate::store::StoreOptions;
use tokengate::store::embedded::EmbeddedStore;
use tokengate::token::TokenKind;

use support::gate::{bearer, send};
use support::upstream::Upstream;
use support::{minter, new_token};
use tokengate::store::Issue as _;

struct Running {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    addr: SocketAddr,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
    _upstream: Upstream,
    token: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Peak resident memory of the tokengate process so far (VmHWM), in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    }

    fn signal(&self, signal: &str) {
        assert!(Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap().success());
    }

    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "tokengate did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Issues a token into a fresh embedded store, then starts the binary on it.
async fn start(extra: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tokens.redb");
    let store = EmbeddedStore::open(&db, StoreOptions::default()).await.unwrap();
    let (secret, _) = minter().issue(&store, &new_token(TokenKind::Organization, "bin", "acme")).await.unwrap();
    drop(store);
    let upstream = Upstream::start().await;
    let config = dir.path().join("tokengate.yaml");
    std::fs::write(
        &config,
        format!(
            "upstream: {}\nlisten: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nstore:\n  embedded:\n    path: {}\nlog:\n  format: json\n{extra}",
            upstream.url(),
            db.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (addr, admin) = loop {
        let line = lines.next().expect("tokengate exited before starting").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "tokengate started" {
            let addr = |key: &str| v[key].as_str().unwrap().parse::<SocketAddr>().unwrap();
            break (addr("listen"), addr("admin"));
        }
    };
    // Keep reading its logs (so it never blocks on a full pipe) for the tests to inspect.
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = logs.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    Running { child, logs, addr, admin, _dir: dir, _upstream: upstream, token: secret.expose().to_string() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_request_drains_it_and_exits_zero() {
    let mut gate = start("shutdown:\n  drain_timeout: 10s\n").await;
    let url = format!("http://{}/slow?ms=1500", gate.addr);
    let auth = bearer(&gate.token);
    let slow = tokio::spawn(async move { send(Method::GET, &url, &[("authorization", &auth)], Bytes::new()).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    gate.signal("-TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // New connections are refused once draining started.
    assert!(tokio::net::TcpStream::connect(gate.addr).await.is_err(), "the listener is closed while draining");
    let reply = slow.await.unwrap();
    assert_eq!(reply.status, 200, "the in-flight request completed");
    let status = gate.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_through_in_bounded_memory() {
    const SIZE: u64 = 300 * 1024 * 1024;
    let gate = start("").await;
    let auth = bearer(&gate.token);
    let baseline = gate.peak_rss();

    // Upload 300 MiB.
    let chunk = Bytes::from(vec![1u8; 1024 * 1024]);
    let stream = futures_util::stream::iter(
        (0..SIZE / (1024 * 1024))
            .map(move |_| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(chunk.clone()))),
    );
    let client: hyper_util::client::legacy::Client<_, http_body_util::StreamBody<_>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let req = http::Request::builder()
        .method(Method::PUT)
        .uri(format!("http://{}/upload", gate.addr))
        .header("authorization", &auth)
        .body(http_body_util::StreamBody::new(stream))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let body = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["body_len"], SIZE);
    let after_upload = gate.peak_rss();

    // Download 300 MiB, counting without keeping it.
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let req = http::Request::builder()
        .uri(format!("http://{}/download?bytes={SIZE}", gate.addr))
        .header("authorization", &auth)
        .body(http_body_util::Empty::new())
        .unwrap();
    let mut body = client.request(req).await.unwrap().into_body();
    let mut received: u64 = 0;
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        received += frame.unwrap().data_ref().map_or(0, |d| d.len() as u64);
    }
    assert_eq!(received, SIZE);
    let peak = gate.peak_rss();
    println!(
        "tokengate peak RSS: {} MiB at start, {} MiB after a 300 MiB upload, {} MiB after a 300 MiB download",
        baseline >> 20,
        after_upload >> 20,
        peak >> 20
    );
    assert!(peak < 64 << 20, "peak RSS {} MiB: bodies must stream, not buffer", peak >> 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_appear_in_logs() {
    let mut gate = start("").await;
    let url = format!("http://{}/api", gate.addr);
    let good = gate.token.clone();
    let (_, unknown) = tokengate::token::TokenFormat::default().generate(TokenKind::Personal);
    let mut broken = good.clone();
    broken.pop();
    for t in [good.as_str(), unknown.expose(), broken.as_str()] {
        send(Method::GET, &url, &[("authorization", &bearer(t))], Bytes::new()).await;
    }
    send(Method::GET, &format!("{url}?access_token={good}"), &[], Bytes::new()).await;
    gate.signal("-TERM");
    assert!(gate.wait_exit(Duration::from_secs(10)).success());
    std::thread::sleep(Duration::from_millis(100));
    let logs = gate.logs.lock().unwrap().join("\n");
    assert!(logs.contains("token refused"), "refusals are logged (by token id): {logs}");
    // The id (public) may appear; the secret part of any presented token never does.
    for t in [good.as_str(), unknown.expose(), broken.as_str()] {
        assert!(!logs.contains(&t[16..50]), "a token secret leaked into the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_a_working_curl_line_and_stops_on_ctrl_c() {
    let (listen, admin) = (support::free_port(), support::free_port());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .args(["demo", "--listen", &format!("127.0.0.1:{listen}"), "--admin-listen", &format!("127.0.0.1:{admin}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    while !text.contains("Press Ctrl-C") {
        let n = tokio::io::AsyncBufReadExt::read_line(&mut out, &mut text).await.unwrap();
        assert!(n > 0, "demo exited early: {text}");
    }
    let curl = text.lines().find(|l| l.trim_start().starts_with("curl -s -H")).unwrap();
    let token = curl.split("Bearer ").nth(1).unwrap().split('\'').next().unwrap();
    let url = curl.split_whitespace().last().unwrap();
    let reply = send(Method::GET, url, &[("authorization", &bearer(token))], Bytes::new()).await;
    assert_eq!(reply.status, 200);
    let echo = reply.json();
    assert_eq!(echo["headers"]["x-auth-subject"], "demo");
    assert_eq!(echo["headers"]["x-auth-token-kind"], "personal");
    assert_eq!(send(Method::GET, url, &[], Bytes::new()).await.status, 401);
    let page = send(Method::GET, &format!("http://127.0.0.1:{admin}/"), &[], Bytes::new()).await;
    assert_eq!(page.status, 200);
    assert!(Command::new("kill").args(["-INT", &child.id().unwrap().to_string()]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_is_logged_and_ignored_then_sigterm_drains_and_exits_zero() {
    let mut gate = start("").await;
    let url = format!("http://{}/api", gate.addr);
    let auth = bearer(&gate.token);
    gate.signal("-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(gate.child.try_wait().unwrap().is_none(), "SIGHUP did not stop tokengate");
    assert_eq!(send(Method::GET, &url, &[("authorization", &auth)], Bytes::new()).await.status, 200);
    let logs = gate.logs.lock().unwrap().join("\n");
    assert!(logs.contains(tokengate::shutdown::SIGHUP_IGNORED), "{logs}");
    gate.signal("-TERM");
    assert!(gate.wait_exit(Duration::from_secs(10)).success());
}

/// A one-off measurement, not part of the suite: 10,000 silent sockets (the default
/// `proxy.max_connections`) against the real binary, then an authenticated request and
/// `/healthz`. Each process needs `ulimit -n` above 10,100:
/// `cargo test --release --test binary ten_thousand -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn ten_thousand_idle_sockets() {
    let gate = start("proxy:\n  header_read_timeout: 300s\n").await;
    let admin = gate.admin;
    let started = Instant::now();
    let mut flood = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        flood.push(tokio::net::TcpStream::connect(gate.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("10,000 silent sockets open after {:?}", started.elapsed());
    let auth = bearer(&gate.token);
    for round in 0..3 {
        let t = Instant::now();
        let r =
            send(Method::GET, &format!("http://{}/api", gate.addr), &[("authorization", &auth)], Bytes::new()).await;
        let request = t.elapsed();
        assert_eq!(r.status, 200);
        let t = Instant::now();
        let h = send(Method::GET, &format!("http://{admin}/healthz"), &[], Bytes::new()).await;
        let health = t.elapsed();
        assert_eq!(h.status, 200);
        println!("round {round}: authenticated request {request:?}, /healthz {health:?}");
    }
    drop(flood);
}

//! tokengate on the Redis that platform teams run, end to end over real processes: a Sentinel
//! failover and a Cluster master failover under traffic, and what a wrong CA, a missing client
//! certificate, a wrong name, a wrong password, a too-narrow ACL or a Cluster node that does not
//! own the slot do to readiness (and that no secret reaches a log). The store conformance suite
//! runs over the same topologies in `tests/store_conformance.rs`.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use tokengate::config::RedisConfig;
use tokengate::store::redis::RedisStore;
use tokengate::store::{Issue as _, Store, StoreError, StoreOptions, TokenStore as _};
use tokengate::token::{Action, TokenKind};

use support::gate::{Gate, bearer, get};
use support::topology::{Pki, RedisCluster, SentinelSet, TlsRedis};
use support::upstream::Upstream;
use support::{minter, new_token};

/// The tests here start up to six Redis processes each: they run one at a time, so a slow
/// machine does not turn their timing into failures.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TOPOLOGIES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TOPOLOGIES.lock().await
}

async fn wait_ready(gate: &Gate) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(&gate.admin_url("/readyz"), &[]).await.status != 200 {
        assert!(Instant::now() < deadline, "gate never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One probe of the traffic loop: when it was sent (since the loop started), the status for the
/// token that was cached before the failover, and the status for a token never seen before
/// (a store read), with whether a 503 carried Retry-After.
#[derive(Debug, Clone, Copy)]
struct Probe {
    /// When the uncached request was answered (a request in flight at the kill may be answered
    /// 503 after it, so the failover window is checked against the answer).
    at: Duration,
    cached: u16,
    uncached: Option<u16>,
    retry_after: bool,
}

/// Sends, every 10 ms until stopped, one request with `cached` and one with the next of
/// `uncached` (each used once, so each is a cache miss).
fn traffic(
    url: String,
    cached: String,
    uncached: Vec<String>,
) -> (Arc<Mutex<bool>>, tokio::task::JoinHandle<Vec<Probe>>) {
    let stop = Arc::new(Mutex::new(false));
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        let start = Instant::now();
        let mut probes = Vec::new();
        let mut fresh = uncached.into_iter();
        while !*stopped.lock().unwrap() {
            let cached = get(&url, &[("authorization", &bearer(&cached))]).await.status.as_u16();
            let (mut uncached, mut retry_after) = (None, true);
            if let Some(t) = fresh.next() {
                let reply = get(&url, &[("authorization", &bearer(&t))]).await;
                uncached = Some(reply.status.as_u16());
                retry_after =
                    reply.status != StatusCode::SERVICE_UNAVAILABLE || reply.headers.contains_key("retry-after");
            }
            let at = start.elapsed();
            probes.push(Probe { at, cached, uncached, retry_after });
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        probes
    });
    (stop, task)
}

/// Issues `n` tokens; returns their secrets.
async fn issue(store: &Store, n: usize, name: &str) -> Vec<String> {
    let m = minter();
    let mut secrets = Vec::with_capacity(n);
    for i in 0..n {
        let (secret, _) =
            m.issue(store.as_ref(), &new_token(TokenKind::Organization, &format!("{name}-{i}"), "acme")).await.unwrap();
        secrets.push(secret.expose().to_string());
    }
    secrets
}

/// Retries a write through the store until it succeeds; how long after `since` that was.
async fn first_write_after(store: &Store, since: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match minter().issue(store.as_ref(), &new_token(TokenKind::Organization, "after-failover", "acme")).await {
            Ok(_) => return since.elapsed(),
            Err(StoreError::Unavailable(_)) => {
                assert!(Instant::now() < deadline, "writes did not resume within 30 s");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("unexpected error while failing over: {e}"),
        }
    }
}

/// Checks the probes of a failover that started `killed_at` into the traffic and whose writes
/// resumed `resumed` later; returns (503 answers, the span from the first to the last one).
fn check_probes(probes: &[Probe], killed_at: Duration, resumed: Duration) -> (usize, Duration) {
    assert!(probes.len() > 20, "too little traffic: {}", probes.len());
    for p in probes {
        assert_eq!(p.cached, 200, "a cached token must keep working through the failover: {p:?}");
        assert!(p.retry_after, "a 503 must carry Retry-After: {p:?}");
        match p.uncached {
            None | Some(200) => {}
            Some(503) => assert!(
                p.at >= killed_at && p.at <= killed_at + resumed + Duration::from_secs(2),
                "503 outside the failover window: {p:?} (kill at {killed_at:?}, writes back after {resumed:?})"
            ),
            Some(other) => panic!("an uncached valid token got {other} (never 401 for an outage): {p:?}"),
        }
    }
    let last: Vec<_> = probes.iter().rev().filter_map(|p| p.uncached).take(10).collect();
    assert!(last.iter().all(|s| *s == 200), "uncached tokens work again after the failover: {last:?}");
    let outages: Vec<Duration> = probes.iter().filter(|p| p.uncached == Some(503)).map(|p| p.at).collect();
    let span = match (outages.first(), outages.last()) {
        (Some(a), Some(b)) => *b - *a,
        _ => Duration::ZERO,
    };
    (outages.len(), span)
}

/// Revokes `secret`'s token through `store` and waits until `gate` refuses it; how long it took.
async fn revocation_seen(gate: &Gate, store: &Store, secret: &str) -> Duration {
    let id = tokengate::token::TokenFormat::default().parse(secret).unwrap().id;
    store.transition(&id, Action::Revoke, "op").await.unwrap();
    let revoked = Instant::now();
    while get(&gate.url("/x"), &[("authorization", &bearer(secret))]).await.status != StatusCode::UNAUTHORIZED {
        assert!(revoked.elapsed() < Duration::from_secs(2), "a revoked token was still accepted after 2 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    revoked.elapsed()
}

/// A Sentinel set, an upstream, a ready gate on them and one token it has cached.
async fn sentinel_gate() -> (SentinelSet, Upstream, Gate, String) {
    let set = tokio::task::block_in_place(SentinelSet::start);
    let upstream = Upstream::start().await;
    let gate = Gate::start(&format!("upstream: {}\n{}", upstream.url(), set.store_yaml("test"))).await;
    wait_ready(&gate).await;
    let cached = issue(&gate.store, 1, "cached").await.remove(0);
    assert_eq!(get(&gate.url("/x"), &[("authorization", &bearer(&cached))]).await.status, 200);
    (set, upstream, gate, cached)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_keeps_cached_tokens_working_and_writes_resume_on_the_new_master() {
    let _serial = one_at_a_time().await;
    let (mut set, _upstream, gate, cached) = sentinel_gate().await;
    let uncached = issue(&gate.store, 1500, "uncached").await;

    let (stop, task) = traffic(gate.url("/x"), cached.clone(), uncached);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = Instant::now();
    let promoted = tokio::task::block_in_place(|| set.fail_over());
    let resumed = first_write_after(&gate.store, killed).await;
    wait_ready(&gate).await;
    let ready_again = killed.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    *stop.lock().unwrap() = true;
    let probes = task.await.unwrap();
    let (outages, span) = check_probes(&probes, killed - started, resumed);

    // The invalidation subscription followed the master: a revocation is seen at once.
    let seen = revocation_seen(&gate, &gate.store, &cached).await;
    println!(
        "sentinel failover: replica promoted {promoted:?} after the kill; first write through tokengate {resumed:?}; \
         ready again {ready_again:?}; {outages} of {} uncached requests got 503 over {span:?}; cached token 200 \
         throughout; revocation seen after {seen:?}",
        probes.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_master_failover_loses_no_token_and_revocations_still_propagate() {
    let _serial = one_at_a_time().await;
    let mut cluster = tokio::task::block_in_place(RedisCluster::start);
    let upstream = Upstream::start().await;
    let yaml = format!("upstream: {}\n{}", upstream.url(), cluster.store_yaml("test"));
    let (a, b) = (Gate::start(&yaml).await, Gate::start(&yaml).await);
    wait_ready(&a).await;
    wait_ready(&b).await;
    let before = issue(&a.store, 100, "before").await;
    let cached = before[0].clone();
    assert_eq!(get(&b.url("/x"), &[("authorization", &bearer(&cached))]).await.status, 200);
    let uncached = before[1..].to_vec();

    let probes_uncached = issue(&a.store, 600, "probe").await;
    let (stop, task) = traffic(b.url("/x"), cached.clone(), probes_uncached);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = Instant::now();
    let cluster_ok = tokio::task::block_in_place(|| cluster.fail_over("test"));
    let resumed = first_write_after(&a.store, killed).await;
    wait_ready(&a).await;
    wait_ready(&b).await;
    let ready_again = killed.elapsed();
    // Traffic goes on until B has surely served uncached tokens again (its slot map refreshes on
    // its own next miss, a moment after A's).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    *stop.lock().unwrap() = true;
    let probes = task.await.unwrap();
    let (outages, span) = check_probes(&probes, killed - started, resumed);

    // No token lost: every token issued before the kill still works, on both replicas.
    for (i, t) in uncached.iter().enumerate() {
        let gate = if i % 2 == 0 { &a } else { &b };
        assert_eq!(get(&gate.url("/x"), &[("authorization", &bearer(t))]).await.status, 200, "token {i} lost");
    }
    // A revocation through A reaches B (which has the token cached) over the new master's
    // sharded channel.
    let seen = revocation_seen(&b, &a.store, &cached).await;
    println!(
        "cluster failover: cluster ok again {cluster_ok:?} after the kill; first write through tokengate {resumed:?}; \
         both replicas ready again {ready_again:?}; {outages} of {} uncached requests got 503 over {span:?}; cached \
         token 200 throughout; 99 tokens from before all valid; revocation seen on the other replica after {seen:?}",
        probes.len()
    );
}

/// The master frozen (SIGSTOP) instead of killed: requests time out rather than fail at once,
/// the sentinels fail over, and when the old master thaws (and is turned into a replica)
/// tokengate keeps writing to the new one: no write is lost to the old master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_sentinel_master_is_left_behind_when_it_thaws() {
    let _serial = one_at_a_time().await;
    let (mut set, _upstream, gate, cached) = sentinel_gate().await;

    let frozen = Instant::now();
    let promoted = tokio::task::block_in_place(|| set.freeze_master());
    assert_eq!(get(&gate.url("/x"), &[("authorization", &bearer(&cached))]).await.status, 200);
    let resumed = first_write_after(&gate.store, frozen).await;

    set.master.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !set.master.command(&["ROLE"]).contains("slave") {
        assert!(Instant::now() < deadline, "the sentinels did not turn the old master into a replica");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every write now lands on the new master, and reads see it.
    let after = issue(&gate.store, 20, "after-thaw").await;
    for t in &after {
        assert_eq!(get(&gate.url("/x"), &[("authorization", &bearer(t))]).await.status, 200);
    }
    // The old master (now a replica) converges on the new one's data: nothing was written to it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while set.replica.command(&["DBSIZE"]) != set.master.command(&["DBSIZE"]) {
        assert!(Instant::now() < deadline, "the old master does not follow the new one");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("frozen master: promoted {promoted:?} after the freeze, writes back after {resumed:?}");
}

/// A plain URL pointing at a replica: reads work, but readiness writes and reports READONLY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_on_a_replica_is_503() {
    let _serial = one_at_a_time().await;
    let set = tokio::task::block_in_place(SentinelSet::start);
    let upstream = Upstream::start().await;
    let gate = Gate::start(&support::gate::redis_config(&upstream.url(), &set.replica.url(), "")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ready = get(&gate.admin_url("/readyz"), &[]).await;
    assert_eq!(ready.status, 503);
    let error = ready.json()["store_error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("READONLY") || error.contains("ReadOnly") || error.contains("read only"), "{error}");
}

/// A plain URL pointing at a Cluster node that does not own the deployment's slot: PING works,
/// but readiness writes to the slot and reports the MOVED error instead of saying ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_on_a_cluster_node_that_does_not_own_the_slot_is_503() {
    let _serial = one_at_a_time().await;
    let cluster = tokio::task::block_in_place(RedisCluster::start);
    let owner = cluster.owner_of("test");
    let other = cluster.nodes.iter().enumerate().find(|(i, n)| *i != owner && n.command(&["ROLE"]).contains("master"));
    let (_, other) = other.expect("another master");
    let upstream = Upstream::start().await;
    let gate = Gate::start(&support::gate::redis_config(&upstream.url(), &other.url(), "")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ready = get(&gate.admin_url("/readyz"), &[]).await;
    assert_eq!(ready.status, 503);
    let error = ready.json()["store_error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("MOVED") || error.contains("Moved"), "{error}");
}

/// A store over `config` must not answer; returns the error.
async fn refused(config: &RedisConfig) -> String {
    let store = RedisStore::open(config, StoreOptions::default()).unwrap();
    match store.ping().await {
        Err(StoreError::Unavailable(e)) => e,
        other => panic!("expected the store to be unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_acl_mistakes_leave_the_store_unavailable_with_a_clear_error() {
    let _serial = one_at_a_time().await;
    let redis = TlsRedis::start("test");
    let good = redis.config("test");
    let store = RedisStore::open(&good, StoreOptions::default()).unwrap();
    store.ping().await.expect("the right settings work");

    let other_ca = Pki::generate();
    let mut wrong_ca = good.clone();
    wrong_ca.tls = Some(other_ca.client_tls(true));
    let mut no_client_cert = good.clone();
    no_client_cert.tls = Some(redis.pki.client_tls(false));
    let mut wrong_password = good.clone();
    wrong_password.password = Some(tokengate::config::Secret::new("not-the-password"));
    let mut plain = good.clone();
    plain.tls = None;
    plain.topology =
        tokengate::config::RedisTopology::Standalone { url: format!("redis://localhost:{}/", redis.tls_port) };
    // The server certificate names `localhost` only: the same server by address is refused.
    let mut wrong_name = good.clone();
    wrong_name.topology =
        tokengate::config::RedisTopology::Standalone { url: format!("rediss://127.0.0.1:{}/", redis.tls_port) };
    // The ACL user may only touch `{test}:*` keys: another prefix cannot write.
    let mut other_prefix = good.clone();
    other_prefix.key_prefix = "elsewhere".into();

    let cases = [
        ("unknown CA", wrong_ca, &["invalid peer certificate"][..]),
        ("no client certificate", no_client_cert, &["certificate", "alert", "closed", "reset"][..]),
        ("wrong password", wrong_password, &["WRONGPASS", "password"][..]),
        ("plain TCP to the TLS port", plain, &["closed", "reset", "timed out", "Connection"][..]),
        ("wrong host name", wrong_name, &["not valid for name"][..]),
        ("prefix outside the ACL", other_prefix, &["NOPERM", "permission"][..]),
    ];
    for (what, config, expected) in cases {
        let error = refused(&config).await;
        assert!(expected.iter().any(|e| error.contains(e)), "{what}: unexpected error {error:?}");
        assert!(!error.contains(&redis.password) && !error.contains("not-the-password"), "{what}: {error}");
        println!("{what}: {error}");
    }
}

/// The real binary with the password from TOKENGATE_REDIS_PASSWORD: a wrong one keeps it
/// unready (503 with the error), the logs say why, and neither password appears anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_passwords_never_reach_logs_or_readiness_bodies() {
    let _serial = one_at_a_time().await;
    let redis = TlsRedis::start("test");
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = redis.store_yaml("test");
    // Read the password from the environment instead of the file.
    let yaml: String = yaml.lines().filter(|l| !l.contains("password_file")).map(|l| format!("{l}\n")).collect();
    let admin_port = support::free_port();
    let config = dir.path().join("tokengate.yaml");
    std::fs::write(
        &config,
        format!(
            "upstream: {}\nlisten: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:{admin_port}\nlog:\n  format: json\n{yaml}",
            upstream.url()
        ),
    )
    .unwrap();
    let wrong = "wrong-redis-password-123";
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "debug")
        .env("TOKENGATE_REDIS_PASSWORD", wrong)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = logs.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let readyz = format!("http://127.0.0.1:{admin_port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", admin_port)).await.is_err() {
        assert!(Instant::now() < deadline, "the admin port never opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = loop {
        let reply = get(&readyz, &[]).await;
        if reply.status == 503 {
            break reply.json();
        }
        assert!(Instant::now() < deadline, "no readiness answer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    reader.join().unwrap();
    let logs = logs.lock().unwrap().join("\n");
    let body = body.to_string();
    assert!(body.contains("WRONGPASS") || body.contains("password"), "{body}");
    assert!(logs.contains("not reachable"), "the startup warning names the problem: {logs}");
    for text in [&logs, &body] {
        assert!(!text.contains(wrong) && !text.contains(&redis.password), "a Redis password leaked: {text}");
    }
}

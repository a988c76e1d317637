//! The invalidation channel and the store under faults, against a real `redis-server`
//! (issue 9, findings 4, 5 and the store deadline of 7).

use std::time::{Duration, Instant};

use tokengate::token::{Action, Principal, TokenKind};

use crate::client::{Proto, metric, metrics, request};
use crate::support::gate::{Gate, bearer, redis_config};
use crate::support::upstream::Upstream;
use crate::support::{RedisServer, minter, new_token};
use tokengate::store::Issue as _;

async fn ready(gate: &Gate) -> bool {
    request(Proto::H1, gate.admin, None, "GET", "/readyz", &[]).await.status == 200
}

async fn wait_ready(gate: &Gate) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready(gate).await {
        assert!(Instant::now() < deadline, "not ready within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn token(gate: &Gate) -> (String, tokengate::token::TokenId) {
    let alice = Principal {
        id: "alice".into(),
        display_name: "A".into(),
        org: None,
        roles: vec!["viewer".into()],
        limits: Default::default(),
        ..Default::default()
    };
    gate.store.put_principal(&alice).await.unwrap();
    let (secret, t) = minter().issue(gate.store.as_ref(), &new_token(TokenKind::Personal, "t", "alice")).await.unwrap();
    // Let the principal's and the token's own invalidations arrive before the first use: one
    // that lands after a fetch removes the entry (which is then never served stale).
    tokio::time::sleep(Duration::from_millis(300)).await;
    (bearer(secret.expose()), t.id)
}

/// Finding 4: on Redis 7.0 the keepalive PING's reply while subscribed (`["pong", ""]` in
/// RESP2) was taken for an error, so every replica resubscribed and flushed its whole cache
/// every few seconds, and /readyz blipped. Kept up for 30 s: no resubscription, no flush,
/// always ready, one store read per token per cache TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invalidation_channel_stays_up_for_30_seconds() {
    let redis = RedisServer::start();
    let upstream = Upstream::start().await;
    let extra = "cache:\n  ttl: 10s\n";
    let gate = Gate::start(&redis_config(&upstream.url(), &redis.url(), extra)).await;
    wait_ready(&gate).await;
    let (auth, _) = token(&gate).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = metrics(gate.admin).await;
    let started = Instant::now();
    let mut not_ready = 0;
    let mut requests = 0;
    while started.elapsed() < Duration::from_secs(30) {
        let a = request(Proto::H1, gate.addr, None, "GET", "/x", &[("authorization", &auth)]).await;
        assert_eq!(a.status, 200);
        requests += 1;
        if !ready(&gate).await {
            not_ready += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = metrics(gate.admin).await;
    let delta = |series: &str| metric(&after, series) - metric(&before, series);
    let flushes = delta(r#"tokengate_invalidations_total{kind="all"}"#);
    let token_reads = delta(r#"tokengate_cache_lookups_total{result="miss"}"#);
    println!("30 s, {requests} requests: {flushes} flushes, {token_reads} store reads, {not_ready} not-ready answers");
    assert_eq!(not_ready, 0, "/readyz answered 503 {not_ready} times");
    assert_eq!(flushes, 0.0, "the cache was flushed (the subscription was re-established)");
    // One read per token (and one for its owner) per 10 s TTL: at most 4 windows in 30 s.
    assert!(token_reads <= 8.0, "{token_reads} store reads in 30 s with a 10 s TTL");
}

/// Finding 5: a replica whose invalidation channel is down (and cannot come back) must not
/// trust a record for the full TTL: a revoked token is refused within 2 s, measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_without_invalidations_refuses_a_revoked_token_within_two_seconds() {
    let redis = RedisServer::start();
    // A user whose SUBSCRIBE can be taken away while its other commands keep working.
    let reply = redis.command(&["ACL", "SETUSER", "tg", "on", ">secret-pw", "~*", "&*", "+@all"]);
    assert!(reply.starts_with("+OK"), "{reply}");
    let url = format!("redis://tg:secret-pw@127.0.0.1:{}/", redis.port);
    let upstream = Upstream::start().await;
    let replica = Gate::start(&redis_config(&upstream.url(), &url, "cache:\n  ttl: 30s\n")).await;
    wait_ready(&replica).await;
    let (auth, id) = token(&replica).await;
    let headers = [("authorization", auth.as_str())];
    let get = || request(Proto::H1, replica.addr, None, "GET", "/x", &headers);
    assert_eq!(get().await.status, 200);

    // Sever the channel for good: no more SUBSCRIBE for this user, and its subscription killed.
    assert!(redis.command(&["ACL", "SETUSER", "tg", "-subscribe"]).starts_with("+OK"));
    assert!(redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]).starts_with(':'));
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready(&replica).await {
        assert!(Instant::now() < deadline, "the replica never noticed the lost channel");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Traffic goes on; the record is re-read now and then.
    for _ in 0..5 {
        assert_eq!(get().await.status, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Revoked elsewhere (the invalidation is published, but this replica cannot hear it).
    replica.store.transition(&id, Action::Revoke, "op").await.unwrap();
    let revoked = Instant::now();
    loop {
        if get().await.status == 401 {
            break;
        }
        assert!(revoked.elapsed() < Duration::from_secs(5), "still accepted 5 s after revocation");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let window = revoked.elapsed();
    println!("revoked token accepted for {window:?} with the invalidation channel down");
    assert!(window < Duration::from_secs(2), "accepted for {window:?} after revocation");
}

/// Finding 7: with Redis frozen (SIGSTOP: connections open, no answers), a request whose token
/// is cached must not wait a store timeout each: one deadline, then stale answers at once; an
/// uncached token gets 503 with Retry-After, never 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_costs_one_deadline_not_one_per_request() {
    let redis = RedisServer::start();
    let upstream = Upstream::start().await;
    let extra = "cache:\n  ttl: 300ms\n  ttl_without_invalidations: 300ms\n  lookup_timeout: 400ms\n";
    let gate = Gate::start(&redis_config(&upstream.url(), &redis.url(), extra)).await;
    wait_ready(&gate).await;
    let (auth, _) = token(&gate).await;
    assert_eq!(request(Proto::H1, gate.addr, None, "GET", "/x", &[("authorization", &auth)]).await.status, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;

    redis.pause();
    let started = Instant::now();
    for _ in 0..10 {
        let a = request(Proto::H1, gate.addr, None, "GET", "/x", &[("authorization", &auth)]).await;
        assert_eq!(a.status, 200, "the cached record is served while Redis is frozen");
    }
    let took = started.elapsed();
    let (_, uncached) = tokengate::token::TokenFormat::default().generate(TokenKind::Personal);
    let a = request(Proto::H1, gate.addr, None, "GET", "/x", &[("authorization", &bearer(uncached.expose()))]).await;
    assert_eq!(a.status, 503, "an uncached token while the store is frozen");
    assert_eq!(a.headers["retry-after"], "2");
    redis.resume();
    println!("10 stale-served requests with Redis frozen took {took:?}");
    // One 400 ms deadline for the first request; the other nine at once (without the backoff,
    // ten deadlines: 4 s).
    assert!(took < Duration::from_millis(2000), "{took:?}");
}

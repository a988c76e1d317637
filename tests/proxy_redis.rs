//! The data path on Redis: two replicas sharing one store, and Redis going away mid-run.

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use tokengate::token::{Action, TokenKind};

use support::gate::{Gate, bearer, get, redis_config};
use support::upstream::Upstream;
use support::{RedisServer, minter, new_token};
use tokengate::store::Issue as _;

async fn wait_ready(gate: &Gate) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&gate.admin_url("/readyz"), &[]).await.status != 200 {
        assert!(Instant::now() < deadline, "gate never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Revoking through one replica is seen by the other within 1 s (measured: the delay from the
/// revoke call returning to the other replica's first 401, probing every millisecond).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_replica_is_refused_by_the_other() {
    let redis = RedisServer::start();
    let upstream = Upstream::start().await;
    let config = redis_config(&upstream.url(), &redis.url(), "");
    let a = Gate::start(&config).await;
    let b = Gate::start(&config).await;
    wait_ready(&a).await;
    wait_ready(&b).await;

    let mut delays = Vec::new();
    for _ in 0..20 {
        let (secret, token) =
            minter().issue(a.store.as_ref(), &new_token(TokenKind::Organization, "ci", "acme")).await.unwrap();
        let auth = bearer(secret.expose());
        // B has the token cached (and would keep using it for the 30 s TTL without invalidation).
        assert_eq!(get(&b.url("/x"), &[("authorization", &auth)]).await.status, 200);
        assert_eq!(get(&b.url("/x"), &[("authorization", &auth)]).await.status, 200);

        a.store.transition(&token.id, Action::Revoke, "op").await.unwrap();
        let revoked_at = Instant::now();
        loop {
            if get(&b.url("/x"), &[("authorization", &auth)]).await.status == StatusCode::UNAUTHORIZED {
                break;
            }
            assert!(revoked_at.elapsed() < Duration::from_secs(1), "replica B still accepts a revoked token after 1 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        delays.push(revoked_at.elapsed());
    }
    delays.sort();
    let (p50, p99, max) = (percentile(&delays, 0.5), percentile(&delays, 0.99), delays[delays.len() - 1]);
    println!("revocation propagation over {} revocations: p50 {p50:?}, p99 {p99:?}, max {max:?}", delays.len());
    assert!(max < Duration::from_secs(1));
}

/// Redis stops mid-run: cached tokens keep working, uncached ones get 503 with Retry-After,
/// readiness reports the outage; when Redis is back everything recovers without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopping_mid_run_degrades_explicitly_and_recovers() {
    let mut redis = RedisServer::start();
    let upstream = Upstream::start().await;
    let gate = Gate::start(&redis_config(&upstream.url(), &redis.url(), "")).await;
    wait_ready(&gate).await;
    let (cached, _) =
        minter().issue(gate.store.as_ref(), &new_token(TokenKind::Organization, "a", "acme")).await.unwrap();
    let (uncached, _) =
        minter().issue(gate.store.as_ref(), &new_token(TokenKind::Organization, "b", "acme")).await.unwrap();
    let cached = bearer(cached.expose());
    let uncached = bearer(uncached.expose());
    assert_eq!(get(&gate.url("/x"), &[("authorization", &cached)]).await.status, 200);

    redis.kill();
    let r = get(&gate.url("/x"), &[("authorization", &uncached)]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "never 401, never a silent pass");
    assert_eq!(r.headers["retry-after"], "2");
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    assert_eq!(get(&gate.url("/x"), &[("authorization", &cached)]).await.status, 200, "cached token keeps working");
    let ready = get(&gate.admin_url("/readyz"), &[]).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["status"], "unavailable");
    // Garbage is still refused without the store.
    assert_eq!(get(&gate.url("/x"), &[("authorization", "Bearer garbage")]).await.status, 401);

    redis.restart();
    wait_ready(&gate).await;
    assert_eq!(get(&gate.url("/x"), &[("authorization", &uncached)]).await.status, 200, "recovered without a restart");
    let metrics = String::from_utf8(get(&gate.admin_url("/metrics"), &[]).await.body.to_vec()).unwrap();
    assert!(metrics.contains("tokengate_requests_total{outcome=\"store_unavailable\"} 1"), "{metrics}");
}

/// The admin API answers 503 with Retry-After while Redis is down, and recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_reports_a_store_outage_as_503() {
    let mut redis = RedisServer::start();
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "operator-key-0123456789\n").unwrap();
    let gate = Gate::start(&redis_config(
        &upstream.url(),
        &redis.url(),
        &format!("admin:\n  keys_file: {}\n", keys.display()),
    ))
    .await;
    wait_ready(&gate).await;
    let auth = bearer("operator-key-0123456789");
    assert_eq!(get(&gate.admin_url("/v1/tokens"), &[("authorization", &auth)]).await.status, 200);
    redis.kill();
    let r = get(&gate.admin_url("/v1/tokens"), &[("authorization", &auth)]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers["retry-after"], "2");
    assert_eq!(r.json()["error"]["code"], "unavailable");
    redis.restart();
    wait_ready(&gate).await;
    assert_eq!(get(&gate.admin_url("/v1/tokens"), &[("authorization", &auth)]).await.status, 200);
}

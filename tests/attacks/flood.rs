//! A flood of random well-formed tokens (issue 9, finding 6): each has a valid checksum, so
//! each would cost a store read. Failed authentications are limited per client address (429
//! with Retry-After once the address's budget is spent), so the store sees a bounded number of
//! reads; a real token keeps working throughout, from the flooding address (once cached) and
//! from any other.

use std::net::IpAddr;
use std::time::Duration;

use tokengate::token::TokenFormat;
use tokengate::token::{Principal, TokenKind};

use crate::client::{Proto, metric, metrics, request};
use crate::support::gate::{Gate, bearer, embedded_config};
use crate::support::upstream::Upstream;
use crate::support::{minter, new_token};
use tokengate::store::Issue as _;

const FLOOD: usize = 3000;
const CONCURRENCY: usize = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_random_tokens_is_throttled_and_real_tokens_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    let extra = "proxy:\n  failed_auth:\n    burst: 20\n    refill_interval: 10s\n";
    let gate = Gate::start(&embedded_config(&upstream.url(), dir.path(), extra)).await;
    let alice = Principal {
        id: "alice".into(),
        display_name: "A".into(),
        org: None,
        roles: vec!["viewer".into()],
        limits: Default::default(),
        ..Default::default()
    };
    gate.store.put_principal(&alice).await.unwrap();
    let (cached, _) = minter().issue(gate.store.as_ref(), &new_token(TokenKind::Personal, "c", "alice")).await.unwrap();
    let (fresh, _) = minter().issue(gate.store.as_ref(), &new_token(TokenKind::Personal, "f", "alice")).await.unwrap();
    let (cached, fresh) = (bearer(cached.expose()), bearer(fresh.expose()));
    let attacker: IpAddr = "127.0.0.1".parse().unwrap();
    let bystander: IpAddr = "127.0.0.2".parse().unwrap();
    // The attacker's address has used this token before: it is cached as valid.
    let a = request(Proto::H1, gate.addr, Some(attacker), "GET", "/x", &[("authorization", &cached)]).await;
    assert_eq!(a.status, 200);
    let misses_before = metric(&metrics(gate.admin).await, r#"tokengate_cache_lookups_total{result="miss"}"#);

    let addr = gate.addr;
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            tokio::spawn(async move {
                let format = TokenFormat::default();
                let mut seen = (0usize, 0usize);
                for _ in 0..FLOOD / CONCURRENCY {
                    let (_, secret) = format.generate(TokenKind::Personal);
                    let auth = bearer(secret.expose());
                    let a = request(Proto::H1, addr, Some(attacker), "GET", "/x", &[("authorization", &auth)]).await;
                    match a.status.as_u16() {
                        401 => seen.0 += 1,
                        429 => {
                            let retry: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
                            assert!((1..=10).contains(&retry), "Retry-After {retry}");
                            assert_eq!(a.json()["error"], "too_many_requests");
                            seen.1 += 1;
                        }
                        other => panic!("flood request answered {other}: {:?}", a.body),
                    }
                }
                seen
            })
        })
        .collect();
    // During the flood: the cached token from the flooding address, and an uncached token from
    // another address, both pass.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let a = request(Proto::H1, gate.addr, Some(attacker), "GET", "/x", &[("authorization", &cached)]).await;
    assert_eq!(a.status, 200, "a cached valid token from the flooding address");
    let a = request(Proto::H2, gate.addr, Some(bystander), "GET", "/x", &[("authorization", &fresh)]).await;
    assert_eq!(a.status, 200, "an uncached valid token from another address");

    let (mut refused, mut throttled) = (0, 0);
    for w in workers {
        let (r, t) = w.await.unwrap();
        refused += r;
        throttled += t;
    }
    let page = metrics(gate.admin).await;
    let store_reads = metric(&page, r#"tokengate_cache_lookups_total{result="miss"}"#) - misses_before;
    println!("flood of {FLOOD}: {refused} x 401, {throttled} x 429, {store_reads} store reads");
    assert!(refused >= 20, "the burst is answered 401");
    // The burst, plus the lookups already past the check when the budget ran out, plus the
    // bystander's one.
    assert!(store_reads <= (20 + CONCURRENCY + 1) as f64, "{store_reads} store reads for {FLOOD} random tokens");
    assert!(metric(&page, r#"tokengate_requests_total{outcome="too_many_failures"}"#) >= throttled as f64);
    // Still limited afterwards, with the address's own budget.
    let (_, secret) = TokenFormat::default().generate(TokenKind::Personal);
    let a = request(Proto::H1, gate.addr, Some(attacker), "GET", "/x", &[("authorization", &bearer(secret.expose()))])
        .await;
    assert_eq!(a.status, 429);
}

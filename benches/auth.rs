//! Micro benchmarks of the request path, each beside a reference measured in the same run, so
//! the figures read as ratios rather than absolute times (`scripts/bench-micro.sh` prints them):
//!
//! | group              | subject                                   | reference                         |
//! |--------------------|-------------------------------------------|-----------------------------------|
//! | `parse`            | token parse + checksum                    | CRC32 of the same bytes           |
//! | `digest`           | digest + constant-time compare            | plain SHA-256 of the same bytes   |
//! | `sanitize`         | hop-by-hop + identity strip + inject       | cloning the header map            |
//! | `auth_cache_hit`   | the whole authentication on a cache hit   | a moka cache get                  |

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::Digest;
use tokengate::auth::Authenticator;
use tokengate::auth::cache::AuthCache;
use tokengate::clock::Timestamp;
use tokengate::config::CacheConfig;
use tokengate::metrics::CacheMetrics;
use tokengate::proxy::headers::{self, Identity, IdentityHeaders};
use tokengate::store::Issue as _;
use tokengate::store::embedded::EmbeddedStore;
use tokengate::store::{Store, StoreOptions};
use tokengate::token::TokenFormat;
use tokengate::token::digest::Hasher;
use tokengate::token::mint::{Minter, NewToken};
use tokengate::token::{Principal, TokenKind};

fn parse(c: &mut Criterion) {
    let format = TokenFormat::default();
    let (_, token) = format.generate(TokenKind::Personal);
    let raw = token.expose().to_string();
    let mut g = c.benchmark_group("parse");
    g.bench_function("subject", |b| b.iter(|| format.parse(black_box(&raw)).unwrap().id));
    g.bench_function("reference", |b| b.iter(|| crc32fast::hash(black_box(raw.as_bytes()))));
    g.finish();
}

fn digest(c: &mut Criterion) {
    let hasher = Hasher::new(None);
    let (_, token) = TokenFormat::default().generate(TokenKind::Personal);
    let raw = token.expose().to_string();
    let stored = hasher.digest(&raw);
    let mut g = c.benchmark_group("digest");
    g.bench_function("subject", |b| b.iter(|| hasher.verify(black_box(&raw), &stored)));
    g.bench_function("reference", |b| b.iter(|| sha2::Sha256::digest(black_box(raw.as_bytes()))));
    g.finish();
}

fn request_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "api.example.com"),
        ("user-agent", "curl/8.0"),
        ("accept", "*/*"),
        ("authorization", "Bearer tgp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("x-request-id", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("content-type", "application/json"),
        ("x-auth-subject", "spoofed"),
        ("connection", "keep-alive"),
    ] {
        h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

fn sanitize(c: &mut Criterion) {
    let identity = IdentityHeaders::new("X-Auth-");
    let base = request_headers();
    let id = tokengate::token::TokenId::generate();
    let scopes = vec!["env:prod".parse().unwrap()];
    let roles = ["viewer", "developer"];
    let mut g = c.benchmark_group("sanitize");
    g.bench_function("subject", |b| {
        b.iter(|| {
            let mut h = base.clone();
            headers::remove_hop_by_hop(&mut h);
            identity.strip(&mut h);
            h.remove(http::header::AUTHORIZATION);
            identity.inject(
                &mut h,
                &Identity {
                    subject: "alice",
                    token_id: &id,
                    kind: TokenKind::Personal,
                    org: Some("acme"),
                    roles: &roles,
                    scopes: &scopes,
                },
            );
            h
        })
    });
    g.bench_function("reference", |b| b.iter(|| black_box(&base).clone()));
    g.finish();
}

fn auth_cache_hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (auth, raw, cache) = rt.block_on(async {
        let store: Store =
            Arc::new(EmbeddedStore::open(&dir.path().join("b.redb"), StoreOptions::default()).await.unwrap());
        let alice = Principal {
            id: "alice".into(),
            display_name: "A".into(),
            org: None,
            roles: vec!["viewer".into()],
            limits: Default::default(),
            ..Default::default()
        };
        store.put_principal(&alice).await.unwrap();
        let minter = Minter::new(TokenFormat::default(), Hasher::new(None));
        let req = NewToken {
            kind: TokenKind::Personal,
            name: "bench".into(),
            owner: "alice".into(),
            created_by: "alice".into(),
            lifetime: Duration::from_secs(86_400),
            roles: vec!["viewer".into()],
            scopes: vec![],
            limits: Default::default(),
        };
        let (secret, _) = minter.issue(store.as_ref(), &req).await.unwrap();
        let config = CacheConfig {
            ttl: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(5),
            max_staleness: Duration::from_secs(3600),
            max_entries: 1000,
            ..CacheConfig::default()
        };
        let cache = AuthCache::new(store, config, CacheMetrics::new(&prometheus::Registry::new()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let auth = Authenticator::new(TokenFormat::default(), Hasher::new(None), cache.clone());
        let raw = secret.expose().to_string();
        auth.authenticate(&raw, Timestamp::now(), || Ok(())).await.unwrap();
        (auth, raw, cache)
    });
    let id = TokenFormat::default().parse(&raw).unwrap().id;
    let mut g = c.benchmark_group("auth_cache_hit");
    g.bench_function("subject", |b| {
        b.iter(|| rt.block_on(auth.authenticate(black_box(&raw), Timestamp::now(), || Ok(()))).unwrap())
    });
    g.bench_function("reference", |b| b.iter(|| rt.block_on(cache.token(black_box(&id))).unwrap()));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = parse, digest, sanitize, auth_cache_hit
}
criterion_main!(benches);

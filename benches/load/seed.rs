//! Fills a fresh Redis with the benchmark's tokens through tokengate's own store code, writes
//! their secrets to a file for wrk, and measures what they cost Redis.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::{StreamExt, TryStreamExt};
use tokengate::config::{RedisConfig, StoreConfig};
use tokengate::store::Issue as _;
use tokengate::store::{self, Store, StoreOptions};
use tokengate::token::TokenFormat;
use tokengate::token::digest::Hasher;
use tokengate::token::limits::{MAX_RATE_REQUESTS, RateLimit, TokenLimits};
use tokengate::token::mint::{Minter, NewToken};
use tokengate::token::{Action, Principal, Token, TokenKind};

/// Creations in flight at once (the store's connection pipelines them).
const CONCURRENCY: usize = 256;

/// The principal every benchmark token belongs to.
pub const OWNER: &str = "bench";

/// What the benchmark needs from the store.
pub struct Seeded {
    /// Secrets of the bulk tokens, one per line, in creation order.
    pub tokens_file: std::path::PathBuf,
    pub count: usize,
    /// Redis `used_memory` growth per bulk token.
    pub bytes_per_token: f64,
    pub seconds: f64,
    /// A valid token, for the cache-hit scenarios.
    pub valid: String,
    /// A valid token with a rate limit far above any load (never refused), for the cost of
    /// metering on the cache-hit path.
    pub limited: String,
    /// A revoked token.
    pub revoked: String,
    /// Well-formed, correctly checksummed, never stored.
    pub unknown: String,
    /// Tokens for the revocation propagation test: (id, secret).
    pub to_revoke: Vec<(String, String)>,
}

pub fn redis_config(url: &str) -> StoreConfig {
    StoreConfig::Redis(Box::new(RedisConfig {
        connect_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(10),
        ..RedisConfig::standalone(url, "tokengate")
    }))
}

fn request(name: String) -> NewToken {
    NewToken {
        kind: TokenKind::Personal,
        name,
        owner: OWNER.into(),
        created_by: OWNER.into(),
        lifetime: Duration::from_secs(90 * 86_400),
        roles: vec!["viewer".into()],
        scopes: vec![],
        limits: Default::default(),
    }
}

async fn used_memory(url: &str) -> Result<u64> {
    let mut conn = redis::Client::open(url)?.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO").arg("memory").query_async(&mut conn).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO memory without used_memory")
}

/// Creates `count` tokens (plus the few special ones) in the Redis at `url`.
pub async fn seed(url: &str, count: usize, revocations: usize, dir: &Path) -> Result<Seeded> {
    let store: Store = store::open(&redis_config(url), StoreOptions::default()).await?;
    let minter = Minter::new(TokenFormat::default(), Hasher::new(None));
    let owner = Principal {
        id: OWNER.into(),
        display_name: "Benchmark".into(),
        org: None,
        roles: vec!["viewer".into()],
        limits: Default::default(),
        ..Default::default()
    };
    store.put_principal(&owner).await?;

    let issue = |name: String| {
        let (store, minter) = (store.clone(), minter.clone());
        async move { minter.issue(store.as_ref(), &request(name)).await }
    };
    let (valid, _) = issue("bench-valid".into()).await?;
    let mut metered = request("bench-limited".into());
    metered.limits = TokenLimits {
        rate: Some(RateLimit { requests: MAX_RATE_REQUESTS, window_secs: 1, burst: None }),
        ..Default::default()
    };
    let (limited, _) = minter.issue(store.as_ref(), &metered).await?;
    let (revoked, token) = issue("bench-revoked".into()).await?;
    store.transition(&token.id, Action::Revoke, "bench").await?;
    let (_, unknown) = TokenFormat::default().generate(TokenKind::Personal);
    let mut to_revoke = Vec::with_capacity(revocations);
    for i in 0..revocations {
        let (secret, token): (_, Token) = issue(format!("bench-revoke-{i}")).await?;
        to_revoke.push((token.id.to_string(), secret.expose().to_string()));
    }

    let before = used_memory(url).await?;
    let started = Instant::now();
    let tokens_file = dir.join("tokens.txt");
    let mut out = BufWriter::new(std::fs::File::create(&tokens_file)?);
    let mut created = futures_util::stream::iter(0..count)
        .map(|i| issue(format!("bench-{i:07}")))
        .buffered(CONCURRENCY)
        .map_ok(|(secret, _)| secret);
    let mut done = 0usize;
    while let Some(secret) = created.try_next().await? {
        writeln!(out, "{}", secret.expose())?;
        done += 1;
        if done.is_multiple_of(100_000) {
            eprintln!("  seeded {done} of {count} tokens ({:.0} s)", started.elapsed().as_secs_f64());
        }
    }
    out.flush()?;
    let seconds = started.elapsed().as_secs_f64();
    let after = used_memory(url).await?;
    Ok(Seeded {
        tokens_file,
        count,
        bytes_per_token: (after.saturating_sub(before)) as f64 / count as f64,
        seconds,
        valid: valid.expose().to_string(),
        limited: limited.expose().to_string(),
        revoked: revoked.expose().to_string(),
        unknown: unknown.expose().to_string(),
        to_revoke,
    })
}

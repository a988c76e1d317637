//! `store.redis`: where Redis is (one URL, Sentinel or Cluster), the credentials, TLS files and
//! protocol. Certificate files are read and parsed here so that a bad one fails at startup and
//! in `check-config`, naming the field.

use std::collections::BTreeMap;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::Ctx;
use crate::config::raw::{RawRedis, RawRedisTls, RawSentinel};
use crate::config::redis::{RedisNode, RedisProtocol, RedisTls, RedisTopology, SentinelAuth};
use crate::config::secret::{self, REDIS_PASSWORD_ENV, REDIS_SENTINEL_PASSWORD_ENV, Secret};
use crate::config::{ConfigError, RedisConfig, defaults, redact_url};

const SENTINEL_PORT: u16 = 26379;
const REDIS_PORT: u16 = 6379;

pub(super) fn validate_redis(
    raw: RawRedis,
    env: &BTreeMap<String, String>,
    ctx: &Ctx,
) -> Result<RedisConfig, ConfigError> {
    let mut username = raw.username;
    if username.as_deref().is_some_and(str::is_empty) {
        return Err(ctx.error("store.redis.username", "must not be empty"));
    }
    let mut password =
        secret::env_or_file(REDIS_PASSWORD_ENV, "store.redis.password_file", raw.password_file.as_deref(), env, ctx)?;
    let mut tls_on = raw.tls.as_ref().and_then(|t| t.enabled).unwrap_or(false);

    let topology = match (raw.url, raw.sentinel, raw.cluster) {
        (Some(url), None, None) => match url.split_once("://").map(|(scheme, _)| scheme) {
            Some(scheme @ ("redis+sentinel" | "rediss+sentinel")) => {
                tls_on |= scheme == "rediss+sentinel";
                sentinel_from_url(&url, &mut username, &mut password, ctx)?
            }
            _ => {
                let invalid = |e: &dyn std::fmt::Display| {
                    ctx.error("store.redis.url", format!("invalid Redis URL {}: {e}", redact_url(&url)))
                };
                let parsed = url::Url::parse(&url).map_err(|e| invalid(&e))?;
                redis::Client::open(url.as_str()).map_err(|e| invalid(&e))?;
                let url_tls = parsed.scheme() == "rediss";
                if url_tls && raw.tls.as_ref().and_then(|t| t.enabled) == Some(false) {
                    return Err(ctx.error("store.redis.tls.enabled", "the URL says rediss://, which is TLS"));
                }
                if tls_on && !url_tls {
                    return Err(ctx.error(
                        "store.redis.tls.enabled",
                        format!("the URL says {}://; use rediss:// for TLS", parsed.scheme()),
                    ));
                }
                tls_on = url_tls;
                take_url_credentials(&parsed, &mut username, &mut password, ctx)?;
                RedisTopology::Standalone { url: strip_credentials(parsed) }
            }
        },
        (None, Some(s), None) => sentinel(s, env, ctx)?,
        (None, None, Some(c)) => {
            let nodes = nodes("store.redis.cluster.nodes", c.nodes.unwrap_or_default(), REDIS_PORT, ctx)?;
            RedisTopology::Cluster { nodes }
        }
        (None, None, None) => {
            return Err(ctx.error(
                "store.redis",
                "set one of `store.redis.url`, `store.redis.sentinel` or `store.redis.cluster`",
            ));
        }
        _ => {
            return Err(ctx.error(
                "store.redis",
                "set only one of `store.redis.url`, `store.redis.sentinel` and `store.redis.cluster`",
            ));
        }
    };

    let tls = tls(raw.tls.unwrap_or_default(), tls_on, ctx)?;
    let protocol = match raw.protocol.as_deref() {
        None | Some("resp3") => RedisProtocol::Resp3,
        Some("resp2") => RedisProtocol::Resp2,
        Some(other) => {
            return Err(ctx.error("store.redis.protocol", format!("unknown protocol {other:?}: resp3 or resp2")));
        }
    };
    if protocol == RedisProtocol::Resp2 && matches!(topology, RedisTopology::Cluster { .. }) {
        return Err(
            ctx.error("store.redis.protocol", "Redis Cluster needs resp3 (invalidations travel over sharded pub/sub)")
        );
    }
    let key_prefix = raw.key_prefix.unwrap_or_else(|| defaults::REDIS_KEY_PREFIX.to_string());
    let ok = (1..=64).contains(&key_prefix.len())
        && key_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if !ok {
        return Err(ctx.error(
            "store.redis.key_prefix",
            format!("invalid prefix {key_prefix:?}: 1-64 letters, digits, '-', '_', '.' or ':'"),
        ));
    }
    Ok(RedisConfig {
        topology,
        username,
        password,
        tls,
        protocol,
        key_prefix,
        connect_timeout: ctx.duration(
            "store.redis.connect_timeout",
            raw.connect_timeout,
            defaults::REDIS_CONNECT_TIMEOUT,
        )?,
        command_timeout: ctx.duration(
            "store.redis.command_timeout",
            raw.command_timeout,
            defaults::REDIS_COMMAND_TIMEOUT,
        )?,
    })
}

/// Moves a URL's user and password into the config, refusing a second source for either.
fn take_url_credentials(
    url: &url::Url,
    username: &mut Option<String>,
    password: &mut Option<Secret>,
    ctx: &Ctx,
) -> Result<(), ConfigError> {
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    if !url.username().is_empty() {
        if username.is_some() {
            return Err(ctx.error("store.redis.username", "the URL names a user too; set it in one place"));
        }
        *username = Some(decode(url.username()));
    }
    if let Some(p) = url.password() {
        if password.is_some() {
            return Err(ctx.error(
                "store.redis.password_file",
                format!(
                    "the URL has a password too; set it in one place (the file or {REDIS_PASSWORD_ENV} are preferred)"
                ),
            ));
        }
        *password = Some(Secret::new(decode(p)));
    }
    Ok(())
}

/// The URL without user and password (they are passed separately, so no log line can show them).
fn strip_credentials(mut url: url::Url) -> String {
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

fn sentinel(raw: RawSentinel, env: &BTreeMap<String, String>, ctx: &Ctx) -> Result<RedisTopology, ConfigError> {
    let master = raw.master.unwrap_or_default();
    if master.trim().is_empty() {
        return Err(ctx.error("store.redis.sentinel.master", "required: the name the sentinels monitor"));
    }
    let db = raw.db.unwrap_or(0);
    if db < 0 {
        return Err(ctx.error("store.redis.sentinel.db", "must be zero or more"));
    }
    let nodes = nodes("store.redis.sentinel.nodes", raw.nodes.unwrap_or_default(), SENTINEL_PORT, ctx)?;
    let password = secret::env_or_file(
        REDIS_SENTINEL_PASSWORD_ENV,
        "store.redis.sentinel.password_file",
        raw.password_file.as_deref(),
        env,
        ctx,
    )?;
    Ok(RedisTopology::Sentinel { master, nodes, db, auth: SentinelAuth { username: raw.username, password } })
}

/// `redis+sentinel://[user[:password]@]host[:port][,host[:port]...]/master[/db]` (the `url`
/// crate cannot parse a host list, so this splits it by hand). The credentials are the data
/// nodes'; sentinels that need their own use the `store.redis.sentinel` form.
fn sentinel_from_url(
    url: &str,
    username: &mut Option<String>,
    password: &mut Option<Secret>,
    ctx: &Ctx,
) -> Result<RedisTopology, ConfigError> {
    let field = "store.redis.url";
    let shape = "expected redis+sentinel://[user[:password]@]host[:port][,host[:port]...]/master[/db]";
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or_default();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let hosts = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            // Reuse the URL parser for the user-info part alone.
            let probe = url::Url::parse(&format!("redis://{userinfo}@h/"))
                .map_err(|_| ctx.error(field, format!("invalid user or password in {}", redact_url(url))))?;
            take_url_credentials(&probe, username, password, ctx)?;
            hosts
        }
        None => authority,
    };
    let nodes = nodes(field, hosts.split(',').map(String::from).collect(), SENTINEL_PORT, ctx)?;
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let master = segments.next().ok_or_else(|| ctx.error(field, format!("no master name: {shape}")))?;
    let db = match segments.next() {
        None => 0,
        Some(d) => d
            .parse::<i64>()
            .ok()
            .filter(|d| *d >= 0)
            .ok_or_else(|| ctx.error(field, format!("invalid database {d:?}: {shape}")))?,
    };
    if segments.next().is_some() || path.contains(['?', '#']) {
        return Err(ctx.error(field, format!("unexpected text after the database: {shape}")));
    }
    let master = percent_encoding::percent_decode_str(master).decode_utf8_lossy().into_owned();
    Ok(RedisTopology::Sentinel { master, nodes, db, auth: SentinelAuth::default() })
}

/// A non-empty list of `host[:port]` (IPv6 in brackets), `default_port` when none is given.
fn nodes(field: &str, raw: Vec<String>, default_port: u16, ctx: &Ctx) -> Result<Vec<RedisNode>, ConfigError> {
    if raw.is_empty() {
        return Err(ctx.error(field, "list at least one host:port"));
    }
    raw.iter()
        .enumerate()
        .map(|(i, n)| {
            let bad = || ctx.error(&format!("{field}[{i}]"), format!("invalid address {n:?}: expected host:port"));
            let n = n.trim();
            let (host, port) = if let Some(rest) = n.strip_prefix('[') {
                let (host, after) = rest.split_once(']').ok_or_else(bad)?;
                (host, after.strip_prefix(':'))
            } else {
                match n.rsplit_once(':') {
                    Some((h, _)) if h.contains(':') => return Err(bad()),
                    Some((h, p)) => (h, Some(p)),
                    None => (n, None),
                }
            };
            let port = match port {
                None => default_port,
                Some(p) => p.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?,
            };
            let host_ok = !host.is_empty()
                && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'));
            if !host_ok {
                return Err(bad());
            }
            Ok(RedisNode { host: host.to_string(), port })
        })
        .collect()
}

fn tls(raw: RawRedisTls, on: bool, ctx: &Ctx) -> Result<Option<RedisTls>, ConfigError> {
    if !on {
        for (field, set) in [("ca_file", &raw.ca_file), ("cert_file", &raw.cert_file), ("key_file", &raw.key_file)] {
            if set.is_some() {
                return Err(ctx.error(
                    &format!("store.redis.tls.{field}"),
                    "TLS is off: use a rediss:// URL, or set `store.redis.tls.enabled: true` for Sentinel and Cluster",
                ));
            }
        }
        return Ok(None);
    }
    let read = |field: &str, path: &str| {
        std::fs::read(path)
            .map_err(|e| ctx.error(&format!("store.redis.tls.{field}"), format!("cannot read {path}: {e}")))
    };
    let ca_pem = match &raw.ca_file {
        None => None,
        Some(path) => {
            let pem = read("ca_file", path)?;
            let certs = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>();
            if !certs.is_ok_and(|c| !c.is_empty()) {
                return Err(ctx.error("store.redis.tls.ca_file", format!("{path} holds no PEM certificate")));
            }
            Some(pem)
        }
    };
    let client = match (&raw.cert_file, &raw.key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let cert_pem = read("cert_file", cert)?;
            let certs = CertificateDer::pem_slice_iter(&cert_pem).collect::<Result<Vec<_>, _>>();
            if !certs.is_ok_and(|c| !c.is_empty()) {
                return Err(ctx.error("store.redis.tls.cert_file", format!("{cert} holds no PEM certificate")));
            }
            let key_pem = read("key_file", key)?;
            if PrivateKeyDer::from_pem_slice(&key_pem).is_err() {
                return Err(ctx.error("store.redis.tls.key_file", format!("{key} holds no PEM private key")));
            }
            let key_pem = String::from_utf8(key_pem)
                .map_err(|_| ctx.error("store.redis.tls.key_file", format!("{key} is not PEM text")))?;
            Some((cert_pem, Secret::new(key_pem)))
        }
        (Some(_), None) => return Err(ctx.error("store.redis.tls.key_file", "required with `cert_file`")),
        (None, Some(_)) => return Err(ctx.error("store.redis.tls.cert_file", "required with `key_file`")),
    };
    Ok(Some(RedisTls { ca_pem, client }))
}

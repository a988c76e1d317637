//! Configuration: one YAML file plus `TOKENGATE_...` environment overrides.
//!
//! Loading has two stages. [`raw`] parses the YAML (after [`env`] overrides are applied to the
//! parsed tree) into structs that check shape only; [`validate`] turns those into the typed
//! [`Config`] the runtime uses, applying defaults. Every error names the field it is about, in
//! dotted form (`store.redis.connect_timeout`), and the variable when an override set it.
//! `config/tokengate.yaml` documents every option.

mod env;
mod raw;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::policy::routes::{RouteTable, RuleSpec};
use crate::token::TokenFormat;
use crate::token::TokenKind;
use crate::token::digest::Pepper;
use raw::{DurationText, RawConfig};

/// The environment variable holding the pepper itself (alternative to `tokens.pepper_file`).
pub const PEPPER_ENV: &str = "TOKENGATE_PEPPER";
/// Comma-separated operator keys (alternative to `admin.keys_file`).
pub const ADMIN_KEYS_ENV: &str = "TOKENGATE_ADMIN_KEYS";
/// The webhook signing secret (alternative to `notifications.secret_file`).
pub const WEBHOOK_SECRET_ENV: &str = "TOKENGATE_WEBHOOK_SECRET";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file is not valid YAML: {0}")]
    Syntax(String),
    #[error("`{field}`{source_note}: {problem}")]
    Field { field: String, source_note: String, problem: String },
}

/// The typed configuration the runtime uses.
#[derive(Debug, Clone)]
pub struct Config {
    /// Proxy listener.
    pub listen: SocketAddr,
    /// The upstream every authenticated request is forwarded to.
    pub upstream: url::Url,
    pub admin: AdminConfig,
    pub store: StoreConfig,
    pub tokens: TokensConfig,
    /// The roles tokens and principals may hold.
    pub roles: Vec<String>,
    /// Ordered route rules; no match means any valid token.
    pub routes: RouteTable,
    pub proxy: ProxyConfig,
    pub cache: CacheConfig,
    pub last_used: LastUsedConfig,
    pub notifications: NotificationsConfig,
    pub audit: AuditConfig,
    pub shutdown: ShutdownConfig,
    pub runtime: RuntimeConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// Operator keys: full access to the admin API.
    pub keys: AdminKeys,
    /// Largest JSON request body accepted (413 beyond it).
    pub max_body_bytes: usize,
    /// Most admin connections at once (the idle ones are closed first to make room).
    pub max_connections: usize,
    /// Most `/v1` API calls in progress at once (503 beyond it); below `max_connections`, so
    /// health checks always find a connection.
    pub max_concurrent_calls: usize,
}

/// A secret string from the environment or a file; redacted in `Debug`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The configured operator keys.
#[derive(Debug, Clone, Default)]
pub struct AdminKeys(Vec<Secret>);

impl AdminKeys {
    /// Minimum key length, in bytes.
    pub const MIN_LEN: usize = 16;

    pub fn new(keys: Vec<Secret>) -> Self {
        Self(keys)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `candidate` is one of the keys. Every key is compared, in constant time each.
    pub fn contains(&self, candidate: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.0
            .iter()
            .fold(subtle::Choice::from(0), |found, k| found | k.0.as_bytes().ct_eq(candidate.as_bytes()))
            .into()
    }
}

#[derive(Debug, Clone)]
pub struct NotificationsConfig {
    /// Where "token created" events are sent.
    pub webhooks: Vec<url::Url>,
    /// The HMAC-SHA256 key for the `X-Tokengate-Signature` header.
    pub secret: Option<Secret>,
    pub max_attempts: u32,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum StoreConfig {
    Embedded(EmbeddedConfig),
    Redis(RedisConfig),
}

#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    pub path: PathBuf,
}

#[derive(Clone)]
pub struct RedisConfig {
    pub url: String,
    pub key_prefix: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct TokensConfig {
    pub format: TokenFormat,
    /// The expiry choices offered at creation, in days.
    pub expiry_days: Vec<u32>,
    /// Roles a new token gets when the request names none.
    pub default_roles: Vec<String>,
    /// Whether revoked tokens may be restored to active.
    pub allow_restore: bool,
    pub pepper: Option<Pepper>,
}

/// How `X-Forwarded-For`, `-Proto` and `-Host` are written to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XForwarded {
    /// Append the client address to `X-Forwarded-For`; keep `-Proto` / `-Host` when present.
    Append,
    /// Replace all three with what tokengate saw (for an edge with untrusted clients).
    Set,
    /// Pass them through untouched.
    Off,
}

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Whether the client's `Authorization` header reaches the upstream.
    pub forward_authorization: bool,
    /// Whether path parameters (`;...` in a segment) are allowed; off, they are refused (400).
    /// On, route rules match the segments without their parameters.
    pub allow_path_parameters: bool,
    pub failed_auth: FailedAuthConfig,
    /// Identity headers start with this (case-insensitive, `_` counts as `-`); incoming ones are
    /// always removed.
    pub identity_header_prefix: String,
    pub x_forwarded: XForwarded,
    pub max_connections: usize,
    /// Largest request head accepted (431 beyond it).
    pub max_header_bytes: usize,
    /// Most header fields in a request, HTTP/1 and HTTP/2 alike (431 beyond it).
    pub max_headers: usize,
    /// Time a client has to send a complete request head: from accept (TLS handshake and HTTP/2
    /// preface included), and on a keep-alive connection from the next request's first byte.
    pub header_read_timeout: Duration,
    /// How long a connection with no request in flight is kept, and how long writes may stay
    /// blocked on a client that does not read.
    pub idle_timeout: Duration,
    /// HTTP/2 ping interval; a peer that does not answer within the same time is disconnected.
    pub http2_keepalive_interval: Duration,
    pub upstream_connect_timeout: Duration,
    /// Time the upstream has to start its response (504 beyond it).
    pub upstream_response_timeout: Duration,
    /// How long an idle pooled upstream connection is kept.
    pub upstream_idle_timeout: Duration,
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// How long a cached token or principal is used without asking the store.
    pub ttl: Duration,
    /// How long "no such token" is remembered.
    pub negative_ttl: Duration,
    /// How long a cached record keeps being used while the store is unreachable.
    pub max_staleness: Duration,
    pub max_entries: u64,
    /// How long a cached record is used without asking the store while the store's
    /// invalidation channel is down (or was down when the record was fetched).
    pub ttl_without_invalidations: Duration,
    /// Most remembered "no such token" answers, kept apart so a flood of unknown ids cannot
    /// evict real tokens.
    pub max_negative_entries: u64,
    /// Store lookups in flight at once on the request path; beyond it, 503 with Retry-After.
    pub max_concurrent_fetches: usize,
    /// The one deadline of a request-path store lookup; past it the stale record or 503.
    pub lookup_timeout: Duration,
}

impl Default for CacheConfig {
    /// The documented defaults (`config/tokengate.yaml`).
    fn default() -> Self {
        let d = |s: &str| humantime::parse_duration(s).expect("default durations parse");
        Self {
            ttl: d(defaults::CACHE_TTL),
            negative_ttl: d(defaults::CACHE_NEGATIVE_TTL),
            max_staleness: d(defaults::CACHE_MAX_STALENESS),
            max_entries: defaults::CACHE_MAX_ENTRIES,
            ttl_without_invalidations: d(defaults::CACHE_TTL_WITHOUT_INVALIDATIONS),
            max_negative_entries: defaults::CACHE_MAX_NEGATIVE_ENTRIES,
            max_concurrent_fetches: defaults::CACHE_MAX_CONCURRENT_FETCHES,
            lookup_timeout: d(defaults::CACHE_LOOKUP_TIMEOUT),
        }
    }
}

/// Limits on failed authentications per client address (see [`crate::auth::limiter`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedAuthConfig {
    /// Failures a client address may have in a burst; 0 turns the limit off.
    pub burst: u32,
    /// One more failure is allowed per interval.
    pub refill_interval: Duration,
    /// Client addresses tracked at once (least recently seen are forgotten first).
    pub max_clients: u64,
}

impl Default for FailedAuthConfig {
    fn default() -> Self {
        Self {
            burst: defaults::FAILED_AUTH_BURST,
            refill_interval: humantime::parse_duration(defaults::FAILED_AUTH_REFILL_INTERVAL).expect("parses"),
            max_clients: defaults::FAILED_AUTH_MAX_CLIENTS,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LastUsedConfig {
    pub flush_interval: Duration,
    /// Most distinct tokens held between flushes; uses beyond it are dropped and counted.
    pub max_pending: usize,
}

#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub max_events: usize,
}

#[derive(Debug, Clone)]
pub struct ShutdownConfig {
    /// How long in-flight work may take to finish after a shutdown signal.
    pub drain_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Threads serving requests. One runs everything on a single-threaded scheduler, which is
    /// the fastest choice for a sidecar limited to one core or less.
    pub worker_threads: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A `tracing` filter directive, e.g. `info` or `tokengate=debug`.
    pub level: String,
    pub format: LogFormat,
}

/// Defaults for everything optional.
pub mod defaults {
    pub const LISTEN: &str = "0.0.0.0:8080";
    pub const ADMIN_LISTEN: &str = "127.0.0.1:9091";
    pub const EMBEDDED_PATH: &str = "data/tokengate.redb";
    pub const REDIS_KEY_PREFIX: &str = "tokengate";
    pub const REDIS_CONNECT_TIMEOUT: &str = "1s";
    pub const REDIS_COMMAND_TIMEOUT: &str = "1s";
    pub const EXPIRY_DAYS: &[u32] = &[30, 60, 90, 180, 365];
    pub const ROLES: &[&str] = &["viewer", "developer", "admin"];
    pub const DEFAULT_ROLES: &[&str] = &["viewer"];
    pub const AUDIT_MAX_EVENTS: usize = 10_000;
    pub const DRAIN_TIMEOUT: &str = "30s";
    pub const IDENTITY_HEADER_PREFIX: &str = "X-Auth-";
    pub const MAX_CONNECTIONS: usize = 10_000;
    pub const MAX_HEADER_BYTES: usize = 64 * 1024;
    pub const MAX_HEADERS: usize = 100;
    pub const HEADER_READ_TIMEOUT: &str = "10s";
    pub const IDLE_TIMEOUT: &str = "60s";
    pub const HTTP2_KEEPALIVE_INTERVAL: &str = "30s";
    pub const UPSTREAM_CONNECT_TIMEOUT: &str = "2s";
    pub const UPSTREAM_RESPONSE_TIMEOUT: &str = "60s";
    pub const UPSTREAM_IDLE_TIMEOUT: &str = "90s";
    pub const CACHE_TTL: &str = "30s";
    pub const CACHE_NEGATIVE_TTL: &str = "5s";
    pub const CACHE_MAX_STALENESS: &str = "5m";
    /// About 100 MiB of cached records (the load harness measures about 1 KiB per entry).
    pub const CACHE_MAX_ENTRIES: u64 = 100_000;
    pub const CACHE_TTL_WITHOUT_INVALIDATIONS: &str = "1s";
    pub const CACHE_MAX_NEGATIVE_ENTRIES: u64 = 10_000;
    pub const CACHE_MAX_CONCURRENT_FETCHES: usize = 64;
    pub const CACHE_LOOKUP_TIMEOUT: &str = "500ms";
    pub const FAILED_AUTH_BURST: u32 = 30;
    pub const FAILED_AUTH_REFILL_INTERVAL: &str = "1s";
    pub const FAILED_AUTH_MAX_CLIENTS: u64 = 100_000;
    pub const LAST_USED_FLUSH_INTERVAL: &str = "10s";
    pub const LAST_USED_MAX_PENDING: usize = 100_000;
    pub const LOG_LEVEL: &str = "info";
    pub const ADMIN_MAX_BODY_BYTES: usize = 16 * 1024;
    pub const ADMIN_MAX_CONNECTIONS: usize = 64;
    pub const ADMIN_MAX_CONCURRENT_CALLS: usize = 16;
    pub const WEBHOOK_MAX_ATTEMPTS: u32 = 6;
    pub const WEBHOOK_TIMEOUT: &str = "5s";
}

impl Config {
    /// Reads and validates the file at `path` with overrides from `env`.
    pub fn load(path: &Path, env: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::from_yaml(&text, env)
    }

    /// Parses and validates YAML text. Relative file paths resolve against the working directory.
    pub fn from_yaml(text: &str, env: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut tree: serde_json::Value =
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let overridden = env::apply(&mut tree, env);
        let ctx = Ctx { overridden: &overridden };
        if tree.is_null() {
            tree = serde_json::Value::Object(Default::default());
        }
        let raw: RawConfig = serde_path_to_error::deserialize(tree)
            .map_err(|e| ctx.error(&e.path().to_string(), e.inner().to_string()))?;
        validate(raw, env, &ctx)
    }

    /// A short human summary, for `check-config` and the startup log. Never shows secrets.
    pub fn summary(&self) -> String {
        let store = match &self.store {
            StoreConfig::Embedded(e) => format!("embedded ({})", e.path.display()),
            StoreConfig::Redis(r) => format!("redis ({}, key prefix {{{}}})", redact_url(&r.url), r.key_prefix),
        };
        format!(
            "listen: {}\nupstream: {}\nadmin.listen: {}\nstore: {store}\nroles: {}\nroute rules: {}\ntoken prefixes: {} (personal), {} (organization)\npepper: {}\nworker threads: {}",
            self.listen,
            self.upstream,
            self.admin.listen,
            self.roles.join(", "),
            self.routes.len(),
            self.tokens.format.prefix(TokenKind::Personal),
            self.tokens.format.prefix(TokenKind::Organization),
            if self.tokens.pepper.is_some() { "configured" } else { "none (plain SHA-256)" },
            self.runtime.worker_threads,
        )
    }
}

/// Hides the password of a `redis://user:password@host` URL.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable url>".to_string(),
    }
}

/// Error context: which fields came from which environment variable.
struct Ctx<'a> {
    overridden: &'a BTreeMap<String, String>,
}

impl Ctx<'_> {
    fn error(&self, field: &str, problem: impl Into<String>) -> ConfigError {
        // The override that set this field, a parent of it, or something inside it.
        let related = |path: &str| {
            let nested = |outer: &str, inner: &str| {
                inner == outer || inner.strip_prefix(outer).is_some_and(|rest| rest.starts_with(['.', '[']))
            };
            nested(path, field) || nested(field, path)
        };
        let var = self.overridden.iter().find(|(path, _)| related(path)).map(|(_, v)| v);
        ConfigError::Field {
            field: field.to_string(),
            source_note: var.map(|v| format!(" (set by {v})")).unwrap_or_default(),
            problem: problem.into(),
        }
    }

    fn addr(&self, field: &str, value: Option<String>, default: &str) -> Result<SocketAddr, ConfigError> {
        let value = value.unwrap_or_else(|| default.to_string());
        value.parse().map_err(|_| {
            self.error(field, format!("invalid socket address {value:?}: expected IP:port, e.g. {default}"))
        })
    }

    fn duration(&self, field: &str, value: Option<DurationText>, default: &str) -> Result<Duration, ConfigError> {
        let value = value.map_or_else(|| default.to_string(), |d| d.0);
        let d = humantime::parse_duration(&value).map_err(|e| {
            self.error(field, format!("invalid duration {value:?} ({e}): expected e.g. 500ms, 30s, 5m"))
        })?;
        if d.is_zero() {
            return Err(self.error(field, "must be greater than zero"));
        }
        Ok(d)
    }

    fn roles(&self, field: &str, roles: &[String], known: &[String]) -> Result<Vec<String>, ConfigError> {
        let mut out: Vec<String> = Vec::with_capacity(roles.len());
        for (i, r) in roles.iter().enumerate() {
            if !known.contains(r) {
                return Err(self.error(
                    &format!("{field}[{i}]"),
                    format!("unknown role {r:?} (configured roles: {})", known.join(", ")),
                ));
            }
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
        Ok(out)
    }
}

fn valid_role_name(r: &str) -> bool {
    let b = r.as_bytes();
    (1..=32).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_'))
}

fn validate(raw: RawConfig, env: &BTreeMap<String, String>, ctx: &Ctx) -> Result<Config, ConfigError> {
    let listen = ctx.addr("listen", raw.listen, defaults::LISTEN)?;

    let upstream_raw = raw.upstream.ok_or_else(|| ctx.error("upstream", "required: the URL to forward requests to"))?;
    let upstream = url::Url::parse(&upstream_raw)
        .map_err(|e| ctx.error("upstream", format!("invalid URL {upstream_raw:?}: {e}")))?;
    if !matches!(upstream.scheme(), "http" | "https") || upstream.host().is_none() {
        return Err(ctx.error("upstream", format!("{upstream_raw:?} must be an http:// or https:// URL with a host")));
    }

    let admin = validate_admin(raw.admin.unwrap_or_default(), env, ctx)?;
    if admin.listen == listen && listen.port() != 0 {
        return Err(ctx.error("admin.listen", format!("must differ from `listen` ({listen})")));
    }

    let store = validate_store(raw.store.unwrap_or_default(), ctx)?;

    let roles = raw.roles.unwrap_or_else(|| defaults::ROLES.iter().map(|r| r.to_string()).collect());
    if roles.is_empty() {
        return Err(ctx.error("roles", "must list at least one role"));
    }
    let mut seen = HashSet::new();
    for (i, r) in roles.iter().enumerate() {
        if !valid_role_name(r) {
            return Err(ctx.error(
                &format!("roles[{i}]"),
                format!("invalid role name {r:?}: 1-32 lowercase letters, digits, '-' or '_', starting with a letter"),
            ));
        }
        if !seen.insert(r) {
            return Err(ctx.error(&format!("roles[{i}]"), format!("duplicate role {r:?}")));
        }
    }

    let tokens = validate_tokens(raw.tokens.unwrap_or_default(), &roles, env, ctx)?;

    let specs: Vec<RuleSpec> = raw
        .routes
        .unwrap_or_default()
        .into_iter()
        .map(|r| RuleSpec {
            path: r.path,
            methods: r.methods,
            public: r.public.unwrap_or(false),
            roles: r.roles.unwrap_or_default(),
            scopes: r.scopes.unwrap_or_default(),
        })
        .collect();
    let routes = RouteTable::new(&specs, &roles)
        .map_err(|e| ctx.error(&format!("routes[{}].{}", e.index, e.field), e.problem))?;

    let proxy = validate_proxy(raw.proxy.unwrap_or_default(), ctx)?;

    let cache = raw.cache.unwrap_or_default();
    let cache = CacheConfig {
        ttl: ctx.duration("cache.ttl", cache.ttl, defaults::CACHE_TTL)?,
        negative_ttl: ctx.duration("cache.negative_ttl", cache.negative_ttl, defaults::CACHE_NEGATIVE_TTL)?,
        max_staleness: ctx.duration("cache.max_staleness", cache.max_staleness, defaults::CACHE_MAX_STALENESS)?,
        max_entries: cache.max_entries.unwrap_or(defaults::CACHE_MAX_ENTRIES),
        ttl_without_invalidations: ctx.duration(
            "cache.ttl_without_invalidations",
            cache.ttl_without_invalidations,
            defaults::CACHE_TTL_WITHOUT_INVALIDATIONS,
        )?,
        max_negative_entries: cache.max_negative_entries.unwrap_or(defaults::CACHE_MAX_NEGATIVE_ENTRIES),
        max_concurrent_fetches: cache.max_concurrent_fetches.unwrap_or(defaults::CACHE_MAX_CONCURRENT_FETCHES),
        lookup_timeout: ctx.duration("cache.lookup_timeout", cache.lookup_timeout, defaults::CACHE_LOOKUP_TIMEOUT)?,
    };
    if cache.ttl_without_invalidations > cache.ttl {
        return Err(ctx.error("cache.ttl_without_invalidations", "must not be longer than `cache.ttl`"));
    }
    if cache.max_negative_entries == 0 {
        return Err(ctx.error("cache.max_negative_entries", "must be greater than zero"));
    }
    if cache.max_concurrent_fetches == 0 {
        return Err(ctx.error("cache.max_concurrent_fetches", "must be greater than zero"));
    }
    if cache.max_staleness < cache.ttl {
        return Err(ctx.error("cache.max_staleness", "must be at least `cache.ttl`"));
    }
    if cache.max_entries == 0 {
        return Err(ctx.error("cache.max_entries", "must be greater than zero"));
    }

    let last_used = raw.last_used.unwrap_or_default();
    let last_used = LastUsedConfig {
        flush_interval: ctx.duration(
            "last_used.flush_interval",
            last_used.flush_interval,
            defaults::LAST_USED_FLUSH_INTERVAL,
        )?,
        max_pending: last_used.max_pending.unwrap_or(defaults::LAST_USED_MAX_PENDING),
    };
    if last_used.max_pending == 0 {
        return Err(ctx.error("last_used.max_pending", "must be greater than zero"));
    }

    let notifications = validate_notifications(raw.notifications.unwrap_or_default(), env, ctx)?;

    let max_events = raw.audit.unwrap_or_default().max_events.unwrap_or(defaults::AUDIT_MAX_EVENTS);
    if !(1..=10_000_000).contains(&max_events) {
        return Err(ctx.error("audit.max_events", "must be between 1 and 10000000"));
    }

    let shutdown = raw.shutdown.unwrap_or_default();
    let shutdown = ShutdownConfig {
        drain_timeout: ctx.duration("shutdown.drain_timeout", shutdown.drain_timeout, defaults::DRAIN_TIMEOUT)?,
    };

    let worker_threads = match raw.runtime.unwrap_or_default().worker_threads {
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        Some(n @ 1..=MAX_WORKER_THREADS) => n,
        Some(_) => {
            return Err(ctx.error("runtime.worker_threads", format!("must be between 1 and {MAX_WORKER_THREADS}")));
        }
    };

    let log = raw.log.unwrap_or_default();
    let level = log.level.unwrap_or_else(|| defaults::LOG_LEVEL.to_string());
    if tracing_subscriber::EnvFilter::builder().parse(&level).is_err() {
        return Err(
            ctx.error("log.level", format!("invalid filter {level:?}: expected e.g. info, debug, tokengate=debug"))
        );
    }
    let format = match log.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => return Err(ctx.error("log.format", format!("{other:?} is not one of: text, json"))),
    };

    Ok(Config {
        listen,
        upstream,
        admin,
        store,
        tokens,
        roles,
        routes,
        proxy,
        cache,
        last_used,
        notifications,
        audit: AuditConfig { max_events },
        shutdown,
        runtime: RuntimeConfig { worker_threads },
        log: LogConfig { level, format },
    })
}

/// Largest `runtime.worker_threads`.
const MAX_WORKER_THREADS: usize = 1024;

/// Reads a secret file, without its trailing newline.
fn read_secret_file(field: &str, path: &str, ctx: &Ctx) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ctx.error(field, format!("cannot read {path}: {e}")))?;
    Ok(text.trim_end().to_string())
}

fn validate_admin(raw: raw::RawAdmin, env: &BTreeMap<String, String>, ctx: &Ctx) -> Result<AdminConfig, ConfigError> {
    let listen = ctx.addr("admin.listen", raw.listen, defaults::ADMIN_LISTEN)?;
    let short = |keys: &[String]| keys.iter().any(|k| k.len() < AdminKeys::MIN_LEN);
    let too_short = format!("every admin key must be at least {} characters", AdminKeys::MIN_LEN);
    let mut keys: Vec<String> = Vec::new();
    if let Some(v) = env.get(ADMIN_KEYS_ENV) {
        keys.extend(v.split(',').map(str::trim).filter(|k| !k.is_empty()).map(String::from));
        if short(&keys) {
            return Err(ctx.error(ADMIN_KEYS_ENV, too_short));
        }
    }
    if let Some(file) = &raw.keys_file {
        let text = read_secret_file("admin.keys_file", file, ctx)?;
        let from_file: Vec<String> =
            text.lines().map(str::trim).filter(|k| !k.is_empty() && !k.starts_with('#')).map(String::from).collect();
        if short(&from_file) {
            return Err(ctx.error("admin.keys_file", too_short));
        }
        keys.extend(from_file);
    }
    if keys.is_empty() && !listen.ip().is_loopback() {
        return Err(ctx.error(
            "admin.listen",
            format!("{listen} is not a loopback address and no admin keys are configured ({ADMIN_KEYS_ENV} or admin.keys_file)"),
        ));
    }
    let max_body_bytes = raw.max_body_bytes.unwrap_or(defaults::ADMIN_MAX_BODY_BYTES);
    if !(1024..=1024 * 1024).contains(&max_body_bytes) {
        return Err(ctx.error("admin.max_body_bytes", "must be between 1024 and 1048576"));
    }
    let max_connections = raw.max_connections.unwrap_or(defaults::ADMIN_MAX_CONNECTIONS);
    if !(2..=10_000).contains(&max_connections) {
        return Err(ctx.error("admin.max_connections", "must be between 2 and 10000"));
    }
    let max_concurrent_calls = raw.max_concurrent_calls.unwrap_or(defaults::ADMIN_MAX_CONCURRENT_CALLS);
    if max_concurrent_calls == 0 || max_concurrent_calls >= max_connections {
        return Err(ctx.error(
            "admin.max_concurrent_calls",
            format!("must be at least 1 and below `admin.max_connections` ({max_connections})"),
        ));
    }
    Ok(AdminConfig {
        listen,
        keys: AdminKeys::new(keys.into_iter().map(Secret).collect()),
        max_body_bytes,
        max_connections,
        max_concurrent_calls,
    })
}

fn validate_notifications(
    raw: raw::RawNotifications,
    env: &BTreeMap<String, String>,
    ctx: &Ctx,
) -> Result<NotificationsConfig, ConfigError> {
    let mut webhooks = Vec::new();
    for (i, hook) in raw.webhooks.unwrap_or_default().into_iter().enumerate() {
        let field = format!("notifications.webhooks[{i}].url");
        let url =
            url::Url::parse(&hook.url).map_err(|e| ctx.error(&field, format!("invalid URL {:?}: {e}", hook.url)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(ctx.error(&field, format!("{:?} must be an http:// or https:// URL with a host", hook.url)));
        }
        webhooks.push(url);
    }
    let secret = match (env.get(WEBHOOK_SECRET_ENV), &raw.secret_file) {
        (Some(_), Some(_)) => {
            return Err(ctx.error(
                "notifications.secret_file",
                format!("set either {WEBHOOK_SECRET_ENV} or `notifications.secret_file`, not both"),
            ));
        }
        (Some(v), None) => Some(Secret(v.clone())),
        (None, Some(file)) => Some(Secret(read_secret_file("notifications.secret_file", file, ctx)?)),
        (None, None) => None,
    };
    if !webhooks.is_empty() && secret.as_ref().is_none_or(|s| s.0.len() < 16) {
        return Err(ctx.error(
            "notifications.secret_file",
            format!("webhooks need a signing secret of at least 16 characters ({WEBHOOK_SECRET_ENV} or notifications.secret_file)"),
        ));
    }
    let max_attempts = raw.max_attempts.unwrap_or(defaults::WEBHOOK_MAX_ATTEMPTS);
    if !(1..=20).contains(&max_attempts) {
        return Err(ctx.error("notifications.max_attempts", "must be between 1 and 20"));
    }
    Ok(NotificationsConfig {
        webhooks,
        secret,
        max_attempts,
        timeout: ctx.duration("notifications.timeout", raw.timeout, defaults::WEBHOOK_TIMEOUT)?,
    })
}

fn validate_proxy(raw: raw::RawProxy, ctx: &Ctx) -> Result<ProxyConfig, ConfigError> {
    let prefix = raw.identity_header_prefix.unwrap_or_else(|| defaults::IDENTITY_HEADER_PREFIX.to_string());
    let prefix_ok = (2..=32).contains(&prefix.len())
        && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && prefix.as_bytes()[0].is_ascii_alphabetic();
    if !prefix_ok {
        return Err(ctx.error(
            "proxy.identity_header_prefix",
            format!("invalid header prefix {prefix:?}: 2-32 letters, digits or '-', starting with a letter"),
        ));
    }
    let x_forwarded = match raw.x_forwarded.as_deref() {
        None | Some("append") => XForwarded::Append,
        Some("set") => XForwarded::Set,
        Some("off") => XForwarded::Off,
        Some(other) => return Err(ctx.error("proxy.x_forwarded", format!("{other:?} is not one of: append, set, off"))),
    };
    let max_connections = raw.max_connections.unwrap_or(defaults::MAX_CONNECTIONS);
    if max_connections == 0 {
        return Err(ctx.error("proxy.max_connections", "must be greater than zero"));
    }
    let max_header_bytes = raw.max_header_bytes.unwrap_or(defaults::MAX_HEADER_BYTES);
    if !(8192..=1024 * 1024).contains(&max_header_bytes) {
        return Err(ctx.error("proxy.max_header_bytes", "must be between 8192 and 1048576"));
    }
    let max_headers = raw.max_headers.unwrap_or(defaults::MAX_HEADERS);
    if !(1..=1000).contains(&max_headers) {
        return Err(ctx.error("proxy.max_headers", "must be between 1 and 1000"));
    }
    let tls = match raw.tls {
        None => None,
        Some(t) => {
            let cert =
                t.cert_file.ok_or_else(|| ctx.error("proxy.tls.cert_file", "required when `proxy.tls` is set"))?;
            let key = t.key_file.ok_or_else(|| ctx.error("proxy.tls.key_file", "required when `proxy.tls` is set"))?;
            let files = TlsFiles { cert_file: cert.into(), key_file: key.into() };
            crate::net::tls::server_config(&files.cert_file, &files.key_file).map_err(|e| {
                let field = match e {
                    crate::net::tls::TlsError::Key(..) => "proxy.tls.key_file",
                    _ => "proxy.tls.cert_file",
                };
                ctx.error(field, e.to_string())
            })?;
            Some(files)
        }
    };
    let failed_auth = match raw.failed_auth {
        None => FailedAuthConfig::default(),
        Some(f) => {
            let defaults = FailedAuthConfig::default();
            let failed_auth = FailedAuthConfig {
                burst: f.burst.unwrap_or(defaults.burst),
                refill_interval: ctx.duration(
                    "proxy.failed_auth.refill_interval",
                    f.refill_interval,
                    defaults::FAILED_AUTH_REFILL_INTERVAL,
                )?,
                max_clients: f.max_clients.unwrap_or(defaults.max_clients),
            };
            if failed_auth.max_clients == 0 {
                return Err(ctx.error("proxy.failed_auth.max_clients", "must be greater than zero"));
            }
            failed_auth
        }
    };
    Ok(ProxyConfig {
        forward_authorization: raw.forward_authorization.unwrap_or(false),
        allow_path_parameters: raw.allow_path_parameters.unwrap_or(false),
        failed_auth,
        identity_header_prefix: prefix,
        x_forwarded,
        max_connections,
        max_header_bytes,
        max_headers,
        header_read_timeout: ctx.duration(
            "proxy.header_read_timeout",
            raw.header_read_timeout,
            defaults::HEADER_READ_TIMEOUT,
        )?,
        idle_timeout: ctx.duration("proxy.idle_timeout", raw.idle_timeout, defaults::IDLE_TIMEOUT)?,
        http2_keepalive_interval: ctx.duration(
            "proxy.http2_keepalive_interval",
            raw.http2_keepalive_interval,
            defaults::HTTP2_KEEPALIVE_INTERVAL,
        )?,
        upstream_connect_timeout: ctx.duration(
            "proxy.upstream_connect_timeout",
            raw.upstream_connect_timeout,
            defaults::UPSTREAM_CONNECT_TIMEOUT,
        )?,
        upstream_response_timeout: ctx.duration(
            "proxy.upstream_response_timeout",
            raw.upstream_response_timeout,
            defaults::UPSTREAM_RESPONSE_TIMEOUT,
        )?,
        upstream_idle_timeout: ctx.duration(
            "proxy.upstream_idle_timeout",
            raw.upstream_idle_timeout,
            defaults::UPSTREAM_IDLE_TIMEOUT,
        )?,
        tls,
    })
}

fn validate_store(raw: raw::RawStore, ctx: &Ctx) -> Result<StoreConfig, ConfigError> {
    match (raw.embedded, raw.redis) {
        (Some(_), Some(_)) => Err(ctx.error("store", "set either `store.embedded` or `store.redis`, not both")),
        (_, Some(r)) => {
            let url = r.url.ok_or_else(|| ctx.error("store.redis.url", "required when `store.redis` is set"))?;
            if let Err(e) = redis::Client::open(url.as_str()) {
                return Err(ctx.error("store.redis.url", format!("invalid Redis URL {}: {e}", redact_url(&url))));
            }
            let key_prefix = r.key_prefix.unwrap_or_else(|| defaults::REDIS_KEY_PREFIX.to_string());
            let ok = (1..=64).contains(&key_prefix.len())
                && key_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
            if !ok {
                return Err(ctx.error(
                    "store.redis.key_prefix",
                    format!("invalid prefix {key_prefix:?}: 1-64 letters, digits, '-', '_', '.' or ':'"),
                ));
            }
            Ok(StoreConfig::Redis(RedisConfig {
                url,
                key_prefix,
                connect_timeout: ctx.duration(
                    "store.redis.connect_timeout",
                    r.connect_timeout,
                    defaults::REDIS_CONNECT_TIMEOUT,
                )?,
                command_timeout: ctx.duration(
                    "store.redis.command_timeout",
                    r.command_timeout,
                    defaults::REDIS_COMMAND_TIMEOUT,
                )?,
            }))
        }
        (embedded, None) => {
            let path = embedded.and_then(|e| e.path).unwrap_or_else(|| defaults::EMBEDDED_PATH.to_string());
            if path.trim().is_empty() {
                return Err(ctx.error("store.embedded.path", "must not be empty"));
            }
            Ok(StoreConfig::Embedded(EmbeddedConfig { path: PathBuf::from(path) }))
        }
    }
}

fn validate_tokens(
    raw: raw::RawTokens,
    roles: &[String],
    env: &BTreeMap<String, String>,
    ctx: &Ctx,
) -> Result<TokensConfig, ConfigError> {
    let personal = raw.personal_prefix.unwrap_or_else(|| "tgp".into());
    let organization = raw.organization_prefix.unwrap_or_else(|| "tgo".into());
    let format = TokenFormat::new(&personal, &organization).map_err(|(kind, e)| {
        let field = match kind {
            TokenKind::Personal => "tokens.personal_prefix",
            TokenKind::Organization => "tokens.organization_prefix",
        };
        ctx.error(field, e.to_string())
    })?;

    let expiry_days = raw.expiry_days.unwrap_or_else(|| defaults::EXPIRY_DAYS.to_vec());
    if expiry_days.is_empty() {
        return Err(ctx.error("tokens.expiry_days", "must offer at least one choice"));
    }
    for (i, d) in expiry_days.iter().enumerate() {
        if !(1..=3650).contains(d) {
            return Err(ctx.error(&format!("tokens.expiry_days[{i}]"), format!("{d} is outside 1..=3650 days")));
        }
        if expiry_days[..i].contains(d) {
            return Err(ctx.error(&format!("tokens.expiry_days[{i}]"), format!("duplicate choice {d}")));
        }
    }

    let default_roles = raw.default_roles.unwrap_or_else(|| {
        defaults::DEFAULT_ROLES.iter().map(|r| r.to_string()).filter(|r| roles.contains(r)).collect()
    });
    let default_roles = ctx.roles("tokens.default_roles", &default_roles, roles)?;

    let pepper_bytes = match (env.get(PEPPER_ENV), raw.pepper_file) {
        (Some(_), Some(_)) => {
            return Err(
                ctx.error("tokens.pepper_file", format!("set either {PEPPER_ENV} or `tokens.pepper_file`, not both"))
            );
        }
        (Some(v), None) => Some((PEPPER_ENV.to_string(), v.clone().into_bytes())),
        (None, Some(file)) => {
            let mut bytes = std::fs::read(&file)
                .map_err(|e| ctx.error("tokens.pepper_file", format!("cannot read {file}: {e}")))?;
            while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
                bytes.pop();
            }
            Some(("tokens.pepper_file".to_string(), bytes))
        }
        (None, None) => None,
    };
    let pepper = match pepper_bytes {
        None => None,
        Some((source, bytes)) => Some(Pepper::new(bytes).ok_or_else(|| {
            ctx.error(
                "tokens.pepper_file",
                format!("the pepper from {source} must be at least {} bytes", Pepper::MIN_LEN),
            )
        })?),
    };

    Ok(TokensConfig { format, expiry_days, default_roles, allow_restore: raw.allow_restore.unwrap_or(false), pepper })
}

//! Configuration: one YAML file plus `TOKENGATE_...` environment overrides.
//!
//! Loading has two stages. [`raw`] parses the YAML (after [`env`] overrides are applied to the
//! parsed tree) into structs that check shape only; [`validate`] turns those into the typed
//! [`Config`] the runtime uses, applying defaults. Every error names the field it is about, in
//! dotted form (`store.redis.connect_timeout`), and the variable when an override set it.
//! `config/tokengate.yaml` documents every option.
//!
//! What lives here:
//! - this file: the typed [`Config`] and its section types, [`ConfigError`], [`Config::load`]
//!   and [`Config::from_yaml`];
//! - [`raw`]: the serde structs of stage one; [`env`]: the `TOKENGATE_<PATH>` overrides;
//! - [`redis`]: the `store.redis` section's types (topology, credentials, TLS);
//! - [`secret`]: [`Secret`], and reading secrets from the environment or files;
//! - [`admin_keys`]: [`AdminKeys`], the named operator keys, parsed from their file and variable;
//! - [`defaults`]: the documented default of every optional field;
//! - [`validate`]: stage two, one file per section.
//!
//! May use: [`crate::token`] (`TokenKind`, `TokenFormat`, `digest::Pepper`), [`crate::policy`]
//! (route rules), and [`crate::net`] (to check that the certificate files load, and to say how
//! its sections map onto the listeners' settings). Never
//! `proxy`, `admin`, `auth` or `store`: they are configured from here, not the other way round.

mod admin_keys;
pub mod defaults;
mod env;
mod identity;
mod raw;
mod redis;
mod secret;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::net::server::ServerSettings;
use crate::policy::routes::RouteTable;
use crate::token::TokenFormat;
use crate::token::TokenKind;
use crate::token::digest::Pepper;
pub use admin_keys::{
    AdminKey, AdminKeys, KeyLineError, KeySource, clash_with_env, key_lines, parse_keys_file, read_keys_bytes,
};
pub use identity::{ClaimNames, Grants, GroupGrant, IdentityConfig, OidcConfig, SessionConfig, TrustedHeaders};
use raw::RawConfig;
pub use redis::{RedisConfig, RedisNode, RedisProtocol, RedisTls, RedisTopology, SentinelAuth};
pub use secret::{
    ADMIN_KEYS_ENV, OIDC_CLIENT_SECRET_ENV, PEPPER_ENV, REDIS_PASSWORD_ENV, REDIS_SENTINEL_PASSWORD_ENV,
    SCIM_TOKEN_ENV, SESSION_KEYS_ENV, Secret, WEBHOOK_SECRET_ENV,
};
use validate::Ctx;

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
    /// What directory groups grant people (sign-in and SCIM).
    pub identity: IdentityConfig,
    pub scim: ScimConfig,
    pub shutdown: ShutdownConfig,
    pub runtime: RuntimeConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// Operator keys: full access to the admin API. Those of `keys_file` as read at start; the
    /// admin listener re-reads the file while it runs (`admin::keys`).
    pub keys: AdminKeys,
    /// `admin.keys_file`, when set.
    pub keys_file: Option<std::path::PathBuf>,
    /// Largest JSON request body accepted (413 beyond it).
    pub max_body_bytes: usize,
    /// Most admin connections at once (the idle ones are closed first to make room).
    pub max_connections: usize,
    /// Most `/v1` API calls in progress at once (503 beyond it); below `max_connections`, so
    /// health checks always find a connection.
    pub max_concurrent_calls: usize,
}

/// The SCIM 2.0 directory endpoint (`/scim/v2` on the admin port).
#[derive(Debug, Clone, Default)]
pub struct ScimConfig {
    /// The directory's bearer credential; `None`: SCIM is off (`/scim/v2` answers 404).
    pub token: Option<Secret>,
    /// The organization of users the directory creates without one of their own.
    pub org: Option<String>,
}

impl ScimConfig {
    /// Shortest accepted credential, in bytes.
    pub const MIN_TOKEN_LEN: usize = 32;
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
    Redis(Box<RedisConfig>),
}

#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    pub path: PathBuf,
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
    /// The proxy listener's connection limits and timeouts.
    pub connections: ServerSettings,
    pub upstream_connect_timeout: Duration,
    /// Time the upstream has to start its response (504 beyond it).
    pub upstream_response_timeout: Duration,
    /// How long an idle pooled upstream connection is kept.
    pub upstream_idle_timeout: Duration,
    pub tls: Option<TlsFiles>,
    /// Peers whose `X-Forwarded-For` is believed: the client address is then the rightmost
    /// address in it that is not one of these. Empty: the socket's peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Whether a request of a rate-limited or quota token passes when the store cannot hand out
    /// permits.
    pub token_limits_on_store_error: OnStoreError,
}

/// Whether a request is admitted when the store cannot hand out permits for its token's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreError {
    /// Admit it (counted in `tokengate_limit_store_errors_total`).
    Open,
    /// Refuse it with 503.
    Closed,
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

impl Config {
    /// The proxy's and the admin port's listener settings: the admin port has the proxy's
    /// limits and timeouts with its own connection limit.
    pub fn listener_settings(&self) -> (ServerSettings, ServerSettings) {
        let proxy = self.proxy.connections.clone();
        // The admin port is reached directly, never through a PROXY-protocol balancer.
        let admin =
            ServerSettings { max_connections: self.admin.max_connections, proxy_protocol: None, ..proxy.clone() };
        (proxy, admin)
    }

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
        let ctx = Ctx::new(&overridden);
        if tree.is_null() {
            tree = serde_json::Value::Object(Default::default());
        }
        let raw: RawConfig = serde_path_to_error::deserialize(tree)
            .map_err(|e| ctx.error(&e.path().to_string(), e.inner().to_string()))?;
        validate::validate(raw, env, &ctx)
    }

    /// A short human summary, for `check-config` and the startup log. Never shows secrets.
    pub fn summary(&self) -> String {
        let store = match &self.store {
            StoreConfig::Embedded(e) => format!("embedded ({})", e.path.display()),
            StoreConfig::Redis(r) => format!("redis ({})", r.describe()),
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

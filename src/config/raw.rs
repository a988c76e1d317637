//! Stage one of config loading: the YAML shape, exactly as written.
//!
//! Every struct denies unknown fields and every field is optional, so that parsing only checks
//! shape; defaults and value checks belong to stage two (`config/validate/`), which knows the field
//! paths to name in its errors. Addresses, URLs and durations stay strings here for the same
//! reason.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub admin: Option<RawAdmin>,
    pub store: Option<RawStore>,
    pub tokens: Option<RawTokens>,
    pub roles: Option<Vec<String>>,
    pub routes: Option<Vec<RawRoute>>,
    pub proxy: Option<RawProxy>,
    pub cache: Option<RawCache>,
    pub last_used: Option<RawLastUsed>,
    pub notifications: Option<RawNotifications>,
    pub audit: Option<RawAudit>,
    pub identity: Option<RawIdentity>,
    pub scim: Option<RawScim>,
    pub shutdown: Option<RawShutdown>,
    pub runtime: Option<RawRuntime>,
    pub log: Option<RawLog>,
}

impl RawConfig {
    /// The top-level keys, which environment overrides may address.
    pub const KEYS: &'static [&'static str] = &[
        "listen",
        "upstream",
        "admin",
        "store",
        "tokens",
        "roles",
        "routes",
        "proxy",
        "cache",
        "last_used",
        "notifications",
        "audit",
        "identity",
        "scim",
        "shutdown",
        "runtime",
        "log",
    ];
}

/// Duration text such as `30s`. A bare YAML number is kept as text too, so that validation can
/// say which unit is missing instead of reporting a type error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationText(pub String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            S(String),
            N(serde_json::Number),
        }
        match Text::deserialize(d) {
            Ok(Text::S(s)) => Ok(Self(s)),
            Ok(Text::N(n)) => Ok(Self(n.to_string())),
            Err(_) => Err(serde::de::Error::custom("expected a duration such as 500ms, 30s or 5m")),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<String>,
    pub keys_file: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_concurrent_calls: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotifications {
    pub webhooks: Option<Vec<RawWebhook>>,
    pub secret_file: Option<String>,
    pub max_attempts: Option<u32>,
    pub timeout: Option<DurationText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub url: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub embedded: Option<RawEmbedded>,
    pub redis: Option<RawRedis>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmbedded {
    pub path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    pub url: Option<String>,
    pub sentinel: Option<RawSentinel>,
    pub cluster: Option<RawCluster>,
    pub username: Option<String>,
    pub password_file: Option<String>,
    pub tls: Option<RawRedisTls>,
    pub protocol: Option<String>,
    pub key_prefix: Option<String>,
    pub connect_timeout: Option<DurationText>,
    pub command_timeout: Option<DurationText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSentinel {
    pub master: Option<String>,
    pub nodes: Option<Vec<String>>,
    pub db: Option<i64>,
    pub username: Option<String>,
    pub password_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub nodes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedisTls {
    pub enabled: Option<bool>,
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokens {
    pub personal_prefix: Option<String>,
    pub organization_prefix: Option<String>,
    pub expiry_days: Option<Vec<u32>>,
    pub default_roles: Option<Vec<String>>,
    pub allow_restore: Option<bool>,
    pub pepper_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub path: String,
    pub methods: Option<Vec<String>>,
    pub public: Option<bool>,
    pub roles: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    pub forward_authorization: Option<bool>,
    pub allow_path_parameters: Option<bool>,
    pub failed_auth: Option<RawFailedAuth>,
    pub identity_header_prefix: Option<String>,
    pub x_forwarded: Option<String>,
    pub max_connections: Option<usize>,
    pub max_header_bytes: Option<usize>,
    pub max_headers: Option<usize>,
    pub header_read_timeout: Option<DurationText>,
    pub idle_timeout: Option<DurationText>,
    pub http2_keepalive_interval: Option<DurationText>,
    pub upstream_connect_timeout: Option<DurationText>,
    pub upstream_response_timeout: Option<DurationText>,
    pub upstream_idle_timeout: Option<DurationText>,
    pub tls: Option<RawTls>,
    pub trusted_proxies: Option<Vec<String>>,
    pub proxy_protocol: Option<bool>,
    pub token_limits_on_store_error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFailedAuth {
    pub burst: Option<u32>,
    pub refill_interval: Option<DurationText>,
    pub max_clients: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub ttl: Option<DurationText>,
    pub negative_ttl: Option<DurationText>,
    pub max_staleness: Option<DurationText>,
    pub max_entries: Option<u64>,
    pub ttl_without_invalidations: Option<DurationText>,
    pub max_negative_entries: Option<u64>,
    pub max_concurrent_fetches: Option<usize>,
    pub lookup_timeout: Option<DurationText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLastUsed {
    pub flush_interval: Option<DurationText>,
    pub max_pending: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    pub max_events: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShutdown {
    pub drain_timeout: Option<DurationText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    pub worker_threads: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub level: Option<String>,
    pub format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    pub groups: Option<std::collections::BTreeMap<String, RawGroup>>,
    pub operators: Option<Vec<String>>,
    pub auditors: Option<Vec<String>>,
    pub oidc: Option<RawOidc>,
    pub trusted_headers: Option<RawTrustedHeaders>,
    pub sessions: Option<RawSessions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOidc {
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret_file: Option<String>,
    pub redirect_url: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub claims: Option<RawClaims>,
    pub org: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClaims {
    pub id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub groups: Option<String>,
    pub org: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrustedHeaders {
    pub peers: Option<Vec<String>>,
    pub user: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSessions {
    pub keys_file: Option<String>,
    pub lifetime: Option<DurationText>,
    pub idle_timeout: Option<DurationText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub roles: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub admin: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScim {
    pub token_file: Option<String>,
    pub org: Option<String>,
}

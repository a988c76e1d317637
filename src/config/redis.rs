//! The typed `store.redis` section: which Redis deployment to talk to ([`RedisTopology`]), how to
//! authenticate ([`RedisConfig::username`], [`RedisConfig::password`]) and how to encrypt
//! ([`RedisTls`]). Validation is in `validate/redis.rs`.

use std::time::Duration;

use super::{Secret, redact_url};

/// Which Redis deployment holds the store.
#[derive(Clone)]
pub enum RedisTopology {
    /// One server (or a managed endpoint that fronts a primary): a `redis://` or `rediss://`
    /// URL, which may carry the user, password and database.
    Standalone { url: String },
    /// A primary and its replicas watched by Sentinel: commands follow whichever server the
    /// sentinels name as the master of `master`.
    Sentinel { master: String, nodes: Vec<RedisNode>, db: i64, auth: SentinelAuth },
    /// Redis Cluster: the seed nodes; the rest of the topology is discovered.
    Cluster { nodes: Vec<RedisNode> },
}

/// A `host:port` address of a sentinel or cluster seed node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisNode {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for RedisNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Credentials for the sentinels themselves (often different from the data nodes').
#[derive(Clone, Default)]
pub struct SentinelAuth {
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// TLS towards Redis: on for `rediss://` URLs and when `store.redis.tls.enabled` is set.
/// Certificates are read when the configuration is validated, so a bad file fails at startup.
#[derive(Clone)]
pub struct RedisTls {
    /// PEM CA bundle that signs the servers' certificates; `None`: the system's trust store.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM client certificate chain and private key, for mutual TLS.
    pub client: Option<(Vec<u8>, Secret)>,
}

/// The wire protocol: RESP3 (Redis 6 and later, and what sharded pub/sub on Cluster needs) or
/// RESP2 for older servers and proxies that do not speak `HELLO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisProtocol {
    Resp2,
    Resp3,
}

#[derive(Clone)]
pub struct RedisConfig {
    pub topology: RedisTopology,
    /// ACL user; for a standalone URL it may also be in the URL.
    pub username: Option<String>,
    /// From `store.redis.password_file`, `TOKENGATE_REDIS_PASSWORD` or the URL.
    pub password: Option<Secret>,
    pub tls: Option<RedisTls>,
    pub protocol: RedisProtocol,
    pub key_prefix: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
}

impl RedisConfig {
    /// A plain standalone server with the default protocol and timeouts (tests, tools).
    pub fn standalone(url: impl Into<String>, key_prefix: impl Into<String>) -> Self {
        Self {
            topology: RedisTopology::Standalone { url: url.into() },
            username: None,
            password: None,
            tls: None,
            protocol: RedisProtocol::Resp3,
            key_prefix: key_prefix.into(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
        }
    }

    /// One line for logs and `check-config`: where, how, never the secrets.
    pub fn describe(&self) -> String {
        let nodes = |nodes: &[RedisNode]| nodes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let place = match &self.topology {
            RedisTopology::Standalone { url } => redact_url(url),
            RedisTopology::Sentinel { master, nodes: n, .. } => format!("sentinel master {master:?} via {}", nodes(n)),
            RedisTopology::Cluster { nodes: n } => format!("cluster via {}", nodes(n)),
        };
        let tls = match &self.tls {
            None => "no TLS",
            Some(RedisTls { client: Some(_), .. }) => "mutual TLS",
            Some(_) => "TLS",
        };
        let user = self.username.as_deref().map(|u| format!(", user {u}")).unwrap_or_default();
        let password = if self.password.is_some() { ", password set" } else { "" };
        format!("{place}, {tls}{user}{password}, key prefix {{{}}}", self.key_prefix)
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("where", &self.describe())
            .field("protocol", &self.protocol)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

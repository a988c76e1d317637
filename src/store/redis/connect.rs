//! How the store reaches Redis for the configured topology: the command [`Link`] every store
//! operation goes through, and the [`FeedSource`] the invalidation subscription connects with.
//!
//! - standalone: a [`ConnectionManager`] (reconnects by itself) and a pub/sub connection;
//! - Sentinel: a [`MasterLink`] that follows whichever server the sentinels name as master;
//! - Cluster: the `redis` crate's cluster client (slot routing, `MOVED`/`ASK`, failover) and a
//!   second cluster connection for sharded pub/sub.
//!
//! Credentials and TLS come from [`RedisConfig`] and are set on every connection here, never in
//! a URL that could reach a log line.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use redis::{
    ClientTlsConfig, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, ProtocolVersion, RedisFuture,
    RedisResult, TlsCertificates, TlsMode, Value,
};

use super::sentinel::MasterLink;
use crate::config::{RedisConfig, RedisNode, RedisProtocol, RedisTopology};

/// The command connection, whatever the topology. Cheap to clone: every clone shares the same
/// multiplexed connections.
#[derive(Clone)]
pub(super) enum Link {
    Direct(ConnectionManager),
    Sentinel(MasterLink),
    Cluster(ClusterConnection),
}

/// What the invalidation subscription connects with.
pub(super) enum FeedSource {
    /// Plain pub/sub on this server (standalone).
    Direct(Box<redis::Client>),
    /// Plain pub/sub on the current master (Sentinel); resubscribes when the master changes.
    Sentinel(MasterLink),
    /// Sharded pub/sub (`SSUBSCRIBE`) on the shard that owns the channel's slot (Cluster).
    Cluster(Box<redis::cluster::ClusterClientBuilder>),
}

/// Builds the command link and the feed source without connecting: the first command connects.
/// Must be called inside a tokio runtime.
pub(super) fn open(config: &RedisConfig) -> RedisResult<(Link, FeedSource)> {
    let tls = certificates(config);
    match &config.topology {
        RedisTopology::Standalone { url } => {
            let info = with_settings(url.as_str().into_connection_info()?, config);
            let client = match tls {
                Some(certs) => redis::Client::build_with_tls(info, certs)?,
                None => redis::Client::open(info)?,
            };
            let manager_config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.command_timeout))
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(20))
                .set_max_delay(Duration::from_millis(500));
            let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)?;
            Ok((Link::Direct(manager), FeedSource::Direct(Box::new(client))))
        }
        RedisTopology::Sentinel { master, nodes, db, auth } => {
            let addrs = nodes.iter().map(|n| addr(n, tls.is_some())).collect::<RedisResult<Vec<_>>>()?;
            let mut builder = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)?
                .set_client_to_redis_db(*db)
                .set_client_to_redis_protocol(protocol(config))
                .set_client_to_sentinel_protocol(protocol(config));
            if let Some(user) = &config.username {
                builder = builder.set_client_to_redis_username(user);
            }
            if let Some(password) = &config.password {
                builder = builder.set_client_to_redis_password(password.expose());
            }
            if let Some(user) = &auth.username {
                builder = builder.set_client_to_sentinel_username(user);
            }
            if let Some(password) = &auth.password {
                builder = builder.set_client_to_sentinel_password(password.expose());
            }
            if let Some(certs) = tls {
                builder = builder
                    .set_client_to_redis_tls_mode(TlsMode::Secure)
                    .set_client_to_redis_certificates(certs.clone())
                    .set_client_to_sentinel_tls_mode(TlsMode::Secure)
                    .set_client_to_sentinel_certificates(certs);
            }
            let link = MasterLink::new(builder.build()?, config.connect_timeout, config.command_timeout);
            Ok((Link::Sentinel(link.clone()), FeedSource::Sentinel(link)))
        }
        RedisTopology::Cluster { nodes } => {
            let commands = cluster(nodes, config)?.build()?.get_pending_async_connection_with_config(
                redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(config.connect_timeout)
                    .set_response_timeout(config.command_timeout),
            );
            Ok((Link::Cluster(commands), FeedSource::Cluster(Box::new(cluster(nodes, config)?))))
        }
    }
}

/// A cluster client builder with the seed nodes, credentials, TLS and timeouts.
fn cluster(nodes: &[RedisNode], config: &RedisConfig) -> RedisResult<ClusterClientBuilder> {
    let tls = certificates(config);
    let infos = nodes
        .iter()
        .map(|n| Ok(with_settings(addr(n, tls.is_some())?.into_connection_info()?, config)))
        .collect::<RedisResult<Vec<_>>>()?;
    let mut builder = ClusterClientBuilder::new(infos)
        .use_protocol(ProtocolVersion::RESP3)
        .connection_timeout(config.connect_timeout)
        .response_timeout(config.command_timeout)
        .retries(2);
    if let Some(user) = &config.username {
        builder = builder.username(user);
    }
    if let Some(password) = &config.password {
        builder = builder.password(password.expose());
    }
    if let Some(certs) = tls {
        builder = builder.tls(TlsMode::Secure).certs(certs);
    }
    Ok(builder)
}

fn protocol(config: &RedisConfig) -> ProtocolVersion {
    match config.protocol {
        RedisProtocol::Resp2 => ProtocolVersion::RESP2,
        RedisProtocol::Resp3 => ProtocolVersion::RESP3,
    }
}

/// Sets the configured user, password and protocol on a node's connection info.
fn with_settings(info: ConnectionInfo, config: &RedisConfig) -> ConnectionInfo {
    let mut redis = info.redis_settings().clone().set_protocol(protocol(config));
    if let Some(user) = &config.username {
        redis = redis.set_username(user);
    }
    if let Some(password) = &config.password {
        redis = redis.set_password(password.expose());
    }
    info.set_redis_settings(redis)
}

fn addr(node: &RedisNode, tls: bool) -> RedisResult<ConnectionAddr> {
    let scheme = if tls { "rediss" } else { "redis" };
    Ok(format!("{scheme}://{node}").into_connection_info()?.addr().clone())
}

/// The CA bundle and client certificate, when TLS is on. Without a CA bundle the system's
/// trust store is used.
fn certificates(config: &RedisConfig) -> Option<TlsCertificates> {
    let tls = config.tls.as_ref()?;
    Some(TlsCertificates {
        client_tls: tls.client.as_ref().map(|(cert, key)| ClientTlsConfig {
            client_cert: cert.clone(),
            client_key: key.expose().as_bytes().to_vec(),
        }),
        root_cert: tls.ca_pem.clone(),
    })
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Direct(c) => c.req_packed_command(cmd),
            Self::Sentinel(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Direct(c) => c.get_db(),
            Self::Sentinel(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

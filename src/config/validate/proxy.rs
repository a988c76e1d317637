//! `upstream` and `proxy`: where requests go and how the data path treats them (header limits,
//! timeouts, forwarded headers, failed-authentication limits, TLS).

use super::Ctx;
use crate::config::raw::RawProxy;
use crate::config::{ConfigError, FailedAuthConfig, OnStoreError, ProxyConfig, TlsFiles, XForwarded, defaults};
use crate::net::server::ServerSettings;

/// `upstream`: required, an `http://` or `https://` URL with a host.
pub(super) fn validate_upstream(upstream: Option<String>, ctx: &Ctx) -> Result<url::Url, ConfigError> {
    let upstream_raw = upstream.ok_or_else(|| ctx.error("upstream", "required: the URL to forward requests to"))?;
    let upstream = url::Url::parse(&upstream_raw)
        .map_err(|e| ctx.error("upstream", format!("invalid URL {upstream_raw:?}: {e}")))?;
    if !matches!(upstream.scheme(), "http" | "https") || upstream.host().is_none() {
        return Err(ctx.error("upstream", format!("{upstream_raw:?} must be an http:// or https:// URL with a host")));
    }
    Ok(upstream)
}

pub(super) fn validate_proxy(raw: RawProxy, ctx: &Ctx) -> Result<ProxyConfig, ConfigError> {
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
    let mut trusted_proxies = Vec::new();
    for (i, p) in raw.trusted_proxies.unwrap_or_default().iter().enumerate() {
        let net =
            p.parse::<ipnet::IpNet>().or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from)).map_err(
                |_| ctx.error(&format!("proxy.trusted_proxies[{i}]"), format!("{p:?} is not an address or CIDR")),
            )?;
        trusted_proxies.push(net.trunc());
    }
    let proxy_protocol = raw.proxy_protocol.unwrap_or(false);
    if proxy_protocol && trusted_proxies.is_empty() {
        return Err(ctx.error(
            "proxy.proxy_protocol",
            "name the load balancers whose PROXY headers are believed in `proxy.trusted_proxies`",
        ));
    }
    let token_limits_on_store_error = match raw.token_limits_on_store_error.as_deref() {
        None | Some("open") => OnStoreError::Open,
        Some("closed") => OnStoreError::Closed,
        Some(other) => {
            return Err(
                ctx.error("proxy.token_limits_on_store_error", format!("{other:?} is not one of: open, closed"))
            );
        }
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
        connections: ServerSettings {
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
            proxy_protocol: proxy_protocol.then(|| trusted_proxies.clone().into()),
        },
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
        trusted_proxies,
        token_limits_on_store_error,
    })
}

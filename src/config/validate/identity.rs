//! `identity`: directory groups to roles and admin roles, the people named as operators or
//! auditors, and sign-in (OpenID Connect, trusted headers, sessions).

use std::collections::BTreeMap;

use http::HeaderName;

use super::Ctx;
use crate::config::identity::{ClaimNames, GroupGrant, IdentityConfig, OidcConfig, SessionConfig, TrustedHeaders};
use crate::config::raw::{RawIdentity, RawOidc, RawSessions, RawTrustedHeaders};
use crate::config::secret::{self, OIDC_CLIENT_SECRET_ENV, SESSION_KEYS_ENV};
use crate::config::{ConfigError, Secret, defaults};
use crate::policy::scope::Scope;
use crate::token::{AdminRole, valid_subject_id};

/// Longest directory group name.
const MAX_GROUP_NAME: usize = 256;

pub(super) fn validate_identity(
    raw: RawIdentity,
    roles: &[String],
    env: &BTreeMap<String, String>,
    ctx: &Ctx,
) -> Result<IdentityConfig, ConfigError> {
    let mut groups = BTreeMap::new();
    for (name, g) in raw.groups.unwrap_or_default() {
        let field = format!("identity.groups.{name}");
        if name.is_empty() || name.len() > MAX_GROUP_NAME || name.chars().any(char::is_control) {
            return Err(
                ctx.error(&field, format!("group names are 1-{MAX_GROUP_NAME} bytes without control characters"))
            );
        }
        let granted = ctx.roles(&format!("{field}.roles"), &g.roles.unwrap_or_default(), roles)?;
        let admin =
            g.admin.map(|a| a.parse::<AdminRole>().map_err(|e| ctx.error(&format!("{field}.admin"), e))).transpose()?;
        let mut scopes: Vec<Scope> = Vec::new();
        for (i, s) in g.scopes.unwrap_or_default().iter().enumerate() {
            let scope = s.parse::<Scope>().map_err(|e| ctx.error(&format!("{field}.scopes[{i}]"), e.to_string()))?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        if granted.is_empty() && scopes.is_empty() && admin.is_none() {
            return Err(ctx.error(&field, "grants nothing: give it `roles`, `scopes` or `admin`"));
        }
        groups.insert(name, GroupGrant { roles: granted, scopes, admin });
    }
    let ids = |field: &str, ids: Option<Vec<String>>| -> Result<Vec<String>, ConfigError> {
        let ids = ids.unwrap_or_default();
        if let Some((i, bad)) = ids.iter().enumerate().find(|(_, id)| !valid_subject_id(id)) {
            return Err(ctx.error(
                &format!("{field}[{i}]"),
                format!("{bad:?} is not a principal id (1-128 characters from A-Z a-z 0-9 . _ @ : -)"),
            ));
        }
        Ok(ids)
    };
    let operators = ids("identity.operators", raw.operators)?;
    let auditors = ids("identity.auditors", raw.auditors)?;
    let oidc = raw.oidc.map(|o| validate_oidc(o, env, ctx)).transpose()?;
    let trusted_headers = raw.trusted_headers.map(|t| validate_trusted_headers(t, ctx)).transpose()?;
    let sessions = match (&oidc, raw.sessions) {
        (Some(_), s) => Some(validate_sessions(s.unwrap_or_default(), env, ctx)?),
        (None, Some(s)) => Some(validate_sessions(s, env, ctx)?),
        (None, None) => None,
    };
    Ok(IdentityConfig { groups, operators, auditors, oidc, trusted_headers, sessions })
}

/// Shortest session key, in bytes.
const MIN_SESSION_KEY: usize = 32;

fn validate_oidc(raw: RawOidc, env: &BTreeMap<String, String>, ctx: &Ctx) -> Result<OidcConfig, ConfigError> {
    let url = |field: &str, value: Option<String>| -> Result<url::Url, ConfigError> {
        let value = value.ok_or_else(|| ctx.error(field, "is required"))?;
        let u = url::Url::parse(&value).map_err(|e| ctx.error(field, format!("invalid URL {value:?}: {e}")))?;
        let loopback = match u.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        match u.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(ctx.error(field, "must be an https:// URL (http:// only on a loopback address)")),
        }
        if u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() {
            return Err(ctx.error(field, "must not carry a query, a fragment or credentials"));
        }
        Ok(u)
    };
    let issuer = raw.issuer.clone();
    url("identity.oidc.issuer", raw.issuer)?;
    let issuer = issuer.expect("checked by url()");
    let redirect_url = url("identity.oidc.redirect_url", raw.redirect_url)?;
    if redirect_url.path() != "/auth/callback" {
        return Err(ctx.error("identity.oidc.redirect_url", "must end in /auth/callback (this listener's callback)"));
    }
    let client_id = raw.client_id.ok_or_else(|| ctx.error("identity.oidc.client_id", "is required"))?;
    if client_id.is_empty() || client_id.len() > 256 || client_id.chars().any(char::is_control) {
        return Err(ctx.error("identity.oidc.client_id", "1-256 characters without control characters"));
    }
    let client_secret = secret::env_or_file(
        OIDC_CLIENT_SECRET_ENV,
        "identity.oidc.client_secret_file",
        raw.client_secret_file.as_deref(),
        env,
        ctx,
    )?;
    let mut scopes = vec![];
    for (i, s) in raw.scopes.unwrap_or_else(|| vec!["profile".into(), "email".into()]).into_iter().enumerate() {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\') {
            return Err(ctx.error(&format!("identity.oidc.scopes[{i}]"), format!("invalid scope {s:?}")));
        }
        if s != "openid" && !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    let c = raw.claims.unwrap_or_default();
    let claim = |field: &str, v: Option<String>, default: &str| -> Result<String, ConfigError> {
        let v = v.unwrap_or_else(|| default.to_string());
        if v.is_empty() || v.len() > 128 || v.chars().any(char::is_control) {
            return Err(ctx.error(field, "a claim name: 1-128 characters"));
        }
        Ok(v)
    };
    let claims = ClaimNames {
        id: claim("identity.oidc.claims.id", c.id, "sub")?,
        name: claim("identity.oidc.claims.name", c.name, "name")?,
        email: claim("identity.oidc.claims.email", c.email, "email")?,
        groups: claim("identity.oidc.claims.groups", c.groups, "groups")?,
        org: c.org.map(|o| claim("identity.oidc.claims.org", Some(o), "")).transpose()?,
    };
    if let Some(org) = &raw.org
        && !valid_subject_id(org)
    {
        return Err(ctx.error("identity.oidc.org", format!("{org:?} is not an organization id")));
    }
    Ok(OidcConfig { issuer, client_id, client_secret, redirect_url, scopes, claims, org: raw.org })
}

fn validate_trusted_headers(raw: RawTrustedHeaders, ctx: &Ctx) -> Result<TrustedHeaders, ConfigError> {
    let mut peers = Vec::new();
    for (i, p) in raw.peers.unwrap_or_default().iter().enumerate() {
        let net = p
            .parse::<ipnet::IpNet>()
            .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| {
                ctx.error(&format!("identity.trusted_headers.peers[{i}]"), format!("{p:?} is not an address or CIDR"))
            })?;
        if net.prefix_len() == 0 {
            return Err(ctx.error(
                &format!("identity.trusted_headers.peers[{i}]"),
                "would believe identity headers from anyone: name the auth proxies' addresses",
            ));
        }
        peers.push(net.trunc());
    }
    if peers.is_empty() {
        return Err(ctx.error("identity.trusted_headers.peers", "name the auth proxies whose headers are believed"));
    }
    let header = |field: &str, v: Option<String>| -> Result<Option<HeaderName>, ConfigError> {
        v.map(|v| {
            HeaderName::from_bytes(v.as_bytes()).map_err(|_| {
                ctx.error(&format!("identity.trusted_headers.{field}"), format!("{v:?} is not a header name"))
            })
        })
        .transpose()
    };
    Ok(TrustedHeaders {
        peers,
        user: header("user", raw.user)?.unwrap_or(HeaderName::from_static("x-forwarded-user")),
        email: header("email", raw.email.or(Some("x-forwarded-email".into())))?,
        name: header("name", raw.name.or(Some("x-forwarded-preferred-username".into())))?,
        groups: header("groups", raw.groups.or(Some("x-forwarded-groups".into())))?,
    })
}

fn validate_sessions(
    raw: RawSessions,
    env: &BTreeMap<String, String>,
    ctx: &Ctx,
) -> Result<SessionConfig, ConfigError> {
    let mut keys: Vec<String> = Vec::new();
    match (env.get(SESSION_KEYS_ENV), raw.keys_file.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ctx.error(
                "identity.sessions.keys_file",
                format!("set either {SESSION_KEYS_ENV} or `identity.sessions.keys_file`, not both"),
            ));
        }
        (Some(v), None) => keys.extend(v.split(',').map(str::trim).filter(|k| !k.is_empty()).map(String::from)),
        (None, Some(file)) => {
            let text = secret::read_secret_file("identity.sessions.keys_file", file, ctx)?;
            keys.extend(text.lines().map(str::trim).filter(|k| !k.is_empty() && !k.starts_with('#')).map(String::from));
        }
        (None, None) => {}
    }
    if keys.is_empty() {
        return Err(ctx.error(
            "identity.sessions.keys_file",
            format!("sign-in needs session keys ({SESSION_KEYS_ENV} or `identity.sessions.keys_file`), e.g. `openssl rand -base64 32`"),
        ));
    }
    if keys.iter().any(|k| k.len() < MIN_SESSION_KEY) {
        return Err(ctx.error(
            "identity.sessions.keys_file",
            format!("every session key must be at least {MIN_SESSION_KEY} characters"),
        ));
    }
    let lifetime = ctx.duration("identity.sessions.lifetime", raw.lifetime, defaults::SESSION_LIFETIME)?;
    let idle_timeout =
        ctx.duration("identity.sessions.idle_timeout", raw.idle_timeout, defaults::SESSION_IDLE_TIMEOUT)?;
    if idle_timeout > lifetime {
        return Err(ctx.error("identity.sessions.idle_timeout", "must not exceed `identity.sessions.lifetime`"));
    }
    if idle_timeout < std::time::Duration::from_secs(60) {
        return Err(ctx.error("identity.sessions.idle_timeout", "must be at least 1m"));
    }
    Ok(SessionConfig { keys: keys.into_iter().map(Secret::new).collect(), lifetime, idle_timeout })
}

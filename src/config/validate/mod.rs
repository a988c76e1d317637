//! Stage two of config loading: [`validate`] turns the raw structs ([`super::raw`]) into the
//! typed [`Config`], applying the documented defaults ([`super::defaults`]) and checking every
//! value. One file per section, called in the order of the file's sections; [`Ctx`] holds what
//! they share: errors that name the field and the environment variable that set it, and the
//! parsing of addresses, durations and role lists.

mod admin;
mod cache;
mod identity;
mod notifications;
mod proxy;
mod redis;
mod roles;
mod runtime;
mod scim;
mod store;
mod tokens;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::raw::{DurationText, RawConfig};
use super::{Config, ConfigError, defaults};
use admin::validate_admin;
use cache::validate_cache;
use identity::validate_identity;
use notifications::validate_notifications;
use proxy::{validate_proxy, validate_upstream};
use roles::{validate_roles, validate_routes};
use runtime::{validate_log, validate_runtime, validate_shutdown};
use scim::validate_scim;
use store::{validate_audit, validate_last_used, validate_store};
use tokens::validate_tokens;

/// Stage two: the typed config from the parsed file. `env` is the process environment (for the
/// secrets read from it); `ctx` knows which fields the overrides set.
pub(super) fn validate(raw: RawConfig, env: &BTreeMap<String, String>, ctx: &Ctx) -> Result<Config, ConfigError> {
    let listen = ctx.addr("listen", raw.listen, defaults::LISTEN)?;
    let upstream = validate_upstream(raw.upstream, ctx)?;

    let admin = validate_admin(raw.admin.unwrap_or_default(), env, ctx)?;
    if admin.listen == listen && listen.port() != 0 {
        return Err(ctx.error("admin.listen", format!("must differ from `listen` ({listen})")));
    }

    let store = validate_store(raw.store.unwrap_or_default(), env, ctx)?;
    let roles = validate_roles(raw.roles, ctx)?;
    let tokens = validate_tokens(raw.tokens.unwrap_or_default(), &roles, env, ctx)?;
    let routes = validate_routes(raw.routes, &roles, ctx)?;
    let proxy = validate_proxy(raw.proxy.unwrap_or_default(), ctx)?;
    let cache = validate_cache(raw.cache.unwrap_or_default(), ctx)?;
    let last_used = validate_last_used(raw.last_used.unwrap_or_default(), ctx)?;
    let notifications = validate_notifications(raw.notifications.unwrap_or_default(), env, ctx)?;
    let audit = validate_audit(raw.audit.unwrap_or_default(), ctx)?;
    let identity = validate_identity(raw.identity.unwrap_or_default(), &roles, env, ctx)?;
    let scim = validate_scim(raw.scim.unwrap_or_default(), env, ctx)?;
    if scim.token.as_ref().is_some_and(|t| admin.keys.contains(t.expose())) {
        // Otherwise an admin key would open /scim/v2 (and the SCIM token /v1).
        return Err(ctx.error("scim.token_file", "the SCIM token must differ from every admin key"));
    }
    let shutdown = validate_shutdown(raw.shutdown.unwrap_or_default(), ctx)?;
    let runtime = validate_runtime(raw.runtime.unwrap_or_default(), ctx)?;
    let log = validate_log(raw.log.unwrap_or_default(), ctx)?;

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
        audit,
        identity,
        scim,
        shutdown,
        runtime,
        log,
    })
}

/// Error context: which fields came from which environment variable.
pub(in crate::config) struct Ctx<'a> {
    overridden: &'a BTreeMap<String, String>,
}

impl<'a> Ctx<'a> {
    pub(in crate::config) fn new(overridden: &'a BTreeMap<String, String>) -> Self {
        Self { overridden }
    }

    /// The error about `field`, naming the environment variable that set it, if one did.
    pub(in crate::config) fn error(&self, field: &str, problem: impl Into<String>) -> ConfigError {
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

    /// A socket address, `default` when unset.
    fn addr(&self, field: &str, value: Option<String>, default: &str) -> Result<SocketAddr, ConfigError> {
        let value = value.unwrap_or_else(|| default.to_string());
        value.parse().map_err(|_| {
            self.error(field, format!("invalid socket address {value:?}: expected IP:port, e.g. {default}"))
        })
    }

    /// A humantime duration (`500ms`, `30s`, `5m`) greater than zero, `default` when unset.
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

    /// A role list: each one of `known`, duplicates dropped (first one kept).
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

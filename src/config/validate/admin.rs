//! `admin`: the admin listener, its operator keys and its limits.

use std::collections::BTreeMap;

use super::Ctx;
use crate::config::admin_keys;
use crate::config::raw::RawAdmin;
use crate::config::secret::ADMIN_KEYS_ENV;
use crate::config::{AdminConfig, ConfigError, defaults};

pub(super) fn validate_admin(
    raw: RawAdmin,
    env: &BTreeMap<String, String>,
    ctx: &Ctx,
) -> Result<AdminConfig, ConfigError> {
    let listen = ctx.addr("admin.listen", raw.listen, defaults::ADMIN_LISTEN)?;
    let keys = admin_keys::admin_keys(raw.keys_file.as_deref(), env, ctx)?;
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
    let keys_file = raw.keys_file.map(std::path::PathBuf::from);
    Ok(AdminConfig { listen, keys, keys_file, max_body_bytes, max_connections, max_concurrent_calls })
}

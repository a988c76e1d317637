//! `roles` and `routes`: the roles tokens may hold and the ordered route rules that require them.

use std::collections::HashSet;

use super::Ctx;
use crate::config::raw::RawRoute;
use crate::config::{ConfigError, defaults};
use crate::policy::routes::{RouteTable, RuleSpec};

pub(super) fn validate_roles(roles: Option<Vec<String>>, ctx: &Ctx) -> Result<Vec<String>, ConfigError> {
    let roles = roles.unwrap_or_else(|| defaults::ROLES.iter().map(|r| r.to_string()).collect());
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
    Ok(roles)
}

pub(super) fn validate_routes(
    routes: Option<Vec<RawRoute>>,
    roles: &[String],
    ctx: &Ctx,
) -> Result<RouteTable, ConfigError> {
    let specs: Vec<RuleSpec> = routes
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
    RouteTable::new(&specs, roles).map_err(|e| ctx.error(&format!("routes[{}].{}", e.index, e.field), e.problem))
}

fn valid_role_name(r: &str) -> bool {
    let b = r.as_bytes();
    (1..=32).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_'))
}

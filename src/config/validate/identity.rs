//! `identity`: directory groups to roles and admin roles, and the people named as operators or
//! auditors.

use std::collections::BTreeMap;

use super::Ctx;
use crate::config::ConfigError;
use crate::config::identity::{GroupGrant, IdentityConfig};
use crate::config::raw::RawIdentity;
use crate::policy::scope::Scope;
use crate::token::{AdminRole, valid_subject_id};

/// Longest directory group name.
const MAX_GROUP_NAME: usize = 256;

pub(super) fn validate_identity(raw: RawIdentity, roles: &[String], ctx: &Ctx) -> Result<IdentityConfig, ConfigError> {
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
    Ok(IdentityConfig { groups, operators, auditors })
}

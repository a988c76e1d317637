//! `tokens`: the wire format's prefixes, the expiry choices, default roles and the pepper.

use std::collections::BTreeMap;

use super::Ctx;
use crate::config::raw::RawTokens;
use crate::config::secret;
use crate::config::{ConfigError, TokensConfig, defaults};
use crate::token::{TokenFormat, TokenKind};

pub(super) fn validate_tokens(
    raw: RawTokens,
    roles: &[String],
    env: &BTreeMap<String, String>,
    ctx: &Ctx,
) -> Result<TokensConfig, ConfigError> {
    let personal = raw.personal_prefix.unwrap_or_else(|| "tgp".into());
    let organization = raw.organization_prefix.unwrap_or_else(|| "tgo".into());
    let format = TokenFormat::new(&personal, &organization).map_err(|(kind, e)| {
        let field = match kind {
            TokenKind::Personal => "tokens.personal_prefix",
            TokenKind::Organization => "tokens.organization_prefix",
        };
        ctx.error(field, e.to_string())
    })?;

    let expiry_days = raw.expiry_days.unwrap_or_else(|| defaults::EXPIRY_DAYS.to_vec());
    if expiry_days.is_empty() {
        return Err(ctx.error("tokens.expiry_days", "must offer at least one choice"));
    }
    for (i, d) in expiry_days.iter().enumerate() {
        if !(1..=3650).contains(d) {
            return Err(ctx.error(&format!("tokens.expiry_days[{i}]"), format!("{d} is outside 1..=3650 days")));
        }
        if expiry_days[..i].contains(d) {
            return Err(ctx.error(&format!("tokens.expiry_days[{i}]"), format!("duplicate choice {d}")));
        }
    }

    let default_roles = raw.default_roles.unwrap_or_else(|| {
        defaults::DEFAULT_ROLES.iter().map(|r| r.to_string()).filter(|r| roles.contains(r)).collect()
    });
    let default_roles = ctx.roles("tokens.default_roles", &default_roles, roles)?;

    let pepper = secret::pepper(raw.pepper_file, env, ctx)?;

    Ok(TokensConfig { format, expiry_days, default_roles, allow_restore: raw.allow_restore.unwrap_or(false), pepper })
}

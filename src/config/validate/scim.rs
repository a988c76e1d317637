//! `scim`: the SCIM directory endpoint's credential and the organization it gives new users.

use std::collections::BTreeMap;

use super::Ctx;
use crate::config::raw::RawScim;
use crate::config::secret::{self, SCIM_TOKEN_ENV};
use crate::config::{ConfigError, ScimConfig};
use crate::token::valid_subject_id;

pub(super) fn validate_scim(
    raw: RawScim,
    env: &BTreeMap<String, String>,
    ctx: &Ctx,
) -> Result<ScimConfig, ConfigError> {
    let token = secret::env_or_file(SCIM_TOKEN_ENV, "scim.token_file", raw.token_file.as_deref(), env, ctx)?;
    if let Some(t) = &token {
        let field = if env.contains_key(SCIM_TOKEN_ENV) { SCIM_TOKEN_ENV } else { "scim.token_file" };
        if t.expose().len() < ScimConfig::MIN_TOKEN_LEN {
            return Err(
                ctx.error(field, format!("the SCIM token must be at least {} characters", ScimConfig::MIN_TOKEN_LEN))
            );
        }
        if !t.expose().bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ctx.error(field, "the SCIM token must be printable ASCII without spaces"));
        }
    }
    if let Some(org) = &raw.org
        && !valid_subject_id(org)
    {
        return Err(ctx.error(
            "scim.org",
            format!("{org:?} is not an organization id (1-128 characters from A-Z a-z 0-9 . _ @ : -)"),
        ));
    }
    Ok(ScimConfig { token, org: raw.org })
}

//! Secrets: [`Secret`] (redacted in `Debug`), and reading secrets, the webhook signing secret and
//! the pepper from the environment or from files (the operator keys: [`super::admin_keys`]).

use std::collections::BTreeMap;

use super::ConfigError;
use super::validate::Ctx;
use crate::token::digest::Pepper;

/// The environment variable holding the pepper itself (alternative to `tokens.pepper_file`).
pub const PEPPER_ENV: &str = "TOKENGATE_PEPPER";
/// Comma-separated operator keys (alternative to `admin.keys_file`).
pub const ADMIN_KEYS_ENV: &str = "TOKENGATE_ADMIN_KEYS";
/// The webhook signing secret (alternative to `notifications.secret_file`).
pub const WEBHOOK_SECRET_ENV: &str = "TOKENGATE_WEBHOOK_SECRET";
/// The SCIM directory's bearer credential (alternative to `scim.token_file`).
pub const SCIM_TOKEN_ENV: &str = "TOKENGATE_SCIM_TOKEN";
/// The Redis password (alternative to `store.redis.password_file` or a password in the URL).
pub const REDIS_PASSWORD_ENV: &str = "TOKENGATE_REDIS_PASSWORD";
/// The sentinels' password (alternative to `store.redis.sentinel.password_file`).
pub const REDIS_SENTINEL_PASSWORD_ENV: &str = "TOKENGATE_REDIS_SENTINEL_PASSWORD";

/// The OpenID Connect client secret (alternative to `identity.oidc.client_secret_file`).
pub const OIDC_CLIENT_SECRET_ENV: &str = "TOKENGATE_OIDC_CLIENT_SECRET";
/// Session keys, comma-separated, the sealing key first (alternative to
/// `identity.sessions.keys_file`).
pub const SESSION_KEYS_ENV: &str = "TOKENGATE_SESSION_KEYS";

/// A secret string from the environment or a file; redacted in `Debug`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// Whether `candidate` is this secret, compared in constant time (for equal lengths).
    pub fn matches(&self, candidate: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

/// Reads a secret file, without its trailing newline.
pub(super) fn read_secret_file(field: &str, path: &str, ctx: &Ctx) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ctx.error(field, format!("cannot read {path}: {e}")))?;
    Ok(text.trim_end().to_string())
}

/// A secret from the environment variable `var` or the file at `file_field`, not both; `None`
/// when neither is set. A file's trailing whitespace is removed.
pub(super) fn env_or_file(
    var: &str,
    file_field: &str,
    file: Option<&str>,
    env: &BTreeMap<String, String>,
    ctx: &Ctx,
) -> Result<Option<Secret>, ConfigError> {
    match (env.get(var), file) {
        (Some(_), Some(_)) => Err(ctx.error(file_field, format!("set either {var} or `{file_field}`, not both"))),
        (Some(v), None) => Ok(Some(Secret(v.clone()))),
        (None, Some(file)) => Ok(Some(Secret(read_secret_file(file_field, file, ctx)?))),
        (None, None) => Ok(None),
    }
}

/// The pepper: `TOKENGATE_PEPPER` or `tokens.pepper_file` (trailing whitespace removed), not both;
/// at least [`Pepper::MIN_LEN`] bytes.
pub(super) fn pepper(
    pepper_file: Option<String>,
    env: &BTreeMap<String, String>,
    ctx: &Ctx,
) -> Result<Option<Pepper>, ConfigError> {
    let pepper_bytes = match (env.get(PEPPER_ENV), pepper_file) {
        (Some(_), Some(_)) => {
            return Err(
                ctx.error("tokens.pepper_file", format!("set either {PEPPER_ENV} or `tokens.pepper_file`, not both"))
            );
        }
        (Some(v), None) => Some((PEPPER_ENV.to_string(), v.clone().into_bytes())),
        (None, Some(file)) => {
            let mut bytes = std::fs::read(&file)
                .map_err(|e| ctx.error("tokens.pepper_file", format!("cannot read {file}: {e}")))?;
            while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
                bytes.pop();
            }
            Some(("tokens.pepper_file".to_string(), bytes))
        }
        (None, None) => None,
    };
    Ok(match pepper_bytes {
        None => None,
        Some((source, bytes)) => Some(Pepper::new(bytes).ok_or_else(|| {
            ctx.error(
                "tokens.pepper_file",
                format!("the pepper from {source} must be at least {} bytes", Pepper::MIN_LEN),
            )
        })?),
    })
}

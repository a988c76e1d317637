//! `notifications`: the webhooks told about new tokens, and their signing secret.

use std::collections::BTreeMap;

use super::Ctx;
use crate::config::raw::RawNotifications;
use crate::config::secret::{self, WEBHOOK_SECRET_ENV};
use crate::config::{ConfigError, NotificationsConfig, defaults};

pub(super) fn validate_notifications(
    raw: RawNotifications,
    env: &BTreeMap<String, String>,
    ctx: &Ctx,
) -> Result<NotificationsConfig, ConfigError> {
    let mut webhooks = Vec::new();
    for (i, hook) in raw.webhooks.unwrap_or_default().into_iter().enumerate() {
        let field = format!("notifications.webhooks[{i}].url");
        let url =
            url::Url::parse(&hook.url).map_err(|e| ctx.error(&field, format!("invalid URL {:?}: {e}", hook.url)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(ctx.error(&field, format!("{:?} must be an http:// or https:// URL with a host", hook.url)));
        }
        webhooks.push(url);
    }
    let secret =
        secret::env_or_file(WEBHOOK_SECRET_ENV, "notifications.secret_file", raw.secret_file.as_deref(), env, ctx)?;
    if !webhooks.is_empty() && secret.as_ref().is_none_or(|s| s.expose().len() < 16) {
        return Err(ctx.error(
            "notifications.secret_file",
            format!("webhooks need a signing secret of at least 16 characters ({WEBHOOK_SECRET_ENV} or notifications.secret_file)"),
        ));
    }
    let max_attempts = raw.max_attempts.unwrap_or(defaults::WEBHOOK_MAX_ATTEMPTS);
    if !(1..=20).contains(&max_attempts) {
        return Err(ctx.error("notifications.max_attempts", "must be between 1 and 20"));
    }
    Ok(NotificationsConfig {
        webhooks,
        secret,
        max_attempts,
        timeout: ctx.duration("notifications.timeout", raw.timeout, defaults::WEBHOOK_TIMEOUT)?,
    })
}

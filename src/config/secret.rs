//! Secrets: [`Secret`] (redacted in `Debug`), the operator keys ([`AdminKeys`]), and reading
//! them, the webhook signing secret and the pepper from the environment or from files.

use std::collections::BTreeMap;

use super::ConfigError;
use super::validate::Ctx;
use crate::token::digest::Pepper;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// Where an operator key was configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// `admin.keys_file` (re-read while running).
    File,
    /// `TOKENGATE_ADMIN_KEYS` (read once, at start).
    Env,
}

impl KeySource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Env => "env",
        }
    }
}

/// One operator key: its name (what the audit log records), the key itself (redacted in
/// `Debug`), when it stops working, and where it came from.
#[derive(Debug, Clone)]
pub struct AdminKey {
    pub name: String,
    secret: Secret,
    pub expires_at: Option<SystemTime>,
    pub source: KeySource,
}

impl AdminKey {
    pub fn new(name: impl Into<String>, secret: Secret, expires_at: Option<SystemTime>, source: KeySource) -> Self {
        Self { name: name.into(), secret, expires_at, source }
    }

    /// Whether the key has expired at `now` (it works up to, not including, its expiry).
    pub fn expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

/// The configured operator keys, named and unique.
#[derive(Debug, Clone, Default)]
pub struct AdminKeys(Vec<AdminKey>);

impl AdminKeys {
    /// Minimum key length, in bytes.
    pub const MIN_LEN: usize = 16;
    /// Maximum name length.
    pub const MAX_NAME_LEN: usize = 64;

    /// The keys as given; the caller has checked that names and keys are unique
    /// ([`AdminKeys::check_unique`]).
    pub fn new(keys: Vec<AdminKey>) -> Self {
        Self(keys)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &AdminKey> {
        self.0.iter()
    }

    /// The key `candidate` is, unless it has expired at `now`. Every key is compared, in
    /// constant time each, whichever matches.
    pub fn find(&self, candidate: &str, now: SystemTime) -> Option<&AdminKey> {
        use subtle::{ConditionallySelectable, ConstantTimeEq};
        let (found, index) =
            self.0.iter().enumerate().fold((subtle::Choice::from(0), 0u64), |(found, index), (i, k)| {
                let eq = k.secret.0.as_bytes().ct_eq(candidate.as_bytes());
                (found | eq, u64::conditional_select(&index, &(i as u64), eq))
            });
        let key = bool::from(found).then(|| &self.0[index as usize])?;
        (!key.expired(now)).then_some(key)
    }

    /// Whether `candidate` is one of the keys and has not expired.
    pub fn contains(&self, candidate: &str) -> bool {
        self.find(candidate, SystemTime::now()).is_some()
    }

    /// The first repeated name or key among `keys`: `Err((later, earlier, "name" | "key"))`,
    /// indexes into `keys`.
    pub fn check_unique(keys: &[AdminKey]) -> Result<(), (usize, usize, &'static str)> {
        for (i, k) in keys.iter().enumerate() {
            if let Some(earlier) = keys[..i].iter().position(|e| e.name == k.name) {
                return Err((i, earlier, "name"));
            }
            if let Some(earlier) = keys[..i].iter().position(|e| e.secret.0 == k.secret.0) {
                return Err((i, earlier, "key"));
            }
        }
        Ok(())
    }
}

/// A line of `admin.keys_file` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct KeyLineError {
    /// 1-based.
    pub line: usize,
    pub problem: String,
}

/// Whether `name` is a valid key name: 1-64 characters `[A-Za-z0-9._-]`.
pub fn valid_key_name(name: &str) -> bool {
    (1..=AdminKeys::MAX_NAME_LEN).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Never repeats the name: a line written key first would put the key there.
fn name_problem() -> String {
    format!(
        "a name (the first of `<name> <key> [<expires>]`) must be 1-{} characters of A-Z, a-z, 0-9, '.', '_' and '-'",
        AdminKeys::MAX_NAME_LEN
    )
}

fn too_short() -> String {
    format!("every admin key must be at least {} characters", AdminKeys::MIN_LEN)
}

/// An RFC 3339 instant: `2027-01-31T00:00:00Z`, fractions and `+hh:mm`/`-hh:mm` offsets allowed.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let (utc, offset_ms): (String, i64) = match text.as_bytes() {
        [.., b'Z' | b'z'] => (format!("{}Z", &text[..text.len() - 1]), 0),
        [.., sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]
            if [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()) && text.len() > 6 =>
        {
            let digits = |a: &u8, b: &u8| i64::from((a - b'0') * 10 + (b - b'0'));
            let (hours, minutes) = (digits(h1, h2), digits(m1, m2));
            if hours > 23 || minutes > 59 {
                return None;
            }
            let ms = (hours * 60 + minutes) * 60_000;
            (format!("{}Z", &text[..text.len() - 6]), if *sign == b'+' { ms } else { -ms })
        }
        _ => return None,
    };
    // humantime accepts a space for the `T`; RFC 3339 asks for the `T`.
    if utc.as_bytes().get(10).is_none_or(|b| !b.eq_ignore_ascii_case(&b'T')) {
        return None;
    }
    let at = humantime::parse_rfc3339(&utc.replacen('t', "T", 1)).ok()?;
    let ms = i64::try_from(at.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
    let ms = u64::try_from(ms.checked_sub(offset_ms)?).ok()?;
    Some(UNIX_EPOCH + Duration::from_millis(ms))
}

/// Parses `admin.keys_file`: one key a line, `<name> <key>`, `<name> <key> <expires RFC 3339>` or
/// just `<key>` (named `key-<line number>`); blank lines and lines starting with `#` are skipped.
/// Names are unique, and so are keys. No error repeats a key.
pub fn parse_keys_file(text: &str) -> Result<Vec<AdminKey>, KeyLineError> {
    let mut keys = Vec::new();
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |problem: String| KeyLineError { line, problem };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        let (name, key, expires) = match fields.as_slice() {
            [key] => (format!("key-{line}"), *key, None),
            [name, key] => (name.to_string(), *key, None),
            [name, key, expires] => (name.to_string(), *key, Some(*expires)),
            _ => return Err(err("expected `<name> <key>` or `<name> <key> <expires, RFC 3339>`".into())),
        };
        if !valid_key_name(&name) {
            return Err(err(name_problem()));
        }
        if key.len() < AdminKeys::MIN_LEN {
            return Err(err(too_short()));
        }
        let expires_at = match expires {
            None => None,
            Some(text) => Some(parse_rfc3339(text).ok_or_else(|| {
                err("the expiry (the third field) is not an RFC 3339 time such as 2027-01-31T00:00:00Z".into())
            })?),
        };
        keys.push(AdminKey::new(name, Secret::new(key), expires_at, KeySource::File));
        lines.push(line);
    }
    AdminKeys::check_unique(&keys).map_err(|(i, earlier, what)| KeyLineError {
        line: lines[i],
        problem: format!("repeats the {what} of line {}", lines[earlier]),
    })?;
    Ok(keys)
}

/// Parses `TOKENGATE_ADMIN_KEYS`: comma-separated `name=key` or bare keys (named `env-<position>`).
/// An entry is `name=key` when what precedes its first `=` is a valid name and what follows is at
/// least [`AdminKeys::MIN_LEN`] long; otherwise the whole entry is the key (so a base64 key's
/// `=` padding stays part of it). The error is the problem and the 1-based position.
pub fn parse_env_keys(value: &str) -> Result<Vec<AdminKey>, (usize, String)> {
    let mut keys = Vec::new();
    for (i, entry) in value.split(',').map(str::trim).filter(|k| !k.is_empty()).enumerate() {
        let position = i + 1;
        let (name, key) = match entry.split_once('=') {
            Some((name, key)) if valid_key_name(name) && key.len() >= AdminKeys::MIN_LEN => (name.to_string(), key),
            _ => (format!("env-{position}"), entry),
        };
        if key.len() < AdminKeys::MIN_LEN {
            return Err((position, too_short()));
        }
        keys.push(AdminKey::new(name, Secret::new(key), None, KeySource::Env));
    }
    AdminKeys::check_unique(&keys)
        .map_err(|(i, earlier, what)| (i + 1, format!("repeats the {what} of entry {}", earlier + 1)))?;
    Ok(keys)
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

/// The operator keys: from `TOKENGATE_ADMIN_KEYS` ([`parse_env_keys`]), then `admin.keys_file`
/// ([`parse_keys_file`]); names unique across both.
pub(super) fn admin_keys(
    keys_file: Option<&str>,
    env: &BTreeMap<String, String>,
    ctx: &Ctx,
) -> Result<AdminKeys, ConfigError> {
    let mut keys: Vec<AdminKey> = Vec::new();
    if let Some(v) = env.get(ADMIN_KEYS_ENV) {
        keys = parse_env_keys(v)
            .map_err(|(position, problem)| ctx.error(ADMIN_KEYS_ENV, format!("entry {position}: {problem}")))?;
    }
    if let Some(file) = keys_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| ctx.error("admin.keys_file", format!("cannot read {file}: {e}")))?;
        let from_file = parse_keys_file(&text).map_err(|e| ctx.error("admin.keys_file", format!("{file} {e}")))?;
        let env_count = keys.len();
        keys.extend(from_file);
        if let Err(problem) = clash_with_env(&keys, env_count, &text) {
            return Err(ctx.error("admin.keys_file", format!("{file} {problem}")));
        }
    }
    Ok(AdminKeys::new(keys))
}

/// Checks that the keys of a file (`keys[env_count..]`, read from `text`) repeat no name or key
/// of the environment's (`keys[..env_count]`; each list is unique by itself).
pub fn clash_with_env(keys: &[AdminKey], env_count: usize, text: &str) -> Result<(), KeyLineError> {
    match AdminKeys::check_unique(keys) {
        Ok(()) => Ok(()),
        Err((i, earlier, what)) => {
            let line = key_lines(text).get(i - env_count).copied().unwrap_or(0);
            Err(KeyLineError { line, problem: format!("repeats the {what} of {ADMIN_KEYS_ENV} entry {}", earlier + 1) })
        }
    }
}

/// The line numbers of the key lines of a keys file, in order.
fn key_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
        .map(|(i, _)| i + 1)
        .collect()
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

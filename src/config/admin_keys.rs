//! The operator keys ([`AdminKeys`]): named, optionally expiring, from `admin.keys_file`
//! ([`parse_keys_file`]) and `TOKENGATE_ADMIN_KEYS` ([`parse_env_keys`]). The admin listener
//! re-reads the file while it runs (`admin::keys`); this module only parses and checks.
//! No error repeats a key (nor a name, which a line written key first would hold).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::ConfigError;
use super::secret::{ADMIN_KEYS_ENV, Secret};
use super::validate::Ctx;

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

    /// Whether `candidate` is this key (constant time for equal lengths).
    pub fn is(&self, candidate: &str) -> bool {
        self.secret.matches(candidate)
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
    /// The largest keys file read (a path pointing at something else, say a device, is refused).
    pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

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
        self.matching(candidate).filter(|key| !key.expired(now))
    }

    /// The key `candidate` is, expired or not; every key compared in constant time.
    fn matching(&self, candidate: &str) -> Option<&AdminKey> {
        use subtle::{ConditionallySelectable, ConstantTimeEq};
        let (found, index) =
            self.0.iter().enumerate().fold((subtle::Choice::from(0), 0u64), |(found, index), (i, k)| {
                let eq = k.secret.expose().as_bytes().ct_eq(candidate.as_bytes());
                (found | eq, u64::conditional_select(&index, &(i as u64), eq))
            });
        bool::from(found).then(|| &self.0[index as usize])
    }

    /// Whether `candidate` is one of the keys, expired or not (a credential that must never
    /// equal an admin key, such as the SCIM token, is checked with this).
    pub fn contains(&self, candidate: &str) -> bool {
        self.matching(candidate).is_some()
    }

    /// The first repeated name or key among `keys`: `Err((later, earlier, "name" | "key"))`,
    /// indexes into `keys`.
    pub fn check_unique(keys: &[AdminKey]) -> Result<(), (usize, usize, &'static str)> {
        for (i, k) in keys.iter().enumerate() {
            if let Some(earlier) = keys[..i].iter().position(|e| e.name == k.name) {
                return Err((i, earlier, "name"));
            }
            if let Some(earlier) = keys[..i].iter().position(|e| e.secret.expose() == k.secret.expose()) {
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
    // A byte order mark, as some editors write, is not part of the first name.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
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
        let text = read_keys_file(std::path::Path::new(file))
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

/// Reads a keys file's bytes, at most [`AdminKeys::MAX_FILE_BYTES`].
pub fn read_keys_bytes(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(AdminKeys::MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > AdminKeys::MAX_FILE_BYTES {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "larger than 1 MiB"));
    }
    Ok(bytes)
}

/// Reads a keys file as text ([`read_keys_bytes`]).
pub fn read_keys_file(path: &std::path::Path) -> std::io::Result<String> {
    String::from_utf8(read_keys_bytes(path)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
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
pub fn key_lines(text: &str) -> Vec<usize> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
        .map(|(i, _)| i + 1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn rfc3339_times_with_offsets() {
        let jan31 = at(1_801_353_600);
        assert_eq!(parse_rfc3339("2027-01-31T00:00:00Z"), Some(jan31));
        assert_eq!(parse_rfc3339("2027-01-31t00:00:00z"), Some(jan31));
        assert_eq!(parse_rfc3339("2027-01-31T02:30:00+02:30"), Some(jan31));
        assert_eq!(parse_rfc3339("2027-01-30T19:00:00-05:00"), Some(jan31));
        assert_eq!(parse_rfc3339("2027-01-31T00:00:00.250Z"), Some(jan31 + Duration::from_millis(250)));
        for bad in [
            "",
            "Z",
            "+01:00",
            "2027-01-31",
            "2027-01-31 00:00:00Z",
            "2027-01-31T00:00:00",
            "2027-01-31T00:00:00+24:00",
            "2027-01-31T00:00:00+01:60",
            "2027-02-30T00:00:00Z",
            "2027-01-31T25:00:00Z",
            "1970-01-01T00:30:00+01:00",
            "2027-01-31T00:00:00+0100",
            "2027-01-31T00:00:00ÿ+01:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn find_picks_the_matching_key_among_many_and_refuses_it_once_expired() {
        let keys = AdminKeys::new(
            (0..5)
                .map(|i| {
                    let expiry = (i == 3).then(|| at(1_000));
                    AdminKey::new(
                        format!("k{i}"),
                        Secret::new(format!("key-number-{i}-0123456789")),
                        expiry,
                        KeySource::File,
                    )
                })
                .collect(),
        );
        for i in [0, 1, 2, 4] {
            assert_eq!(
                keys.find(&format!("key-number-{i}-0123456789"), at(5_000)).map(|k| k.name.as_str()),
                Some(&*format!("k{i}"))
            );
        }
        assert_eq!(keys.find("key-number-3-0123456789", at(999)).map(|k| k.name.as_str()), Some("k3"));
        assert!(keys.find("key-number-3-0123456789", at(1_000)).is_none(), "from the expiry instant on");
        assert!(keys.find("key-number-9-0123456789", at(0)).is_none());
        assert!(keys.find("", at(0)).is_none());
        assert!(AdminKeys::default().find("key-number-0-0123456789", at(0)).is_none());
    }

    #[test]
    fn a_byte_order_mark_and_crlf_line_ends_are_not_part_of_names_or_keys() {
        let keys = parse_keys_file("\u{feff}ops key-0123456789abcdef\r\n# note\r\nkey-0123456789abcdeg\r\n").unwrap();
        let names: Vec<_> = keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["ops", "key-3"]);
        assert!(keys[0].secret.expose() == "key-0123456789abcdef" && keys[1].secret.expose() == "key-0123456789abcdeg");
        let err = parse_keys_file("\u{feff}# c\nops key-0123456789abcdef\nops key-0123456789abcdeg\n").unwrap_err();
        assert_eq!(err.line, 3);
    }
}

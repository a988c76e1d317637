//! What a request brings: the query string ([`Query`]), the JSON body ([`read_json`] and its
//! serde helpers), and the checks on ids, free text and roles shared by the resources.

use http::HeaderMap;
use http::header::CONTENT_TYPE;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::admin::error::ApiError;
use crate::config::Config;
use crate::token::limits::TokenLimits;
use crate::token::{TokenId, valid_subject_id};

/// Longest token name or display name, in characters.
const MAX_NAME_CHARS: usize = 100;

/// A request's query string, percent-decoded once (`application/x-www-form-urlencoded`).
/// Handlers [`take`](Query::take) the parameters they know and [`finish`](Query::finish) refuses
/// the rest, so no parameter is ever read raw or ignored.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses and checks a raw query: valid UTF-8 once decoded, each name at most once, and no
    /// credential (`access_token`, in any spelling or encoding): secrets in URLs end up in logs.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let raw = raw.unwrap_or("");
        // Splitting happens at literal `&` and `=`, which never occur inside a multi-byte
        // sequence, so a query that decodes to valid UTF-8 as a whole does so in every part.
        if percent_encoding::percent_decode_str(raw).decode_utf8().is_err() {
            return Err(ApiError::bad("query", "not valid UTF-8 once percent-decoded"));
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            if key.eq_ignore_ascii_case("access_token") {
                return Err(ApiError::bad(
                    "access_token",
                    "credentials are not accepted in the query string; send Authorization: Bearer",
                ));
            }
            if pairs.iter().any(|(k, _)| *k == key) {
                return Err(ApiError::bad(key, "given more than once"));
            }
            pairs.push((key.into_owned(), value.into_owned()));
        }
        Ok(Self { pairs })
    }

    /// Removes and returns the decoded value of `key`.
    pub fn take(&mut self, key: &str) -> Option<String> {
        let i = self.pairs.iter().position(|(k, _)| k == key)?;
        Some(self.pairs.remove(i).1)
    }

    /// Refuses any parameter not taken.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.pairs.into_iter().next() {
            Some((key, _)) => Err(ApiError::bad(key, "unknown query parameter")),
            None => Ok(()),
        }
    }
}

/// Reads a JSON body: at most `max` bytes, `Content-Type: application/json`, no unknown
/// fields; an empty body reads as `{}` when `T` allows it, unless it comes with another
/// `Content-Type` (415, as for a non-empty one).
pub(crate) async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Incoming,
    max: usize,
) -> Result<T, ApiError> {
    read_json_body(headers, body, max, false).await
}

/// [`read_json`] for a body that must be there (where an empty one would silently mean `{}`,
/// as for a token's limits, where `{}` removes them).
pub(super) async fn read_required_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Incoming,
    max: usize,
) -> Result<T, ApiError> {
    read_json_body(headers, body, max, true).await
}

async fn read_json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Incoming,
    max: usize,
    required: bool,
) -> Result<T, ApiError> {
    let bytes = Limited::new(body, max).collect().await.map_err(|_| ApiError::PayloadTooLarge(max))?.to_bytes();
    if required && bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest { field: None, message: "a JSON body is required".into() });
    }
    let content_type = headers.get(CONTENT_TYPE);
    let json = content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    let empty = bytes.iter().all(u8::is_ascii_whitespace);
    if !json && (!empty || content_type.is_some()) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes: &[u8] = if empty { b"{}" } else { &bytes };
    // serde would also read a struct from a positional array; every body is an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{')
        && serde_json::from_slice::<serde_json::Value>(bytes).is_ok()
    {
        return Err(ApiError::BadRequest { field: None, message: "the body must be a JSON object".into() });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = (path != "." && !inner.is_syntax() && !inner.is_eof()).then_some(path);
        let message =
            if inner.is_syntax() || inner.is_eof() { format!("invalid JSON: {inner}") } else { inner.to_string() };
        ApiError::BadRequest { field, message }
    })
}

/// A body that must be empty or `{}` (DELETE, the lifecycle actions).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Empty {}

/// A whole number from JSON, also when written with a zero fraction (`30.0`), as JSON Schema's
/// `integer` allows; anything else (fractions, negatives, out of range) is refused.
pub(super) fn whole_number<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    let n = serde_json::Number::deserialize(d)?;
    let whole = n
        .as_u64()
        .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(f)).map(|f| f as u64));
    whole
        .and_then(|w| T::try_from(w).ok())
        .ok_or_else(|| serde::de::Error::custom(format!("expected a whole number in range, got {n}")))
}

/// An optional field that may be left out but not sent as `null` (the document gives each a
/// type that excludes null).
pub(super) fn not_null<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

pub(super) fn parse_id(raw: &str) -> Result<TokenId, ApiError> {
    TokenId::parse(raw).ok_or_else(|| ApiError::bad("id", "token ids are 12 letters or digits"))
}

/// A principal or organization id in a body or query field.
pub(super) fn subject_id(field: &str, raw: &str) -> Result<(), ApiError> {
    if valid_subject_id(raw) {
        Ok(())
    } else {
        Err(ApiError::bad(field, "ids are 1-128 characters from A-Z a-z 0-9 . _ @ : -"))
    }
}

/// Free text shown to people (token names, display names): trimmed, 1 to [`MAX_NAME_CHARS`]
/// characters, none of Unicode category `Cc` (controls) or `Cf` (format: bidirectional
/// overrides, zero-width characters), so `invoice-\u{202E}gpj.exe` cannot pose as
/// `invoice-exe.jpg`.
pub(super) fn validate_text(field: &str, raw: &str) -> Result<String, ApiError> {
    let text = raw.trim();
    let chars = text.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(ApiError::bad(field, format!("must be 1 to {MAX_NAME_CHARS} characters after trimming")));
    }
    if let Some(c) =
        text.chars().find(|c| matches!(c.general_category(), GeneralCategory::Control | GeneralCategory::Format))
    {
        return Err(ApiError::bad(
            field,
            format!("must not contain control or invisible formatting characters (found U+{:04X})", u32::from(c)),
        ));
    }
    Ok(text.to_string())
}

pub(super) fn validate_roles(field: &str, roles: &[String], config: &Config) -> Result<(), ApiError> {
    for (i, r) in roles.iter().enumerate() {
        if !config.roles.contains(r) {
            return Err(ApiError::bad(
                format!("{field}[{i}]"),
                format!("unknown role {r:?} (roles: {})", config.roles.join(", ")),
            ));
        }
    }
    Ok(())
}

/// The items in their first-seen order, each once.
pub(super) fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// A token's limits from the API: `value` and its `rate` must be objects (serde would also read
/// them from positional arrays), then the bounds are checked.
pub(super) fn limits(mut value: serde_json::Value) -> Result<TokenLimits, ApiError> {
    if !value.is_object() {
        return Err(ApiError::bad("limits", "must be an object"));
    }
    // Like every other field: no nulls, and whole numbers may be written as 100.0.
    fn normalise(v: &mut serde_json::Value, path: &str) -> Result<(), ApiError> {
        match v {
            serde_json::Value::Null => Err(ApiError::bad(path.to_string(), "must not be null; leave it out")),
            serde_json::Value::Number(n) if n.as_u64().is_none() => {
                match n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 9_007_199_254_740_992.0) {
                    Some(f) => {
                        *v = serde_json::Value::from(f as u64);
                        Ok(())
                    }
                    None => Err(ApiError::bad(path.to_string(), "must be a whole number")),
                }
            }
            serde_json::Value::Object(map) => {
                map.iter_mut().try_for_each(|(k, v)| normalise(v, &format!("{path}.{k}")))
            }
            serde_json::Value::Array(items) => {
                items.iter_mut().enumerate().try_for_each(|(i, v)| normalise(v, &format!("{path}[{i}]")))
            }
            _ => Ok(()),
        }
    }
    normalise(&mut value, "limits")?;
    if value.get("rate").is_some_and(|r| !r.is_object()) {
        return Err(ApiError::bad("limits.rate", "must be an object with requests and window_secs"));
    }
    serde_path_to_error::deserialize::<_, TokenLimits>(value)
        .map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "limits".to_string() } else { format!("limits.{path}") };
            ApiError::bad(field, e.into_inner().to_string())
        })?
        .validated()
        .map_err(|e| ApiError::bad("limits", e.to_string()))
}

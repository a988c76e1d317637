//! The credential in a request: `Authorization: Bearer <token>`.
//!
//! The scheme is matched case-insensitively; a request with two `Authorization` headers, an empty
//! token, a header that is not text, or a token in the query string (`access_token=`, which ends
//! up in access logs) is malformed. Another scheme counts as no bearer credential.

use http::HeaderMap;
use http::header::AUTHORIZATION;
use thiserror::Error;

/// Why a request's credential is malformed (the data path answers 400, the admin API 400).
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum CredentialError {
    #[error("tokens are not accepted in the query string")]
    InQuery,
    #[error("multiple Authorization headers")]
    Multiple,
    #[error("malformed Authorization header")]
    NotText,
    #[error("empty bearer token")]
    Empty,
}

impl CredentialError {
    /// The description sent to clients.
    pub fn text(self) -> &'static str {
        match self {
            Self::InQuery => "tokens are not accepted in the query string",
            Self::Multiple => "multiple Authorization headers",
            Self::NotText => "malformed Authorization header",
            Self::Empty => "empty bearer token",
        }
    }
}

/// Finds the bearer token in a request. `Ok(None)` when there is none.
pub fn bearer<'a>(headers: &'a HeaderMap, query: Option<&str>) -> Result<Option<&'a str>, CredentialError> {
    if query.is_some_and(has_access_token_param) {
        return Err(CredentialError::InQuery);
    }
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(CredentialError::Multiple);
    }
    let value = value.to_str().map_err(|_| CredentialError::NotText)?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() {
        return Err(CredentialError::Empty);
    }
    Ok(Some(token))
}

fn has_access_token_param(query: &str) -> bool {
    query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or("");
        name.eq_ignore_ascii_case("access_token")
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for v in ["Bearer abc", "bearer abc", "BEARER abc", "Bearer   abc  "] {
            assert_eq!(bearer(&headers(&[v]), None), Ok(Some("abc")), "{v}");
        }
    }

    #[test]
    fn missing_or_other_schemes_are_no_credential() {
        assert_eq!(bearer(&headers(&[]), None), Ok(None));
        assert_eq!(bearer(&headers(&["Basic dXNlcjpwYXNz"]), None), Ok(None));
        assert_eq!(bearer(&headers(&["Bearerabc"]), None), Ok(None));
    }

    #[test]
    fn malformed_requests_are_refused() {
        let bad = |h: &HeaderMap, q: Option<&str>| bearer(h, q).is_err();
        assert!(bad(&headers(&["Bearer a", "Bearer b"]), None));
        assert!(bad(&headers(&["Bearer"]), None));
        assert!(bad(&headers(&["Bearer    "]), None));
        assert!(bad(&headers(&[]), Some("x=1&access_token=tgp_abc")));
        assert!(bad(&headers(&["Bearer a"]), Some("ACCESS_TOKEN=x")));
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_bytes(b"Bearer \xff").unwrap());
        assert!(bad(&h, None));
        assert_eq!(bearer(&headers(&["Bearer a"]), Some("token_type=x&access_tokens=1")), Ok(Some("a")));
    }
}

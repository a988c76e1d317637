//! Authentication on the data path: find the credential in a request, then check it against the
//! cached records.
//!
//! - `Authorization: Bearer <token>`: the scheme is matched case-insensitively; a request with
//!   two `Authorization` headers, an empty token, or a token in the query string
//!   (`access_token=`) is malformed (400). Another scheme counts as no bearer credential (401).
//! - The token is parsed and checksum-checked before any cache or store access.
//! - The decision is made on every request from the cached records ([`crate::auth::verify::check`]):
//!   digest (constant time), status, expiry, and for personal tokens the owner's current roles.

pub mod cache;
pub mod limiter;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::auth::cache::{AuthCache, LookupError};
use crate::auth::verify::{Rejection, check};
use crate::clock::Timestamp;
use crate::proxy::failure::Failure;
use crate::store::StoreError;
use crate::token::TokenFormat;
use crate::token::digest::Hasher;
use crate::token::{Principal, Token, TokenKind};

/// Finds the bearer token in a request. `Ok(None)` when there is none.
pub fn bearer<'a>(headers: &'a HeaderMap, query: Option<&str>) -> Result<Option<&'a str>, Failure> {
    if query.is_some_and(has_access_token_param) {
        return Err(Failure::InvalidRequest("tokens are not accepted in the query string"));
    }
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(Failure::InvalidRequest("multiple Authorization headers"));
    }
    let value = value.to_str().map_err(|_| Failure::InvalidRequest("malformed Authorization header"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() {
        return Err(Failure::InvalidRequest("empty bearer token"));
    }
    Ok(Some(token))
}

fn has_access_token_param(query: &str) -> bool {
    query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or("");
        name.eq_ignore_ascii_case("access_token")
    })
}

/// A request's authenticated principal: the token and, for personal tokens, its owner.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub token: Arc<Token>,
    pub owner: Option<Arc<Principal>>,
}

impl Authenticated {
    /// The principal id for personal tokens, the organization id for organization tokens.
    pub fn subject(&self) -> &str {
        &self.token.owner
    }

    pub fn org(&self) -> Option<&str> {
        match self.token.kind {
            TokenKind::Organization => Some(&self.token.owner),
            TokenKind::Personal => self.owner.as_ref().and_then(|p| p.org.as_deref()),
        }
    }

    /// The roles this request carries right now.
    pub fn roles(&self) -> Vec<&str> {
        self.token.effective_roles(self.owner.as_deref()).unwrap_or_default()
    }
}

/// Why authentication did not succeed.
#[derive(Debug)]
pub enum AuthError {
    Rejected(Rejection),
    Store(StoreError),
    /// Too many store lookups in flight.
    Busy,
    /// The caller's admission check refused the store lookup (retry after the delay).
    Refused(Duration),
}

impl From<LookupError> for AuthError {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::Store(e) => Self::Store(e),
            LookupError::Busy => Self::Busy,
            LookupError::Refused(wait) => Self::Refused(wait),
        }
    }
}

/// Checks presented tokens against the cache.
#[derive(Clone)]
pub struct Authenticator {
    format: TokenFormat,
    hasher: Hasher,
    cache: AuthCache,
}

impl Authenticator {
    pub fn new(format: TokenFormat, hasher: Hasher, cache: AuthCache) -> Self {
        Self { format, hasher, cache }
    }

    pub fn cache(&self) -> &AuthCache {
        &self.cache
    }

    /// Authenticates `presented`. `admit` is asked before the token's record is fetched from
    /// the store (never when it is cached); its `Err(retry_after)` refuses the request.
    pub async fn authenticate(
        &self,
        presented: &str,
        now: Timestamp,
        admit: impl FnOnce() -> Result<(), Duration>,
    ) -> Result<Authenticated, AuthError> {
        let parsed = self.format.parse(presented).map_err(|e| AuthError::Rejected(Rejection::Malformed(e)))?;
        let token = self.cache.token_admitted(&parsed.id, admit).await?;
        check(&self.hasher, &parsed, token.as_deref(), now).map_err(AuthError::Rejected)?;
        let token = token.expect("check refuses a missing record");
        let owner = match token.kind {
            TokenKind::Organization => None,
            TokenKind::Personal => {
                let owner = self.cache.principal(&token.owner).await?;
                Some(owner.ok_or(AuthError::Rejected(Rejection::OwnerMissing))?)
            }
        };
        Ok(Authenticated { token, owner })
    }
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
        let bad = |h: &HeaderMap, q: Option<&str>| matches!(bearer(h, q), Err(Failure::InvalidRequest(_)));
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

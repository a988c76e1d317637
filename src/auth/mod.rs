//! Authentication: find the credential in a request ([`credential`]), then check it against the
//! cached records ([`Authenticator`], [`cache`]), with failed attempts limited per client
//! address ([`limiter`]).
//!
//! - The token is parsed and checksum-checked before any cache or store access.
//! - The decision is made on every request from the cached records ([`crate::auth::verify::check`]):
//!   digest (constant time), status, expiry, and for personal tokens the owner's current roles.
//!
//! May use: `store` (through the cache), `token`, `config` (its own sections), `metrics`, `clock`.
//! Knows nothing of HTTP responses: the data path and the admin API map its errors themselves.

pub mod cache;
pub mod credential;
pub mod limiter;
pub mod metering;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

pub use credential::{CredentialError, bearer};

use crate::auth::cache::{AuthCache, LookupError};
use crate::auth::verify::{Rejection, check};
use crate::clock::Timestamp;
use crate::store::StoreError;
use crate::token::digest::Hasher;
use crate::token::{Principal, Token, TokenKind};
use crate::token::{TokenFormat, TokenId};

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
    /// The token is refused; `token_id` is its public id when it parsed (for logs, never
    /// for clients).
    Rejected {
        reason: Rejection,
        token_id: Option<TokenId>,
    },
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
        let parsed = self
            .format
            .parse(presented)
            .map_err(|e| AuthError::Rejected { reason: Rejection::Malformed(e), token_id: None })?;
        let rejected = |reason| AuthError::Rejected { reason, token_id: Some(parsed.id) };
        let token = self.cache.token_admitted(&parsed.id, admit).await?;
        check(&self.hasher, &parsed, token.as_deref(), now).map_err(rejected)?;
        let token = token.expect("check refuses a missing record");
        let owner = match token.kind {
            TokenKind::Organization => None,
            TokenKind::Personal => {
                let owner =
                    self.cache.principal(&token.owner).await?.ok_or_else(|| rejected(Rejection::OwnerMissing))?;
                if owner.deactivated {
                    return Err(rejected(Rejection::OwnerDeactivated));
                }
                Some(owner)
            }
        };
        Ok(Authenticated { token, owner })
    }
}

//! The token decision: [`check`] compares a parsed token with its record (digest in constant
//! time, kind, status, expiry), the same for every lookup path; [`Rejection`] says why not.

use thiserror::Error;

use crate::clock::Timestamp;
use crate::token::digest::Hasher;
use crate::token::{ParseError, ParsedToken};
use crate::token::{Token, TokenStatus};

/// Why a presented token is refused. Clients see one generic message; the variant goes to logs
/// and metrics with the token id.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    #[error("malformed token: {0}")]
    Malformed(ParseError),
    #[error("unknown token")]
    Unknown,
    #[error("token does not match its record")]
    Mismatch,
    #[error("token is suspended")]
    Suspended,
    #[error("token is revoked")]
    Revoked,
    #[error("token is expired")]
    Expired,
    #[error("the personal token's owner no longer exists")]
    OwnerMissing,
    #[error("the personal token's owner is deactivated")]
    OwnerDeactivated,
}

impl Rejection {
    /// A stable label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Unknown => "unknown",
            Self::Mismatch => "mismatch",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::OwnerMissing => "owner_missing",
            Self::OwnerDeactivated => "owner_deactivated",
        }
    }
}

/// Decides whether `presented` is a usable token given its stored `record`.
pub fn check(
    hasher: &Hasher,
    presented: &ParsedToken<'_>,
    record: Option<&Token>,
    now: Timestamp,
) -> Result<(), Rejection> {
    let record = record.ok_or(Rejection::Unknown)?;
    // The kind is part of the digested string, so a prefix swap also fails here.
    let digest = hasher.digest(presented.raw());
    let current = digest.matches(&record.digest);
    let previous = record.previous.as_ref().is_some_and(|p| now < p.valid_until && digest.matches(&p.digest));
    if record.kind != presented.kind || !(current || previous) {
        return Err(Rejection::Mismatch);
    }
    match record.status {
        TokenStatus::Revoked => Err(Rejection::Revoked),
        TokenStatus::Suspended => Err(Rejection::Suspended),
        TokenStatus::Active if record.is_expired(now) => Err(Rejection::Expired),
        TokenStatus::Active => Ok(()),
    }
}

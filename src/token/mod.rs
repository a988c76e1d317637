//! The token model: records, their lifecycle, principals and audit events ([`Token`],
//! [`Action`], [`Principal`], [`Group`], [`AuditEvent`]); the wire format ([`format`]: generate, parse,
//! checksum, masked display); digests ([`digest`]); minting ([`mint`]).
//!
//! May use: [`crate::policy::scope`] and [`crate::clock`]. Pure: no I/O, no store, proxy, admin or
//! config types.
//!
//! Lifecycle rules live here, once, and both store backends apply them:
//!
//! ```text
//!            suspend                revoke
//!   active ───────────▶ suspended ─────────▶ revoked ──delete──▶ (gone; id never reused)
//!      ▲  ◀─────────────                        │
//!      │     activate                           │
//!      └────────────── restore (only when enabled in config) ───┘
//! active ──revoke──▶ revoked
//! ```
//!
//! A transition to the state a token is already in is a no-op, not an error, so retries are safe.
//! "Expired" is not stored: it is derived from `expires_at` when a token is shown or used.

pub mod digest;
pub mod format;
mod group;
pub mod limits;
pub mod mint;
mod principal;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::clock::Timestamp;
use crate::policy::scope::Scope;
use crate::token::digest::TokenDigest;
use crate::token::limits::TokenLimits;

pub use format::{
    BODY_LEN, ID_LEN, ParseError, ParsedToken, PrefixError, SecretToken, TokenFormat, TokenId, TokenKind,
};
pub use group::{Group, valid_group_id};
pub use principal::{AdminRole, Principal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    Active,
    Suspended,
    Revoked,
}

impl TokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }
}

/// The status shown to people: the stored one, or `expired` once `expires_at` has passed
/// (a revoked token stays `revoked`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DisplayStatus {
    Active,
    Suspended,
    Revoked,
    Expired,
}

impl DisplayStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "expired" => Some(Self::Expired),
            other => TokenStatus::parse(other).map(Into::into),
        }
    }
}

impl From<TokenStatus> for DisplayStatus {
    fn from(s: TokenStatus) -> Self {
        match s {
            TokenStatus::Active => Self::Active,
            TokenStatus::Suspended => Self::Suspended,
            TokenStatus::Revoked => Self::Revoked,
        }
    }
}

/// A lifecycle change requested on a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Suspend,
    Activate,
    Revoke,
    Restore,
}

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum TransitionError {
    #[error("cannot {action} a {from} token")]
    Conflict { action: &'static str, from: &'static str },
    #[error("restoring revoked tokens is disabled (tokens.allow_restore)")]
    RestoreDisabled,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suspend => "suspend",
            Self::Activate => "activate",
            Self::Revoke => "revoke",
            Self::Restore => "restore",
        }
    }

    /// The status this action leads to.
    pub fn target(self) -> TokenStatus {
        match self {
            Self::Suspend => TokenStatus::Suspended,
            Self::Activate | Self::Restore => TokenStatus::Active,
            Self::Revoke => TokenStatus::Revoked,
        }
    }

    /// The statuses from which this action changes anything (besides the target itself, which
    /// is a no-op).
    pub fn sources(self) -> &'static [TokenStatus] {
        match self {
            Self::Suspend => &[TokenStatus::Active],
            Self::Activate => &[TokenStatus::Suspended],
            Self::Revoke => &[TokenStatus::Active, TokenStatus::Suspended],
            Self::Restore => &[TokenStatus::Revoked],
        }
    }

    /// Applies the lifecycle rules: `Ok(Some(new))` for a change, `Ok(None)` for a no-op.
    pub fn apply(self, from: TokenStatus) -> Result<Option<TokenStatus>, TransitionError> {
        if from == self.target() {
            Ok(None)
        } else if self.sources().contains(&from) {
            Ok(Some(self.target()))
        } else {
            Err(TransitionError::Conflict { action: self.as_str(), from: from.as_str() })
        }
    }
}

/// A token record as stored. The secret itself is never stored, only its digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub id: TokenId,
    pub kind: TokenKind,
    pub name: String,
    /// A principal id for personal tokens, an organization id for organization tokens.
    pub owner: String,
    pub created_by: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub status: TokenStatus,
    pub roles: Vec<String>,
    pub scopes: Vec<Scope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_from: Option<String>,
    pub digest: TokenDigest,
    /// After a rotation with a grace period: the previous secret's digest and until when it
    /// still works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousSecret>,
    /// Rate, quota and allowed networks; unlimited by default (and in records written before
    /// limits existed).
    #[serde(default, skip_serializing_if = "TokenLimits::is_unlimited")]
    pub limits: TokenLimits,
}

/// A rotated-out secret that keeps working until `valid_until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub digest: TokenDigest,
    pub valid_until: Timestamp,
}

impl PartialEq for TokenDigest {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other)
    }
}

impl Token {
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.expires_at
    }

    pub fn display_status(&self, now: Timestamp) -> DisplayStatus {
        match self.status {
            TokenStatus::Revoked => DisplayStatus::Revoked,
            _ if self.is_expired(now) => DisplayStatus::Expired,
            s => s.into(),
        }
    }

    /// The roles this token grants right now, or `None` when it grants nothing because its
    /// owner is gone. A personal token grants its own roles intersected with its owner's current
    /// roles; an organization token grants its own roles whoever created it.
    pub fn effective_roles<'a>(&'a self, owner: Option<&'a Principal>) -> Option<Vec<&'a str>> {
        match self.kind {
            TokenKind::Organization => Some(self.roles.iter().map(String::as_str).collect()),
            TokenKind::Personal => {
                let owner = owner.filter(|p| p.id == self.owner)?;
                Some(self.roles.iter().filter(|r| owner.roles.contains(r)).map(String::as_str).collect())
            }
        }
    }
}

/// What happened in an audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditAction {
    Create,
    Suspend,
    Activate,
    Revoke,
    Restore,
    Delete,
    Rotate,
    /// The token's limits were changed.
    Limits,
}

impl From<Action> for AuditAction {
    fn from(a: Action) -> Self {
        match a {
            Action::Suspend => Self::Suspend,
            Action::Activate => Self::Activate,
            Action::Revoke => Self::Revoke,
            Action::Restore => Self::Restore,
        }
    }
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Suspend => "suspend",
            Self::Activate => "activate",
            Self::Revoke => "revoke",
            Self::Restore => "restore",
            Self::Delete => "delete",
            Self::Rotate => "rotate",
            Self::Limits => "limits",
        }
    }
}

/// One lifecycle change, appended by the store in the same transaction as the change itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub at: Timestamp,
    pub actor: String,
    pub action: AuditAction,
    pub token_id: TokenId,
    pub token_name: String,
    pub owner: String,
}

impl AuditEvent {
    /// An event for `action` on `token` by `actor`, stamped now.
    pub fn now(token: &Token, actor: &str, action: AuditAction) -> Self {
        Self {
            at: Timestamp::now(),
            actor: actor.to_string(),
            action,
            token_id: token.id,
            token_name: token.name.clone(),
            owner: token.owner.clone(),
        }
    }
}

/// Ids of principals and organizations: 1 to 128 characters from `[A-Za-z0-9._@:-]`, so they
/// are safe in store keys and header values, and not `.` or `..`, which URLs cannot carry as a
/// path segment (clients resolve them away).
pub fn valid_subject_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use TokenStatus::*;

    #[test]
    fn transition_table() {
        use Action::*;
        let table = [
            (Suspend, Active, Ok(Some(Suspended))),
            (Suspend, Suspended, Ok(None)),
            (Suspend, Revoked, Err(())),
            (Activate, Suspended, Ok(Some(Active))),
            (Activate, Active, Ok(None)),
            (Activate, Revoked, Err(())),
            (Revoke, Active, Ok(Some(Revoked))),
            (Revoke, Suspended, Ok(Some(Revoked))),
            (Revoke, Revoked, Ok(None)),
            (Restore, Revoked, Ok(Some(Active))),
            (Restore, Active, Ok(None)),
            (Restore, Suspended, Err(())),
        ];
        for (action, from, want) in table {
            assert_eq!(action.apply(from).map_err(|_| ()), want, "{action:?} from {from:?}");
        }
    }

    fn token(kind: TokenKind, roles: &[&str]) -> Token {
        Token {
            id: TokenId::parse("AAAAAAAAAAAA").unwrap(),
            kind,
            name: "t".into(),
            owner: "alice".into(),
            created_by: "alice".into(),
            created_at: Timestamp(1),
            expires_at: Timestamp(100),
            status: Active,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            scopes: vec![],
            last_used_at: None,
            last_used_from: None,
            digest: crate::token::digest::Hasher::new(None).digest("x"),
            previous: None,
            limits: TokenLimits::default(),
        }
    }

    #[test]
    fn personal_roles_follow_the_owner() {
        let t = token(TokenKind::Personal, &["viewer", "admin"]);
        let alice = Principal {
            id: "alice".into(),
            display_name: "A".into(),
            org: None,
            roles: vec!["viewer".into()],
            limits: Default::default(),
            ..Default::default()
        };
        assert_eq!(t.effective_roles(Some(&alice)), Some(vec!["viewer"]));
        assert_eq!(t.effective_roles(None), None, "owner deleted: no access");
        let bob = Principal { id: "bob".into(), ..alice };
        assert_eq!(t.effective_roles(Some(&bob)), None, "someone else's record never counts");
    }

    #[test]
    fn organization_roles_do_not_depend_on_anyone() {
        let t = token(TokenKind::Organization, &["developer"]);
        assert_eq!(t.effective_roles(None), Some(vec!["developer"]));
    }

    #[test]
    fn expired_is_derived() {
        let mut t = token(TokenKind::Personal, &[]);
        assert_eq!(t.display_status(Timestamp(99)), DisplayStatus::Active);
        assert_eq!(t.display_status(Timestamp(100)), DisplayStatus::Expired);
        t.status = Revoked;
        assert_eq!(t.display_status(Timestamp(100)), DisplayStatus::Revoked);
    }

    #[test]
    fn subject_ids() {
        assert!(valid_subject_id("alice@example.com"));
        assert!(valid_subject_id("org:acme"));
        assert!(!valid_subject_id(""));
        assert!(!valid_subject_id("a b"));
        assert!(!valid_subject_id("a\r\nX-Auth: 1"));
        assert!(!valid_subject_id(&"a".repeat(129)));
        assert!(!valid_subject_id(".") && !valid_subject_id(".."));
        assert!(valid_subject_id("..."), "only the dot segments are special");
    }
}

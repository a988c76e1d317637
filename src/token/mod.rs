//! The token model: records, their lifecycle, principals, directory groups and audit events
//! ([`Token`], [`Action`], [`Principal`], [`Group`], [`AuditEvent`]); the wire format ([`format`]: generate, parse,
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

mod audit;
pub mod digest;
pub mod format;
mod group;
pub mod limits;
pub mod mint;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::clock::Timestamp;
use crate::policy::scope::Scope;
use crate::token::digest::TokenDigest;
use crate::token::limits::TokenLimits;

pub use audit::{AuditAction, AuditEvent};
pub use format::{
    BODY_LEN, ID_LEN, ParseError, ParsedToken, PrefixError, SecretToken, TokenFormat, TokenId, TokenKind,
};
pub use group::{Group, valid_group_id};

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

/// A person (or service identity) that can own personal tokens.
///
/// Where one comes from: an operator (`PUT /v1/principals/{id}`), a sign-in (OpenID Connect
/// claims or trusted headers) or the directory (SCIM). The last two set `groups` and derive
/// `roles` and `admin` from them through `identity.groups`; an operator sets `roles` directly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub id: String,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The roles this person holds now; their personal tokens grant at most these.
    pub roles: Vec<String>,
    /// The scopes this person may give the tokens they create when signed in (tokens keep the
    /// scopes they were created with).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<Scope>,
    /// The directory groups `roles`, `scopes` and `admin` were derived from (empty when set by
    /// hand).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// What this person may do on the admin API beyond their own tokens, when signed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminRole>,
    /// Deactivated by the directory (SCIM `active: false`): their personal tokens are refused
    /// and they cannot sign in, but nothing is deleted, so reactivating brings both back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deactivated: bool,
    /// The most a person may give the tokens they create or edit (operators set these); none:
    /// no cap.
    #[serde(default, skip_serializing_if = "TokenLimits::is_unlimited")]
    pub limits: TokenLimits,
    /// The directory's own id for this person (SCIM `externalId`), when provisioned by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// When the directory created and last changed this record (SCIM `meta`); absent in records
    /// written by hand or before SCIM existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
}

/// Powers on the admin API that come from who a signed-in person is, not from a token.
/// Ordered: each includes what the ones before it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdminRole {
    /// Reads every token, principal and audit event; changes nothing.
    Auditor,
    /// Everything an admin key may do.
    Operator,
}

impl AdminRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auditor => "auditor",
            Self::Operator => "operator",
        }
    }
}

impl std::str::FromStr for AdminRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auditor" => Ok(Self::Auditor),
            "operator" => Ok(Self::Operator),
            _ => Err(format!("unknown admin role {s:?} (auditor or operator)")),
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

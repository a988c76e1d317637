//! The people tokens belong to, and the admin roles a signed-in person may hold.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::policy::scope::Scope;
use crate::token::limits::TokenLimits;

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

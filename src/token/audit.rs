//! Audit events: one per lifecycle change, appended by the store in the same transaction.

use serde::{Deserialize, Serialize};

use super::{Action, Token, TokenId};
use crate::clock::Timestamp;

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

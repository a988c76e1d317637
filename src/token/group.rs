//! Directory groups (SCIM `Group`), as stored.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// A directory group (SCIM `Group`): a name, which `identity.groups` maps to roles, and its
/// members (principal ids). Each member's `Principal::groups` holds the names of the groups it
/// is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Assigned by tokengate (32 hex digits); safe in store keys and URLs.
    pub id: String,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Principal ids, sorted, without duplicates.
    #[serde(default)]
    pub members: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Whether `s` is a group id as tokengate assigns them: 32 lowercase hex digits.
pub fn valid_group_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

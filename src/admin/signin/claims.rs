//! What an ID token's claims say about a person, read as `identity.oidc.claims` names them:
//! the principal id, name, verified email, groups and organization.

use super::oidc::OidcError;
use crate::config::OidcConfig;

/// Most groups read from a claim.
pub const MAX_GROUPS: usize = 1000;

/// What the provider says about the person, read from a verified ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// `None` when the token carries no groups claim.
    pub groups: Option<Vec<String>>,
    pub org: Option<String>,
}

/// Reads an [`Identity`] from verified claims as `config.claims` names them.
pub fn identity_from_claims(
    config: &OidcConfig,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<Identity, OidcError> {
    let names = &config.claims;
    let text = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::trim).filter(|s| !s.is_empty());
    let id = text(&names.id)
        .ok_or_else(|| OidcError::Claims(format!("no {:?} claim to take the principal id from", names.id)))?;
    if !crate::token::valid_subject_id(id) {
        return Err(OidcError::Claims(format!(
            "the {:?} claim is not usable as a principal id (1-128 characters from A-Z a-z 0-9 . _ @ : -)",
            names.id
        )));
    }
    let email_verified = claims.get("email_verified").and_then(|v| v.as_bool()) != Some(false);
    let email = text(&names.email).filter(|_| email_verified).map(String::from);
    let name = text(&names.name).or_else(|| text("preferred_username")).map(String::from);
    let groups = match claims.get(&names.groups) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(g)) => Some(vec![g.clone()]),
        Some(serde_json::Value::Array(items)) => {
            if items.len() > MAX_GROUPS {
                return Err(OidcError::Claims(format!("more than {MAX_GROUPS} groups")));
            }
            Some(items.iter().filter_map(|g| g.as_str()).map(String::from).collect())
        }
        Some(_) => return Err(OidcError::Claims(format!("the {:?} claim is not a list of names", names.groups))),
    };
    let org = match &names.org {
        Some(claim) => match text(claim) {
            Some(o) if crate::token::valid_subject_id(o) => Some(o.to_string()),
            Some(_) => return Err(OidcError::Claims(format!("the {claim:?} claim is not an organization id"))),
            None => config.org.clone(),
        },
        None => config.org.clone(),
    };
    Ok(Identity { id: id.to_string(), name, email, groups, org })
}

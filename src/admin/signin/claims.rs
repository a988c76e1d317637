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
    // An id taken from the email claim must be an address the provider has verified, or anyone
    // who can put an address on a provider account could become that person.
    if names.id == names.email && claims.get("email_verified").and_then(|v| v.as_bool()) != Some(true) {
        return Err(OidcError::Claims(format!(
            "the {:?} claim names the person, but the provider has not verified it (email_verified)",
            names.id
        )));
    }
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
    // Only an org claim names an org here; `identity.oidc.org` fills a missing one at sign-in.
    let org = match &names.org {
        Some(claim) => match text(claim) {
            Some(o) if crate::token::valid_subject_id(o) => Some(o.to_string()),
            Some(_) => return Err(OidcError::Claims(format!("the {claim:?} claim is not an organization id"))),
            None => None,
        },
        None => None,
    };
    Ok(Identity { id: id.to_string(), name, email, groups, org })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::ClaimNames;

    fn config(org_claim: Option<&str>) -> OidcConfig {
        OidcConfig {
            issuer: "https://login.example.com".into(),
            client_id: "tokengate".into(),
            client_secret: None,
            redirect_url: "https://t.example.com/auth/callback".parse().unwrap(),
            scopes: vec![],
            claims: ClaimNames {
                id: "email".into(),
                name: "name".into(),
                email: "email".into(),
                groups: "groups".into(),
                org: org_claim.map(String::from),
            },
            org: Some("default-org".into()),
        }
    }

    fn read(c: &OidcConfig, claims: serde_json::Value) -> Result<Identity, OidcError> {
        identity_from_claims(c, claims.as_object().unwrap())
    }

    #[test]
    fn claims_are_read_as_configured() {
        let c = config(Some("tenant"));
        let i =
            read(&c, json!({"email": "a@x.io", "email_verified": true, "name": " A ", "groups": ["eng", 7, "ops"], "tenant": "acme"})).unwrap();
        assert_eq!(i.id, "a@x.io");
        assert_eq!(i.name.as_deref(), Some("A"));
        assert_eq!(i.groups, Some(vec!["eng".into(), "ops".into()]), "non-strings are skipped");
        assert_eq!(i.org.as_deref(), Some("acme"));
        // One group as a string; no groups claim at all; the configured org when no claim.
        let v = |extra: serde_json::Value| {
            let mut m = json!({"email": "a@x.io", "email_verified": true});
            m.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            m
        };
        assert_eq!(read(&c, v(json!({"groups": "eng"}))).unwrap().groups, Some(vec!["eng".into()]));
        let bare = read(&c, v(json!({"preferred_username": "ay"}))).unwrap();
        assert_eq!((bare.groups, bare.org, bare.name.as_deref()), (None, None, Some("ay")));
        // An id from an email the provider has not verified is refused.
        assert!(matches!(read(&c, json!({"email": "a@x.io"})), Err(OidcError::Claims(_))));
        assert!(matches!(read(&c, json!({"email": "a@x.io", "email_verified": false})), Err(OidcError::Claims(_))));
    }

    #[test]
    fn unusable_claims_are_refused_and_unverified_email_is_dropped() {
        let c = config(Some("tenant"));
        assert!(matches!(read(&c, json!({"sub": "x"})), Err(OidcError::Claims(_))), "no id claim");
        let ok = true;
        assert!(matches!(read(&c, json!({"email": "a b@x", "email_verified": ok})), Err(OidcError::Claims(_))));
        assert!(matches!(
            read(&c, json!({"email": "a@x", "email_verified": ok, "groups": {"a": 1}})),
            Err(OidcError::Claims(_))
        ));
        assert!(matches!(
            read(&c, json!({"email": "a@x", "email_verified": ok, "tenant": "no spaces"})),
            Err(OidcError::Claims(_))
        ));
        let many: Vec<String> = (0..=MAX_GROUPS).map(|i| format!("g{i}")).collect();
        assert!(matches!(
            read(&c, json!({"email": "a@x", "email_verified": ok, "groups": many})),
            Err(OidcError::Claims(_))
        ));
        let mut sub = config(None);
        sub.claims.id = "sub".into();
        let i = read(&sub, json!({"sub": "u1", "email": "a@x.io", "email_verified": false})).unwrap();
        assert_eq!(i.email, None, "an address the provider has not verified is not taken");
    }
}

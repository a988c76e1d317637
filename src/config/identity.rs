//! `identity`: what a person's directory groups grant them.
//!
//! One table serves every way people arrive: the `groups` claim of an OpenID Connect sign-in,
//! the groups header of a trusted auth proxy, and SCIM group membership. A person's roles are
//! the union of their groups' roles; their admin role is the highest any group (or the
//! `operators` / `auditors` lists, by principal id) gives them.

use std::collections::BTreeMap;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;

use crate::config::Secret;

use crate::policy::scope::Scope;
use crate::token::{AdminRole, Principal};

/// What membership in one directory group grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupGrant {
    /// Token roles (each one of the configured `roles`).
    pub roles: Vec<String>,
    /// Scopes members may give the tokens they create.
    pub scopes: Vec<Scope>,
    pub admin: Option<AdminRole>,
}

/// What a person's groups grant them, all together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub roles: Vec<String>,
    pub scopes: Vec<Scope>,
    pub admin: Option<AdminRole>,
}

#[derive(Debug, Clone, Default)]
pub struct IdentityConfig {
    /// Directory group name (exact, case-sensitive) to what it grants.
    pub groups: BTreeMap<String, GroupGrant>,
    /// Principal ids that are operators whatever their groups say.
    pub operators: Vec<String>,
    /// Principal ids that are auditors whatever their groups say.
    pub auditors: Vec<String>,
    /// Sign-in through an OpenID Connect provider (the page and `tokengate login`).
    pub oidc: Option<OidcConfig>,
    /// Sign-in by an auth proxy in front of the admin listener.
    pub trusted_headers: Option<TrustedHeaders>,
    /// Present when `oidc` is.
    pub sessions: Option<SessionConfig>,
}

/// `identity.oidc`.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// Discovery is `{issuer}/.well-known/openid-configuration`; ID tokens must name it as `iss`,
    /// exactly as written (so it is kept as text: a URL type would add a trailing `/`).
    pub issuer: String,
    pub client_id: String,
    /// None: a public client (PKCE alone).
    pub client_secret: Option<Secret>,
    /// This listener's `/auth/callback` as the browser reaches it.
    pub redirect_url: url::Url,
    /// Asked for besides `openid`.
    pub scopes: Vec<String>,
    pub claims: ClaimNames,
    /// The organization of everyone who signs in, when no `claims.org` names one.
    pub org: Option<String>,
}

/// Which ID token claims hold what.
#[derive(Debug, Clone)]
pub struct ClaimNames {
    /// The principal id (default `sub`; `email` or `preferred_username` read better).
    pub id: String,
    pub name: String,
    pub email: String,
    /// A list of group names (or one string).
    pub groups: String,
    pub org: Option<String>,
}

/// `identity.trusted_headers`: who the auth proxy in front says the person is.
#[derive(Debug, Clone)]
pub struct TrustedHeaders {
    /// Only requests whose peer is in one of these are believed; others carrying `user` are
    /// refused.
    pub peers: Vec<IpNet>,
    pub user: HeaderName,
    pub email: Option<HeaderName>,
    pub name: Option<HeaderName>,
    /// Comma-separated group names.
    pub groups: Option<HeaderName>,
}

impl TrustedHeaders {
    pub fn trusts(&self, peer: std::net::IpAddr) -> bool {
        self.peers.iter().any(|n| n.contains(&peer))
    }
}

/// `identity.sessions`: the signed-in session (a cookie for the page, a bearer credential for
/// the CLI), sealed with AES-256-GCM.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The first key seals; every key opens (rotation: add the new key first, drop the old one
    /// after `lifetime`).
    pub keys: Vec<Secret>,
    pub lifetime: Duration,
    pub idle_timeout: Duration,
}

impl IdentityConfig {
    /// What `groups` grant the principal `id`: roles in the order of the configured role list,
    /// scopes in the order first granted, without duplicates. Unknown groups grant nothing.
    pub fn grants(&self, id: &str, groups: &[String], role_order: &[String]) -> Grants {
        let matched: Vec<&GroupGrant> = groups.iter().filter_map(|g| self.groups.get(g)).collect();
        let roles = role_order.iter().filter(|r| matched.iter().any(|g| g.roles.contains(r))).cloned().collect();
        let mut scopes: Vec<Scope> = Vec::new();
        for s in matched.iter().flat_map(|g| &g.scopes) {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        let by_list = if self.operators.iter().any(|o| o == id) {
            Some(AdminRole::Operator)
        } else if self.auditors.iter().any(|a| a == id) {
            Some(AdminRole::Auditor)
        } else {
            None
        };
        let admin = matched.iter().filter_map(|g| g.admin).chain(by_list).max();
        Grants { roles, scopes, admin }
    }

    /// Sets `principal.groups` and derives its roles, scopes and admin role from them.
    pub fn apply_groups(&self, principal: &mut Principal, groups: Vec<String>, role_order: &[String]) {
        let Grants { roles, scopes, admin } = self.grants(&principal.id, &groups, role_order);
        principal.groups = groups;
        principal.roles = roles;
        principal.scopes = scopes;
        principal.admin = admin;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> IdentityConfig {
        let mut groups = BTreeMap::new();
        let scope = |s: &str| s.parse::<Scope>().unwrap();
        groups.insert(
            "eng".into(),
            GroupGrant { roles: vec!["developer".into()], scopes: vec![scope("env:dev")], admin: None },
        );
        groups.insert(
            "sre".into(),
            GroupGrant {
                roles: vec!["developer".into(), "viewer".into()],
                scopes: vec![scope("env:prod"), scope("env:dev")],
                admin: Some(AdminRole::Auditor),
            },
        );
        groups.insert("root".into(), GroupGrant { admin: Some(AdminRole::Operator), ..Default::default() });
        IdentityConfig { groups, operators: vec!["boss".into()], auditors: vec!["clerk".into()], ..Default::default() }
    }

    #[test]
    fn roles_are_the_union_in_configured_order_and_the_highest_admin_wins() {
        let order = ["viewer".to_string(), "developer".to_string(), "admin".to_string()];
        let c = config();
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let both = c.grants("x", &g(&["eng", "sre"]), &order);
        assert_eq!(both.roles, g(&["viewer", "developer"]));
        assert_eq!(both.scopes.iter().map(|s| s.to_string()).collect::<Vec<_>>(), ["env:dev", "env:prod"]);
        assert_eq!(both.admin, Some(AdminRole::Auditor));
        assert_eq!(c.grants("x", &g(&["sre", "root"]), &order).admin, Some(AdminRole::Operator));
        assert_eq!(c.grants("x", &g(&["unknown"]), &order), Grants::default());
        assert_eq!(c.grants("boss", &[], &order).admin, Some(AdminRole::Operator));
        assert_eq!(c.grants("clerk", &g(&["root"]), &order).admin, Some(AdminRole::Operator));
        assert_eq!(c.grants("clerk", &[], &order).admin, Some(AdminRole::Auditor));
        // Group names are exact.
        assert_eq!(c.grants("x", &g(&["ENG"]), &order), Grants::default());
    }
}

//! `identity`: what a person's directory groups grant them.
//!
//! One table serves every way people arrive: the `groups` claim of an OpenID Connect sign-in,
//! the groups header of a trusted auth proxy, and SCIM group membership. A person's roles are
//! the union of their groups' roles; their admin role is the highest any group (or the
//! `operators` / `auditors` lists, by principal id) gives them.

use std::collections::BTreeMap;

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
        IdentityConfig { groups, operators: vec!["boss".into()], auditors: vec!["clerk".into()] }
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

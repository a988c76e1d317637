//! `identity`: what a person's directory groups grant them.
//!
//! One table serves every way people arrive: the `groups` claim of an OpenID Connect sign-in,
//! the groups header of a trusted auth proxy, and SCIM group membership. A person's roles are
//! the union of their groups' roles; their admin role is the highest any group (or the
//! `operators` / `auditors` lists, by principal id) gives them.

use std::collections::BTreeMap;

use crate::token::{AdminRole, Principal};

/// What membership in one directory group grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupGrant {
    /// Token roles (each one of the configured `roles`).
    pub roles: Vec<String>,
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
    /// The roles and admin role `groups` grant the principal `id`, in the order of the
    /// configured role list, without duplicates. Unknown groups grant nothing.
    pub fn grants(&self, id: &str, groups: &[String], role_order: &[String]) -> (Vec<String>, Option<AdminRole>) {
        let matched: Vec<&GroupGrant> = groups.iter().filter_map(|g| self.groups.get(g)).collect();
        let roles = role_order.iter().filter(|r| matched.iter().any(|g| g.roles.contains(r))).cloned().collect();
        let by_list = if self.operators.iter().any(|o| o == id) {
            Some(AdminRole::Operator)
        } else if self.auditors.iter().any(|a| a == id) {
            Some(AdminRole::Auditor)
        } else {
            None
        };
        let admin = matched.iter().filter_map(|g| g.admin).chain(by_list).max();
        (roles, admin)
    }

    /// Sets `principal.groups` and derives its roles and admin role from them.
    pub fn apply_groups(&self, principal: &mut Principal, groups: Vec<String>, role_order: &[String]) {
        let (roles, admin) = self.grants(&principal.id, &groups, role_order);
        principal.groups = groups;
        principal.roles = roles;
        principal.admin = admin;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> IdentityConfig {
        let mut groups = BTreeMap::new();
        groups.insert("eng".into(), GroupGrant { roles: vec!["developer".into()], admin: None });
        groups.insert(
            "sre".into(),
            GroupGrant { roles: vec!["developer".into(), "viewer".into()], admin: Some(AdminRole::Auditor) },
        );
        groups.insert("root".into(), GroupGrant { roles: vec![], admin: Some(AdminRole::Operator) });
        IdentityConfig { groups, operators: vec!["boss".into()], auditors: vec!["clerk".into()] }
    }

    #[test]
    fn roles_are_the_union_in_configured_order_and_the_highest_admin_wins() {
        let order = ["viewer".to_string(), "developer".to_string(), "admin".to_string()];
        let c = config();
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(c.grants("x", &g(&["eng", "sre"]), &order), (g(&["viewer", "developer"]), Some(AdminRole::Auditor)));
        assert_eq!(c.grants("x", &g(&["sre", "root"]), &order).1, Some(AdminRole::Operator));
        assert_eq!(c.grants("x", &g(&["unknown"]), &order), (vec![], None));
        assert_eq!(c.grants("boss", &[], &order).1, Some(AdminRole::Operator));
        assert_eq!(c.grants("clerk", &g(&["root"]), &order).1, Some(AdminRole::Operator));
        assert_eq!(c.grants("clerk", &[], &order).1, Some(AdminRole::Auditor));
        // Group names are exact.
        assert_eq!(c.grants("x", &g(&["ENG"]), &order), (vec![], None));
    }
}

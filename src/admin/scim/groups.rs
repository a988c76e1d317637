//! `/Groups`: directory groups, stored as records, and what membership grants.
//!
//! A group's `displayName` is looked up in `identity.groups` (the table sign-in claims use);
//! each member principal's `groups` lists the names of the groups it is in, and its roles and
//! admin role are derived from them (`IdentityConfig::apply_groups`). Every change to a group
//! (create, replace, patch, delete) brings each affected principal in line and puts it (an
//! invalidation on every replica) before the group record is written, and the sync is
//! idempotent: a retried request converges even after a failure half-way. Display names are
//! unique (roles hang on them); members must be existing users.

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use super::Scim;
use super::error::ScimError;
use super::filter::{AttrPath, Filter, get_ci};
use super::list::{ListParams, Pager, Projection};
use super::patch::{self, Operation};
use super::routes::{MAX_SCAN, check_if_match, require_schema, resource_response, version_of};
use super::schema::GROUP_URN;
use crate::clock::Timestamp;
use crate::token::{Group, valid_group_id, valid_subject_id};

/// Longest group name (as `identity.groups` allows).
const MAX_NAME: usize = 256;
/// Most members of one group.
pub const MAX_MEMBERS: usize = 10_000;

/// Which group attributes compare case-exactly in filters.
fn case_exact(attr: &AttrPath) -> bool {
    attr.urn.is_none()
        && (["id", "externalId"].iter().any(|n| n.eq_ignore_ascii_case(&attr.name) && attr.sub.is_none())
            || (attr.name.eq_ignore_ascii_case("members")
                && attr.sub.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("value"))))
}

pub fn render(g: &Group, base: &str) -> Value {
    let members: Vec<Value> =
        g.members.iter().map(|m| json!({"value": m, "$ref": format!("{base}/Users/{m}")})).collect();
    let mut doc = json!({
        "schemas": [GROUP_URN],
        "id": g.id,
        "displayName": g.display_name,
        "members": members,
    });
    if let Some(e) = &g.external_id {
        doc["externalId"] = e.clone().into();
    }
    let version = version_of(&doc);
    doc["meta"] = json!({
        "resourceType": "Group",
        "created": g.created_at.to_rfc3339(),
        "lastModified": g.updated_at.to_rfc3339(),
        "location": format!("{base}/Groups/{}", g.id),
        "version": version,
    });
    doc
}

#[derive(Debug)]
struct GroupInput {
    display_name: String,
    external_id: Option<String>,
    members: Vec<String>,
}

fn parse(doc: &Value) -> Result<GroupInput, ScimError> {
    let obj = doc.as_object().ok_or_else(|| ScimError::invalid_syntax("the body must be a JSON object"))?;
    require_schema(obj, GROUP_URN)?;
    let display_name = match get_ci(obj, "displayName") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_NAME && !s.chars().any(char::is_control) => s.clone(),
        Some(_) => {
            return Err(ScimError::invalid_value(format!(
                "displayName must be 1-{MAX_NAME} bytes without control characters"
            )));
        }
        None => return Err(ScimError::invalid_value("displayName is required")),
    };
    let external_id = match get_ci(obj, "externalId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_NAME && !s.chars().any(char::is_control) => {
            Some(s.clone())
        }
        Some(_) => return Err(ScimError::invalid_value(format!("externalId must be 1-{MAX_NAME} bytes of text"))),
    };
    let mut members = Vec::new();
    match get_ci(obj, "members") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            if items.len() > MAX_MEMBERS {
                return Err(ScimError::invalid_value(format!("a group has at most {MAX_MEMBERS} members")));
            }
            for (i, m) in items.iter().enumerate() {
                let value = m.as_object().and_then(|o| get_ci(o, "value")).and_then(Value::as_str);
                match value {
                    Some(v) if valid_subject_id(v) => members.push(v.to_string()),
                    _ => return Err(ScimError::invalid_value(format!("members[{i}].value must be a user id"))),
                }
            }
        }
        Some(_) => return Err(ScimError::invalid_value("members must be an array")),
    }
    members.sort();
    members.dedup();
    Ok(GroupInput { display_name, external_id, members })
}

const READ_ONLY: &[&str] = &["id", "meta", "schemas"];

/// A new group id: 32 random hex digits.
fn new_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source works");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Scim {
    async fn group(&self, id: &str) -> Result<Group, ScimError> {
        let not_found = || ScimError::NotFound(format!("no group {id:?}"));
        if !valid_group_id(id) {
            return Err(not_found());
        }
        self.inner.store.get_group(id).await?.ok_or_else(not_found)
    }

    /// Every group, in id order (bounded by [`MAX_SCAN`]).
    async fn all_groups(&self) -> Result<Vec<Group>, ScimError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.inner.store.list_groups(after.as_deref(), crate::store::MAX_PAGE).await?;
            all.extend(page.items);
            if all.len() > MAX_SCAN {
                return Err(ScimError::bad("tooMany", format!("more than {MAX_SCAN} groups")));
            }
            match page.next_cursor {
                Some(c) => after = Some(c),
                None => return Ok(all),
            }
        }
    }

    pub(super) async fn get_group(&self, base: &str, id: &str) -> Result<Value, ScimError> {
        Ok(render(&self.group(id).await?, base))
    }

    pub(super) async fn list_groups(&self, base: &str, params: ListParams) -> Result<Response<Full<Bytes>>, ScimError> {
        let mut pager = Pager::new(&params);
        self.find_groups(base, params.filter.as_ref(), &mut pager).await?;
        Ok(pager.response(&params.projection))
    }

    /// Offers every group `filter` matches to `pager`, in id order.
    pub(super) async fn find_groups(
        &self,
        base: &str,
        filter: Option<&Filter>,
        pager: &mut Pager,
    ) -> Result<(), ScimError> {
        if let Some((attr, value)) = filter.and_then(|f| f.equality())
            && attr.name.eq_ignore_ascii_case("id")
        {
            if valid_group_id(value)
                && let Some(g) = self.inner.store.get_group(value).await?
            {
                pager.push(render(&g, base));
            }
            return Ok(());
        }
        for g in self.all_groups().await? {
            let doc = render(&g, base);
            if filter.is_none_or(|f| f.matches(doc.as_object().expect("an object"), case_exact)) {
                pager.push(doc);
            }
        }
        Ok(())
    }

    /// Checks that the name is free (but for `except`) and every member exists.
    async fn check(&self, input: &GroupInput, except: Option<&str>) -> Result<(), ScimError> {
        let taken = self
            .all_groups()
            .await?
            .into_iter()
            .any(|g| g.display_name == input.display_name && Some(g.id.as_str()) != except);
        if taken {
            return Err(ScimError::Conflict(format!("a group named {:?} exists", input.display_name)));
        }
        for m in &input.members {
            if self.inner.store.get_principal(m).await?.is_none() {
                return Err(ScimError::invalid_value(format!("members: no user {m:?}")));
            }
        }
        Ok(())
    }

    /// Brings every principal `before` and `after` touch in line with `after` (`None`: the
    /// group is gone): members hold its name, others do not; then roles are derived again.
    async fn sync_members(&self, before: Option<&Group>, after: Option<&Group>) -> Result<(), ScimError> {
        let config = &self.inner.config;
        let mut affected: Vec<&String> = before.iter().chain(after.iter()).flat_map(|g| g.members.iter()).collect();
        affected.sort();
        affected.dedup();
        for id in affected {
            let Some(mut p) = self.inner.store.get_principal(id).await? else { continue };
            let mut groups = p.groups.clone();
            if let Some(b) = before {
                groups.retain(|g| *g != b.display_name);
            }
            if let Some(a) = after.filter(|a| a.members.contains(id)) {
                groups.push(a.display_name.clone());
            }
            let old = (p.groups.clone(), p.roles.clone(), p.scopes.clone(), p.admin);
            config.identity.apply_groups(&mut p, groups, &config.roles);
            if (p.groups.clone(), p.roles.clone(), p.scopes.clone(), p.admin) != old {
                p.updated_at = Some(Timestamp::now());
                self.inner.store.put_principal(&p).await?;
                tracing::info!(principal = %p.id, roles = ?p.roles, admin = ?p.admin, "SCIM group membership changed a user's roles");
            }
        }
        Ok(())
    }

    pub(super) async fn create_group(
        &self,
        base: &str,
        body: &Value,
        projection: &Projection,
    ) -> Result<Response<Full<Bytes>>, ScimError> {
        let input = parse(body)?;
        self.check(&input, None).await?;
        let now = Timestamp::now();
        let g = Group {
            id: new_id(),
            display_name: input.display_name,
            external_id: input.external_id,
            members: input.members,
            created_at: now,
            updated_at: now,
        };
        self.sync_members(None, Some(&g)).await?;
        self.inner.store.put_group(&g).await?;
        Ok(resource_response(StatusCode::CREATED, render(&g, base), projection))
    }

    async fn store_group(&self, before: Group, input: GroupInput, base: &str) -> Result<Value, ScimError> {
        self.check(&input, Some(&before.id)).await?;
        let mut g = before.clone();
        g.display_name = input.display_name;
        g.external_id = input.external_id;
        g.members = input.members;
        // Always synced, even when nothing changed, so a retry repairs a half-done change.
        self.sync_members(Some(&before), Some(&g)).await?;
        if g != before {
            g.updated_at = Timestamp::now();
            self.inner.store.put_group(&g).await?;
        }
        Ok(render(&g, base))
    }

    pub(super) async fn replace_group(
        &self,
        parts: &Parts,
        base: &str,
        id: &str,
        body: &Value,
    ) -> Result<Value, ScimError> {
        let g = self.group(id).await?;
        check_if_match(parts, &render(&g, base))?;
        let input = parse(body)?;
        self.store_group(g, input, base).await
    }

    pub(super) async fn patch_group(
        &self,
        parts: &Parts,
        base: &str,
        id: &str,
        ops: &[Operation],
    ) -> Result<Value, ScimError> {
        let g = self.group(id).await?;
        let current = render(&g, base);
        check_if_match(parts, &current)?;
        let Value::Object(mut doc) = current else { unreachable!("a group renders as an object") };
        doc.remove("meta");
        patch::apply(&mut doc, ops, READ_ONLY)?;
        let input = parse(&Value::Object(doc))?;
        self.store_group(g, input, base).await
    }

    pub(super) async fn delete_group(&self, parts: &Parts, base: &str, id: &str) -> Result<(), ScimError> {
        let g = self.group(id).await?;
        check_if_match(parts, &render(&g, base))?;
        self.sync_members(Some(&g), None).await?;
        self.inner.store.delete_group(id).await?;
        Ok(())
    }

    /// A deleted user leaves every group.
    pub(super) async fn forget_member(&self, id: &str) -> Result<(), ScimError> {
        for mut g in self.all_groups().await? {
            if let Ok(i) = g.members.binary_search(&id.to_string()) {
                g.members.remove(i);
                g.updated_at = Timestamp::now();
                self.inner.store.put_group(&g).await?;
            }
        }
        Ok(())
    }
}

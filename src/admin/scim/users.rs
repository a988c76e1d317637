//! `/Users`: principals as SCIM users.
//!
//! | SCIM                                   | principal                                        |
//! |----------------------------------------|--------------------------------------------------|
//! | `id`, `userName`                       | `id` (must be a valid principal id; cannot change) |
//! | `displayName` (else `name.formatted`, else `name.givenName name.familyName`, else `userName`) | `display_name` |
//! | `emails`: the primary one, else `type: work`, else the first (returned as `type: work`) | `email` |
//! | `active`                               | `!deactivated`                                   |
//! | `externalId`                           | `external_id`                                    |
//! | enterprise `organization` (else `scim.org` on creation and replacement) | `org`          |
//!
//! Roles, admin role and directory groups are not user attributes: group membership sets them
//! (`groups.rs`). Creating a user applies `identity.groups` with no groups yet (so
//! `identity.operators` / `auditors` apply); replacing or patching one keeps what it has.

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::error::ScimError;
use super::filter::{AttrPath, Filter, get_ci};
use super::list::{ListParams, Pager, Projection};
use super::patch::{self, Operation};
use super::routes::{MAX_SCAN, check_if_match, require_schema, resource_response, version_of};
use super::schema::{ENTERPRISE_URN, USER_URN};
use super::{ACTOR, Scim};
use crate::clock::Timestamp;
use crate::token::{Principal, valid_subject_id};

/// Longest display name, external id or email address kept.
const MAX_TEXT: usize = 256;

/// Which user attributes compare case-exactly in filters.
pub fn case_exact(attr: &AttrPath) -> bool {
    attr.urn.is_none()
        && attr.sub.is_none()
        && ["id", "userName", "externalId"].iter().any(|n| n.eq_ignore_ascii_case(&attr.name))
}

/// The principal as a SCIM user.
pub fn render(p: &Principal, base: &str) -> Value {
    let mut doc = json!({
        "schemas": [USER_URN],
        "id": p.id,
        "userName": p.id,
        "displayName": p.display_name,
        "active": !p.deactivated,
    });
    if let Some(e) = &p.external_id {
        doc["externalId"] = e.clone().into();
    }
    if let Some(email) = &p.email {
        doc["emails"] = json!([{"value": email, "type": "work"}]);
    }
    if let Some(org) = &p.org {
        doc["schemas"] = json!([USER_URN, ENTERPRISE_URN]);
        doc[ENTERPRISE_URN] = json!({"organization": org});
    }
    let mut meta = json!({"resourceType": "User", "location": format!("{base}/Users/{}", p.id)});
    if let Some(c) = p.created_at.or(p.updated_at) {
        meta["created"] = c.to_rfc3339().into();
    }
    if let Some(m) = p.updated_at.or(p.created_at) {
        meta["lastModified"] = m.to_rfc3339().into();
    }
    meta["version"] = version_of(&doc).into();
    doc["meta"] = meta;
    doc
}

/// What a user body (POST, PUT, or a patched resource) says.
#[derive(Debug, PartialEq)]
struct UserInput {
    user_name: String,
    display_name: String,
    email: Option<String>,
    active: bool,
    external_id: Option<String>,
    /// `None`: the body names no organization.
    org: Option<String>,
}

fn text(field: &str, v: &Value) -> Result<String, ScimError> {
    let s = v.as_str().ok_or_else(|| ScimError::invalid_value(format!("{field} must be a string")))?.trim();
    if s.is_empty() || s.chars().count() > MAX_TEXT {
        return Err(ScimError::invalid_value(format!("{field} must be 1 to {MAX_TEXT} characters")));
    }
    if let Some(c) =
        s.chars().find(|c| matches!(c.general_category(), GeneralCategory::Control | GeneralCategory::Format))
    {
        return Err(ScimError::invalid_value(format!(
            "{field} must not contain control or invisible formatting characters (found U+{:04X})",
            u32::from(c)
        )));
    }
    Ok(s.to_string())
}

fn optional_text(field: &str, v: Option<&Value>) -> Result<Option<String>, ScimError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => text(field, v).map(Some),
    }
}

/// A boolean, or the strings `"true"` / `"false"` in any letter case (Entra ID sends those).
pub fn boolean(field: &str, v: &Value) -> Result<bool, ScimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(ScimError::invalid_value(format!("{field} must be true or false"))),
    }
}

fn email(v: &Value) -> Result<Option<String>, ScimError> {
    let items = match v {
        Value::Null => return Ok(None),
        Value::Array(items) => items,
        _ => return Err(ScimError::invalid_value("emails must be an array")),
    };
    let mut chosen: Option<(u8, String)> = None;
    for (i, item) in items.iter().enumerate() {
        let o = item.as_object().ok_or_else(|| ScimError::invalid_value(format!("emails[{i}] must be an object")))?;
        let value = text(&format!("emails[{i}].value"), get_ci(o, "value").unwrap_or(&Value::Null))?;
        if value.contains(char::is_whitespace) || !value.contains('@') {
            return Err(ScimError::invalid_value(format!("emails[{i}].value is not an email address")));
        }
        let primary = match get_ci(o, "primary") {
            None | Some(Value::Null) => false,
            Some(p) => boolean(&format!("emails[{i}].primary"), p)?,
        };
        let work = get_ci(o, "type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("work"));
        let rank = if primary {
            0
        } else if work {
            1
        } else {
            2
        };
        if chosen.as_ref().is_none_or(|(r, _)| rank < *r) {
            chosen = Some((rank, value));
        }
    }
    Ok(chosen.map(|(_, v)| v))
}

fn parse(doc: &Value) -> Result<UserInput, ScimError> {
    let obj = doc.as_object().ok_or_else(|| ScimError::invalid_syntax("the body must be a JSON object"))?;
    require_schema(obj, USER_URN)?;
    let mut seen: Vec<String> = Vec::new();
    for k in obj.keys() {
        let lower = k.to_ascii_lowercase();
        if seen.contains(&lower) {
            return Err(ScimError::invalid_syntax(format!("the attribute {k:?} is given twice")));
        }
        seen.push(lower);
    }
    let user_name = match get_ci(obj, "userName") {
        Some(Value::String(s)) if valid_subject_id(s) => s.clone(),
        Some(Value::String(_)) => {
            return Err(ScimError::invalid_value(
                "userName is the principal id: 1-128 characters from A-Z a-z 0-9 . _ @ : - (not . or ..)",
            ));
        }
        Some(_) => return Err(ScimError::invalid_value("userName must be a string")),
        None => return Err(ScimError::invalid_value("userName is required")),
    };
    let name = match get_ci(obj, "name") {
        None | Some(Value::Null) => None,
        Some(Value::Object(n)) => Some(n),
        Some(_) => return Err(ScimError::invalid_value("name must be an object")),
    };
    let from_name = || -> Result<Option<String>, ScimError> {
        let Some(n) = name else { return Ok(None) };
        if let Some(f) = optional_text("name.formatted", get_ci(n, "formatted"))? {
            return Ok(Some(f));
        }
        let given = optional_text("name.givenName", get_ci(n, "givenName"))?;
        let family = optional_text("name.familyName", get_ci(n, "familyName"))?;
        let joined = [given, family].into_iter().flatten().collect::<Vec<_>>().join(" ");
        Ok((!joined.is_empty()).then_some(joined))
    };
    let display_name = match optional_text("displayName", get_ci(obj, "displayName"))? {
        Some(d) => d,
        None => from_name()?.unwrap_or_else(|| user_name.clone()),
    };
    let display_name = text("displayName", &Value::String(display_name))?;
    let email = get_ci(obj, "emails").map(email).transpose()?.flatten();
    let active = match get_ci(obj, "active") {
        None | Some(Value::Null) => true,
        Some(v) => boolean("active", v)?,
    };
    let external_id = optional_text("externalId", get_ci(obj, "externalId"))?;
    let org = match get_ci(obj, ENTERPRISE_URN) {
        None | Some(Value::Null) => None,
        Some(Value::Object(ext)) => match get_ci(ext, "organization") {
            None | Some(Value::Null) => None,
            Some(Value::String(o)) if valid_subject_id(o) => Some(o.clone()),
            Some(_) => {
                return Err(ScimError::invalid_value(
                    "organization is an organization id: 1-128 characters from A-Z a-z 0-9 . _ @ : -",
                ));
            }
        },
        Some(_) => return Err(ScimError::invalid_value(format!("{ENTERPRISE_URN} must be an object"))),
    };
    Ok(UserInput { user_name, display_name, email, active, external_id, org })
}

/// Attributes a PATCH cannot target.
const READ_ONLY: &[&str] = &["id", "meta", "schemas", "groups"];

impl Scim {
    async fn principal(&self, id: &str) -> Result<Principal, ScimError> {
        let not_found = || ScimError::NotFound(format!("no user {id:?}"));
        if !valid_subject_id(id) {
            return Err(not_found());
        }
        self.inner.store.get_principal(id).await?.ok_or_else(not_found)
    }

    pub(super) async fn get_user(&self, base: &str, id: &str) -> Result<Value, ScimError> {
        Ok(render(&self.principal(id).await?, base))
    }

    pub(super) async fn list_users(&self, base: &str, params: ListParams) -> Result<Response<Full<Bytes>>, ScimError> {
        let mut pager = Pager::new(&params);
        self.find_users(base, params.filter.as_ref(), &mut pager).await?;
        Ok(pager.response(&params.projection))
    }

    /// Offers every user `filter` matches to `pager`, in id order.
    pub(super) async fn find_users(
        &self,
        base: &str,
        filter: Option<&Filter>,
        pager: &mut Pager,
    ) -> Result<(), ScimError> {
        // `userName eq` and `id eq`: one read, no scan.
        if let Some((attr, value)) = filter.and_then(|f| f.equality())
            && (attr.name.eq_ignore_ascii_case("userName") || attr.name.eq_ignore_ascii_case("id"))
        {
            if valid_subject_id(value)
                && let Some(p) = self.inner.store.get_principal(value).await?
            {
                pager.push(render(&p, base));
            }
            return Ok(());
        }
        let mut after: Option<String> = None;
        let mut scanned = 0;
        loop {
            let page = self.inner.store.list_principals(after.as_deref(), crate::store::MAX_PAGE).await?;
            scanned += page.items.len();
            if scanned > MAX_SCAN {
                return Err(ScimError::bad("tooMany", format!("more than {MAX_SCAN} users: filter by userName or id")));
            }
            for p in &page.items {
                let doc = render(p, base);
                if filter.is_none_or(|f| f.matches(doc.as_object().expect("an object"), case_exact)) {
                    pager.push(doc);
                }
            }
            match page.next_cursor {
                Some(c) => after = Some(c),
                None => return Ok(()),
            }
        }
    }

    fn default_org(&self) -> Option<String> {
        self.inner.config.scim.org.clone()
    }

    pub(super) async fn create_user(
        &self,
        base: &str,
        body: &Value,
        projection: &Projection,
    ) -> Result<Response<Full<Bytes>>, ScimError> {
        let input = parse(body)?;
        if self.inner.store.get_principal(&input.user_name).await?.is_some() {
            return Err(ScimError::Conflict(format!("a user named {:?} exists", input.user_name)));
        }
        let now = Timestamp::now();
        let mut p = Principal {
            id: input.user_name,
            display_name: input.display_name,
            email: input.email,
            org: input.org.or_else(|| self.default_org()),
            deactivated: !input.active,
            external_id: input.external_id,
            created_at: Some(now),
            updated_at: Some(now),
            ..Default::default()
        };
        let config = &self.inner.config;
        config.identity.apply_groups(&mut p, Vec::new(), &config.roles);
        self.inner.store.put_principal(&p).await?;
        tracing::info!(principal = %p.id, "SCIM created a user");
        Ok(resource_response(StatusCode::CREATED, render(&p, base), projection))
    }

    /// Writes `input` over `p` (what a user body may change) and stores it.
    async fn store_user(&self, mut p: Principal, input: UserInput, base: &str) -> Result<Value, ScimError> {
        if input.user_name != p.id {
            return Err(ScimError::mutability("userName is the principal id and cannot change"));
        }
        let before = p.clone();
        p.display_name = input.display_name;
        p.email = input.email;
        p.org = input.org.or_else(|| self.default_org());
        p.deactivated = !input.active;
        p.external_id = input.external_id;
        if p != before {
            p.updated_at = Some(Timestamp::now());
            self.inner.store.put_principal(&p).await?;
            if p.deactivated != before.deactivated {
                tracing::info!(principal = %p.id, active = !p.deactivated, "SCIM changed whether a user is active");
            }
        }
        Ok(render(&p, base))
    }

    pub(super) async fn replace_user(
        &self,
        parts: &Parts,
        base: &str,
        id: &str,
        body: &Value,
    ) -> Result<Value, ScimError> {
        let p = self.principal(id).await?;
        check_if_match(parts, &render(&p, base))?;
        let input = parse(body)?;
        self.store_user(p, input, base).await
    }

    pub(super) async fn patch_user(
        &self,
        parts: &Parts,
        base: &str,
        id: &str,
        ops: &[Operation],
    ) -> Result<Value, ScimError> {
        let p = self.principal(id).await?;
        let current = render(&p, base);
        check_if_match(parts, &current)?;
        let Value::Object(mut doc) = current else { unreachable!("a user renders as an object") };
        doc.remove("meta");
        patch::apply(&mut doc, ops, READ_ONLY)?;
        let input = parse(&Value::Object(doc))?;
        self.store_user(p, input, base).await
    }

    pub(super) async fn delete_user(&self, parts: &Parts, base: &str, id: &str) -> Result<(), ScimError> {
        let p = self.principal(id).await?;
        check_if_match(parts, &render(&p, base))?;
        // Deleting revokes their personal tokens in the same step; then they leave their groups.
        if !self.inner.store.delete_principal(id, ACTOR).await? {
            return Err(ScimError::NotFound(format!("no user {id:?}")));
        }
        tracing::info!(principal = %id, "SCIM deleted a user");
        self.forget_member(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_read_like_directories_send_them() {
        let u = parse(&json!({
            "schemas": [USER_URN, ENTERPRISE_URN],
            "userName": "alice@example.com",
            "name": {"givenName": "Alice", "familyName": "Smith"},
            "emails": [{"value": "home@x.org", "type": "home"}, {"value": "alice@example.com", "type": "work"}],
            "active": "False",
            "externalId": "e-1",
            ENTERPRISE_URN: {"organization": "acme"},
        }))
        .unwrap();
        assert_eq!(u.display_name, "Alice Smith");
        assert_eq!(u.email.as_deref(), Some("alice@example.com"));
        assert!(!u.active);
        assert_eq!(u.org.as_deref(), Some("acme"));
        let p = Principal { id: "a".into(), display_name: "A".into(), email: Some("a@x".into()), ..Default::default() };
        let doc = render(&p, "http://h/scim/v2");
        assert_eq!(parse(&doc).unwrap().user_name, "a");
        assert_eq!(doc["meta"]["location"], "http://h/scim/v2/Users/a");
        assert!(doc.as_object().unwrap().contains_key("emails"));
    }

    #[test]
    fn bad_users_are_refused() {
        for bad in [
            json!({"userName": "a"}),
            json!({"schemas": [USER_URN]}),
            json!({"schemas": [USER_URN], "userName": "a b"}),
            json!({"schemas": [USER_URN], "userName": ".."}),
            json!({"schemas": [USER_URN], "userName": 5}),
            json!({"schemas": [USER_URN], "userName": "a", "active": "yes"}),
            json!({"schemas": [USER_URN], "userName": "a", "displayName": "x\u{202e}y"}),
            json!({"schemas": [USER_URN], "userName": "a", "displayName": ""}),
            json!({"schemas": [USER_URN], "userName": "a", "emails": [{"value": "no-at"}]}),
            json!({"schemas": [USER_URN], "userName": "a", "emails": {"value": "a@b"}}),
            json!({"schemas": [USER_URN], "userName": "a", "name": "x"}),
            json!({"schemas": [USER_URN], "userName": "a", ENTERPRISE_URN: {"organization": "a b"}}),
            json!({"schemas": [USER_URN], "userName": "a", "USERNAME": "b"}),
        ] {
            assert!(matches!(parse(&bad), Err(ScimError::BadRequest { .. })), "{bad}");
        }
    }
}

//! PATCH (RFC 7644 §3.5.2): `add`, `replace` and `remove` operations applied, in order, to a
//! copy of the resource's JSON, which is then read back exactly like a PUT body. So PATCH and
//! PUT validate alike, and a refused operation leaves nothing changed.
//!
//! Accepted beyond the letter of the RFC, as Entra ID and Okta send them: operation names in
//! any letter case (`Replace`), `"True"`/`"False"` strings for booleans (read by the resource),
//! attribute paths as keys of a path-less `value` (`{"name.givenName": "x"}`, extension
//! attributes by full URN), and `remove` of `members` with a `value` naming the members to
//! remove. `add` or `replace` on `attr[sub eq "v"].x` with no matching element adds one.

use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{AttrPath, CompareOp, Filter, get_ci, key_of};
use super::path::{PatchPath, parse_patch_path};
use super::routes::{MAX_PATCH_OPERATIONS, require_schema};
use super::schema::PATCH_URN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub op: Op,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// Reads and checks a PatchOp body (every operation before any is applied).
pub fn parse(body: &Value) -> Result<Vec<Operation>, ScimError> {
    let obj = body.as_object().ok_or_else(|| ScimError::invalid_syntax("the body must be a JSON object"))?;
    require_schema(obj, PATCH_URN)?;
    let ops = get_ci(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("Operations must be an array"))?;
    if ops.is_empty() || ops.len() > MAX_PATCH_OPERATIONS {
        return Err(ScimError::invalid_syntax(format!("a PATCH has 1 to {MAX_PATCH_OPERATIONS} operations")));
    }
    ops.iter()
        .enumerate()
        .map(|(i, o)| {
            let o =
                o.as_object().ok_or_else(|| ScimError::invalid_syntax(format!("Operations[{i}] must be an object")))?;
            let op = match get_ci(o, "op").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
                Some("add") => Op::Add,
                Some("replace") => Op::Replace,
                Some("remove") => Op::Remove,
                _ => {
                    return Err(ScimError::invalid_syntax(format!(
                        "Operations[{i}].op must be add, replace or remove"
                    )));
                }
            };
            let path = match get_ci(o, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) => Some(parse_patch_path(p)?),
                Some(_) => return Err(ScimError::invalid_path(format!("Operations[{i}].path must be a string"))),
            };
            let value = get_ci(o, "value").cloned();
            match (op, &path, &value) {
                (Op::Remove, None, _) => {
                    Err(ScimError::bad("noTarget", format!("Operations[{i}]: remove needs a path")))
                }
                (Op::Add | Op::Replace, None, Some(Value::Object(_))) => Ok(Operation { op, path, value }),
                (Op::Add | Op::Replace, None, _) => {
                    Err(ScimError::invalid_value(format!("Operations[{i}]: without a path, value must be an object")))
                }
                (Op::Add, Some(_), None | Some(Value::Null)) => {
                    Err(ScimError::invalid_value(format!("Operations[{i}]: add needs a value")))
                }
                _ => Ok(Operation { op, path, value }),
            }
        })
        .collect()
}

/// Attributes no PATCH may touch.
fn check_mutable(attr: &AttrPath, read_only: &[&str]) -> Result<(), ScimError> {
    if attr.urn.is_none() && read_only.iter().any(|r| r.eq_ignore_ascii_case(&attr.name)) {
        return Err(ScimError::mutability(format!("{} cannot be changed", attr.name)));
    }
    Ok(())
}

/// Applies `ops` to `doc` (a resource without `meta`); `read_only` names attributes that
/// cannot be targeted.
pub fn apply(doc: &mut Map<String, Value>, ops: &[Operation], read_only: &[&str]) -> Result<(), ScimError> {
    for o in ops {
        match (&o.path, &o.value) {
            (Some(path), value) => {
                check_mutable(&path.attr, read_only)?;
                apply_one(doc, o.op, path, value.clone())?;
            }
            (None, Some(Value::Object(values))) => {
                for (k, v) in values {
                    // A key is an attribute, or an extension URN holding attributes, or a path.
                    if let Some(urn) = super::schema::EXTENSION_URNS.iter().find(|u| u.eq_ignore_ascii_case(k)) {
                        let Value::Object(inner) = v else {
                            return Err(ScimError::invalid_value(format!("{urn} must be an object")));
                        };
                        for (ik, iv) in inner {
                            let path = parse_patch_path(&format!("{urn}:{ik}"))?;
                            apply_one(doc, o.op, &path, Some(iv.clone()))?;
                        }
                        continue;
                    }
                    let path = parse_patch_path(k)?;
                    check_mutable(&path.attr, read_only)?;
                    apply_one(doc, o.op, &path, Some(v.clone()))?;
                }
            }
            (None, _) => return Err(ScimError::invalid_value("without a path, value must be an object")),
        }
    }
    Ok(())
}

/// The object an attribute lives in, created for add/replace when missing.
fn container<'a>(doc: &'a mut Map<String, Value>, attr: &AttrPath, create: bool) -> Option<&'a mut Map<String, Value>> {
    let Some(urn) = attr.urn else { return Some(doc) };
    let key = match key_of(doc, urn) {
        Some(k) => k,
        None if create => {
            doc.insert(urn.to_string(), Value::Object(Map::new()));
            urn.to_string()
        }
        None => return None,
    };
    match doc.get_mut(&key) {
        Some(Value::Object(o)) => Some(o),
        Some(other) if create => {
            *other = Value::Object(Map::new());
            other.as_object_mut()
        }
        _ => None,
    }
}

/// Sets `name` in `obj` (replacing a key of any letter case).
fn set(obj: &mut Map<String, Value>, name: &str, value: Value) {
    let key = key_of(obj, name).unwrap_or_else(|| name.to_string());
    obj.insert(key, value);
}

fn remove(obj: &mut Map<String, Value>, name: &str) {
    if let Some(k) = key_of(obj, name) {
        obj.remove(&k);
    }
}

/// Whether two multi-valued elements are the same (same `value` when both have one).
fn same_element(a: &Value, b: &Value) -> bool {
    match (a.as_object().and_then(|o| get_ci(o, "value")), b.as_object().and_then(|o| get_ci(o, "value"))) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// `add` to an attribute: arrays gain the new elements, objects merge, anything else is set.
fn add_value(obj: &mut Map<String, Value>, name: &str, value: Value) {
    let key = key_of(obj, name).unwrap_or_else(|| name.to_string());
    match (obj.get_mut(&key), value) {
        (Some(Value::Array(items)), Value::Array(new)) => {
            for n in new {
                if let Some(existing) = items.iter_mut().find(|e| same_element(e, &n)) {
                    *existing = n;
                } else {
                    items.push(n);
                }
            }
        }
        (Some(Value::Array(items)), n) => {
            if !items.iter().any(|e| same_element(e, &n)) {
                items.push(n);
            }
        }
        (Some(Value::Object(o)), Value::Object(new)) => {
            for (k, v) in new {
                set(o, &k, v);
            }
        }
        (_, v) => {
            obj.insert(key, v);
        }
    }
}

fn apply_one(doc: &mut Map<String, Value>, op: Op, path: &PatchPath, value: Option<Value>) -> Result<(), ScimError> {
    let attr = &path.attr;
    // A null value replaces with nothing: a removal.
    let (op, value) = match (op, value) {
        (Op::Replace, None | Some(Value::Null)) => (Op::Remove, None),
        (op, v) => (op, v),
    };
    let Some(obj) = container(doc, attr, op != Op::Remove) else { return Ok(()) };
    match (&path.filter, &attr.sub) {
        (None, None) => match (op, value) {
            (Op::Remove, Some(Value::Array(gone))) => {
                // `{"op": "remove", "path": "members", "value": [{"value": "id"}]}`
                if let Some(Value::Array(items)) = key_of(obj, &attr.name).and_then(|k| obj.get_mut(&k)) {
                    items.retain(|e| !gone.iter().any(|g| same_element(e, g)));
                }
            }
            (Op::Remove, _) => remove(obj, &attr.name),
            (Op::Add, Some(v)) => add_value(obj, &attr.name, v),
            (Op::Replace, Some(Value::Object(new))) => {
                // Replacing a complex attribute replaces the sub-attributes given.
                match key_of(obj, &attr.name).and_then(|k| obj.get_mut(&k)) {
                    Some(Value::Object(o)) => {
                        for (k, v) in new {
                            set(o, &k, v);
                        }
                    }
                    _ => set(obj, &attr.name, Value::Object(new)),
                }
            }
            (_, Some(v)) => set(obj, &attr.name, v),
            (_, None) => return Err(ScimError::invalid_value(format!("{} needs a value", attr.name))),
        },
        (None, Some(sub)) => {
            let key = key_of(obj, &attr.name);
            match (key.as_ref().and_then(|k| obj.get_mut(k)), op) {
                (Some(Value::Object(o)), Op::Remove) => remove(o, sub),
                (Some(Value::Object(o)), _) => set(o, sub, value.unwrap_or(Value::Null)),
                (Some(Value::Array(items)), _) => {
                    for item in items.iter_mut().filter_map(Value::as_object_mut) {
                        match op {
                            Op::Remove => remove(item, sub),
                            _ => set(item, sub, value.clone().unwrap_or(Value::Null)),
                        }
                    }
                }
                (_, Op::Remove) => {}
                (_, _) => {
                    let mut o = Map::new();
                    o.insert(sub.clone(), value.unwrap_or(Value::Null));
                    set(obj, &attr.name, Value::Object(o));
                }
            }
        }
        (Some(filter), sub) => {
            let key = key_of(obj, &attr.name).unwrap_or_else(|| attr.name.clone());
            let items = match obj.get_mut(&key) {
                Some(Value::Array(items)) => items,
                None | Some(Value::Null) if op != Op::Remove => {
                    obj.insert(key.clone(), Value::Array(Vec::new()));
                    obj.get_mut(&key).and_then(Value::as_array_mut).expect("just inserted")
                }
                None | Some(Value::Null) => return Ok(()),
                Some(_) => return Err(ScimError::invalid_path(format!("{} is not multi-valued", attr.name))),
            };
            let exact = |_: &AttrPath| false;
            let matching: Vec<usize> = items
                .iter()
                .enumerate()
                .filter(|(_, e)| e.as_object().is_some_and(|o| filter.matches(o, exact)))
                .map(|(i, _)| i)
                .collect();
            match (op, sub) {
                (Op::Remove, None) => {
                    let mut i = 0;
                    items.retain(|_| {
                        i += 1;
                        !matching.contains(&(i - 1))
                    });
                }
                (Op::Remove, Some(sub)) => {
                    for i in matching {
                        if let Some(o) = items[i].as_object_mut() {
                            remove(o, sub);
                        }
                    }
                }
                (_, sub) => {
                    let value = value.unwrap_or(Value::Null);
                    if matching.is_empty() {
                        // Add the element the filter describes, when it is `attr eq "value"`.
                        let Filter::Compare(fattr, CompareOp::Eq, fvalue) = filter else {
                            return Err(ScimError::bad("noTarget", format!("no element of {} matches", attr.name)));
                        };
                        let mut el = Map::new();
                        el.insert(fattr.name.clone(), fvalue.clone());
                        match (sub, &value) {
                            (Some(sub), v) => {
                                el.insert(sub.clone(), v.clone());
                            }
                            (None, Value::Object(o)) => el.extend(o.clone()),
                            (None, _) => {
                                return Err(ScimError::invalid_value(format!("{} elements are objects", attr.name)));
                            }
                        }
                        items.push(Value::Object(el));
                    }
                    for i in matching {
                        let Some(o) = items[i].as_object_mut() else { continue };
                        match (sub, &value) {
                            (Some(sub), v) => set(o, sub, v.clone()),
                            (None, Value::Object(new)) => {
                                for (k, v) in new {
                                    set(o, k, v.clone());
                                }
                            }
                            (None, _) => {
                                return Err(ScimError::invalid_value(format!("{} elements are objects", attr.name)));
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(doc: Value, ops: Value) -> Result<Value, ScimError> {
        let body = json!({"schemas": [PATCH_URN], "Operations": ops});
        let ops = parse(&body)?;
        let mut doc = doc.as_object().unwrap().clone();
        apply(&mut doc, &ops, &["id", "meta"])?;
        Ok(Value::Object(doc))
    }

    #[test]
    fn entra_and_okta_shapes() {
        let u = json!({"userName": "a", "active": true, "emails": [{"type": "work", "value": "a@x"}]});
        let d = patch(u.clone(), json!([{"op": "Replace", "value": {"active": false}}])).unwrap();
        assert_eq!(d["active"], false);
        let d = patch(u.clone(), json!([{"op": "replace", "path": "active", "value": "False"}])).unwrap();
        assert_eq!(d["active"], "False");
        let d = patch(u.clone(), json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "b@x"}]))
            .unwrap();
        assert_eq!(d["emails"], json!([{"type": "work", "value": "b@x"}]));
        let d = patch(
            json!({"userName": "a"}),
            json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "c@x"}]),
        )
        .unwrap();
        assert_eq!(d["emails"], json!([{"type": "work", "value": "c@x"}]));
        let d =
            patch(u.clone(), json!([{"op": "add", "value": {"name.givenName": "Al", "displayName": "Al B"}}])).unwrap();
        assert_eq!((d["name"]["givenName"].clone(), d["displayName"].clone()), (json!("Al"), json!("Al B")));
        let d = patch(
            u.clone(),
            json!([{"op": "replace", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"organization": "acme"}}}]),
        )
        .unwrap();
        assert_eq!(d["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["organization"], "acme");
        let d = patch(u, json!([{"op": "remove", "path": "emails[type eq \"work\"]"}])).unwrap();
        assert_eq!(d["emails"], json!([]));

        let g = json!({"displayName": "eng", "members": [{"value": "a"}, {"value": "b"}]});
        let d = patch(g.clone(), json!([{"op": "Remove", "path": "members", "value": [{"value": "a"}]}])).unwrap();
        assert_eq!(d["members"], json!([{"value": "b"}]));
        let d = patch(g.clone(), json!([{"op": "remove", "path": "members[value eq \"b\"]"}])).unwrap();
        assert_eq!(d["members"], json!([{"value": "a"}]));
        let d = patch(g.clone(), json!([{"op": "add", "path": "members", "value": [{"value": "c"}, {"value": "a"}]}]))
            .unwrap();
        assert_eq!(d["members"], json!([{"value": "a"}, {"value": "b"}, {"value": "c"}]));
        let d = patch(g.clone(), json!([{"op": "replace", "path": "members", "value": [{"value": "z"}]}])).unwrap();
        assert_eq!(d["members"], json!([{"value": "z"}]));
        let d = patch(g, json!([{"op": "remove", "path": "members"}])).unwrap();
        assert!(d.get("members").is_none());
    }

    #[test]
    fn malformed_patches_are_refused() {
        let u = json!({"userName": "a"});
        let too_many: Vec<Value> =
            (0..=MAX_PATCH_OPERATIONS).map(|_| json!({"op": "add", "path": "x", "value": 1})).collect();
        for (ops, scim_type) in [
            (json!([]), "invalidSyntax"),
            (json!({}), "invalidSyntax"),
            (json!([1]), "invalidSyntax"),
            (json!([{"op": "move", "path": "a"}]), "invalidSyntax"),
            (json!([{"op": "remove"}]), "noTarget"),
            (json!([{"op": "add", "value": 5}]), "invalidValue"),
            (json!([{"op": "add", "path": "displayName"}]), "invalidValue"),
            (json!([{"op": "add", "path": 5, "value": 1}]), "invalidPath"),
            (json!([{"op": "add", "path": "emails[type eq", "value": 1}]), "invalidPath"),
            (json!([{"op": "replace", "path": "id", "value": "x"}]), "mutability"),
            (json!([{"op": "replace", "value": {"ID": "x"}}]), "mutability"),
            (json!([{"op": "replace", "path": "meta.created", "value": "x"}]), "mutability"),
            (
                json!([{"op": "replace", "path": "emails[type eq \"work\" or type eq \"home\"].value", "value": "x"}]),
                "noTarget",
            ),
            (Value::Array(too_many), "invalidSyntax"),
        ] {
            match patch(u.clone(), ops.clone()) {
                Err(ScimError::BadRequest { scim_type: t, .. }) => assert_eq!(t, scim_type, "{ops}"),
                other => panic!("{ops}: {other:?}"),
            }
        }
        let no_schema = parse(&json!({"Operations": [{"op": "add", "path": "a", "value": 1}]})).unwrap_err();
        assert!(matches!(no_schema, ScimError::BadRequest { scim_type: "invalidSyntax", .. }));
    }
}

//! Environment overrides: `TOKENGATE_<PATH>` sets the config field at `<PATH>`.
//!
//! Nesting levels are separated by a double underscore and names are case-insensitive:
//! `TOKENGATE_LISTEN` sets `listen`, `TOKENGATE_ADMIN__LISTEN` sets `admin.listen`,
//! `TOKENGATE_STORE__REDIS__URL` sets `store.redis.url`. Values are read as YAML scalars or flow
//! collections, so `TOKENGATE_ROLES='[viewer, admin]'` and `TOKENGATE_AUDIT__MAX_EVENTS=500` work.
//!
//! Only variables whose first segment is a top-level config key are overrides; others with the
//! same prefix (`TOKENGATE_PEPPER`, `TOKENGATE_ADMIN_KEYS`, `TOKENGATE_ADMIN_URL`, ...) are left
//! to the parts that read them.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::raw::RawConfig;

const PREFIX: &str = "TOKENGATE_";

/// Applies overrides from `env` to the parsed YAML tree. Returns, for each overridden field path,
/// the variable that set it (so errors can name it).
pub fn apply(tree: &mut Value, env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut applied = BTreeMap::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if !RawConfig::KEYS.contains(&path[0].as_str()) || path.iter().any(String::is_empty) {
            continue;
        }
        set(tree, &path, parse_value(value));
        applied.insert(path.join("."), name.clone());
    }
    applied
}

/// Reads a variable's value as YAML, falling back to the plain string.
fn parse_value(raw: &str) -> Value {
    match serde_saphyr::from_str::<Value>(raw) {
        Ok(Value::Null) | Err(_) => Value::String(raw.to_string()),
        Ok(v) => v,
    }
}

fn set(tree: &mut Value, path: &[String], value: Value) {
    if !tree.is_object() {
        *tree = Value::Object(Map::new());
    }
    let Value::Object(map) = tree else { unreachable!() };
    match path {
        [last] => {
            map.insert(last.clone(), value);
        }
        [first, rest @ ..] => set(map.entry(first.clone()).or_insert(Value::Null), rest, value),
        [] => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn overrides_nested_fields_and_parses_values() {
        let mut tree = serde_json::json!({"admin": {"listen": "127.0.0.1:1"}});
        let applied = apply(
            &mut tree,
            &env(&[
                ("TOKENGATE_ADMIN__LISTEN", "127.0.0.1:2"),
                ("TOKENGATE_STORE__REDIS__URL", "redis://h:1/0"),
                ("TOKENGATE_AUDIT__MAX_EVENTS", "5"),
                ("TOKENGATE_ROLES", "[a, b]"),
                ("TOKENGATE_PEPPER", "secret"),
                ("TOKENGATE_ADMIN_KEYS", "k"),
                ("HOME", "/root"),
            ]),
        );
        assert_eq!(
            tree,
            serde_json::json!({
                "admin": {"listen": "127.0.0.1:2"},
                "store": {"redis": {"url": "redis://h:1/0"}},
                "audit": {"max_events": 5},
                "roles": ["a", "b"],
            })
        );
        assert_eq!(applied.get("admin.listen").map(String::as_str), Some("TOKENGATE_ADMIN__LISTEN"));
        assert_eq!(applied.len(), 4);
    }

    #[test]
    fn an_empty_file_can_be_filled_from_the_environment() {
        let mut tree = Value::Null;
        apply(&mut tree, &env(&[("TOKENGATE_LISTEN", "0.0.0.0:80")]));
        assert_eq!(tree, serde_json::json!({"listen": "0.0.0.0:80"}));
    }
}

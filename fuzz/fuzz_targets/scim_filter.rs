//! The SCIM filter and PATCH path parsers (`tokengate::admin::scim`) on fuzzed text, and filter
//! evaluation on sample resources.
//!
//! Invariants:
//! - nothing panics, recurses without bound or loops (the parsers bound length, nesting and
//!   comparisons);
//! - text over `MAX_FILTER_BYTES` is always refused;
//! - when `F` parses, `not (F)` (if within the bounds) matches exactly the resources `F` does
//!   not, and `(F) or (F)` and `(F) and (F)` match exactly what `F` matches;
//! - a PATCH path that parses also parses as a filter's attribute when it has no `[`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use tokengate::admin::scim::{MAX_FILTER_BYTES, parse_filter, parse_patch_path};

fn docs() -> Vec<Value> {
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "alice", "userName": "alice", "displayName": "Alice Smith", "active": true,
            "externalId": "e-1", "title": null, "count": 7,
            "emails": [{"value": "alice@example.com", "type": "work"}, {"value": "a@home.org", "type": "home"}],
            "name": {"formatted": "Alice Smith", "givenName": "Alice"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"organization": "acme"},
            "meta": {"lastModified": "2026-11-26T10:00:00.000Z", "version": "W/\"abc\""}
        }),
        json!({"id": "0123", "displayName": "eng", "members": [{"value": "alice"}, {"value": "bob"}], "active": false}),
        json!({}),
    ]
}

fn case_exact(_: &tokengate::admin::scim::AttrPath) -> bool {
    false
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let filter = parse_filter(text);
    let path = parse_patch_path(text);
    if text.len() > MAX_FILTER_BYTES {
        assert!(filter.is_err() && path.is_err(), "over the length limit");
        return;
    }
    if let Ok(p) = &path
        && !text.contains('[')
    {
        assert!(parse_filter(&format!("{text} pr")).is_ok() || p.attr.name.starts_with("urn:"), "{text:?}");
    }
    let Ok(f) = filter else { return };
    let docs = docs();
    let objects: Vec<_> = docs.iter().map(|d| d.as_object().unwrap()).collect();
    let results: Vec<bool> = objects.iter().map(|o| f.matches(o, case_exact)).collect();
    if let Ok(not) = parse_filter(&format!("not ({text})")) {
        let negated: Vec<bool> = objects.iter().map(|o| not.matches(o, case_exact)).collect();
        assert_eq!(negated, results.iter().map(|r| !r).collect::<Vec<_>>(), "not ({text})");
    }
    for combined in [format!("({text}) or ({text})"), format!("({text}) and ({text})")] {
        if let Ok(c) = parse_filter(&combined) {
            let got: Vec<bool> = objects.iter().map(|o| c.matches(o, case_exact)).collect();
            assert_eq!(got, results, "{combined}");
        }
    }
});

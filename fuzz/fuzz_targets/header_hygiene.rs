//! `headers::remove_hop_by_hop` then `IdentityHeaders::strip` (the proxy's order) on any header
//! map.
//!
//! Invariants afterwards: no header whose name, with `_` read as `-`, starts with `x-auth-`; no
//! standard hop-by-hop header (`connection`, `te`, `transfer-encoding`, `upgrade`, `keep-alive`,
//! `proxy-connection`, `trailer`, `proxy-authenticate`, `proxy-authorization`); no header named
//! in a `Connection` value (elements split on `,`, optional whitespace trimmed, whatever other
//! bytes the value holds). Every other header is kept, with all its values in order.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tokengate::proxy::headers::{IdentityHeaders, remove_hop_by_hop};

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "te",
    "transfer-encoding",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "trailer",
    "proxy-authenticate",
    "proxy-authorization",
];

fn is_identity(name: &HeaderName) -> bool {
    name.as_str().replace('_', "-").starts_with("x-auth-")
}

/// Names listed in `Connection` values as RFC 9110 reads them: elements separated by `,`, with
/// optional whitespace (space, tab) around them.
fn named_strict(values: &[HeaderValue]) -> Vec<HeaderName> {
    values
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|e| HeaderName::from_bytes(e.trim_ascii_start().trim_ascii_end()).ok())
        .collect()
}

/// Names a more lenient reader might take (Unicode whitespace trimmed): these may go too.
fn named_lenient(values: &[HeaderValue]) -> Vec<HeaderName> {
    values
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes()).split(',').map(|e| e.trim().to_string()).collect::<Vec<_>>()
        })
        .filter_map(|e| HeaderName::from_bytes(e.as_bytes()).ok())
        .collect()
}

// The input is header lines, `name: value` (one optional space after the colon), any bytes;
// lines that make no valid header are skipped.
fuzz_target!(|data: &[u8]| {
    let mut map = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let value = &line[colon + 1..];
        let value = value.strip_prefix(b" ").unwrap_or(value);
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(value)) else {
            continue;
        };
        map.append(name, value);
    }
    let before = map.clone();
    let connection: Vec<HeaderValue> = before.get_all(http::header::CONNECTION).iter().cloned().collect();
    let must_go = named_strict(&connection);
    let may_go = named_lenient(&connection);

    remove_hop_by_hop(&mut map);
    IdentityHeaders::new("X-Auth-").strip(&mut map);

    for name in map.keys() {
        assert!(!is_identity(name), "identity header {name} left: {before:?} -> {map:?}");
        assert!(!HOP_BY_HOP.contains(&name.as_str()), "hop-by-hop {name} left: {before:?} -> {map:?}");
        assert!(!must_go.contains(name), "{name} is named in Connection but left: {before:?} -> {map:?}");
    }
    for name in before.keys() {
        let removable =
            is_identity(name) || HOP_BY_HOP.contains(&name.as_str()) || must_go.contains(name) || may_go.contains(name);
        if !removable {
            let was: Vec<&HeaderValue> = before.get_all(name).iter().collect();
            let is: Vec<&HeaderValue> = map.get_all(name).iter().collect();
            assert_eq!(was, is, "{name} changed: {before:?} -> {map:?}");
        }
    }
});

//! `path::normalize` and `path::rule_path` on any string.
//!
//! Invariants for an accepted path: idempotent; starts with `/`; no `//`, no `.` or `..`
//! segment, no `\`; every `%` starts an uppercase `%XX` that is neither an unreserved character
//! (those are decoded) nor `/`, `\` or NUL (those are refused). A path without `%` or `\` that
//! starts with `/` is always accepted. `rule_path(_, false)` refuses exactly the paths with `;` or
//! `%3B`; `rule_path(_, true)` yields a normalized path without `;`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::policy::path::{PathError, normalize, rule_path};

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn assert_normal(input: &str, n: &str) {
    assert!(n.starts_with('/'), "{input:?} -> {n:?}");
    assert!(!n.contains("//"), "{input:?} -> {n:?}");
    assert!(!n.contains('\\'), "{input:?} -> {n:?}");
    assert!(!n.split('/').any(|s| s == "." || s == ".."), "{input:?} -> {n:?}");
    let upper = n.to_ascii_uppercase();
    for bad in ["%2F", "%5C", "%00"] {
        assert!(!upper.contains(bad), "{input:?} -> {n:?}");
    }
    let b = n.as_bytes();
    for (i, _) in b.iter().enumerate().filter(|(_, c)| **c == b'%') {
        let (Some(hi), Some(lo)) = (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) else {
            panic!("{input:?} -> {n:?}: '%' at {i} is not an uppercase %XX");
        };
        let v = hi << 4 | lo;
        assert!(!(v.is_ascii_alphanumeric() || b"-._~".contains(&v)), "{input:?} -> {n:?}: unreserved left encoded");
        assert!(!matches!(v, b'/' | b'\\' | 0), "{input:?} -> {n:?}");
    }
    let again = normalize(n).unwrap_or_else(|e| panic!("{input:?} -> {n:?} refused the second time: {e}"));
    assert_eq!(again, n, "not idempotent for {input:?}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    let n = match normalize(input) {
        Ok(n) => n,
        Err(e) => {
            let simple = input.starts_with('/') && !input.contains('%') && !input.contains('\\');
            assert!(!simple, "{input:?} refused: {e}");
            return;
        }
    };
    assert_normal(input, &n);

    let has_params = n.contains(';') || n.contains("%3B");
    match rule_path(&n, false) {
        Err(PathError::Parameters) => assert!(has_params, "{n:?}"),
        Err(e) => panic!("{n:?}: unexpected {e}"),
        Ok(r) => {
            assert!(!has_params, "{n:?} passed with path parameters");
            assert_eq!(r, n);
        }
    }
    let r = rule_path(&n, true).unwrap_or_else(|e| panic!("{n:?}: allowed parameters refused: {e}"));
    assert!(!r.contains(';'), "{n:?} -> {r:?}");
    assert_normal(&n, &r);
});

//! Request path normalization, done once per request; route rules and the upstream both see the
//! result, so they can never disagree about which resource a request names.
//!
//! Steps, in order:
//! 1. percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded; every other
//!    percent-encoding is kept with uppercase hex digits;
//! 2. encodings that upstreams disagree about are refused: `%2F` (slash), `%5C` and a raw `\`
//!    (backslash, a separator for some servers), `%00`, and malformed `%` sequences;
//! 3. repeated slashes are collapsed;
//! 4. `.` and `..` segments are resolved (RFC 3986 §5.2.4); `..` never climbs above the root.
//!
//! So `/public/%2e%2e/admin` and `/public/../admin` both become `/admin`, and
//! `/public%2F..%2Fadmin` is refused. A path that needs none of this is returned borrowed.

use std::borrow::Cow;

use thiserror::Error;

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    #[error("the request path must start with '/'")]
    NotAbsolute,
    #[error("malformed percent-encoding in the request path")]
    BadEncoding,
    #[error("encoded '/', '\\' or NUL in the request path")]
    AmbiguousEncoding,
    #[error("backslash in the request path")]
    Backslash,
    #[error("path parameters (';') in the request path")]
    Parameters,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether `path` is already in normal form, so the common case costs one scan and no allocation.
fn is_normal(path: &str) -> bool {
    let b = path.as_bytes();
    !b.is_empty()
        && b[0] == b'/'
        && !b.iter().any(|&c| c == b'%' || c == b'\\')
        && !path.contains("//")
        && !path.split('/').any(|s| s == "." || s == "..")
}

/// Normalizes an origin-form request path (without the query string).
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_normal(path) {
        return Ok(Cow::Borrowed(path));
    }

    // Step 1 and 2: decode unreserved characters, canonicalise the rest.
    let bytes = path.as_bytes();
    let mut decoded = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let (Some(hi), Some(lo)) =
                    (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
                else {
                    return Err(PathError::BadEncoding);
                };
                let v = hi << 4 | lo;
                if matches!(v, b'/' | b'\\' | 0) {
                    return Err(PathError::AmbiguousEncoding);
                }
                if is_unreserved(v) {
                    decoded.push(char::from(v));
                } else {
                    decoded.push('%');
                    decoded.push(char::from(b"0123456789ABCDEF"[usize::from(hi)]));
                    decoded.push(char::from(b"0123456789ABCDEF"[usize::from(lo)]));
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            _ => {
                // Copy the run up to the next special byte in one go (keeps UTF-8 intact).
                let end = bytes[i..].iter().position(|&c| c == b'%' || c == b'\\').map_or(bytes.len(), |p| i + p);
                decoded.push_str(&path[i..end]);
                i = end;
            }
        }
    }

    // Steps 3 and 4: segments.
    let mut out: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split('/').skip(1) {
        trailing_slash = false;
        match segment {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
            ".." => {
                out.pop();
                trailing_slash = true;
            }
            s => out.push(s),
        }
    }
    let mut normalized = String::with_capacity(decoded.len());
    for s in &out {
        normalized.push('/');
        normalized.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        normalized.push('/');
    }
    Ok(Cow::Owned(normalized))
}

/// The path route rules match on, from a [`normalize`]d one.
///
/// Path parameters (`;...` at the end of a segment, which Tomcat, Spring, Jetty and others strip
/// before routing, so `/admin;x` and `/public/..;/admin` name `/admin` there) are refused unless
/// `allow`; `%3B` counts too, as some servers decode it first. When allowed, rules see each
/// segment without its parameters, dot segments resolved again: `/public/..;/admin` is `/admin`.
pub fn rule_path(normalized: &str, allow: bool) -> Result<Cow<'_, str>, PathError> {
    let has_encoded = || normalized.as_bytes().windows(3).any(|w| w[0] == b'%' && w[1] == b'3' && w[2] == b'B');
    if !normalized.contains(';') {
        return if !allow && has_encoded() { Err(PathError::Parameters) } else { Ok(Cow::Borrowed(normalized)) };
    }
    if !allow {
        return Err(PathError::Parameters);
    }
    let mut stripped = String::with_capacity(normalized.len());
    for (i, segment) in normalized.split('/').enumerate() {
        if i > 0 {
            stripped.push('/');
        }
        stripped.push_str(segment.split(';').next().unwrap_or_default());
    }
    Ok(Cow::Owned(normalize(&stripped)?.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parameters_are_refused_or_stripped_for_rules() {
        for p in ["/admin;x", "/public/..;/admin", "/a;", "/a%3Bb", "/a/b;jsessionid=1/c"] {
            assert_eq!(rule_path(p, false), Err(PathError::Parameters), "{p}");
        }
        assert!(matches!(rule_path("/a/b%3Ac", false), Ok(Cow::Borrowed(_))));
        let cases = [
            ("/admin;x", "/admin"),
            ("/public/..;/admin", "/admin"),
            ("/a;x/b;y/", "/a/b/"),
            ("/a/b;jsessionid=1/c", "/a/b/c"),
            ("/;x", "/"),
            ("/a%3Bb", "/a%3Bb"),
        ];
        for (input, want) in cases {
            assert_eq!(rule_path(input, true).as_deref(), Ok(want), "{input}");
        }
    }

    fn n(p: &str) -> Result<String, PathError> {
        normalize(p).map(Cow::into_owned)
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for p in ["/", "/api", "/api/v1/items/", "/a.b/c..d/.e", "/ünïcode"] {
            assert!(matches!(normalize(p), Ok(Cow::Borrowed(_))), "{p}");
        }
    }

    #[test]
    fn dot_segments_and_slashes() {
        let cases = [
            ("/public/../admin", "/admin"),
            ("/public/./x", "/public/x"),
            ("/a/b/../../../../c", "/c"),
            ("/..", "/"),
            ("/a/..", "/"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("//a///b//", "/a/b/"),
            ("/a//../b", "/b"),
        ];
        for (input, want) in cases {
            assert_eq!(n(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn unreserved_encodings_are_decoded_before_dot_segments() {
        let cases = [
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E%2E/admin", "/admin"),
            ("/public/.%2e/admin", "/admin"),
            ("/%61%64min", "/admin"),
            ("/a%7Eb", "/a~b"),
            ("/a%20b", "/a%20b"),
            ("/a%3ab", "/a%3Ab"),
            ("/caf%C3%A9", "/caf%C3%A9"),
        ];
        for (input, want) in cases {
            assert_eq!(n(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn ambiguous_or_malformed_paths_are_refused() {
        let cases = [
            ("/public%2F..%2Fadmin", PathError::AmbiguousEncoding),
            ("/a%2fb", PathError::AmbiguousEncoding),
            ("/a%5Cb", PathError::AmbiguousEncoding),
            ("/a%00", PathError::AmbiguousEncoding),
            ("/a\\..\\admin", PathError::Backslash),
            ("/a%", PathError::BadEncoding),
            ("/a%2", PathError::BadEncoding),
            ("/a%zz", PathError::BadEncoding),
            ("a/b", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
        ];
        for (input, want) in cases {
            assert_eq!(n(input), Err(want), "{input}");
        }
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for p in ["/public/%2e%2e/admin", "//a/./b/../c/", "/x%41%3a/..//y"] {
            let once = n(p).unwrap();
            assert_eq!(n(&once).unwrap(), once, "{p}");
        }
    }
}

//! Header hygiene between client, tokengate and upstream.
//!
//! Order on the way in (the proxy calls these in this order):
//! 1. [`remove_hop_by_hop`]: the standard hop-by-hop headers and every header the `Connection`
//!    header names;
//! 2. [`IdentityHeaders::strip`]: every header that looks like an identity header, in any
//!    letter case and with `_` in place of `-` (`x_auth_subject`), on every route;
//! 3. [`IdentityHeaders::inject`]: the identity tokengate vouches for.
//!
//! Because injection comes last, `Connection: X-Auth-Subject` cannot remove an injected header.
//! Injected values are percent-encoded outside visible ASCII (and `%`, `,`, `"`), so no stored
//! value can break a header line or smuggle a second list element.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use crate::config::XForwarded;
use crate::policy::scope::Scope;
use crate::token::TokenId;
use crate::token::TokenKind;

/// Bytes that are encoded in injected header values (non-ASCII is always encoded).
const UNSAFE: &AsciiSet = &CONTROLS.add(b' ').add(b'%').add(b',').add(b'"');

const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Whether the request asks to switch protocols (`Connection: upgrade` plus `Upgrade`); returns
/// the `Upgrade` value to pass on.
pub fn upgrade_request(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(header::UPGRADE).cloned()).flatten()
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || name == header::UPGRADE
}

/// Removes hop-by-hop headers, including every header named in `Connection`, and `Upgrade`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Most requests carry none: one pass over the names instead of nine removals.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        // Bytes, not `to_str`: a non-ASCII byte anywhere in the value must not keep the names
        // it lists (found by the `header_hygiene` fuzz target).
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|t| HeaderName::from_bytes(t.trim_ascii()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// Encodes a stored value for a header line.
pub fn encode_value(s: &str) -> HeaderValue {
    let encoded: std::borrow::Cow<'_, str> = utf8_percent_encode(s, UNSAFE).into();
    match encoded {
        // Nothing to encode (the usual case): one copy, straight into the header value.
        std::borrow::Cow::Borrowed(plain) => HeaderValue::from_str(plain),
        std::borrow::Cow::Owned(escaped) => HeaderValue::from_maybe_shared(bytes::Bytes::from(escaped)),
    }
    .expect("encoded values are visible ASCII")
}

/// What tokengate vouches for on an authenticated request.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    pub subject: &'a str,
    pub token_id: &'a TokenId,
    pub kind: TokenKind,
    pub org: Option<&'a str>,
    pub roles: &'a [&'a str],
    pub scopes: &'a [Scope],
}

/// The identity header names for one configured prefix, built once.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    /// Lowercase, compared with `_` read as `-`.
    prefix: String,
    subject: HeaderName,
    token_id: HeaderName,
    token_kind: HeaderName,
    org: HeaderName,
    roles: HeaderName,
    scopes: HeaderName,
}

impl IdentityHeaders {
    /// `prefix` is validated by config (letters, digits, `-`).
    pub fn new(prefix: &str) -> Self {
        let name = |suffix: &str| {
            HeaderName::from_bytes(format!("{prefix}{suffix}").to_ascii_lowercase().as_bytes())
                .expect("validated prefix makes a valid header name")
        };
        Self {
            prefix: prefix.to_ascii_lowercase(),
            subject: name("Subject"),
            token_id: name("Token-Id"),
            token_kind: name("Token-Kind"),
            org: name("Org"),
            roles: name("Roles"),
            scopes: name("Scopes"),
        }
    }

    fn is_identity(&self, name: &HeaderName) -> bool {
        let n = name.as_str().as_bytes();
        n.len() >= self.prefix.len()
            && n.iter().zip(self.prefix.as_bytes()).all(|(&a, &b)| if a == b'_' { b == b'-' } else { a == b })
    }

    /// Removes every identity-looking header the client sent.
    pub fn strip(&self, headers: &mut HeaderMap) {
        if !headers.keys().any(|k| self.is_identity(k)) {
            return;
        }
        let names: Vec<HeaderName> = headers.keys().filter(|k| self.is_identity(k)).cloned().collect();
        for name in names {
            headers.remove(name);
        }
    }

    /// Adds the identity headers (after [`IdentityHeaders::strip`]).
    pub fn inject(&self, headers: &mut HeaderMap, id: &Identity<'_>) {
        headers.reserve(6);
        headers.insert(self.subject.clone(), encode_value(id.subject));
        headers.insert(self.token_id.clone(), HeaderValue::from_str(id.token_id.as_str()).expect("ids are base62"));
        headers.insert(self.token_kind.clone(), HeaderValue::from_static(id.kind.as_str()));
        if let Some(org) = id.org {
            headers.insert(self.org.clone(), encode_value(org));
        }
        // An empty list is no header at all, never an empty `X-Auth-Scopes:` line.
        if !id.roles.is_empty() {
            headers.insert(self.roles.clone(), join(id.roles.iter().copied()));
        }
        if !id.scopes.is_empty() {
            headers.insert(self.scopes.clone(), join(id.scopes.iter().map(|s| s.to_string())));
        }
    }
}

fn join<S: AsRef<str>>(items: impl Iterator<Item = S>) -> HeaderValue {
    let mut out = String::new();
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.extend(utf8_percent_encode(item.as_ref(), UNSAFE));
    }
    HeaderValue::from_maybe_shared(bytes::Bytes::from(out)).expect("encoded values are visible ASCII")
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Stands for a client whose address a trusted proxy forwarded in a form that is not an address:
/// it matches no allowed network (unless one covers everything) and is counted apart from the
/// proxy's own address by the failed-authentication limit.
pub const UNKNOWN_CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

/// The client's address: the socket's peer, unless that peer is a trusted proxy; then the
/// rightmost `X-Forwarded-For` entry that is not a trusted proxy (what a client prepends itself
/// is never believed). Entries may carry a port (`1.2.3.4:5678`, `[2001:db8::1]:443`). An entry
/// that is not an address makes the client [`UNKNOWN_CLIENT`], never the trusted hop beside it
/// (a balancer appends the real address to whatever the client sent, on the same line).
pub fn client_address(headers: &HeaderMap, peer: IpAddr, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if trusted.is_empty() || !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        for hop in value.as_bytes().rsplit(|b| *b == b',') {
            let Some(ip) = forwarded_ip(hop) else { return UNKNOWN_CLIENT };
            client = ip;
            if !is_trusted(&ip) {
                return ip;
            }
        }
    }
    client
}

/// One `X-Forwarded-For` entry as an address (IPv4-mapped IPv6 as IPv4), with or without a port.
fn forwarded_ip(hop: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(hop).ok()?.trim();
    let ip = text.parse::<IpAddr>().ok().or_else(|| text.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

/// Writes `X-Forwarded-For`, `-Proto` and `-Host` as configured.
pub fn forwarded(
    headers: &mut HeaderMap,
    mode: XForwarded,
    peer: IpAddr,
    proto: &'static str,
    host: Option<HeaderValue>,
) {
    match mode {
        XForwarded::Off => {}
        XForwarded::Set => {
            headers.insert(X_FORWARDED_FOR, HeaderValue::from_str(&peer.to_string()).expect("an IP is ASCII"));
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
            match host {
                Some(h) => headers.insert(X_FORWARDED_HOST, h),
                None => headers.remove(X_FORWARDED_HOST),
            };
        }
        XForwarded::Append => {
            let prior: Vec<&str> = headers.get_all(&X_FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()).collect();
            let value = if prior.is_empty() { peer.to_string() } else { format!("{}, {peer}", prior.join(", ")) };
            headers.insert(X_FORWARDED_FOR, HeaderValue::from_str(&value).expect("joined header values are valid"));
            if !headers.contains_key(&X_FORWARDED_PROTO) {
                headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
            }
            if let Some(h) = host.filter(|_| !headers.contains_key(&X_FORWARDED_HOST)) {
                headers.insert(X_FORWARDED_HOST, h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_forwarded_address() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let with = |values: &[&str]| {
            let mut m = HeaderMap::new();
            for v in values {
                m.append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
            }
            m
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // A client-supplied first entry is not believed: the rightmost untrusted one is.
        assert_eq!(client_address(&with(&["6.6.6.6, 203.0.113.7, 10.1.1.1"]), peer, &trusted), ip("203.0.113.7"));
        assert_eq!(client_address(&with(&["6.6.6.6", "203.0.113.7"]), peer, &trusted), ip("203.0.113.7"));
        // An untrusted peer's header is ignored entirely.
        assert_eq!(client_address(&with(&["203.0.113.7"]), ip("198.51.100.1"), &trusted), ip("198.51.100.1"));
        // No trusted proxies configured: always the peer.
        assert_eq!(client_address(&with(&["203.0.113.7"]), peer, &[]), peer);
        // Garbage makes the client unknown, never the trusted hop beside it (a balancer appends
        // the real address to what the client sent, on the same line); all-trusted chains end
        // at the leftmost.
        assert_eq!(client_address(&with(&["203.0.113.7, nonsense, 10.2.2.2"]), peer, &trusted), UNKNOWN_CLIENT);
        let mut binary = HeaderMap::new();
        binary.append(X_FORWARDED_FOR, HeaderValue::from_bytes(b"\xff, 10.2.2.2").unwrap());
        assert_eq!(client_address(&binary, peer, &trusted), UNKNOWN_CLIENT);
        assert_eq!(client_address(&with(&["unknown, 10.2.2.2"]), peer, &trusted), UNKNOWN_CLIENT);
        assert_eq!(client_address(&with(&["10.3.3.3, 10.2.2.2"]), peer, &trusted), ip("10.3.3.3"));
        // Ports and mapped addresses.
        assert_eq!(client_address(&with(&["203.0.113.7:5678"]), peer, &trusted), ip("203.0.113.7"));
        assert_eq!(client_address(&with(&["[2001:db8::7]:443"]), peer, &trusted), ip("2001:db8::7"));
        assert_eq!(client_address(&with(&["::ffff:203.0.113.7"]), peer, &trusted), ip("203.0.113.7"));
        assert_eq!(client_address(&HeaderMap::new(), peer, &trusted), peer);
    }

    #[test]
    fn identity_lookalikes_are_stripped_in_any_form() {
        let h = IdentityHeaders::new("X-Auth-");
        let mut m = map(&[
            ("X-Auth-Subject", "mallory"),
            ("x-auth-subject", "again"),
            ("x_auth_subject", "underscore"),
            ("X_AUTH_ROLES", "admin"),
            ("x-auth-anything-else", "1"),
            ("x-authority", "kept"),
            ("accept", "*/*"),
        ]);
        h.strip(&mut m);
        let mut left: Vec<&str> = m.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, vec!["accept", "x-authority"]);
    }

    #[test]
    fn connection_named_headers_go_before_injection() {
        let h = IdentityHeaders::new("X-Auth-");
        let mut m =
            map(&[("connection", "keep-alive, X-Auth-Subject, x-custom"), ("x-custom", "1"), ("te", "trailers")]);
        remove_hop_by_hop(&mut m);
        h.strip(&mut m);
        let id = TokenId::parse("AAAAAAAAAAAA").unwrap();
        let scopes = vec!["env:prod".parse().unwrap(), "deployment:a@prod".parse().unwrap()];
        h.inject(
            &mut m,
            &Identity {
                subject: "alice",
                token_id: &id,
                kind: TokenKind::Personal,
                org: Some("acme"),
                roles: &["viewer", "admin"],
                scopes: &scopes,
            },
        );
        assert!(m.get("x-custom").is_none() && m.get("te").is_none() && m.get("connection").is_none());
        assert_eq!(m["x-auth-subject"], "alice");
        assert_eq!(m["x-auth-token-id"], "AAAAAAAAAAAA");
        assert_eq!(m["x-auth-token-kind"], "personal");
        assert_eq!(m["x-auth-org"], "acme");
        assert_eq!(m["x-auth-roles"], "viewer,admin");
        assert_eq!(m["x-auth-scopes"], "env:prod,deployment:a@prod");
    }

    #[test]
    fn connection_names_are_removed_whatever_else_the_value_holds() {
        let mut m = HeaderMap::new();
        m.append(header::CONNECTION, HeaderValue::from_bytes(b"x-secret, \xff").unwrap());
        m.append(header::CONNECTION, HeaderValue::from_bytes(b"caf\xc3\xa9,\tx-other\t").unwrap());
        m.append("x-secret", HeaderValue::from_static("1"));
        m.append("x-other", HeaderValue::from_static("2"));
        m.append("accept", HeaderValue::from_static("*/*"));
        remove_hop_by_hop(&mut m);
        let left: Vec<&str> = m.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["accept"]);
    }

    #[test]
    fn empty_roles_and_scopes_send_no_header() {
        let h = IdentityHeaders::new("X-Auth-");
        let mut m = HeaderMap::new();
        let id = TokenId::parse("AAAAAAAAAAAA").unwrap();
        let identity = Identity {
            subject: "acme",
            token_id: &id,
            kind: TokenKind::Organization,
            org: None,
            roles: &[],
            scopes: &[],
        };
        h.inject(&mut m, &identity);
        assert!(m.get("x-auth-scopes").is_none() && m.get("x-auth-roles").is_none(), "{m:?}");
        assert_eq!(m["x-auth-subject"], "acme");
    }

    #[test]
    fn stored_values_cannot_break_a_header_line() {
        for evil in ["a\r\nX-Auth-Roles: admin", "a,b", "caf\u{e9}", "100%", "q\"uote", "tab\there"] {
            let v = encode_value(evil);
            let s = v.to_str().unwrap();
            assert!(s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b','), "{evil:?} -> {s:?}");
        }
        assert_eq!(encode_value("a\r\nb"), "a%0D%0Ab");
    }

    #[test]
    fn upgrade_requests_are_recognised() {
        assert_eq!(
            upgrade_request(&map(&[("connection", "keep-alive, Upgrade"), ("upgrade", "websocket")])).unwrap(),
            "websocket"
        );
        assert!(upgrade_request(&map(&[("upgrade", "websocket")])).is_none());
        assert!(upgrade_request(&map(&[("connection", "upgrade")])).is_none());
    }

    #[test]
    fn forwarded_headers_follow_the_mode() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let host = Some(HeaderValue::from_static("api.example"));
        let mut m =
            map(&[("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "2.2.2.2"), ("x-forwarded-proto", "https")]);
        forwarded(&mut m, XForwarded::Append, peer, "http", host.clone());
        assert_eq!(m["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 10.0.0.9");
        assert_eq!(m["x-forwarded-proto"], "https");
        assert_eq!(m["x-forwarded-host"], "api.example");

        let mut m = map(&[("x-forwarded-for", "1.1.1.1"), ("x-forwarded-host", "spoofed")]);
        forwarded(&mut m, XForwarded::Set, peer, "http", host);
        assert_eq!(m["x-forwarded-for"], "10.0.0.9");
        assert_eq!(m["x-forwarded-proto"], "http");
        assert_eq!(m["x-forwarded-host"], "api.example");

        let mut m = map(&[("x-forwarded-for", "1.1.1.1")]);
        forwarded(&mut m, XForwarded::Off, peer, "http", None);
        assert_eq!(m["x-forwarded-for"], "1.1.1.1");
    }
}

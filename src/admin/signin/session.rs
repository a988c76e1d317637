//! The signed-in session: what it holds, when it ends, and the cookie that carries it.
//!
//! A session names the principal and nothing they may do: every request reads the principal's
//! current record (through the authentication cache, so a SCIM deactivation or a group change
//! applies on the next request), never a copy taken at sign-in. It ends at
//! `identity.sessions.lifetime` after sign-in, or after `idle_timeout` without use (page
//! sessions; each use more than a minute after the last seals a fresh cookie). The CLI's bearer
//! session ends at `lifetime`.
//!
//! The cookie is `HttpOnly`, `SameSite=Lax`, `Path=/`; over https it is `Secure` and named with
//! the `__Host-` prefix, so no other site or subdomain can set it. Signing out clears it in the
//! browser; a copy taken before then stays valid until it idles out (as with every sealed-cookie
//! session, e.g. oauth2-proxy's), which is why `idle_timeout` defaults to one hour.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, SameSite};
use http::HeaderMap;
use http::header::{COOKIE, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::config::SessionConfig;

/// How stale `seen` may get before a page session is sealed afresh.
pub const REFRESH_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The principal id.
    pub sub: String,
    /// Signed in at (Unix seconds).
    pub iat: u64,
    /// Last used at (Unix seconds).
    pub seen: u64,
    /// The double-submit value mutations must send in `X-CSRF-Token` (page sessions).
    pub csrf: String,
    /// A bearer credential held by the CLI rather than a cookie.
    #[serde(default)]
    pub cli: bool,
}

fn secs(t: Timestamp) -> u64 {
    t.millis() / 1000
}

/// Random URL-safe text of `n` bytes of entropy.
pub fn random_text(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).expect("the system's random source");
    URL_SAFE_NO_PAD.encode(b)
}

impl Session {
    pub fn new(sub: String, now: Timestamp, cli: bool) -> Self {
        Self { sub, iat: secs(now), seen: secs(now), csrf: random_text(18), cli }
    }

    /// Whether the session still holds at `now`.
    pub fn is_live(&self, now: Timestamp, config: &SessionConfig) -> bool {
        let now = secs(now);
        let age = now.saturating_sub(self.iat);
        let idle = now.saturating_sub(self.seen);
        self.iat <= now + 60 && age < config.lifetime.as_secs() && (self.cli || idle < config.idle_timeout.as_secs())
    }

    /// Whether a page session should be sealed afresh (its `seen` is over a minute old).
    pub fn needs_refresh(&self, now: Timestamp) -> bool {
        !self.cli && secs(now).saturating_sub(self.seen) >= REFRESH_AFTER.as_secs()
    }

    pub fn touched(mut self, now: Timestamp) -> Self {
        self.seen = secs(now);
        self
    }

    /// Seconds until the session ends by its lifetime.
    pub fn remaining(&self, now: Timestamp, config: &SessionConfig) -> u64 {
        (self.iat + config.lifetime.as_secs()).saturating_sub(secs(now))
    }
}

/// The cookie names, which depend on whether the browser reaches us over https.
#[derive(Debug, Clone, Copy)]
pub struct Cookies {
    pub secure: bool,
}

impl Cookies {
    pub fn session_name(self) -> &'static str {
        if self.secure { "__Host-tokengate_session" } else { "tokengate_session" }
    }

    pub fn flow_name(self) -> &'static str {
        if self.secure { "__Host-tokengate_signin" } else { "tokengate_signin" }
    }

    /// `Set-Cookie` for `name` = `value`, living `max_age` (zero: cleared).
    pub fn set(self, name: &'static str, value: &str, max_age: Duration) -> HeaderValue {
        let c = Cookie::build((name, value))
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .path("/")
            .max_age(cookie::time::Duration::seconds(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX)))
            .build();
        HeaderValue::from_str(&c.to_string()).expect("sealed values are header-safe")
    }

    pub fn clear(self, name: &'static str) -> HeaderValue {
        self.set(name, "", Duration::ZERO)
    }
}

/// The value of the cookie `name` in the request, if exactly one was sent (two cookies of one
/// name, e.g. one planted for a subdomain, are refused rather than guessed between).
pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = None;
    for header in headers.get_all(COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for c in Cookie::split_parse(text).flatten() {
            if c.name() == name {
                if found.is_some() {
                    return None;
                }
                // The sealed values are URL-safe base64 with a prefix: nothing to unquote.
                found = c.value_raw();
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SessionConfig {
        SessionConfig {
            keys: vec![],
            lifetime: Duration::from_secs(12 * 3600),
            idle_timeout: Duration::from_secs(3600),
        }
    }

    #[test]
    fn sessions_end_at_their_lifetime_or_when_idle() {
        let c = config();
        let t0 = Timestamp(1_000_000_000_000);
        let at = |s: u64| Timestamp(t0.millis() + s * 1000);
        let s = Session::new("alice".into(), t0, false);
        assert!(s.is_live(at(3599), &c));
        assert!(!s.is_live(at(3600), &c), "idle");
        let kept = s.clone().touched(at(3000)).touched(at(6000)).touched(at(9000));
        assert!(kept.is_live(at(9000 + 3599), &c));
        assert!(!kept.touched(at(43_199)).is_live(at(43_200), &c), "lifetime");
        let cli = Session::new("alice".into(), t0, true);
        assert!(cli.is_live(at(40_000), &c), "CLI sessions do not idle out");
        assert!(!cli.is_live(at(43_200), &c));
        assert!(!Session::new("alice".into(), at(120), false).is_live(t0, &c), "not from the future");
        assert!(!s.needs_refresh(at(59)) && s.needs_refresh(at(60)));
    }

    #[test]
    fn cookies_are_read_exactly_once() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("a=1; tokengate_session=tgs1.abc; b=2"));
        assert_eq!(read_cookie(&h, "tokengate_session"), Some("tgs1.abc"));
        assert_eq!(read_cookie(&h, "tokengate"), None);
        h.append(COOKIE, HeaderValue::from_static("tokengate_session=tgs1.other"));
        assert_eq!(read_cookie(&h, "tokengate_session"), None, "two of one name");
    }

    #[test]
    fn the_cookie_is_http_only_lax_and_secure_over_https() {
        let v = Cookies { secure: true }.set("__Host-tokengate_session", "tgs1.x", Duration::from_secs(60));
        let v = v.to_str().unwrap();
        for part in ["__Host-tokengate_session=tgs1.x", "HttpOnly", "SameSite=Lax", "Secure", "Path=/", "Max-Age=60"] {
            assert!(v.contains(part), "{v}");
        }
        let plain = Cookies { secure: false }.clear("tokengate_session");
        assert!(!plain.to_str().unwrap().contains("Secure") && plain.to_str().unwrap().contains("Max-Age=0"));
    }
}

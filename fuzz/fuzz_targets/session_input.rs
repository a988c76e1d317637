//! What a browser, a CLI or an identity provider hands the sign-in code: a sealed session (any
//! text as cookie or bearer value), `Cookie` headers, and ID token claims (any JSON). Errors
//! are fine; panics, hangs and a forged session that opens are not.
#![no_main]

use http::HeaderMap;
use http::header::{COOKIE, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tokengate::admin::signin::claims::identity_from_claims;
use tokengate::admin::signin::seal::{Purpose, Sealer};
use tokengate::admin::signin::session::{Session, read_cookie};
use tokengate::config::{ClaimNames, OidcConfig, Secret};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    match selector % 3 {
        0 => {
            let sealer = Sealer::new(&[Secret::new("fuzzing-session-key-0123456789abcdef")]);
            // Without the key, nothing opens: a value that does was forged.
            assert!(sealer.open::<Session>(Purpose::Session, text).is_none(), "forged session opened");
            // What we seal opens again, unless it is longer than any cookie we accept.
            let sealed = sealer.seal(Purpose::Session, &text);
            let opened = sealer.open::<String>(Purpose::Session, &sealed);
            if sealed.len() <= tokengate::admin::signin::seal::MAX_SEALED {
                assert_eq!(opened.as_deref(), Some(text));
            } else {
                assert!(opened.is_none());
            }
        }
        1 => {
            let mut headers = HeaderMap::new();
            for part in text.split('\n') {
                if let Ok(v) = HeaderValue::from_str(part) {
                    headers.append(COOKIE, v);
                }
            }
            let _ = read_cookie(&headers, "tokengate_session");
        }
        _ => {
            let Ok(claims) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) else { return };
            let config = OidcConfig {
                issuer: "https://login.example.com".into(),
                client_id: "tokengate".into(),
                client_secret: None,
                redirect_url: "https://t.example.com/auth/callback".parse().unwrap(),
                scopes: vec![],
                claims: ClaimNames {
                    id: "sub".into(),
                    name: "name".into(),
                    email: "email".into(),
                    groups: "groups".into(),
                    org: Some("org".into()),
                },
                org: None,
            };
            if let Ok(identity) = identity_from_claims(&config, &claims) {
                assert!(tokengate::token::valid_subject_id(&identity.id));
            }
        }
    }
});

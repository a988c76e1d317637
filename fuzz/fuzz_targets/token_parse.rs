//! `TokenFormat::parse` on any string, and on well-formed candidates with a correct checksum.
//!
//! Invariants: never panics; an accepted token has the configured shape (prefix, `_`, 58 base62
//! characters) and its id is the 12 characters after the underscore; a token re-generated with
//! `generate_with_id` for the accepted id and kind parses to the same id and kind; a candidate
//! with a correct checksum is accepted exactly when its body is base62.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::token::TokenKind;
use tokengate::token::format::{BODY_LEN, CHECKSUM_LEN, ID_LEN, TokenFormat};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The checksum as documented in `src/token.rs`: CRC32, base62, zero-padded to 6 characters.
fn checksum(signed: &str) -> String {
    let mut crc = crc32fast::hash(signed.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(crc % 62) as usize];
        crc /= 62;
    }
    String::from_utf8(out.to_vec()).unwrap()
}

fn check(format: &TokenFormat, raw: &str) -> bool {
    let Ok(parsed) = format.parse(raw) else { return false };
    assert_eq!(parsed.raw(), raw);
    let prefix = format.prefix(parsed.kind);
    let body = raw.strip_prefix(prefix).and_then(|r| r.strip_prefix('_')).expect("accepted token has its prefix");
    assert_eq!(body.len(), BODY_LEN, "{raw:?}");
    assert!(body.bytes().all(|b| b.is_ascii_alphanumeric()), "{raw:?}");
    assert_eq!(parsed.id.as_str(), &body[..ID_LEN]);
    assert_eq!(&body[BODY_LEN - CHECKSUM_LEN..], checksum(&raw[..raw.len() - CHECKSUM_LEN]), "{raw:?}");
    // A fresh secret for the same id parses to the same id and kind.
    let again = format.generate_with_id(parsed.kind, parsed.id);
    let reparsed = format.parse(again.expose()).expect("a generated token parses");
    assert_eq!((reparsed.id, reparsed.kind), (parsed.id, parsed.kind));
    true
}

fuzz_target!(|data: &[u8]| {
    let format = TokenFormat::default();
    let Some((&mode, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    match mode % 3 {
        // Any string at all.
        0 => {
            check(&format, text);
        }
        // A candidate with the right checksum: accepted exactly when the body is base62.
        _ => {
            let kind = if mode % 3 == 1 { TokenKind::Personal } else { TokenKind::Organization };
            let mut signed = format!("{}_", format.prefix(kind));
            signed.extend(text.chars().take(ID_LEN + 40));
            let candidate = format!("{signed}{}", checksum(&signed));
            let body = &candidate[format.prefix(kind).len() + 1..];
            let well_formed = body.len() == BODY_LEN && body.bytes().all(|b| b.is_ascii_alphanumeric());
            assert_eq!(check(&format, &candidate), well_formed, "{candidate:?}");
            if well_formed {
                assert_eq!(format.parse(&candidate).unwrap().kind, kind);
            }
        }
    }
});

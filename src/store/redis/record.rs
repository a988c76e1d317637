//! The compact token record: one binary value per token, a field of its record bucket.
//!
//! ```text
//! offset  size  content
//! 0       1     format version (1)
//! 1       1     status: b'a' active, b's' suspended, b'r' revoked
//! 2       6     last used, Unix ms, big-endian (0: never)
//! 8       1     n, length of the last-used client address (0: unknown)
//! 9       n     the last-used client address, as text
//! 9+n     …     MessagePack array [kind, name, owner]: the head, which the scripts read
//!               (`cmsgpack.unpack_one`) for audit events and principal deletion
//! …       …     MessagePack array [created_by, created_at, expires_at, roles, scopes, digest,
//!               previous, limits]: the rest of the record (limits as JSON, nil when unlimited)
//! ```
//!
//! The fixed header holds what changes often and what the scripts change in place (status,
//! last use) without decoding the rest; everything after it (the *body*) changes only on
//! rotation, so rotation compares and swaps the body. The two MessagePack arrays are positional
//! (no field names), written and read with `rmp-serde`. Fields added later go at the end of the
//! rest array with `#[serde(default)]`, so records written before them still read. The head stays
//! free of binary values: Redis's `cmsgpack` cannot read them.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::token::digest::TokenDigest;
use crate::token::limits::TokenLimits;
use crate::token::{PreviousSecret, Token, TokenId, TokenKind, TokenStatus};

/// The first byte of every record written by this code.
pub(super) const VERSION: u8 = 1;
/// Version, status, last used, address length.
const HEADER_LEN: usize = 9;
/// The largest last-used time the header holds (2^48 - 1 ms, the year 10889).
pub(super) const MAX_MILLIS: u64 = (1 << 48) - 1;

/// Why a stored record could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum RecordError {
    #[error("record shorter than its header")]
    Short,
    #[error("unknown record version {0}")]
    Version(u8),
    #[error("unknown status byte {0}")]
    Status(u8),
    #[error("unknown kind {0}")]
    Kind(u8),
    #[error("last-used address is not UTF-8")]
    Address,
    #[error("scope: {0}")]
    Scope(String),
    #[error("limits: {0}")]
    Limits(#[from] serde_json::Error),
    #[error("record body: {0}")]
    Body(#[from] rmp_serde::decode::Error),
    #[error("{0} bytes after the record body")]
    Trailing(usize),
}

/// The status byte of `status`, as the scripts compare it.
pub(super) fn status_code(status: TokenStatus) -> &'static str {
    match status {
        TokenStatus::Active => "a",
        TokenStatus::Suspended => "s",
        TokenStatus::Revoked => "r",
    }
}

/// The status a script answered with its status byte.
pub(super) fn status_from_code(code: &str) -> Option<TokenStatus> {
    match code {
        "a" => Some(TokenStatus::Active),
        "s" => Some(TokenStatus::Suspended),
        "r" => Some(TokenStatus::Revoked),
        _ => None,
    }
}

fn kind_code(kind: TokenKind) -> u8 {
    match kind {
        TokenKind::Personal => 0,
        TokenKind::Organization => 1,
    }
}

#[derive(Serialize)]
struct HeadOut<'a> {
    kind: u8,
    name: &'a str,
    owner: &'a str,
}

#[derive(Deserialize)]
struct HeadIn {
    kind: u8,
    name: String,
    owner: String,
}

#[derive(Serialize, Deserialize)]
struct Rest {
    created_by: String,
    created_at: u64,
    expires_at: u64,
    roles: Vec<String>,
    scopes: Vec<String>,
    digest: serde_bytes::ByteArray<32>,
    previous: Option<(serde_bytes::ByteArray<32>, u64)>,
    /// [`TokenLimits`] as JSON (its optional fields are named there); `None` when unlimited.
    #[serde(default)]
    limits: Option<String>,
}

/// The whole record of `token`, as `create` stores it.
pub(super) fn encode(token: &Token) -> Vec<u8> {
    let body = encode_body(token);
    let from = token.last_used_from.as_deref().unwrap_or("");
    let from = &from.as_bytes()[..from.len().min(255)];
    let mut out = Vec::with_capacity(HEADER_LEN + from.len() + body.len());
    out.push(VERSION);
    out.push(status_code(token.status).as_bytes()[0]);
    out.extend_from_slice(&millis48(token.last_used_at.map_or(0, Timestamp::millis)));
    out.push(u8::try_from(from.len()).expect("at most 255"));
    out.extend_from_slice(from);
    out.extend_from_slice(&body);
    out
}

/// The body of `token` (everything after the header): what rotation compares and replaces.
pub(super) fn encode_body(token: &Token) -> Vec<u8> {
    let head = HeadOut { kind: kind_code(token.kind), name: &token.name, owner: &token.owner };
    let rest = Rest {
        created_by: token.created_by.clone(),
        created_at: token.created_at.millis(),
        expires_at: token.expires_at.millis(),
        roles: token.roles.clone(),
        scopes: token.scopes.iter().map(ToString::to_string).collect(),
        digest: serde_bytes::ByteArray::new(*token.digest.as_bytes()),
        previous: token.previous.as_ref().map(|p| (serde_bytes::ByteArray::new(*p.digest.as_bytes()), p.valid_until.0)),
        limits: (!token.limits.is_unlimited())
            .then(|| serde_json::to_string(&token.limits).expect("token limits serialize")),
    };
    let mut out = rmp_serde::to_vec(&head).expect("record head serializes");
    rmp_serde::encode::write(&mut out, &rest).expect("record rest serializes");
    out
}

/// The body of a stored record (everything after the header).
pub(super) fn body(bytes: &[u8]) -> Result<&[u8], RecordError> {
    let (_, from_len) = header(bytes)?;
    Ok(&bytes[HEADER_LEN + from_len..])
}

/// Checks the version and returns the status byte and the address length.
fn header(bytes: &[u8]) -> Result<(u8, usize), RecordError> {
    if bytes.len() < HEADER_LEN {
        return Err(RecordError::Short);
    }
    if bytes[0] != VERSION {
        return Err(RecordError::Version(bytes[0]));
    }
    let from_len = usize::from(bytes[8]);
    if bytes.len() < HEADER_LEN + from_len {
        return Err(RecordError::Short);
    }
    Ok((bytes[1], from_len))
}

/// Reads a stored record of token `id`.
pub(super) fn decode(id: TokenId, bytes: &[u8]) -> Result<Token, RecordError> {
    let (status, from_len) = header(bytes)?;
    let status = status_from_code(std::str::from_utf8(&[status]).unwrap_or("")).ok_or(RecordError::Status(status))?;
    let mut millis = [0u8; 8];
    millis[2..].copy_from_slice(&bytes[2..8]);
    let last_used = u64::from_be_bytes(millis);
    let from = std::str::from_utf8(&bytes[HEADER_LEN..HEADER_LEN + from_len]).map_err(|_| RecordError::Address)?;
    let mut body = &bytes[HEADER_LEN + from_len..];
    let mut de = rmp_serde::Deserializer::new(&mut body);
    let head = HeadIn::deserialize(&mut de)?;
    let rest = Rest::deserialize(&mut de)?;
    if !body.is_empty() {
        return Err(RecordError::Trailing(body.len()));
    }
    let kind = match head.kind {
        0 => TokenKind::Personal,
        1 => TokenKind::Organization,
        other => return Err(RecordError::Kind(other)),
    };
    let scopes = rest.scopes.iter().map(|s| s.parse()).collect::<Result<_, _>>();
    let limits = rest.limits.as_deref().map(serde_json::from_str::<TokenLimits>).transpose()?;
    Ok(Token {
        id,
        kind,
        name: head.name,
        owner: head.owner,
        created_by: rest.created_by,
        created_at: Timestamp(rest.created_at),
        expires_at: Timestamp(rest.expires_at),
        status,
        roles: rest.roles,
        scopes: scopes.map_err(|e| RecordError::Scope(format!("{e}")))?,
        last_used_at: (last_used != 0).then_some(Timestamp(last_used)),
        last_used_from: (!from.is_empty()).then(|| from.to_string()),
        digest: TokenDigest::from_bytes(rest.digest.into_array()),
        previous: rest.previous.map(|(digest, valid_until)| PreviousSecret {
            digest: TokenDigest::from_bytes(digest.into_array()),
            valid_until: Timestamp(valid_until),
        }),
        limits: limits.unwrap_or_default(),
    })
}

/// A last-used time as the header holds it (clamped to 48 bits).
pub(super) fn millis48(ms: u64) -> [u8; 6] {
    let b = ms.min(MAX_MILLIS).to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::digest::Hasher;

    fn token() -> Token {
        let hasher = Hasher::new(None);
        Token {
            id: TokenId::parse("AAAAAAAAAAAA").unwrap(),
            kind: TokenKind::Organization,
            name: "deploy bot ✓".into(),
            owner: "org:acme".into(),
            created_by: "alice@example.com".into(),
            created_at: Timestamp(1_763_811_695_123),
            expires_at: Timestamp(1_771_587_695_123),
            status: TokenStatus::Suspended,
            roles: vec!["viewer".into(), "developer".into()],
            scopes: vec!["env:prod".parse().unwrap()],
            last_used_at: Some(Timestamp(1_763_811_700_000)),
            last_used_from: Some("2001:db8::7".into()),
            digest: hasher.digest("new"),
            previous: Some(PreviousSecret { digest: hasher.digest("old"), valid_until: Timestamp(1_763_900_000_000) }),
            limits: serde_json::from_str(
                r#"{"rate":{"requests":100,"window_secs":60,"burst":10},"quota":5000,"networks":["10.0.0.0/8","2001:db8::/32"]}"#,
            )
            .unwrap(),
        }
    }

    #[test]
    fn every_field_round_trips() {
        let t = token();
        let bytes = encode(&t);
        assert_eq!(decode(t.id, &bytes).unwrap(), t);
        assert_eq!(body(&bytes).unwrap(), encode_body(&t).as_slice());
        let bare = Token {
            last_used_at: None,
            last_used_from: None,
            previous: None,
            scopes: vec![],
            limits: TokenLimits::default(),
            ..t
        };
        assert_eq!(decode(bare.id, &encode(&bare)).unwrap(), bare);
    }

    #[test]
    fn the_header_is_where_the_scripts_expect_it() {
        let t = token();
        let bytes = encode(&t);
        assert_eq!(bytes[0], VERSION);
        assert_eq!(bytes[1], b's');
        assert_eq!(&bytes[2..8], &millis48(1_763_811_700_000));
        assert_eq!(usize::from(bytes[8]), "2001:db8::7".len());
        assert_eq!(&bytes[9..20], b"2001:db8::7");
        // The head is a plain array of an integer and two strings (what cmsgpack reads).
        assert_eq!(bytes[20], 0x93);
    }

    #[test]
    fn damaged_records_are_errors() {
        let bytes = encode(&token());
        let id = token().id;
        assert!(matches!(decode(id, &bytes[..5]), Err(RecordError::Short)));
        let mut v = bytes.clone();
        v[0] = 9;
        assert!(matches!(decode(id, &v), Err(RecordError::Version(9))));
        let mut v = bytes.clone();
        v[1] = b'x';
        assert!(matches!(decode(id, &v), Err(RecordError::Status(_))));
        assert!(decode(id, &bytes[..bytes.len() - 3]).is_err());
        let mut v = bytes;
        v.push(0);
        assert!(matches!(decode(id, &v), Err(RecordError::Trailing(1))));
    }
}

//! The token wire format: `<prefix>_<id><secret><checksum>`.
//!
//! Everything after the underscore is base62 (`0-9A-Za-z`):
//!
//! | part     | length | meaning                                                     |
//! |----------|--------|-------------------------------------------------------------|
//! | id       | 12     | random, public; the store's lookup key; shown in listings   |
//! | secret   | 40     | random from the OS generator (238 bits), rejection-sampled  |
//! | checksum | 6      | CRC32 of everything before it, base62, zero-padded          |
//!
//! The checksum lets a typo or a truncated paste be refused without touching any store, and lets
//! secret scanners recognise our tokens. Parsing is a pure function of the string and the two
//! configured prefixes.

use std::fmt;

use thiserror::Error;

use serde::{Deserialize, Serialize};

/// The base62 alphabet, in ascending order of value.
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Length of the public id.
pub const ID_LEN: usize = 12;
/// Length of the random secret.
pub const SECRET_LEN: usize = 40;
/// Length of the base62 CRC32 checksum (62^6 > 2^32).
pub const CHECKSUM_LEN: usize = 6;
/// Length of everything after the underscore.
pub const BODY_LEN: usize = ID_LEN + SECRET_LEN + CHECKSUM_LEN;
/// Number of leading id characters kept in the masked display form.
const DISPLAY_ID_CHARS: usize = 8;

/// Why a presented string is not a well-formed token. The variants exist for logs and metrics;
/// clients only ever see one generic message.
/// Whose token it is: a person's, or an organization's (outliving its creator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Personal,
    Organization,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Personal => "personal",
            Self::Organization => "organization",
        }
    }
}

/// The stored status of a token.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    #[error("unknown token prefix")]
    Prefix,
    #[error("wrong token length")]
    Length,
    #[error("character outside the base62 alphabet")]
    Alphabet,
    #[error("checksum mismatch")]
    Checksum,
}

/// A token id: 12 base62 characters, stored inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId([u8; ID_LEN]);

impl TokenId {
    /// Generates a fresh random id from the OS generator.
    pub fn generate() -> Self {
        let mut id = [0u8; ID_LEN];
        fill_base62(&mut id);
        Self(id)
    }

    /// Parses an id as it appears in URLs and store keys.
    pub fn parse(s: &str) -> Option<Self> {
        let bytes: [u8; ID_LEN] = s.as_bytes().try_into().ok()?;
        bytes.iter().all(|b| b.is_ascii_alphanumeric()).then_some(Self(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII alphanumerics are ever stored, so this cannot fail.
        std::str::from_utf8(&self.0).expect("token id is ASCII")
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({})", self.as_str())
    }
}

impl serde::Serialize for TokenId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for TokenId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom("token id must be 12 base62 characters"))
    }
}

/// A whole token string. Its `Debug` and `Display` never show the secret, so it can sit in
/// structs that get logged.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(String);

impl SecretToken {
    /// The full token, for the one response that hands it to its owner and for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken(<redacted>)")
    }
}

/// A token string that passed [`TokenFormat::parse`]; borrows the presented string.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ParsedToken<'a> {
    pub kind: TokenKind,
    pub id: TokenId,
    raw: &'a str,
}

impl<'a> ParsedToken<'a> {
    /// The whole presented string: what the digest is computed over.
    pub fn raw(&self) -> &'a str {
        self.raw
    }
}

impl fmt::Debug for ParsedToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedToken").field("kind", &self.kind).field("id", &self.id).finish_non_exhaustive()
    }
}

/// The configured prefixes; generates and parses tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFormat {
    personal: String,
    organization: String,
}

impl Default for TokenFormat {
    fn default() -> Self {
        Self { personal: "tgp".into(), organization: "tgo".into() }
    }
}

/// Why a prefix cannot be used; reported by config validation.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PrefixError {
    #[error("must be 2 to 10 lowercase letters or digits, starting with a letter")]
    Shape,
    #[error("personal and organization prefixes must differ")]
    Same,
}

impl TokenFormat {
    pub fn new(personal: &str, organization: &str) -> Result<Self, (TokenKind, PrefixError)> {
        for (kind, p) in [(TokenKind::Personal, personal), (TokenKind::Organization, organization)] {
            let ok = (2..=10).contains(&p.len())
                && p.as_bytes()[0].is_ascii_lowercase()
                && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !ok {
                return Err((kind, PrefixError::Shape));
            }
        }
        if personal == organization {
            return Err((TokenKind::Organization, PrefixError::Same));
        }
        Ok(Self { personal: personal.into(), organization: organization.into() })
    }

    pub fn prefix(&self, kind: TokenKind) -> &str {
        match kind {
            TokenKind::Personal => &self.personal,
            TokenKind::Organization => &self.organization,
        }
    }

    /// Builds a new token of `kind` with a fresh random id.
    pub fn generate(&self, kind: TokenKind) -> (TokenId, SecretToken) {
        let id = TokenId::generate();
        (id, self.generate_with_id(kind, id))
    }

    /// Builds a token for an existing id with a fresh secret (used by rotation).
    pub fn generate_with_id(&self, kind: TokenKind, id: TokenId) -> SecretToken {
        let prefix = self.prefix(kind);
        let mut s = String::with_capacity(prefix.len() + 1 + BODY_LEN);
        s.push_str(prefix);
        s.push('_');
        s.push_str(id.as_str());
        let mut secret = [0u8; SECRET_LEN];
        fill_base62(&mut secret);
        s.push_str(std::str::from_utf8(&secret).expect("base62 is ASCII"));
        let crc = crc32fast::hash(s.as_bytes());
        s.push_str(std::str::from_utf8(&encode_checksum(crc)).expect("base62 is ASCII"));
        SecretToken(s)
    }

    /// Checks shape, alphabet and checksum. Touches no store and allocates nothing.
    pub fn parse<'a>(&self, raw: &'a str) -> Result<ParsedToken<'a>, ParseError> {
        let (prefix, body) = raw.split_once('_').ok_or(ParseError::Prefix)?;
        let kind = if prefix == self.personal {
            TokenKind::Personal
        } else if prefix == self.organization {
            TokenKind::Organization
        } else {
            return Err(ParseError::Prefix);
        };
        if body.len() != BODY_LEN {
            return Err(ParseError::Length);
        }
        if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ParseError::Alphabet);
        }
        let (signed, checksum) = raw.split_at(raw.len() - CHECKSUM_LEN);
        let expected = decode_checksum(checksum.as_bytes()).ok_or(ParseError::Checksum)?;
        if crc32fast::hash(signed.as_bytes()) != expected {
            return Err(ParseError::Checksum);
        }
        let id = TokenId::parse(&body[..ID_LEN]).ok_or(ParseError::Alphabet)?;
        Ok(ParsedToken { kind, id, raw })
    }

    /// The masked form shown in listings: prefix, first 8 id characters, ellipsis.
    pub fn display(&self, kind: TokenKind, id: &TokenId) -> String {
        format!("{}_{}...", self.prefix(kind), &id.as_str()[..DISPLAY_ID_CHARS])
    }
}

/// Fills `out` with uniformly distributed base62 characters from the OS generator.
///
/// Rejection sampling: bytes >= 248 (= 4 * 62) are discarded so that `b % 62` is unbiased.
fn fill_base62(out: &mut [u8]) {
    let mut pool = [0u8; 64];
    let mut filled = 0;
    while filled < out.len() {
        getrandom::fill(&mut pool).expect("the OS random generator is available");
        for &b in pool.iter().filter(|&&b| b < 248) {
            if filled == out.len() {
                break;
            }
            out[filled] = ALPHABET[usize::from(b % 62)];
            filled += 1;
        }
    }
}

fn encode_checksum(mut crc: u32) -> [u8; CHECKSUM_LEN] {
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(crc % 62) as usize];
        crc /= 62;
    }
    out
}

fn decode_checksum(s: &[u8]) -> Option<u32> {
    let mut value: u64 = 0;
    for &b in s {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'A'..=b'Z' => b - b'A' + 10,
            b'a'..=b'z' => b - b'a' + 36,
            _ => return None,
        };
        value = value * 62 + u64::from(digit);
    }
    u32::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        let f = TokenFormat::default();
        let (id, t) = f.generate(TokenKind::Personal);
        let s = t.expose();
        assert!(s.starts_with("tgp_"));
        assert_eq!(s.len(), 4 + BODY_LEN);
        assert_eq!(&s[4..16], id.as_str());
        let parsed = f.parse(s).unwrap();
        assert_eq!(parsed.id, id);
        assert_eq!(parsed.kind, TokenKind::Personal);
    }

    #[test]
    fn checksum_round_trips_at_the_extremes() {
        for crc in [0, 1, 61, 62, u32::MAX] {
            assert_eq!(decode_checksum(&encode_checksum(crc)), Some(crc));
        }
        assert_eq!(decode_checksum(b"zzzzzz"), None, "values above u32::MAX are refused");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let f = TokenFormat::default();
        let (_, t) = f.generate(TokenKind::Organization);
        assert_eq!(format!("{t:?}"), "SecretToken(<redacted>)");
        let parsed = f.parse(t.expose()).unwrap();
        assert!(!format!("{parsed:?}").contains(&t.expose()[16..]));
    }

    #[test]
    fn display_masks_all_but_eight_id_characters() {
        let f = TokenFormat::default();
        let id = TokenId::parse("9756bb3bQwEr").unwrap();
        assert_eq!(f.display(TokenKind::Personal, &id), "tgp_9756bb3b...");
    }

    #[test]
    fn prefixes_are_validated() {
        assert!(TokenFormat::new("acme", "acmeorg").is_ok());
        assert_eq!(TokenFormat::new("a", "tgo"), Err((TokenKind::Personal, PrefixError::Shape)));
        assert_eq!(TokenFormat::new("tgp", "t_o"), Err((TokenKind::Organization, PrefixError::Shape)));
        assert_eq!(TokenFormat::new("Tgp", "tgo"), Err((TokenKind::Personal, PrefixError::Shape)));
        assert_eq!(TokenFormat::new("tgp", "tgp"), Err((TokenKind::Organization, PrefixError::Same)));
    }
}

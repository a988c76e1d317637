//! What the store keeps instead of the token: a 32-byte digest.
//!
//! With a server-side pepper (from an environment variable or a file, never from the store) the
//! digest is HMAC-SHA256(pepper, token), so a copy of the store alone cannot be used to test
//! guesses offline. Without one it is SHA-256(token), which is still safe for tokens with 238 bits
//! of entropy. Changing the pepper invalidates every existing token.

use std::fmt;

use hmac::{KeyInit, Mac};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// A SHA-256 or HMAC-SHA256 output. Compared only in constant time.
#[derive(Clone, Copy)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time equality.
    pub fn matches(&self, other: &TokenDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    pub fn to_hex(&self) -> String {
        use std::fmt::Write;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.as_bytes().chunks_exact(2).enumerate() {
            let pair = std::str::from_utf8(pair).ok()?;
            out[i] = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest(<redacted>)")
    }
}

impl serde::Serialize for TokenDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for TokenDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_hex(&s).ok_or_else(|| serde::de::Error::custom("digest must be 64 hex characters"))
    }
}

/// The server-side pepper. Redacted in `Debug`.
#[derive(Clone)]
pub struct Pepper(Vec<u8>);

impl Pepper {
    /// Minimum pepper length, in bytes.
    pub const MIN_LEN: usize = 16;

    pub fn new(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() >= Self::MIN_LEN).then_some(Self(bytes))
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper(<redacted>)")
    }
}

/// Computes token digests; holds the pepper when one is configured.
#[derive(Clone)]
pub enum Hasher {
    Plain,
    Peppered(Box<hmac::Hmac<Sha256>>),
}

impl Hasher {
    pub fn new(pepper: Option<&Pepper>) -> Self {
        match pepper {
            None => Self::Plain,
            Some(p) => Self::Peppered(Box::new(
                hmac::Hmac::<Sha256>::new_from_slice(&p.0).expect("HMAC accepts keys of any length"),
            )),
        }
    }

    pub fn digest(&self, token: &str) -> TokenDigest {
        let bytes: [u8; 32] = match self {
            Self::Plain => Sha256::digest(token.as_bytes()).into(),
            Self::Peppered(mac) => {
                let mut mac = (**mac).clone();
                mac.update(token.as_bytes());
                mac.finalize().into_bytes().into()
            }
        };
        TokenDigest(bytes)
    }

    /// Whether `token` hashes to `stored`, compared in constant time.
    pub fn verify(&self, token: &str, stored: &TokenDigest) -> bool {
        self.digest(token).matches(stored)
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Plain => "Hasher::Plain",
            Self::Peppered(_) => "Hasher::Peppered(<redacted>)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_digest_is_sha256() {
        let d = Hasher::new(None).digest("abc");
        assert_eq!(d.to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn peppered_digest_is_hmac_sha256() {
        // RFC 4231 test case 2 uses a 4-byte key; pad to our minimum with a known key instead.
        let pepper = Pepper::new(b"0123456789abcdef".to_vec()).unwrap();
        let h = Hasher::new(Some(&pepper));
        let d = h.digest("token");
        assert_ne!(d.to_hex(), Hasher::new(None).digest("token").to_hex());
        assert!(h.verify("token", &d));
        assert!(!h.verify("token2", &d));
    }

    #[test]
    fn short_peppers_are_refused() {
        assert!(Pepper::new(vec![0; 15]).is_none());
        assert!(Pepper::new(vec![0; 16]).is_some());
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let d = Hasher::new(None).digest("x");
        assert!(TokenDigest::from_hex(&d.to_hex()).unwrap().matches(&d));
        assert!(TokenDigest::from_hex("zz").is_none());
        assert!(TokenDigest::from_hex(&"g".repeat(64)).is_none());
    }

    #[test]
    fn debug_is_redacted() {
        let d = Hasher::new(None).digest("x");
        assert_eq!(format!("{d:?}"), "TokenDigest(<redacted>)");
        let p = Pepper::new(vec![7; 32]).unwrap();
        assert_eq!(format!("{p:?}"), "Pepper(<redacted>)");
    }
}

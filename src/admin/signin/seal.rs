//! Sealing: AES-256-GCM over small JSON values, so that what the browser or the CLI holds
//! (the session, the sign-in flow in progress) can be neither read nor forged.
//!
//! Each configured key is stretched with HKDF-SHA256 into an AES-256 key. The first seals;
//! every key opens, so keys rotate by adding the new one first and dropping the old one after
//! the longest session lifetime. A sealed value is bound to its purpose (the associated data),
//! so a sealed sign-in flow cannot be presented as a session, nor a cookie session as another
//! purpose.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::Secret;

/// The prefix of every sealed value (its format version).
pub const PREFIX: &str = "tgs1.";

/// Largest sealed value accepted, in characters (cookies stay well below 4 KiB).
pub const MAX_SEALED: usize = 3500;

/// What a sealed value is for; part of the associated data.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    /// A signed-in session (cookie or CLI bearer credential).
    Session,
    /// An OpenID Connect sign-in in progress (state, nonce, PKCE verifier).
    Flow,
    /// A device authorization in progress (`tokengate login`).
    Device,
}

impl Purpose {
    fn aad(self) -> &'static [u8] {
        match self {
            Self::Session => b"tokengate/session",
            Self::Flow => b"tokengate/flow",
            Self::Device => b"tokengate/device",
        }
    }
}

/// Seals and opens with the configured session keys; cheap to clone.
#[derive(Clone)]
pub struct Sealer {
    keys: std::sync::Arc<Vec<LessSafeKey>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({} keys)", self.keys.len())
    }
}

struct KeyLen;

impl hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        32
    }
}

impl Sealer {
    /// # Panics
    /// When `keys` is empty (config validation requires at least one).
    pub fn new(keys: &[Secret]) -> Self {
        assert!(!keys.is_empty(), "at least one session key");
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"tokengate session key v1");
        let keys = keys
            .iter()
            .map(|k| {
                let mut bytes = [0u8; 32];
                salt.extract(k.expose().as_bytes())
                    .expand(&[b"aes-256-gcm"], KeyLen)
                    .and_then(|okm| okm.fill(&mut bytes))
                    .expect("32 bytes is a valid HKDF-SHA256 output length");
                LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &bytes).expect("32-byte AES key"))
            })
            .collect();
        Self { keys: std::sync::Arc::new(keys) }
    }

    /// `value` sealed with the first key under a fresh random nonce.
    pub fn seal<T: Serialize>(&self, purpose: Purpose, value: &T) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the system's random source");
        let mut buf = serde_json::to_vec(value).expect("sealed values serialize");
        self.keys[0]
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(purpose.aad()), &mut buf)
            .expect("AES-GCM seals any buffer below its limit");
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// The value sealed in `sealed` for `purpose`, or `None` when it is malformed, sealed with
    /// a key no longer configured, for another purpose, or tampered with.
    pub fn open<T: DeserializeOwned>(&self, purpose: Purpose, sealed: &str) -> Option<T> {
        if sealed.len() > MAX_SEALED {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(sealed.strip_prefix(PREFIX)?).ok()?;
        if bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.keys.iter().find_map(|key| {
            let mut buf = sealed.to_vec();
            let plain =
                key.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(purpose.aad()), &mut buf).ok()?;
            serde_json::from_slice(plain).ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(keys: &[&str]) -> Sealer {
        Sealer::new(&keys.iter().map(|k| Secret::new(*k)).collect::<Vec<_>>())
    }

    const K1: &str = "first-session-key-0123456789abcdef";
    const K2: &str = "second-session-key-0123456789abcdef";

    #[test]
    fn sealed_values_open_only_for_their_purpose_and_keys() {
        let s = sealer(&[K1]);
        let sealed = s.seal(Purpose::Session, &("alice", 42));
        assert!(sealed.starts_with(PREFIX));
        assert!(!sealed.contains("alice"), "the contents cannot be read");
        assert_eq!(s.open::<(String, u32)>(Purpose::Session, &sealed), Some(("alice".into(), 42)));
        assert_eq!(s.open::<(String, u32)>(Purpose::Flow, &sealed), None, "bound to its purpose");
        assert_eq!(sealer(&[K2]).open::<(String, u32)>(Purpose::Session, &sealed), None, "unknown key");
        // Two seals of one value differ (fresh nonces).
        assert_ne!(sealed, s.seal(Purpose::Session, &("alice", 42)));
    }

    #[test]
    fn rotation_opens_with_any_key_and_seals_with_the_first() {
        let old = sealer(&[K1]);
        let rotated = sealer(&[K2, K1]);
        let before = old.seal(Purpose::Session, &"v");
        assert_eq!(rotated.open::<String>(Purpose::Session, &before).as_deref(), Some("v"));
        let after = rotated.seal(Purpose::Session, &"v");
        assert_eq!(old.open::<String>(Purpose::Session, &after), None, "sealed with the new key");
        assert_eq!(sealer(&[K2]).open::<String>(Purpose::Session, &after).as_deref(), Some("v"));
    }

    #[test]
    fn tampering_and_garbage_are_refused() {
        let s = sealer(&[K1]);
        let sealed = s.seal(Purpose::Session, &"operator");
        let body = sealed.strip_prefix(PREFIX).unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(body).unwrap();
        for i in 0..raw.len() {
            raw[i] ^= 1;
            let forged = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&raw));
            assert_eq!(s.open::<String>(Purpose::Session, &forged), None, "bit {i} flipped");
            raw[i] ^= 1;
        }
        for garbage in ["", PREFIX, "tgs1.%%%", "tgs2.AAAA", "tgs1.AAAA", &format!("{PREFIX}{}", "A".repeat(4000))] {
            assert_eq!(s.open::<String>(Purpose::Session, garbage), None, "{garbage:.20}");
        }
    }
}

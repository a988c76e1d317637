//! The listing index key shared by both backends, and the cursor built from it.
//!
//! An index entry is `<created_at, 15 digits zero-padded><token id>` (27 ASCII characters), so
//! byte order is creation order with the id as tie-breaker. Listings walk it backwards (newest
//! first); a cursor is the last entry a page returned, and the next page starts strictly below it.

use std::fmt;

use crate::clock::Timestamp;
use crate::token::{ID_LEN, TokenId};

const TS_DIGITS: usize = 15;
pub const KEY_LEN: usize = TS_DIGITS + ID_LEN;

/// An index entry: the position of one token in creation order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor([u8; KEY_LEN]);

impl Cursor {
    pub fn new(created_at: Timestamp, id: &TokenId) -> Self {
        let mut key = [0u8; KEY_LEN];
        let ts = format!("{:0width$}", created_at.millis().min(999_999_999_999_999), width = TS_DIGITS);
        key[..TS_DIGITS].copy_from_slice(ts.as_bytes());
        key[TS_DIGITS..].copy_from_slice(id.as_str().as_bytes());
        Self(key)
    }

    /// Parses a cursor from a client; `None` unless it has exactly the shape we issue.
    pub fn parse(s: &str) -> Option<Self> {
        let bytes: [u8; KEY_LEN] = s.as_bytes().try_into().ok()?;
        let ok = bytes[..TS_DIGITS].iter().all(u8::is_ascii_digit) && TokenId::parse(&s[TS_DIGITS..]).is_some();
        ok.then_some(Self(bytes))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("cursor is ASCII")
    }

    pub fn id(&self) -> TokenId {
        TokenId::parse(&self.as_str()[TS_DIGITS..]).expect("cursor holds a valid id")
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cursor({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_orders_by_time_then_id_and_round_trips() {
        let a = TokenId::parse("AAAAAAAAAAAA").unwrap();
        let b = TokenId::parse("BBBBBBBBBBBB").unwrap();
        assert!(Cursor::new(Timestamp(5), &b) < Cursor::new(Timestamp(10), &a));
        assert!(Cursor::new(Timestamp(5), &a) < Cursor::new(Timestamp(5), &b));
        let c = Cursor::new(Timestamp(1_763_811_695_123), &a);
        assert_eq!(c.as_str(), "001763811695123AAAAAAAAAAAA");
        assert_eq!(Cursor::parse(c.as_str()), Some(c));
        assert_eq!(c.id(), a);
    }

    #[test]
    fn malformed_cursors_are_refused() {
        for bad in
            ["", "abc", "00176381169512XAAAAAAAAAAAA", "001763811695123AAAAAAAAAAA!", "001763811695123AAAAAAAAAAAAA"]
        {
            assert_eq!(Cursor::parse(bad), None, "{bad:?}");
        }
    }
}

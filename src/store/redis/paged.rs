//! Paged indexes: a sorted index of tokens in creation order, kept in small sorted sets so each
//! stays a compact listpack instead of costing one skiplist node per token.
//!
//! An entry is the token's index key in binary ([`member`]: created ms as 7 bytes big-endian,
//! then the 12-byte id; byte order is the order of [`Cursor`]). An index is a directory (a sorted
//! set, lexicographic, all scores 0) and leaves (sorted sets of at most [`LEAF_CAPACITY`]
//! entries). The first leaf (`<leaf prefix>0`) holds every entry below the lowest bound in the
//! directory and has no directory member; every other leaf has the member
//! `<lower bound, 19 bytes>/<leaf name>` and holds the entries from its bound up to the next one.
//! A leaf is named after the cursor of the entry whose insertion split it off. Leaves split inside
//! the scripts that insert (`lua/lib.lua`); emptied leaves leave the directory.
//!
//! Scripts may only touch the keys they are given, so the leaf that holds an entry is resolved
//! here first ([`resolve`]) and the script checks that it still is (after a concurrent split it
//! answers "moved", and the caller resolves again). Listing reads a run of leaves together with
//! the directory in one `MULTI`, and reads again if the directory changed in between.

use super::connect::Link;
use super::keys::IndexKeys;
use super::{corrupt, unavailable};
use crate::clock::Timestamp;
use crate::store::{Cursor, StoreError};
use crate::token::TokenId;

/// Length of an entry, and of the lower bound that starts every directory member.
pub(super) const MEMBER_LEN: usize = 7 + 12;

/// The entry of `cursor` in a paged index.
pub(super) fn member(cursor: &Cursor) -> Vec<u8> {
    let s = cursor.as_str();
    let millis: u64 = s[..15].parse().expect("a cursor starts with 15 digits");
    let mut out = millis.to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&s.as_bytes()[15..]);
    out
}

/// The cursor of an entry (or of a directory member's lower bound).
pub(super) fn cursor(member: &[u8]) -> Option<Cursor> {
    let member = member.get(..MEMBER_LEN)?;
    let mut millis = [0u8; 8];
    millis[1..].copy_from_slice(&member[..7]);
    let id = TokenId::parse(std::str::from_utf8(&member[7..]).ok()?)?;
    Some(Cursor::new(Timestamp(u64::from_be_bytes(millis)), &id))
}

fn parsed(member: &[u8]) -> Result<Cursor, StoreError> {
    cursor(member).ok_or_else(|| corrupt("malformed index entry"))
}

/// `bound` followed by `suffix`, for lexicographic range arguments.
fn lex(bound: &str, key: &[u8], suffix: &str) -> Vec<u8> {
    [bound.as_bytes(), key, suffix.as_bytes()].concat()
}

/// The most keys a leaf holds: Redis keeps sorted sets of up to 128 entries
/// (`zset-max-listpack-entries`, default 128) as one compact listpack.
pub(super) const LEAF_CAPACITY: usize = 128;

/// How often an operation resolves its leaves again after a concurrent split, before giving up.
pub(super) const ATTEMPTS: usize = 50;

/// The directory members of the leaves holding entry `key` in each of `indexes` (empty for a
/// first leaf), in one round trip.
pub(super) async fn resolve(conn: &mut Link, indexes: &[&IndexKeys], key: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut pipe = redis::pipe();
    for index in indexes {
        pipe.cmd("ZRANGE").arg(&index.dir).arg(lex("(", key, "0")).arg("-").arg("BYLEX").arg("REV");
        pipe.arg("LIMIT").arg(0).arg(1);
    }
    let found: Vec<Vec<Vec<u8>>> = pipe.query_async(conn).await.map_err(unavailable)?;
    Ok(found.into_iter().map(|mut m| m.pop().unwrap_or_default()).collect())
}

/// Index entries below a bound, newest first.
pub(super) struct Range {
    /// Every entry below the bound down to the last one here, none missing.
    pub(super) cursors: Vec<Cursor>,
    /// Where to continue (exclusive upper bound), or `None` when the index has nothing more.
    pub(super) next: Option<Cursor>,
}

/// Up to `limit` entries of `index` below `upper` (exclusive; `None`: from the newest), merged
/// with the entries of `legacy`, the previous release's index, while it still holds any.
pub(super) async fn range(
    conn: &mut Link,
    index: &IndexKeys,
    legacy: &str,
    upper: Option<Cursor>,
    limit: usize,
) -> Result<Range, StoreError> {
    let limit = limit.max(1);
    // Leaves hold between one and LEAF_CAPACITY entries, most of them at least half full.
    let leaves = (limit / (LEAF_CAPACITY / 4) + 2).min(64);
    let upper_member = upper.as_ref().map(member);
    let dir_upper = upper_member.as_ref().map_or_else(|| b"+".to_vec(), |u| lex("(", u, "0"));
    let key_upper = upper_member.as_ref().map_or_else(|| b"+".to_vec(), |u| lex("(", u, ""));
    let legacy_upper = upper.map_or_else(|| "+".to_string(), |u| format!("({u}"));
    let dir_cmd = |pipe: &mut redis::Pipeline| {
        pipe.cmd("ZRANGE").arg(&index.dir).arg(&dir_upper).arg("-").arg("BYLEX").arg("REV");
        pipe.arg("LIMIT").arg(0).arg(leaves);
    };
    for _ in 0..ATTEMPTS {
        let mut pipe = redis::pipe();
        dir_cmd(&mut pipe);
        let (members,): (Vec<Vec<u8>>,) = pipe.query_async(conn).await.map_err(unavailable)?;
        // The leaves to read, newest first, each with its lower bound (None: the first leaf).
        let mut run: Vec<(String, Option<Cursor>)> =
            members.iter().map(|m| Ok((index.leaf(m), Some(parsed(m)?)))).collect::<Result<_, StoreError>>()?;
        if members.len() < leaves {
            run.push((index.leaf(b""), None));
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (leaf, _) in &run {
            pipe.cmd("ZRANGE")
                .arg(leaf)
                .arg(&key_upper)
                .arg("-")
                .arg("BYLEX")
                .arg("REV")
                .arg("LIMIT")
                .arg(0)
                .arg(limit);
        }
        pipe.cmd("ZRANGE")
            .arg(legacy)
            .arg(&legacy_upper)
            .arg("-")
            .arg("BYLEX")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(limit);
        dir_cmd(&mut pipe);
        let mut replies: Vec<Vec<Vec<u8>>> = pipe.query_async(conn).await.map_err(unavailable)?;
        let again = replies.pop().unwrap_or_default();
        if again != members {
            continue;
        }
        let old = replies.pop().unwrap_or_default();
        // The paged index is complete down to `new_floor` (None: to the bottom).
        let mut cursors: Vec<Cursor> = Vec::new();
        let mut new_floor: Option<Cursor> = None;
        for ((_, lower), entries) in run.iter().zip(replies) {
            for entry in entries {
                cursors.push(parsed(&entry)?);
            }
            if cursors.len() >= limit {
                cursors.truncate(limit);
                new_floor = cursors.last().copied();
                break;
            }
            new_floor = *lower;
        }
        let old = old
            .iter()
            .map(|m| {
                std::str::from_utf8(m).ok().and_then(Cursor::parse).ok_or_else(|| corrupt("malformed old index entry"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let old_floor = if old.len() >= limit { old.last().copied() } else { None };
        cursors.extend(old);
        cursors.sort_unstable_by(|a, b| b.cmp(a));
        cursors.dedup();
        let floor = new_floor.max(old_floor);
        if let Some(floor) = floor {
            cursors.retain(|c| *c >= floor);
        }
        cursors.truncate(limit);
        let next = if cursors.len() == limit { cursors.last().copied() } else { floor };
        return Ok(Range { cursors, next });
    }
    Err(StoreError::Unavailable("the token index kept changing while being read".into()))
}

/// The directory of `index` as read, and every leaf it names (the first leaf first).
pub(super) async fn leaves(conn: &mut Link, index: &IndexKeys) -> Result<(Vec<Vec<u8>>, Vec<String>), StoreError> {
    let members: Vec<Vec<u8>> =
        redis::cmd("ZRANGE").arg(&index.dir).arg(0).arg(-1).query_async(conn).await.map_err(unavailable)?;
    let mut leaves = vec![index.leaf(b"")];
    leaves.extend(members.iter().map(|m| index.leaf(m)));
    Ok((members, leaves))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_order_as_cursors_do_and_round_trip() {
        let a = TokenId::parse("AAAAAAAAAAAA").unwrap();
        let b = TokenId::parse("aAAAAAAAAAAA").unwrap();
        let cursors = [
            Cursor::new(Timestamp(0), &a),
            Cursor::new(Timestamp(5), &a),
            Cursor::new(Timestamp(5), &b),
            Cursor::new(Timestamp(256), &a),
            Cursor::new(Timestamp(1_763_811_695_123), &a),
            Cursor::new(Timestamp(u64::MAX), &b),
        ];
        for pair in cursors.windows(2) {
            assert!(pair[0] < pair[1] && member(&pair[0]) < member(&pair[1]), "{pair:?}");
        }
        for c in cursors {
            assert_eq!(member(&c).len(), MEMBER_LEN);
            assert_eq!(cursor(&member(&c)), Some(c));
        }
        assert_eq!(cursor(b"short"), None);
    }
}

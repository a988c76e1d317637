//! Paged indexes: a sorted index of token index keys (`<created ms, 15 digits><id>`, see
//! [`crate::store::Cursor`]) kept in small sorted sets, so each stays a compact listpack instead
//! of one skiplist node per token.
//!
//! An index is a directory (a sorted set, lexicographic, all scores 0) and leaves (sorted sets of
//! at most [`LEAF_CAPACITY`] index keys). The first leaf (`<leaf prefix>0`) holds every key below
//! the lowest bound in the directory and has no directory member; every other leaf has the member
//! `<lower bound>/<leaf name>` and holds the keys from its bound up to the next one. Leaves split
//! inside the scripts that insert (`lua/lib.lua`); emptied leaves leave the directory.
//!
//! Scripts may only touch the keys they are given, so the leaf that holds a key is resolved here
//! first ([`resolve`]) and the script checks that it still is (a concurrent split answers
//! "moved", and the caller resolves again). Listing reads a run of leaves together with the
//! directory in one `MULTI`, and reads again if the directory changed in between.

use redis::aio::ConnectionManager;

use super::keys::IndexKeys;
use super::unavailable;
use crate::store::StoreError;

/// The most keys a leaf holds: Redis keeps sorted sets of up to 128 entries
/// (`zset-max-listpack-entries`, default 128) as one compact listpack.
pub(super) const LEAF_CAPACITY: usize = 128;

/// How often an operation resolves its leaves again after a concurrent split, before giving up.
pub(super) const ATTEMPTS: usize = 50;

/// The directory member of the leaf that holds `key` (`""` for the first leaf), as part of a
/// pipeline: adds one command.
pub(super) fn resolve_cmd(pipe: &mut redis::Pipeline, index: &IndexKeys, key: &str) {
    pipe.cmd("ZRANGE")
        .arg(&index.dir)
        .arg(format!("({key}0"))
        .arg("-")
        .arg("BYLEX")
        .arg("REV")
        .arg("LIMIT")
        .arg(0)
        .arg(1);
}

/// The directory members of the leaves holding `key` in each of `indexes` (`""` for a first
/// leaf), in one round trip.
pub(super) async fn resolve(
    conn: &mut ConnectionManager,
    indexes: &[&IndexKeys],
    key: &str,
) -> Result<Vec<String>, StoreError> {
    let mut pipe = redis::pipe();
    for index in indexes {
        resolve_cmd(&mut pipe, index, key);
    }
    let found: Vec<Vec<String>> = pipe.query_async(conn).await.map_err(unavailable)?;
    Ok(found.into_iter().map(|mut m| m.pop().unwrap_or_default()).collect())
}

/// Index keys below a bound, newest first.
pub(super) struct Range {
    /// Every key below the bound down to the last one here, none missing.
    pub(super) keys: Vec<String>,
    /// Where to continue (exclusive upper bound), or `None` when the index has nothing more.
    pub(super) next: Option<String>,
}

/// Up to `limit` keys of `index` below `upper` (exclusive; `None`: from the newest), merged with
/// the keys of `legacy`, the previous release's index, while it still holds any.
pub(super) async fn range(
    conn: &mut ConnectionManager,
    index: &IndexKeys,
    legacy: &str,
    upper: Option<&str>,
    limit: usize,
) -> Result<Range, StoreError> {
    let limit = limit.max(1);
    // Leaves hold between one and LEAF_CAPACITY keys, most of them at least half full.
    let leaves = (limit / (LEAF_CAPACITY / 4) + 2).min(64);
    let dir_upper = upper.map_or_else(|| "+".to_string(), |u| format!("({u}0"));
    let key_upper = upper.map_or_else(|| "+".to_string(), |u| format!("({u}"));
    let dir_cmd = |pipe: &mut redis::Pipeline| {
        pipe.cmd("ZRANGE")
            .arg(&index.dir)
            .arg(&dir_upper)
            .arg("-")
            .arg("BYLEX")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(leaves);
    };
    for _ in 0..ATTEMPTS {
        let mut pipe = redis::pipe();
        dir_cmd(&mut pipe);
        let (members,): (Vec<String>,) = pipe.query_async(conn).await.map_err(unavailable)?;
        // The leaves to read, newest first, each with its lower bound (None: the first leaf).
        let mut run: Vec<(String, Option<&str>)> =
            members.iter().map(|m| (index.leaf(m), Some(m.split_once('/').map_or(m.as_str(), |(lb, _)| lb)))).collect();
        if members.len() < leaves {
            run.push((index.leaf(""), None));
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
        pipe.cmd("ZRANGE").arg(legacy).arg(&key_upper).arg("-").arg("BYLEX").arg("REV").arg("LIMIT").arg(0).arg(limit);
        dir_cmd(&mut pipe);
        let mut replies: Vec<Vec<String>> = pipe.query_async(conn).await.map_err(unavailable)?;
        let again = replies.pop().unwrap_or_default();
        if again != members {
            continue;
        }
        let old = replies.pop().unwrap_or_default();
        // The new index is complete down to `new_floor` (None: to the bottom).
        let mut keys: Vec<String> = Vec::new();
        let mut new_floor: Option<String> = None;
        for ((_, lower), leaf_keys) in run.iter().zip(replies) {
            keys.extend(leaf_keys);
            if keys.len() >= limit {
                keys.truncate(limit);
                new_floor = keys.last().cloned();
                break;
            }
            new_floor = lower.map(str::to_string);
        }
        let old_floor = (old.len() >= limit).then(|| old.last().cloned()).flatten();
        keys.extend(old);
        keys.sort_unstable_by(|a, b| b.cmp(a));
        keys.dedup();
        let floor = new_floor.max(old_floor);
        if let Some(floor) = &floor {
            keys.retain(|k| k >= floor);
        }
        keys.truncate(limit);
        let next = if keys.len() == limit { keys.last().cloned() } else { floor };
        return Ok(Range { keys, next });
    }
    Err(StoreError::Unavailable("the token index kept changing while being read".into()))
}

/// The directory of `index` as read, and every leaf it names (the first leaf first).
pub(super) async fn leaves(
    conn: &mut ConnectionManager,
    index: &IndexKeys,
) -> Result<(Vec<String>, Vec<String>), StoreError> {
    let members: Vec<String> =
        redis::cmd("ZRANGE").arg(&index.dir).arg(0).arg(-1).query_async(conn).await.map_err(unavailable)?;
    let mut leaves = vec![index.leaf("")];
    leaves.extend(members.iter().map(|m| index.leaf(m)));
    Ok((members, leaves))
}

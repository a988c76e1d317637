//! The previous format (every release up to the compact one: commit 0c67ecc and its successors,
//! whose JSON records later gained `limits`), read until it is migrated.
//!
//! | key                | type | content                                                         |
//! |--------------------|------|-----------------------------------------------------------------|
//! | `{p}:tok:<id>`     | hash | `rec` record JSON as created; `st` status; `lu` last used (Unix ms), `lf` last-used address |
//! | `{p}:idx`          | zset | every token's index key, all scores 0                          |
//! | `{p}:own:<owner>`  | zset | the same index keys, for one owner                             |
//!
//! The store reads both formats: a token not found in its record bucket is looked up in its old
//! hash, listings merge the old indexes, and the last-used script updates old hashes in place.
//! Every other change first moves the token to the new format (`lua/migrate.lua`, a
//! compare-and-set on the old hash), and `tokengate store migrate` moves all of them
//! ([`super::RedisStore::migrate`]). Retired ids, principals and the audit list kept their format.

use crate::clock::Timestamp;
use crate::store::StoreError;
use crate::token::{Token, TokenStatus};

use super::corrupt;

/// `HMGET rec st lu lf` of one old token hash, as stored.
pub(super) type Fields = (Option<String>, Option<String>, Option<String>, Option<String>);

/// The fields every read of an old token hash asks for.
pub(super) const FIELDS: [&str; 4] = ["rec", "st", "lu", "lf"];

/// The token an old hash holds, or `None` when there is none.
pub(super) fn token(fields: &Fields) -> Result<Option<Token>, StoreError> {
    let (Some(rec), Some(st), lu, lf) = fields else { return Ok(None) };
    let mut token: Token = serde_json::from_str(rec).map_err(corrupt)?;
    token.status = TokenStatus::parse(st).ok_or_else(|| corrupt(format!("status {st:?}")))?;
    token.last_used_at = lu.as_deref().map(|lu| lu.parse().map(Timestamp).map_err(corrupt)).transpose()?;
    token.last_used_from = lf.clone().filter(|s| !s.is_empty());
    Ok(Some(token))
}

/// How a migration went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Migration {
    /// Tokens moved to the current format.
    pub migrated: usize,
    /// Index entries of the old format without a token behind them, removed.
    pub dangling: usize,
    /// Principals written before the principal index existed, now indexed (listable).
    pub principals_indexed: usize,
}

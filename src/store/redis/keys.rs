//! Key names for one deployment's prefix (the schema is in the module docs of [`super`]).

use crate::store::Cursor;
use crate::token::TokenId;

/// How many leading characters of a token id name its record bucket (62² buckets).
const BUCKET_CHARS: usize = 2;

/// Key names for one prefix.
pub(super) struct Keys {
    pub(super) tag: String,
}

/// The keys of one paged index (see `super::paged`): its directory and how its leaves are named.
#[derive(Debug, Clone)]
pub(super) struct IndexKeys {
    pub(super) dir: String,
    leaf_prefix: String,
}

impl IndexKeys {
    /// The leaf a directory member (`<lower bound>/<name>`, see `super::paged`) points to; an
    /// empty member is the first leaf.
    pub(super) fn leaf(&self, member: &[u8]) -> String {
        let name = member.get(super::paged::MEMBER_LEN + 1..).map_or("0", |n| std::str::from_utf8(n).unwrap_or("0"));
        format!("{}{name}", self.leaf_prefix)
    }

    /// The leaf that a split caused by inserting the entry of `cursor` creates.
    pub(super) fn fresh_leaf(&self, cursor: &Cursor) -> String {
        format!("{}{cursor}", self.leaf_prefix)
    }
}

impl Keys {
    /// The hash holding the records of every token whose id starts like `id`.
    pub(super) fn bucket(&self, id: &TokenId) -> String {
        format!("{}{}", self.bucket_prefix(), &id.as_str()[..BUCKET_CHARS])
    }
    /// What every record bucket key starts with (the principal deletion script checks that each
    /// token it touches is in a declared bucket).
    pub(super) fn bucket_prefix(&self) -> String {
        format!("{}:t:", self.tag)
    }
    /// How many leading id characters name a bucket (the scripts take it as an argument).
    pub(super) fn bucket_chars(&self) -> usize {
        BUCKET_CHARS
    }
    /// The index of every token.
    pub(super) fn index(&self) -> IndexKeys {
        IndexKeys { dir: format!("{}:gd", self.tag), leaf_prefix: format!("{}:gl:", self.tag) }
    }
    /// The index of one owner's tokens. Leaf names never contain `:`, so no two owners' leaves
    /// share a key whatever `:` their ids contain.
    pub(super) fn owner_index(&self, owner: &str) -> IndexKeys {
        IndexKeys { dir: format!("{}:od:{owner}", self.tag), leaf_prefix: format!("{}:ol:{owner}:", self.tag) }
    }
    pub(super) fn retired(&self) -> String {
        format!("{}:retired", self.tag)
    }
    pub(super) fn principal(&self, id: &str) -> String {
        format!("{}:pr:{id}", self.tag)
    }
    /// Every principal's id (a sorted set, all scores 0, listed by id).
    pub(super) fn principal_index(&self) -> String {
        format!("{}:pi", self.tag)
    }
    /// What every principal key starts with (`tokengate store migrate` indexes them).
    pub(super) fn principal_prefix(&self) -> String {
        format!("{}:pr:", self.tag)
    }
    pub(super) fn group(&self, id: &str) -> String {
        format!("{}:gr:{id}", self.tag)
    }
    /// Every group's id (a sorted set, all scores 0, listed by id).
    pub(super) fn group_index(&self) -> String {
        format!("{}:gi", self.tag)
    }
    pub(super) fn audit(&self) -> String {
        format!("{}:audit", self.tag)
    }
    pub(super) fn channel(&self) -> String {
        format!("{}:inval", self.tag)
    }
    /// Written by the readiness check (expires after a minute).
    pub(super) fn probe(&self) -> String {
        format!("{}:probe", self.tag)
    }
    /// A token's rate-limit state and quota use (`take.lua`).
    pub(super) fn limiter(&self, id: &TokenId) -> String {
        format!("{}:lim:{id}", self.tag)
    }

    /// The previous release's token hash (read, migrated and then deleted; see `super::legacy`).
    pub(super) fn legacy_token(&self, id: &TokenId) -> String {
        format!("{}:tok:{id}", self.tag)
    }
    /// The previous release's global index.
    pub(super) fn legacy_index(&self) -> String {
        format!("{}:idx", self.tag)
    }
    /// The previous release's per-owner index.
    pub(super) fn legacy_owner_index(&self, owner: &str) -> String {
        format!("{}:own:{owner}", self.tag)
    }
}

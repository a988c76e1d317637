//! The token store: one trait, two backends, chosen by config.
//!
//! - [`embedded`]: a single-file transactional store (redb), the default when no Redis is
//!   configured; invalidation events are delivered in-process.
//! - [`redis`]: the production backend; atomic Lua scripts, lexicographic sorted-set indexes and
//!   a pub/sub invalidation channel that every replica's cache subscribes to.
//!
//! Both apply the lifecycle rules of [`crate::token`], append an audit event in the same atomic
//! step as each change, never reuse a token id, and pass one conformance suite
//! (`tests/conformance`). [`Issue`] mints and stores a token in one call.
//!
//! May use: `token` (the records it stores), `config` (its own section), `clock`. Never `auth`,
//! `proxy`, `admin` or `cli`.

pub mod embedded;
mod index;
pub mod redis;

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;
use tokio::sync::broadcast;

use crate::clock::Timestamp;
use crate::config::StoreConfig;
use crate::token::SecretToken;
use crate::token::TokenId;
use crate::token::digest::TokenDigest;
use crate::token::limits::{Grant, TokenLimits};
use crate::token::mint::{Minter, NewToken};
use crate::token::{Action, AuditEvent, DisplayStatus, Group, Principal, Token, TokenKind, TransitionError};

pub use index::Cursor;

/// Upper bound on the index entries one `list` call examines, whatever its filters; a page may
/// come back short (even empty) with a `next_cursor` to continue from.
pub const LIST_SCAN_BUDGET: usize = 1000;
/// Largest page a caller may ask for.
pub const MAX_PAGE: usize = 1000;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("token not found")]
    NotFound,
    #[error("token id already in use")]
    IdTaken,
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("only revoked tokens can be deleted (this one is {0})")]
    NotRevoked(&'static str),
    #[error("a revoked token cannot be rotated")]
    RotateRevoked,
    /// The token's secret is no longer the one the caller read: someone else rotated it first.
    #[error("the token was rotated by someone else meanwhile; read it again")]
    RotatedMeanwhile,
    #[error("invalid cursor")]
    InvalidCursor,
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

/// Behaviour switches the stores apply atomically with each change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Whether revoked tokens may be restored to active.
    pub allow_restore: bool,
    /// How many audit events are kept; older ones are dropped.
    pub audit_limit: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { allow_restore: false, audit_limit: 10_000 }
    }
}

/// A filter and page request for [`TokenStore::list`]. Results are newest first.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Only tokens of this owner (served from the per-owner index).
    pub owner: Option<String>,
    /// Case-insensitive substring of the name; give it lowercased (see [`ListQuery::name`]).
    pub name_contains: Option<String>,
    pub status: Option<DisplayStatus>,
    pub kind: Option<TokenKind>,
    pub limit: usize,
    pub cursor: Option<Cursor>,
    /// The time against which `expired` is judged.
    pub now: Timestamp,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            owner: None,
            name_contains: None,
            status: None,
            kind: None,
            limit: 50,
            cursor: None,
            now: Timestamp::now(),
        }
    }
}

impl ListQuery {
    /// Sets the name filter, lowercasing it once here rather than per record.
    pub fn name(mut self, needle: &str) -> Self {
        self.name_contains = Some(needle.to_lowercase());
        self
    }

    pub(crate) fn matches(&self, t: &Token) -> bool {
        self.kind.is_none_or(|k| k == t.kind)
            && self.status.is_none_or(|s| s == t.display_status(self.now))
            && self.owner.as_ref().is_none_or(|o| *o == t.owner)
            && self.name_contains.as_ref().is_none_or(|n| t.name.to_lowercase().contains(n.as_str()))
    }

    pub(crate) fn page_size(&self) -> usize {
        self.limit.clamp(1, MAX_PAGE)
    }
}

/// One page of a listing. `next_cursor` is set when more entries may follow.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub tokens: Vec<Token>,
    pub next_cursor: Option<Cursor>,
}

/// One page of principals or groups, ordered by id (bytewise). `next_cursor` (the last id on
/// this page) is set when more may follow; pass it as `after` to continue.
#[derive(Debug, Clone)]
pub struct IdPage<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Default for IdPage<T> {
    fn default() -> Self {
        Self { items: Vec::new(), next_cursor: None }
    }
}

/// One observed use of a token, written by the last-used recorder in batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastUse {
    pub id: TokenId,
    pub at: Timestamp,
    pub from: Option<IpAddr>,
}

/// A change that caches must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// A token was created, changed or deleted.
    Token(TokenId),
    /// A principal was created, changed or deleted (their personal tokens' access changes).
    Principal(String),
    /// Messages may have been missed (subscription (re)established, receiver lagged): drop
    /// everything cached.
    All,
}

impl Invalidation {
    /// Wire form on the Redis channel: `t:<id>` or `p:<principal id>`.
    pub fn encode(&self) -> String {
        match self {
            Self::Token(id) => format!("t:{id}"),
            Self::Principal(p) => format!("p:{p}"),
            Self::All => "*".to_string(),
        }
    }

    pub fn decode(s: &str) -> Option<Self> {
        match s.split_once(':') {
            Some(("t", id)) => TokenId::parse(id).map(Self::Token),
            Some(("p", p)) if !p.is_empty() => Some(Self::Principal(p.to_string())),
            _ if s == "*" => Some(Self::All),
            _ => None,
        }
    }
}

/// Storage for tokens, principals and the audit log.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// `"embedded"` or `"redis"`, for logs and metrics.
    fn backend(&self) -> &'static str;

    /// Checks that the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Inserts a new token; [`StoreError::IdTaken`] when the id exists or ever existed.
    async fn create(&self, token: &Token, actor: &str) -> Result<(), StoreError>;

    async fn get(&self, id: &TokenId) -> Result<Option<Token>, StoreError>;

    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError>;

    /// Applies a lifecycle action atomically and returns the token as it now is.
    async fn transition(&self, id: &TokenId, action: Action, actor: &str) -> Result<Token, StoreError>;

    /// Replaces the token's secret digest, compare-and-set: only while the stored digest is still
    /// `expected` (the one the caller read), otherwise [`StoreError::RotatedMeanwhile`], so of two
    /// concurrent rotations exactly one wins. The previous secret keeps working until
    /// `grace_until` (`None`: it stops at once). Refused for revoked tokens.
    async fn rotate(
        &self,
        id: &TokenId,
        expected: &TokenDigest,
        digest: &TokenDigest,
        grace_until: Option<Timestamp>,
        actor: &str,
    ) -> Result<Token, StoreError>;

    /// Replaces the token's limits, with an audit event and an invalidation, and returns the
    /// token as it now is. The secret and the status are untouched (a rotation running at the
    /// same time still compares the digest alone).
    async fn set_limits(&self, id: &TokenId, limits: &TokenLimits, actor: &str) -> Result<Token, StoreError>;

    /// Deletes a revoked token; its id is retired, never to be issued again.
    async fn delete(&self, id: &TokenId, actor: &str) -> Result<Token, StoreError>;

    /// Moves `last_used_at` forward (never back) for each use; unknown ids are skipped.
    /// Returns how many records moved.
    async fn record_last_used(&self, uses: &[LastUse]) -> Result<usize, StoreError>;

    async fn put_principal(&self, principal: &Principal) -> Result<(), StoreError>;

    async fn get_principal(&self, id: &str) -> Result<Option<Principal>, StoreError>;

    /// Deletes a principal and, in the same atomic step, revokes every personal token they own
    /// that is not revoked yet (one audit event and one invalidation each, by `actor`), so
    /// re-creating the id later brings none of them back. Organization tokens they created are
    /// untouched. Returns whether the principal existed; when it did not, nothing changes.
    async fn delete_principal(&self, id: &str, actor: &str) -> Result<bool, StoreError>;

    /// Up to `limit` (clamped to 1..=[`MAX_PAGE`]) principals with ids after `after`, ordered by
    /// id. Records written before this listing existed are listed once `tokengate store
    /// migrate` has indexed them (Redis; the embedded store needs nothing).
    async fn list_principals(&self, after: Option<&str>, limit: usize) -> Result<IdPage<Principal>, StoreError>;

    /// Creates or replaces a directory group (publishes no invalidation: the members'
    /// principals carry the group names, and they are put separately).
    async fn put_group(&self, group: &Group) -> Result<(), StoreError>;

    async fn get_group(&self, id: &str) -> Result<Option<Group>, StoreError>;

    /// Deletes a group record; returns whether it existed.
    async fn delete_group(&self, id: &str) -> Result<bool, StoreError>;

    /// Up to `limit` (clamped to 1..=[`MAX_PAGE`]) groups with ids after `after`, ordered by id.
    async fn list_groups(&self, after: Option<&str>, limit: usize) -> Result<IdPage<Group>, StoreError>;

    /// The newest `limit` audit events, newest first.
    async fn audit(&self, limit: usize) -> Result<Vec<AuditEvent>, StoreError>;

    /// Takes up to `n` permits for token `id` under its rate limit and quota (see
    /// [`crate::token::limits::Gcra`]), atomically for every replica sharing the store. The
    /// rate state lives until it no longer matters; quota use lives as long as the token.
    async fn take_permits(&self, id: &TokenId, limits: &TokenLimits, n: u32) -> Result<Grant, StoreError>;

    /// A receiver of invalidations from every writer sharing this store.
    fn invalidations(&self) -> broadcast::Receiver<Invalidation>;

    /// Whether the invalidation feed is currently connected.
    fn invalidations_connected(&self) -> bool;
}

/// How many fresh ids to try when the store reports one as taken (71 random bits make even one
/// retry vanishingly rare).
const ID_ATTEMPTS: usize = 3;

/// Minting and storing a token in one call: `minter.issue(store, &request)`.
#[async_trait]
pub trait Issue {
    /// Mints and stores a token, drawing a new id if the store reports a collision.
    async fn issue(&self, store: &dyn TokenStore, req: &NewToken) -> Result<(SecretToken, Token), StoreError>;
}

#[async_trait]
impl Issue for Minter {
    async fn issue(&self, store: &dyn TokenStore, req: &NewToken) -> Result<(SecretToken, Token), StoreError> {
        let mut attempt = 0;
        loop {
            let (secret, token) = self.mint(req, Timestamp::now());
            match store.create(&token, &req.created_by).await {
                Err(StoreError::IdTaken) if attempt + 1 < ID_ATTEMPTS => attempt += 1,
                Err(e) => return Err(e),
                Ok(()) => return Ok((secret, token)),
            }
        }
    }
}

/// A shared handle to whichever backend is configured.
pub type Store = Arc<dyn TokenStore>;

/// Opens the configured backend.
pub async fn open(config: &StoreConfig, options: StoreOptions) -> Result<Store, StoreError> {
    Ok(match config {
        StoreConfig::Embedded(c) => Arc::new(embedded::EmbeddedStore::open(&c.path, options).await?),
        StoreConfig::Redis(c) => Arc::new(redis::RedisStore::open(c, options)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidation_wire_form_round_trips() {
        let id = TokenId::parse("abcDEF012345").unwrap();
        for inv in [Invalidation::Token(id), Invalidation::Principal("alice@x".into()), Invalidation::All] {
            assert_eq!(Invalidation::decode(&inv.encode()), Some(inv));
        }
        for bad in ["", "t:short", "p:", "x:1", "t"] {
            assert_eq!(Invalidation::decode(bad), None, "{bad:?}");
        }
    }
}

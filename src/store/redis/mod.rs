//! The Redis backend, for production and for several replicas sharing one store.
//!
//! # Key schema
//!
//! Every key carries the hash tag `{<prefix>}` (default prefix `tokengate`), so all of one
//! deployment's keys live in one slot and the multi-key scripts below stay atomic on Redis
//! Cluster too. Every key a script touches is passed to it in `KEYS`.
//!
//! | key                          | type   | content                                                        |
//! |------------------------------|--------|----------------------------------------------------------------|
//! | `{p}:t:<c>`                  | hash   | token records whose id starts with the two characters `<c>`: field = token id, value = the compact binary record (`record`: status, last use, then MessagePack) |
//! | `{p}:gd`                     | zset   | directory of the global index: `<lower bound entry>/<leaf name>` per leaf but the first, all scores 0 |
//! | `{p}:gl:<leaf>`              | zset   | a leaf of the global index: up to 128 entries (created ms, 7 bytes big-endian, then the id), all scores 0, so a listpack; the first leaf is `{p}:gl:0`, the others are named after a cursor |
//! | `{p}:od:<owner>`             | zset   | directory of one owner's index                                  |
//! | `{p}:ol:<owner>:<leaf>`      | zset   | a leaf of one owner's index                                     |
//! | `{p}:retired`                | set    | ids of deleted tokens: never issued again                       |
//! | `{p}:pr:<principal id>`      | string | principal JSON                                                  |
//! | `{p}:pi`                     | zset   | every principal id, all scores 0 (listed by id); `tokengate store migrate` adds those written before it existed |
//! | `{p}:gr:<group id>`          | string | directory group JSON (SCIM)                                     |
//! | `{p}:gi`                     | zset   | every group id, all scores 0                                    |
//! | `{p}:audit`                  | list   | audit event JSON, newest first, trimmed to `audit.max_events`  |
//! | `{p}:inval` (pub/sub channel)| —      | `t:<token id>` or `p:<principal id>` after every change         |
//! | `{p}:probe`                  | string | readiness check's last write (Unix ms), expires after 60 s      |
//! | `{p}:lim:<id>`               | hash   | a limited token's rate state and quota use (`take.lua`)         |
//!
//! Redis holds 238 bytes per token at a million tokens (`./scripts/bench-load.sh --seed-only`;
//! the previous format took 845): a hash field of about 176 bytes with Redis's own overhead (the
//! record itself is about 100 bytes), 22 bytes in a listpack leaf of each of the two indexes, and
//! the leaves' and the capped audit list's share. The indexes are paged (`paged`): sorted sets of
//! at most 128 entries found through a directory, so they stay compact listpacks where one sorted
//! set per index costs about 110 bytes per entry as a skiplist. Records are bucketed by id into
//! hashes of a few hundred fields at a million tokens, rather than one key per token (a key costs
//! about 50 bytes more than a hash field) or one huge hash (a big key is slow to delete or to
//! move between Cluster nodes).
//!
//! Creation, transitions, rotation, deletion, last use and principal deletion (which revokes the
//! principal's personal tokens) are Lua scripts (`src/store/redis/lua/`, each prefixed with
//! `lib.lua`) that check, write, append the audit events and publish the invalidations in one
//! atomic step. Status and last use change in the record's fixed header; the scripts read a
//! token's kind, name and owner from the record's MessagePack head (`cmsgpack`).
//!
//! Data written by the previous release (one hash per token, two plain sorted sets) is still
//! read, and moved to this format token by token on its next change or all at once by
//! `tokengate store migrate` (`legacy`).
//!
//! How Redis is reached (one server, Sentinel or Cluster; TLS and ACL credentials) is in
//! `connect`: every connection is created lazily, so tokengate starts while Redis is down and
//! reconnects by itself. On Cluster the scripts publish with `SPUBLISH` (sharded pub/sub; the
//! channel shares the keys' slot). The invalidation subscription runs on its own connection in
//! a background task (`subscription`) that pings it, resubscribes after any failure and emits
//! [`Invalidation::All`] whenever messages may have been missed. `{p}:probe` is written by the
//! readiness check. Background tasks stop when the store is dropped.
//!
//! This file is one trait implementation (every store operation against the schema above) and
//! stays together for that reason; key naming is in `keys`, the record in `record`, the paged
//! indexes in `paged`, the previous format in `legacy`, connections in `connect` and `sentinel`,
//! the subscription in `subscription`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod connect;
mod keys;
mod legacy;
mod paged;
mod record;
mod sentinel;
mod subscription;

use connect::Link;
use keys::Keys;
use paged::LEAF_CAPACITY;
use subscription::subscribe_forever;

pub use legacy::Migration;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use redis::{AsyncCommands, Script, ScriptInvocation};
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::index::Cursor;
use super::{
    IdPage, Invalidation, LIST_SCAN_BUDGET, LastUse, ListQuery, MAX_PAGE, Page, StoreError, StoreOptions, TokenStore,
};
use crate::clock::Timestamp;
use crate::config::RedisConfig;
use crate::token::TokenId;
use crate::token::digest::TokenDigest;
use crate::token::limits::{Grant, TokenLimits};
use crate::token::{
    Action, AuditAction, AuditEvent, Group, PreviousSecret, Principal, Token, TokenStatus, TransitionError,
};

/// How often a body change is tried while other changes keep winning.
const BODY_ATTEMPTS: usize = 5;
/// Tokens per last-used script call.
const LAST_USED_CHUNK: usize = 500;
/// Old-format tokens migrated at once by [`RedisStore::migrate`].
const MIGRATE_CONCURRENCY: usize = 16;

/// A cheap-to-clone handle to the Redis store.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Link,
    keys: Keys,
    options: StoreOptions,
    /// `PUBLISH`, or `SPUBLISH` on Cluster (sharded pub/sub).
    publish: &'static str,
    events: broadcast::Sender<Invalidation>,
    connected: Arc<AtomicBool>,
    scripts: Scripts,
    _stop_subscription: DropGuard,
}

struct Scripts {
    create: Script,
    transition: Script,
    delete: Script,
    rotate: Script,
    last_used: Script,
    delete_principal: Script,
    migrate: Script,
    take: Script,
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// A script kept answering that a leaf split meanwhile (many concurrent writers).
fn busy() -> StoreError {
    StoreError::Unavailable("the token index kept changing; try again".into())
}

impl RedisStore {
    /// Creates the store without connecting: the first command connects, and the subscription
    /// task keeps retrying in the background. Must be called inside a tokio runtime.
    pub fn open(config: &RedisConfig, options: StoreOptions) -> Result<Self, StoreError> {
        let (conn, feed) = connect::open(config).map_err(unavailable)?;
        let keys = Keys { tag: format!("{{{}}}", config.key_prefix) };
        let (events, _) = broadcast::channel(1024);
        let connected = Arc::new(AtomicBool::new(false));
        let stop = CancellationToken::new();
        if let Link::Sentinel(link) = &conn {
            tokio::spawn(link.clone().watch(stop.clone()));
        }
        // On Cluster the channel is a sharded one: scripts publish with SPUBLISH.
        let publish = if matches!(conn, Link::Cluster(_)) { "SPUBLISH" } else { "PUBLISH" };
        tokio::spawn(subscribe_forever(
            feed,
            keys.channel(),
            keys.index().dir,
            events.clone(),
            connected.clone(),
            config.connect_timeout,
            stop.clone(),
        ));
        // Every script but `take` starts with the shared functions of `lua/lib.lua`.
        let script = |lib: &str, source: &str| {
            Script::new(&[lib, source].concat().replace("redis.call('PUBLISH'", &format!("redis.call('{publish}'")))
        };
        let lib = include_str!("lua/lib.lua");
        let scripts = Scripts {
            create: script(lib, include_str!("lua/create.lua")),
            transition: script(lib, include_str!("lua/transition.lua")),
            delete: script(lib, include_str!("lua/delete.lua")),
            rotate: script(lib, include_str!("lua/rotate.lua")),
            last_used: script(lib, include_str!("lua/last_used.lua")),
            delete_principal: script(lib, include_str!("lua/delete_principal.lua")),
            migrate: script(lib, include_str!("lua/migrate.lua")),
            take: script("", include_str!("lua/take.lua")),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                keys,
                options,
                publish,
                events,
                connected,
                scripts,
                _stop_subscription: stop.drop_guard(),
            }),
        })
    }

    fn conn(&self) -> Link {
        self.inner.conn.clone()
    }

    /// Reads tokens in either format, in order; `None` for those that do not exist.
    async fn fetch_many(&self, ids: &[TokenId]) -> Result<Vec<Option<Token>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let k = &self.inner.keys;
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGET").arg(k.bucket(id)).arg(id.as_str());
        }
        let records: Vec<Option<Vec<u8>>> = pipe.query_async(&mut self.conn()).await.map_err(unavailable)?;
        let mut tokens = ids
            .iter()
            .zip(&records)
            .map(|(id, r)| r.as_deref().map(|r| record::decode(*id, r).map_err(corrupt)).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        // Tokens not found may still be in the previous release's format.
        let missing: Vec<usize> = (0..ids.len()).filter(|&i| tokens[i].is_none()).collect();
        if !missing.is_empty() {
            let mut pipe = redis::pipe();
            for &i in &missing {
                pipe.cmd("HMGET").arg(k.legacy_token(&ids[i])).arg(&legacy::FIELDS);
            }
            let rows: Vec<legacy::Fields> = pipe.query_async(&mut self.conn()).await.map_err(unavailable)?;
            for (i, fields) in missing.into_iter().zip(rows) {
                tokens[i] = legacy::token(&fields)?;
            }
        }
        Ok(tokens)
    }

    /// Runs the create or delete script: appends the arguments both end with (the audit limit
    /// and the invalidation channel).
    async fn run_indexed<T: redis::FromRedisValue>(&self, mut call: ScriptInvocation<'_>) -> Result<T, StoreError> {
        call.arg(self.inner.options.audit_limit).arg(self.inner.keys.channel());
        call.invoke_async(&mut self.conn()).await.map_err(unavailable)
    }

    /// Runs a script that changes one token: appends the arguments such scripts end with (the
    /// audit limit, the invalidation channel and the token's invalidation message).
    async fn run_token_change(&self, mut call: ScriptInvocation<'_>, id: &TokenId) -> Result<Vec<String>, StoreError> {
        call.arg(self.inner.options.audit_limit).arg(self.inner.keys.channel()).arg(Invalidation::Token(*id).encode());
        call.invoke_async(&mut self.conn()).await.map_err(unavailable)
    }

    /// Rewrites token `id`'s body (everything but status and last use) with `change`, compare-
    /// and-set: the script writes it only if the stored body is still the one read. When another
    /// change won meanwhile, the token is read again and `change` decides again (a rotation
    /// refuses once the digest it expected is gone; limits are simply applied again).
    async fn change_body(
        &self,
        id: &TokenId,
        actor: &str,
        action: AuditAction,
        change: impl Fn(&mut Token) -> Result<(), StoreError>,
    ) -> Result<Token, StoreError> {
        let k = &self.inner.keys;
        let mut migrated = false;
        for _ in 0..BODY_ATTEMPTS {
            let stored: Option<Vec<u8>> = self.conn().hget(k.bucket(id), id.as_str()).await.map_err(unavailable)?;
            let Some(stored) = stored else {
                // A token of the previous release's format moves first, once.
                if !migrated && self.migrate_token(id).await? {
                    migrated = true;
                    continue;
                }
                return Err(StoreError::NotFound);
            };
            let mut token = record::decode(*id, &stored).map_err(corrupt)?;
            change(&mut token)?;
            let event = serde_json::to_string(&AuditEvent::now(&token, actor, action)).expect("event serializes");
            let mut call = self.inner.scripts.rotate.prepare_invoke();
            call.key(k.bucket(id))
                .key(k.audit())
                .arg(id.as_str())
                .arg(record::body(&stored).map_err(corrupt)?)
                .arg(record::encode_body(&token))
                .arg(event);
            let outcome = self.run_token_change(call, id).await?;
            match outcome.first().map(String::as_str) {
                Some("ok") => return self.get(id).await?.ok_or(StoreError::NotFound),
                Some("missing") => return Err(StoreError::NotFound),
                // Revoked meanwhile, or changed meanwhile: `change` decides on the fresh record.
                Some("revoked" | "changed") => continue,
                _ => return Err(corrupt(format!("body script answered {outcome:?}"))),
            }
        }
        Err(StoreError::Unavailable("the token kept changing meanwhile; try again".into()))
    }

    /// The audit event JSON for `action` on `id`, without its closing brace, token name and owner
    /// (the scripts append those from the stored record) and, when `id` is `None`, without the
    /// token id (the principal deletion script appends it per token).
    fn event_head(id: Option<&TokenId>, actor: &str, action: AuditAction) -> String {
        #[derive(serde::Serialize)]
        struct Head<'a> {
            at: Timestamp,
            actor: &'a str,
            action: AuditAction,
            #[serde(skip_serializing_if = "Option::is_none")]
            token_id: Option<&'a TokenId>,
        }
        let mut json = serde_json::to_string(&Head { at: Timestamp::now(), actor, action, token_id: id })
            .expect("audit head serializes");
        json.pop();
        json
    }

    /// Moves one token of the previous release's format to the current one (a compare-and-set
    /// on its old hash). Returns whether there was such a token.
    async fn migrate_token(&self, id: &TokenId) -> Result<bool, StoreError> {
        let k = &self.inner.keys;
        for _ in 0..paged::ATTEMPTS {
            let fields: legacy::Fields = redis::cmd("HMGET")
                .arg(k.legacy_token(id))
                .arg(&legacy::FIELDS)
                .query_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            let Some(token) = legacy::token(&fields)? else { return Ok(false) };
            let cursor = Cursor::new(token.created_at, id);
            let key = paged::member(&cursor);
            let (global, owner) = (k.index(), k.owner_index(&token.owner));
            let leaves = paged::resolve(&mut self.conn(), &[&global, &owner], &key).await?;
            let mut call = self.inner.scripts.migrate.prepare_invoke();
            call.key(k.legacy_token(id))
                .key(k.legacy_index())
                .key(k.legacy_owner_index(&token.owner))
                .key(k.bucket(id))
                .key(&global.dir)
                .key(global.leaf(&leaves[0]))
                .key(global.fresh_leaf(&cursor))
                .key(&owner.dir)
                .key(owner.leaf(&leaves[1]))
                .key(owner.fresh_leaf(&cursor));
            let (rec, st, lu, lf) = fields;
            call.arg(id.as_str()).arg(cursor.as_str());
            for field in [rec, st, lu, lf] {
                call.arg(field.unwrap_or_default());
            }
            call.arg(record::encode(&token)).arg(&leaves[0]).arg(&leaves[1]).arg(LEAF_CAPACITY).arg(&key);
            let outcome: Vec<String> = call.invoke_async(&mut self.conn()).await.map_err(unavailable)?;
            match outcome.first().map(String::as_str) {
                Some("ok") => return Ok(true),
                Some("missing") => return Ok(false),
                Some("changed" | "moved") => continue,
                _ => return Err(corrupt(format!("migrate script answered {outcome:?}"))),
            }
        }
        Err(busy())
    }

    /// Migrates the old-format tokens listed in `index` (the previous release's global or owner
    /// index) until it is empty; entries without a token behind them are removed.
    async fn migrate_index(&self, index: &str) -> Result<Migration, StoreError> {
        let mut done = Migration::default();
        loop {
            let members: Vec<String> = self.conn().zrange(index, 0, 199).await.map_err(unavailable)?;
            if members.is_empty() {
                return Ok(done);
            }
            let outcomes: Vec<(String, bool)> = futures_util::stream::iter(members)
                .map(|member| async move {
                    let found = match Cursor::parse(&member) {
                        Some(cursor) => self.migrate_token(&cursor.id()).await?,
                        None => false,
                    };
                    Ok::<_, StoreError>((member, found))
                })
                .buffer_unordered(MIGRATE_CONCURRENCY)
                .try_collect()
                .await?;
            for (member, found) in outcomes {
                if found {
                    done.migrated += 1;
                } else {
                    // Nothing left to migrate behind this entry (or it was migrated meanwhile and
                    // the script already removed it).
                    let removed: usize = self.conn().zrem(index, &member).await.map_err(unavailable)?;
                    done.dangling += removed;
                }
            }
        }
    }

    /// Moves every token of the previous release's format to the current one and indexes
    /// principals written before the principal index existed (`tokengate store migrate`). Safe
    /// to run while tokengate serves, and again: it continues where it stopped.
    pub async fn migrate(&self) -> Result<Migration, StoreError> {
        let mut done = self.migrate_index(&self.inner.keys.legacy_index()).await?;
        done.principals_indexed = self.index_principals().await?;
        Ok(done)
    }

    /// Adds every principal key to the principal index (`SCAN` on the node that owns the
    /// deployment's slot); returns how many were not indexed yet.
    async fn index_principals(&self) -> Result<usize, StoreError> {
        let k = &self.inner.keys;
        let prefix = k.principal_prefix();
        // The glob must match the prefix literally: escape glob characters in it.
        let mut pattern = String::new();
        for c in prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        let route = match &self.inner.conn {
            Link::Cluster(_) => {
                let slot: u16 = redis::cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(&prefix)
                    .query_async(&mut self.conn())
                    .await
                    .map_err(unavailable)?;
                Some(slot)
            }
            _ => None,
        };
        let mut cursor: u64 = 0;
        let mut added = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000);
            let (next, keys): (u64, Vec<String>) = match (route, &self.inner.conn) {
                (Some(slot), Link::Cluster(c)) => {
                    use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                        slot,
                        SlotAddr::Master,
                    )));
                    let v = c.clone().route_command(scan, routing).await.map_err(unavailable)?;
                    redis::from_redis_value(v).map_err(|e| corrupt(format!("SCAN reply: {e}")))?
                }
                _ => scan.query_async(&mut self.conn()).await.map_err(unavailable)?,
            };
            let ids: Vec<&str> = keys.iter().filter_map(|key| key.strip_prefix(&prefix)).collect();
            if !ids.is_empty() {
                let members: Vec<(u8, &str)> = ids.iter().map(|id| (0, *id)).collect();
                let n: usize = self.conn().zadd_multiple(k.principal_index(), &members).await.map_err(unavailable)?;
                added += n;
            }
            if next == 0 {
                return Ok(added);
            }
            cursor = next;
        }
    }

    /// One page of a by-id listing: ids from the sorted set `index` after `after`, then their
    /// records (`key(id)`); ids whose record is gone are skipped.
    async fn page<T: serde::de::DeserializeOwned>(
        &self,
        index: &str,
        after: Option<&str>,
        limit: usize,
        key: impl Fn(&str) -> String,
    ) -> Result<IdPage<T>, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let min = after.map_or_else(|| "-".to_string(), |a| format!("({a}"));
        let mut ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(index)
            .arg(&min)
            .arg("+")
            .arg("BYLEX")
            .arg("LIMIT")
            .arg(0)
            .arg(limit + 1)
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        let more = ids.len() > limit;
        ids.truncate(limit);
        let mut page = IdPage { items: Vec::new(), next_cursor: more.then(|| ids.last().cloned()).flatten() };
        if ids.is_empty() {
            return Ok(page);
        }
        let keys: Vec<String> = ids.iter().map(|id| key(id)).collect();
        let mut get = redis::cmd("MGET");
        get.arg(&keys);
        let values: Vec<Option<String>> = get.query_async(&mut self.conn()).await.map_err(unavailable)?;
        for v in values.into_iter().flatten() {
            page.items.push(serde_json::from_str(&v).map_err(corrupt)?);
        }
        Ok(page)
    }
}

#[async_trait]
impl TokenStore for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // A write to the deployment's slot: it fails on a replica (READONLY), on a Cluster node
        // that does not own the slot (MOVED, when a plain URL points at one) and without write
        // permission, all of which a PING would miss.
        redis::cmd("SET")
            .arg(self.inner.keys.probe())
            .arg(Timestamp::now().millis())
            .arg("PX")
            .arg(60_000)
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn create(&self, token: &Token, actor: &str) -> Result<(), StoreError> {
        let k = &self.inner.keys;
        let cursor = Cursor::new(token.created_at, &token.id);
        let key = paged::member(&cursor);
        let record = record::encode(token);
        let event =
            serde_json::to_string(&AuditEvent::now(token, actor, AuditAction::Create)).expect("event serializes");
        let (global, owner) = (k.index(), k.owner_index(&token.owner));
        for _ in 0..paged::ATTEMPTS {
            let leaves = paged::resolve(&mut self.conn(), &[&global, &owner], &key).await?;
            let mut call = self.inner.scripts.create.prepare_invoke();
            call.key(k.bucket(&token.id))
                .key(k.retired())
                .key(k.audit())
                .key(k.legacy_token(&token.id))
                .key(&global.dir)
                .key(global.leaf(&leaves[0]))
                .key(global.fresh_leaf(&cursor))
                .key(&owner.dir)
                .key(owner.leaf(&leaves[1]))
                .key(owner.fresh_leaf(&cursor));
            call.arg(token.id.as_str())
                .arg(&record)
                .arg(&key)
                .arg(cursor.as_str())
                .arg(&leaves[0])
                .arg(&leaves[1])
                .arg(&event)
                .arg(LEAF_CAPACITY);
            match self.run_indexed::<i64>(call).await? {
                1 => return Ok(()),
                0 => return Err(StoreError::IdTaken),
                _ => continue,
            }
        }
        Err(busy())
    }

    async fn get(&self, id: &TokenId) -> Result<Option<Token>, StoreError> {
        // Both formats in one round trip: the lookup of a token not yet migrated costs no more.
        let k = &self.inner.keys;
        let (record, fields): (Option<Vec<u8>>, legacy::Fields) = redis::pipe()
            .cmd("HGET")
            .arg(k.bucket(id))
            .arg(id.as_str())
            .cmd("HMGET")
            .arg(k.legacy_token(id))
            .arg(&legacy::FIELDS)
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        match record {
            Some(r) => record::decode(*id, &r).map(Some).map_err(corrupt),
            None => legacy::token(&fields),
        }
    }

    async fn list(&self, q: &ListQuery) -> Result<Page, StoreError> {
        let k = &self.inner.keys;
        let (index, legacy) = match &q.owner {
            Some(owner) => (k.owner_index(owner), k.legacy_owner_index(owner)),
            None => (k.index(), k.legacy_index()),
        };
        let limit = q.page_size();
        let mut page = Page::default();
        let mut upper = q.cursor;
        let mut scanned = 0;
        while scanned < LIST_SCAN_BUDGET {
            let batch = (LIST_SCAN_BUDGET - scanned).min(limit.max(100));
            let range = paged::range(&mut self.conn(), &index, &legacy, upper, batch).await?;
            let cursors = range.cursors;
            let ids: Vec<TokenId> = cursors.iter().map(Cursor::id).collect();
            let tokens = self.fetch_many(&ids).await?;
            for (cursor, token) in cursors.iter().zip(tokens) {
                scanned += 1;
                if let Some(token) = token.filter(|t| q.matches(t)) {
                    page.tokens.push(token);
                }
                if page.tokens.len() == limit || scanned == LIST_SCAN_BUDGET {
                    page.next_cursor = Some(*cursor);
                    return Ok(page);
                }
            }
            match range.next {
                Some(next) => upper = Some(next),
                None => return Ok(page),
            }
        }
        Ok(page)
    }

    async fn transition(&self, id: &TokenId, action: Action, actor: &str) -> Result<Token, StoreError> {
        if action == Action::Restore && !self.inner.options.allow_restore {
            return Err(TransitionError::RestoreDisabled.into());
        }
        let k = &self.inner.keys;
        let sources: String = action.sources().iter().map(|s| record::status_code(*s)).collect();
        for first in [true, false] {
            let mut call = self.inner.scripts.transition.prepare_invoke();
            call.key(k.bucket(id))
                .key(k.audit())
                .arg(id.as_str())
                .arg(record::status_code(action.target()))
                .arg(&sources)
                .arg(Self::event_head(Some(id), actor, action.into()));
            let outcome = self.run_token_change(call, id).await?;
            match outcome.first().map(String::as_str) {
                Some("ok" | "same") => return self.get(id).await?.ok_or(StoreError::NotFound),
                Some("missing") if first && self.migrate_token(id).await? => continue,
                Some("missing") => return Err(StoreError::NotFound),
                Some("conflict") => {
                    let from =
                        outcome.get(1).and_then(|s| record::status_from_code(s)).ok_or_else(|| corrupt("status"))?;
                    return Err(action.apply(from).expect_err("the script refused this transition").into());
                }
                _ => return Err(corrupt(format!("transition script answered {outcome:?}"))),
            }
        }
        Err(StoreError::NotFound)
    }

    async fn rotate(
        &self,
        id: &TokenId,
        expected: &TokenDigest,
        digest: &TokenDigest,
        grace_until: Option<Timestamp>,
        actor: &str,
    ) -> Result<Token, StoreError> {
        self.change_body(id, actor, AuditAction::Rotate, |token| {
            if token.status == TokenStatus::Revoked {
                return Err(StoreError::RotateRevoked);
            }
            // The digest the caller read must still be there: of two rotations, one wins.
            if !token.digest.matches(expected) {
                return Err(StoreError::RotatedMeanwhile);
            }
            token.previous = grace_until.map(|valid_until| PreviousSecret { digest: token.digest, valid_until });
            token.digest = *digest;
            Ok(())
        })
        .await
    }

    async fn set_limits(&self, id: &TokenId, limits: &TokenLimits, actor: &str) -> Result<Token, StoreError> {
        self.change_body(id, actor, AuditAction::Limits, |token| {
            if token.status == TokenStatus::Revoked {
                return Err(TransitionError::Conflict { action: "change the limits of", from: "revoked" }.into());
            }
            token.limits = limits.clone();
            Ok(())
        })
        .await
    }

    async fn delete(&self, id: &TokenId, actor: &str) -> Result<Token, StoreError> {
        let token = self.get(id).await?.ok_or(StoreError::NotFound)?;
        if token.status != TokenStatus::Revoked {
            return Err(StoreError::NotRevoked(token.status.as_str()));
        }
        // A token of the previous release's format moves first (no-op otherwise).
        self.migrate_token(id).await?;
        let k = &self.inner.keys;
        let key = paged::member(&Cursor::new(token.created_at, id));
        let event =
            serde_json::to_string(&AuditEvent::now(&token, actor, AuditAction::Delete)).expect("event serializes");
        let (global, owner) = (k.index(), k.owner_index(&token.owner));
        for _ in 0..paged::ATTEMPTS {
            let leaves = paged::resolve(&mut self.conn(), &[&global, &owner], &key).await?;
            let mut call = self.inner.scripts.delete.prepare_invoke();
            call.key(k.bucket(id))
                .key(k.retired())
                .key(k.audit())
                .key(&global.dir)
                .key(global.leaf(&leaves[0]))
                .key(&owner.dir)
                .key(owner.leaf(&leaves[1]))
                .key(k.limiter(id));
            call.arg(id.as_str()).arg(&key).arg(&leaves[0]).arg(&leaves[1]).arg(&event);
            let outcome: Vec<String> = self.run_indexed(call).await?;
            return match outcome.first().map(String::as_str) {
                Some("ok") => Ok(token),
                Some("missing") => Err(StoreError::NotFound),
                Some("conflict") => {
                    let st =
                        outcome.get(1).and_then(|s| record::status_from_code(s)).ok_or_else(|| corrupt("status"))?;
                    Err(StoreError::NotRevoked(st.as_str()))
                }
                Some("moved") => continue,
                _ => Err(corrupt(format!("delete script answered {outcome:?}"))),
            };
        }
        Err(busy())
    }

    async fn record_last_used(&self, uses: &[LastUse]) -> Result<usize, StoreError> {
        let k = &self.inner.keys;
        let mut moved = 0;
        for chunk in uses.chunks(LAST_USED_CHUNK) {
            // Each bucket once in KEYS; every use names its bucket's position.
            let mut buckets: BTreeMap<String, usize> = BTreeMap::new();
            let positions: Vec<usize> = chunk
                .iter()
                .map(|u| {
                    let next = buckets.len() + 1;
                    *buckets.entry(k.bucket(&u.id)).or_insert(next)
                })
                .collect();
            let mut ordered: Vec<(&String, &usize)> = buckets.iter().collect();
            ordered.sort_by_key(|(_, position)| **position);
            let mut call = self.inner.scripts.last_used.prepare_invoke();
            for (bucket, _) in &ordered {
                call.key(bucket.as_str());
            }
            for u in chunk {
                call.key(k.legacy_token(&u.id));
            }
            call.arg(ordered.len());
            for (u, position) in chunk.iter().zip(positions) {
                call.arg(position)
                    .arg(u.id.as_str())
                    .arg(u.at.millis().min(record::MAX_MILLIS))
                    .arg(u.from.map(|ip| ip.to_string()).unwrap_or_default());
            }
            let n: usize = call.invoke_async(&mut self.conn()).await.map_err(unavailable)?;
            moved += n;
        }
        Ok(moved)
    }

    async fn put_principal(&self, principal: &Principal) -> Result<(), StoreError> {
        let json = serde_json::to_string(principal).expect("principal serializes");
        redis::pipe()
            .atomic()
            .set(self.inner.keys.principal(&principal.id), json)
            .ignore()
            .zadd(self.inner.keys.principal_index(), &principal.id, 0)
            .ignore()
            .cmd(self.inner.publish)
            .arg(self.inner.keys.channel())
            .arg(Invalidation::Principal(principal.id.clone()).encode())
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn get_principal(&self, id: &str) -> Result<Option<Principal>, StoreError> {
        let json: Option<String> = self.conn().get(self.inner.keys.principal(id)).await.map_err(unavailable)?;
        json.map(|j| serde_json::from_str(&j).map_err(corrupt)).transpose()
    }

    async fn delete_principal(&self, id: &str, actor: &str) -> Result<bool, StoreError> {
        let k = &self.inner.keys;
        let index = k.owner_index(id);
        for _ in 0..paged::ATTEMPTS {
            // The principal's tokens of the previous release's format move first; the script
            // answers -1 if any are left (written meanwhile by an older replica).
            self.migrate_index(&k.legacy_owner_index(id)).await?;
            let (directory, leaves) = paged::leaves(&mut self.conn(), &index).await?;
            let mut pipe = redis::pipe();
            for leaf in &leaves {
                pipe.cmd("ZRANGE").arg(leaf).arg(0).arg(-1);
            }
            let members: Vec<Vec<Vec<u8>>> = pipe.query_async(&mut self.conn()).await.map_err(unavailable)?;
            let mut buckets = members
                .iter()
                .flatten()
                .map(|m| paged::cursor(m).map(|c| k.bucket(&c.id())).ok_or_else(|| corrupt("malformed index entry")))
                .collect::<Result<Vec<String>, _>>()?;
            buckets.sort_unstable();
            buckets.dedup();
            let mut call = self.inner.scripts.delete_principal.prepare_invoke();
            call.key(k.principal(id))
                .key(k.audit())
                .key(&index.dir)
                .key(k.legacy_owner_index(id))
                .key(k.principal_index());
            for key in leaves.iter().chain(&buckets) {
                call.key(key.as_str());
            }
            call.arg(id)
                .arg(Self::event_head(None, actor, AuditAction::Revoke))
                .arg(self.inner.options.audit_limit)
                .arg(k.channel())
                .arg(leaves.len())
                .arg(directory.join(&b","[..]))
                .arg(k.bucket_prefix())
                .arg(k.bucket_chars());
            let outcome: i64 = call.invoke_async(&mut self.conn()).await.map_err(unavailable)?;
            match outcome {
                1 => return Ok(true),
                0 => return Ok(false),
                _ => continue,
            }
        }
        Err(busy())
    }

    async fn list_principals(&self, after: Option<&str>, limit: usize) -> Result<IdPage<Principal>, StoreError> {
        let k = &self.inner.keys;
        self.page(&k.principal_index(), after, limit, |id| k.principal(id)).await
    }

    async fn put_group(&self, group: &Group) -> Result<(), StoreError> {
        let json = serde_json::to_string(group).expect("group serializes");
        let k = &self.inner.keys;
        redis::pipe()
            .atomic()
            .set(k.group(&group.id), json)
            .ignore()
            .zadd(k.group_index(), &group.id, 0)
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn get_group(&self, id: &str) -> Result<Option<Group>, StoreError> {
        let json: Option<String> = self.conn().get(self.inner.keys.group(id)).await.map_err(unavailable)?;
        json.map(|j| serde_json::from_str(&j).map_err(corrupt)).transpose()
    }

    async fn delete_group(&self, id: &str) -> Result<bool, StoreError> {
        let k = &self.inner.keys;
        let (deleted, _): (usize, usize) = redis::pipe()
            .atomic()
            .del(k.group(id))
            .zrem(k.group_index(), id)
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(deleted == 1)
    }

    async fn list_groups(&self, after: Option<&str>, limit: usize) -> Result<IdPage<Group>, StoreError> {
        let k = &self.inner.keys;
        self.page(&k.group_index(), after, limit, |id| k.group(id)).await
    }

    async fn audit(&self, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<String> =
            self.conn().lrange(self.inner.keys.audit(), 0, limit as isize - 1).await.map_err(unavailable)?;
        rows.iter().map(|r| serde_json::from_str(r).map_err(corrupt)).collect()
    }

    fn invalidations(&self) -> broadcast::Receiver<Invalidation> {
        self.inner.events.subscribe()
    }

    fn invalidations_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Relaxed)
    }

    async fn take_permits(&self, id: &TokenId, limits: &TokenLimits, n: u32) -> Result<Grant, StoreError> {
        let (interval, burst) = limits.rate.map_or((0, 0), |r| (r.gcra().interval_us, r.burst()));
        let (granted, retry_us, remaining, exhausted): (u32, u64, u32, u8) = self
            .inner
            .scripts
            .take
            .key(self.inner.keys.limiter(id))
            .arg(interval)
            .arg(burst)
            .arg(n)
            .arg(limits.quota.unwrap_or(0))
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(Grant {
            granted,
            retry_after: std::time::Duration::from_micros(retry_us),
            remaining,
            quota_exhausted: exhausted == 1,
        })
    }
}

//! The Redis backend, for production and for several replicas sharing one store.
//!
//! # Key schema
//!
//! Every key carries the hash tag `{<prefix>}` (default prefix `tokengate`), so all of one
//! deployment's keys live in one slot and the multi-key scripts below stay atomic on Redis
//! Cluster too.
//!
//! | key                          | type   | content                                                        |
//! |------------------------------|--------|----------------------------------------------------------------|
//! | `{p}:tok:<id>`               | hash   | `rec` record JSON as created; `st` status; `lu` last used (Unix ms), `lf` last-used client address |
//! | `{p}:idx`                    | zset   | every token's index key (`<created ms, 15 digits><id>`), all scores 0, walked with `ZRANGE … BYLEX REV` |
//! | `{p}:own:<owner>`            | zset   | the same index keys, for one owner                             |
//! | `{p}:retired`                | set    | ids of deleted tokens: never issued again                       |
//! | `{p}:pr:<principal id>`      | string | principal JSON                                                  |
//! | `{p}:audit`                  | list   | audit event JSON, newest first, trimmed to `audit.max_events`  |
//! | `{p}:inval` (pub/sub channel)| —      | `t:<token id>` or `p:<principal id>` after every change         |
//! | `{p}:probe`                  | string | readiness check's last write (Unix ms), expires after 60 s      |
//!
//! `st`, `lu` and `lf` take precedence over the same fields inside `rec`. Creation, transitions,
//! rotation, deletion and principal deletion (which revokes the principal's personal tokens,
//! walking `own:<id>`) are Lua scripts (`src/store/redis/lua/`) that check, write, append the audit
//! events and publish the invalidations in one atomic step.
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
//! stays together for that reason; key naming is in `keys`, connections in `connect` and
//! `sentinel`, the subscription in `subscription`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod connect;
mod keys;
mod sentinel;
mod subscription;

use connect::Link;
use keys::Keys;
use subscription::subscribe_forever;

use async_trait::async_trait;
use redis::{AsyncCommands, Script, ScriptInvocation};
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::index::Cursor;
use super::{Invalidation, LIST_SCAN_BUDGET, LastUse, ListQuery, Page, StoreError, StoreOptions, TokenStore};
use crate::clock::Timestamp;
use crate::config::RedisConfig;
use crate::token::TokenId;
use crate::token::digest::TokenDigest;
use crate::token::limits::{Grant, TokenLimits};
use crate::token::{Action, AuditAction, AuditEvent, PreviousSecret, Principal, Token, TokenStatus, TransitionError};

/// Tokens per last-used script call.
const LAST_USED_CHUNK: usize = 500;

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
    take: Script,
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
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
            keys.index(),
            events.clone(),
            connected.clone(),
            config.connect_timeout,
            stop.clone(),
        ));
        let script =
            |source: &str| Script::new(&source.replace("redis.call('PUBLISH'", &format!("redis.call('{publish}'")));
        let scripts = Scripts {
            create: script(include_str!("lua/create.lua")),
            transition: script(include_str!("lua/transition.lua")),
            delete: script(include_str!("lua/delete.lua")),
            rotate: script(include_str!("lua/rotate.lua")),
            last_used: script(include_str!("lua/last_used.lua")),
            delete_principal: script(include_str!("lua/delete_principal.lua")),
            take: script(include_str!("lua/take.lua")),
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

    async fn fetch_many(&self, ids: &[TokenId]) -> Result<Vec<Option<Token>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HMGET").arg(self.inner.keys.token(id)).arg(&["rec", "st", "lu", "lf"]);
        }
        let rows: Vec<TokenFields> = pipe.query_async(&mut self.conn()).await.map_err(unavailable)?;
        rows.into_iter().map(token_from_fields).collect()
    }

    /// A call of the create or delete script with the keys both take, in their KEYS order:
    /// token hash, global index, owner index, retired ids, audit list.
    fn indexed_call<'a>(&self, script: &'a Script, id: &TokenId, owner: &str) -> ScriptInvocation<'a> {
        let k = &self.inner.keys;
        let mut call = script.prepare_invoke();
        call.key(k.token(id)).key(k.index()).key(k.owner_index(owner)).key(k.retired()).key(k.audit());
        call
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
}

/// `HMGET rec st lu lf` of one token hash.
type TokenFields = (Option<String>, Option<String>, Option<u64>, Option<String>);

fn token_from_fields(fields: TokenFields) -> Result<Option<Token>, StoreError> {
    let (Some(rec), Some(st), lu, lf) = fields else { return Ok(None) };
    let mut token: Token = serde_json::from_str(&rec).map_err(corrupt)?;
    token.status = TokenStatus::parse(&st).ok_or_else(|| corrupt(format!("status {st:?}")))?;
    token.last_used_at = lu.map(Timestamp);
    token.last_used_from = lf.filter(|s| !s.is_empty());
    Ok(Some(token))
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
        let index_key = Cursor::new(token.created_at, &token.id);
        let record = serde_json::to_string(token).expect("token serializes");
        let event =
            serde_json::to_string(&AuditEvent::now(token, actor, AuditAction::Create)).expect("event serializes");
        let mut call = self.indexed_call(&self.inner.scripts.create, &token.id, &token.owner);
        call.arg(token.id.as_str()).arg(record).arg(token.status.as_str()).arg(index_key.as_str()).arg(event);
        let created: i64 = self.run_indexed(call).await?;
        if created == 1 { Ok(()) } else { Err(StoreError::IdTaken) }
    }

    async fn get(&self, id: &TokenId) -> Result<Option<Token>, StoreError> {
        let fields: TokenFields = redis::cmd("HMGET")
            .arg(self.inner.keys.token(id))
            .arg(&["rec", "st", "lu", "lf"])
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        token_from_fields(fields)
    }

    async fn list(&self, q: &ListQuery) -> Result<Page, StoreError> {
        let index = match &q.owner {
            Some(owner) => self.inner.keys.owner_index(owner),
            None => self.inner.keys.index(),
        };
        let limit = q.page_size();
        let mut page = Page::default();
        let mut upper = q.cursor.map_or_else(|| "+".to_string(), |c| format!("({c}"));
        let mut scanned = 0;
        while scanned < LIST_SCAN_BUDGET {
            let batch = (LIST_SCAN_BUDGET - scanned).min(limit.max(100));
            let members: Vec<String> = redis::cmd("ZRANGE")
                .arg(&index)
                .arg(&upper)
                .arg("-")
                .arg("BYLEX")
                .arg("REV")
                .arg("LIMIT")
                .arg(0)
                .arg(batch)
                .query_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            let cursors = members
                .iter()
                .map(|m| Cursor::parse(m).ok_or_else(|| corrupt(format!("index member {m:?}"))))
                .collect::<Result<Vec<_>, _>>()?;
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
            match cursors.last() {
                Some(last) if cursors.len() == batch => upper = format!("({last}"),
                _ => return Ok(page),
            }
        }
        Ok(page)
    }

    async fn transition(&self, id: &TokenId, action: Action, actor: &str) -> Result<Token, StoreError> {
        if action == Action::Restore && !self.inner.options.allow_restore {
            return Err(TransitionError::RestoreDisabled.into());
        }
        let k = &self.inner.keys;
        let sources: String = action.sources().iter().fold(",".to_string(), |s, st| s + st.as_str() + ",");
        let mut call = self.inner.scripts.transition.prepare_invoke();
        call.key(k.token(id)).key(k.audit()).arg(action.target().as_str()).arg(sources).arg(Self::event_head(
            Some(id),
            actor,
            action.into(),
        ));
        let outcome = self.run_token_change(call, id).await?;
        match outcome.first().map(String::as_str) {
            Some("ok" | "same") => self.get(id).await?.ok_or(StoreError::NotFound),
            Some("missing") => Err(StoreError::NotFound),
            Some("conflict") => {
                let from = outcome.get(1).and_then(|s| TokenStatus::parse(s)).ok_or_else(|| corrupt("status"))?;
                Err(action.apply(from).expect_err("the script refused this transition").into())
            }
            _ => Err(corrupt(format!("transition script answered {outcome:?}"))),
        }
    }

    async fn rotate(
        &self,
        id: &TokenId,
        expected: &TokenDigest,
        digest: &TokenDigest,
        grace_until: Option<Timestamp>,
        actor: &str,
    ) -> Result<Token, StoreError> {
        let k = &self.inner.keys;
        // Compare-and-set: the script writes the new record only if the stored one is still the
        // one read here, and that one must hold the digest the caller read. `rec` changes only
        // on rotation, so any change means another rotation won: no retry, a conflict.
        let (rec, st): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(k.token(id))
            .arg(&["rec", "st"])
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        let (Some(rec), Some(st)) = (rec, st) else { return Err(StoreError::NotFound) };
        let mut token: Token = serde_json::from_str(&rec).map_err(corrupt)?;
        token.status = TokenStatus::parse(&st).ok_or_else(|| corrupt(format!("status {st:?}")))?;
        if token.status == TokenStatus::Revoked {
            return Err(StoreError::RotateRevoked);
        }
        if !token.digest.matches(expected) {
            return Err(StoreError::RotatedMeanwhile);
        }
        token.previous = grace_until.map(|valid_until| PreviousSecret { digest: token.digest, valid_until });
        token.digest = *digest;
        let new_rec = serde_json::to_string(&token).expect("token serializes");
        let event =
            serde_json::to_string(&AuditEvent::now(&token, actor, AuditAction::Rotate)).expect("event serializes");
        let mut call = self.inner.scripts.rotate.prepare_invoke();
        call.key(k.token(id)).key(k.audit()).arg(rec).arg(new_rec).arg(event);
        let outcome = self.run_token_change(call, id).await?;
        match outcome.first().map(String::as_str) {
            Some("ok") => self.get(id).await?.ok_or(StoreError::NotFound),
            Some("missing") => Err(StoreError::NotFound),
            Some("revoked") => Err(StoreError::RotateRevoked),
            Some("changed") => Err(StoreError::RotatedMeanwhile),
            _ => Err(corrupt(format!("rotate script answered {outcome:?}"))),
        }
    }

    async fn delete(&self, id: &TokenId, actor: &str) -> Result<Token, StoreError> {
        let token = self.get(id).await?.ok_or(StoreError::NotFound)?;
        if token.status != TokenStatus::Revoked {
            return Err(StoreError::NotRevoked(token.status.as_str()));
        }
        let event =
            serde_json::to_string(&AuditEvent::now(&token, actor, AuditAction::Delete)).expect("event serializes");
        let mut call = self.indexed_call(&self.inner.scripts.delete, id, &token.owner);
        call.arg(id.as_str()).arg(Cursor::new(token.created_at, id).as_str()).arg(event);
        let outcome: Vec<String> = self.run_indexed(call).await?;
        match outcome.first().map(String::as_str) {
            Some("ok") => Ok(token),
            Some("missing") => Err(StoreError::NotFound),
            Some("conflict") => {
                let st = outcome.get(1).and_then(|s| TokenStatus::parse(s)).ok_or_else(|| corrupt("status"))?;
                Err(StoreError::NotRevoked(st.as_str()))
            }
            _ => Err(corrupt(format!("delete script answered {outcome:?}"))),
        }
    }

    async fn record_last_used(&self, uses: &[LastUse]) -> Result<usize, StoreError> {
        let mut moved = 0;
        for chunk in uses.chunks(LAST_USED_CHUNK) {
            let mut call = self.inner.scripts.last_used.prepare_invoke();
            for u in chunk {
                call.key(self.inner.keys.token(&u.id));
                call.arg(u.at.millis());
                call.arg(u.from.map(|ip| ip.to_string()).unwrap_or_default());
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
        let deleted: i64 = self
            .inner
            .scripts
            .delete_principal
            .key(k.principal(id))
            .key(k.owner_index(id))
            .key(k.audit())
            .arg(id)
            .arg(k.token_prefix())
            .arg(Self::event_head(None, actor, AuditAction::Revoke))
            .arg(self.inner.options.audit_limit)
            .arg(k.channel())
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(deleted == 1)
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

//! The embedded backend: one redb file, for single-replica deployments and development.
//!
//! Tables (all in one file, every change in one write transaction, fsynced on commit):
//!
//! | table               | key                         | value                  |
//! |---------------------|-----------------------------|------------------------|
//! | `tokens`            | token id                    | token record (JSON)    |
//! | `tokens_by_created` | index key (see `index.rs`)  | —                      |
//! | `tokens_by_owner`   | (owner, index key)          | —                      |
//! | `retired_ids`       | id of a deleted token       | —                      |
//! | `principals`        | principal id                | principal (JSON)       |
//! | `groups`            | group id                    | directory group (JSON) |
//! | `audit`             | sequence number             | audit event (JSON)     |
//! | `quota_used`        | token id                    | requests counted against its quota |
//!
//! Rate-limit state (each token's GCRA arrival time) is kept in memory: one process serves an
//! embedded store, and a restart may as well start with a full burst.
//! Deleting a principal revokes their personal tokens (found through `tokens_by_owner`) in the
//! same transaction.
//!
//! redb is synchronous, so each call runs on tokio's blocking pool. Invalidations go to an
//! in-process broadcast channel after the transaction commits.
//!
//! This file is one trait implementation (every store operation against the tables above) and
//! stays together for that reason.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

use super::index::Cursor;
use super::{
    IdPage, Invalidation, LIST_SCAN_BUDGET, LastUse, ListQuery, MAX_PAGE, Page, StoreError, StoreOptions, TokenStore,
};
use crate::clock::Timestamp;
use crate::token::TokenId;
use crate::token::digest::TokenDigest;
use crate::token::limits::{Grant, TokenLimits};
use crate::token::{
    Action, AuditAction, AuditEvent, Group, PreviousSecret, Principal, Token, TokenKind, TokenStatus, TransitionError,
};

const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");
const BY_CREATED: TableDefinition<&str, ()> = TableDefinition::new("tokens_by_created");
const BY_OWNER: TableDefinition<(&str, &str), ()> = TableDefinition::new("tokens_by_owner");
const RETIRED: TableDefinition<&str, ()> = TableDefinition::new("retired_ids");
const PRINCIPALS: TableDefinition<&str, &[u8]> = TableDefinition::new("principals");
const GROUPS: TableDefinition<&str, &[u8]> = TableDefinition::new("groups");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// Requests counted against each token's quota.
const QUOTA_USED: TableDefinition<&str, u64> = TableDefinition::new("quota_used");

/// Sorts after every index key (index keys are ASCII alphanumerics).
const INDEX_END: &str = "~";

/// A cheap-to-clone handle to the open database.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    options: StoreOptions,
    events: broadcast::Sender<Invalidation>,
    /// Each rate-limited token's theoretical arrival time (µs); in memory, since one process
    /// serves an embedded store and a restart may as well start with a full burst.
    rates: std::sync::Mutex<std::collections::HashMap<TokenId, u64>>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("model types always serialize")
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl EmbeddedStore {
    /// Opens (creating if needed) the database file at `path`.
    pub async fn open(path: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| unavailable(format!("{}: {e}", dir.display())))?;
            }
            let db = Database::create(&path).map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
            let txn = db.begin_write().map_err(unavailable)?;
            {
                txn.open_table(TOKENS).map_err(unavailable)?;
                txn.open_table(BY_CREATED).map_err(unavailable)?;
                txn.open_table(BY_OWNER).map_err(unavailable)?;
                txn.open_table(RETIRED).map_err(unavailable)?;
                txn.open_table(PRINCIPALS).map_err(unavailable)?;
                txn.open_table(GROUPS).map_err(unavailable)?;
                txn.open_table(AUDIT).map_err(unavailable)?;
                txn.open_table(QUOTA_USED).map_err(unavailable)?;
            }
            txn.commit().map_err(unavailable)?;
            let (events, _) = broadcast::channel(1024);
            Ok(Self { inner: Arc::new(Inner { db, options, events, rates: Default::default() }) })
        })
        .await
        .map_err(unavailable)?
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner)).await.map_err(unavailable)?
    }
}

impl Inner {
    /// Up to `n` permits under the token's rate limit (all `n` when it has none).
    fn take_rate(&self, id: &TokenId, limits: &TokenLimits, n: u32) -> Grant {
        let Some(rate) = &limits.rate else {
            // No rate: what remains is the quota's to say.
            return Grant { granted: n, retry_after: Duration::ZERO, remaining: u32::MAX, quota_exhausted: false };
        };
        let now_us = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        let mut rates = self.rates.lock().expect("rates lock");
        if rates.len() >= 10_000 {
            // A TAT in the past means a full burst, the same as no entry.
            rates.retain(|_, tat| *tat > now_us);
        }
        let (grant, tat) = rate.gcra().take(rates.get(id).copied(), now_us, n);
        rates.insert(*id, tat);
        grant
    }

    fn notify(&self, inv: Invalidation) {
        // No receivers is fine: nobody caches yet.
        let _ = self.events.send(inv);
    }

    fn append_audit(&self, txn: &redb::WriteTransaction, event: &AuditEvent) -> Result<(), StoreError> {
        let mut audit = txn.open_table(AUDIT).map_err(unavailable)?;
        let next = audit.last().map_err(unavailable)?.map_or(0, |(k, _)| k.value() + 1);
        audit.insert(next, encode(event).as_slice()).map_err(unavailable)?;
        while audit.len().map_err(unavailable)? > self.options.audit_limit as u64 {
            audit.pop_first().map_err(unavailable)?;
        }
        Ok(())
    }

    fn list(&self, q: &ListQuery) -> Result<Page, StoreError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let tokens = txn.open_table(TOKENS).map_err(unavailable)?;
        let upper = q.cursor.map(|c| c.to_string());
        let upper = upper.as_deref().unwrap_or(INDEX_END);
        let keys: Box<dyn Iterator<Item = Result<String, StoreError>>> = match &q.owner {
            Some(owner) => {
                let by_owner = txn.open_table(BY_OWNER).map_err(unavailable)?;
                let range = by_owner.range((owner.as_str(), "")..(owner.as_str(), upper)).map_err(unavailable)?;
                Box::new(range.rev().map(|r| r.map(|(k, _)| k.value().1.to_string()).map_err(unavailable)))
            }
            None => {
                let by_created = txn.open_table(BY_CREATED).map_err(unavailable)?;
                let range = by_created.range(..upper).map_err(unavailable)?;
                Box::new(range.rev().map(|r| r.map(|(k, _)| k.value().to_string()).map_err(unavailable)))
            }
        };
        let limit = q.page_size();
        let mut page = Page::default();
        for (scanned, key) in keys.enumerate() {
            let key = key?;
            let cursor = Cursor::parse(&key).ok_or_else(|| StoreError::Corrupt(format!("index key {key:?}")))?;
            if let Some(raw) = tokens.get(cursor.id().as_str()).map_err(unavailable)? {
                let token: Token = decode(raw.value())?;
                if q.matches(&token) {
                    page.tokens.push(token);
                }
            }
            if page.tokens.len() == limit || scanned + 1 == LIST_SCAN_BUDGET {
                page.next_cursor = Some(cursor);
                break;
            }
        }
        Ok(page)
    }
}

impl Inner {
    /// Up to `limit` records of a table keyed by id, after `after`, in key order.
    fn page<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<IdPage<T>, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let txn = self.db.begin_read().map_err(unavailable)?;
        let table = txn.open_table(table).map_err(unavailable)?;
        let range = match after {
            Some(a) => table.range::<&str>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => table.range::<&str>(..),
        }
        .map_err(unavailable)?;
        let mut page = IdPage::default();
        let mut last = None;
        for entry in range {
            let (k, v) = entry.map_err(unavailable)?;
            if page.items.len() == limit {
                // One more exists: continue after the last one returned.
                page.next_cursor = last;
                break;
            }
            page.items.push(decode(v.value())?);
            last = Some(k.value().to_string());
        }
        Ok(page)
    }
}

fn load_token(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &TokenId,
) -> Result<Option<Token>, StoreError> {
    match table.get(id.as_str()).map_err(unavailable)? {
        Some(raw) => decode(raw.value()).map(Some),
        None => Ok(None),
    }
}

#[async_trait]
impl TokenStore for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.blocking(|s| s.db.begin_read().map(drop).map_err(unavailable)).await
    }

    async fn create(&self, token: &Token, actor: &str) -> Result<(), StoreError> {
        let token = token.clone();
        let actor = actor.to_string();
        self.blocking(move |s| {
            let txn = s.db.begin_write().map_err(unavailable)?;
            {
                let mut tokens = txn.open_table(TOKENS).map_err(unavailable)?;
                let retired = txn.open_table(RETIRED).map_err(unavailable)?;
                let id = token.id.as_str();
                if tokens.get(id).map_err(unavailable)?.is_some() || retired.get(id).map_err(unavailable)?.is_some() {
                    return Err(StoreError::IdTaken);
                }
                tokens.insert(id, encode(&token).as_slice()).map_err(unavailable)?;
                let key = Cursor::new(token.created_at, &token.id);
                txn.open_table(BY_CREATED).map_err(unavailable)?.insert(key.as_str(), ()).map_err(unavailable)?;
                txn.open_table(BY_OWNER)
                    .map_err(unavailable)?
                    .insert((token.owner.as_str(), key.as_str()), ())
                    .map_err(unavailable)?;
            }
            s.append_audit(&txn, &AuditEvent::now(&token, &actor, AuditAction::Create))?;
            txn.commit().map_err(unavailable)?;
            s.notify(Invalidation::Token(token.id));
            Ok(())
        })
        .await
    }

    async fn get(&self, id: &TokenId) -> Result<Option<Token>, StoreError> {
        let id = *id;
        self.blocking(move |s| {
            let txn = s.db.begin_read().map_err(unavailable)?;
            load_token(&txn.open_table(TOKENS).map_err(unavailable)?, &id)
        })
        .await
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let query = query.clone();
        self.blocking(move |s| s.list(&query)).await
    }

    async fn transition(&self, id: &TokenId, action: Action, actor: &str) -> Result<Token, StoreError> {
        let id = *id;
        let actor = actor.to_string();
        self.blocking(move |s| {
            if action == Action::Restore && !s.options.allow_restore {
                return Err(TransitionError::RestoreDisabled.into());
            }
            let txn = s.db.begin_write().map_err(unavailable)?;
            let token = {
                let mut tokens = txn.open_table(TOKENS).map_err(unavailable)?;
                let mut token = load_token(&tokens, &id)?.ok_or(StoreError::NotFound)?;
                let Some(next) = action.apply(token.status)? else {
                    return Ok(token);
                };
                token.status = next;
                tokens.insert(id.as_str(), encode(&token).as_slice()).map_err(unavailable)?;
                token
            };
            s.append_audit(&txn, &AuditEvent::now(&token, &actor, action.into()))?;
            txn.commit().map_err(unavailable)?;
            s.notify(Invalidation::Token(id));
            Ok(token)
        })
        .await
    }

    async fn rotate(
        &self,
        id: &TokenId,
        expected: &TokenDigest,
        digest: &TokenDigest,
        grace_until: Option<Timestamp>,
        actor: &str,
    ) -> Result<Token, StoreError> {
        let (id, expected, digest, actor) = (*id, *expected, *digest, actor.to_string());
        self.blocking(move |s| {
            let txn = s.db.begin_write().map_err(unavailable)?;
            let token = {
                let mut tokens = txn.open_table(TOKENS).map_err(unavailable)?;
                let mut token = load_token(&tokens, &id)?.ok_or(StoreError::NotFound)?;
                if token.status == TokenStatus::Revoked {
                    return Err(StoreError::RotateRevoked);
                }
                if !token.digest.matches(&expected) {
                    return Err(StoreError::RotatedMeanwhile);
                }
                token.previous = grace_until.map(|valid_until| PreviousSecret { digest: token.digest, valid_until });
                token.digest = digest;
                tokens.insert(id.as_str(), encode(&token).as_slice()).map_err(unavailable)?;
                token
            };
            s.append_audit(&txn, &AuditEvent::now(&token, &actor, AuditAction::Rotate))?;
            txn.commit().map_err(unavailable)?;
            s.notify(Invalidation::Token(id));
            Ok(token)
        })
        .await
    }

    async fn set_limits(&self, id: &TokenId, limits: &TokenLimits, actor: &str) -> Result<Token, StoreError> {
        let (id, limits, actor) = (*id, limits.clone(), actor.to_string());
        self.blocking(move |s| {
            let txn = s.db.begin_write().map_err(unavailable)?;
            let token = {
                let mut tokens = txn.open_table(TOKENS).map_err(unavailable)?;
                let mut token = load_token(&tokens, &id)?.ok_or(StoreError::NotFound)?;
                if token.status == TokenStatus::Revoked {
                    return Err(TransitionError::Conflict { action: "change the limits of", from: "revoked" }.into());
                }
                token.limits = limits;
                tokens.insert(id.as_str(), encode(&token).as_slice()).map_err(unavailable)?;
                token
            };
            s.append_audit(&txn, &AuditEvent::now(&token, &actor, AuditAction::Limits))?;
            txn.commit().map_err(unavailable)?;
            s.notify(Invalidation::Token(id));
            Ok(token)
        })
        .await
    }

    async fn delete(&self, id: &TokenId, actor: &str) -> Result<Token, StoreError> {
        let id = *id;
        let actor = actor.to_string();
        self.blocking(move |s| {
            let txn = s.db.begin_write().map_err(unavailable)?;
            let token = {
                let mut tokens = txn.open_table(TOKENS).map_err(unavailable)?;
                let token = load_token(&tokens, &id)?.ok_or(StoreError::NotFound)?;
                if token.status != TokenStatus::Revoked {
                    return Err(StoreError::NotRevoked(token.status.as_str()));
                }
                tokens.remove(id.as_str()).map_err(unavailable)?;
                txn.open_table(QUOTA_USED).map_err(unavailable)?.remove(id.as_str()).map_err(unavailable)?;
                let key = Cursor::new(token.created_at, &token.id);
                txn.open_table(BY_CREATED).map_err(unavailable)?.remove(key.as_str()).map_err(unavailable)?;
                txn.open_table(BY_OWNER)
                    .map_err(unavailable)?
                    .remove((token.owner.as_str(), key.as_str()))
                    .map_err(unavailable)?;
                txn.open_table(RETIRED).map_err(unavailable)?.insert(id.as_str(), ()).map_err(unavailable)?;
                token
            };
            s.append_audit(&txn, &AuditEvent::now(&token, &actor, AuditAction::Delete))?;
            txn.commit().map_err(unavailable)?;
            s.notify(Invalidation::Token(id));
            Ok(token)
        })
        .await
    }

    async fn record_last_used(&self, uses: &[LastUse]) -> Result<usize, StoreError> {
        if uses.is_empty() {
            return Ok(0);
        }
        let uses = uses.to_vec();
        self.blocking(move |s| {
            let txn = s.db.begin_write().map_err(unavailable)?;
            let mut moved = 0;
            {
                let mut tokens = txn.open_table(TOKENS).map_err(unavailable)?;
                for u in &uses {
                    let Some(mut token) = load_token(&tokens, &u.id)? else { continue };
                    if token.last_used_at.is_some_and(|t| t >= u.at) {
                        continue;
                    }
                    token.last_used_at = Some(u.at);
                    token.last_used_from = u.from.map(|ip| ip.to_string());
                    tokens.insert(u.id.as_str(), encode(&token).as_slice()).map_err(unavailable)?;
                    moved += 1;
                }
            }
            txn.commit().map_err(unavailable)?;
            Ok(moved)
        })
        .await
    }

    async fn put_principal(&self, principal: &Principal) -> Result<(), StoreError> {
        let principal = principal.clone();
        self.blocking(move |s| {
            let txn = s.db.begin_write().map_err(unavailable)?;
            txn.open_table(PRINCIPALS)
                .map_err(unavailable)?
                .insert(principal.id.as_str(), encode(&principal).as_slice())
                .map_err(unavailable)?;
            txn.commit().map_err(unavailable)?;
            s.notify(Invalidation::Principal(principal.id));
            Ok(())
        })
        .await
    }

    async fn get_principal(&self, id: &str) -> Result<Option<Principal>, StoreError> {
        let id = id.to_string();
        self.blocking(move |s| {
            let txn = s.db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(PRINCIPALS).map_err(unavailable)?;
            let raw = table.get(id.as_str()).map_err(unavailable)?;
            raw.map(|r| decode(r.value())).transpose()
        })
        .await
    }

    async fn delete_principal(&self, id: &str, actor: &str) -> Result<bool, StoreError> {
        let (id, actor) = (id.to_string(), actor.to_string());
        self.blocking(move |s| {
            let txn = s.db.begin_write().map_err(unavailable)?;
            let existed =
                txn.open_table(PRINCIPALS).map_err(unavailable)?.remove(id.as_str()).map_err(unavailable)?.is_some();
            if !existed {
                return Ok(false);
            }
            // Their personal tokens, revoked in this same transaction.
            let keys: Vec<String> = {
                let by_owner = txn.open_table(BY_OWNER).map_err(unavailable)?;
                let range = by_owner.range((id.as_str(), "")..(id.as_str(), INDEX_END)).map_err(unavailable)?;
                range.map(|r| r.map(|(k, _)| k.value().1.to_string()).map_err(unavailable)).collect::<Result<_, _>>()?
            };
            let mut revoked = Vec::new();
            {
                let mut tokens = txn.open_table(TOKENS).map_err(unavailable)?;
                for key in keys {
                    let cursor =
                        Cursor::parse(&key).ok_or_else(|| StoreError::Corrupt(format!("index key {key:?}")))?;
                    let Some(mut token) = load_token(&tokens, &cursor.id())? else { continue };
                    if token.kind != TokenKind::Personal || token.owner != id || token.status == TokenStatus::Revoked {
                        continue;
                    }
                    token.status = TokenStatus::Revoked;
                    tokens.insert(token.id.as_str(), encode(&token).as_slice()).map_err(unavailable)?;
                    revoked.push(token);
                }
            }
            for token in &revoked {
                s.append_audit(&txn, &AuditEvent::now(token, &actor, AuditAction::Revoke))?;
            }
            txn.commit().map_err(unavailable)?;
            for token in &revoked {
                s.notify(Invalidation::Token(token.id));
            }
            s.notify(Invalidation::Principal(id));
            Ok(true)
        })
        .await
    }

    async fn list_principals(&self, after: Option<&str>, limit: usize) -> Result<IdPage<Principal>, StoreError> {
        let after = after.map(String::from);
        self.blocking(move |s| s.page(PRINCIPALS, after.as_deref(), limit)).await
    }

    async fn put_group(&self, group: &Group) -> Result<(), StoreError> {
        let group = group.clone();
        self.blocking(move |s| {
            let txn = s.db.begin_write().map_err(unavailable)?;
            txn.open_table(GROUPS)
                .map_err(unavailable)?
                .insert(group.id.as_str(), encode(&group).as_slice())
                .map_err(unavailable)?;
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn get_group(&self, id: &str) -> Result<Option<Group>, StoreError> {
        let id = id.to_string();
        self.blocking(move |s| {
            let txn = s.db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(GROUPS).map_err(unavailable)?;
            let raw = table.get(id.as_str()).map_err(unavailable)?;
            raw.map(|r| decode(r.value())).transpose()
        })
        .await
    }

    async fn delete_group(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.blocking(move |s| {
            let txn = s.db.begin_write().map_err(unavailable)?;
            let existed =
                txn.open_table(GROUPS).map_err(unavailable)?.remove(id.as_str()).map_err(unavailable)?.is_some();
            txn.commit().map_err(unavailable)?;
            Ok(existed)
        })
        .await
    }

    async fn list_groups(&self, after: Option<&str>, limit: usize) -> Result<IdPage<Group>, StoreError> {
        let after = after.map(String::from);
        self.blocking(move |s| s.page(GROUPS, after.as_deref(), limit)).await
    }

    async fn audit(&self, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        self.blocking(move |s| {
            let txn = s.db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(AUDIT).map_err(unavailable)?;
            let iter = table.iter().map_err(unavailable)?.rev().take(limit);
            iter.map(|r| r.map_err(unavailable).and_then(|(_, v)| decode(v.value()))).collect()
        })
        .await
    }

    fn invalidations(&self) -> broadcast::Receiver<Invalidation> {
        self.inner.events.subscribe()
    }

    fn invalidations_connected(&self) -> bool {
        true
    }

    async fn take_permits(&self, id: &TokenId, limits: &TokenLimits, n: u32) -> Result<Grant, StoreError> {
        let Some(quota) = limits.quota else {
            return Ok(self.inner.take_rate(id, limits, n));
        };
        // With a quota, reading and counting the use are one write transaction.
        let (id, limits) = (*id, limits.clone());
        self.blocking(move |s| {
            let txn = s.db.begin_write().map_err(unavailable)?;
            let grant = {
                let mut table = txn.open_table(QUOTA_USED).map_err(unavailable)?;
                let used = table.get(id.as_str()).map_err(unavailable)?.map_or(0, |v| v.value());
                let left = quota.saturating_sub(used);
                if left == 0 {
                    return Ok(Grant { granted: 0, retry_after: Duration::ZERO, remaining: 0, quota_exhausted: true });
                }
                let mut grant = s.take_rate(&id, &limits, n.min(u32::try_from(left).unwrap_or(u32::MAX)));
                table.insert(id.as_str(), used + u64::from(grant.granted)).map_err(unavailable)?;
                let quota_left = u32::try_from(left - u64::from(grant.granted)).unwrap_or(u32::MAX);
                grant.remaining = grant.remaining.min(quota_left);
                grant
            };
            txn.commit().map_err(unavailable)?;
            Ok(grant)
        })
        .await
    }
}

//! A frozen copy of the previous release's Redis write path (commit 0c67ecc: one hash per token
//! with the record JSON, two plain sorted-set indexes), so migration tests run on data written
//! exactly as that release wrote it. The Lua scripts beside this file are that release's, byte
//! for byte; the Rust below is its `RedisStore` methods, cut down to what the tests call.
#![allow(dead_code)]

use redis::Script;
use redis::aio::MultiplexedConnection;

use tokengate::clock::Timestamp;
use tokengate::store::{Cursor, Invalidation, LastUse};
use tokengate::token::digest::TokenDigest;
use tokengate::token::{Action, AuditAction, AuditEvent, PreviousSecret, Principal, Token, TokenId, TokenStatus};

const AUDIT_LIMIT: usize = 10_000;

/// The previous release's writer, on one key prefix.
pub struct PreviousRelease {
    conn: MultiplexedConnection,
    tag: String,
}

impl PreviousRelease {
    pub async fn connect(url: &str, prefix: &str) -> Self {
        let conn = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
        Self { conn, tag: format!("{{{prefix}}}") }
    }

    fn token_key(&self, id: &TokenId) -> String {
        format!("{}:tok:{id}", self.tag)
    }

    fn channel(&self) -> String {
        format!("{}:inval", self.tag)
    }

    fn event_head(id: Option<&TokenId>, actor: &str, action: AuditAction) -> String {
        #[derive(serde::Serialize)]
        struct Head<'a> {
            at: Timestamp,
            actor: &'a str,
            action: AuditAction,
            #[serde(skip_serializing_if = "Option::is_none")]
            token_id: Option<&'a TokenId>,
        }
        let mut json = serde_json::to_string(&Head { at: Timestamp::now(), actor, action, token_id: id }).unwrap();
        json.pop();
        json
    }

    pub async fn create(&mut self, token: &Token, actor: &str) {
        let index_key = Cursor::new(token.created_at, &token.id);
        let record = serde_json::to_string(token).unwrap();
        let event = serde_json::to_string(&AuditEvent::now(token, actor, AuditAction::Create)).unwrap();
        let created: i64 = Script::new(include_str!("create.lua"))
            .key(self.token_key(&token.id))
            .key(format!("{}:idx", self.tag))
            .key(format!("{}:own:{}", self.tag, token.owner))
            .key(format!("{}:retired", self.tag))
            .key(format!("{}:audit", self.tag))
            .arg(token.id.as_str())
            .arg(record)
            .arg(token.status.as_str())
            .arg(index_key.as_str())
            .arg(event)
            .arg(AUDIT_LIMIT)
            .arg(self.channel())
            .invoke_async(&mut self.conn)
            .await
            .unwrap();
        assert_eq!(created, 1);
    }

    pub async fn transition(&mut self, id: &TokenId, action: Action, actor: &str) {
        let sources: String = action.sources().iter().fold(",".to_string(), |s, st| s + st.as_str() + ",");
        let outcome: Vec<String> = Script::new(include_str!("transition.lua"))
            .key(self.token_key(id))
            .key(format!("{}:audit", self.tag))
            .arg(action.target().as_str())
            .arg(sources)
            .arg(Self::event_head(Some(id), actor, action.into()))
            .arg(AUDIT_LIMIT)
            .arg(self.channel())
            .arg(Invalidation::Token(*id).encode())
            .invoke_async(&mut self.conn)
            .await
            .unwrap();
        assert_eq!(outcome, ["ok"]);
    }

    pub async fn rotate(&mut self, id: &TokenId, digest: &TokenDigest, grace_until: Option<Timestamp>, actor: &str) {
        let (rec, st): (String, String) =
            redis::cmd("HMGET").arg(self.token_key(id)).arg(&["rec", "st"]).query_async(&mut self.conn).await.unwrap();
        let mut token: Token = serde_json::from_str(&rec).unwrap();
        token.status = TokenStatus::parse(&st).unwrap();
        token.previous = grace_until.map(|valid_until| PreviousSecret { digest: token.digest, valid_until });
        token.digest = *digest;
        let new_rec = serde_json::to_string(&token).unwrap();
        let event = serde_json::to_string(&AuditEvent::now(&token, actor, AuditAction::Rotate)).unwrap();
        let outcome: Vec<String> = Script::new(include_str!("rotate.lua"))
            .key(self.token_key(id))
            .key(format!("{}:audit", self.tag))
            .arg(rec)
            .arg(new_rec)
            .arg(event)
            .arg(AUDIT_LIMIT)
            .arg(self.channel())
            .arg(Invalidation::Token(*id).encode())
            .invoke_async(&mut self.conn)
            .await
            .unwrap();
        assert_eq!(outcome, ["ok"]);
    }

    pub async fn record_last_used(&mut self, uses: &[LastUse]) {
        let script = Script::new(include_str!("last_used.lua"));
        let mut call = script.prepare_invoke();
        for u in uses {
            call.key(self.token_key(&u.id));
            call.arg(u.at.millis());
            call.arg(u.from.map(|ip| ip.to_string()).unwrap_or_default());
        }
        let _: usize = call.invoke_async(&mut self.conn).await.unwrap();
    }

    pub async fn put_principal(&mut self, principal: &Principal) {
        let json = serde_json::to_string(principal).unwrap();
        let _: () = redis::cmd("SET")
            .arg(format!("{}:pr:{}", self.tag, principal.id))
            .arg(json)
            .query_async(&mut self.conn)
            .await
            .unwrap();
    }
}

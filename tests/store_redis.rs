//! Redis-only behaviour: outages surface as errors (never as "not found"), the store and its
//! invalidation subscription recover by themselves, every key carries the hash tag, and data
//! written by the previous release is read and migrated.

mod previous_release;
mod support;

use std::sync::Arc;
use std::time::Duration;

use tokengate::clock::Timestamp;
use tokengate::store::redis::{Migration, RedisStore};
use tokengate::store::{Cursor, Invalidation, LastUse, ListQuery, Store, StoreError, StoreOptions};
use tokengate::token::digest::Hasher;
use tokengate::token::{Action, AuditAction, PreviousSecret, Principal, Token, TokenId, TokenKind, TokenStatus};

use previous_release::PreviousRelease;
use support::{RedisServer, minter, new_token, token_at};
use tokengate::store::Issue as _;

async fn wait_until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_an_error_not_a_missing_token_and_recovery_is_automatic() {
    let mut server = RedisServer::start();
    let store: Store = Arc::new(RedisStore::open(&server.config("t"), StoreOptions::default()).unwrap());
    let (_, token) = minter().issue(store.as_ref(), &new_token(TokenKind::Personal, "x", "alice")).await.unwrap();
    wait_until("subscribed", async || store.invalidations_connected()).await;
    let mut rx = store.invalidations();

    server.kill();
    match store.get(&token.id).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("a lookup during an outage must fail loudly, got {other:?}"),
    }
    assert!(matches!(store.transition(&token.id, Action::Revoke, "op").await, Err(StoreError::Unavailable(_))));
    wait_until("subscription reported down", async || !store.invalidations_connected()).await;

    server.restart();
    wait_until("store answers again", async || store.ping().await.is_ok()).await;
    wait_until("resubscribed", async || store.invalidations_connected()).await;
    assert_eq!(store.get(&token.id).await.unwrap().unwrap().status, tokengate::token::TokenStatus::Active);

    // The subscriber was told to drop everything, because messages may have been missed.
    let mut flushes = 0;
    while let Ok(inv) = rx.try_recv() {
        if inv == Invalidation::All {
            flushes += 1;
        }
    }
    assert!(flushes >= 1, "a lost subscription must flush caches");

    // And invalidations flow again.
    store.transition(&token.id, Action::Suspend, "op").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match rx.recv().await.unwrap() {
                Invalidation::All => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("invalidation after resubscription");
    assert_eq!(got, Invalidation::Token(token.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_opened_while_redis_is_down_starts_and_connects_later() {
    let mut server = RedisServer::start();
    server.kill();
    let store: Store = Arc::new(RedisStore::open(&server.config("t"), StoreOptions::default()).unwrap());
    assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
    assert!(!store.invalidations_connected());
    server.restart();
    wait_until("store connects", async || store.ping().await.is_ok()).await;
    wait_until("subscribed", async || store.invalidations_connected()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_carries_the_hash_tag() {
    let server = RedisServer::start();
    let store: Store = Arc::new(RedisStore::open(&server.config("acme"), StoreOptions::default()).unwrap());
    let (_, token) = minter().issue(store.as_ref(), &new_token(TokenKind::Personal, "x", "alice")).await.unwrap();
    store.transition(&token.id, Action::Revoke, "op").await.unwrap();
    store.delete(&token.id, "op").await.unwrap();
    let p = tokengate::token::Principal {
        id: "alice".into(),
        display_name: "A".into(),
        org: None,
        roles: vec![],
        limits: Default::default(),
        ..Default::default()
    };
    store.put_principal(&p).await.unwrap();
    let (secret, other) = minter().issue(store.as_ref(), &new_token(TokenKind::Personal, "y", "alice")).await.unwrap();
    let keys = server.command(&["KEYS", "*"]);
    let names: Vec<&str> = keys.lines().filter(|l| !l.starts_with(['*', '$'])).collect();
    assert!(names.len() >= 5, "{keys}");
    assert!(names.iter().all(|k| k.starts_with("{acme}:")), "{names:?}");
    let bucket = format!("{{acme}}:t:{}", &other.id.as_str()[..2]);
    assert!(names.contains(&bucket.as_str()), "{names:?}");
    // Only the digest is stored, never the secret.
    let record = server.command(&["HGET", &bucket, other.id.as_str()]);
    assert!(record.len() > 64, "{record}");
    let dump = server.command(&["HGETALL", &bucket]);
    assert!(!dump.contains(&secret.expose()[16..56]), "the secret part never reaches the store");
}

/// Everything a reader can see of `expected`: each record field by field, the listing (all, per
/// owner, in pages), newest first.
async fn assert_store_holds(store: &Store, expected: &[Token]) {
    for t in expected {
        assert_eq!(store.get(&t.id).await.unwrap().as_ref(), Some(t), "{}", t.name);
    }
    let mut newest_first: Vec<&Token> = expected.iter().collect();
    newest_first.sort_by_key(|t| std::cmp::Reverse(Cursor::new(t.created_at, &t.id)));
    for owner in [None, Some("alice"), Some("bob"), Some("org:acme")] {
        let want: Vec<&Token> = newest_first.iter().copied().filter(|t| owner.is_none_or(|o| t.owner == o)).collect();
        let mut got = Vec::new();
        let mut query = ListQuery { owner: owner.map(str::to_string), limit: 7, ..ListQuery::default() };
        loop {
            let page = store.list(&query).await.unwrap();
            got.extend(page.tokens);
            match page.next_cursor {
                Some(c) => query.cursor = Some(c),
                None => break,
            }
        }
        let got: Vec<&Token> = got.iter().collect();
        assert_eq!(got, want, "listing of {owner:?}");
    }
}

fn legacy_keys(server: &RedisServer, prefix: &str) -> Vec<String> {
    let keys = server.command(&["KEYS", "*"]);
    keys.lines()
        .filter(|l| !l.starts_with(['*', '$']))
        .filter(|k| {
            k.starts_with(&format!("{{{prefix}}}:tok:"))
                || k.starts_with(&format!("{{{prefix}}}:own:"))
                || *k == format!("{{{prefix}}}:idx")
        })
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_written_by_the_previous_release_is_read_changed_and_migrated() {
    let server = RedisServer::start();
    let mut old = PreviousRelease::connect(&server.url(), "mig").await;
    let hasher = Hasher::new(None);

    // 300 tokens over three owners, several per millisecond, written as the previous release did.
    let mut expected: Vec<Token> = Vec::new();
    for i in 0..300u64 {
        let owner = ["alice", "bob", "org:acme"][(i % 3) as usize];
        let (_, mut t) = token_at(&format!("token {i} ✓"), owner, 1_700_000_000_000 + i / 2);
        if owner == "org:acme" {
            t.kind = TokenKind::Organization;
        }
        if i % 5 == 0 {
            t.scopes = vec!["env:prod".parse().unwrap(), "deployment:api@prod".parse().unwrap()];
            t.roles.push("developer".into());
        }
        if i % 11 == 0 {
            // Limits came after 0c67ecc, in the same JSON record (what main wrote before this format).
            t.limits = serde_json::from_str(
                r#"{"rate":{"requests":10,"window_secs":1},"quota":99,"networks":["10.0.0.0/8"]}"#,
            )
            .unwrap();
        }
        old.create(&t, "creator").await;
        expected.push(t);
    }
    old.transition(&expected[1].id, Action::Suspend, "op").await;
    expected[1].status = TokenStatus::Suspended;
    for i in [2, 4, 10] {
        old.transition(&expected[i].id, Action::Revoke, "op").await;
        expected[i].status = TokenStatus::Revoked;
    }
    let used_at = Timestamp(1_700_000_500_000);
    let from: std::net::IpAddr = "2001:db8::7".parse().unwrap();
    old.record_last_used(&[LastUse { id: expected[3].id, at: used_at, from: Some(from) }]).await;
    expected[3].last_used_at = Some(used_at);
    expected[3].last_used_from = Some(from.to_string());
    let rotated = hasher.digest("rotated secret");
    let grace = Timestamp(1_800_000_000_000);
    old.rotate(&expected[5].id, &rotated, Some(grace), "op").await;
    expected[5].previous = Some(PreviousSecret { digest: expected[5].digest, valid_until: grace });
    expected[5].digest = rotated;
    for p in ["alice", "bob"] {
        old.put_principal(&Principal {
            id: p.into(),
            display_name: p.into(),
            org: None,
            roles: vec!["viewer".into()],
            limits: Default::default(),
            ..Default::default()
        })
        .await;
    }

    let redis =
        RedisStore::open(&server.config("mig"), StoreOptions { allow_restore: true, ..StoreOptions::default() })
            .unwrap();
    let store: Store = Arc::new(redis.clone());

    // Everything reads as before, without any migration.
    assert_store_holds(&store, &expected).await;
    let audit = store.audit(1000).await.unwrap();
    assert_eq!(audit.len(), 300 + 4 + 1);
    assert_eq!((audit[0].action, audit[0].token_id), (AuditAction::Rotate, expected[5].id));
    assert_eq!((audit[1].action, audit[1].token_id), (AuditAction::Revoke, expected[10].id));
    assert_eq!(audit.last().unwrap().token_name, "token 0 ✓");
    assert_eq!(store.get_principal("alice").await.unwrap().unwrap().roles, ["viewer"]);

    // Changes through this release, on old and new records side by side.
    let (_, mut newer) = token_at("newer", "alice", 1_700_000_000_075);
    newer.id = TokenId::parse("000000000000").unwrap(); // sorts first among its millisecond
    store.create(&newer, "creator").await.unwrap();
    expected.push(newer);
    let (_, mut twin) = token_at("twin", "alice", 1);
    twin.id = expected[0].id;
    assert!(matches!(store.create(&twin, "x").await, Err(StoreError::IdTaken)), "an old id is taken");
    // Last use moves forward in the old hash, never back.
    let later = Timestamp(1_700_000_900_000);
    let moved = store
        .record_last_used(&[
            LastUse { id: expected[3].id, at: Timestamp(1), from: None },
            LastUse { id: expected[6].id, at: later, from: None },
        ])
        .await
        .unwrap();
    assert_eq!(moved, 1);
    expected[6].last_used_at = Some(later);
    // A transition, a restore, a rotation and a deletion each migrate the token they change.
    assert_eq!(store.transition(&expected[7].id, Action::Suspend, "op").await.unwrap().status, TokenStatus::Suspended);
    expected[7].status = TokenStatus::Suspended;
    assert_eq!(store.transition(&expected[10].id, Action::Restore, "op").await.unwrap().status, TokenStatus::Active);
    expected[10].status = TokenStatus::Active;
    let again = hasher.digest("again");
    let current = expected[8].digest;
    let t = store.rotate(&expected[8].id, &current, &again, None, "op").await.unwrap();
    assert!(t.digest.matches(&again) && t.previous.is_none());
    expected[8].digest = again;
    assert!(matches!(
        store.rotate(&expected[9].id, &again, &again, None, "op").await,
        Err(StoreError::RotatedMeanwhile)
    ));
    let deleted = expected.remove(4);
    assert_eq!(store.delete(&deleted.id, "op").await.unwrap(), deleted);
    assert_eq!(store.get(&deleted.id).await.unwrap(), None);
    assert!(matches!(store.create(&deleted, "x").await, Err(StoreError::IdTaken)), "a deleted old id stays retired");
    // Deleting a principal revokes their personal tokens, old and new.
    assert!(store.delete_principal("bob", "op").await.unwrap());
    let mut revoked = 0;
    for t in expected.iter_mut().filter(|t| t.owner == "bob" && t.status != TokenStatus::Revoked) {
        t.status = TokenStatus::Revoked;
        revoked += 1;
    }
    assert_eq!(revoked, 99);
    assert_store_holds(&store, &expected).await;
    assert_eq!(store.audit(1).await.unwrap()[0].action, AuditAction::Revoke);

    // The bulk migration moves the rest, leaves nothing of the old format, and can run again.
    // Principals written by the previous release are not listed until the migration indexes
    // them.
    assert!(store.list_principals(None, 10).await.unwrap().items.is_empty());
    let done = redis.migrate().await.unwrap();
    // Bob's 100 tokens moved with his deletion, and two more when rotated; Alice is indexed.
    assert_eq!(done, Migration { migrated: 300 - 100 - 2, dangling: 0, principals_indexed: 1 });
    let listed = store.list_principals(None, 10).await.unwrap();
    assert_eq!(listed.items.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["alice"]);
    assert_eq!(legacy_keys(&server, "mig"), Vec::<String>::new());
    assert_store_holds(&store, &expected).await;
    assert_eq!(redis.migrate().await.unwrap(), Migration::default());
    let keys = server.command(&["KEYS", "{mig}:gl:*"]);
    assert!(keys.matches("{mig}:gl:").count() >= 3, "300 tokens take several leaves: {keys}");
    // The old audit events are still there, with the new ones on top.
    let audit = store.audit(1000).await.unwrap();
    assert_eq!(audit.len(), 300 + 4 + 1 + 1 + 2 + 1 + 1 + revoked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_migrate_command_moves_every_old_token() {
    let server = RedisServer::start();
    let mut old = PreviousRelease::connect(&server.url(), "cli").await;
    let mut expected = Vec::new();
    for i in 0..3u64 {
        let (_, t) = token_at(&format!("t{i}"), "alice", 1_700_000_000_000 + i);
        old.create(&t, "creator").await;
        expected.push(t);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tokengate.yaml");
    std::fs::write(
        &config,
        format!("upstream: http://127.0.0.1:3000\nstore:\n  redis:\n    url: {}\n    key_prefix: cli\n", server.url()),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .args(["store", "migrate", "--config"])
        .arg(&config)
        .env_remove("TOKENGATE_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("migrated 3 tokens"), "{stdout}");
    assert_eq!(legacy_keys(&server, "cli"), Vec::<String>::new());
    let store: Store = Arc::new(RedisStore::open(&server.config("cli"), StoreOptions::default()).unwrap());
    for t in &expected {
        assert_eq!(store.get(&t.id).await.unwrap().as_ref(), Some(t));
    }
}

fn reply_lines(reply: &str) -> Vec<String> {
    reply.lines().filter(|l| !l.starts_with(['*', '$'])).map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_indexes_stay_small_listpacks_through_splits_and_deletions() {
    let server = RedisServer::start();
    let store: Store = Arc::new(RedisStore::open(&server.config("pg"), StoreOptions::default()).unwrap());
    // 600 tokens created out of order (a permutation of their creation times), by four writers at
    // once: leaves split in the middle as well as at the end, and splits race.
    let tokens: Vec<Token> =
        (0..600u64).map(|i| token_at(&format!("t{i}"), "alice", 1_000_000 + (i * 7919) % 600).1).collect();
    let mut writers = Vec::new();
    for chunk in tokens.chunks(150) {
        let (store, chunk) = (store.clone(), chunk.to_vec());
        writers.push(tokio::spawn(async move {
            for t in &chunk {
                store.create(t, "op").await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    // Delete a long run of the oldest and every third of the rest: leaves empty out.
    let mut by_age = tokens.clone();
    by_age.sort_by_key(|t| Cursor::new(t.created_at, &t.id));
    let mut kept = Vec::new();
    for (i, t) in by_age.into_iter().enumerate() {
        if (100..260).contains(&i) || i % 3 == 0 {
            store.transition(&t.id, Action::Revoke, "op").await.unwrap();
            store.delete(&t.id, "op").await.unwrap();
        } else {
            kept.push(t);
        }
    }
    assert_store_holds(&store, &kept).await;

    for (leaves, dir) in [("{pg}:gl:*", "{pg}:gd"), ("{pg}:ol:alice:*", "{pg}:od:alice")] {
        let keys = reply_lines(&server.command(&["KEYS", leaves]));
        assert!(keys.len() >= 4, "{keys:?}");
        let mut entries = 0;
        for key in &keys {
            assert_eq!(reply_lines(&server.command(&["OBJECT", "ENCODING", key])), ["listpack"], "{key}");
            let n: usize = server.command(&["ZCARD", key]).trim().trim_start_matches(':').parse().unwrap();
            assert!((1..=128).contains(&n), "{key}: {n} entries");
            entries += n;
        }
        assert_eq!(entries, kept.len());
        // Every leaf but the first has a directory member, and every member a leaf.
        let members: usize = server.command(&["ZCARD", dir]).trim().trim_start_matches(':').parse().unwrap();
        assert_eq!(members, keys.iter().filter(|k| !k.ends_with(":0")).count());
    }
}

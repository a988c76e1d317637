//! The store conformance suite: every case runs unchanged against each backend
//! (`tests/store_conformance.rs` instantiates it for the embedded store and for Redis).

use std::net::IpAddr;
use std::time::Duration;

use tokengate::clock::Timestamp;
use tokengate::store::{Cursor, Invalidation, LastUse, ListQuery, Store, StoreError, StoreOptions};
use tokengate::token::TokenId;
use tokengate::token::{Action, AuditAction, DisplayStatus, Principal, Token, TokenKind, TokenStatus, TransitionError};

use crate::support::{minter, new_token, token_at};
use tokengate::store::Issue as _;

/// A backend under test: how to start it and how to restart it with its data.
pub trait Backend: Sized {
    async fn start(options: StoreOptions) -> Self;
    fn store(&self) -> Store;
    /// Restarts the backend; afterwards `store()` must serve the same data.
    async fn restart(&mut self);
}

const ACTOR: &str = "tester";

async fn started<B: Backend>() -> B {
    B::start(StoreOptions::default()).await
}

async fn create(store: &Store, token: &Token) {
    store.create(token, ACTOR).await.expect("create");
}

async fn status_of(store: &Store, id: &TokenId) -> TokenStatus {
    store.get(id).await.unwrap().expect("token exists").status
}

pub async fn create_and_get_round_trip<B: Backend>() {
    let b = started::<B>().await;
    let store = b.store();
    let (_, mut token) = token_at("deploy bot", "alice", 1_000);
    token.scopes = vec!["env:prod".parse().unwrap(), "deployment:api@prod".parse().unwrap()];
    token.roles = vec!["viewer".into(), "developer".into()];
    create(&store, &token).await;
    assert_eq!(store.get(&token.id).await.unwrap(), Some(token.clone()));
    assert_eq!(store.get(&TokenId::generate()).await.unwrap(), None);
    let audit = store.audit(10).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!((audit[0].action, audit[0].token_id, audit[0].actor.as_str()), (AuditAction::Create, token.id, ACTOR));
    assert_eq!((audit[0].token_name.as_str(), audit[0].owner.as_str()), ("deploy bot", "alice"));
}

pub async fn ids_are_unique_and_never_reused<B: Backend>() {
    let b = started::<B>().await;
    let store = b.store();
    let (_, token) = token_at("a", "alice", 1_000);
    create(&store, &token).await;
    let (_, mut twin) = token_at("b", "bob", 2_000);
    twin.id = token.id;
    assert!(matches!(store.create(&twin, ACTOR).await, Err(StoreError::IdTaken)));
    assert_eq!(store.get(&token.id).await.unwrap(), Some(token.clone()), "the original is untouched");

    store.transition(&token.id, Action::Revoke, ACTOR).await.unwrap();
    store.delete(&token.id, ACTOR).await.unwrap();
    assert!(matches!(store.create(&twin, ACTOR).await, Err(StoreError::IdTaken)), "a deleted id is retired");
    assert_eq!(store.get(&token.id).await.unwrap(), None);
}

pub async fn every_transition_follows_the_rules<B: Backend>() {
    use Action::*;
    use TokenStatus::*;
    for allow_restore in [false, true] {
        let b = B::start(StoreOptions { allow_restore, ..StoreOptions::default() }).await;
        let store = b.store();
        for from in [Active, Suspended, Revoked] {
            for action in [Suspend, Activate, Revoke, Restore] {
                let (_, token) = token_at("t", "alice", 1_000);
                create(&store, &token).await;
                // Bring the token to `from` through legal steps.
                match from {
                    Active => {}
                    Suspended => drop(store.transition(&token.id, Suspend, ACTOR).await.unwrap()),
                    Revoked => drop(store.transition(&token.id, Revoke, ACTOR).await.unwrap()),
                }
                let events_before = store.audit(1000).await.unwrap().len();
                let result = store.transition(&token.id, action, ACTOR).await;
                let expected = if action == Restore && !allow_restore {
                    Err(TransitionError::RestoreDisabled)
                } else {
                    action.apply(from).map(|next| next.unwrap_or(from))
                };
                let events_after = store.audit(1000).await.unwrap().len();
                match expected {
                    Ok(next) => {
                        assert_eq!(result.unwrap().status, next, "{action:?} from {from:?}");
                        let changed = next != from;
                        assert_eq!(events_after - events_before, usize::from(changed), "one event per change");
                    }
                    Err(e) => {
                        match result {
                            Err(StoreError::Transition(got)) => assert_eq!(got, e, "{action:?} from {from:?}"),
                            other => panic!("{action:?} from {from:?}: expected {e:?}, got {other:?}"),
                        }
                        assert_eq!(status_of(&store, &token.id).await, from, "a refused transition changes nothing");
                        assert_eq!(events_after, events_before, "a refused transition is not audited");
                    }
                }
            }
        }
        let missing = store.transition(&TokenId::generate(), Suspend, ACTOR).await;
        if allow_restore {
            assert!(matches!(missing, Err(StoreError::NotFound)));
        }
    }
}

pub async fn only_revoked_tokens_can_be_deleted<B: Backend>() {
    let b = started::<B>().await;
    let store = b.store();
    let (_, token) = token_at("t", "alice", 1_000);
    create(&store, &token).await;
    for status in ["active", "suspended"] {
        if status == "suspended" {
            store.transition(&token.id, Action::Suspend, ACTOR).await.unwrap();
        }
        match store.delete(&token.id, ACTOR).await {
            Err(StoreError::NotRevoked(s)) => assert_eq!(s, status),
            other => panic!("deleting a {status} token: {other:?}"),
        }
        assert!(store.get(&token.id).await.unwrap().is_some(), "still there after a refused delete");
    }
    assert!(matches!(store.delete(&TokenId::generate(), ACTOR).await, Err(StoreError::NotFound)));
    store.transition(&token.id, Action::Revoke, ACTOR).await.unwrap();
    let deleted = store.delete(&token.id, ACTOR).await.unwrap();
    assert_eq!(deleted.id, token.id);
    assert_eq!(store.get(&token.id).await.unwrap(), None);
    assert!(store.list(&ListQuery::default()).await.unwrap().tokens.is_empty());
    assert!(
        store.list(&ListQuery { owner: Some("alice".into()), ..Default::default() }).await.unwrap().tokens.is_empty()
    );
    assert!(matches!(store.delete(&token.id, ACTOR).await, Err(StoreError::NotFound)));
    let audit = store.audit(1).await.unwrap();
    assert_eq!((audit[0].action, audit[0].token_id), (AuditAction::Delete, token.id));
}

/// Many tasks race lifecycle actions on one token. Atomicity means the audit log, replayed
/// through the lifecycle rules, explains the final state exactly: no lost or phantom update.
pub async fn concurrent_transitions_are_atomic<B: Backend>() {
    let b = B::start(StoreOptions { allow_restore: true, audit_limit: 100_000 }).await;
    let store = b.store();
    for round in 0..5 {
        let (_, token) = token_at("race", "alice", 1_000 + round);
        create(&store, &token).await;
        let actions = [Action::Suspend, Action::Activate, Action::Revoke, Action::Restore];
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = store.clone();
            let id = token.id;
            tasks.push(tokio::spawn(async move {
                let action = actions[(i * 7 + round as usize) % actions.len()];
                (action, store.transition(&id, action, ACTOR).await)
            }));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        for (action, result) in &outcomes {
            if let Err(e) = result {
                assert!(matches!(e, StoreError::Transition(TransitionError::Conflict { .. })), "{action:?}: {e:?}");
            }
        }
        let mut events = store.audit(100_000).await.unwrap();
        events.retain(|e| e.token_id == token.id);
        events.reverse(); // oldest first
        let mut state = TokenStatus::Active;
        for e in events.iter().skip(1) {
            let action = match e.action {
                AuditAction::Suspend => Action::Suspend,
                AuditAction::Activate => Action::Activate,
                AuditAction::Revoke => Action::Revoke,
                AuditAction::Restore => Action::Restore,
                other => panic!("unexpected {other:?}"),
            };
            state = action.apply(state).expect("every logged change was legal").expect("every logged event changed");
        }
        assert_eq!(status_of(&store, &token.id).await, state, "round {round}: audit log explains the final state");
        let changes = outcomes.iter().filter(|(_, r)| r.is_ok()).count();
        assert!(changes >= events.len() - 1, "each logged change came from a successful call");
    }
}

/// Creates `n` tokens spread over two owners with predictable names and creation times.
async fn populate(store: &Store, n: usize) -> Vec<Token> {
    let mut tokens = Vec::with_capacity(n);
    let start = Timestamp::now().millis() - n as u64;
    for i in 0..n {
        let owner = if i % 3 == 0 { "bob" } else { "alice" };
        let name = if i % 10 == 0 { format!("Deploy-{i}") } else { format!("token {i}") };
        // Several tokens share a millisecond, so the id tie-break is exercised too.
        let (_, mut t) = token_at(&name, owner, start + (i as u64 / 3));
        if i % 7 == 0 {
            t.kind = TokenKind::Organization;
        }
        tokens.push(t);
    }
    let chunks: Vec<Vec<Token>> = tokens.chunks(n.div_ceil(8).max(1)).map(<[Token]>::to_vec).collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for t in &chunk {
                store.create(t, ACTOR).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    tokens
}

/// Follows cursors to the end, counting calls.
async fn list_all(store: &Store, query: ListQuery) -> (Vec<Token>, usize) {
    let mut out = Vec::new();
    let mut query = query;
    let mut calls = 0;
    loop {
        let page = store.list(&query).await.unwrap();
        calls += 1;
        assert!(page.tokens.len() <= query.limit);
        out.extend(page.tokens);
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => return (out, calls),
        }
        assert!(calls < 10_000, "pagination does not terminate");
    }
}

fn newest_first(tokens: &[Token]) -> Vec<TokenId> {
    let mut v: Vec<(Cursor, TokenId)> = tokens.iter().map(|t| (Cursor::new(t.created_at, &t.id), t.id)).collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.0));
    v.into_iter().map(|(_, id)| id).collect()
}

fn ids(tokens: &[Token]) -> Vec<TokenId> {
    tokens.iter().map(|t| t.id).collect()
}

pub async fn listing_is_newest_first_with_filters_and_pagination<B: Backend>() {
    let b = started::<B>().await;
    let store = b.store();
    let all = populate(&store, 3_000).await;

    // Everything, in pages of 128: every token exactly once, newest first.
    let (listed, calls) = list_all(&store, ListQuery { limit: 128, ..Default::default() }).await;
    assert_eq!(ids(&listed), newest_first(&all));
    assert_eq!(calls, 3_000usize.div_ceil(128));

    // One owner, served from the owner index.
    let bobs: Vec<Token> = all.iter().filter(|t| t.owner == "bob").cloned().collect();
    let (listed, _) = list_all(&store, ListQuery { owner: Some("bob".into()), limit: 77, ..Default::default() }).await;
    assert_eq!(ids(&listed), newest_first(&bobs));

    // Case-insensitive name substring.
    let deploys: Vec<Token> = all.iter().filter(|t| t.name.starts_with("Deploy-")).cloned().collect();
    let (listed, _) = list_all(&store, ListQuery { limit: 25, ..Default::default() }.name("dEpLoY")).await;
    assert_eq!(ids(&listed), newest_first(&deploys));

    // Kind and status filters, combined with an owner.
    store.transition(&bobs[0].id, Action::Suspend, ACTOR).await.unwrap();
    let (listed, _) = list_all(
        &store,
        ListQuery { owner: Some("bob".into()), status: Some(DisplayStatus::Suspended), ..Default::default() },
    )
    .await;
    assert_eq!(ids(&listed), vec![bobs[0].id]);
    let orgs: Vec<Token> = all.iter().filter(|t| t.kind == TokenKind::Organization).cloned().collect();
    let (listed, _) =
        list_all(&store, ListQuery { kind: Some(TokenKind::Organization), limit: 50, ..Default::default() }).await;
    assert_eq!(ids(&listed), newest_first(&orgs));

    // Expired is derived from the query's clock.
    let later = Timestamp(all.iter().map(|t| t.expires_at.millis()).max().unwrap() + 1);
    let (listed, _) = list_all(
        &store,
        ListQuery { status: Some(DisplayStatus::Expired), now: later, limit: 500, ..Default::default() },
    )
    .await;
    assert_eq!(listed.len(), all.len(), "once past expiry every unrevoked token shows as expired, suspended ones too");
    let (listed, _) =
        list_all(&store, ListQuery { status: Some(DisplayStatus::Active), now: later, ..Default::default() }).await;
    assert!(listed.is_empty());
}

/// A filter that matches nothing must not make one call walk the whole index: each call
/// examines a bounded number of entries and hands back a cursor.
pub async fn filtered_listing_scans_a_bounded_number_of_entries<B: Backend>() {
    let b = started::<B>().await;
    let store = b.store();
    populate(&store, 2_500).await;
    let first = store.list(&ListQuery::default().name("no such name")).await.unwrap();
    assert!(first.tokens.is_empty());
    assert!(first.next_cursor.is_some(), "a budget-limited page says where to continue");
    let (listed, calls) = list_all(&store, ListQuery::default().name("no such name")).await;
    assert!(listed.is_empty());
    assert_eq!(calls, 3, "2,500 entries at 1,000 per call");
}

pub async fn last_used_only_moves_forward<B: Backend>() {
    let b = started::<B>().await;
    let store = b.store();
    let (_, a) = token_at("a", "alice", 1_000);
    let (_, c) = token_at("c", "alice", 1_001);
    create(&store, &a).await;
    create(&store, &c).await;
    assert_eq!(store.get(&a.id).await.unwrap().unwrap().last_used_at, None, "never used");
    let ip: IpAddr = "10.1.2.3".parse().unwrap();
    let use_at = |id, ms| LastUse { id, at: Timestamp(ms), from: Some(ip) };

    let moved = store.record_last_used(&[use_at(a.id, 5_000), use_at(TokenId::generate(), 9_000)]).await.unwrap();
    assert_eq!(moved, 1, "unknown ids are skipped");
    let got = store.get(&a.id).await.unwrap().unwrap();
    assert_eq!((got.last_used_at, got.last_used_from.as_deref()), (Some(Timestamp(5_000)), Some("10.1.2.3")));

    let older = LastUse { id: a.id, at: Timestamp(4_000), from: None };
    assert_eq!(store.record_last_used(&[older, use_at(c.id, 7_000)]).await.unwrap(), 1);
    assert_eq!(store.get(&a.id).await.unwrap().unwrap().last_used_at, Some(Timestamp(5_000)), "never moves back");
    assert_eq!(store.get(&c.id).await.unwrap().unwrap().last_used_at, Some(Timestamp(7_000)));

    // A large batch (more than one script call on Redis) and an empty one.
    let many: Vec<LastUse> = (0..1_200).map(|i| use_at(a.id, 6_000 + i)).collect();
    assert_eq!(store.record_last_used(&many).await.unwrap(), 1_200);
    assert_eq!(store.get(&a.id).await.unwrap().unwrap().last_used_at, Some(Timestamp(7_199)));
    assert_eq!(store.record_last_used(&[]).await.unwrap(), 0);

    // Lifecycle changes keep last-used, and last-used writes keep the status.
    store.transition(&a.id, Action::Suspend, ACTOR).await.unwrap();
    store.record_last_used(&[use_at(a.id, 8_000)]).await.unwrap();
    let got = store.get(&a.id).await.unwrap().unwrap();
    assert_eq!((got.status, got.last_used_at), (TokenStatus::Suspended, Some(Timestamp(8_000))));
}

pub async fn principal_deletion_revokes_personal_tokens_only<B: Backend>() {
    let b = started::<B>().await;
    let store = b.store();
    for _ in 0..200 {
        if store.invalidations_connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let alice = Principal {
        id: "alice".into(),
        display_name: "Alice".into(),
        org: Some("acme".into()),
        roles: vec!["viewer".into(), "developer".into()],
        limits: Default::default(),
        ..Default::default()
    };
    store.put_principal(&alice).await.unwrap();
    assert_eq!(store.get_principal("alice").await.unwrap(), Some(alice.clone()));
    assert_eq!(store.get_principal("nobody").await.unwrap(), None);

    let m = minter();
    let mut req = new_token(TokenKind::Personal, "mine", "alice");
    req.roles = vec!["viewer".into(), "developer".into()];
    let (_, personal) = m.issue(store.as_ref(), &req).await.unwrap();
    let mut req = new_token(TokenKind::Organization, "ci", "acme");
    req.created_by = "alice".into();
    req.roles = vec!["developer".into()];
    let (_, org) = m.issue(store.as_ref(), &req).await.unwrap();

    let owner = store.get_principal(&personal.owner).await.unwrap();
    assert_eq!(personal.effective_roles(owner.as_ref()), Some(vec!["viewer", "developer"]));

    // Changing a person's roles changes what their token grants.
    let demoted = Principal { roles: vec!["viewer".into()], ..alice.clone() };
    store.put_principal(&demoted).await.unwrap();
    let owner = store.get_principal("alice").await.unwrap();
    assert_eq!(personal.effective_roles(owner.as_ref()), Some(vec!["viewer"]));

    // A second personal token already revoked, and a principal whose id is also an
    // organization's id (its organization tokens are not theirs).
    let (_, old) = m.issue(store.as_ref(), &new_token(TokenKind::Personal, "old", "alice")).await.unwrap();
    store.transition(&old.id, Action::Revoke, ACTOR).await.unwrap();
    let acme = Principal {
        id: "acme".into(),
        display_name: "Acme".into(),
        org: None,
        roles: vec![],
        limits: Default::default(),
        ..Default::default()
    };
    store.put_principal(&acme).await.unwrap();
    let mut rx = store.invalidations();
    let events_before = store.audit(1000).await.unwrap().len();

    assert!(store.delete_principal("alice", "operator").await.unwrap());
    assert!(!store.delete_principal("alice", "operator").await.unwrap(), "second delete reports absence");
    assert!(store.delete_principal("acme", "operator").await.unwrap());
    let owner = store.get_principal("alice").await.unwrap();
    assert_eq!(owner, None);
    let revoked = store.get(&personal.id).await.unwrap().unwrap();
    assert_eq!(revoked.status, TokenStatus::Revoked, "deleting the owner revokes their personal tokens");
    assert_eq!(revoked.effective_roles(owner.as_ref()), None, "personal token grants nothing");
    let org = store.get(&org.id).await.unwrap().unwrap();
    assert_eq!(org.status, TokenStatus::Active, "the organization token they created is not theirs");
    assert_eq!(org.effective_roles(None), Some(vec!["developer"]), "organization token keeps working");

    // Exactly one audit event: the revocation of the one token that was still working.
    let events = store.audit(1000).await.unwrap();
    assert_eq!(events.len() - events_before, 1, "{events:?}");
    let e = &events[0];
    assert_eq!((e.action, e.token_id, e.actor.as_str()), (AuditAction::Revoke, personal.id, "operator"));
    assert_eq!((e.token_name.as_str(), e.owner.as_str()), ("mine", "alice"));
    // Messages published before the deletions (`p:acme` from `put_principal`) may still be on
    // their way: wait for the ones the deletion must publish.
    let mut seen = Vec::new();
    let wanted = [Invalidation::Token(personal.id), Invalidation::Principal("alice".into())];
    while let Ok(Ok(inv)) = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
        if inv != Invalidation::All {
            seen.push(inv);
        }
        if wanted.iter().all(|w| seen.contains(w)) {
            break;
        }
    }
    assert!(seen.contains(&Invalidation::Token(personal.id)), "{seen:?}");
    assert!(seen.contains(&Invalidation::Principal("alice".into())), "{seen:?}");

    // Re-creating the id (a reused e-mail) brings none of the old tokens back.
    store.put_principal(&alice).await.unwrap();
    assert_eq!(store.get(&personal.id).await.unwrap().unwrap().status, TokenStatus::Revoked);
}

pub async fn audit_is_newest_first_and_capped<B: Backend>() {
    let b = B::start(StoreOptions { allow_restore: false, audit_limit: 5 }).await;
    let store = b.store();
    let (_, t) = token_at("audited", "alice", 1_000);
    create(&store, &t).await;
    for action in [Action::Suspend, Action::Activate, Action::Suspend, Action::Activate, Action::Revoke] {
        store.transition(&t.id, action, "operator").await.unwrap();
    }
    store.delete(&t.id, "operator").await.unwrap();
    let events = store.audit(100).await.unwrap();
    let actions: Vec<AuditAction> = events.iter().map(|e| e.action).collect();
    use AuditAction::*;
    assert_eq!(actions, vec![Delete, Revoke, Activate, Suspend, Activate], "7 events, newest 5 kept");
    assert!(events.iter().all(|e| e.actor == "operator" && e.token_id == t.id && e.token_name == "audited"));
    assert!(events.windows(2).all(|w| w[0].at >= w[1].at));
    assert_eq!(store.audit(2).await.unwrap().len(), 2);
    assert!(store.audit(0).await.unwrap().is_empty());
}

pub async fn changes_publish_invalidations<B: Backend>() {
    let b = started::<B>().await;
    let store = b.store();
    let mut rx = store.invalidations();
    for _ in 0..200 {
        if store.invalidations_connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(store.invalidations_connected());
    let (_, t) = token_at("t", "alice", 1_000);
    create(&store, &t).await;
    store.transition(&t.id, Action::Revoke, ACTOR).await.unwrap();
    store.delete(&t.id, ACTOR).await.unwrap();
    let p = Principal {
        id: "bob".into(),
        display_name: "Bob".into(),
        org: None,
        roles: vec![],
        limits: Default::default(),
        ..Default::default()
    };
    store.put_principal(&p).await.unwrap();
    store.delete_principal("bob", ACTOR).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 5 {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("invalidation arrives").unwrap() {
            Invalidation::All => continue,
            inv => seen.push(inv),
        }
    }
    let token = Invalidation::Token(t.id);
    let bob = Invalidation::Principal("bob".into());
    assert_eq!(seen, vec![token.clone(), token.clone(), token, bob.clone(), bob]);
}

pub async fn restart_keeps_data_and_the_store_recovers<B: Backend>() {
    let mut b = started::<B>().await;
    let m = minter();
    let (_, token) = m.issue(b.store().as_ref(), &new_token(TokenKind::Personal, "survivor", "alice")).await.unwrap();
    b.store().transition(&token.id, Action::Suspend, ACTOR).await.unwrap();
    let alice = Principal {
        id: "alice".into(),
        display_name: "Alice".into(),
        org: None,
        roles: vec!["viewer".into()],
        limits: Default::default(),
        ..Default::default()
    };
    b.store().put_principal(&alice).await.unwrap();
    b.store().record_last_used(&[LastUse { id: token.id, at: Timestamp(42), from: None }]).await.unwrap();

    b.restart().await;

    let store = b.store();
    let got = store.get(&token.id).await.unwrap().expect("token survives the restart");
    assert_eq!((got.status, got.last_used_at), (TokenStatus::Suspended, Some(Timestamp(42))));
    assert_eq!(store.get_principal("alice").await.unwrap(), Some(alice));
    assert_eq!(ids(&store.list(&ListQuery::default()).await.unwrap().tokens), vec![token.id]);
    assert_eq!(store.audit(10).await.unwrap().len(), 2);
    // And it takes writes again.
    store.transition(&token.id, Action::Activate, ACTOR).await.unwrap();
    let (_, second) = m.issue(store.as_ref(), &new_token(TokenKind::Personal, "after", "alice")).await.unwrap();
    assert_eq!(store.list(&ListQuery::default()).await.unwrap().tokens.len(), 2);
    assert_eq!(status_of(&store, &second.id).await, TokenStatus::Active);
}

pub async fn rotation_replaces_the_secret_with_an_optional_grace_period<B: Backend>() {
    use tokengate::auth::verify::{Rejection, check};
    use tokengate::token::TokenFormat;
    use tokengate::token::digest::Hasher;

    let b = started::<B>().await;
    let store = b.store();
    let m = minter();
    let (old, token) = m.issue(store.as_ref(), &new_token(TokenKind::Personal, "rotating", "alice")).await.unwrap();
    store.record_last_used(&[LastUse { id: token.id, at: Timestamp(9), from: None }]).await.unwrap();
    let format = TokenFormat::default();
    let hasher = Hasher::new(None);
    let verdict = |secret: &str, record: &Token, now: Timestamp| {
        check(&hasher, &format.parse(secret).unwrap(), Some(record), now)
    };

    // With a grace period: both secrets work until it ends.
    let (new, digest) = m.remint(&token);
    let grace_until = Timestamp::now().saturating_add(Duration::from_secs(3600));
    let rotated = store.rotate(&token.id, &token.digest, &digest, Some(grace_until), "op").await.unwrap();
    assert_eq!((rotated.id, rotated.name.as_str(), rotated.created_at), (token.id, "rotating", token.created_at));
    assert_eq!(rotated.last_used_at, Some(Timestamp(9)), "rotation keeps last-used");
    let stored = store.get(&token.id).await.unwrap().unwrap();
    let now = Timestamp::now();
    assert_eq!(verdict(new.expose(), &stored, now), Ok(()));
    assert_eq!(verdict(old.expose(), &stored, now), Ok(()), "old secret works during the grace period");
    assert_eq!(verdict(old.expose(), &stored, grace_until), Err(Rejection::Mismatch), "and not after it");

    // Without one: the previous secret stops at once.
    let (newest, digest) = m.remint(&token);
    let stale = store.rotate(&token.id, &token.digest, &digest, None, "op").await;
    assert!(matches!(stale, Err(StoreError::RotatedMeanwhile)), "the digest read before is stale: {stale:?}");
    store.rotate(&token.id, &rotated.digest, &digest, None, "op").await.unwrap();
    let stored = store.get(&token.id).await.unwrap().unwrap();
    assert_eq!(verdict(newest.expose(), &stored, now), Ok(()));
    assert_eq!(verdict(new.expose(), &stored, now), Err(Rejection::Mismatch));
    assert_eq!(store.audit(1).await.unwrap()[0].action, AuditAction::Rotate);

    // Revoked or missing tokens cannot be rotated, and nothing changes.
    store.transition(&token.id, Action::Revoke, "op").await.unwrap();
    let (_, digest) = m.remint(&token);
    let current = store.get(&token.id).await.unwrap().unwrap().digest;
    assert!(matches!(store.rotate(&token.id, &current, &digest, None, "op").await, Err(StoreError::RotateRevoked)));
    assert!(matches!(
        store.rotate(&TokenId::generate(), &current, &digest, None, "op").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(verdict(newest.expose(), &store.get(&token.id).await.unwrap().unwrap(), now), Err(Rejection::Revoked));
}

/// Concurrent rotations of one token, each from the same read: exactly one wins, every other
/// one is told the token changed meanwhile (nothing is overwritten), and the winner's secret is
/// the one that works.
pub async fn concurrent_rotations_have_exactly_one_winner<B: Backend>() {
    use tokengate::auth::verify::check;
    use tokengate::token::TokenFormat;
    use tokengate::token::digest::Hasher;

    let b = started::<B>().await;
    let store = b.store();
    let m = minter();
    let format = TokenFormat::default();
    let hasher = Hasher::new(None);
    for round in 0..5 {
        let (_, token) =
            m.issue(store.as_ref(), &new_token(TokenKind::Personal, &format!("race {round}"), "alice")).await.unwrap();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (store, token, barrier) = (store.clone(), token.clone(), barrier.clone());
            let (secret, digest) = m.remint(&token);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                (secret, store.rotate(&token.id, &token.digest, &digest, None, "op").await)
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                (secret, Ok(_)) => winners.push(secret),
                (_, Err(StoreError::RotatedMeanwhile)) => {}
                (_, Err(e)) => panic!("round {round}: a losing rotation must be a conflict, got {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one rotation wins");
        let stored = store.get(&token.id).await.unwrap().unwrap();
        let now = Timestamp::now();
        assert_eq!(check(&hasher, &format.parse(winners[0].expose()).unwrap(), Some(&stored), now), Ok(()));
        let rotations = store.audit(1000).await.unwrap();
        let rotations = rotations.iter().filter(|e| e.token_id == token.id && e.action == AuditAction::Rotate);
        assert_eq!(rotations.count(), 1, "round {round}: only the winner is audited");
    }
}

pub async fn permits_follow_the_rate_limit_and_the_quota<B: Backend>() {
    use tokengate::token::limits::{RateLimit, TokenLimits};
    let b = started::<B>().await;
    let store = b.store();
    let (_, token) =
        minter().issue(store.as_ref(), &new_token(TokenKind::Organization, "metered", "acme")).await.unwrap();
    let id = token.id;

    // 10 a second, 3 at once: a burst of 3, then one every 100 ms.
    let rate =
        TokenLimits { rate: Some(RateLimit { requests: 10, window_secs: 1, burst: Some(3) }), ..Default::default() };
    let first = store.take_permits(&id, &rate, 5).await.unwrap();
    assert_eq!((first.granted, first.remaining, first.quota_exhausted), (3, 0, false));
    let refused = store.take_permits(&id, &rate, 1).await.unwrap();
    assert_eq!(refused.granted, 0);
    assert!(refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_millis(100), "{refused:?}");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let later = store.take_permits(&id, &rate, 5).await.unwrap();
    assert!((2..=3).contains(&later.granted), "{later:?}");

    // A quota of 4 (another token): granted until used up, then exhausted for good.
    let (_, other) =
        minter().issue(store.as_ref(), &new_token(TokenKind::Organization, "quota", "acme")).await.unwrap();
    let quota = TokenLimits { quota: Some(4), ..Default::default() };
    assert_eq!(store.take_permits(&other.id, &quota, 3).await.unwrap().granted, 3);
    assert_eq!(store.take_permits(&other.id, &quota, 3).await.unwrap().granted, 1);
    let done = store.take_permits(&other.id, &quota, 1).await.unwrap();
    assert_eq!((done.granted, done.quota_exhausted), (0, true));
    // Raising the quota lets the token go on from what it used.
    let raised = TokenLimits { quota: Some(6), ..Default::default() };
    assert_eq!(store.take_permits(&other.id, &raised, 5).await.unwrap().granted, 2);
}

pub async fn limits_can_be_replaced_without_touching_the_rest<B: Backend>() {
    use tokengate::token::digest::Hasher;
    use tokengate::token::limits::{RateLimit, TokenLimits};
    let b = started::<B>().await;
    let store = b.store();
    let (_, token) = minter().issue(store.as_ref(), &new_token(TokenKind::Personal, "edited", "alice")).await.unwrap();
    let mut rx = store.invalidations();
    let limits = TokenLimits {
        rate: Some(RateLimit { requests: 10, window_secs: 60, burst: Some(2) }),
        quota: Some(99),
        networks: vec!["10.0.0.0/8".parse().unwrap()],
    };
    let changed = store.set_limits(&token.id, &limits, ACTOR).await.unwrap();
    assert_eq!(changed.limits, limits);
    let got = store.get(&token.id).await.unwrap().unwrap();
    assert_eq!(got, Token { limits: limits.clone(), ..token.clone() }, "only the limits changed");
    let event = &store.audit(1).await.unwrap()[0];
    assert_eq!((event.action, event.token_id), (AuditAction::Limits, token.id));
    if store.invalidations_connected() {
        let seen = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match rx.recv().await.unwrap() {
                    Invalidation::Token(id) if id == token.id => return,
                    _ => {}
                }
            }
        })
        .await;
        assert!(seen.is_ok(), "an invalidation for the token");
    }
    // A rotation still compares the digest alone.
    let new = Hasher::new(None).digest("new secret");
    store.rotate(&token.id, &token.digest, &new, None, ACTOR).await.unwrap();
    let rotated = store.get(&token.id).await.unwrap().unwrap();
    assert_eq!((rotated.limits, rotated.digest), (limits.clone(), new));
    // Back to none; refused once revoked, and for unknown ids.
    let cleared = store.set_limits(&token.id, &TokenLimits::default(), ACTOR).await.unwrap();
    assert!(cleared.limits.is_unlimited());
    store.transition(&token.id, Action::Revoke, ACTOR).await.unwrap();
    assert!(matches!(store.set_limits(&token.id, &limits, ACTOR).await, Err(StoreError::Transition(_))));
    assert!(store.get(&token.id).await.unwrap().unwrap().limits.is_unlimited());
    let unknown = TokenId::parse("ZZZZZZZZZZZZ").unwrap();
    assert!(matches!(store.set_limits(&unknown, &TokenLimits::default(), ACTOR).await, Err(StoreError::NotFound)));
}

/// Every principal, page by page, with the page sizes seen.
async fn all_principals(store: &Store, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..1000 {
        let page = store.list_principals(after.as_deref(), limit).await.unwrap();
        assert!(page.items.len() <= limit.max(1));
        ids.extend(page.items.into_iter().map(|p| p.id));
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => return ids,
        }
    }
    panic!("listing never ended");
}

pub async fn principals_are_listed_by_id_with_a_cursor<B: Backend>() {
    let b = started::<B>().await;
    let store = b.store();
    assert!(store.list_principals(None, 10).await.unwrap().items.is_empty());
    // Ids that sort differently as bytes and as text, with every allowed punctuation.
    let mut want: Vec<String> =
        ["zed", "Alice", "alice", "a.b", "a_b", "a@b", "a:b", "a-b", "0", "org:acme", "~"].map(String::from).to_vec();
    want.retain(|id| tokengate::token::valid_subject_id(id));
    for id in &want {
        let p = Principal { id: id.clone(), display_name: id.to_uppercase(), ..Default::default() };
        store.put_principal(&p).await.unwrap();
    }
    // A replaced principal is listed once.
    store
        .put_principal(&Principal { id: "alice".into(), display_name: "again".into(), ..Default::default() })
        .await
        .unwrap();
    want.sort();
    for limit in [1, 2, 3, 100] {
        assert_eq!(all_principals(&store, limit).await, want, "page size {limit}");
    }
    let first = store.list_principals(None, 100).await.unwrap();
    assert_eq!(first.next_cursor, None, "a page that holds everything has no cursor");
    assert_eq!(first.items.iter().find(|p| p.id == "alice").unwrap().display_name, "again");
    // Continuing after an id that does not exist starts at the next one.
    let after = store.list_principals(Some("a.c"), 1).await.unwrap();
    assert_eq!(after.items[0].id, *want.iter().find(|id| id.as_str() > "a.c").unwrap());
    // Deleted principals leave the listing.
    assert!(store.delete_principal("alice", ACTOR).await.unwrap());
    want.retain(|id| id != "alice");
    assert_eq!(all_principals(&store, 4).await, want);
}

fn group(id: &str, name: &str, members: &[&str]) -> tokengate::token::Group {
    tokengate::token::Group {
        id: id.into(),
        display_name: name.into(),
        external_id: Some(format!("ext-{name}")),
        members: members.iter().map(|m| m.to_string()).collect(),
        created_at: Timestamp(1_000),
        updated_at: Timestamp(2_000),
    }
}

pub async fn groups_round_trip_and_are_listed_by_id<B: Backend>() {
    let b = started::<B>().await;
    let store = b.store();
    let ids: Vec<String> = (0..7).map(|i| format!("{i:032x}")).rev().collect();
    for (i, id) in ids.iter().enumerate() {
        store.put_group(&group(id, &format!("g{i}"), &["alice", "bob"])).await.unwrap();
    }
    let g = group(&ids[0], "renamed", &["carol"]);
    store.put_group(&g).await.unwrap();
    assert_eq!(store.get_group(&ids[0]).await.unwrap(), Some(g.clone()));
    assert_eq!(store.get_group(&format!("{:032x}", 99)).await.unwrap(), None);
    let mut sorted = ids.clone();
    sorted.sort();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_groups(after.as_deref(), 3).await.unwrap();
        seen.extend(page.items.iter().map(|g| g.id.clone()));
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, sorted);
    assert!(store.delete_group(&ids[3]).await.unwrap());
    assert!(!store.delete_group(&ids[3]).await.unwrap(), "a second delete reports absence");
    assert_eq!(store.get_group(&ids[3]).await.unwrap(), None);
    assert_eq!(store.list_groups(None, 100).await.unwrap().items.len(), 6);
}

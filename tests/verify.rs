//! Verification against a real (embedded) store wrapped in a call counter: malformed tokens are
//! refused without a single store call, and each refusal reason is reported precisely.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokengate::clock::Timestamp;
use tokengate::digest::{Hasher, Pepper};
use tokengate::mint::Minter;
use tokengate::model::{Action, AuditEvent, Principal, Token, TokenKind};
use tokengate::store::embedded::EmbeddedStore;
use tokengate::store::{Invalidation, LastUse, ListQuery, Page, Store, StoreError, StoreOptions, TokenStore};
use tokengate::token::{ParseError, TokenFormat, TokenId};
use tokengate::verify::{Rejection, Verifier, VerifyError};
use tokio::sync::broadcast;

use support::new_token;

/// Counts every call that reaches the real store underneath.
struct Counting {
    inner: EmbeddedStore,
    calls: AtomicUsize,
}

impl Counting {
    fn hit(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl TokenStore for Counting {
    fn backend(&self) -> &'static str {
        "counting"
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.hit();
        self.inner.ping().await
    }
    async fn create(&self, token: &Token, actor: &str) -> Result<(), StoreError> {
        self.hit();
        self.inner.create(token, actor).await
    }
    async fn get(&self, id: &TokenId) -> Result<Option<Token>, StoreError> {
        self.hit();
        self.inner.get(id).await
    }
    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        self.hit();
        self.inner.list(query).await
    }
    async fn transition(&self, id: &TokenId, action: Action, actor: &str) -> Result<Token, StoreError> {
        self.hit();
        self.inner.transition(id, action, actor).await
    }
    async fn delete(&self, id: &TokenId, actor: &str) -> Result<Token, StoreError> {
        self.hit();
        self.inner.delete(id, actor).await
    }
    async fn record_last_used(&self, uses: &[LastUse]) -> Result<usize, StoreError> {
        self.hit();
        self.inner.record_last_used(uses).await
    }
    async fn put_principal(&self, p: &Principal) -> Result<(), StoreError> {
        self.hit();
        self.inner.put_principal(p).await
    }
    async fn get_principal(&self, id: &str) -> Result<Option<Principal>, StoreError> {
        self.hit();
        self.inner.get_principal(id).await
    }
    async fn delete_principal(&self, id: &str) -> Result<bool, StoreError> {
        self.hit();
        self.inner.delete_principal(id).await
    }
    async fn audit(&self, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        self.hit();
        self.inner.audit(limit).await
    }
    fn invalidations(&self) -> broadcast::Receiver<Invalidation> {
        self.inner.invalidations()
    }
    fn invalidations_connected(&self) -> bool {
        self.inner.invalidations_connected()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    counting: Arc<Counting>,
    minter: Minter,
    verifier: Verifier,
}

impl Fixture {
    async fn new(pepper: Option<&Pepper>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let inner = EmbeddedStore::open(&dir.path().join("t.redb"), StoreOptions::default()).await.unwrap();
        let counting = Arc::new(Counting { inner, calls: AtomicUsize::new(0) });
        let store: Store = counting.clone();
        let minter = Minter::new(TokenFormat::default(), Hasher::new(pepper));
        let verifier = Verifier::new(TokenFormat::default(), Hasher::new(pepper), store);
        Self { _dir: dir, counting, minter, verifier }
    }

    async fn issue(&self, kind: TokenKind) -> (String, Token) {
        let (secret, token) = self.minter.issue(self.counting.as_ref(), &new_token(kind, "t", "alice")).await.unwrap();
        (secret.expose().to_string(), token)
    }

    fn calls(&self) -> usize {
        self.counting.calls.load(Ordering::SeqCst)
    }

    async fn rejection(&self, presented: &str) -> Rejection {
        match self.verifier.verify(presented, Timestamp::now()).await {
            Err(VerifyError::Rejected(r)) => r,
            other => panic!("{presented:?} should be rejected, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn malformed_tokens_never_reach_the_store() {
    let f = Fixture::new(None).await;
    let (good, _) = f.issue(TokenKind::Personal).await;
    let before = f.calls();

    let mut inputs: Vec<String> = vec![
        String::new(),
        "tgp_".into(),
        "tgp".into(),
        "Bearer ".into(),
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a".into(),
        format!("tgx{}", &good[3..]),
        good[..good.len() - 1].into(),
        format!("{good}0"),
        format!(" {good}"),
        format!("{good}\n"),
        good.replace('_', "-"),
        format!("{}é{}", &good[..10], &good[12..]),
        "tgp_".to_string() + &"0".repeat(58),
    ];
    // Every single-character substitution of a valid token, over the whole alphabet.
    let alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-";
    for i in 0..good.len() {
        for c in alphabet.chars() {
            if good.as_bytes()[i] as char != c {
                let mut s = good.clone().into_bytes();
                s[i] = c as u8;
                inputs.push(String::from_utf8(s).unwrap());
            }
        }
    }
    for input in &inputs {
        assert!(matches!(f.rejection(input).await, Rejection::Malformed(_)), "{input:?}");
    }
    assert_eq!(f.calls(), before, "{} malformed inputs made no store call", inputs.len());

    // A well-formed token costs exactly one lookup.
    f.verifier.verify(&good, Timestamp::now()).await.unwrap();
    assert_eq!(f.calls(), before + 1);
}

#[tokio::test]
async fn each_refusal_has_its_reason() {
    let f = Fixture::new(None).await;
    let format = TokenFormat::default();

    // Well-formed but unknown.
    let (_, stranger) = format.generate(TokenKind::Personal);
    assert_eq!(f.rejection(stranger.expose()).await, Rejection::Unknown);

    // A known id with a different (correctly check-summed) secret.
    let (good, token) = f.issue(TokenKind::Personal).await;
    let forged = format.generate_with_id(TokenKind::Personal, token.id);
    assert_eq!(f.rejection(forged.expose()).await, Rejection::Mismatch);

    let store = f.counting.clone();
    store.transition(&token.id, Action::Suspend, "op").await.unwrap();
    assert_eq!(f.rejection(&good).await, Rejection::Suspended);
    store.transition(&token.id, Action::Revoke, "op").await.unwrap();
    assert_eq!(f.rejection(&good).await, Rejection::Revoked);

    let (org, org_token) = f.issue(TokenKind::Organization).await;
    assert_eq!(f.verifier.verify(&org, Timestamp::now()).await.unwrap().id, org_token.id);
    let after_expiry = org_token.expires_at.saturating_add(Duration::from_millis(1));
    match f.verifier.verify(&org, after_expiry).await {
        Err(VerifyError::Rejected(Rejection::Expired)) => {}
        other => panic!("expected expired, got {other:?}"),
    }
    assert_eq!(Rejection::Malformed(ParseError::Checksum).as_str(), "malformed");
}

#[tokio::test]
async fn the_pepper_binds_digests_to_this_server() {
    let a = Pepper::new(b"pepper-number-one-32-bytes-long!".to_vec()).unwrap();
    let b = Pepper::new(b"pepper-number-two-32-bytes-long!".to_vec()).unwrap();
    let f = Fixture::new(Some(&a)).await;
    let (good, _) = f.issue(TokenKind::Personal).await;
    f.verifier.verify(&good, Timestamp::now()).await.unwrap();

    let other = Verifier::new(TokenFormat::default(), Hasher::new(Some(&b)), f.counting.clone());
    assert!(matches!(other.verify(&good, Timestamp::now()).await, Err(VerifyError::Rejected(Rejection::Mismatch))));
    let unpeppered = Verifier::new(TokenFormat::default(), Hasher::new(None), f.counting.clone());
    assert!(matches!(
        unpeppered.verify(&good, Timestamp::now()).await,
        Err(VerifyError::Rejected(Rejection::Mismatch))
    ));
}

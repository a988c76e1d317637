//! Verification against a real (embedded) store wrapped in a call counter: malformed tokens are
//! refused without a single store call, and each refusal reason is reported precisely.

mod support;

use std::sync::Arc;
use std::time::Duration;

use tokengate::auth::verify::{Rejection, check};
use tokengate::clock::Timestamp;
use tokengate::store::embedded::EmbeddedStore;
use tokengate::store::{Store, StoreOptions, TokenStore};
use tokengate::token::digest::{Hasher, Pepper};
use tokengate::token::mint::Minter;
use tokengate::token::{Action, Token, TokenKind};
use tokengate::token::{ParseError, TokenFormat};

use support::{Counting, new_token};

/// The uncached decision these tests exercise: parse, one store lookup, [`check`].
#[derive(Clone)]
struct Verifier {
    format: TokenFormat,
    hasher: Hasher,
    store: Store,
}

#[derive(Debug)]
enum VerifyError {
    Rejected(Rejection),
    #[allow(dead_code)] // shown by Debug in a failed assertion
    Store(tokengate::store::StoreError),
}

impl Verifier {
    fn new(format: TokenFormat, hasher: Hasher, store: Store) -> Self {
        Self { format, hasher, store }
    }

    async fn verify(&self, presented: &str, now: Timestamp) -> Result<Token, VerifyError> {
        let parsed = self.format.parse(presented).map_err(|e| VerifyError::Rejected(Rejection::Malformed(e)))?;
        let record = self.store.get(&parsed.id).await.map_err(VerifyError::Store)?;
        check(&self.hasher, &parsed, record.as_ref(), now).map_err(VerifyError::Rejected)?;
        Ok(record.expect("check refuses a missing record"))
    }
}
use tokengate::store::Issue as _;

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
        let counting = Arc::new(Counting::new(inner));
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
        self.counting.calls()
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

//! Minting tokens: a fresh secret plus the record the store keeps (digest only). Nothing here
//! stores anything: [`crate::store::Issue`] mints and stores.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::policy::scope::Scope;
use crate::token::digest::{Hasher, TokenDigest};
use crate::token::limits::TokenLimits;
use crate::token::{SecretToken, TokenFormat};
use crate::token::{Token, TokenKind, TokenStatus};

/// What a new token should be.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub kind: TokenKind,
    pub name: String,
    pub owner: String,
    pub created_by: String,
    pub lifetime: Duration,
    pub roles: Vec<String>,
    pub scopes: Vec<Scope>,
    pub limits: TokenLimits,
}

/// Generates token secrets and their records.
#[derive(Clone, Debug)]
pub struct Minter {
    format: TokenFormat,
    hasher: Hasher,
}

impl Minter {
    pub fn new(format: TokenFormat, hasher: Hasher) -> Self {
        Self { format, hasher }
    }

    pub fn format(&self) -> &TokenFormat {
        &self.format
    }

    /// Builds a token and its record, created at `now`. Nothing is stored.
    pub fn mint(&self, req: &NewToken, now: Timestamp) -> (SecretToken, Token) {
        let (id, secret) = self.format.generate(req.kind);
        let token = Token {
            id,
            kind: req.kind,
            name: req.name.clone(),
            owner: req.owner.clone(),
            created_by: req.created_by.clone(),
            created_at: now,
            expires_at: now.saturating_add(req.lifetime),
            status: TokenStatus::Active,
            roles: req.roles.clone(),
            scopes: req.scopes.clone(),
            last_used_at: None,
            last_used_from: None,
            digest: self.hasher.digest(secret.expose()),
            previous: None,
            limits: req.limits.clone(),
        };
        (secret, token)
    }

    /// A new secret for an existing token (same id and kind), with its digest.
    pub fn remint(&self, token: &Token) -> (SecretToken, TokenDigest) {
        let secret = self.format.generate_with_id(token.kind, token.id);
        let digest = self.hasher.digest(secret.expose());
        (secret, digest)
    }
}

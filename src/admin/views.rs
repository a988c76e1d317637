//! What the admin API shows of a token, as types: the server builds its responses from them and
//! `tokengate token ...` reads the responses into them, so both sides agree on one shape (the
//! `Token`, `TokenWithSecret` and `TokenList` schemas in `docs/openapi.yaml`).
//!
//! Timestamps travel as RFC 3339 in UTC with millisecond precision; a token never used (its last
//! use's time and client address) and a rotation without a grace period still running show
//! `null`, never an absent field.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::policy::scope::Scope;
use crate::token::limits::TokenLimits;
use crate::token::{DisplayStatus, SecretToken, Token, TokenFormat, TokenId, TokenKind};

/// A token as the API shows it: never its secret or digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    pub id: TokenId,
    /// The masked form people recognise, e.g. `tgp_9756bb3b...`.
    pub display: String,
    pub name: String,
    pub kind: TokenKind,
    /// A principal id (personal tokens) or an organization id (organization tokens).
    pub owner: String,
    pub status: DisplayStatus,
    pub roles: Vec<String>,
    pub scopes: Vec<Scope>,
    #[serde(with = "rfc3339")]
    pub created_at: Timestamp,
    pub created_by: String,
    #[serde(with = "rfc3339")]
    pub expires_at: Timestamp,
    /// `None` (null): never used.
    #[serde(default, with = "rfc3339_or_null")]
    pub last_used_at: Option<Timestamp>,
    /// The client address of the last use as the proxy saw it (after trusted forwarding
    /// headers); `None` (null): never used, or not recorded.
    #[serde(default)]
    pub last_used_from: Option<String>,
    /// Until when the secret replaced by the last rotation still works, while it does.
    #[serde(default, with = "rfc3339_or_null")]
    pub previous_secret_valid_until: Option<Timestamp>,
    /// Rate, quota and allowed networks; left out when the token has none.
    #[serde(default, skip_serializing_if = "TokenLimits::is_unlimited")]
    pub limits: TokenLimits,
}

impl TokenView {
    /// The view of `token` at `now` (its status and the previous secret's grace depend on it).
    pub fn new(format: &TokenFormat, token: &Token, now: Timestamp) -> Self {
        Self {
            id: token.id,
            display: format.display(token.kind, &token.id),
            name: token.name.clone(),
            kind: token.kind,
            owner: token.owner.clone(),
            status: token.display_status(now),
            roles: token.roles.clone(),
            scopes: token.scopes.clone(),
            created_at: token.created_at,
            created_by: token.created_by.clone(),
            expires_at: token.expires_at,
            last_used_at: token.last_used_at,
            last_used_from: token.last_used_from.clone(),
            previous_secret_valid_until: token.previous.as_ref().filter(|p| now < p.valid_until).map(|p| p.valid_until),
            limits: token.limits.clone(),
        }
    }
}

/// The answer to a creation or a rotation: the token and, this once, its secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenWithSecret {
    #[serde(flatten)]
    pub view: TokenView,
    /// The secret.
    pub token: String,
    /// `Bearer <secret>`, ready to send.
    pub authorization_header: String,
}

impl TokenWithSecret {
    pub fn new(view: TokenView, secret: &SecretToken) -> Self {
        Self { view, token: secret.expose().to_string(), authorization_header: format!("Bearer {}", secret.expose()) }
    }
}

/// Shows everything but the secret.
impl std::fmt::Debug for TokenWithSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenWithSecret")
            .field("view", &self.view)
            .field("token", &"<redacted>")
            .field("authorization_header", &"<redacted>")
            .finish()
    }
}

/// A page of `GET /v1/tokens`, newest first; `next_cursor` (opaque) asks for the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenList {
    pub tokens: Vec<TokenView>,
    pub next_cursor: Option<String>,
}

/// An operator key as `GET /v1/keys` lists it: its name, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    pub name: String,
    /// When it stops working; `null`: never.
    #[serde(default, with = "rfc3339_or_null")]
    pub expires_at: Option<Timestamp>,
    /// `file` (`admin.keys_file`) or `env` (`TOKENGATE_ADMIN_KEYS`).
    pub source: String,
}

/// `GET /v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

/// A [`Timestamp`] as RFC 3339 text.
mod rfc3339 {
    use std::time::UNIX_EPOCH;

    use serde::{Deserialize, Deserializer, Serializer};

    use crate::clock::Timestamp;

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }

    pub fn parse(text: &str) -> Result<Timestamp, String> {
        let at = humantime::parse_rfc3339(text).map_err(|e| format!("invalid RFC 3339 timestamp {text:?}: {e}"))?;
        let since = at.duration_since(UNIX_EPOCH).map_err(|_| format!("timestamp {text:?} is before 1970"))?;
        Ok(Timestamp(u64::try_from(since.as_millis()).unwrap_or(u64::MAX)))
    }
}

/// An optional [`Timestamp`] as RFC 3339 text or `null`.
mod rfc3339_or_null {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::clock::Timestamp;

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| super::rfc3339::parse(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_read_back_what_they_write() {
        let view = TokenView {
            id: TokenId::parse("AbCdEfGh1234").unwrap(),
            display: "tgp_AbCdEfGh...".into(),
            name: "ci-deploy".into(),
            kind: TokenKind::Personal,
            owner: "alice".into(),
            status: DisplayStatus::Active,
            roles: vec!["viewer".into()],
            scopes: vec!["env:prod".parse().unwrap()],
            created_at: Timestamp(1_763_811_695_123),
            created_by: "operator".into(),
            expires_at: Timestamp(1_766_403_695_123),
            last_used_at: None,
            last_used_from: None,
            previous_secret_valid_until: Some(Timestamp(1_763_815_295_000)),
            limits: TokenLimits {
                rate: Some(crate::token::limits::RateLimit { requests: 100, window_secs: 60, burst: Some(10) }),
                quota: Some(10_000),
                networks: vec!["10.0.0.0/8".parse().unwrap()],
            },
        };
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["created_at"], "2025-11-22T11:41:35.123Z");
        assert_eq!(json["last_used_at"], serde_json::Value::Null, "null, not absent");
        assert_eq!(json["last_used_from"], serde_json::Value::Null, "null, not absent");
        assert_eq!(json["previous_secret_valid_until"], "2025-11-22T12:41:35.000Z");
        assert_eq!(json["scopes"], serde_json::json!(["env:prod"]));
        assert_eq!(serde_json::from_value::<TokenView>(json).unwrap(), view);

        let issued = TokenWithSecret {
            view: view.clone(),
            token: "tgp_secret".into(),
            authorization_header: "Bearer tgp_secret".into(),
        };
        let json = serde_json::to_value(&issued).unwrap();
        assert_eq!((json["name"].as_str(), json["token"].as_str()), (Some("ci-deploy"), Some("tgp_secret")));
        assert!(!format!("{issued:?}").contains("tgp_secret"), "Debug never shows the secret");
        assert_eq!(serde_json::from_value::<TokenWithSecret>(json).unwrap(), issued);
    }
}

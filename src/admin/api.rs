//! The admin HTTP API under `/v1` (documented in `docs/openapi.yaml`).
//!
//! Every request is validated completely before anything is written, so a failed request
//! changes nothing. Only the creation and rotation responses ever contain a secret.
//!
//! Path segments and the query string arrive here percent-decoded exactly once (the path by
//! [`super::Admin`], the query by [`Query::parse`]), so `dave%40example.com` and `limit=%35` mean
//! what their plain forms mean, and a decoded `/` stays inside its segment. Free text (token
//! names, display names) refuses the Unicode categories `Cc` and `Cf` (controls, bidirectional
//! overrides, zero-width characters). A body, even an empty one, sent with a `Content-Type`
//! other than JSON is refused with 415.

use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::access::Caller;
use crate::admin::error::ApiError;
use crate::admin::webhook::{Notifier, TokenCreated};
use crate::clock::Timestamp;
use crate::config::Config;
use crate::net::json::json_response;
use crate::policy::scope::Scope;
use crate::store::{Cursor, Issue, ListQuery, Store};
use crate::token::mint::{Minter, NewToken};
use crate::token::{Action, AuditEvent, DisplayStatus, Principal, Token, TokenKind, valid_subject_id};
use crate::token::{SecretToken, TokenId};

/// Page size when the request names none, and the largest allowed.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 200;
/// Longest grace period a rotation may keep the old secret working.
const MAX_GRACE_SECONDS: u64 = 30 * 86_400;
const MAX_NAME_CHARS: usize = 100;

/// What the API handlers share.
#[derive(Clone)]
pub struct Api {
    pub store: Store,
    pub minter: Minter,
    pub config: std::sync::Arc<Config>,
    pub notifier: Notifier,
}

/// A request's query string, percent-decoded once (`application/x-www-form-urlencoded`).
/// Handlers [`take`](Query::take) the parameters they know and [`finish`](Query::finish) refuses
/// the rest, so no parameter is ever read raw or ignored.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses and checks a raw query: valid UTF-8 once decoded, each name at most once, and no
    /// credential (`access_token`, in any spelling or encoding): secrets in URLs end up in logs.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let raw = raw.unwrap_or("");
        // Splitting happens at literal `&` and `=`, which never occur inside a multi-byte
        // sequence, so a query that decodes to valid UTF-8 as a whole does so in every part.
        if percent_encoding::percent_decode_str(raw).decode_utf8().is_err() {
            return Err(ApiError::bad("query", "not valid UTF-8 once percent-decoded"));
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            if key.eq_ignore_ascii_case("access_token") {
                return Err(ApiError::bad(
                    "access_token",
                    "credentials are not accepted in the query string; send Authorization: Bearer",
                ));
            }
            if pairs.iter().any(|(k, _)| *k == key) {
                return Err(ApiError::bad(key, "given more than once"));
            }
            pairs.push((key.into_owned(), value.into_owned()));
        }
        Ok(Self { pairs })
    }

    /// Removes and returns the decoded value of `key`.
    pub fn take(&mut self, key: &str) -> Option<String> {
        let i = self.pairs.iter().position(|(k, _)| k == key)?;
        Some(self.pairs.remove(i).1)
    }

    /// Refuses any parameter not taken.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.pairs.into_iter().next() {
            Some((key, _)) => Err(ApiError::bad(key, "unknown query parameter")),
            None => Ok(()),
        }
    }
}

/// The methods a `/v1` path serves (the `Allow` header), or `None` for no such endpoint.
fn allowed_methods(segments: &[&str]) -> Option<&'static str> {
    Some(match segments {
        ["session"] | ["audit"] => "GET",
        ["tokens"] => "GET, POST",
        ["tokens", _] => "GET, DELETE",
        ["tokens", _, "suspend" | "activate" | "revoke" | "restore" | "rotate"] => "POST",
        ["principals", _] => "GET, PUT, DELETE",
        _ => return None,
    })
}

/// A whole number from JSON, also when written with a zero fraction (`30.0`), as JSON Schema's
/// `integer` allows; anything else (fractions, negatives, out of range) is refused.
fn whole_number<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    let n = serde_json::Number::deserialize(d)?;
    let whole = n
        .as_u64()
        .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(f)).map(|f| f as u64));
    whole
        .and_then(|w| T::try_from(w).ok())
        .ok_or_else(|| serde::de::Error::custom(format!("expected a whole number in range, got {n}")))
}

/// Reads a JSON body: at most `max` bytes, `Content-Type: application/json`, no unknown
/// fields; an empty body reads as `{}` when `T` allows it, unless it comes with another
/// `Content-Type` (415, as for a non-empty one).
async fn read_json<T: DeserializeOwned>(headers: &HeaderMap, body: Incoming, max: usize) -> Result<T, ApiError> {
    let bytes = Limited::new(body, max).collect().await.map_err(|_| ApiError::PayloadTooLarge(max))?.to_bytes();
    let content_type = headers.get(CONTENT_TYPE);
    let json = content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    let empty = bytes.iter().all(u8::is_ascii_whitespace);
    if !json && (!empty || content_type.is_some()) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes: &[u8] = if empty { b"{}" } else { &bytes };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = (path != "." && !inner.is_syntax() && !inner.is_eof()).then_some(path);
        let message =
            if inner.is_syntax() || inner.is_eof() { format!("invalid JSON: {inner}") } else { inner.to_string() };
        ApiError::BadRequest { field, message }
    })
}

/// The token as shown by the API: never the secret or the digest.
pub fn token_view(config: &Config, t: &Token, now: Timestamp) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "display": config.tokens.format.display(t.kind, &t.id),
        "name": t.name,
        "kind": t.kind,
        "owner": t.owner,
        "status": t.display_status(now),
        "roles": t.roles,
        "scopes": t.scopes,
        "created_at": t.created_at.to_rfc3339(),
        "created_by": t.created_by,
        "expires_at": t.expires_at.to_rfc3339(),
        "last_used_at": t.last_used_at.map(Timestamp::to_rfc3339),
        "previous_secret_valid_until": t.previous.as_ref().filter(|p| now < p.valid_until).map(|p| p.valid_until.to_rfc3339()),
    })
}

fn with_secret(mut view: serde_json::Value, secret: &SecretToken) -> serde_json::Value {
    view["token"] = secret.expose().into();
    view["authorization_header"] = format!("Bearer {}", secret.expose()).into();
    view
}

fn parse_id(raw: &str) -> Result<TokenId, ApiError> {
    TokenId::parse(raw).ok_or_else(|| ApiError::bad("id", "token ids are 12 letters or digits"))
}

/// Free text shown to people (token names, display names): trimmed, 1 to [`MAX_NAME_CHARS`]
/// characters, none of Unicode category `Cc` (controls) or `Cf` (format: bidirectional
/// overrides, zero-width characters), so `invoice-\u{202E}gpj.exe` cannot pose as
/// `invoice-exe.jpg`.
fn validate_text(field: &str, raw: &str) -> Result<String, ApiError> {
    let text = raw.trim();
    let chars = text.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(ApiError::bad(field, format!("must be 1 to {MAX_NAME_CHARS} characters after trimming")));
    }
    if let Some(c) =
        text.chars().find(|c| matches!(c.general_category(), GeneralCategory::Control | GeneralCategory::Format))
    {
        return Err(ApiError::bad(
            field,
            format!("must not contain control or invisible formatting characters (found U+{:04X})", u32::from(c)),
        ));
    }
    Ok(text.to_string())
}

fn validate_roles(field: &str, roles: &[String], config: &Config) -> Result<(), ApiError> {
    for (i, r) in roles.iter().enumerate() {
        if !config.roles.contains(r) {
            return Err(ApiError::bad(
                format!("{field}[{i}]"),
                format!("unknown role {r:?} (roles: {})", config.roles.join(", ")),
            ));
        }
    }
    Ok(())
}

fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    name: String,
    #[serde(deserialize_with = "whole_number")]
    expires_in_days: u32,
    #[serde(default, deserialize_with = "not_null")]
    kind: Option<TokenKind>,
    #[serde(default, deserialize_with = "not_null")]
    owner: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    roles: Option<Vec<String>>,
    #[serde(default, deserialize_with = "not_null")]
    scopes: Option<Vec<String>>,
}

/// An optional field that may be left out but not sent as `null` (the document gives each a
/// type that excludes null).
fn not_null<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Rotate {
    #[serde(default, deserialize_with = "whole_number")]
    grace_seconds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutPrincipal {
    display_name: String,
    org: Option<String>,
    roles: Vec<String>,
}

impl Api {
    /// Routes `/v1/...`; `segments` are the path segments after `v1`.
    pub async fn handle(
        &self,
        caller: &Caller,
        method: &Method,
        segments: &[&str],
        query: Query,
        headers: &HeaderMap,
        body: Incoming,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let max = self.config.admin.max_body_bytes;
        // The path and method decide the operation first (404, 405), then its input is checked.
        let allow = allowed_methods(segments).ok_or_else(|| ApiError::NotFound("no such endpoint".into()))?;
        if !allow.split(", ").any(|m| m == method.as_str()) {
            return Err(ApiError::MethodNotAllowed(allow));
        }
        let query = match (segments, method) {
            (["tokens"] | ["audit"], &Method::GET) => query,
            _ => query.finish().map(|()| Query::default())?,
        };
        match (segments, method) {
            (["session"], &Method::GET) => Ok(self.session(caller)),
            (["tokens"], &Method::GET) => self.list(caller, query).await,
            (["tokens"], &Method::POST) => self.create(caller, read_json(headers, body, max).await?).await,
            (["tokens", id], &Method::GET) => {
                let token = self.visible(caller, parse_id(id)?).await?;
                Ok(json_response(StatusCode::OK, &token_view(&self.config, &token, Timestamp::now())))
            }
            (["tokens", id], &Method::DELETE) => {
                let id = parse_id(id)?;
                read_json::<Empty>(headers, body, max).await?;
                self.visible(caller, id).await?;
                self.store.delete(&id, &caller.actor()).await?;
                Ok(Response::builder()
                    .status(StatusCode::NO_CONTENT)
                    .body(Full::new(Bytes::new()))
                    .expect("valid response"))
            }
            (["tokens", id, action], &Method::POST) => {
                let id = parse_id(id)?;
                let action = match *action {
                    "suspend" => Action::Suspend,
                    "activate" => Action::Activate,
                    "revoke" => Action::Revoke,
                    "restore" => Action::Restore,
                    "rotate" => return self.rotate(caller, id, read_json(headers, body, max).await?).await,
                    _ => return Err(ApiError::NotFound("no such endpoint".into())),
                };
                read_json::<Empty>(headers, body, max).await?;
                let token = self.visible(caller, id).await?;
                if matches!(action, Action::Activate | Action::Restore) {
                    caller.may_reissue(action.as_str(), &token)?;
                }
                let token = self.store.transition(&id, action, &caller.actor()).await?;
                Ok(json_response(StatusCode::OK, &token_view(&self.config, &token, Timestamp::now())))
            }
            (["principals", id], m) => {
                if !valid_subject_id(id) {
                    return Err(ApiError::bad(
                        "id",
                        "principal ids are 1-128 characters from A-Z a-z 0-9 . _ @ : - (not . or ..)",
                    ));
                }
                self.principal(caller, m, id, headers, body).await
            }
            (["audit"], _) => self.audit(caller, query).await,
            _ => Err(ApiError::NotFound("no such endpoint".into())),
        }
    }

    fn session(&self, caller: &Caller) -> Response<Full<Bytes>> {
        let c = &self.config;
        let who = match caller {
            Caller::Operator => serde_json::json!({ "kind": "operator" }),
            Caller::Person { principal, roles, scopes } => serde_json::json!({
                "kind": "person",
                "id": principal.id,
                "display_name": principal.display_name,
                "org": principal.org,
                "roles": roles,
                "scopes": scopes,
                "admin_of": caller.admin_of(),
            }),
        };
        json_response(
            StatusCode::OK,
            &serde_json::json!({
                "caller": who,
                "expiry_days": c.tokens.expiry_days,
                "roles": c.roles,
                "default_roles": c.tokens.default_roles,
                "allow_restore": c.tokens.allow_restore,
            }),
        )
    }

    /// The token, if it exists and the caller may see it (otherwise 404: existence is not revealed).
    async fn visible(&self, caller: &Caller, id: TokenId) -> Result<Token, ApiError> {
        match self.store.get(&id).await? {
            Some(t) if caller.may_manage(&t) => Ok(t),
            _ => Err(ApiError::NotFound("no such token".into())),
        }
    }

    async fn list(&self, caller: &Caller, mut query: Query) -> Result<Response<Full<Bytes>>, ApiError> {
        let now = Timestamp::now();
        let mut q = ListQuery { limit: DEFAULT_LIMIT, now, ..ListQuery::default() };
        if let Some(name) = query.take("name").filter(|n| !n.is_empty()) {
            q = q.name(&name);
        }
        if let Some(status) = query.take("status") {
            q.status = Some(
                DisplayStatus::parse(&status)
                    .ok_or_else(|| ApiError::bad("status", "one of: active, suspended, revoked, expired"))?,
            );
        }
        if let Some(kind) = query.take("kind") {
            q.kind = Some(match kind.as_str() {
                "personal" => TokenKind::Personal,
                "organization" => TokenKind::Organization,
                _ => return Err(ApiError::bad("kind", "one of: personal, organization")),
            });
        }
        if let Some(owner) = query.take("owner") {
            if !valid_subject_id(&owner) {
                return Err(ApiError::bad("owner", "ids are 1-128 characters from A-Z a-z 0-9 . _ @ : -"));
            }
            q.owner = Some(owner);
        }
        if let Some(limit) = query.take("limit") {
            q.limit = limit
                .parse()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| ApiError::bad("limit", format!("a number from 1 to {MAX_LIMIT}")))?;
        }
        if let Some(cursor) = query.take("cursor") {
            q.cursor = Some(Cursor::parse(&cursor).ok_or_else(|| ApiError::bad("cursor", "invalid cursor"))?);
        }
        query.finish()?;
        if let Caller::Person { principal, .. } = caller {
            match &q.owner {
                None => q.owner = Some(principal.id.clone()),
                Some(owner) if !caller.may_list_owner(owner) => {
                    return Err(ApiError::Forbidden(
                        "you can only list your own tokens (or your organization's, as its admin)".into(),
                    ));
                }
                Some(_) => {}
            }
        }
        let page = self.store.list(&q).await?;
        let mut tokens: Vec<serde_json::Value> = Vec::with_capacity(page.tokens.len());
        for t in page.tokens.iter().filter(|t| caller.may_manage(t)) {
            tokens.push(token_view(&self.config, t, now));
        }
        Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({ "tokens": tokens, "next_cursor": page.next_cursor.map(|c| c.to_string()) }),
        ))
    }

    async fn create(&self, caller: &Caller, req: CreateToken) -> Result<Response<Full<Bytes>>, ApiError> {
        let c = &self.config;
        let name = validate_text("name", &req.name)?;
        if !c.tokens.expiry_days.contains(&req.expires_in_days) {
            let choices: Vec<String> = c.tokens.expiry_days.iter().map(u32::to_string).collect();
            return Err(ApiError::bad("expires_in_days", format!("must be one of: {}", choices.join(", "))));
        }
        let kind = req.kind.unwrap_or(TokenKind::Personal);
        if let Some(owner) = &req.owner
            && !valid_subject_id(owner)
        {
            return Err(ApiError::bad("owner", "ids are 1-128 characters from A-Z a-z 0-9 . _ @ : -"));
        }
        let roles = dedup(req.roles.unwrap_or_else(|| match caller {
            Caller::Operator => c.tokens.default_roles.clone(),
            Caller::Person { roles, .. } => {
                c.tokens.default_roles.iter().filter(|r| roles.contains(r)).cloned().collect()
            }
        }));
        validate_roles("roles", &roles, c)?;
        let mut scopes = Vec::new();
        for (i, s) in req.scopes.unwrap_or_default().iter().enumerate() {
            scopes.push(s.parse::<Scope>().map_err(|e| ApiError::bad(format!("scopes[{i}]"), e.to_string()))?);
        }
        let scopes = dedup(scopes);

        let owner = match (req.owner, caller) {
            (Some(owner), _) => owner,
            // Left out, the owner is the caller; an operator key is nobody and owns no tokens.
            (None, Caller::Operator) => {
                return Err(ApiError::Forbidden(
                    "an operator key owns no tokens: name the owner (a principal or an organization)".into(),
                ));
            }
            (None, Caller::Person { principal, .. }) => match kind {
                TokenKind::Personal => principal.id.clone(),
                TokenKind::Organization => caller
                    .admin_of()
                    .ok_or_else(|| ApiError::Forbidden("only an organization's admins can create its tokens".into()))?
                    .to_string(),
            },
        };
        caller.may_produce("create", kind, &owner, &roles, &scopes)?;
        if kind == TokenKind::Personal && self.store.get_principal(&owner).await?.is_none() {
            return Err(ApiError::Missing {
                field: "owner".into(),
                message: format!("no principal {owner:?}: create it first (PUT /v1/principals/{owner})"),
            });
        }

        let request = NewToken {
            kind,
            name,
            owner,
            created_by: caller.actor(),
            lifetime: Duration::from_secs(u64::from(req.expires_in_days) * 86_400),
            roles,
            scopes,
        };
        let (secret, token) = self.minter.issue(self.store.as_ref(), &request).await?;
        if kind == TokenKind::Personal && self.store.get_principal(&token.owner).await?.is_none() {
            // The owner was deleted between the check above and the creation, after their
            // deletion had revoked their tokens: this one must not wait for the id to come back.
            self.store.transition(&token.id, Action::Revoke, &caller.actor()).await?;
            return Err(ApiError::bad("owner", format!("the principal {:?} was deleted meanwhile", token.owner)));
        }
        tracing::info!(token_id = %token.id, owner = %token.owner, actor = %token.created_by, "token created");
        let now = Timestamp::now();
        self.notifier.token_created(TokenCreated {
            event: "token.created",
            at: now.to_rfc3339(),
            creator: token.created_by.clone(),
            token_name: token.name.clone(),
            token: c.tokens.format.display(token.kind, &token.id),
            token_id: token.id.to_string(),
            owner: token.owner.clone(),
            kind: token.kind.as_str(),
        });
        Ok(json_response(StatusCode::CREATED, &with_secret(token_view(c, &token, now), &secret)))
    }

    async fn rotate(&self, caller: &Caller, id: TokenId, req: Rotate) -> Result<Response<Full<Bytes>>, ApiError> {
        if req.grace_seconds > MAX_GRACE_SECONDS {
            return Err(ApiError::bad("grace_seconds", format!("at most {MAX_GRACE_SECONDS} (30 days)")));
        }
        let token = self.visible(caller, id).await?;
        caller.may_reissue("rotate", &token)?;
        let (secret, digest) = self.minter.remint(&token);
        let grace_until =
            (req.grace_seconds > 0).then(|| Timestamp::now().saturating_add(Duration::from_secs(req.grace_seconds)));
        let token = self.store.rotate(&id, &token.digest, &digest, grace_until, &caller.actor()).await?;
        tracing::info!(token_id = %token.id, grace_seconds = req.grace_seconds, "token rotated");
        Ok(json_response(StatusCode::OK, &with_secret(token_view(&self.config, &token, Timestamp::now()), &secret)))
    }

    async fn principal(
        &self,
        caller: &Caller,
        method: &Method,
        id: &str,
        headers: &HeaderMap,
        body: Incoming,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let is_self = matches!(caller, Caller::Person { principal, .. } if principal.id == id);
        match *method {
            Method::GET if caller.is_operator() || is_self => {
                let p = self
                    .store
                    .get_principal(id)
                    .await?
                    .ok_or_else(|| ApiError::NotFound("no such principal".into()))?;
                Ok(json_response(StatusCode::OK, &p))
            }
            _ if !caller.is_operator() => Err(ApiError::Forbidden("only operators manage principals".into())),
            Method::PUT => {
                let req: PutPrincipal = read_json(headers, body, self.config.admin.max_body_bytes).await?;
                let display_name = validate_text("display_name", &req.display_name)?;
                if let Some(org) = &req.org
                    && !valid_subject_id(org)
                {
                    return Err(ApiError::bad("org", "ids are 1-128 characters from A-Z a-z 0-9 . _ @ : -"));
                }
                let roles = dedup(req.roles);
                validate_roles("roles", &roles, &self.config)?;
                let p = Principal { id: id.to_string(), display_name, org: req.org, roles };
                self.store.put_principal(&p).await?;
                Ok(json_response(StatusCode::OK, &p))
            }
            _ => {
                read_json::<Empty>(headers, body, self.config.admin.max_body_bytes).await?;
                if self.store.delete_principal(id, &caller.actor()).await? {
                    Ok(Response::builder()
                        .status(StatusCode::NO_CONTENT)
                        .body(Full::new(Bytes::new()))
                        .expect("valid response"))
                } else {
                    Err(ApiError::NotFound("no such principal".into()))
                }
            }
        }
    }

    async fn audit(&self, caller: &Caller, mut query: Query) -> Result<Response<Full<Bytes>>, ApiError> {
        if !caller.is_operator() {
            return Err(ApiError::Forbidden("only operators read the audit log".into()));
        }
        let limit = match query.take("limit") {
            Some(v) => v
                .parse()
                .ok()
                .filter(|l| (1..=1000).contains(l))
                .ok_or_else(|| ApiError::bad("limit", "a number from 1 to 1000"))?,
            None => DEFAULT_LIMIT,
        };
        query.finish()?;
        let events: Vec<serde_json::Value> = self
            .store
            .audit(limit)
            .await?
            .iter()
            .map(|e: &AuditEvent| {
                serde_json::json!({
                    "at": e.at.to_rfc3339(),
                    "actor": e.actor,
                    "action": e.action,
                    "token_id": e.token_id,
                    "token_name": e.token_name,
                    "owner": e.owner,
                })
            })
            .collect();
        Ok(json_response(StatusCode::OK, &serde_json::json!({ "events": events })))
    }
}

//! `/v1/tokens`: list, create, show, delete, the lifecycle actions and rotation.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Deserialize;

use super::input::{
    self, Empty, Query, dedup, not_null, read_json, subject_id, validate_roles, validate_text, whole_number,
};
use super::{Api, DEFAULT_LIMIT, no_content};
use crate::admin::access::Caller;
use crate::admin::error::ApiError;
use crate::admin::views::{TokenList, TokenView, TokenWithSecret};
use crate::admin::webhook::TokenCreated;
use crate::clock::Timestamp;
use crate::net::json::json_response;
use crate::policy::scope::Scope;
use crate::store::{Cursor, Issue, ListQuery};
use crate::token::mint::NewToken;
use crate::token::{Action, DisplayStatus, Token, TokenId, TokenKind};

/// The largest page a list may ask for.
const MAX_LIMIT: usize = 200;
/// Longest grace period a rotation may keep the old secret working.
const MAX_GRACE_SECONDS: u64 = 30 * 86_400;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateToken {
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
    #[serde(default, deserialize_with = "not_null")]
    limits: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Rotate {
    #[serde(default, deserialize_with = "whole_number")]
    grace_seconds: u64,
}

impl Api {
    /// The token as the API shows it at `now`.
    fn view(&self, token: &Token, now: Timestamp) -> TokenView {
        TokenView::new(&self.config.tokens.format, token, now)
    }

    /// The token, if it exists and the caller may see it (otherwise 404: existence is not revealed).
    async fn visible(&self, caller: &Caller, id: TokenId) -> Result<Token, ApiError> {
        match self.store.get(&id).await? {
            Some(t) if caller.may_see(&t) => Ok(t),
            _ => Err(ApiError::NotFound("no such token".into())),
        }
    }

    /// The token, if the caller may change it: 404 when they may not see it, 403 when they may
    /// only read it (auditors).
    async fn manageable(&self, caller: &Caller, id: TokenId) -> Result<Token, ApiError> {
        let token = self.visible(caller, id).await?;
        if !caller.may_manage(&token) {
            return Err(ApiError::Forbidden("auditors read every token but change only their own".into()));
        }
        Ok(token)
    }

    /// `GET /v1/tokens/{id}`.
    pub(super) async fn show(&self, caller: &Caller, id: TokenId) -> Result<Response<Full<Bytes>>, ApiError> {
        let token = self.visible(caller, id).await?;
        Ok(json_response(StatusCode::OK, &self.view(&token, Timestamp::now())))
    }

    /// `DELETE /v1/tokens/{id}` (the store refuses a token that is not revoked).
    pub(super) async fn delete(
        &self,
        caller: &Caller,
        id: TokenId,
        headers: &HeaderMap,
        body: Incoming,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        read_json::<Empty>(headers, body, self.config.admin.max_body_bytes).await?;
        self.manageable(caller, id).await?;
        self.store.delete(&id, &caller.actor()).await?;
        Ok(no_content())
    }

    /// `POST /v1/tokens/{id}/{action}`: suspend, activate, revoke, restore, rotate.
    pub(super) async fn act(
        &self,
        caller: &Caller,
        id: TokenId,
        action: &str,
        headers: &HeaderMap,
        body: Incoming,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let max = self.config.admin.max_body_bytes;
        let action = match action {
            "suspend" => Action::Suspend,
            "activate" => Action::Activate,
            "revoke" => Action::Revoke,
            "restore" => Action::Restore,
            "rotate" => return self.rotate(caller, id, read_json(headers, body, max).await?).await,
            _ => return Err(ApiError::NotFound("no such endpoint".into())),
        };
        read_json::<Empty>(headers, body, max).await?;
        let token = self.manageable(caller, id).await?;
        if matches!(action, Action::Activate | Action::Restore) {
            caller.may_reissue(action.as_str(), &token)?;
        }
        let token = self.store.transition(&id, action, &caller.actor()).await?;
        Ok(json_response(StatusCode::OK, &self.view(&token, Timestamp::now())))
    }

    /// `PUT /v1/tokens/{id}/limits`: replaces the token's limits (`{}`: none). Operators may set
    /// anything; a person (for a token they manage) only limits within their own
    /// (`Principal::limits`, set by operators).
    pub(super) async fn set_limits(
        &self,
        caller: &Caller,
        id: TokenId,
        limits: serde_json::Value,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let limits = input::limits(limits)?;
        self.manageable(caller, id).await?;
        if let Caller::Person { principal, .. } = caller
            && !caller.is_operator()
            && !limits.is_within(&principal.limits)
        {
            return Err(ApiError::Forbidden(format!("your own limits allow at most: {}", principal.limits)));
        }
        let token = self.store.set_limits(&id, &limits, &caller.actor()).await?;
        tracing::info!(token_id = %token.id, actor = %caller.actor(), limits = %token.limits, "token limits changed");
        Ok(json_response(StatusCode::OK, &self.view(&token, Timestamp::now())))
    }

    /// `GET /v1/tokens`: a page of the tokens the caller may manage, newest first.
    pub(super) async fn list(&self, caller: &Caller, mut query: Query) -> Result<Response<Full<Bytes>>, ApiError> {
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
            subject_id("owner", &owner)?;
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
        if let Caller::Person { principal, .. } = caller
            && !caller.reads_everything()
        {
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
        let tokens = page.tokens.iter().filter(|t| caller.may_see(t)).map(|t| self.view(t, now)).collect();
        Ok(json_response(StatusCode::OK, &TokenList { tokens, next_cursor: page.next_cursor.map(|c| c.to_string()) }))
    }

    /// `POST /v1/tokens`: mints a token; the response is the only place its secret appears.
    pub(super) async fn create(&self, caller: &Caller, req: CreateToken) -> Result<Response<Full<Bytes>>, ApiError> {
        let c = &self.config;
        let name = validate_text("name", &req.name)?;
        if !c.tokens.expiry_days.contains(&req.expires_in_days) {
            let choices: Vec<String> = c.tokens.expiry_days.iter().map(u32::to_string).collect();
            return Err(ApiError::bad("expires_in_days", format!("must be one of: {}", choices.join(", "))));
        }
        let kind = req.kind.unwrap_or(TokenKind::Personal);
        if let Some(owner) = &req.owner {
            subject_id("owner", owner)?;
        }
        let roles = dedup(req.roles.unwrap_or_else(|| match caller {
            Caller::Operator { .. } => c.tokens.default_roles.clone(),
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
        // People give their tokens at most their own limits (by default exactly those), so a
        // limit an operator set on a person cannot be shed by minting a new token.
        let limits = match (req.limits.map(input::limits).transpose()?, caller) {
            (Some(limits), Caller::Person { principal, .. })
                if !caller.is_operator() && !limits.is_within(&principal.limits) =>
            {
                return Err(ApiError::Forbidden(format!("your own limits allow at most: {}", principal.limits)));
            }
            (Some(limits), _) => limits,
            (None, Caller::Person { principal, .. }) => principal.limits.clone(),
            (None, Caller::Operator { .. }) => Default::default(),
        };

        let owner = match (req.owner, caller) {
            (Some(owner), _) => owner,
            // Left out, the owner is the caller; an operator key is nobody and owns no tokens.
            (None, Caller::Operator { .. }) => {
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
            limits,
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
        Ok(json_response(StatusCode::CREATED, &TokenWithSecret::new(self.view(&token, now), &secret)))
    }

    /// `POST /v1/tokens/{id}/rotate`: a new secret; the old one works for the grace period.
    async fn rotate(&self, caller: &Caller, id: TokenId, req: Rotate) -> Result<Response<Full<Bytes>>, ApiError> {
        if req.grace_seconds > MAX_GRACE_SECONDS {
            return Err(ApiError::bad("grace_seconds", format!("at most {MAX_GRACE_SECONDS} (30 days)")));
        }
        let token = self.manageable(caller, id).await?;
        caller.may_reissue("rotate", &token)?;
        let (secret, digest) = self.minter.remint(&token);
        let grace_until =
            (req.grace_seconds > 0).then(|| Timestamp::now().saturating_add(Duration::from_secs(req.grace_seconds)));
        let token = self.store.rotate(&id, &token.digest, &digest, grace_until, &caller.actor()).await?;
        tracing::info!(token_id = %token.id, grace_seconds = req.grace_seconds, "token rotated");
        Ok(json_response(StatusCode::OK, &TokenWithSecret::new(self.view(&token, Timestamp::now()), &secret)))
    }
}

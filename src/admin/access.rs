//! Who is calling the admin API, and what they may do.
//!
//! - **Operator**: presents one of the configured admin keys (constant-time compared, refused
//!   from its expiry on; [`super::keys`]). Full access, including creating tokens for any owner
//!   and managing principals. The audit log names the key: `key:<name>`.
//! - **Person**: presents their own valid personal token, or is signed in (a session cookie, the
//!   CLI's session, or an auth proxy's trusted headers: [`super::signin`]). They see and manage
//!   only tokens they own; a person with role `admin` in an organization also manages that
//!   organization's tokens. A new token can carry at most the roles and scopes of the token used
//!   to create it, or, signed in, the person's own roles and scopes.
//! - A signed-in person may also hold an admin role ([`AdminRole`], from `identity.groups` or
//!   `identity.operators`/`auditors`): an **auditor** sees every token, principal and audit
//!   event and changes nothing beyond their own tokens; an **operator** may do what an admin key
//!   may. Admin roles never come with a personal token: a leaked token is never an operator.
//!
//! One rule, [`Caller::may_produce`], bounds everything that yields a working secret or puts a
//! token back to work (create, rotate, activate, restore): the caller may only produce a token
//! they could have created (a kind and owner they may create for, roles the calling token holds,
//! scopes it covers). Taking access away (suspend, revoke, delete) needs only [`Caller::may_manage`].
//!
//! Organization tokens cannot call the admin API.

use std::sync::Arc;

use http::HeaderMap;

use super::signin::{SignIn, SignedIn, Via};
use crate::admin::error::ApiError;
use crate::auth::{self, AuthError, Authenticator};
use crate::clock::Timestamp;
use crate::config::AdminKeys;
use crate::policy::scope::Scope;
use crate::token::{AdminRole, Principal, Token, TokenKind};

/// The role that makes a person an administrator of their organization's tokens.
pub const ORG_ADMIN_ROLE: &str = "admin";

#[derive(Debug, Clone)]
pub enum Caller {
    /// An admin key, by name.
    Operator { key: String },
    Person {
        principal: Arc<Principal>,
        /// The effective roles and the scopes of the token used for this call, or the person's
        /// own when signed in.
        roles: Vec<String>,
        scopes: Vec<Scope>,
        /// Signed in with an admin role.
        admin: Option<AdminRole>,
        /// How they signed in; `None`: with a personal token.
        via: Option<Via>,
    },
}

impl Caller {
    /// Identifies the caller: an admin key or a personal token in the `Authorization` header,
    /// else a CLI session there, trusted headers or a session cookie (through `signin`). Also
    /// returns a refreshed session cookie to send back, if any.
    pub async fn identify(
        headers: &HeaderMap,
        peer: std::net::IpAddr,
        mutation: bool,
        keys: &AdminKeys,
        auth: &Authenticator,
        signin: &SignIn,
    ) -> Result<(Self, Option<http::HeaderValue>), ApiError> {
        let presented = auth::bearer(headers, None)
            .map_err(|_| ApiError::BadRequest { field: None, message: "malformed Authorization header".into() })?;
        if let Some(key) = presented.and_then(|p| keys.find(p, std::time::SystemTime::now())) {
            return Ok((Self::Operator { key: key.name.clone() }, None));
        }
        if let Some(SignedIn { principal, via, set_cookie }) =
            signin.identify(headers, peer, presented, mutation).await?
        {
            let caller = Self::Person {
                roles: principal.roles.clone(),
                scopes: principal.scopes.clone(),
                admin: principal.admin,
                via: Some(via),
                principal,
            };
            return Ok((caller, set_cookie));
        }
        let presented = presented.ok_or(ApiError::Unauthorized)?;
        let authenticated = match auth.authenticate(presented, Timestamp::now(), || Ok(())).await {
            Ok(a) => a,
            Err(AuthError::Rejected { .. }) => return Err(ApiError::Unauthorized),
            Err(AuthError::Store(e)) => return Err(e.into()),
            Err(AuthError::Busy | AuthError::Refused(_)) => return Err(ApiError::Unavailable),
        };
        if authenticated.token.kind == TokenKind::Organization {
            return Err(ApiError::Forbidden("organization tokens cannot use the admin API".into()));
        }
        let roles = authenticated.roles().into_iter().map(String::from).collect();
        let principal = authenticated.owner.clone().expect("personal tokens are authenticated with their owner");
        Ok((
            Self::Person { principal, roles, scopes: authenticated.token.scopes.clone(), admin: None, via: None },
            None,
        ))
    }

    /// The name recorded as `actor` / `created_by`.
    pub fn actor(&self) -> String {
        match self {
            Self::Operator { key } => format!("key:{key}"),
            Self::Person { principal, .. } => principal.id.clone(),
        }
    }

    /// An admin key, or a person signed in as an operator: full access.
    pub fn is_operator(&self) -> bool {
        matches!(self, Self::Operator { .. } | Self::Person { admin: Some(AdminRole::Operator), .. })
    }

    /// Whether the caller may read every token, principal and audit event (operators and
    /// auditors).
    pub fn reads_everything(&self) -> bool {
        self.is_operator() || matches!(self, Self::Person { admin: Some(AdminRole::Auditor), .. })
    }

    /// Whether the caller may see `token` (manage it, or read everything).
    pub fn may_see(&self, token: &Token) -> bool {
        self.reads_everything() || self.may_manage(token)
    }

    /// The organization this caller administers, if any.
    pub fn admin_of(&self) -> Option<&str> {
        match self {
            Self::Operator { .. } => None,
            Self::Person { principal, roles, .. } => {
                principal.org.as_deref().filter(|_| roles.iter().any(|r| r == ORG_ADMIN_ROLE))
            }
        }
    }

    /// Whether the caller may manage `token`.
    pub fn may_manage(&self, token: &Token) -> bool {
        match self {
            _ if self.is_operator() => true,
            Self::Operator { .. } => true,
            Self::Person { principal, .. } => match token.kind {
                TokenKind::Personal => token.owner == principal.id,
                TokenKind::Organization => self.admin_of() == Some(token.owner.as_str()),
            },
        }
    }

    /// The one rule for every operation that yields a working secret or re-enables a token
    /// (`operation`: "create", "rotate", "activate", "restore"): the caller may only produce a
    /// token they could have created. Operators may produce anything; a person only personal
    /// tokens of their own or, as its admin, their organization's tokens, with roles the calling
    /// token holds and scopes it covers. `Err` is a 403 saying what is missing.
    pub fn may_produce(
        &self,
        operation: &str,
        kind: TokenKind,
        owner: &str,
        roles: &[String],
        scopes: &[Scope],
    ) -> Result<(), ApiError> {
        if self.is_operator() {
            return Ok(());
        }
        let Self::Person { principal, roles: held, scopes: covered, .. } = self else { return Ok(()) };
        match kind {
            TokenKind::Personal if owner != principal.id => {
                return Err(ApiError::Forbidden(format!("you can only {operation} tokens of your own")));
            }
            TokenKind::Organization => match self.admin_of() {
                None => {
                    return Err(ApiError::Forbidden(format!(
                        "only an organization's admins can {operation} its tokens"
                    )));
                }
                Some(org) if org != owner => {
                    return Err(ApiError::Forbidden(format!(
                        "you can only {operation} tokens of your own organization"
                    )));
                }
                Some(_) => {}
            },
            TokenKind::Personal => {}
        }
        if let Some(r) = roles.iter().find(|r| !held.contains(r)) {
            return Err(ApiError::Forbidden(format!(
                "you cannot {operation} a token with the role {r:?}, which your token does not hold"
            )));
        }
        if let Some(s) = scopes.iter().find(|s| !covered.iter().any(|have| have.covers(s))) {
            return Err(ApiError::Forbidden(format!(
                "you cannot {operation} a token with the scope {s}, which your token does not cover"
            )));
        }
        Ok(())
    }

    /// [`Caller::may_produce`] for an existing token (rotate, activate, restore).
    pub fn may_reissue(&self, operation: &str, token: &Token) -> Result<(), ApiError> {
        self.may_produce(operation, token.kind, &token.owner, &token.roles, &token.scopes)
    }

    /// Whether the caller may list tokens of `owner`.
    pub fn may_list_owner(&self, owner: &str) -> bool {
        match self {
            _ if self.reads_everything() => true,
            Self::Operator { .. } => true,
            Self::Person { principal, .. } => principal.id == owner || self.admin_of() == Some(owner),
        }
    }
}

//! Signing people in: OpenID Connect for the page and the CLI, an auth proxy's trusted
//! headers, and the sealed session that remembers them.
//!
//! | module      | what lives there                                                      |
//! |-------------|-----------------------------------------------------------------------|
//! | `mod.rs`    | [`SignIn`]: `/auth/*` routes, who a cookie, session or header names     |
//! | [`seal`]    | AES-256-GCM sealing with rotating keys                                |
//! | [`session`] | the session, its lifetime and idle timeout, its cookie                |
//! | `routes.rs` | the `/auth/*` routes: login, callback, logout, the CLI's device sign-in |
//! | [`oidc`]    | the relying party: discovery, code and device flows, ID token checks   |
//! | [`claims`]  | what a verified ID token's claims say about the person                |
//!
//! What it may use: config, token (principals), auth (the cache, for principals), store, net,
//! clock. It knows nothing of the API's routes: [`super::access`] asks it who is calling.

pub mod claims;
pub mod oidc;
mod routes;
pub mod seal;
pub mod session;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use subtle::ConstantTimeEq;

use crate::admin::error::ApiError;
use crate::auth::Authenticator;
use crate::auth::cache::LookupError;
use crate::clock::Timestamp;
use crate::config::{Config, IdentityConfig};
use crate::net::json::json_response;
use crate::store::Store;
use crate::token::Principal;
use claims::Identity;
use oidc::{Oidc, OidcError};
use seal::{Purpose, Sealer};
use session::{Cookies, Session};

/// The header a signed-in browser's mutations carry: the session's CSRF value (cookie sessions)
/// or any value (trusted headers; a custom header cannot be sent cross-site without CORS, which
/// is never served).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Longest display name taken from a claim or header (longer ones are cut).
const MAX_NAME: usize = 200;

/// How a signed-in person reached us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The page's session cookie; `csrf` is what its mutations must send.
    Cookie { csrf: String },
    /// The CLI's bearer session (`tokengate login`).
    Cli,
    /// An auth proxy's trusted headers.
    Headers,
}

/// A signed-in person, and the refreshed session cookie to send back, if any.
#[derive(Debug)]
pub struct SignedIn {
    pub principal: Arc<Principal>,
    pub via: Via,
    pub set_cookie: Option<HeaderValue>,
}

/// Sign-in and sessions; cheap to clone.
#[derive(Clone)]
pub struct SignIn {
    inner: Arc<Inner>,
}

struct Inner {
    identity: IdentityConfig,
    roles: Vec<String>,
    /// SCIM is on: people the directory provisioned keep the groups it set.
    directory: bool,
    sealer: Option<Sealer>,
    oidc: Option<Oidc>,
    cookies: Cookies,
    /// Device sign-ins being waited for at once ([`routes::DEVICE_POLLS`]).
    device_polls: tokio::sync::Semaphore,
    store: Store,
    auth: Authenticator,
}

fn lookup_error(e: LookupError) -> ApiError {
    match e {
        LookupError::Store(e) => e.into(),
        LookupError::Busy | LookupError::Refused(_) => ApiError::Unavailable,
    }
}

fn oidc_error(e: OidcError) -> ApiError {
    match e {
        OidcError::Provider(reason) => ApiError::Provider(reason),
        e => ApiError::SignIn(e.to_string()),
    }
}

/// Printable text of at most [`MAX_NAME`] characters, or `None`.
fn clean_name(s: &str) -> Option<String> {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    let s: String = s
        .chars()
        .filter(|c| !matches!(c.general_category(), GeneralCategory::Control | GeneralCategory::Format))
        .take(MAX_NAME)
        .collect();
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn now_secs(now: Timestamp) -> u64 {
    now.millis() / 1000
}

impl SignIn {
    pub fn new(config: &Config, store: Store, auth: Authenticator) -> Self {
        let identity = config.identity.clone();
        let sealer = identity.sessions.as_ref().map(|s| Sealer::new(&s.keys));
        let secure = identity.oidc.as_ref().is_some_and(|o| o.redirect_url.scheme() == "https");
        let oidc = identity.oidc.clone().map(Oidc::new);
        Self {
            inner: Arc::new(Inner {
                identity,
                roles: config.roles.clone(),
                directory: config.scim.token.is_some(),
                sealer,
                oidc,
                cookies: Cookies { secure },
                device_polls: tokio::sync::Semaphore::new(routes::DEVICE_POLLS),
                store,
                auth,
            }),
        }
    }

    /// What the page may offer someone not signed in yet (`GET /auth/methods`).
    pub fn methods(&self) -> Response<Full<Bytes>> {
        json_response(
            StatusCode::OK,
            &serde_json::json!({
                "oidc": self.inner.oidc.is_some(),
                "login_url": self.inner.oidc.as_ref().map(|_| "/auth/login"),
                "trusted_headers": self.inner.identity.trusted_headers.is_some(),
            }),
        )
    }

    /// Who the request's session or trusted headers name, if any. `bearer` is the
    /// `Authorization` credential when one was sent (only a sealed CLI session is read from it);
    /// `mutation` asks for the CSRF check.
    pub async fn identify(
        &self,
        headers: &HeaderMap,
        peer: IpAddr,
        bearer: Option<&str>,
        mutation: bool,
    ) -> Result<Option<SignedIn>, ApiError> {
        let i = &self.inner;
        let now = Timestamp::now();
        if let Some(credential) = bearer {
            if !credential.starts_with(seal::PREFIX) {
                return Ok(None);
            }
            let (Some(sealer), Some(config)) = (&i.sealer, &i.identity.sessions) else {
                return Err(ApiError::Unauthorized);
            };
            let session: Session = sealer.open(Purpose::Session, credential).ok_or(ApiError::Unauthorized)?;
            if !session.cli || !session.is_live(now, config) {
                return Err(ApiError::Unauthorized);
            }
            let principal = self.principal(&session.sub).await?;
            return Ok(Some(SignedIn { principal, via: Via::Cli, set_cookie: None }));
        }
        if let Some(th) = &i.identity.trusted_headers
            && let Some(user) = headers.get(&th.user)
        {
            if !th.trusts(peer) {
                return Err(ApiError::Forbidden(format!(
                    "{} is accepted only from the configured auth proxies (identity.trusted_headers.peers)",
                    th.user
                )));
            }
            // A proxy that appends its header instead of replacing the client's would leave two:
            // neither is guessed at.
            for name in std::iter::once(&th.user).chain([&th.email, &th.name, &th.groups].into_iter().flatten()) {
                if headers.get_all(name).iter().count() > 1 {
                    return Err(ApiError::bad(name.as_str(), "sent more than once"));
                }
            }
            if mutation && headers.get(CSRF_HEADER).is_none_or(|v| v.is_empty()) {
                return Err(ApiError::Forbidden(format!("send the {CSRF_HEADER} header with changes")));
            }
            let text = |name: &Option<http::HeaderName>| {
                name.as_ref().and_then(|n| headers.get(n)).and_then(|v| v.to_str().ok()).map(str::trim)
            };
            let id =
                user.to_str().ok().map(str::trim).filter(|u| crate::token::valid_subject_id(u)).ok_or_else(|| {
                    ApiError::bad(th.user.as_str(), "not a principal id (1-128 characters from A-Z a-z 0-9 . _ @ : -)")
                })?;
            let groups = text(&th.groups).map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .take(claims::MAX_GROUPS)
                    .map(String::from)
                    .collect()
            });
            let identity = Identity {
                id: id.to_string(),
                name: text(&th.name).and_then(clean_name),
                email: text(&th.email).and_then(clean_name),
                groups,
                org: None,
            };
            let principal = self.upsert(identity).await?;
            return Ok(Some(SignedIn { principal, via: Via::Headers, set_cookie: None }));
        }
        let (Some(sealer), Some(config)) = (&i.sealer, &i.identity.sessions) else { return Ok(None) };
        let Some(cookie) = session::read_cookie(headers, i.cookies.session_name()) else { return Ok(None) };
        let session: Session = sealer.open(Purpose::Session, cookie).ok_or(ApiError::Unauthorized)?;
        if session.cli || !session.is_live(now, config) {
            return Err(ApiError::Unauthorized);
        }
        if mutation {
            let sent = headers.get(CSRF_HEADER).map(HeaderValue::as_bytes).unwrap_or_default();
            if !bool::from(sent.ct_eq(session.csrf.as_bytes())) {
                return Err(ApiError::Forbidden(format!("missing or wrong {CSRF_HEADER} header")));
            }
        }
        let principal = self.principal(&session.sub).await?;
        let set_cookie = session.needs_refresh(now).then(|| {
            let fresh = session.clone().touched(now);
            let max_age = Duration::from_secs(fresh.remaining(now, config));
            i.cookies.set(i.cookies.session_name(), &sealer.seal(Purpose::Session, &fresh), max_age)
        });
        Ok(Some(SignedIn { principal, via: Via::Cookie { csrf: session.csrf }, set_cookie }))
    }

    /// The signed-in principal's current record: gone means signed out, deactivated refused.
    async fn principal(&self, id: &str) -> Result<Arc<Principal>, ApiError> {
        let p = self.inner.auth.cache().principal(id).await.map_err(lookup_error)?.ok_or(ApiError::Unauthorized)?;
        if p.deactivated {
            return Err(ApiError::Forbidden("your account is deactivated".into()));
        }
        Ok(p)
    }

    /// Creates or updates the principal a sign-in names, from what the provider or proxy says.
    ///
    /// With a SCIM directory configured, the directory is where people come from: a sign-in
    /// never creates one (a person deleted there stays out), and a person it provisioned keeps
    /// the organization and groups it set. A sign-in never writes `deactivated` or the
    /// directory's fields: it changes the record it has just read from the store, not the cache.
    async fn upsert(&self, identity: Identity) -> Result<Arc<Principal>, ApiError> {
        let i = &self.inner;
        let cached = i.auth.cache().principal(&identity.id).await.map_err(lookup_error)?;
        let Some(mut p) = cached
            .as_deref()
            .cloned()
            .or_else(|| (!i.directory).then(|| Principal { id: identity.id.clone(), ..Default::default() }))
        else {
            return Err(ApiError::Forbidden("you are not provisioned here: ask for access in the directory".into()));
        };
        if p.deactivated {
            return Err(ApiError::Forbidden("your account is deactivated".into()));
        }
        if let Some(name) = identity.name.as_deref().and_then(clean_name) {
            p.display_name = name;
        } else if p.display_name.is_empty() {
            p.display_name = p.id.clone();
        }
        if identity.email.is_some() {
            p.email = identity.email;
        }
        let provisioned = i.directory && p.created_at.is_some();
        if !provisioned {
            // An org claim moves a person; the configured default only fills a missing org.
            match identity.org {
                Some(org) => p.org = Some(org),
                None if p.org.is_none() => p.org = i.identity.oidc.as_ref().and_then(|o| o.org.clone()),
                None => {}
            }
        }
        match identity.groups {
            Some(groups) if !provisioned => i.identity.apply_groups(&mut p, groups, &i.roles),
            // No groups claim, or the directory's person: roles stay; the admin lists still apply.
            _ => p.admin = i.identity.grants(&p.id, &p.groups, &i.roles).admin,
        }
        if cached.as_deref() == Some(&p) {
            return Ok(Arc::new(p));
        }
        // Apply the change to the store's current record (the cache may be a moment behind
        // another replica or the directory).
        let mut current = match i.store.get_principal(&p.id).await? {
            Some(current) if current.deactivated => {
                return Err(ApiError::Forbidden("your account is deactivated".into()));
            }
            Some(current) => current,
            None if cached.is_some() || i.directory => {
                return Err(ApiError::Forbidden("you are no longer provisioned here".into()));
            }
            None => Principal { id: p.id.clone(), ..Default::default() },
        };
        current.display_name = p.display_name;
        current.email = p.email;
        if !provisioned {
            current.org = p.org;
            current.groups = p.groups;
            current.roles = p.roles;
            current.scopes = p.scopes;
        }
        current.admin = p.admin;
        i.store.put_principal(&current).await?;
        Ok(Arc::new(current))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_control_characters_and_length() {
        assert_eq!(clean_name("  Alice\u{0}\u{202e} Example ").as_deref(), Some("Alice Example"));
        assert_eq!(clean_name("\u{7}\u{8}"), None);
        assert_eq!(clean_name(&"x".repeat(500)).map(|n| n.len()), Some(MAX_NAME));
    }
}

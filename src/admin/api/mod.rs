//! The admin HTTP API under `/v1` (documented in `docs/openapi.yaml`).
//!
//! | file              | what lives there                                                          |
//! |-------------------|---------------------------------------------------------------------------|
//! | `mod.rs`          | the [`Api`] handle, routing ([`Api::handle`]: 404, 405, `Allow`), session |
//! | [`input`]         | the query parser, JSON bodies and their serde helpers, shared validators  |
//! | `tokens.rs`       | `/v1/tokens`: list, create, show, delete, lifecycle actions, rotation     |
//! | `principals.rs`   | `/v1/principals` (list) and `/v1/principals/{id}`                         |
//! | `audit.rs`        | `/v1/audit`                                                               |
//! | `keys.rs`         | `/v1/keys`: the operator keys by name (never the keys)                    |
//!
//! What it may use: the caller's identity and rules ([`super::access`]), the error type
//! ([`super::error`]), the response shapes ([`super::views`]), webhooks, and below the admin
//! listener: store, token, policy, net, config, clock. Never the proxy.
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

mod audit;
pub mod input;
mod keys;
mod principals;
mod tokens;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::access::Caller;
use crate::admin::error::ApiError;
use crate::admin::webhook::Notifier;
use crate::config::Config;
use crate::net::json::json_response;
use crate::store::Store;
use crate::token::mint::Minter;
use input::{parse_id, read_json};

pub use input::Query;

/// Page size when the request names none.
const DEFAULT_LIMIT: usize = 50;

/// What the API handlers share.
#[derive(Clone)]
pub struct Api {
    pub store: Store,
    pub minter: Minter,
    pub config: std::sync::Arc<Config>,
    pub notifier: Notifier,
    /// The operator keys in force (re-read from `admin.keys_file` while running).
    pub keys: crate::admin::keys::OperatorKeys,
}

/// The methods a `/v1` path serves (the `Allow` header), or `None` for no such endpoint.
fn allowed_methods(segments: &[&str]) -> Option<&'static str> {
    Some(match segments {
        ["session"] | ["audit"] | ["keys"] => "GET",
        ["tokens"] => "GET, POST",
        ["tokens", _] => "GET, DELETE",
        ["tokens", _, "suspend" | "activate" | "revoke" | "restore" | "rotate"] => "POST",
        ["tokens", _, "limits"] => "PUT",
        ["principals"] => "GET",
        ["principals", _] => "GET, PUT, DELETE",
        _ => return None,
    })
}

/// `204 No Content`.
fn no_content() -> Response<Full<Bytes>> {
    Response::builder().status(StatusCode::NO_CONTENT).body(Full::new(Bytes::new())).expect("valid response")
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
        // The path and method decide the operation first (404, 405), then its input is checked.
        let allow = allowed_methods(segments).ok_or_else(|| ApiError::NotFound("no such endpoint".into()))?;
        if !allow.split(", ").any(|m| m == method.as_str()) {
            return Err(ApiError::MethodNotAllowed(allow));
        }
        let query = match (segments, method) {
            (["tokens"] | ["audit"] | ["principals"], &Method::GET) => query,
            _ => query.finish().map(|()| Query::default())?,
        };
        match (segments, method) {
            (["session"], &Method::GET) => Ok(self.session(caller)),
            (["tokens"], &Method::GET) => self.list(caller, query).await,
            (["tokens"], &Method::POST) => {
                self.create(caller, read_json(headers, body, self.config.admin.max_body_bytes).await?).await
            }
            (["tokens", id], &Method::GET) => self.show(caller, parse_id(id)?).await,
            (["tokens", id], &Method::DELETE) => self.delete(caller, parse_id(id)?, headers, body).await,
            (["tokens", id, "limits"], &Method::PUT) => {
                let id = parse_id(id)?;
                let max = self.config.admin.max_body_bytes;
                self.set_limits(caller, id, input::read_required_json(headers, body, max).await?).await
            }
            (["tokens", id, action], &Method::POST) => self.act(caller, parse_id(id)?, action, headers, body).await,
            (["principals"], _) => self.list_principals(caller, query).await,
            (["principals", id], m) => self.principal(caller, m, id, headers, body).await,
            (["audit"], _) => self.audit(caller, query).await,
            (["keys"], _) => self.keys(caller),
            _ => Err(ApiError::NotFound("no such endpoint".into())),
        }
    }

    /// `GET /v1/session`: who the caller is and what the Tokens page may offer them: `roles` are
    /// the configured roles and `scopes` those the route rules require (an operator picks from
    /// these); a person picks from `caller.roles` and `caller.scopes`, what their token holds.
    fn session(&self, caller: &Caller) -> Response<Full<Bytes>> {
        let c = &self.config;
        let who = match caller {
            Caller::Operator { key } => serde_json::json!({ "kind": "operator", "key": key }),
            Caller::Person { principal, roles, scopes, admin, via } => {
                use crate::admin::signin::Via;
                let (signed_in, csrf) = match via {
                    None => ("token", None),
                    Some(Via::Cookie { csrf }) => ("session", Some(csrf)),
                    Some(Via::Cli) => ("cli", None),
                    Some(Via::Headers) => ("headers", None),
                };
                serde_json::json!({
                    "kind": "person",
                    "id": principal.id,
                    "display_name": principal.display_name,
                    "email": principal.email,
                    "org": principal.org,
                    "roles": roles,
                    "scopes": scopes,
                    "admin_of": caller.admin_of(),
                    "admin": admin.map(|a| a.as_str()),
                    "signed_in_with": signed_in,
                    "csrf_token": csrf,
                })
            }
        };
        json_response(
            StatusCode::OK,
            &serde_json::json!({
                "caller": who,
                "expiry_days": c.tokens.expiry_days,
                "roles": c.roles,
                "scopes": c.routes.scopes(),
                "default_roles": c.tokens.default_roles,
                "allow_restore": c.tokens.allow_restore,
            }),
        )
    }
}

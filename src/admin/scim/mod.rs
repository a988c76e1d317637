//! SCIM 2.0 directory sync (RFC 7643/7644) at `/scim/v2` on the admin port: a directory (Entra
//! ID, Okta, ...) provisions people and groups; docs/scim.md has the mapping and the limits.
//!
//! | file          | what lives there                                                            |
//! |---------------|-----------------------------------------------------------------------------|
//! | `mod.rs`      | [`Scim`]: the handle, the credential check, logging of store failures       |
//! | `routes.rs`   | paths and methods, query parameters, bodies, responses, versions (ETag)     |
//! | `list.rs`     | listing parameters, `attributes` projection, paging, ListResponse           |
//! | `users.rs`    | `/Users`: principals as SCIM users, and back                                |
//! | `groups.rs`   | `/Groups`: directory groups, and their members' roles                       |
//! | `filter.rs`   | the filter parser                                                           |
//! | `path.rs`     | the PATCH path parser                                                       |
//! | `eval.rs`     | filters evaluated against a resource's JSON                                 |
//! | `patch.rs`    | PATCH operations applied to a resource's JSON                               |
//! | `schema.rs`   | schema URNs and the discovery documents                                     |
//! | `error.rs`    | [`error::ScimError`], the only place a SCIM failure becomes HTTP            |
//!
//! What it may use: store, token, config, net, auth (the bearer header parser), clock. Never the
//! rest of the admin API (`api`, `access`), nor the proxy.
//!
//! Only the SCIM credential (`scim.token_file` / `TOKENGATE_SCIM_TOKEN`, constant-time
//! compared) opens `/scim/v2`; admin keys and personal tokens never do, and the SCIM credential
//! opens nothing else. Without a configured credential [`crate::admin::Admin`] answers 404, as
//! for any unknown path.
//!
//! Users are principals (`userName` is the principal id); groups are stored records whose
//! `displayName` grants roles through `identity.groups` (the same table as sign-in claims). A
//! membership change recomputes each member principal's roles and admin role and puts it, which
//! publishes an invalidation, so their personal tokens' effective roles change on the next
//! request on every replica. Every request is validated completely before anything is written.

pub mod error;
mod eval;
mod filter;
mod groups;
mod list;
mod patch;
mod path;
mod routes;
mod schema;
mod users;

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::config::{Config, Secret};
use crate::store::Store;
use error::ScimError;

pub use filter::{AttrPath, MAX_FILTER_BYTES, parse_filter};
pub use path::parse_patch_path;

/// The actor recorded in audit events of changes made through SCIM.
pub const ACTOR: &str = "scim";

/// A cheap-to-clone handle to the SCIM service.
#[derive(Clone)]
pub struct Scim {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: Arc<Config>,
    token: Secret,
}

impl Scim {
    /// The service, or `None` when no SCIM credential is configured (SCIM is off).
    pub fn new(store: Store, config: Arc<Config>) -> Option<Self> {
        let token = config.scim.token.clone()?;
        Some(Self { inner: Arc::new(Inner { store, config, token }) })
    }

    /// Serves `/scim/v2/...`; `segments` are the percent-decoded path segments after `v2`.
    /// `busy`: the admin call limit is reached; `cross_site`: a browser says a mutation comes
    /// from another site.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        segments: &[&str],
        busy: bool,
        cross_site: bool,
    ) -> Response<Full<Bytes>> {
        let result = async {
            self.authenticate(&req)?;
            if busy {
                return Err(ScimError::Busy);
            }
            if cross_site {
                return Err(ScimError::Forbidden);
            }
            routes::route(self, req, segments).await
        }
        .await;
        match result {
            Ok(r) => r,
            Err(e) => {
                match &e {
                    ScimError::StoreUnavailable(reason) => tracing::warn!(%reason, "token store unavailable (SCIM)"),
                    ScimError::StoreCorrupt(reason) => {
                        tracing::error!(%reason, "corrupt record in the token store (SCIM)")
                    }
                    _ => {}
                }
                e.response()
            }
        }
    }

    /// Only the SCIM credential passes.
    fn authenticate(&self, req: &Request<Incoming>) -> Result<(), ScimError> {
        let presented = crate::auth::bearer(req.headers(), None).ok().flatten().ok_or(ScimError::Unauthorized)?;
        if self.inner.token.matches(presented) { Ok(()) } else { Err(ScimError::Unauthorized) }
    }
}

//! `/v1/principals` and `/v1/principals/{id}`: the people tokens belong to (operators list and
//! manage them; a person may read their own).

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Deserialize;

use super::input::{self, Empty, Query, dedup, not_null, read_json, subject_id, validate_roles, validate_text};
use super::{Api, DEFAULT_LIMIT, no_content};
use crate::admin::access::Caller;
use crate::admin::error::ApiError;
use crate::net::json::json_response;
use crate::token::{Principal, valid_subject_id};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutPrincipal {
    display_name: String,
    org: Option<String>,
    roles: Vec<String>,
    /// The most this person may give their tokens (see `Principal::limits`).
    #[serde(default, deserialize_with = "not_null")]
    limits: Option<serde_json::Value>,
}

/// Largest page of `GET /v1/principals`.
const MAX_LIMIT: usize = 200;

#[derive(serde::Serialize)]
struct PrincipalList {
    principals: Vec<Principal>,
    /// The last id of this page when more may follow: pass it back as `cursor`.
    next_cursor: Option<String>,
}

impl Api {
    /// `GET /v1/principals`: a page of principals ordered by id (operators only).
    pub(super) async fn list_principals(
        &self,
        caller: &Caller,
        mut query: Query,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let mut limit = DEFAULT_LIMIT;
        if let Some(l) = query.take("limit") {
            limit = l
                .parse()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| ApiError::bad("limit", format!("a number from 1 to {MAX_LIMIT}")))?;
        }
        let cursor = query.take("cursor");
        if let Some(c) = &cursor {
            subject_id("cursor", c)?;
        }
        query.finish()?;
        if !caller.reads_everything() {
            return Err(ApiError::Forbidden("only operators and auditors list principals".into()));
        }
        let page = self.store.list_principals(cursor.as_deref(), limit).await?;
        Ok(json_response(StatusCode::OK, &PrincipalList { principals: page.items, next_cursor: page.next_cursor }))
    }

    /// `GET`, `PUT` or `DELETE /v1/principals/{id}`.
    pub(super) async fn principal(
        &self,
        caller: &Caller,
        method: &Method,
        id: &str,
        headers: &HeaderMap,
        body: Incoming,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        if !valid_subject_id(id) {
            return Err(ApiError::bad(
                "id",
                "principal ids are 1-128 characters from A-Z a-z 0-9 . _ @ : - (not . or ..)",
            ));
        }
        let is_self = matches!(caller, Caller::Person { principal, .. } if principal.id == id);
        match *method {
            Method::GET if caller.reads_everything() || is_self => {
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
                if let Some(org) = &req.org {
                    subject_id("org", org)?;
                }
                let roles = dedup(req.roles);
                validate_roles("roles", &roles, &self.config)?;
                let limits = req.limits.map(input::limits).transpose()?.unwrap_or_default();
                let p =
                    Principal { id: id.to_string(), display_name, org: req.org, roles, limits, ..Default::default() };
                self.store.put_principal(&p).await?;
                Ok(json_response(StatusCode::OK, &p))
            }
            _ => {
                read_json::<Empty>(headers, body, self.config.admin.max_body_bytes).await?;
                if self.store.delete_principal(id, &caller.actor()).await? {
                    Ok(no_content())
                } else {
                    Err(ApiError::NotFound("no such principal".into()))
                }
            }
        }
    }
}

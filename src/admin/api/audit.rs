//! `GET /v1/audit`: the newest lifecycle events (operators only).

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use super::input::Query;
use super::{Api, DEFAULT_LIMIT};
use crate::admin::access::Caller;
use crate::admin::error::ApiError;
use crate::net::json::json_response;
use crate::token::AuditEvent;

/// The most events one request may ask for.
const MAX_LIMIT: usize = 1000;

impl Api {
    pub(super) async fn audit(&self, caller: &Caller, mut query: Query) -> Result<Response<Full<Bytes>>, ApiError> {
        if !caller.reads_everything() {
            return Err(ApiError::Forbidden("only operators and auditors read the audit log".into()));
        }
        let limit = match query.take("limit") {
            Some(v) => v
                .parse()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| ApiError::bad("limit", format!("a number from 1 to {MAX_LIMIT}")))?,
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

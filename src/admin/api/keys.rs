//! `GET /v1/keys`: the operator keys in force, by name, with expiry and source; never a key.
//! Operators only (admin keys and people signed in with the operator role).

use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use super::Api;
use crate::admin::access::Caller;
use crate::admin::error::ApiError;
use crate::admin::views::{KeyList, KeyView};
use crate::clock::Timestamp;
use crate::net::json::json_response;

impl Api {
    pub(super) fn keys(&self, caller: &Caller) -> Result<Response<Full<Bytes>>, ApiError> {
        if !caller.is_operator() {
            return Err(ApiError::Forbidden("only operators can list the operator keys".into()));
        }
        let millis = |at: std::time::SystemTime| {
            Timestamp(u64::try_from(at.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX))
        };
        let keys = self
            .keys
            .current()
            .iter()
            .map(|k| KeyView {
                name: k.name.clone(),
                expires_at: k.expires_at.map(millis),
                source: k.source.as_str().into(),
            })
            .collect();
        Ok(json_response(StatusCode::OK, &KeyList { keys }))
    }
}

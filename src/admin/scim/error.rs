//! SCIM failures and the one place they become HTTP: `urn:ietf:params:scim:api:messages:2.0:Error`
//! bodies (`status` as a string, `scimType` for 400 and 409, `detail`) with
//! `Content-Type: application/scim+json`. Store failures carry their reason for the log, which is
//! written where the request is handled ([`super::Scim::handle`]), never in a response.

use bytes::Bytes;
use http::header::{ALLOW, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::Full;
use thiserror::Error;

use crate::net::json::RETRY_AFTER_SECS;
use crate::store::StoreError;

use super::schema::ERROR_URN;

/// A SCIM request that failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScimError {
    /// 400 with one of RFC 7644's `scimType` values (`invalidFilter`, `invalidSyntax`,
    /// `invalidPath`, `noTarget`, `invalidValue`, `mutability`, `tooMany`, `invalidVers`).
    #[error("{detail}")]
    BadRequest { scim_type: &'static str, detail: String },
    #[error("the SCIM bearer token is required")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    /// The value of the `Allow` header.
    #[error("allowed methods: {0}")]
    MethodNotAllowed(&'static str),
    /// 409 `uniqueness`.
    #[error("{0}")]
    Conflict(String),
    /// `If-Match` named another version.
    #[error("the resource changed: its version is not the one in If-Match")]
    PreconditionFailed,
    #[error("the request body is over {0} bytes")]
    PayloadTooLarge(usize),
    #[error("send a JSON body with Content-Type: application/scim+json (or application/json)")]
    UnsupportedMediaType,
    #[error("cross-site requests are refused")]
    Forbidden,
    #[error("too many admin calls in progress; retry shortly")]
    Busy,
    /// The store did not answer; the reason is for the log only.
    #[error("the store is unavailable; retry shortly")]
    StoreUnavailable(String),
    /// The store holds a record that cannot be read; the reason is for the log only.
    #[error("internal error")]
    StoreCorrupt(String),
}

impl ScimError {
    pub fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest { scim_type, detail: detail.into() }
    }
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::bad("invalidValue", detail)
    }
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::bad("invalidSyntax", detail)
    }
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::bad("invalidFilter", detail)
    }
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::bad("invalidPath", detail)
    }
    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::bad("mutability", detail)
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Busy | Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::StoreCorrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn scim_type(&self) -> Option<&'static str> {
        match self {
            Self::BadRequest { scim_type, .. } => Some(scim_type),
            Self::Conflict(_) => Some("uniqueness"),
            _ => None,
        }
    }

    /// The response: the SCIM error body and the headers its status calls for.
    pub fn response(&self) -> Response<Full<Bytes>> {
        let status = self.status();
        let mut body = serde_json::json!({
            "schemas": [ERROR_URN],
            "status": status.as_u16().to_string(),
            "detail": self.to_string(),
        });
        if let Some(t) = self.scim_type() {
            body["scimType"] = t.into();
        }
        let mut r = super::routes::scim_response(status, &body);
        let h = r.headers_mut();
        match self {
            Self::Unauthorized => {
                h.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"tokengate-scim\""));
            }
            Self::MethodNotAllowed(allow) => {
                h.insert(ALLOW, HeaderValue::from_static(allow));
            }
            Self::Busy | Self::StoreUnavailable(_) => {
                h.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            _ => {}
        }
        r
    }
}

impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(reason) => Self::StoreUnavailable(reason),
            StoreError::Corrupt(reason) => Self::StoreCorrupt(reason),
            other => Self::StoreCorrupt(other.to_string()),
        }
    }
}

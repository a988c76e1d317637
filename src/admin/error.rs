//! The admin API's errors and the one place that turns them into HTTP responses. Bodies are
//! `{"error": {"code", "message", "field"?}}`; store failures carry their reason here and are
//! logged where the request is handled ([`crate::admin`]), never inside a conversion.

use bytes::Bytes;
use http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::net::json::{RETRY_AFTER_SECS, json_response};

/// An admin API failure. Bodies are `{"error": {"code": ..., "message": ..., "field": ...}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// Bad JSON, an unknown field or a bad value; `field` names it when there is one.
    BadRequest {
        field: Option<String>,
        message: String,
    },
    Unauthorized,
    /// A sign-in that did not succeed (a bad or expired flow, an unacceptable ID token); the
    /// message says why without echoing anything secret.
    SignIn(String),
    /// The identity provider is unreachable or answered badly; the reason is for the log.
    Provider(String),
    Forbidden(String),
    NotFound(String),
    /// A well-formed request field names something that does not exist (e.g. a token's owner).
    Missing {
        field: String,
        message: String,
    },
    /// The value of the `Allow` header.
    MethodNotAllowed(&'static str),
    Conflict(String),
    PayloadTooLarge(usize),
    UnsupportedMediaType,
    Unavailable,
    /// The store did not answer; the reason is for the log, never the response.
    StoreUnavailable(String),
    /// The store holds a record that cannot be read; the reason is for the log.
    StoreCorrupt(String),
    /// Too many API calls in progress (`admin.max_concurrent_calls`).
    Busy,
    Internal,
}

impl ApiError {
    pub fn bad(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadRequest { field: Some(field.into()), message: message.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::SignIn(_) => StatusCode::UNAUTHORIZED,
            Self::Provider(_) => StatusCode::BAD_GATEWAY,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::Missing { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable | Self::StoreUnavailable(_) | Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal | Self::StoreCorrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn response(&self) -> Response<Full<Bytes>> {
        let (code, message, field) = match self {
            Self::BadRequest { field, message } => ("bad_request", message.clone(), field.clone()),
            Self::Unauthorized => ("unauthorized", "sign in, or present an admin key or a personal token".into(), None),
            Self::SignIn(m) => ("sign_in_failed", m.clone(), None),
            Self::Provider(_) => {
                ("provider_unavailable", "the identity provider did not answer as expected; try again".into(), None)
            }
            Self::Forbidden(m) => ("forbidden", m.clone(), None),
            Self::NotFound(m) => ("not_found", m.clone(), None),
            Self::Missing { field, message } => ("not_found", message.clone(), Some(field.clone())),
            Self::MethodNotAllowed(allow) => ("method_not_allowed", format!("allowed methods: {allow}"), None),
            Self::Conflict(m) => ("conflict", m.clone(), None),
            Self::PayloadTooLarge(max) => ("payload_too_large", format!("the request body is over {max} bytes"), None),
            Self::UnsupportedMediaType => {
                ("unsupported_media_type", "send a JSON body with Content-Type: application/json".into(), None)
            }
            Self::Unavailable | Self::StoreUnavailable(_) => {
                ("unavailable", "the token store is unavailable; retry shortly".into(), None)
            }
            Self::Busy => ("unavailable", "too many admin API calls in progress; retry shortly".into(), None),
            Self::Internal | Self::StoreCorrupt(_) => ("internal", "internal error".into(), None),
        };
        let mut error = serde_json::json!({ "code": code, "message": message });
        if let Some(field) = field {
            error["field"] = field.into();
        }
        let mut response = json_response(self.status(), &serde_json::json!({ "error": error }));
        let headers = response.headers_mut();
        match self {
            Self::Unauthorized => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer realm="tokengate-admin""#));
            }
            Self::MethodNotAllowed(allow) => {
                headers.insert(http::header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::Unavailable | Self::StoreUnavailable(_) | Self::Busy => {
                headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            _ => {}
        }
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        use crate::token::TransitionError;
        match e {
            StoreError::NotFound => Self::NotFound("no such token".into()),
            StoreError::IdTaken => Self::Conflict("token id already in use".into()),
            StoreError::Transition(TransitionError::RestoreDisabled) => Self::Forbidden(e.to_string()),
            StoreError::Transition(t @ TransitionError::Conflict { .. }) => Self::Conflict(t.to_string()),
            StoreError::NotRevoked(_) | StoreError::RotateRevoked | StoreError::RotatedMeanwhile => {
                Self::Conflict(e.to_string())
            }
            StoreError::InvalidCursor => Self::bad("cursor", "invalid cursor"),
            StoreError::Unavailable(reason) => Self::StoreUnavailable(reason),
            StoreError::Corrupt(reason) => Self::StoreCorrupt(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::header::RETRY_AFTER;
    use http_body_util::BodyExt;

    use super::*;

    fn lost_text() -> String {
        crate::store::StoreError::RotatedMeanwhile.to_string()
    }

    #[tokio::test]
    async fn each_api_error_is_pinned() {
        let api = ApiError::bad("name", "must not be empty").response();
        assert_eq!(api.status(), 400);
        let body = api.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["field"], "name");
        assert_eq!(ApiError::Unavailable.response().headers()[RETRY_AFTER], "2");
        let busy = ApiError::Busy.response();
        assert_eq!((busy.status().as_u16(), &busy.headers()[RETRY_AFTER]), (503, &HeaderValue::from_static("2")));
        assert_eq!(ApiError::MethodNotAllowed("GET, POST").response().headers()[http::header::ALLOW], "GET, POST");
        assert_eq!(ApiError::SignIn("expired".into()).response().status(), 401);
        let provider = ApiError::Provider("connect refused 10.0.0.1".into()).response();
        assert_eq!(provider.status(), 502);
        let body = provider.into_body().collect().await.unwrap().to_bytes();
        assert!(!String::from_utf8_lossy(&body).contains("10.0.0.1"), "the reason is for the log");
        let lost = ApiError::from(crate::store::StoreError::RotatedMeanwhile);
        assert_eq!((lost.status().as_u16(), &lost), (409, &ApiError::Conflict(lost_text())));
        let missing = ApiError::Missing { field: "owner".into(), message: "no principal".into() }.response();
        assert_eq!(missing.status(), 404);
        let body: serde_json::Value =
            serde_json::from_slice(&missing.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(
            (body["error"]["code"].as_str(), body["error"]["field"].as_str()),
            (Some("not_found"), Some("owner"))
        );
    }
}

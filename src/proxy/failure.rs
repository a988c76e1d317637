//! The data path's failures and the one place that turns them into HTTP responses.
//!
//! | failure               | status | `WWW-Authenticate`                                      |
//! |-----------------------|--------|---------------------------------------------------------|
//! | missing credentials   | 401    | `Bearer realm="tokengate"` (no error code, RFC 6750 §3.1) |
//! | invalid request       | 400    | `… error="invalid_request", error_description="…"`      |
//! | malformed framing     | 400    | — (`Connection: close`: ambiguous length or two `Host`s) |
//! | invalid token         | 401    | `… error="invalid_token", error_description="…"` (one generic text) |
//! | insufficient scope    | 403    | `… error="insufficient_scope"`                          |
//! | too many failures     | 429    | — (`Retry-After`: the client's failed-authentication budget) |
//! | token rate limit      | 429    | — (`Retry-After`, `RateLimit-Policy`, `RateLimit`)      |
//! | token quota used up   | 403    | — (`RateLimit-Policy` with the quota)                   |
//! | network not allowed   | 403    | —                                                       |
//! | request head too large| 431    | —                                                       |
//! | store unavailable     | 503    | — (`Retry-After`)                                       |
//! | upstream unavailable  | 502    | —                                                       |
//! | upstream timeout      | 504    | —                                                       |
//!
//! Bodies are small JSON objects `{"error": "...", "error_description": "..."}`. Nothing about
//! the presented token, or why exactly it was refused, is ever put in a response: the reason goes
//! to logs and metrics by token id.

use bytes::Bytes;
use http::header::{CONNECTION, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::metrics::Outcome;
use crate::net::json::{RETRY_AFTER_SECS, json_response};

const INVALID_TOKEN_TEXT: &str = "The access token is invalid, expired or revoked.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    MissingCredentials,
    /// The request itself is malformed; the text says how (never quoting the token).
    InvalidRequest(&'static str),
    /// The request's framing is ambiguous (RFC 9112 §6.3) or it names two hosts; the
    /// connection is closed after the response, since where the next request starts is unknown.
    Malformed(&'static str),
    HeadersTooLarge,
    InvalidToken,
    InsufficientScope,
    /// The client address spent its failed-authentication budget; retry after this many seconds.
    TooManyFailures(u64),
    /// The token's rate limit (`requests` per `window` seconds) is spent; retry after this many
    /// seconds.
    RateLimited {
        retry_after: u64,
        requests: u32,
        window: u32,
    },
    /// The token's total-use quota is used up.
    QuotaExhausted {
        quota: u64,
    },
    /// The client address is outside the token's allowed networks.
    NetworkNotAllowed,
    StoreUnavailable,
    UpstreamUnavailable,
    UpstreamTimeout,
}

impl Failure {
    pub fn status(self) -> StatusCode {
        match self {
            Self::MissingCredentials | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_) | Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::InsufficientScope | Self::QuotaExhausted { .. } | Self::NetworkNotAllowed => StatusCode::FORBIDDEN,
            Self::TooManyFailures(_) | Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    pub fn outcome(self) -> Outcome {
        match self {
            Self::MissingCredentials => Outcome::MissingCredentials,
            Self::InvalidRequest(_) | Self::Malformed(_) | Self::HeadersTooLarge => Outcome::InvalidRequest,
            Self::InvalidToken => Outcome::InvalidToken,
            Self::InsufficientScope => Outcome::InsufficientScope,
            Self::TooManyFailures(_) => Outcome::TooManyFailures,
            Self::RateLimited { .. } | Self::QuotaExhausted { .. } | Self::NetworkNotAllowed => Outcome::TokenLimit,
            Self::StoreUnavailable => Outcome::StoreUnavailable,
            Self::UpstreamUnavailable => Outcome::UpstreamError,
            Self::UpstreamTimeout => Outcome::UpstreamTimeout,
        }
    }

    fn code_and_text(self) -> (&'static str, &'static str) {
        match self {
            Self::MissingCredentials => ("missing_credentials", "A bearer token is required."),
            Self::InvalidRequest(text) | Self::Malformed(text) => ("invalid_request", text),
            Self::HeadersTooLarge => ("headers_too_large", "The request headers are too large."),
            Self::InvalidToken => ("invalid_token", INVALID_TOKEN_TEXT),
            Self::InsufficientScope => {
                ("insufficient_scope", "The access token does not grant access to this resource.")
            }
            Self::TooManyFailures(_) => {
                ("too_many_requests", "Too many failed authentications from this address; retry later.")
            }
            Self::RateLimited { .. } => ("rate_limited", "This token's rate limit is reached; retry later."),
            Self::QuotaExhausted { .. } => ("quota_exhausted", "This token's request quota is used up."),
            Self::NetworkNotAllowed => ("network_not_allowed", "This token may not be used from this network."),
            Self::StoreUnavailable => ("temporarily_unavailable", "Tokens cannot be checked right now; retry shortly."),
            Self::UpstreamUnavailable => ("bad_gateway", "The upstream service is unavailable."),
            Self::UpstreamTimeout => ("gateway_timeout", "The upstream service did not answer in time."),
        }
    }

    fn www_authenticate(self) -> Option<String> {
        let realm = r#"Bearer realm="tokengate""#;
        Some(match self {
            Self::MissingCredentials => realm.to_string(),
            Self::InvalidRequest(text) => format!(r#"{realm}, error="invalid_request", error_description="{text}""#),
            Self::InvalidToken => {
                format!(r#"{realm}, error="invalid_token", error_description="{INVALID_TOKEN_TEXT}""#)
            }
            Self::InsufficientScope => format!(r#"{realm}, error="insufficient_scope""#),
            _ => return None,
        })
    }

    /// The complete response.
    pub fn response(self) -> Response<Full<Bytes>> {
        let (code, text) = self.code_and_text();
        let mut response =
            json_response(self.status(), &serde_json::json!({ "error": code, "error_description": text }));
        let headers = response.headers_mut();
        if let Some(value) = self.www_authenticate() {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_str(&value).expect("static texts are header-safe"));
        }
        match self {
            Self::Malformed(_) => {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Self::StoreUnavailable => {
                headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            Self::TooManyFailures(secs) => {
                headers.insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            Self::RateLimited { retry_after, requests, window } => {
                let secs = retry_after.max(1);
                headers.insert(RETRY_AFTER, HeaderValue::from(secs));
                headers.insert(RATELIMIT_POLICY, rate_policy(requests, window));
                headers.insert(RATELIMIT, rate_status(0, secs));
            }
            Self::QuotaExhausted { quota } => {
                let policy = format!("\"quota\";q={quota}");
                headers.insert(RATELIMIT_POLICY, HeaderValue::from_str(&policy).expect("digits are header-safe"));
            }
            _ => {}
        }
        response
    }
}

/// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers, structured fields).
pub const RATELIMIT_POLICY: http::HeaderName = http::HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: http::HeaderName = http::HeaderName::from_static("ratelimit");

/// `"token";q=<requests>;w=<window seconds>`.
pub fn rate_policy(requests: u32, window: u32) -> HeaderValue {
    HeaderValue::from_str(&format!("\"token\";q={requests};w={window}")).expect("digits are header-safe")
}

/// `"token";r=<remaining>;t=<seconds until more>`.
pub fn rate_status(remaining: u32, reset_secs: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"token\";r={remaining};t={reset_secs}")).expect("digits are header-safe")
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;
    use http::header::{CONTENT_TYPE, RETRY_AFTER};

    async fn parts(f: Failure) -> (StatusCode, Option<String>, Option<String>, serde_json::Value) {
        let r: Response<Full<Bytes>> = f.response();
        let www = r.headers().get(WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_string());
        let retry = r.headers().get(RETRY_AFTER).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        let status = r.status();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, www, retry, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn each_failure_is_pinned() {
        let (s, www, retry, body) = parts(Failure::MissingCredentials).await;
        assert_eq!((s.as_u16(), www.as_deref(), retry), (401, Some(r#"Bearer realm="tokengate""#), None));
        assert_eq!(body["error"], "missing_credentials");

        let (s, www, _, body) = parts(Failure::InvalidRequest("multiple Authorization headers")).await;
        assert_eq!(s.as_u16(), 400);
        assert_eq!(
            www.unwrap(),
            r#"Bearer realm="tokengate", error="invalid_request", error_description="multiple Authorization headers""#
        );
        assert_eq!(body["error_description"], "multiple Authorization headers");

        let (s, www, _, body) = parts(Failure::InvalidToken).await;
        assert_eq!(s.as_u16(), 401);
        assert!(www.unwrap().contains(r#"error="invalid_token""#));
        assert_eq!(body["error"], "invalid_token");

        let (s, www, _, _) = parts(Failure::InsufficientScope).await;
        assert_eq!((s.as_u16(), www.unwrap().contains(r#"error="insufficient_scope""#)), (403, true));

        let (s, www, retry, _) = parts(Failure::StoreUnavailable).await;
        assert_eq!((s.as_u16(), www, retry.as_deref()), (503, None, Some("2")));
        let (s, www, retry, body) = parts(Failure::TooManyFailures(7)).await;
        assert_eq!((s.as_u16(), www, retry.as_deref()), (429, None, Some("7")));
        assert_eq!(body["error"], "too_many_requests");
        assert_eq!(parts(Failure::UpstreamUnavailable).await.0.as_u16(), 502);
        assert_eq!(parts(Failure::UpstreamTimeout).await.0.as_u16(), 504);
        let (s, www, _, body) = parts(Failure::HeadersTooLarge).await;
        assert_eq!((s.as_u16(), www, body["error"].as_str()), (431, None, Some("headers_too_large")));
        let malformed = Failure::Malformed("both Content-Length and Transfer-Encoding").response();
        assert_eq!(malformed.status(), 400);
        assert_eq!(malformed.headers()[http::header::CONNECTION], "close");
        assert!(malformed.headers().get(WWW_AUTHENTICATE).is_none());
    }
}

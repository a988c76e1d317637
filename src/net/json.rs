//! The one JSON response builder: every JSON answer tokengate gives (data-path failures, the
//! admin API, health) has `Content-Type: application/json` and `Cache-Control: no-store`, so no
//! intermediary ever caches an answer about credentials.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

/// Seconds a client is asked to wait (`Retry-After`) when tokens cannot be checked right now.
pub const RETRY_AFTER_SECS: u64 = 2;

/// A JSON response with `status`, `body` and the headers every JSON answer carries.
pub fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(body).expect("response bodies serialize");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

//! The Tokens page: static assets compiled into the binary (no CDN; works offline).

use bytes::Bytes;
use http::Response;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use http_body_util::Full;

const INDEX: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/style.css");
const ICON: &str = include_str!("ui/favicon.svg");

fn respond(body: &'static str, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff"));
    h.insert(HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY"));
    h.insert(HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer"));
    r
}

pub fn page() -> Response<Full<Bytes>> {
    respond(INDEX, "text/html; charset=utf-8")
}

pub fn asset(name: &str) -> Option<Response<Full<Bytes>>> {
    match name {
        "app.js" => Some(respond(SCRIPT, "text/javascript; charset=utf-8")),
        "style.css" => Some(respond(STYLE, "text/css; charset=utf-8")),
        "favicon.svg" => Some(respond(ICON, "image/svg+xml")),
        _ => None,
    }
}

//! The `/auth/*` routes: the provider's methods, the browser's sign-in (`login`, `callback`),
//! sign-out, and the CLI's device sign-in (`device`, `device/token`).

use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, HeaderValue, LOCATION, SET_COOKIE};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use subtle::ConstantTimeEq;

use super::oidc::{Device, Flow, Oidc, OidcError};
use super::seal::{Purpose, Sealer};
use super::session::{self, Session};
use super::{CSRF_HEADER, SignIn, now_secs, oidc_error};
use crate::admin::error::ApiError;
use crate::clock::Timestamp;
use crate::net::json::json_response;

/// How long one `POST /auth/device/token` waits for the person before answering `pending`.
pub const DEVICE_WAIT: Duration = Duration::from_secs(15);

/// Most device sign-ins waited for at once (503 with `Retry-After` beyond): each holds a
/// connection for up to [`DEVICE_WAIT`] and asks the provider every few seconds.
pub const DEVICE_POLLS: usize = 4;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DevicePoll {
    device: String,
}

/// A `return_to` that stays on this listener: a path starting with one `/`.
fn local_path(p: Option<String>) -> String {
    match p {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.starts_with("/\\")
                && p.len() <= 512
                && p.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            p
        }
        _ => "/".to_string(),
    }
}

fn redirect(status: StatusCode, location: &str, cookies: &[HeaderValue]) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(LOCATION, HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/")));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for c in cookies {
        h.append(SET_COOKIE, c.clone());
    }
    r
}

impl SignIn {
    /// `GET /auth/methods`, `GET /auth/login`, `GET /auth/callback`, `POST /auth/logout`,
    /// `POST /auth/device`, `POST /auth/device/token`. `max_body` bounds JSON bodies.
    pub async fn handle(
        &self,
        req: http::Request<hyper::body::Incoming>,
        segments: &[&str],
        max_body: usize,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        use http::Method;
        let (parts, body) = req.into_parts();
        let (query, headers) = (parts.uri.query(), &parts.headers);
        match (segments, &parts.method) {
            (["methods"], &Method::GET) => Ok(self.methods()),
            (["login"], &Method::GET) => self.login(query).await,
            (["callback"], &Method::GET) => self.callback(query, headers).await,
            (["logout"], &Method::POST) => self.logout(headers),
            (["device"], &Method::POST) => {
                crate::admin::api::input::read_json::<Empty>(headers, body, max_body).await?;
                self.device_start().await
            }
            (["device", "token"], &Method::POST) => {
                let poll: DevicePoll = crate::admin::api::input::read_json(headers, body, max_body).await?;
                self.device_token(&poll.device).await
            }
            (["methods" | "login" | "callback"], _) => Err(ApiError::MethodNotAllowed("GET")),
            (["logout"] | ["device"] | ["device", "token"], _) => Err(ApiError::MethodNotAllowed("POST")),
            _ => Err(ApiError::NotFound("no such endpoint".into())),
        }
    }

    /// `POST /auth/device`: starts a device sign-in for `tokengate login`; the answer says where
    /// the person signs in and holds the sealed state the CLI polls with.
    async fn device_start(&self) -> Result<Response<Full<Bytes>>, ApiError> {
        let (oidc, sealer) = self.oidc()?;
        let device = oidc.begin_device(now_secs(Timestamp::now())).await.map_err(oidc_error)?;
        let d = &device.details;
        Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({
                "user_code": d.user_code().secret(),
                "verification_uri": d.verification_uri().as_str(),
                "verification_uri_complete": d.verification_uri_complete().map(|u| u.secret().clone()),
                "interval_secs": d.interval().as_secs(),
                "expires_in_secs": d.expires_in().as_secs(),
                "device": sealer.seal(Purpose::Device, &device),
            }),
        ))
    }

    /// `POST /auth/device/token`: waits up to [`DEVICE_WAIT`] for the person to finish; then
    /// 200 with a CLI session, or 202 (`pending`: ask again).
    async fn device_token(&self, sealed: &str) -> Result<Response<Full<Bytes>>, ApiError> {
        let (oidc, sealer) = self.oidc()?;
        let device: Device = sealer
            .open(Purpose::Device, sealed)
            .ok_or_else(|| ApiError::bad("device", "not a device sign-in of this server"))?;
        let now = Timestamp::now();
        let remaining = device.expires_at.saturating_sub(now_secs(now));
        if remaining == 0 {
            return Err(ApiError::SignIn("the device sign-in expired: run `tokengate login` again".into()));
        }
        let _poll = self.inner.device_polls.try_acquire().map_err(|_| ApiError::Busy)?;
        let wait = DEVICE_WAIT.min(Duration::from_secs(remaining));
        let identity = match oidc.poll_device(&device, wait).await {
            Ok(identity) => identity,
            Err(OidcError::Pending) => {
                return Ok(json_response(StatusCode::ACCEPTED, &serde_json::json!({ "status": "pending" })));
            }
            Err(e) => return Err(oidc_error(e)),
        };
        let principal = self.upsert(identity).await?;
        tracing::info!(principal = %principal.id, "signed in the CLI with a device code");
        let config = self.inner.identity.sessions.as_ref().expect("sessions are configured with oidc");
        let now = Timestamp::now();
        let session = Session::new(principal.id.clone(), now, true);
        let expires_at = now.saturating_add(config.lifetime);
        Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({
                "session": sealer.seal(Purpose::Session, &session),
                "expires_at": expires_at.to_rfc3339(),
                "principal": principal.id,
            }),
        ))
    }

    fn oidc(&self) -> Result<(&Oidc, &Sealer), ApiError> {
        match (&self.inner.oidc, &self.inner.sealer) {
            (Some(o), Some(s)) => Ok((o, s)),
            _ => Err(ApiError::NotFound("OpenID Connect sign-in is not configured".into())),
        }
    }

    async fn login(&self, query: Option<&str>) -> Result<Response<Full<Bytes>>, ApiError> {
        let (oidc, sealer) = self.oidc()?;
        let mut q = crate::admin::api::Query::parse(query)?;
        let return_to = local_path(q.take("return_to"));
        q.finish()?;
        let (url, flow) = oidc.begin(return_to, now_secs(Timestamp::now())).await.map_err(oidc_error)?;
        let c = self.inner.cookies;
        let cookie = c.set(c.flow_name(), &sealer.seal(Purpose::Flow, &flow), Flow::LIFETIME);
        Ok(redirect(StatusCode::FOUND, url.as_str(), &[cookie]))
    }

    async fn callback(&self, query: Option<&str>, headers: &HeaderMap) -> Result<Response<Full<Bytes>>, ApiError> {
        let (oidc, sealer) = self.oidc()?;
        let c = self.inner.cookies;
        // Providers add parameters of their own (`iss`, `session_state`): only ours are read.
        let mut q = crate::admin::api::Query::parse(query)?;
        if let Some(error) = q.take("error") {
            let error: String = error.chars().filter(|c| c.is_ascii_graphic()).take(64).collect();
            return Err(ApiError::SignIn(format!("the identity provider answered {error:?}")));
        }
        let flow: Flow = session::read_cookie(headers, c.flow_name())
            .and_then(|f| sealer.open(Purpose::Flow, f))
            .ok_or_else(|| ApiError::SignIn("no sign-in in progress in this browser: start again".into()))?;
        let now = Timestamp::now();
        if now_secs(now).saturating_sub(flow.at) > Flow::LIFETIME.as_secs() {
            return Err(ApiError::SignIn("the sign-in took too long: start again".into()));
        }
        let state = q.take("state").ok_or_else(|| ApiError::bad("state", "missing"))?;
        if !flow.state_matches(&state) {
            return Err(ApiError::SignIn("the sign-in answer does not belong to this browser's sign-in".into()));
        }
        let code = q.take("code").ok_or_else(|| ApiError::bad("code", "missing"))?;
        let identity = oidc.finish(&flow, code).await.map_err(oidc_error)?;
        let principal = self.upsert(identity).await?;
        tracing::info!(principal = %principal.id, "signed in with OpenID Connect");
        let config = self.inner.identity.sessions.as_ref().expect("sessions are configured with oidc");
        let session = Session::new(principal.id.clone(), now, false);
        let cookies = [
            c.set(c.session_name(), &sealer.seal(Purpose::Session, &session), config.lifetime),
            c.clear(c.flow_name()),
        ];
        Ok(redirect(StatusCode::SEE_OTHER, &flow.return_to, &cookies))
    }

    /// Clears the session cookie (the CSRF value is checked when a session is presented).
    fn logout(&self, headers: &HeaderMap) -> Result<Response<Full<Bytes>>, ApiError> {
        let i = &self.inner;
        if let (Some(sealer), Some(cookie)) = (&i.sealer, session::read_cookie(headers, i.cookies.session_name()))
            && let Some(session) = sealer.open::<Session>(Purpose::Session, cookie)
        {
            let sent = headers.get(CSRF_HEADER).map(HeaderValue::as_bytes).unwrap_or_default();
            if !bool::from(sent.ct_eq(session.csrf.as_bytes())) {
                return Err(ApiError::Forbidden(format!("missing or wrong {CSRF_HEADER} header")));
            }
            tracing::info!(principal = %session.sub, "signed out");
        }
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NO_CONTENT;
        r.headers_mut().insert(SET_COOKIE, i.cookies.clear(i.cookies.session_name()));
        r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_stays_on_this_listener() {
        for (given, kept) in [
            (Some("/"), "/"),
            (Some("/?tab=audit"), "/?tab=audit"),
            (Some("//evil.example/"), "/"),
            (Some("/\\evil.example"), "/"),
            (Some("https://evil.example/"), "/"),
            (Some("/a b"), "/"),
            (Some("javascript:alert(1)"), "/"),
            (None, "/"),
        ] {
            assert_eq!(local_path(given.map(String::from)), kept, "{given:?}");
        }
    }
}

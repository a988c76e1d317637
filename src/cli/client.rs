//! The admin API's HTTP client for the command line: one request, one typed answer, and the
//! server's errors as one line (`<field>: <message> (HTTP <status>)`).

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cli::TokenArgs;

/// Why a command did not complete.
#[derive(Debug)]
pub enum CliError {
    /// A failure to show the user: one line, exit code 1.
    Failed(String),
    /// Standard output was closed by its reader: exit quietly with [`CliError::BROKEN_PIPE_EXIT`].
    BrokenPipe,
}

impl CliError {
    /// 128 + SIGPIPE, what a shell reports for a command ended by a closed pipe.
    pub const BROKEN_PIPE_EXIT: u8 = 141;

    /// A failure to write standard output: a closed pipe is [`CliError::BrokenPipe`].
    pub fn output(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::BrokenPipe => Self::BrokenPipe,
            _ => Self::Failed(format!("writing the output: {e}")),
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(message) => f.write_str(message),
            Self::BrokenPipe => f.write_str("the output was closed by its reader"),
        }
    }
}

/// Failures of the long-running commands (`serve`, `demo`, `echo`), with their causes.
impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        Self::Failed(format!("{e:#}"))
    }
}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A plain HTTP or HTTPS client (the platform's roots).
pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build(crate::net::tls::client_connector(HttpConnector::new()))
}

/// A client of one admin listener, authenticated with an operator key, a personal token or the
/// session `tokengate login` stored.
pub struct AdminClient {
    base: String,
    credential: Option<String>,
    http: HttpClient,
}

impl AdminClient {
    /// The admin key when given, otherwise the personal token, otherwise the stored session for
    /// this admin URL; none is an error.
    pub fn new(args: &TokenArgs) -> Result<Self, CliError> {
        let base = args.admin_url.trim_end_matches('/').to_string();
        let credential = args
            .admin_key
            .clone()
            .or_else(|| args.token.clone())
            .or_else(|| crate::cli::login::stored_session(&base))
            .ok_or_else(|| {
                CliError::Failed(
                    "no credential: run `tokengate login`, or set TOKENGATE_ADMIN_KEY (operators) or TOKENGATE_TOKEN (your personal token)".into(),
                )
            })?;
        Ok(Self { base, credential: Some(credential), http: http_client() })
    }

    /// A client of the admin listener at `admin_url`: the admin key when given, otherwise the
    /// personal token, otherwise the session `tokengate login` stored.
    pub fn connect(admin_url: &str, admin_key: Option<String>, token: Option<String>) -> Result<Self, CliError> {
        let base = admin_url.trim_end_matches('/').to_string();
        let credential =
            admin_key.or(token).or_else(|| crate::cli::login::stored_session(&base)).ok_or_else(|| {
                CliError::Failed(
                    "no credential: run `tokengate login`, or set TOKENGATE_ADMIN_KEY (operators) or TOKENGATE_TOKEN (your personal token)".into(),
                )
            })?;
        Ok(Self { base, credential: Some(credential), http: http_client() })
    }

    /// A client without a credential (for signing in).
    pub fn anonymous(admin_url: &str) -> Self {
        Self { base: admin_url.trim_end_matches('/').to_string(), credential: None, http: http_client() }
    }

    /// The answer's status and JSON body, whatever the status.
    pub async fn exchange_json(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), CliError> {
        let (status, bytes) = self.exchange(method, path, body).await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// A client of the admin listener at `base` with `credential` (an operator key or a token).
    pub fn with_credential(base: &str, credential: String) -> Self {
        Self { base: base.trim_end_matches('/').to_string(), credential: Some(credential), http: http_client() }
    }

    /// Sends a request and reads the successful answer as `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, CliError> {
        let bytes = self.send(method, path, body).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| CliError::Failed(format!("unexpected answer from the admin API for {path}: {e}")))
    }

    /// Like [`AdminClient::call`], but `Ok(None)` when the answer is 404 (no such resource).
    pub async fn call_optional<T: DeserializeOwned>(&self, method: Method, path: &str) -> Result<Option<T>, CliError> {
        let (status, bytes) = self.exchange(method, path, None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let bytes = success(status, bytes)?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CliError::Failed(format!("unexpected answer from the admin API for {path}: {e}")))
    }

    /// Sends a request whose successful answer has no body (`204 No Content`).
    pub async fn call_no_content(&self, method: Method, path: &str, body: Option<Value>) -> Result<(), CliError> {
        self.send(method, path, body).await.map(drop)
    }

    /// The body of a successful answer; any other answer becomes [`describe_error`]'s line.
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Result<Bytes, CliError> {
        let (status, bytes) = self.exchange(method, path, body).await?;
        success(status, bytes)
    }

    /// The answer's status and body, whatever the status.
    async fn exchange(&self, method: Method, path: &str, body: Option<Value>) -> Result<(StatusCode, Bytes), CliError> {
        let url = format!("{}{path}", self.base);
        let mut req = http::Request::builder().method(method).uri(&url);
        if let Some(credential) = &self.credential {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {credential}"));
        }
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = req.body(Full::new(body)).map_err(|e| CliError::Failed(format!("invalid admin URL {url}: {e}")))?;
        let resp = self
            .http
            .request(req)
            .await
            .map_err(|e| CliError::Failed(format!("cannot reach the admin API at {}: {e}", self.base)))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| CliError::Failed(format!("reading the response: {e}")))?
            .to_bytes();
        Ok((status, bytes))
    }
}

/// The body of a successful answer; any other becomes [`describe_error`]'s line.
fn success(status: StatusCode, bytes: Bytes) -> Result<Bytes, CliError> {
    if status.is_success() {
        return Ok(bytes);
    }
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Err(CliError::Failed(describe_error(status, &value)))
}

/// The server's error body (`{"error": {"message", "field"}}`) as one line.
pub fn describe_error(status: StatusCode, body: &Value) -> String {
    let message =
        body["error"]["message"].as_str().unwrap_or_else(|| status.canonical_reason().unwrap_or("request failed"));
    match body["error"]["field"].as_str() {
        Some(field) => format!("{field}: {message} (HTTP {})", status.as_u16()),
        None => format!("{message} (HTTP {})", status.as_u16()),
    }
}

/// A value percent-encoded for a path segment or a query parameter.
pub fn encode(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn server_errors_become_one_line() {
        let body =
            json!({"error": {"code": "bad_request", "message": "must be one of: 30, 90", "field": "expires_in_days"}});
        assert_eq!(
            describe_error(StatusCode::BAD_REQUEST, &body),
            "expires_in_days: must be one of: 30, 90 (HTTP 400)"
        );
        assert_eq!(describe_error(StatusCode::BAD_GATEWAY, &Value::Null), "Bad Gateway (HTTP 502)");
    }
}

//! `tokengate token ...`: a client of the admin API for people and scripts.
//!
//! Server errors are shown as one line (`error: <field>: <message> (HTTP <status>)`) with exit
//! code 1. `create` and `rotate` print the secret once, clearly marked, with a ready
//! `Authorization: Bearer ...` line. `revoke` and `delete` ask for the token's name unless
//! `--yes`.
//!
//! When whoever reads the output goes away early (`tokengate token list --json | head -1`), the
//! command stops quietly with exit code 141, the conventional 128 + SIGPIPE that shells report
//! for tools killed by a closed pipe: no panic, no message, and no success claimed for output
//! (perhaps a secret) that nobody received.

use std::io::{BufRead, Write};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::cli::{TokenArgs, TokenCommand};

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

    fn output(e: std::io::Error) -> Self {
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

/// `println!` that reports a closed or failing standard output as a [`CliError`] instead of
/// panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*).map_err(CliError::output)?
    };
}

type HttpClient = Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, Full<Bytes>>;

struct AdminClient {
    base: String,
    credential: String,
    http: HttpClient,
}

impl AdminClient {
    fn new(args: &TokenArgs) -> Result<Self, CliError> {
        let credential = args.admin_key.clone().or_else(|| args.token.clone()).ok_or_else(|| {
            CliError::Failed(
                "no credential: set TOKENGATE_ADMIN_KEY (operators) or TOKENGATE_TOKEN (your personal token)".into(),
            )
        })?;
        let https = crate::net::tls::client_connector(hyper_util::client::legacy::connect::HttpConnector::new());
        Ok(Self {
            base: args.admin_url.trim_end_matches('/').to_string(),
            credential,
            http: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.base);
        let mut req = http::Request::builder()
            .method(method)
            .uri(&url)
            .header(http::header::AUTHORIZATION, format!("Bearer {}", self.credential));
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
        let value: Value =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        if status.is_success() {
            return Ok(value);
        }
        Err(CliError::Failed(describe_error(status, &value)))
    }
}

fn describe_error(status: StatusCode, body: &Value) -> String {
    let message =
        body["error"]["message"].as_str().unwrap_or_else(|| status.canonical_reason().unwrap_or("request failed"));
    match body["error"]["field"].as_str() {
        Some(field) => format!("{field}: {message} (HTTP {})", status.as_u16()),
        None => format!("{message} (HTTP {})", status.as_u16()),
    }
}

fn parse_time(v: &Value) -> Option<SystemTime> {
    v.as_str().and_then(|s| humantime::parse_rfc3339(s).ok())
}

fn date(v: &Value) -> String {
    v.as_str().map(|s| s.get(..10).unwrap_or(s).to_string()).unwrap_or_else(|| "-".into())
}

/// "just now", "5 minutes ago", "3 hours ago", "5 days ago", or "never".
pub fn relative(when: Option<SystemTime>, now: SystemTime) -> String {
    let Some(when) = when else { return "never".into() };
    let secs = now.duration_since(when).unwrap_or(Duration::ZERO).as_secs();
    let (n, unit) = match secs {
        0..60 => return "just now".into(),
        60..3600 => (secs / 60, "minute"),
        3600..86_400 => (secs / 3600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// Renders rows as left-aligned columns separated by two spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  ", w = *w));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn describe(token: &Value) -> String {
    format!("\"{}\" ({})", token["name"].as_str().unwrap_or_default(), token["display"].as_str().unwrap_or_default())
}

fn print_secret(token: &Value, heading: &str) -> Result<(), CliError> {
    let secret = token["token"].as_str().unwrap_or_default();
    out!("{heading}");
    out!();
    out!("This is the only time the token is shown. Copy it now:");
    out!();
    out!("    {secret}");
    out!();
    out!("Send it as:");
    out!();
    out!("    Authorization: {}", token["authorization_header"].as_str().unwrap_or_default());
    Ok(())
}

/// Asks the person to type the token's name; `Ok(())` when it matches.
fn confirm(token: &Value, verb: &str) -> Result<(), CliError> {
    let name = token["name"].as_str().unwrap_or_default();
    eprint!("Type the token's name ({name}) to confirm that you want to {verb} it: ");
    let _ = std::io::stderr().flush();
    let mut typed = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut typed)
        .map_err(|e| CliError::Failed(format!("reading the confirmation: {e}")))?;
    if typed.trim() == name {
        Ok(())
    } else {
        Err(CliError::Failed(format!("the name did not match; nothing was {verb}d")))
    }
}

fn encode(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `tokengate healthcheck`: succeeds when `url` answers 2xx within `timeout`.
pub async fn healthcheck(url: &str, timeout: Duration) -> Result<(), CliError> {
    let http: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .build(crate::net::tls::client_connector(hyper_util::client::legacy::connect::HttpConnector::new()));
    let req = http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .map_err(|e| CliError::Failed(format!("invalid URL {url}: {e}")))?;
    match tokio::time::timeout(timeout, http.request(req)).await {
        Err(_) => Err(CliError::Failed(format!("{url} did not answer within {timeout:?}"))),
        Ok(Err(e)) => Err(CliError::Failed(format!("{url}: {e}"))),
        Ok(Ok(r)) if r.status().is_success() => Ok(()),
        Ok(Ok(r)) => Err(CliError::Failed(format!("{url} answered {}", r.status()))),
    }
}

/// Runs one `tokengate token` command.
pub async fn run(args: TokenArgs) -> Result<(), CliError> {
    let client = AdminClient::new(&args)?;
    let now = SystemTime::now();
    match args.command {
        TokenCommand::Create { name, expires, org, owner, roles, scopes, json } => {
            let mut body = json!({ "name": name, "expires_in_days": expires });
            if let Some(org) = org {
                body["kind"] = "organization".into();
                body["owner"] = org.into();
            } else if let Some(owner) = owner {
                body["owner"] = owner.into();
            }
            if !roles.is_empty() {
                body["roles"] = roles.into();
            }
            if !scopes.is_empty() {
                body["scopes"] = scopes.into();
            }
            let token = client.call(Method::POST, "/v1/tokens", Some(body)).await?;
            if json {
                out!("{token:#}");
            } else {
                let heading = format!(
                    "Created {} token {} for {}, expiring {}.",
                    token["kind"].as_str().unwrap_or_default(),
                    describe(&token),
                    token["owner"].as_str().unwrap_or_default(),
                    date(&token["expires_at"])
                );
                print_secret(&token, &heading)?;
            }
        }
        TokenCommand::List { name, status, owner, limit, json } => {
            let mut tokens: Vec<Value> = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut query = format!("limit={}", limit.clamp(1, 200));
                for (key, value) in [("name", &name), ("status", &status), ("owner", &owner), ("cursor", &cursor)] {
                    if let Some(v) = value {
                        query.push_str(&format!("&{key}={}", encode(v)));
                    }
                }
                let page = client.call(Method::GET, &format!("/v1/tokens?{query}"), None).await?;
                tokens.extend(page["tokens"].as_array().cloned().unwrap_or_default());
                cursor = page["next_cursor"].as_str().map(String::from);
                if cursor.is_none() || tokens.len() >= limit {
                    break;
                }
            }
            tokens.truncate(limit);
            if json {
                out!("{:#}", Value::Array(tokens));
            } else if tokens.is_empty() {
                out!("No tokens.");
            } else {
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t["name"].as_str().unwrap_or_default().to_string(),
                            t["display"].as_str().unwrap_or_default().to_string(),
                            t["status"].as_str().unwrap_or_default().to_string(),
                            date(&t["created_at"]),
                            date(&t["expires_at"]),
                            relative(parse_time(&t["last_used_at"]), now),
                            t["created_by"].as_str().unwrap_or_default().to_string(),
                        ]
                    })
                    .collect();
                out!("{}", table(&["NAME", "TOKEN", "STATUS", "CREATED", "EXPIRES", "LAST USED", "CREATED BY"], &rows));
            }
        }
        TokenCommand::Show { id, json } => {
            let t = client.call(Method::GET, &format!("/v1/tokens/{}", encode(&id)), None).await?;
            if json {
                out!("{t:#}");
            } else {
                let list = |v: &Value| {
                    v.as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default()
                };
                for (label, value) in [
                    ("Name", t["name"].as_str().unwrap_or_default().to_string()),
                    ("Token", t["display"].as_str().unwrap_or_default().to_string()),
                    ("Id", t["id"].as_str().unwrap_or_default().to_string()),
                    ("Kind", t["kind"].as_str().unwrap_or_default().to_string()),
                    ("Owner", t["owner"].as_str().unwrap_or_default().to_string()),
                    ("Status", t["status"].as_str().unwrap_or_default().to_string()),
                    ("Roles", list(&t["roles"])),
                    ("Scopes", list(&t["scopes"])),
                    (
                        "Created",
                        format!(
                            "{} by {}",
                            t["created_at"].as_str().unwrap_or_default(),
                            t["created_by"].as_str().unwrap_or_default()
                        ),
                    ),
                    ("Expires", t["expires_at"].as_str().unwrap_or_default().to_string()),
                    ("Last used", relative(parse_time(&t["last_used_at"]), now)),
                ] {
                    out!("{label:<10} {value}");
                }
            }
        }
        TokenCommand::Suspend { id } => transition(&client, &id, "suspend", "Suspended").await?,
        TokenCommand::Activate { id } => transition(&client, &id, "activate", "Activated").await?,
        TokenCommand::Restore { id } => transition(&client, &id, "restore", "Restored").await?,
        TokenCommand::Revoke { id, yes } => {
            if !yes {
                let token = client.call(Method::GET, &format!("/v1/tokens/{}", encode(&id)), None).await?;
                confirm(&token, "revoke")?;
            }
            transition(&client, &id, "revoke", "Revoked").await?;
        }
        TokenCommand::Delete { id, yes } => {
            let token = client.call(Method::GET, &format!("/v1/tokens/{}", encode(&id)), None).await?;
            if !yes {
                confirm(&token, "delete")?;
            }
            client.call(Method::DELETE, &format!("/v1/tokens/{}", encode(&id)), None).await?;
            out!("Deleted {}.", describe(&token));
        }
        TokenCommand::Rotate { id, grace, json } => {
            let body = json!({ "grace_seconds": grace.map_or(0, |g| g.as_secs()) });
            let token = client.call(Method::POST, &format!("/v1/tokens/{}/rotate", encode(&id)), Some(body)).await?;
            if json {
                out!("{token:#}");
            } else {
                let grace_note = match token["previous_secret_valid_until"].as_str() {
                    Some(until) => format!(" The previous secret keeps working until {until}."),
                    None => " The previous secret no longer works.".to_string(),
                };
                print_secret(&token, &format!("Rotated {}.{grace_note}", describe(&token)))?;
            }
        }
    }
    std::io::stdout().lock().flush().map_err(CliError::output)
}

async fn transition(client: &AdminClient, id: &str, action: &str, done: &str) -> Result<(), CliError> {
    let token = client.call(Method::POST, &format!("/v1/tokens/{}/{action}", encode(id)), None).await?;
    out!("{done} {}; it is now {}.", describe(&token), token["status"].as_str().unwrap_or_default());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000_000);
        let ago = |s| Some(now - Duration::from_secs(s));
        assert_eq!(relative(None, now), "never");
        assert_eq!(relative(ago(5), now), "just now");
        assert_eq!(relative(ago(60), now), "1 minute ago");
        assert_eq!(relative(ago(7200), now), "2 hours ago");
        assert_eq!(relative(ago(5 * 86_400 + 3), now), "5 days ago");
        assert_eq!(relative(Some(now + Duration::from_secs(30)), now), "just now");
    }

    #[test]
    fn tables_are_aligned() {
        let t = table(
            &["NAME", "STATUS"],
            &[vec!["a".into(), "active".into()], vec!["longer name".into(), "revoked".into()]],
        );
        assert_eq!(t, "NAME         STATUS\na            active\nlonger name  revoked");
    }

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

//! `tokengate login` and `logout`: signing the command line in with the company's identity.
//!
//! `login` asks the admin listener to start a device sign-in (OAuth 2.0 device authorization
//! grant, RFC 8628) at the configured OpenID provider, prints where to sign in and the code,
//! and waits. The session credential it receives (sealed by the server, valid for
//! `identity.sessions.lifetime`) is stored with the admin URL in the user's config directory
//! (`$TOKENGATE_SESSION_FILE`, else `$XDG_CONFIG_HOME/tokengate/session.json`, else
//! `~/.config/tokengate/session.json`), readable by the user only (0600, in a 0700 directory).
//! Commands use it when no admin key or personal token is given. `logout` deletes it.

use std::io::Write;
use std::path::PathBuf;

use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cli::client::{AdminClient, CliError, describe_error};

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The admin listener's URL.
    #[arg(long, env = "TOKENGATE_ADMIN_URL", default_value = "http://127.0.0.1:9091")]
    pub admin_url: String,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    admin_url: String,
    session: String,
    expires_at: String,
    principal: String,
}

/// Where the session is stored.
fn session_file() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("TOKENGATE_SESSION_FILE")
        .or_else(|| var("XDG_CONFIG_HOME").map(|d| d.join("tokengate/session.json")))
        .or_else(|| var("HOME").map(|h| h.join(".config/tokengate/session.json")))
}

/// The stored session credential for `admin_url`, if one is stored and not expired.
pub fn stored_session(admin_url: &str) -> Option<String> {
    let text = std::fs::read_to_string(session_file()?).ok()?;
    let stored: Stored = serde_json::from_str(&text).ok()?;
    let expires = humantime::parse_rfc3339(&stored.expires_at).ok()?;
    (stored.admin_url == admin_url.trim_end_matches('/') && expires > std::time::SystemTime::now())
        .then_some(stored.session)
}

/// Writes `stored` readable by the user only, replacing any earlier file at once.
fn store(path: &std::path::Path, stored: &Stored) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(".session.json.{}", nonce.iter().map(|b| format!("{b:02x}")).collect::<String>()));
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(
        serde_json::to_string_pretty(&serde_json::to_value(stored).expect("serializes")).expect("json").as_bytes(),
    )?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

pub async fn login(args: LoginArgs) -> Result<(), CliError> {
    let path = session_file()
        .ok_or_else(|| CliError::Failed("no place to store the session: set HOME or TOKENGATE_SESSION_FILE".into()))?;
    let client = AdminClient::anonymous(&args.admin_url);
    let (status, start) = client.exchange_json(Method::POST, "/auth/device", Some(json!({}))).await?;
    if !status.is_success() {
        return Err(CliError::Failed(describe_error(status, &start)));
    }
    let text = |k: &str| start[k].as_str().unwrap_or_default().to_string();
    let (code, uri) = (text("user_code"), text("verification_uri"));
    let mut err = std::io::stderr();
    match start["verification_uri_complete"].as_str() {
        Some(complete) => writeln!(err, "To sign in, open {complete}\n(or open {uri} and enter the code {code})"),
        None => writeln!(err, "To sign in, open {uri} and enter the code {code}"),
    }
    .map_err(CliError::output)?;
    writeln!(err, "Waiting for you to finish signing in...").map_err(CliError::output)?;
    let poll = json!({ "device": start["device"] });
    let interval = std::time::Duration::from_secs(start["interval_secs"].as_u64().unwrap_or(5).clamp(1, 60));
    loop {
        let asked = std::time::Instant::now();
        let (status, answer) = client.exchange_json(Method::POST, "/auth/device/token", Some(poll.clone())).await?;
        match status {
            // Not yet: the server usually waited; if it answered at once, wait the interval.
            StatusCode::ACCEPTED | StatusCode::SERVICE_UNAVAILABLE => {
                tokio::time::sleep(interval.saturating_sub(asked.elapsed())).await;
            }
            StatusCode::OK => {
                let stored: Stored = serde_json::from_value(json!({
                    "admin_url": args.admin_url.trim_end_matches('/'),
                    "session": answer["session"],
                    "expires_at": answer["expires_at"],
                    "principal": answer["principal"],
                }))
                .map_err(|e| CliError::Failed(format!("unexpected answer from the admin API: {e}")))?;
                store(&path, &stored)
                    .map_err(|e| CliError::Failed(format!("storing the session in {}: {e}", path.display())))?;
                writeln!(
                    err,
                    "Signed in as {} until {} (session stored in {}).",
                    stored.principal,
                    stored.expires_at,
                    path.display()
                )
                .map_err(CliError::output)?;
                return Ok(());
            }
            _ => return Err(CliError::Failed(describe_error(status, &answer))),
        }
    }
}

pub fn logout() -> Result<(), CliError> {
    let Some(path) = session_file() else { return Ok(()) };
    match std::fs::remove_file(&path) {
        Ok(()) => eprintln!("Signed out (removed {}).", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => eprintln!("Not signed in."),
        Err(e) => return Err(CliError::Failed(format!("removing {}: {e}", path.display()))),
    }
    Ok(())
}

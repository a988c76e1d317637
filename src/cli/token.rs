//! `tokengate token ...`: the token subcommands for people and scripts, over [`AdminClient`].
//!
//! Server errors are shown as one line (`error: <field>: <message> (HTTP <status>)`) with exit
//! code 1. `create` and `rotate` print the secret once, clearly marked, with a ready
//! `Authorization: Bearer ...` line. `revoke` and `delete` ask for the token's name unless
//! `--yes`. `--json` prints the API's answer.
//!
//! When whoever reads the output goes away early (`tokengate token list --json | head -1`), the
//! command stops quietly with exit code 141, the conventional 128 + SIGPIPE that shells report
//! for tools killed by a closed pipe: no panic, no message, and no success claimed for output
//! (perhaps a secret) that nobody received.

use std::io::{BufRead, Write};
use std::time::{Duration, SystemTime};

use http::Method;
use serde::Serialize;
use serde_json::json;

use crate::admin::views::{TokenList, TokenView, TokenWithSecret};
use crate::cli::client::{AdminClient, CliError, encode};
use crate::cli::{LimitArgs, TokenArgs, TokenCommand};
use crate::clock::Timestamp;

/// `println!` that reports a closed or failing standard output as a [`CliError`] instead of
/// panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*).map_err(CliError::output)?
    };
}

/// Runs one `tokengate token` command.
pub async fn run(args: TokenArgs) -> Result<(), CliError> {
    let client = AdminClient::new(&args)?;
    let operator = args.admin_key.is_some();
    let now = SystemTime::now();
    match args.command {
        TokenCommand::Create {
            name,
            expires,
            org,
            owner,
            create_owner,
            owner_name,
            owner_org,
            owner_roles,
            roles,
            scopes,
            limits,
            json,
        } => {
            if create_owner {
                let Some(owner) = owner.as_deref() else {
                    return Err(CliError::Failed("--create-owner needs --owner, the principal to create".into()));
                };
                let roles = if owner_roles.is_empty() { roles.clone() } else { owner_roles };
                let person = NewOwner { id: owner, display_name: owner_name, org: owner_org, roles };
                ensure_owner(&client, operator, person).await?;
            }
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
            if let Some(limits) = limits_json(&limits) {
                body["limits"] = limits;
            }
            let issued: TokenWithSecret =
                client.call(Method::POST, "/v1/tokens", Some(body)).await.map_err(|e| match e {
                    CliError::Failed(m) if m.starts_with("owner: no principal") && !create_owner => CliError::Failed(
                        format!("{m}; add --create-owner (with an operator key) to create the owner first"),
                    ),
                    e => e,
                })?;
            if json {
                print_json(&issued)?;
            } else {
                let t = &issued.view;
                let heading = format!(
                    "Created {} token {} for {}, expiring {}.",
                    t.kind.as_str(),
                    describe(t),
                    t.owner,
                    date(t.expires_at)
                );
                print_secret(&issued, &heading)?;
            }
        }
        TokenCommand::List { name, status, owner, limit, cursor, all, json } => {
            let limit = limit.max(1);
            let mut tokens: Vec<TokenView> = Vec::new();
            let mut cursor = cursor;
            loop {
                // Never more than still wanted, so the last page's cursor is exactly where the
                // listing stopped.
                let want = if all { 200 } else { (limit - tokens.len()).clamp(1, 200) };
                let mut query = format!("limit={want}");
                for (key, value) in [("name", &name), ("status", &status), ("owner", &owner), ("cursor", &cursor)] {
                    if let Some(v) = value {
                        query.push_str(&format!("&{key}={}", encode(v)));
                    }
                }
                let page: TokenList = client.call(Method::GET, &format!("/v1/tokens?{query}"), None).await?;
                tokens.extend(page.tokens);
                cursor = page.next_cursor;
                if cursor.is_none() || (!all && tokens.len() >= limit) {
                    break;
                }
            }
            if json {
                print_json(&tokens)?;
            } else if tokens.is_empty() {
                out!("No tokens.");
            } else {
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.name.clone(),
                            t.id.to_string(),
                            t.display.clone(),
                            t.status.as_str().to_string(),
                            date(t.created_at),
                            date(t.expires_at),
                            relative(t.last_used_at.map(Timestamp::to_system_time), now),
                            t.created_by.clone(),
                            t.limits.to_string(),
                        ]
                    })
                    .collect();
                let header =
                    ["NAME", "ID", "TOKEN", "STATUS", "CREATED", "EXPIRES", "LAST USED", "CREATED BY", "LIMITS"];
                out!("{}", table(&header, &rows));
            }
            // On standard error, so that `--json` output stays one JSON document.
            if let Some(next) = cursor {
                eprintln!(
                    "More tokens than the {} shown: add --cursor {next} for the next ones, or --all for every one.",
                    tokens.len()
                );
            }
        }
        TokenCommand::Show { id, json } => {
            let t = show(&client, &id).await?;
            if json {
                print_json(&t)?;
            } else {
                let scopes: Vec<String> = t.scopes.iter().map(ToString::to_string).collect();
                for (label, value) in [
                    ("Name", t.name.clone()),
                    ("Token", t.display.clone()),
                    ("Id", t.id.to_string()),
                    ("Kind", t.kind.as_str().to_string()),
                    ("Owner", t.owner.clone()),
                    ("Status", t.status.as_str().to_string()),
                    ("Roles", t.roles.join(", ")),
                    ("Scopes", scopes.join(", ")),
                    ("Created", format!("{} by {}", t.created_at.to_rfc3339(), t.created_by)),
                    ("Expires", t.expires_at.to_rfc3339()),
                    ("Last used", last_use(&t, now)),
                    ("Limits", t.limits.to_string()),
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
                confirm(&show(&client, &id).await?, "revoke")?;
            }
            transition(&client, &id, "revoke", "Revoked").await?;
        }
        TokenCommand::Delete { id, yes } => {
            let token = show(&client, &id).await?;
            if !yes {
                confirm(&token, "delete")?;
            }
            client.call_no_content(Method::DELETE, &format!("/v1/tokens/{}", encode(&id)), None).await?;
            out!("Deleted {}.", describe(&token));
        }
        TokenCommand::Limits { id, limits, clear, json } => {
            let body = match limits_json(&limits) {
                Some(body) => body,
                None if clear => json!({}),
                None => {
                    return Err(CliError::Failed(
                        "name the new limits (--rate, --burst, --quota, --allow-network) or --clear".into(),
                    ));
                }
            };
            let token: TokenView =
                client.call(Method::PUT, &format!("/v1/tokens/{}/limits", encode(&id)), Some(body)).await?;
            if json {
                print_json(&token)?;
            } else {
                out!("Limits of {} are now: {}.", describe(&token), token.limits);
            }
        }
        TokenCommand::Rotate { id, grace, json } => {
            let body = json!({ "grace_seconds": grace.map_or(0, |g| g.as_secs()) });
            let issued: TokenWithSecret =
                client.call(Method::POST, &format!("/v1/tokens/{}/rotate", encode(&id)), Some(body)).await?;
            if json {
                print_json(&issued)?;
            } else {
                let grace_note = match issued.view.previous_secret_valid_until {
                    Some(until) => format!(" The previous secret keeps working until {}.", until.to_rfc3339()),
                    None => " The previous secret no longer works.".to_string(),
                };
                print_secret(&issued, &format!("Rotated {}.{grace_note}", describe(&issued.view)))?;
            }
        }
    }
    std::io::stdout().lock().flush().map_err(CliError::output)
}

async fn show(client: &AdminClient, id: &str) -> Result<TokenView, CliError> {
    client.call(Method::GET, &format!("/v1/tokens/{}", encode(id)), None).await
}

async fn transition(client: &AdminClient, id: &str, action: &str, done: &str) -> Result<(), CliError> {
    let token: TokenView = client.call(Method::POST, &format!("/v1/tokens/{}/{action}", encode(id)), None).await?;
    out!("{done} {}; it is now {}.", describe(&token), token.status.as_str());
    Ok(())
}

/// The API's answer as indented JSON.
/// The API's `limits` object for the flags given, `None` when none was.
fn limits_json(args: &LimitArgs) -> Option<serde_json::Value> {
    let mut limits = serde_json::Map::new();
    if let Some(rate) = &args.rate {
        let mut rate = json!({ "requests": rate.requests, "window_secs": rate.window_secs });
        if let Some(burst) = args.burst {
            rate["burst"] = burst.into();
        }
        limits.insert("rate".into(), rate);
    }
    if let Some(quota) = args.quota {
        limits.insert("quota".into(), quota.into());
    }
    if !args.networks.is_empty() {
        limits.insert("networks".into(), args.networks.clone().into());
    }
    (!limits.is_empty()).then_some(serde_json::Value::Object(limits))
}

fn print_json(value: &impl Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Failed(format!("rendering JSON: {e}")))?;
    out!("{text}");
    Ok(())
}

/// `YYYY-MM-DD`.
fn date(t: Timestamp) -> String {
    let text = t.to_rfc3339();
    text.get(..10).unwrap_or(&text).to_string()
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

/// `"name" (tgp_12345678..., id 12345678abcd)`: the id is what the other commands accept.
fn describe(token: &TokenView) -> String {
    format!("\"{}\" ({}, id {})", token.name, token.display, token.id)
}

/// "5 minutes ago from 203.0.113.7", or "never".
fn last_use(token: &TokenView, now: SystemTime) -> String {
    let when = relative(token.last_used_at.map(Timestamp::to_system_time), now);
    match &token.last_used_from {
        Some(from) if token.last_used_at.is_some() => format!("{when} from {from}"),
        _ => when,
    }
}

/// The principal `tokengate token create --create-owner` makes.
struct NewOwner<'a> {
    id: &'a str,
    display_name: Option<String>,
    org: Option<String>,
    roles: Vec<String>,
}

/// Creates the owner principal unless it exists (then it is left unchanged, and said so).
/// Only operators manage principals: anyone else is told so before anything is sent.
async fn ensure_owner(client: &AdminClient, operator: bool, owner: NewOwner<'_>) -> Result<(), CliError> {
    if !operator {
        return Err(CliError::Failed(
            "--create-owner needs an operator key (TOKENGATE_ADMIN_KEY): only operators manage principals".into(),
        ));
    }
    let path = format!("/v1/principals/{}", encode(owner.id));
    if client.call_optional::<serde_json::Value>(Method::GET, &path).await?.is_some() {
        eprintln!("The owner {} already exists; left unchanged.", owner.id);
        return Ok(());
    }
    let roles = if owner.roles.is_empty() {
        let session: serde_json::Value = client.call(Method::GET, "/v1/session", None).await?;
        serde_json::from_value(session["default_roles"].clone()).unwrap_or_default()
    } else {
        owner.roles
    };
    let display_name = owner.display_name.unwrap_or_else(|| owner.id.to_string());
    let body = json!({ "display_name": display_name, "org": owner.org, "roles": roles });
    let _: serde_json::Value = client.call(Method::PUT, &path, Some(body)).await?;
    eprintln!("Created the owner {} ({display_name}).", owner.id);
    Ok(())
}

fn print_secret(issued: &TokenWithSecret, heading: &str) -> Result<(), CliError> {
    out!("{heading}");
    out!();
    out!("This is the only time the token is shown. Copy it now:");
    out!();
    out!("    {}", issued.token);
    out!();
    out!("Send it as:");
    out!();
    out!("    Authorization: {}", issued.authorization_header);
    Ok(())
}

/// Asks the person to type the token's name; `Ok(())` when it matches.
fn confirm(token: &TokenView, verb: &str) -> Result<(), CliError> {
    let name = &token.name;
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
    fn dates_are_days() {
        assert_eq!(date(Timestamp(1_763_811_695_123)), "2025-11-22");
    }
}

//! `tokengate principal ...`: list, show, set (PUT) and delete principals over the admin API
//! (`/v1/principals`), in the style of `tokengate token`: a table or `--json`, one-line errors,
//! a typed confirmation before a deletion unless `--yes`, exit code 141 on a closed pipe.

use std::io::{BufRead, Write};

use http::Method;
use serde::Deserialize;
use serde_json::json;

use crate::cli::client::{AdminClient, CliError, encode};
use crate::cli::token::table;
use crate::cli::{PrincipalArgs, PrincipalCommand};
use crate::token::Principal;

macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*).map_err(CliError::output)?
    };
}

#[derive(Deserialize)]
struct PrincipalList {
    principals: Vec<Principal>,
    next_cursor: Option<String>,
}

fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Failed(format!("rendering JSON: {e}")))?;
    out!("{text}");
    Ok(())
}

/// `active` or `deactivated`.
fn state(p: &Principal) -> &'static str {
    if p.deactivated { "deactivated" } else { "active" }
}

fn or_dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.to_string() }
}

/// Runs one `tokengate principal` command.
pub async fn run(args: PrincipalArgs) -> Result<(), CliError> {
    let client = AdminClient::connect(&args.admin_url, args.admin_key, args.token)?;
    match args.command {
        PrincipalCommand::List { limit, json } => {
            let mut all: Vec<Principal> = Vec::new();
            let mut cursor: Option<String> = None;
            let mut more = false;
            loop {
                let mut query = format!("limit={}", limit.clamp(1, 200));
                if let Some(c) = &cursor {
                    query.push_str(&format!("&cursor={}", encode(c)));
                }
                let page: PrincipalList = client.call(Method::GET, &format!("/v1/principals?{query}"), None).await?;
                all.extend(page.principals);
                cursor = page.next_cursor;
                if cursor.is_none() {
                    break;
                }
                if all.len() >= limit {
                    more = true;
                    break;
                }
            }
            more |= all.len() > limit;
            all.truncate(limit);
            if json {
                print_json(&all)?;
            } else if all.is_empty() {
                out!("No principals.");
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|p| {
                        vec![
                            p.id.clone(),
                            p.display_name.clone(),
                            or_dash(p.org.as_deref().unwrap_or_default()),
                            or_dash(&p.roles.join(",")),
                            or_dash(&p.groups.join(",")),
                            p.admin.map_or("-", |a| a.as_str()).to_string(),
                            state(p).to_string(),
                        ]
                    })
                    .collect();
                out!("{}", table(&["ID", "NAME", "ORG", "ROLES", "GROUPS", "ADMIN", "STATUS"], &rows));
                if more {
                    out!("(more principals exist than the {limit} shown; raise --limit)");
                }
            }
        }
        PrincipalCommand::Show { id, json } => {
            let p: Principal = client.call(Method::GET, &format!("/v1/principals/{}", encode(&id)), None).await?;
            if json {
                print_json(&p)?;
            } else {
                let scopes: Vec<String> = p.scopes.iter().map(ToString::to_string).collect();
                for (label, value) in [
                    ("Id", p.id.clone()),
                    ("Name", p.display_name.clone()),
                    ("Email", or_dash(p.email.as_deref().unwrap_or_default())),
                    ("Org", or_dash(p.org.as_deref().unwrap_or_default())),
                    ("Roles", or_dash(&p.roles.join(", "))),
                    ("Scopes", or_dash(&scopes.join(", "))),
                    ("Groups", or_dash(&p.groups.join(", "))),
                    ("Admin", p.admin.map_or("-", |a| a.as_str()).to_string()),
                    ("Status", state(&p).to_string()),
                    ("Limits", p.limits.to_string()),
                ] {
                    out!("{label:<7} {value}");
                }
            }
        }
        PrincipalCommand::Set { id, name, org, roles, json } => {
            let body = json!({ "display_name": name, "org": org, "roles": roles });
            let p: Principal = client.call(Method::PUT, &format!("/v1/principals/{}", encode(&id)), Some(body)).await?;
            if json {
                print_json(&p)?;
            } else {
                out!("Saved {} ({}), roles: {}.", p.id, p.display_name, or_dash(&p.roles.join(", ")));
            }
        }
        PrincipalCommand::Delete { id, yes } => {
            // The principal must exist (404 otherwise) before anyone is asked to confirm.
            let _: Principal = client.call(Method::GET, &format!("/v1/principals/{}", encode(&id)), None).await?;
            if !yes {
                eprint!(
                    "Type the principal's id ({id}) to confirm that you want to delete them and revoke their personal tokens: "
                );
                let _ = std::io::stderr().flush();
                let mut typed = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut typed)
                    .map_err(|e| CliError::Failed(format!("reading the confirmation: {e}")))?;
                if typed.trim() != id {
                    return Err(CliError::Failed("the id did not match; nothing was deleted".into()));
                }
            }
            client.call_no_content(Method::DELETE, &format!("/v1/principals/{}", encode(&id)), None).await?;
            out!("Deleted {id}; their personal tokens are revoked.");
        }
    }
    Ok(())
}

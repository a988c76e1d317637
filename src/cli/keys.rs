//! `tokengate keys list`: the operator keys a running tokengate accepts, by name, with their
//! expiry and where they are configured (never the keys themselves). Operators only: an operator
//! key, or the session `tokengate login` stored for a person with the operator role.

use std::io::Write;

use clap::{Args, Subcommand};
use http::Method;

use crate::admin::views::KeyList;
use crate::cli::client::{AdminClient, CliError};
use crate::cli::token::table;

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// The admin listener's URL.
    #[arg(long, global = true, env = "TOKENGATE_ADMIN_URL", default_value = "http://127.0.0.1:9091")]
    pub admin_url: String,
    /// An operator key.
    #[arg(long, global = true, env = "TOKENGATE_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the operator keys: NAME, EXPIRES, SOURCE (file or env).
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one `tokengate keys` command.
pub async fn run(args: KeysArgs) -> Result<(), CliError> {
    let credential =
        args.admin_key.or_else(|| crate::cli::login::stored_session(&args.admin_url)).ok_or_else(|| {
            CliError::Failed(
                "no credential: set TOKENGATE_ADMIN_KEY (an operator key), or run `tokengate login` (operators)".into(),
            )
        })?;
    let client = AdminClient::with_credential(&args.admin_url, credential);
    match args.command {
        KeysCommand::List { json } => {
            let list: KeyList = client.call(Method::GET, "/v1/keys", None).await?;
            let text = if json {
                serde_json::to_string_pretty(&list).map_err(|e| CliError::Failed(format!("rendering JSON: {e}")))?
            } else {
                let rows: Vec<Vec<String>> = list
                    .keys
                    .iter()
                    .map(|k| {
                        let expires = k.expires_at.map_or_else(|| "never".to_string(), |t| t.to_rfc3339());
                        vec![k.name.clone(), expires, k.source.clone()]
                    })
                    .collect();
                table(&["NAME", "EXPIRES", "SOURCE"], &rows)
            };
            writeln!(std::io::stdout().lock(), "{text}").map_err(CliError::output)?;
        }
    }
    Ok(())
}

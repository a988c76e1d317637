//! The command line: its definition ([`Cli`]) and every command but `serve`, which the binary
//! runs itself ([`run`]).
//!
//! | module            | what lives there                                                      |
//! |-------------------|-----------------------------------------------------------------------|
//! | `mod.rs`          | the clap definitions, [`run`] (one command to one exit code), [`complete`] |
//! | [`client`]        | the admin API's HTTP client, [`client::CliError`] and its one-line errors |
//! | [`token`]         | `tokengate token ...`: tables, prompts, printing a secret once         |
//! | [`principal`]     | `tokengate principal ...`: list, show, set, delete people              |
//! | [`keys`]          | `tokengate keys list`: the operator keys by name                      |
//! | [`healthcheck`]   | `tokengate healthcheck`                                               |
//! | [`demo`]          | `tokengate demo` and `tokengate echo`                                 |
//! | [`store`]         | `tokengate store migrate`                                             |
//!
//! Exit codes: 0 on success, 1 on a failure (one line on standard error), 2 for a config that
//! does not load, 141 when the reader of standard output went away.
//!
//! What it may use: anything in the crate (it reads the API's answers into
//! [`crate::admin::views`]). Nothing depends on it but the binary.

pub mod client;
pub mod demo;
pub mod healthcheck;
pub mod keys;
pub mod login;
pub mod principal;
pub mod store;
pub mod token;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::shutdown::Signals;
use client::CliError;

/// Exit code for a config that does not load.
pub const EXIT_CONFIG: u8 = 2;

#[derive(Debug, Parser)]
#[command(name = "tokengate", version, about = "Authentication sidecar for personal and organization API tokens")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run tokengate until SIGTERM or Ctrl-C.
    Serve(ConfigArg),
    /// Validate a config file (with environment overrides), print a summary, exit non-zero on error.
    CheckConfig(ConfigArg),
    /// Manage tokens through a running tokengate's admin port.
    Token(Box<TokenArgs>),
    /// Sign the command line in with your company account (a device code at the configured
    /// OpenID provider); later commands use the stored session.
    Login(login::LoginArgs),
    /// Forget the session `login` stored.
    Logout,
    /// Manage principals (the people tokens belong to) through the admin port (operators).
    Principal(PrincipalArgs),
    /// See the operator keys of a running tokengate (by name; never the keys).
    Keys(Box<keys::KeysArgs>),
    /// Maintain the configured token store directly (not through the admin port).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Start a self-contained demo: embedded store, an echo upstream, tokengate in front, a token
    /// and a ready curl line. Ctrl-C stops it.
    Demo(DemoArgs),
    /// Exit 0 when a running tokengate answers its health endpoint (for container probes; the
    /// image has no shell or curl).
    Healthcheck(HealthcheckArgs),
    /// Serve the demo echo upstream (answers every request with the headers it received).
    Echo {
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Move every token written by an earlier release to the current Redis format. Safe while
    /// tokengate serves, and to run again; the embedded store has nothing to migrate.
    Migrate(ConfigArg),
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The endpoint to probe: /healthz (alive) or /readyz (ready to serve).
    #[arg(long, env = "TOKENGATE_HEALTHCHECK_URL", default_value = "http://127.0.0.1:9091/healthz")]
    pub url: String,
    /// How long to wait for the answer.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Proxy address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Admin address (the Tokens page).
    #[arg(long, default_value = "127.0.0.1:9091")]
    pub admin_listen: std::net::SocketAddr,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Path to the YAML config file.
    #[arg(long, short, env = "TOKENGATE_CONFIG", default_value = "config/tokengate.yaml")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The admin listener's URL.
    #[arg(long, global = true, env = "TOKENGATE_ADMIN_URL", default_value = "http://127.0.0.1:9091")]
    pub admin_url: String,
    /// An operator key (full access).
    #[arg(long, global = true, env = "TOKENGATE_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Your personal token (manage your own tokens), used when no admin key is given.
    #[arg(long, global = true, env = "TOKENGATE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Args)]
pub struct PrincipalArgs {
    /// The admin listener's URL.
    #[arg(long, global = true, env = "TOKENGATE_ADMIN_URL", default_value = "http://127.0.0.1:9091")]
    pub admin_url: String,
    /// An operator key.
    #[arg(long, global = true, env = "TOKENGATE_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Your personal token (`show` of yourself only), used when no admin key is given.
    #[arg(long, global = true, env = "TOKENGATE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: PrincipalCommand,
}

#[derive(Debug, Subcommand)]
pub enum PrincipalCommand {
    /// List principals, ordered by id.
    List {
        /// The most principals to show.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Show one principal.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Create or replace a principal: everything not given is cleared (PUT).
    Set {
        id: String,
        /// The name shown for them.
        #[arg(long)]
        name: String,
        /// Their organization.
        #[arg(long)]
        org: Option<String>,
        /// A role they hold (repeatable; none: no roles).
        #[arg(long = "role")]
        roles: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Delete a principal and revoke their personal tokens. Asks you to type the id unless
    /// --yes.
    Delete {
        id: String,
        #[arg(long)]
        yes: bool,
    },
}

/// A token's limits, as command-line flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LimitArgs {
    /// Rate limit across all replicas: REQUESTS/WINDOW, e.g. 100/1s, 1000/1m (429 beyond).
    #[arg(long)]
    pub rate: Option<crate::token::limits::RateLimit>,
    /// Requests allowed at once under --rate (default: all of REQUESTS).
    #[arg(long, requires = "rate")]
    pub burst: Option<u32>,
    /// Total requests over the token's life (403 once used up).
    #[arg(long)]
    pub quota: Option<u64>,
    /// A client network the token may be used from, as CIDR (repeatable; default: any).
    #[arg(long = "allow-network", value_name = "CIDR")]
    pub networks: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once.
    Create {
        /// What the token is for, e.g. ci-deploy.
        #[arg(long)]
        name: String,
        /// Days until it expires (one of the configured choices: 30, 60, 90, 180, 365 by default).
        #[arg(long, default_value_t = 30)]
        expires: u32,
        /// Create an organization token for this organization.
        #[arg(long, conflicts_with = "owner")]
        org: Option<String>,
        /// The principal a personal token is for (operators; people always create their own).
        #[arg(long)]
        owner: Option<String>,
        /// Create the --owner principal first when it does not exist yet (operators); an
        /// existing one is left as it is.
        #[arg(long, requires = "owner", conflicts_with = "org")]
        create_owner: bool,
        /// With --create-owner: the owner's display name (default: the --owner id).
        #[arg(long, requires = "create_owner", value_name = "NAME")]
        owner_name: Option<String>,
        /// With --create-owner: the owner's organization.
        #[arg(long, requires = "create_owner", value_name = "ORG")]
        owner_org: Option<String>,
        /// With --create-owner: a role the owner holds (repeatable; default: the token's --role
        /// values, or the configured default roles).
        #[arg(long = "owner-role", requires = "create_owner", value_name = "ROLE")]
        owner_roles: Vec<String>,
        /// A role to grant (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// A scope to grant: account, env:<name> or deployment:<agent>@<env> (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[command(flatten)]
        limits: LimitArgs,
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List tokens, newest first.
    List {
        /// Only names containing this (case-insensitive).
        #[arg(long)]
        name: Option<String>,
        /// active, suspended, revoked or expired.
        #[arg(long)]
        status: Option<String>,
        /// Only tokens of this owner (a principal or organization id).
        #[arg(long)]
        owner: Option<String>,
        /// The most tokens to show; when more exist, the command says how to see the next ones.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Continue after an earlier listing (the cursor it printed).
        #[arg(long)]
        cursor: Option<String>,
        /// Every token, however many (ignores --limit).
        #[arg(long, conflicts_with = "limit")]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show one token.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Suspend a token (it stops working until activated).
    Suspend { id: String },
    /// Activate a suspended token.
    Activate { id: String },
    /// Revoke a token. Asks you to type its name unless --yes.
    Revoke {
        id: String,
        #[arg(long)]
        yes: bool,
    },
    /// Restore a revoked token (when the server allows it).
    Restore { id: String },
    /// Delete a revoked token. Asks you to type its name unless --yes.
    Delete {
        id: String,
        #[arg(long)]
        yes: bool,
    },
    /// Replace a token's limits (operators: anything; people: within their own limits).
    Limits {
        id: String,
        #[command(flatten)]
        limits: LimitArgs,
        /// Remove every limit (operators).
        #[arg(long, conflicts_with_all = ["rate", "burst", "quota", "networks"])]
        clear: bool,
        #[arg(long)]
        json: bool,
    },
    /// Issue a new secret for a token; the old one keeps working for the grace period.
    Rotate {
        id: String,
        /// How long the old secret keeps working, e.g. 1h (default: it stops at once).
        #[arg(long, value_parser = humantime::parse_duration)]
        grace: Option<std::time::Duration>,
        #[arg(long)]
        json: bool,
    },
}

/// Runs one command to its exit code. `serve` is not among them: the binary runs it, since it
/// sets up logging and the runtime from the config first.
///
/// # Panics
///
/// When given [`Command::Serve`].
pub fn run(command: Command, env: &BTreeMap<String, String>) -> ExitCode {
    let error = |e: &CliError| eprintln!("error: {e}");
    match command {
        Command::Token(args) => complete(small_runtime(), token::run(*args), error),
        Command::Principal(args) => complete(small_runtime(), principal::run(args), error),
        Command::Login(args) => complete(small_runtime(), login::login(args), error),
        Command::Logout => match login::logout() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error(&e);
                ExitCode::FAILURE
            }
        },
        Command::Keys(args) => complete(small_runtime(), keys::run(*args), error),
        Command::Healthcheck(args) => {
            complete(small_runtime(), healthcheck::run(&args.url, args.timeout), |e| eprintln!("unhealthy: {e}"))
        }
        Command::Echo { listen } => complete(
            tokio::runtime::Runtime::new(),
            async move {
                let signals = Signals::install()?;
                let listener = tokio::net::TcpListener::bind(listen).await?;
                eprintln!("echo upstream listening on {}", listener.local_addr()?);
                tokio::select! {
                    _ = demo::serve_echo(listener) => {}
                    _ = signals.recv() => {}
                }
                anyhow::Ok(())
            },
            error,
        ),
        Command::Demo(args) => complete(
            tokio::runtime::Runtime::new(),
            async move {
                let signals = Signals::install()?;
                demo::run(args.listen, args.admin_listen, signals.recv()).await
            },
            error,
        ),
        Command::Store(StoreCommand::Migrate(arg)) => match load_config(&arg, env) {
            Ok(config) => complete(tokio::runtime::Runtime::new(), store::migrate(config), error),
            Err(code) => code,
        },
        Command::CheckConfig(arg) => match load_config(&arg, env) {
            Ok(config) => {
                println!("{}: OK\n{}", arg.config.display(), config.summary());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Serve(_) => unreachable!("the binary runs `serve` itself"),
    }
}

/// Loads the config named by `arg`; on failure says why (naming the field) and gives
/// [`EXIT_CONFIG`].
pub fn load_config(arg: &ConfigArg, env: &BTreeMap<String, String>) -> Result<Config, ExitCode> {
    Config::load(&arg.config, env).map_err(|e| {
        eprintln!("{}: {e}", arg.config.display());
        ExitCode::from(EXIT_CONFIG)
    })
}

/// Runs `work` on `runtime` to its exit code: 0, 141 for a closed pipe (quietly), or 1 once
/// `report` has told the user what failed.
pub fn complete<E: Into<CliError>>(
    runtime: std::io::Result<tokio::runtime::Runtime>,
    work: impl Future<Output = Result<(), E>>,
    report: impl FnOnce(&CliError),
) -> ExitCode {
    let runtime = runtime.expect("tokio runtime starts");
    match runtime.block_on(work).map_err(Into::into) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::BrokenPipe) => ExitCode::from(CliError::BROKEN_PIPE_EXIT),
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

/// A single-threaded runtime, enough for one request at a time.
fn small_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

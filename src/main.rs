//! The `tokengate` binary: parse the command line, load config, run until a signal, exit.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Parser;
use tokengate::app::App;
use tokengate::cli::{Cli, Command};
use tokengate::cli::{client, demo};
use tokengate::config::Config;
use tokengate::logging;
use tokengate::shutdown::Signals;

/// Exit code for a config that does not load.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: BTreeMap<String, String> =
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
    match cli.command {
        Command::Token(args) => {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime starts");
            match runtime.block_on(client::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(client::CliError::BrokenPipe) => ExitCode::from(client::CliError::BROKEN_PIPE_EXIT),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Healthcheck(args) => {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime starts");
            match runtime.block_on(client::healthcheck(&args.url, args.timeout)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("unhealthy: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Echo { listen } => {
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime starts");
            let result: anyhow::Result<()> = runtime.block_on(async {
                let signals = Signals::install()?;
                let listener = tokio::net::TcpListener::bind(listen).await?;
                eprintln!("echo upstream listening on {}", listener.local_addr()?);
                tokio::select! {
                    _ = demo::serve_echo(listener) => {}
                    _ = signals.recv() => {}
                }
                Ok(())
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo(args) => {
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime starts");
            let result = runtime.block_on(async {
                let signals = Signals::install()?;
                demo::run(args.listen, args.admin_listen, signals.recv()).await
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig(arg) => match Config::load(&arg.config, &env) {
            Ok(config) => {
                println!("{}: OK\n{}", arg.config.display(), config.summary());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", arg.config.display());
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Serve(arg) => {
            let config = match Config::load(&arg.config, &env) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{}: {e}", arg.config.display());
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            logging::init(&config.log);
            let runtime = App::runtime(&config.runtime).expect("tokio runtime starts");
            let result = runtime.block_on(async {
                let signals = Signals::install()?;
                let app = App::build(config).await?;
                let (proxy, admin) = App::bind(app.config()).await?;
                app.run(proxy, admin, signals.recv()).await
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "tokengate failed");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

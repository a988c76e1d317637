//! The `tokengate` binary: parse the command line, then serve until a signal, or hand the
//! command to [`tokengate::cli::run`].

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Parser;
use tokengate::app::App;
use tokengate::cli::{self, Cli, Command, ConfigArg};
use tokengate::logging;
use tokengate::shutdown::Signals;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: BTreeMap<String, String> =
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
    match cli.command {
        Command::Serve(arg) => serve(&arg, &env),
        command => cli::run(command, &env),
    }
}

/// Loads the config (exit 2 naming the field when it does not load), starts logging and the
/// runtime, builds and binds the service, and runs it until SIGTERM or Ctrl-C, then drains.
fn serve(arg: &ConfigArg, env: &BTreeMap<String, String>) -> ExitCode {
    let config = match cli::load_config(arg, env) {
        Ok(config) => config,
        Err(code) => return code,
    };
    logging::init(&config.log);
    let runtime = App::runtime(&config.runtime);
    let work = async {
        let signals = Signals::install()?;
        let app = App::build(config).await?;
        let (proxy, admin) = App::bind(app.config()).await?;
        app.run(proxy, admin, signals.recv()).await
    };
    cli::complete(runtime, work, |e| tracing::error!(error = e.to_string(), "tokengate failed"))
}

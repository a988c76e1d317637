//! The command line: `tokengate serve`, `tokengate check-config`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Path to the YAML config file.
    #[arg(long, short, env = "TOKENGATE_CONFIG", default_value = "config/tokengate.yaml")]
    pub config: PathBuf,
}

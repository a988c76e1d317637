//! `shutdown`, `runtime` and `log`: the process around the listeners.

use super::Ctx;
use crate::config::raw::{RawLog, RawRuntime, RawShutdown};
use crate::config::{ConfigError, LogConfig, LogFormat, RuntimeConfig, ShutdownConfig, defaults};

/// Largest `runtime.worker_threads`.
const MAX_WORKER_THREADS: usize = 1024;

pub(super) fn validate_shutdown(shutdown: RawShutdown, ctx: &Ctx) -> Result<ShutdownConfig, ConfigError> {
    Ok(ShutdownConfig {
        drain_timeout: ctx.duration("shutdown.drain_timeout", shutdown.drain_timeout, defaults::DRAIN_TIMEOUT)?,
    })
}

pub(super) fn validate_runtime(runtime: RawRuntime, ctx: &Ctx) -> Result<RuntimeConfig, ConfigError> {
    let worker_threads = match runtime.worker_threads {
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        Some(n @ 1..=MAX_WORKER_THREADS) => n,
        Some(_) => {
            return Err(ctx.error("runtime.worker_threads", format!("must be between 1 and {MAX_WORKER_THREADS}")));
        }
    };
    Ok(RuntimeConfig { worker_threads })
}

pub(super) fn validate_log(log: RawLog, ctx: &Ctx) -> Result<LogConfig, ConfigError> {
    let level = log.level.unwrap_or_else(|| defaults::LOG_LEVEL.to_string());
    if tracing_subscriber::EnvFilter::builder().parse(&level).is_err() {
        return Err(
            ctx.error("log.level", format!("invalid filter {level:?}: expected e.g. info, debug, tokengate=debug"))
        );
    }
    let format = match log.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => return Err(ctx.error("log.format", format!("{other:?} is not one of: text, json"))),
    };
    Ok(LogConfig { level, format })
}

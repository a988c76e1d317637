//! The process's shutdown signal: the first SIGTERM or SIGINT (Ctrl-C).
//!
//! The handlers are installed when [`Signals::install`] is called, at startup before anything
//! else runs, so a signal that arrives while the app is still starting is not lost (and does not
//! kill the process with the default disposition).
//!
//! SIGHUP does not reload anything (config, keys and certificates are read at startup): it is
//! logged and ignored, so a stray hangup cannot kill a serving process. Apply changes with a
//! (rolling) restart, which drains connections.

use std::io;

#[cfg(unix)]
use tokio::signal::unix::{Signal, SignalKind, signal};

/// What is logged when a SIGHUP arrives.
pub const SIGHUP_IGNORED: &str =
    "SIGHUP ignored: restart to apply config, key or certificate changes (a rolling restart drains connections)";

/// Installed signal handlers; [`Signals::recv`] resolves on the first SIGTERM or SIGINT.
pub struct Signals {
    #[cfg(unix)]
    term: Signal,
    #[cfg(unix)]
    int: Signal,
    #[cfg(unix)]
    hup: Signal,
}

impl Signals {
    /// Installs the handlers. Must be called inside a tokio runtime.
    pub fn install() -> io::Result<Self> {
        #[cfg(unix)]
        return Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        });
        #[cfg(not(unix))]
        return Ok(Self {});
    }

    /// Resolves when the process is asked to stop.
    pub async fn recv(mut self) {
        #[cfg(unix)]
        loop {
            tokio::select! {
                _ = self.term.recv() => return tracing::info!("received SIGTERM; shutting down"),
                _ = self.int.recv() => return tracing::info!("received Ctrl-C; shutting down"),
                _ = self.hup.recv() => tracing::info!("{SIGHUP_IGNORED}"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("received Ctrl-C; shutting down");
        }
    }
}

//! The process's shutdown signal: the first SIGTERM or SIGINT (Ctrl-C).
//!
//! The handlers are installed when [`Signals::install`] is called, at startup before anything
//! else runs, so a signal that arrives while the app is still starting is not lost (and does not
//! kill the process with the default disposition).

use std::io;

#[cfg(unix)]
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Installed signal handlers; [`Signals::recv`] resolves on the first signal.
pub struct Signals {
    #[cfg(unix)]
    term: Signal,
    #[cfg(unix)]
    int: Signal,
}

impl Signals {
    /// Installs the handlers. Must be called inside a tokio runtime.
    pub fn install() -> io::Result<Self> {
        #[cfg(unix)]
        return Ok(Self { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? });
        #[cfg(not(unix))]
        return Ok(Self {});
    }

    /// Resolves when the process is asked to stop.
    pub async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => tracing::info!("received SIGTERM; shutting down"),
            _ = self.int.recv() => tracing::info!("received Ctrl-C; shutting down"),
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("received Ctrl-C; shutting down");
        }
    }
}

//! The signals redlock forwards to the command's process group: SIGINT, SIGTERM, SIGHUP.
//! Installed before the lock is requested, so a signal while waiting ends the wait cleanly
//! (in-flight attempts are released) instead of killing redlock mid-request.

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};

/// The handled signals, as streams.
pub(crate) struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers (inside the tokio runtime).
    pub(crate) fn install() -> std::io::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal received.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (each stream's `recv` is).
    pub(crate) async fn recv(&mut self) -> Signal {
        tokio::select! {
            Some(()) = self.int.recv() => Signal::SIGINT,
            Some(()) = self.term.recv() => Signal::SIGTERM,
            Some(()) = self.hup.recv() => Signal::SIGHUP,
            else => std::future::pending().await,
        }
    }
}

//! The signals redlock catches: every signal it can forward to the command's process group,
//! SIGTSTP (job control), and SIGCHLD (the command stopped or ended). Installed before the
//! lock is requested, so a signal while waiting ends the wait cleanly (in-flight attempts are
//! released) instead of killing redlock mid-request.
//!
//! Not caught, and why:
//! - SIGKILL, SIGSTOP: cannot be caught. A killed redlock takes the command with it (see
//!   `child.rs`); a redlock stopped by SIGSTOP alone cannot extend the lock, so stop the job
//!   (Ctrl-Z, SIGTSTP) instead.
//! - SIGTTIN, SIGTTOU: the terminal's own signals for a background process that reads from
//!   it or writes to it. Caught, a write to the terminal from the background (with
//!   `stty tostop`) would be retried forever, and each try would stop the command.
//! - SIGPIPE: ignored by redlock (Rust's default) so that a closed stderr is not fatal.
//! - SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT: faults of redlock itself.
//! - SIGCONT, SIGURG, SIGCHLD: do nothing by default (SIGCHLD is watched, not forwarded).
//! - Real-time signals (SIGRTMIN…): not forwarded; their default action ends redlock, and
//!   the command with it (parent-death signal).

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// Signals forwarded to the command's process group as they are.
pub(crate) const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGTERM,
    Signal::SIGWINCH,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGIO,
    Signal::SIGPWR,
];

/// Whether a received signal asks redlock to end (its default action would have ended it):
/// redlock then exits `128 + N` once the command is gone. SIGWINCH (a window size change)
/// and SIGTSTP (stop) do not.
pub(crate) fn ends_redlock(signal: Signal) -> bool {
    !matches!(signal, Signal::SIGWINCH | Signal::SIGTSTP)
}

/// The caught signals, in the order received.
pub(crate) struct Signals {
    received: mpsc::UnboundedReceiver<Signal>,
    child: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers (inside the tokio runtime).
    pub(crate) fn install() -> std::io::Result<Self> {
        let (tx, received) = mpsc::unbounded_channel();
        for &sig in FORWARDED.iter().chain(&[Signal::SIGTSTP]) {
            let mut stream = signal(SignalKind::from_raw(crate::exit::signal_number(sig)))?;
            let tx = tx.clone();
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    if tx.send(sig).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Self {
            received,
            child: signal(SignalKind::child())?,
        })
    }

    /// The next signal received (not SIGCHLD).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (a channel's `recv` is).
    pub(crate) async fn recv(&mut self) -> Signal {
        match self.received.recv().await {
            Some(signal) => signal,
            None => std::future::pending().await,
        }
    }

    /// The next signal received, or `None` at a SIGCHLD (a child stopped, continued or
    /// ended).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub(crate) async fn next(&mut self) -> Option<Signal> {
        tokio::select! {
            Some(signal) = self.received.recv() => Some(signal),
            Some(()) = self.child.recv() => None,
            else => std::future::pending().await,
        }
    }
}

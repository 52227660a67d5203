//! The controlling terminal, when redlock runs in the foreground of one: the command runs in
//! its own process group, which would be a *background* group there and be stopped
//! (SIGTTIN) as soon as it read from the terminal. So the terminal is handed to the command's
//! group while it runs (as a shell does for a job) and taken back afterwards. Keys typed at the
//! terminal (Ctrl-C) then reach the command's group directly.

use std::io::IsTerminal;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, killpg, sigprocmask};
use nix::unistd::{Pid, getpgrp, tcgetpgrp, tcsetpgrp};

/// Redlock's terminal, on stdin, of which its process group is the foreground.
pub(crate) struct Terminal {
    own_group: Pid,
}

impl Terminal {
    /// The terminal on stdin if redlock is in its foreground process group; `None` when stdin
    /// is no terminal (cron, pipes, CI) or redlock runs in the background.
    pub(crate) fn foreground() -> Option<Self> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let own_group = getpgrp();
        (tcgetpgrp(&stdin).ok()? == own_group).then_some(Self { own_group })
    }

    /// Makes `group` the terminal's foreground group, and wakes it in case it was stopped for
    /// reading the terminal before this.
    pub(crate) fn give_to(&self, group: Pid) {
        if tcsetpgrp(std::io::stdin(), group).is_ok() {
            let _ = killpg(group, Signal::SIGCONT);
        }
    }

    /// Makes redlock's own group the foreground again. redlock is a background process at
    /// this point, so SIGTTOU is blocked around the call (POSIX then lets it through).
    pub(crate) fn take_back(&self) {
        let mut ttou = SigSet::empty();
        ttou.add(Signal::SIGTTOU);
        let mut old = SigSet::empty();
        if sigprocmask(SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut old)).is_err() {
            return;
        }
        let _ = tcsetpgrp(std::io::stdin(), self.own_group);
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
}

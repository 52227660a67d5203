//! The controlling terminal on stdin, for job control.
//!
//! The command runs in its own process group (so that a lost lock's signal reaches every
//! process it started). In a terminal that group would be a *background* group and be stopped
//! (SIGTTIN) as soon as it read from the terminal, so while redlock is the foreground job the
//! terminal is handed to the command's group (as a shell does for a job) and taken back
//! afterwards; keys typed at the terminal (Ctrl-C, Ctrl-Z) then reach the command's group
//! directly. When the command stops (Ctrl-Z), redlock stops its own job too, so that the shell
//! sees the job stopped and takes the terminal back; when the shell resumes the job (`fg`
//! gives redlock's group the terminal, `bg` does not), redlock resumes the command, handing
//! it the terminal only in the first case.

use std::io::IsTerminal;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, killpg, sigprocmask};
use nix::unistd::{Pid, getpgrp, tcgetpgrp, tcsetpgrp};

/// The terminal on redlock's stdin.
pub(crate) struct Terminal {
    own_group: Pid,
}

impl Terminal {
    /// The terminal on stdin; `None` when stdin is no terminal (cron, pipes, CI).
    pub(crate) fn of_stdin() -> Option<Self> {
        std::io::stdin().is_terminal().then(|| Self {
            own_group: getpgrp(),
        })
    }

    /// Whether redlock's process group is the terminal's foreground group: redlock is the
    /// foreground job (or part of it).
    pub(crate) fn is_foreground(&self) -> bool {
        self.foreground_group() == Some(self.own_group)
    }

    /// Whether `group` is the terminal's foreground group.
    pub(crate) fn is_foreground_group(&self, group: Pid) -> bool {
        self.foreground_group() == Some(group)
    }

    fn foreground_group(&self) -> Option<Pid> {
        tcgetpgrp(std::io::stdin()).ok()
    }

    /// Makes `group` the terminal's foreground group, and wakes it in case it was stopped for
    /// reading the terminal before this.
    pub(crate) fn give_to(&self, group: Pid) {
        if with_ttou_blocked(|| tcsetpgrp(std::io::stdin(), group).is_ok()) {
            let _ = killpg(group, Signal::SIGCONT);
        }
    }

    /// Makes the calling process's own group the terminal's foreground (the command, before
    /// it is executed; redlock does the same from its side, as shells do, so neither order
    /// of the two leaves the command in the background).
    pub(crate) fn claim_for_own_group(&self) {
        let _ = with_ttou_blocked(|| tcsetpgrp(std::io::stdin(), self.own_group).is_ok());
    }

    /// Makes redlock's own group the foreground again if `group` has it (redlock may have
    /// been moved to the background in the meantime: then the terminal is not its to take).
    pub(crate) fn take_back_from(&self, group: Pid) {
        if self.is_foreground_group(group) {
            let _ = with_ttou_blocked(|| tcsetpgrp(std::io::stdin(), self.own_group).is_ok());
        }
    }

    /// Stops redlock's whole job (its process group), as the terminal's Ctrl-Z would have,
    /// so the shell sees the job stopped (a job with one process still running is not) and
    /// takes the terminal back; returns when the job is continued (`fg`, `bg`, SIGCONT).
    /// SIGSTOP, not SIGTSTP: redlock catches SIGTSTP to forward it.
    pub(crate) fn stop_job(&self) {
        let _ = killpg(self.own_group, Signal::SIGSTOP);
    }
}

/// Runs `f` with SIGTTOU blocked: a process outside the terminal's foreground group may then
/// change it (POSIX), instead of being stopped for trying.
fn with_ttou_blocked(f: impl FnOnce() -> bool) -> bool {
    let mut ttou = SigSet::empty();
    ttou.add(Signal::SIGTTOU);
    let mut old = SigSet::empty();
    if sigprocmask(SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut old)).is_err() {
        return false;
    }
    let done = f();
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    done
}

/// Stops redlock alone (no terminal: nobody else's job to stop); returns when it is
/// continued.
pub(crate) fn stop_self() {
    let _ = nix::sys::signal::kill(nix::unistd::getpid(), Signal::SIGSTOP);
}

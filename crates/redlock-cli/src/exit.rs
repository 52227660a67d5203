//! Exit codes: sysexits.h for redlock's own failures (as flock), the command's status when it
//! ran, and GNU timeout's conventions (126, 127, 128+N) for a command that could not run or
//! was killed by a signal.

use std::io;

use nix::sys::signal::Signal;

/// Everything went well (also `--help`, `--version`).
pub(crate) const OK: u8 = 0;
/// Conflict or wait expiry, unless `-E` says otherwise (flock's default).
pub(crate) const CONFLICT: u8 = 1;
/// Bad usage: unknown option, bad value, invalid configuration (EX_USAGE).
pub(crate) const USAGE: u8 = 64;
/// The key holds a value that is not a lock (EX_DATAERR).
pub(crate) const DATA: u8 = 65;
/// No quorum of masters reachable (EX_UNAVAILABLE).
pub(crate) const UNAVAILABLE: u8 = 69;
/// An internal error (EX_SOFTWARE).
pub(crate) const SOFTWARE: u8 = 70;
/// The lock was lost while the command ran (EX_TEMPFAIL), unless `--lost-exit-code`.
pub(crate) const LOST: u8 = 75;
/// A quorum granted the lock too late to leave any validity: the TTL is too short for the
/// masters' round-trip time and the clock-drift allowance (EX_CONFIG).
pub(crate) const VALIDITY_EXHAUSTED: u8 = 78;
/// `status`: every resource is held (on a majority of masters).
pub(crate) const STATUS_HELD: u8 = 0;
/// `status`: a resource is free.
pub(crate) const STATUS_FREE: u8 = 1;
/// `status`: the masters disagree on a resource (no holder, and not free, on a majority).
pub(crate) const STATUS_UNSETTLED: u8 = 2;
/// The command exists but cannot be executed.
pub(crate) const CANNOT_EXECUTE: u8 = 126;
/// The command was not found.
pub(crate) const NOT_FOUND: u8 = 127;

/// `128 + N` for signal `N`.
pub(crate) fn signal_code(signal: Signal) -> u8 {
    signal_number_code(signal_number(signal))
}

/// The number of a signal.
pub(crate) fn signal_number(signal: Signal) -> i32 {
    // `Signal` is a `#[repr(i32)]` enum of the libc signal numbers.
    #[allow(clippy::as_conversions)]
    let n = signal as i32;
    n
}

fn signal_number_code(n: i32) -> u8 {
    u8::try_from(n.saturating_add(128)).unwrap_or(u8::MAX)
}

/// The exit code that reports how a child ended: its exit code, or `128 + N` for signal `N`.
pub(crate) fn from_wait(status: &nix::sys::wait::WaitStatus) -> Option<u8> {
    use nix::sys::wait::WaitStatus;
    match status {
        WaitStatus::Exited(_, code) => Some(u8::try_from(code & 0xff).unwrap_or(SOFTWARE)),
        WaitStatus::Signaled(_, signal, _) => Some(signal_code(*signal)),
        _ => None,
    }
}

/// The exit code for a command that could not be started: 127 when it was not found, 126
/// when it cannot be executed (as the shell and GNU timeout).
pub(crate) fn from_spawn_error(error: &io::Error) -> u8 {
    match error.kind() {
        io::ErrorKind::NotFound => NOT_FOUND,
        _ => CANNOT_EXECUTE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_codes() {
        use nix::sys::wait::WaitStatus;
        let pid = nix::unistd::Pid::from_raw(1);
        assert_eq!(from_wait(&WaitStatus::Exited(pid, 3)), Some(3));
        assert_eq!(from_wait(&WaitStatus::Exited(pid, 0)), Some(OK));
        let killed = |s| from_wait(&WaitStatus::Signaled(pid, s, false));
        assert_eq!(killed(Signal::SIGKILL), Some(137));
        assert_eq!(killed(Signal::SIGTERM), Some(143));
        assert_eq!(from_wait(&WaitStatus::StillAlive), None);
        assert_eq!(signal_code(Signal::SIGHUP), 129);
        assert_eq!(
            from_spawn_error(&io::Error::from(io::ErrorKind::NotFound)),
            127
        );
        assert_eq!(
            from_spawn_error(&io::Error::from(io::ErrorKind::PermissionDenied)),
            126
        );
    }
}

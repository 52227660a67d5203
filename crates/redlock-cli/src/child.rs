//! Starting the command so that it never outlives redlock.
//!
//! redlock forwards every signal it can catch, but nothing can catch SIGKILL (the OOM killer,
//! `kill -9`). So the command is started with a *parent-death signal*: the kernel sends it
//! SIGKILL the moment redlock dies, however it dies. That setting (`PR_SET_PDEATHSIG`) must be
//! made in the child, after the fork and before the command is executed. Rust's standard
//! library offers that only through the `unsafe` `CommandExt::pre_exec`, which this workspace
//! forbids; so redlock starts *itself* first, in a small internal mode
//! ([`CHILD_MODE`]): that process sets its parent-death signal, checks that redlock is still
//! its parent (it could have died before the setting took effect), optionally makes its own
//! process group the terminal's foreground, and then executes the command in its place (same
//! process, same pid, same process group). The setting survives the `execve` (except into a
//! set-user-ID or set-group-ID program, which the kernel clears it for).
//!
//! The parent-death signal follows the *thread* that forked the child, not the process: the
//! command is spawned from redlock's main thread (its single-threaded runtime runs there),
//! which lives as long as redlock does.
//!
//! Only the command itself gets the parent-death signal, not processes it started: if redlock
//! dies by SIGKILL, a shell that was killed this way leaves its own children running unless
//! they exit with it. Forwarded signals and the loss handling reach the whole process group.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::signal::Signal;
use nix::unistd::{Pid, getpid, getppid};
use tokio_redlock::Printable;

use crate::exit;
use crate::terminal::Terminal;

/// The first argument of redlock's internal mode that executes the command. Not an option a
/// user would type; `redlock --help` does not list it.
pub(crate) const CHILD_MODE: &str = "--internal-exec-command";

/// Where redlock's own executable is, for starting itself in [`CHILD_MODE`]: the kernel's
/// link to the running image, valid even when the file was replaced or deleted since.
const SELF_EXE: &str = "/proc/self/exe";

/// A command redlock runs: `program` with `args`.
pub(crate) struct CommandLine<'a> {
    /// The program (looked up in `PATH` when it has no `/`).
    pub(crate) program: &'a OsStr,
    /// Its arguments.
    pub(crate) args: &'a [OsString],
}

/// A [`Command`] that runs `command` through redlock's [`CHILD_MODE`], in a process group of
/// its own; with `take_terminal`, it makes that group the terminal's foreground before the
/// command starts (so the command never reads the terminal from the background). The caller
/// adds the environment and spawns it from the main thread.
pub(crate) fn command(command: &CommandLine<'_>, take_terminal: bool) -> Command {
    let mut c = Command::new(SELF_EXE);
    c.arg(CHILD_MODE)
        .arg(getpid().to_string())
        .arg(if take_terminal { "terminal" } else { "-" })
        .arg("--")
        .arg(command.program)
        .args(command.args)
        .process_group(0);
    c
}

/// redlock's [`CHILD_MODE`]: `args` are what follows [`CHILD_MODE`] on the command line
/// (`PARENT_PID terminal|- -- PROGRAM [ARGS…]`). Executes the program, so it returns only on
/// failure, with the exit code to use (127 not found, 126 not executable, as a shell).
pub(crate) fn exec_command(mut args: impl Iterator<Item = OsString>) -> u8 {
    let parent = args
        .next()
        .and_then(|p| p.to_str()?.parse::<i32>().ok())
        .map(Pid::from_raw);
    let take_terminal = args.next().is_some_and(|t| t == "terminal");
    let separator = args.next();
    let (Some(parent), Some(program)) = (parent, args.next()) else {
        say(format_args!("{CHILD_MODE} is for redlock's own use"));
        return exit::USAGE;
    };
    if separator.as_deref() != Some(OsStr::new("--")) {
        say(format_args!("{CHILD_MODE} is for redlock's own use"));
        return exit::USAGE;
    }
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        say(format_args!(
            "cannot tie the command's life to redlock's: {e}"
        ));
        return exit::SOFTWARE;
    }
    // redlock may have died between the fork and the line above: then no signal will come.
    if getppid() != parent {
        return exit::SOFTWARE;
    }
    if take_terminal && let Some(terminal) = Terminal::of_stdin() {
        terminal.claim_for_own_group();
    }
    let error = Command::new(&program).args(args).exec();
    say(format_args!(
        "cannot run `{}`: {error}",
        Printable::new(program.as_bytes())
    ));
    exit::from_spawn_error(&error)
}

/// A `redlock: …` line on stderr (the internal mode has no [`Report`](crate::report::Report)).
fn say(message: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(io::stderr().lock(), "redlock: {message}");
}

//! redlock's own messages on stderr, by verbosity: errors always, warnings unless `-q`,
//! details with `-v`. stdout belongs to the command (`exec`) or to the report (`status`,
//! `bench`).

use std::fmt::Display;
use std::io::Write;

/// How much redlock says.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Report {
    verbose: u8,
    quiet: bool,
}

impl Report {
    /// From `-v` (count) and `-q`.
    pub(crate) fn new(verbose: u8, quiet: bool) -> Self {
        Self { verbose, quiet }
    }

    /// A failure that decides the exit status: always printed.
    pub(crate) fn error(&self, message: impl Display) {
        say(message);
    }

    /// Something the user should know (a conflict, a release that failed): not with `-q`.
    pub(crate) fn warn(&self, message: impl Display) {
        if !self.quiet {
            say(message);
        }
    }

    /// Detail: only with `-v`.
    pub(crate) fn info(&self, message: impl Display) {
        if self.is_verbose() {
            say(message);
        }
    }

    /// True with `-q`.
    pub(crate) fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// True with `-v`.
    pub(crate) fn is_verbose(&self) -> bool {
        self.verbose > 0 && !self.quiet
    }
}

/// One `redlock: …` line on stderr. A closed stderr is no reason to fail (or to panic, as
/// `eprintln!` would).
fn say(message: impl Display) {
    let _ = writeln!(std::io::stderr().lock(), "redlock: {message}");
}

/// The command's report on stdout (`status`, `bench`); a closed pipe (`| head`) ends it
/// quietly instead of panicking as `println!` would.
pub(crate) fn output(text: impl Display) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// One line on stderr as it is (the `--json` report of `exec`: stdout is the command's).
pub(crate) fn say_raw(line: impl Display) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// With `--json`, the one JSON object `status` and `release` print on stdout when they end
/// before any master was asked (a bad server list, a reserved name): `{"error": …,
/// "exit_code": …}`, so that a script reading stdout always gets JSON.
pub(crate) fn json_setup_error(json: bool, error: &dyn std::fmt::Display, exit_code: u8) {
    if json {
        let doc = serde_json::json!({ "error": error.to_string(), "exit_code": exit_code });
        let _ = writeln!(std::io::stdout().lock(), "{doc}");
    }
}

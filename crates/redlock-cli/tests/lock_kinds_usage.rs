//! Bad combinations of `redlock exec`'s lock kinds (`--shared`, `-x`, `--also`,
//! `--permits`, `--fencing`) are refused as bad usage (exit 64) with a message that says
//! why, before any request: the masters here are closed ports, so a request would have
//! made it exit 69 instead.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use predicates::prelude::*;
use support::{assert_usage_error, closed_ports, redlock_bare};

fn exec(args: &[&str]) -> assert_cmd::Command {
    let mut cmd = redlock_bare();
    for port in closed_ports(3) {
        cmd.arg("-s").arg(format!("redis://127.0.0.1:{port}"));
    }
    cmd.arg("exec").args(args);
    cmd
}

#[test]
fn conflicting_lock_kinds_are_refused_before_any_request() {
    let cases: &[(&[&str], &str)] = &[
        (&["--shared", "-x"], "cannot be used with"),
        (
            &["--shared", "--permits", "2"],
            "--permits takes no --shared",
        ),
        (&["-x", "--permits", "2"], "--permits takes no --exclusive"),
        (
            &["--also", "b", "--permits", "2"],
            "--permits takes no --also",
        ),
        (&["--shared", "--also", "b"], "--shared takes one resource"),
        (&["-x", "--also", "b"], "--exclusive takes one resource"),
        (&["--fencing", "--shared"], "readers carry no fencing token"),
        (
            &["--fencing", "--permits", "2"],
            "permits carry no fencing token",
        ),
        (&["--permits", "0"], "1 to 256 permits"),
        (&["--permits", "257"], "1 to 256 permits"),
        (&["--permits", "two"], "is not a number of permits"),
    ];
    for (args, says) in cases {
        let mut cmd = exec(args);
        cmd.args(["r", "--", "true"]);
        assert_usage_error(&mut cmd, says);
    }
}

#[test]
fn refusals_come_with_a_json_report_naming_the_kind() {
    exec(&["--json", "--shared", "--also", "b", "r", "--", "true"])
        .assert()
        .code(64)
        .stderr(predicate::str::contains("\"outcome\":\"usage\""));
    // Accepted combinations get past the checks and fail only at the closed ports.
    for args in [
        &["--shared"][..],
        &["-x", "--fencing"],
        &["--also", "b", "--fencing"],
        &["--permits", "3"],
    ] {
        exec(args).args(["-n", "r", "--", "true"]).assert().code(69);
    }
}

#[test]
fn too_many_resources_are_refused_as_bad_usage() {
    let others: Vec<String> = (0..64).map(|i| format!("r{i}")).collect();
    let mut cmd = exec(&[]);
    for other in &others {
        cmd.args(["--also", other]);
    }
    cmd.args(["-n", "r", "--", "true"]);
    assert_usage_error(&mut cmd, "at most 64");
}

//! Every file in `examples/` runs here against three real masters, the way a user runs it:
//! as a program with `REDLOCK_SERVERS` set (the demo runs in `scripts/demo.sh`, and CI runs
//! that too).
//!
//! The example binaries are the ones cargo built next to this test (`target/<profile>/
//! examples/`): `cargo nextest run --workspace` and `cargo test` build the examples of the
//! selected packages. When one is missing or older than the sources (this file alone was
//! built, e.g. `--test examples`), it is built first with `cargo build --example`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::print_stdout,
    clippy::print_stderr,
    unreachable_pub
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::SystemTime;

use support::servers::{Masters, free_port};

/// The examples run here, by file name (without `.rs`); `demo` runs in `scripts/demo.sh`.
const RUST_EXAMPLES: &[&str] = &["quickstart", "guard", "wait_timeout", "holder", "fencing"];
/// The shell examples run here.
const SHELL_EXAMPLES: &[&str] = &["cron.sh"];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>`: this test binary lives in its `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary is in target/<profile>/deps")
        .to_owned()
}

/// The newest modification time of the files under `paths` (recursively).
fn newest(paths: &[PathBuf]) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else if let Ok(modified) = meta.modified() {
            newest = newest.max(modified);
        }
    }
    newest
}

/// Builds one at a time within this process (cargo serialises processes itself).
static BUILD: Mutex<()> = Mutex::new(());

/// The binary at `path`, built with `cargo build <target_args>` when it is missing or older
/// than any of `sources`.
fn fresh_binary(path: PathBuf, sources: &[PathBuf], target_args: &[&str]) -> PathBuf {
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    if built.is_some_and(|built| built >= newest(sources)) {
        return path;
    }
    let profile = profile_dir();
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into()));
    cargo
        .args(["build", "--quiet"])
        .args(target_args)
        .arg("--target-dir")
        .arg(profile.parent().unwrap());
    match profile.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cargo.arg("--release");
        }
        Some(other) => {
            cargo.args(["--profile", other]);
        }
        None => panic!("unexpected target directory {}", profile.display()),
    }
    let status = cargo.current_dir(manifest_dir()).status().unwrap();
    assert!(status.success(), "cargo build {target_args:?} failed");
    assert!(path.exists(), "cargo built no {}", path.display());
    path
}

/// The example `name`, built with this test's features when needed.
fn example(name: &str) -> PathBuf {
    let mut features = Vec::new();
    if cfg!(feature = "tls") {
        features.push("tls");
    }
    if cfg!(feature = "metrics") {
        features.push("metrics");
    }
    if cfg!(feature = "serde") {
        features.push("serde");
    }
    let features = features.join(",");
    let mut args = vec!["-p", "tokio-redlock", "--example", name];
    if !features.is_empty() {
        args.extend(["--features", &features]);
    }
    let crate_dir = manifest_dir();
    fresh_binary(
        profile_dir().join("examples").join(name),
        &[
            crate_dir.join("src"),
            crate_dir.join("examples"),
            crate_dir.join("Cargo.toml"),
        ],
        &args,
    )
}

/// The `redlock` CLI binary of this workspace, for the shell examples.
fn redlock_cli() -> PathBuf {
    let cli_dir = manifest_dir().join("../redlock-cli");
    fresh_binary(
        profile_dir().join("redlock"),
        &[
            manifest_dir().join("src"),
            cli_dir.join("src"),
            cli_dir.join("Cargo.toml"),
        ],
        &["-p", "redlock-cli", "--bin", "redlock"],
    )
}

/// Runs `program` with `REDLOCK_SERVERS=servers` (unset when `None`) and returns its output,
/// echoed for the test log.
fn run(program: &mut Command, servers: Option<&str>) -> Output {
    match servers {
        Some(servers) => program.env("REDLOCK_SERVERS", servers),
        None => program.env_remove("REDLOCK_SERVERS"),
    };
    let output = program.stdin(Stdio::null()).output().unwrap();
    println!("{program:?}: {}", output.status);
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs the example against `masters` and checks that it succeeded; returns its stdout.
fn run_ok(name: &str, masters: &Masters) -> String {
    let output = run(
        &mut Command::new(example(name)),
        Some(&masters.urls().join(",")),
    );
    assert!(output.status.success(), "{name} failed: {output:?}");
    stdout(&output)
}

/// Nothing but the servers' own fencing counters is left behind by a run.
fn assert_no_lock_keys(masters: &Masters) {
    for master in masters.iter() {
        let left: Vec<String> = master
            .keys()
            .into_iter()
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .filter(|k| !k.ends_with(":fence"))
            .collect();
        assert!(left.is_empty(), "keys left on {}: {left:?}", master.url());
    }
}

#[test]
fn every_example_file_is_run_by_this_test() {
    let mut files: Vec<String> = std::fs::read_dir(manifest_dir().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    for file in files {
        let covered = match file.strip_suffix(".rs") {
            Some(name) => name == "demo" || RUST_EXAMPLES.contains(&name),
            None => SHELL_EXAMPLES.contains(&file.as_str()),
        };
        assert!(covered, "examples/{file} is not run by tests/examples.rs");
    }
}

#[test]
fn quickstart_locks_extends_and_unlocks() {
    let masters = Masters::start(3);
    let out = run_ok("quickstart", &masters);
    assert!(out.contains("3 masters, a lock needs 2 of them"), "{out}");
    assert!(out.contains("acquired examples:quickstart"), "{out}");
    assert!(out.contains("extended"), "{out}");
    assert!(out.contains("released (still valid: false)"), "{out}");
    assert_no_lock_keys(&masters);
}

#[test]
fn guard_keeps_its_lock_past_the_ttl_and_releases_it() {
    let masters = Masters::start(3);
    let out = run_ok("guard", &masters);
    assert!(out.contains("batch 4 done"), "{out}");
    assert!(out.contains("5 batches done"), "{out}");
    assert!(!out.contains("lost"), "{out}");
    assert!(out.contains("with_lock returned 42"), "{out}");
    assert_no_lock_keys(&masters);
}

#[test]
fn wait_timeout_tells_busy_from_a_release() {
    let masters = Masters::start(3);
    let out = run_ok("wait_timeout", &masters);
    assert!(out.contains("waiter: busy, gave up after"), "{out}");
    assert!(out.contains("holder: released"), "{out}");
    assert!(out.contains("waiter: acquired"), "{out}");
    assert_no_lock_keys(&masters);
}

#[test]
fn wait_timeout_tells_redis_down_apart_with_exit_status_69() {
    // Nothing listens on these ports: every master refuses the connection.
    let dead: Vec<String> = (0..3)
        .map(|_| format!("redis://127.0.0.1:{}", free_port()))
        .collect();
    let output = run(
        &mut Command::new(example("wait_timeout")),
        Some(&dead.join(",")),
    );
    assert_eq!(output.status.code(), Some(69), "{output:?}");
    assert!(stderr(&output).contains("Redis down"), "{output:?}");
    assert!(!stdout(&output).contains("busy"), "{output:?}");
}

#[test]
fn holder_reports_the_quorum_view_and_every_master() {
    let masters = Masters::start(3);
    let out = run_ok("holder", &masters);
    assert!(out.contains("before: free"), "{out}");
    assert!(out.contains("while held: held, about"), "{out}");
    assert!(out.contains("held by their handle: true"), "{out}");
    // A lock is granted once a quorum answers; the last master may take its key a moment
    // after the call returned, so the per-master view shows at least a quorum holding it.
    let holding = masters
        .urls()
        .iter()
        .filter(|url| out.contains(&format!("  {url}: held, ")))
        .count();
    assert!(holding >= 2, "{out}");
    assert!(
        out.contains("    holder: example-host, pid ") && out.contains(", command examples/holder"),
        "{out}"
    );
    assert!(out.contains("after unlock: free"), "{out}");
    assert_no_lock_keys(&masters);
}

#[test]
fn fencing_store_refuses_the_stale_holder() {
    let masters = Masters::start(3);
    let out = run_ok("fencing", &masters);
    assert!(out.contains("A: acquired with token 1"), "{out}");
    assert!(out.contains("B: acquired with token 2"), "{out}");
    assert!(out.contains("A: refused: token 1 is older than 2"), "{out}");
    assert!(
        out.contains("store: \"written by B\" with token 2"),
        "{out}"
    );
    assert_no_lock_keys(&masters);
}

#[test]
fn rust_examples_refuse_to_run_without_redlock_servers() {
    for name in RUST_EXAMPLES {
        let output = run(&mut Command::new(example(name)), None);
        assert!(!output.status.success(), "{name}: {output:?}");
        assert!(
            stderr(&output).contains("REDLOCK_SERVERS"),
            "{name}: {output:?}"
        );
    }
}

#[test]
fn cron_job_runs_on_one_host_at_a_time_and_skipped_runs_exit_zero() {
    let masters = Masters::start(3);
    let servers = masters.urls().join(",");
    let script = manifest_dir().join("examples/cron.sh");
    let redlock = redlock_cli();
    // Two "hosts" start the job at the same moment; the job takes 2 s.
    let runs: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&script)
                .env("REDLOCK", &redlock)
                .env("REDLOCK_SERVERS", &servers)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = runs
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    for output in &outputs {
        println!("{output:?}");
        assert!(output.status.success(), "{output:?}");
    }
    let ran: Vec<&Output> = outputs
        .iter()
        .filter(|o| stdout(o).contains("runs the job (fencing token "))
        .collect();
    assert_eq!(ran.len(), 1, "exactly one host ran the job: {outputs:?}");
    assert!(stdout(ran[0]).contains("job done"), "{outputs:?}");
    let skipped = outputs.iter().find(|o| !stdout(o).contains("runs the job"));
    let skipped = skipped.expect("one run was skipped");
    assert!(
        stdout(skipped).is_empty() && stderr(skipped).is_empty(),
        "{skipped:?}"
    );
    assert_no_lock_keys(&masters);

    // Without REDLOCK_SERVERS the script refuses to run (it never falls back to a default).
    let output = run(Command::new(&script).env("REDLOCK", &redlock), None);
    assert!(!output.status.success(), "{output:?}");
    assert!(stderr(&output).contains("REDLOCK_SERVERS"), "{output:?}");
}

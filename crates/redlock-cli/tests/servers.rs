//! Naming the masters: no silent default, a warning for a quorum that tolerates no more than a
//! smaller one, a "did you mean" for a value without a URL scheme (flock's `-s` is something
//! else), and every option from the environment. Real `redis-server` masters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use predicates::prelude::*;
use support::{Masters, held_anywhere, name, redlock, redlock_bare};

#[test]
fn without_masters_every_subcommand_refuses_with_a_usage_error() {
    for args in [
        &["exec", "r", "--", "true"][..],
        &["status", "r"],
        &["release", "--force", "--yes", "r"],
        &["bench", "--cycles", "1"],
    ] {
        redlock_bare()
            .args(args)
            .assert()
            .code(64)
            .stderr(predicate::str::contains("no masters given"))
            .stderr(predicate::str::contains("-s redis://HOST:PORT"))
            .stderr(predicate::str::contains("REDLOCK_SERVERS="));
    }
    redlock_bare()
        .env("REDLOCK_SERVERS", " ")
        .args(["exec", "r", "--", "true"])
        .assert()
        .code(64)
        .stderr(predicate::str::contains("REDLOCK_SERVERS is set but empty"));
}

#[test]
fn one_master_or_an_even_number_is_warned_about_once() {
    let masters = Masters::start(4);
    let r = name("count");
    let one = &masters.urls()[..1];
    let out = redlock_bare()
        .args(["-s", &one[0], "exec", &r, "--", "true"])
        .assert()
        .code(0)
        .get_output()
        .stderr
        .clone();
    let stderr = String::from_utf8(out).unwrap();
    assert_eq!(stderr.matches("only one master").count(), 1, "{stderr}");
    let out = redlock(&masters)
        .args(["exec", &r, "--", "true"])
        .assert()
        .code(0)
        .get_output()
        .stderr
        .clone();
    let stderr = String::from_utf8(out).unwrap();
    assert_eq!(
        stderr.matches("4 masters (an even number)").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "the quorum is 3, so the lock survives 1 failed master, as it would with 3 masters"
        ),
        "{stderr}"
    );
    // -q: no warning; three masters: none either.
    redlock(&masters)
        .args(["-q", "exec", &r, "--", "true"])
        .assert()
        .code(0)
        .stderr("");
    let mut three = redlock_bare();
    for url in &masters.urls()[..3] {
        three.arg("-s").arg(url);
    }
    three
        .args(["exec", &r, "--", "true"])
        .assert()
        .code(0)
        .stderr("");
}

#[test]
fn a_server_without_a_scheme_gets_a_did_you_mean() {
    // A flock user's `-s` (shared): the name is taken as a server.
    redlock_bare()
        .args(["exec", "-s", "mylock", "--", "true"])
        .assert()
        .code(64)
        .stderr(predicate::str::contains("did you mean -s redis://mylock?"))
        .stderr(predicate::str::contains("flock's -s"));
    redlock_bare()
        .args(["exec", "-s", "10.0.0.1:6379", "r", "--", "true"])
        .assert()
        .code(64)
        .stderr(predicate::str::contains(
            "did you mean -s redis://10.0.0.1:6379?",
        ));
    // A value with credentials is not echoed.
    redlock_bare()
        .args(["status", "--server=admin:hunter2@host:6379", "r"])
        .assert()
        .code(64)
        .stderr(predicate::str::contains("did you mean"))
        .stderr(predicate::str::contains("hunter2").not());
}

#[test]
fn options_come_from_the_environment_and_the_command_inherits_the_servers() {
    let masters = Masters::start(3);
    let r = name("env");
    let servers = masters.urls().join(",");
    // REDLOCK_TTL: the command sees the validity of a 5 s lock.
    let out = redlock_bare()
        .env("REDLOCK_SERVERS", &servers)
        .env("REDLOCK_TTL", "5s")
        .env("REDLOCK_NODE_TIMEOUT", "1s")
        .args(["exec", &r, "--", "sh", "-c"])
        .arg("echo $REDLOCK_VALIDITY_MS; echo \"$REDLOCK_SERVERS\"")
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let stdout = String::from_utf8(out).unwrap();
    let mut lines = stdout.lines();
    let validity: u64 = lines.next().unwrap().parse().unwrap();
    assert!((4_000..=5_000).contains(&validity), "{stdout}");
    // The command inherits REDLOCK_SERVERS, so a redlock inside it uses the same masters.
    assert_eq!(lines.next(), Some(servers.as_str()));
    // REDLOCK_WAIT and REDLOCK_CONFLICT_EXIT_CODE, as -w and -E.
    support::hold_elsewhere(&masters, &r, 20_000);
    let start = std::time::Instant::now();
    redlock(&masters)
        .env("REDLOCK_WAIT", "300ms")
        .env("REDLOCK_CONFLICT_EXIT_CODE", "7")
        .args(["exec", &r, "--", "true"])
        .assert()
        .code(7)
        .stderr(predicate::str::contains("gave up waiting"));
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    // The command line wins over the environment.
    redlock(&masters)
        .env("REDLOCK_WAIT", "10m")
        .args(["exec", "-n", &r, "--", "true"])
        .assert()
        .code(1);
    // Switches from the environment take what cron lines and shells write: 1/0, yes/no,
    // true/false, on/off.
    // On: refused at once despite a 10-minute wait. Off: the 200 ms wait runs out.
    for (value, on) in [
        ("1", true),
        ("yes", true),
        ("true", true),
        ("on", true),
        ("0", false),
        ("no", false),
        ("false", false),
        ("off", false),
    ] {
        let refused = redlock(&masters)
            .env("REDLOCK_NONBLOCK", value)
            .env("REDLOCK_WAIT", if on { "10m" } else { "200ms" })
            .args(["exec", &r, "--", "true"])
            .timeout(std::time::Duration::from_secs(20))
            .assert()
            .code(1);
        let waited = predicate::str::contains("gave up waiting");
        if on {
            refused.stderr(waited.not());
        } else {
            refused.stderr(waited);
        }
    }
    redlock(&masters)
        .env("REDLOCK_NONBLOCK", "maybe")
        .args(["exec", &r, "--", "true"])
        .assert()
        .code(64);
    support::delete_everywhere(&masters, &r);
    assert!(!held_anywhere(&masters, &r));
}

//! What scripts read: `status` answers by exit code (0 held, 1 free, 2 unsettled,
//! 69 unavailable), prints nothing with `-q`, and has `--json`; `exec --json` ends with a
//! one-line JSON report on stderr. Real `redis-server` masters.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::net::TcpListener;

use support::{Masters, hold_elsewhere, name, redlock, redlock_bare};

/// The last line of `stderr`, parsed as JSON.
fn last_json_line(stderr: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn status_exit_codes_tell_held_free_unsettled_and_unavailable() {
    let masters = Masters::start(3);
    let held = name("st-held");
    let free = name("st-free");
    let split = name("st-split");
    hold_elsewhere(&masters, &held, 20_000);
    // One master each: no holder and not free on a majority.
    masters[0].cmd(&["SET", &split, "aaaaaaaa", "PX", "20000"]);
    masters[1].cmd(&["SET", &split, "bbbbbbbb", "PX", "20000"]);
    for (resources, code) in [
        (vec![held.as_str()], 0),
        (vec![free.as_str()], 1),
        (vec![split.as_str()], 2),
        // Several: the first of 69, 2, 1 that applies.
        (vec![held.as_str(), free.as_str()], 1),
        (vec![free.as_str(), split.as_str(), held.as_str()], 2),
    ] {
        // -q: the exit code only.
        redlock(&masters)
            .args(["-q", "status"])
            .args(&resources)
            .assert()
            .code(code)
            .stdout("")
            .stderr("");
        let out = redlock(&masters)
            .args(["status", "--json"])
            .args(&resources)
            .assert()
            .code(code)
            .get_output()
            .stdout
            .clone();
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["resources"].as_array().unwrap().len(), resources.len());
    }
    let out = redlock(&masters)
        .args(["status", "--json", &split])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["resources"][0]["state"], "unsettled");

    // Unreachable masters: unavailable.
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let mut cmd = redlock_bare();
    for l in &listeners {
        cmd.arg("-s").arg(format!(
            "redis://127.0.0.1:{}",
            l.local_addr().unwrap().port()
        ));
    }
    drop(listeners);
    cmd.args(["--node-timeout", "200ms", "-q", "status", &held])
        .assert()
        .code(69)
        .stdout("");
}

#[test]
fn exec_json_reports_how_it_ended() {
    let masters = Masters::start(3);
    let r = name("json");
    // Ran: the command's status, times, the fencing token.
    let out = redlock(&masters)
        .args([
            "-q",
            "exec",
            "--json",
            "--fencing",
            &r,
            "--",
            "sh",
            "-c",
            "exit 3",
        ])
        .assert()
        .code(3)
        .get_output()
        .clone();
    let doc = last_json_line(&out.stderr);
    assert_eq!(doc["outcome"], "ran");
    assert_eq!(doc["exit_code"], 3);
    assert_eq!(doc["command_exit_code"], 3);
    assert_eq!(doc["resource"], r.as_str());
    assert!(doc["fencing_token"].as_u64().unwrap() >= 1);
    assert!(doc["held_ms"].as_u64().is_some());
    // -q: the report is the only line redlock writes.
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);

    // Killed by a signal.
    let out = redlock(&masters)
        .args(["exec", "--json", &r, "-c", "kill -TERM $$"])
        .assert()
        .code(143)
        .get_output()
        .clone();
    assert_eq!(last_json_line(&out.stderr)["command_signal"], "SIGTERM");

    // A conflict, with -E.
    hold_elsewhere(&masters, &r, 20_000);
    let out = redlock(&masters)
        .args(["exec", "--json", "-n", "-E", "5", &r, "--", "true"])
        .assert()
        .code(5)
        .get_output()
        .clone();
    let doc = last_json_line(&out.stderr);
    assert_eq!(doc["outcome"], "conflict");
    assert_eq!(doc["exit_code"], 5);
    assert!(doc["error"].as_str().unwrap().contains("another holder"));
    assert!(doc["command_exit_code"].is_null());
    let out = redlock(&masters)
        .args(["exec", "--json", "-w", "200ms", &r, "--", "true"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert_eq!(last_json_line(&out.stderr)["outcome"], "wait_expired");
}

/// `status --json` (stdout and stderr) shows no part of a password of every printable ASCII
/// character written as is in `-s` (but for the comma, which separates `-s` lists and is
/// written %2C) — neither the right one (the master answers: free) nor a
/// wrong one (unavailable: the master refuses us).
#[test]
fn status_json_never_shows_a_password_of_every_printable_ascii_character() {
    let all: String = (0x20u8..=0x7e).map(char::from).collect();
    let password = format!("SeCrEt{all}SeCrEt");
    let wrong = format!("SeCrEt{}SeCrEt", all.chars().rev().collect::<String>());
    let masters = Masters::start(1);
    masters[0].cmd(&["CONFIG", "SET", "requirepass", &password]);
    let port = masters[0].port();
    let resource = name("st-password");
    for (secret, code) in [(&password, 1), (&wrong, 69)] {
        let out = redlock_bare()
            .arg("-s")
            .arg(format!(
                "redis://default:{}@127.0.0.1:{port}",
                secret.replace(',', "%2C")
            ))
            .args(["--node-timeout", "1s", "status", "--json", &resource])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{out:?}");
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(doc["resources"].is_array(), "{text}");
        for fragment in ["SeC", "eCr", "CrE", "rEt", "./0123", "?@ABC", "{zyx"] {
            assert!(!text.contains(fragment), "{fragment} shows: {text}");
        }
        assert!(text.contains("redis://default:***@127.0.0.1:"), "{text}");
    }
}

/// A non-lock value under the key on 2 of 3 masters is said as such, not as "the masters
/// disagree": they agree, on something that is not a lock.
#[test]
fn status_names_a_non_lock_value_on_a_majority() {
    let masters = Masters::start(3);
    let resource = name("st-hash");
    masters[0].cmd(&["HSET", &resource, "f", "v"]);
    masters[1].cmd(&["HSET", &resource, "f", "v"]);
    let out = redlock(&masters)
        .args(["status", &resource])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("not a lock: the key holds a non-lock value on 2 of 3 masters")
            && !text.contains("disagree"),
        "{text}"
    );
}

#[test]
fn status_refuses_a_fencing_counter_or_a_holder_record() {
    // `{r}:fence` is a counter and `{r}:holder` a record: read as locks they showed "held".
    let masters = Masters::start(1);
    let r = name("reserved");
    for m in masters.iter() {
        m.cmd(&["SET", &format!("{{{r}}}:fence"), "7"]);
    }
    for reserved in [format!("{{{r}}}:fence"), format!("{{{r}}}:holder")] {
        let out = redlock(&masters)
            .args(["status", "--json", &reserved])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{out:?}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            doc["error"]
                .as_str()
                .is_some_and(|e| e.contains("reserved")),
            "{doc}"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no status"),
            "{out:?}"
        );
    }
}

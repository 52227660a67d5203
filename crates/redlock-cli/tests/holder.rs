//! Who holds it: while `redlock exec` runs its command, `redlock status` shows the holder
//! (host, pid, command, since when) in text and in `--json`; once the lock is released,
//! nothing. A record that no longer matches the lock key's token is never shown, and the
//! values of a record are printed escaped. Real `redis-server` masters.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::{Masters, name, redlock, redlock_std, wait_for_line, wait_timeout};

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// `redlock status --json RESOURCE`'s one resource.
fn status_json(masters: &Masters, resource: &str) -> serde_json::Value {
    let out = redlock(masters)
        .args(["status", "--json", resource])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    doc["resources"][0].clone()
}

#[test]
fn status_shows_who_holds_the_lock_while_exec_runs_and_nothing_after() {
    let masters = Masters::start(3);
    let resource = name("holder-exec");
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    let before = now_ms();
    let mut child = redlock_std(&masters)
        .args(["exec", "--ttl", "3s", &resource, "--", "sh", "-c"])
        .arg(format!(
            "echo started > '{}'; exec sleep 30",
            started.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_line(&started, "started", Duration::from_secs(15));
    let pid = child.id();
    let command = format!(
        "sh -c echo started > '{}'; exec sleep 30",
        started.display()
    );

    // Text: the holder line under the quorum's view.
    let out = redlock(&masters)
        .args(["status", &resource])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "held");
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("holder: "))
        .unwrap_or_else(|| panic!("no holder line:\n{text}"));
    assert!(
        line.contains(&format!("host {}, pid {pid}, since ", hostname())),
        "{line}"
    );
    assert!(line.contains(" ago), command sh -c echo started"), "{line}");

    // JSON: the same, with the start time in milliseconds.
    let json = status_json(&masters, &resource);
    assert_eq!(json["state"], "held");
    let holder = &json["holder"];
    assert_eq!(holder["host"], hostname().as_str());
    assert_eq!(holder["pid"], pid);
    // The command is cut at 64 characters, as every untrusted value shown.
    let shown = holder["command"].as_str().unwrap();
    let expected: String = command.chars().take(64).collect();
    assert!(shown.starts_with(&expected), "{shown:?} vs {command:?}");
    let since = holder["since_ms"].as_u64().unwrap();
    assert!(
        since >= before && since <= now_ms(),
        "since {since} within the run"
    );
    assert!(holder["since"].as_str().unwrap().ends_with('Z'));

    // Ended: the lock and its record are gone, and status shows no holder.
    kill(Pid::from_raw(i32::try_from(pid).unwrap()), Signal::SIGTERM).unwrap();
    let status = wait_timeout(&mut child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(143));
    let record = format!("{{{resource}}}:holder");
    for m in masters.iter() {
        assert!(!m.exists(resource.as_bytes()));
        assert!(
            !m.exists(record.as_bytes()),
            "the record went with the lock"
        );
    }
    let out = redlock(&masters)
        .args(["status", &resource])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "free");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("holder:"), "{text}");
    assert!(status_json(&masters, &resource)["holder"].is_null());
}

#[test]
fn a_record_of_another_token_is_not_shown_and_values_are_escaped() {
    let masters = Masters::start(3);
    let resource = name("holder-foreign");
    let record = format!("{{{resource}}}:holder");
    let written = "token=tok-1\nhost=evil%1B]0;PWNED%07\npid=7\nsince_ms=1765072800000\n\
                   command=rm%0A%1B[2J\n";
    for m in masters.iter() {
        m.cmd(&["SET", &resource, "tok-1", "PX", "20000"]);
        m.cmd(&["SET", &record, written, "PX", "20000"]);
    }
    let out = redlock(&masters)
        .args(["status", &resource])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(
        text.contains("host evil\\u{1b}]0;PWNED\\u{7}, pid 7, since 2025-12-07T02:00:00Z"),
        "{text}"
    );
    assert!(text.contains("command rm\\n\\u{1b}[2J"), "{text}");
    let json = status_json(&masters, &resource);
    assert_eq!(json["holder"]["host"], "evil\\u{1b}]0;PWNED\\u{7}");

    // Someone else's `SET` on the lock key (another client, an expiry and a new holder):
    // the record names a token the key no longer holds, so no holder is shown.
    for m in masters.iter() {
        m.cmd(&["SET", &resource, "tok-2", "PX", "20000"]);
    }
    let out = redlock(&masters)
        .args(["status", &resource])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "held by tok-2");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("holder:"), "no stale holder:\n{text}");
    assert!(status_json(&masters, &resource)["holder"].is_null());
}

#[test]
fn a_forced_release_removes_the_holder_record_with_the_lock() {
    let masters = Masters::start(3);
    let resource = name("holder-forced");
    let record = format!("{{{resource}}}:holder");
    for m in masters.iter() {
        m.cmd(&["SET", &resource, "tok-1", "PX", "20000"]);
        m.cmd(&[
            "SET",
            &record,
            "token=tok-1\nhost=h\npid=7\nsince_ms=1\ncommand=c\n",
            "PX",
            "20000",
        ]);
    }
    redlock(&masters)
        .args(["release", "--force", "--yes", &resource])
        .assert()
        .code(0);
    for m in masters.iter() {
        assert!(!m.exists(resource.as_bytes()));
        assert!(!m.exists(record.as_bytes()), "the record went with the key");
    }
}

#[test]
fn a_record_from_beyond_the_year_9999_is_shown_without_a_crash() {
    // A record is untrusted input: a `since_ms` past what RFC 3339 can write (here the
    // largest u64) must not crash `status` (it panicked in both text and JSON).
    let masters = Masters::start(3);
    let resource = name("holder-far-future");
    let record = format!("{{{resource}}}:holder");
    let written = format!(
        "token=tok-1\nhost=h\npid=7\nsince_ms={}\ncommand=c\n",
        u64::MAX
    );
    for m in masters.iter() {
        m.cmd(&["SET", &resource, "tok-1", "PX", "20000"]);
        m.cmd(&["SET", &record, &written, "PX", "20000"]);
    }
    let out = redlock(&masters)
        .args(["status", &resource])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "held; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "host h, pid 7, since {} ms after the Unix epoch, command c",
            u64::MAX
        )),
        "{text}"
    );
    let out = redlock(&masters)
        .args(["status", "--json", &resource])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "held; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let holder = &doc["resources"][0]["holder"];
    assert!(holder["since"].is_null(), "{holder}");
    assert_eq!(holder["since_ms"], u64::MAX, "{holder}");
    assert_eq!(holder["pid"], 7);
}

//! A lost lock of each new kind (`--shared`, `-x`, `--also`, `--permits`) is handled as a
//! plain lock's: the command's group gets `--kill-signal`, `redlock` exits 75 and its
//! `--json` report says `lost` with the kind and each master's state. The loss is made by
//! deleting every key of the name on every master. Real `redis-server` masters.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::Duration;

use support::{Masters, finish, name, spawn_exec, wait_for_line};

/// Records its start, and SIGTERM when it comes.
const CHILD: &str =
    r#"trap 'echo term >> "$F"; exit 143' TERM; echo ready >> "$F"; sleep 30 & wait"#;

/// Deletes every key whose name contains `part`, on every master.
fn delete_all_of(masters: &Masters, part: &str) {
    for m in masters.iter() {
        for key in m.keys() {
            if String::from_utf8_lossy(&key).contains(part) {
                m.cmd_bytes(&[b"DEL", &key]);
            }
        }
    }
}

#[test]
fn each_kind_of_lock_lost_while_the_command_runs_signals_it_and_exits_75() {
    let masters = Masters::start(3);
    let dir = tempfile::tempdir().unwrap();
    let other = name("loss-other");
    let cases: [(&str, Vec<&str>); 4] = [
        ("reader", vec!["--shared"]),
        ("writer", vec!["-x"]),
        ("multi", vec!["--also", &other]),
        ("permit", vec!["--permits", "2"]),
    ];
    for (kind, flags) in cases {
        let r = name(&format!("loss-{kind}"));
        let log = dir.path().join(kind);
        // The tests' node timeout is 1 s: the TTL must be above it.
        let mut args = vec!["--json", "--ttl", "3s", "-k", "2s"];
        args.extend(&flags);
        let script = format!("F='{}'; {CHILD}", log.display());
        let child = spawn_exec(&masters, &args, &r, &script);
        wait_for_line(&log, "ready", Duration::from_secs(10));
        delete_all_of(&masters, &r);
        let (code, stderr) = finish(child, Duration::from_secs(15));
        assert_eq!(code, Some(75), "{kind}: {stderr}");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("term"),
            "{kind}: the command got no SIGTERM: {text}"
        );
        assert!(stderr.contains("lost the lock"), "{kind}: {stderr}");
        let report: serde_json::Value =
            serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
        assert_eq!(report["outcome"], "lost", "{kind}: {report}");
        assert_eq!(report["kind"], kind, "{kind}: {report}");
        assert_eq!(report["exit_code"], 75, "{kind}: {report}");
        assert_eq!(
            report["masters"].as_array().unwrap().len(),
            3,
            "{kind}: {report}"
        );
        // Nothing of the lock is left behind.
        for m in masters.iter() {
            let left: Vec<String> = m
                .keys()
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .filter(|k| k.contains(&r) && !k.ends_with(":fence"))
                .collect();
            assert!(left.is_empty(), "{kind}: {left:?}");
        }
    }
}

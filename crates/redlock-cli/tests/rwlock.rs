//! `redlock exec --shared` and `-x`: the read-write lock between CLI processes. Two
//! `--shared` holders run together; `-x` waits for them and, while it waits, new `--shared`
//! holders queue behind it; a plain lock on the same name excludes both kinds and is
//! excluded by them (the writer is the plain lock's key, readers mark it as shared). Real
//! `redis-server` masters; overlap is judged from timestamps the commands write.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::Duration;

use support::{
    Masters, events, file_exists, finish, interval, max_overlap, name, recorded, redlock,
    spawn_exec, started_at_least, wait_for_events,
};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn two_shared_holders_run_together() {
    let masters = Masters::start(3);
    let r = name("rw-two-readers");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // Each holds until both have started: readers that excluded each other would run one
    // after the other, the first only after 20 s.
    let until = started_at_least(&log, 2);
    let a = spawn_exec(
        &masters,
        &["--shared", "-w", "20s"],
        &r,
        &recorded(&log, "a", &until),
    );
    let b = spawn_exec(
        &masters,
        &["--shared", "-w", "20s"],
        &r,
        &recorded(&log, "b", &until),
    );
    let (code_a, err_a) = finish(a, LIMIT);
    let (code_b, err_b) = finish(b, LIMIT);
    assert_eq!(code_a, Some(0), "{err_a}");
    assert_eq!(code_b, Some(0), "{err_b}");
    let ev = events(&log);
    assert_eq!(max_overlap(&ev), 2, "the readers did not overlap: {ev:?}");
    let (_, end_a) = interval(&ev, "a");
    let (start_b, _) = interval(&ev, "b");
    let (start_a, _) = interval(&ev, "a");
    let (_, end_b) = interval(&ev, "b");
    // Neither waited out the other's 20 s cap.
    assert!(end_a.abs_diff(start_b) < 15_000_000_000 && end_b.abs_diff(start_a) < 15_000_000_000);
    // The last reader left: no key behind.
    assert!(masters.iter().all(|m| !m.exists(r.as_bytes())));
}

#[test]
fn exclusive_waits_for_the_shared_holders_and_new_readers_queue_behind_it() {
    let masters = Masters::start(3);
    let r = name("rw-writer-waits");
    let dir = tempfile::tempdir().unwrap();
    let (log, go) = (dir.path().join("log"), dir.path().join("go"));
    let hold = file_exists(&go);
    let r1 = spawn_exec(
        &masters,
        &["--shared", "--ttl", "3s"],
        &r,
        &recorded(&log, "r1", &hold),
    );
    let r2 = spawn_exec(
        &masters,
        &["--shared", "--ttl", "3s"],
        &r,
        &recorded(&log, "r2", &hold),
    );
    wait_for_events(&log, "start", 2, LIMIT);
    let w = spawn_exec(
        &masters,
        &["-x", "-w", "25s", "--ttl", "3s"],
        &r,
        &recorded(&log, "w", "true"),
    );
    // The writer waits: it has not started, and a new reader is refused meanwhile (writer
    // preference), while the readers in keep their lock.
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        events(&log).iter().all(|e| e.tag != "w"),
        "the writer ran while readers held the lock: {:?}",
        events(&log)
    );
    redlock(&masters)
        .args(["exec", "-n", "--shared", &r, "--", "true"])
        .assert()
        .code(1);
    std::fs::write(&go, "").unwrap();
    let (c1, e1) = finish(r1, LIMIT);
    let (c2, e2) = finish(r2, LIMIT);
    let (cw, ew) = finish(w, LIMIT);
    assert_eq!(
        (c1, c2, cw),
        (Some(0), Some(0), Some(0)),
        "{e1}\n{e2}\n{ew}"
    );
    let ev = events(&log);
    let (w_start, _) = interval(&ev, "w");
    for reader in ["r1", "r2"] {
        let (_, end) = interval(&ev, reader);
        assert!(
            w_start > end,
            "the writer started before {reader} ended: {ev:?}"
        );
    }
    assert!(masters.iter().all(|m| !m.exists(r.as_bytes())));
}

#[test]
fn a_plain_lock_excludes_shared_and_exclusive_holders_and_is_excluded_by_them() {
    let masters = Masters::start(3);
    let r = name("rw-interop");
    let dir = tempfile::tempdir().unwrap();
    for (i, holder) in [&[][..], &["--shared"][..], &["-x"][..]]
        .into_iter()
        .enumerate()
    {
        let (log, go) = (
            dir.path().join(format!("log{i}")),
            dir.path().join(format!("go{i}")),
        );
        let held = spawn_exec(
            &masters,
            holder,
            &r,
            &recorded(&log, "h", &file_exists(&go)),
        );
        wait_for_events(&log, "start", 1, LIMIT);
        // Every other kind (and the same exclusive kind) is refused at once.
        let others: &[&[&str]] = match holder.first().copied() {
            None => &[&["--shared"], &["-x"], &[]],
            Some("--shared") => &[&[], &["-x"]],
            _ => &[&[], &["--shared"], &["-x"]],
        };
        for other in others {
            redlock(&masters)
                .arg("exec")
                .arg("-n")
                .args(*other)
                .args([&r, "--", "true"])
                .assert()
                .code(1);
        }
        std::fs::write(&go, "").unwrap();
        let (code, err) = finish(held, LIMIT);
        assert_eq!(code, Some(0), "{holder:?}: {err}");
        assert!(
            masters.iter().all(|m| !m.exists(r.as_bytes())),
            "{holder:?}"
        );
    }
}

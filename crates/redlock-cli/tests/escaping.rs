//! Resource names reach the terminal escaped, as the library's `Printable` shows them: no
//! escape sequence in a name is ever emitted raw. Real `redis-server` masters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{Masters, hold_elsewhere, name, redlock};

/// Bytes that must never come out raw: ESC, BEL, and a right-to-left override.
fn assert_clean(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    assert!(!bytes.contains(&0x1b), "{what} has a raw ESC: {text:?}");
    assert!(!bytes.contains(&0x07), "{what} has a raw BEL: {text:?}");
    assert!(!text.contains('\u{202E}'), "{what} has a raw RLO: {text:?}");
}

#[test]
fn escape_sequences_in_resource_names_are_shown_escaped() {
    let masters = Masters::start(3);
    let r = format!("{}\x1b]0;PWNED\x07\x1b[2J\u{202E}", name("esc"));
    hold_elsewhere(&masters, &r, 20_000);
    // A conflict message, verbose, as text and as JSON reports.
    for args in [
        &["exec", "-n", "-v", r.as_str(), "--", "true"][..],
        &["exec", "-n", "--json", r.as_str(), "--", "true"],
        &["status", r.as_str()],
        &["status", "--json", r.as_str()],
        &["release", "--force", r.as_str()],
    ] {
        let out = redlock(&masters).args(args).output().unwrap();
        assert_clean(&format!("{args:?} stdout"), &out.stdout);
        assert_clean(&format!("{args:?} stderr"), &out.stderr);
        let all = [out.stdout, out.stderr].concat();
        let text = String::from_utf8_lossy(&all);
        // Escaped as `\u{1b}` (in JSON, with its backslash escaped again).
        assert!(text.contains("u{1b}]0;PWNED"), "{args:?}: {text}");
    }
    // Acquired and released, verbose.
    support::delete_everywhere(&masters, &r);
    let out = redlock(&masters)
        .args(["exec", "-v", &r, "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_clean("exec -v stderr", &out.stderr);
    assert!(String::from_utf8_lossy(&out.stderr).contains("released `"));
}

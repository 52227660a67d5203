//! Passwords never leak, whatever characters they hold. Every printable ASCII character, in
//! the password of every kind of member URL (`redis://`, `rediss://`, `redis+unix://…?pass=`,
//! `redis+sentinel://` with both passwords), written as is and percent-encoded, stays out of
//! every channel: `ConfigError` text, `masters()`, `Debug` of the builder, the configuration
//! and the manager, the per-master outcomes of failed locks against a real server that
//! requires that password (and against a wrong one), and everything the library logs.
//!
//! The credentials of a URL are split off before anything else reads it, so a password
//! holding `/`, `?`, `#` or `@` unencoded is neither read as a path, a query, a fragment or a
//! host, nor quoted in an error.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    unreachable_pub
)]

mod support;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use support::checks::{render, settle, watchdog};
use support::diagnostics;
use support::servers::{RedisServer, ServerOptions};
use support::unique_name;
use tokio_redlock::{LockManager, LockManagerConfig};

/// The marker around every test password; its fragments must never show.
const MARK: &str = "SeCrEt";

/// The printable ASCII characters, space to `~`.
fn printable() -> impl DoubleEndedIterator<Item = char> {
    (0x20u8..=0x7e).map(char::from)
}

/// Panics if `text` shows any part of `password` (a 3-character fragment of the marker, or 8
/// characters in a row of the password).
fn assert_hidden(text: &str, password: &str, channel: &str) {
    for fragment in ["SeC", "eCr", "CrE", "rEt"] {
        assert!(
            !text.contains(fragment),
            "{channel} shows part of the password {password:?}: {text}"
        );
    }
    let chars: Vec<char> = password.chars().collect();
    for window in chars.windows(8) {
        let window: String = window.iter().collect();
        assert!(
            !text.contains(&window),
            "{channel} shows {window:?} of the password {password:?}: {text}"
        );
    }
}

/// Each kind of member URL with `password` in its password places, as written.
fn urls_with(password: &str) -> Vec<String> {
    vec![
        format!("redis://default:{password}@127.0.0.1:6379"),
        format!("redis://:{password}@127.0.0.1:6379/2"),
        format!("rediss://user:{password}@localhost:6380"),
        format!("redis+unix:///run/redis.sock?db=1&pass={password}"),
        format!("unix:///run/redis.sock?pass={password}"),
        format!("redis+sentinel://u:{password}@s1:26379,s2:26380/mymaster"),
        format!("redis+sentinel://s1:26379/mymaster?sentinel_password={password}"),
        format!(
            "rediss+sentinel://u:{password}@s1:26379/mymaster/1?sentinel_username=s&sentinel_password={password}"
        ),
    ]
}

#[test]
fn every_printable_ascii_character_in_a_password_stays_out_of_errors_masters_and_debug() {
    let mut built = 0usize;
    for c in printable() {
        let password = format!("{MARK}{c}{MARK}");
        let encoded = utf8_percent_encode(&password, NON_ALPHANUMERIC).to_string();
        for url in urls_with(&password).into_iter().chain(urls_with(&encoded)) {
            let channel = |what: &str| format!("{what} of {c:?} in a URL");
            let builder = LockManager::builder().server(url.clone());
            assert_hidden(
                &format!("{builder:?}"),
                &password,
                &channel("builder Debug"),
            );
            let mut config = LockManagerConfig::default();
            config.servers = vec![url.clone()];
            assert_hidden(&format!("{config:?}"), &password, &channel("config Debug"));
            assert_hidden(
                &format!("{config:?}"),
                &encoded,
                &channel("config Debug (encoded)"),
            );
            match builder.build() {
                Ok(manager) => {
                    built += 1;
                    let masters: Vec<&str> = manager.masters().collect();
                    assert_hidden(&masters.join(" "), &password, &channel("masters()"));
                    assert_hidden(&masters.join(" "), &encoded, &channel("masters()"));
                    assert_hidden(
                        &format!("{manager:?}"),
                        &password,
                        &channel("manager Debug"),
                    );
                }
                Err(e) => {
                    let text = format!("{e}\n{e:?}");
                    assert_hidden(&text, &password, &channel("ConfigError"));
                    assert_hidden(&text, &encoded, &channel("ConfigError"));
                }
            }
        }
    }
    // Every percent-encoded URL builds (rediss needs the `tls` feature), and so does every
    // `user:password@` form written as is.
    assert!(built >= 95 * 8, "only {built} URLs built");
}

/// The passwords the server checks: the marker around every printable ASCII character.
fn every_character() -> String {
    format!("{MARK}{}{MARK}", printable().collect::<String>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_of_every_printable_ascii_character_works_and_never_shows_in_outcomes_or_logs() {
    diagnostics::install_recording_everything();
    let password = every_character();
    let wrong = format!("{MARK}{}{MARK}", printable().rev().collect::<String>());
    let server = RedisServer::start(ServerOptions::default());
    server.cmd(&["CONFIG", "SET", "requirepass", &password]);
    let port = server.port();
    let resource = unique_name("passwords");

    // Written as is — `/`, `?`, `#`, `@`, `:` and `%` unencoded — it authenticates.
    let holder = LockManager::builder()
        .server(format!("redis://default:{password}@127.0.0.1:{port}"))
        .build()
        .unwrap();
    let mut lock = watchdog("lock as written", holder.try_lock(&resource))
        .await
        .unwrap_or_else(|e| panic!("{}", render(&e)));
    // Percent-encoded, it authenticates too: the lock is held, so this one conflicts, and
    // the conflict's outcomes name the master redacted.
    let encoded = utf8_percent_encode(&password, NON_ALPHANUMERIC).to_string();
    let other = LockManager::builder()
        .server(format!("redis://:{encoded}@127.0.0.1:{port}"))
        .retry_count(0)
        .build()
        .unwrap();
    let e = watchdog("conflict", other.try_lock(&resource))
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{}", render(&e));
    for text in [render(&e), format!("{e:?}"), format!("{other:?}")] {
        assert_hidden(&text, &password, "conflict");
        assert_hidden(&text, &encoded, "conflict");
    }
    assert_eq!(
        e.outcomes()[0].master(),
        format!("redis://:***@127.0.0.1:{port}")
    );

    // A wrong password of every character: an authentication failure, shown redacted.
    let refused = LockManager::builder()
        .server(format!("redis://default:{wrong}@127.0.0.1:{port}"))
        .build()
        .unwrap();
    let e = watchdog("wrong password", refused.try_lock(&resource))
        .await
        .unwrap_err();
    assert!(e.is_auth(), "{}", render(&e));
    for text in [render(&e), format!("{e:?}")] {
        assert_hidden(&text, &wrong, "auth failure");
        assert_hidden(&text, &password, "auth failure");
    }
    // Every level of its `source()` chain (the master's error, redis-rs's, …) too.
    let first: &(dyn std::error::Error + 'static) = &e;
    let levels: Vec<_> = std::iter::successors(Some(first), |l| l.source()).collect();
    assert!(
        levels.len() >= 3,
        "the chain reaches the client's error: {levels:?}"
    );
    for level in levels {
        for text in [level.to_string(), format!("{level:?}")] {
            assert_hidden(&text, &wrong, "a level of the error chain");
            assert_hidden(&text, &password, "a level of the error chain");
        }
    }
    settle(&refused).await;
    holder.unlock(&mut lock).await.unwrap();
    holder.close().await;
    other.close().await;
    refused.close().await;

    let events = diagnostics::all_events();
    assert!(!events.is_empty(), "the recorder saw the library's logs");
    for event in &events {
        assert_hidden(event, &password, "a log event");
        assert_hidden(event, &wrong, "a log event");
    }
}

//! Configuration: server lists (`parse_server_list`, `LockManagerBuilder::server_list`) with
//! Sentinel groups and Unix sockets, `LockManagerBuilder::from_env` (`REDLOCK_SERVERS`, run in
//! a child process so that no test mutates its own environment), `LockManagerConfig` from JSON
//! (feature `serde`: humantime durations, servers as a list or one string, unknown fields
//! refused, defaults, round trip, a manager built from it locking real masters), TLS settings
//! without a TLS member, `#insecure` fragments, bad Sentinel URLs, passwords in odd places of
//! a URL, and odd or huge inputs — every error typed, no panic, no hang, no password in any
//! message or `Debug` output.
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

use std::process::Command;
use std::time::{Duration, Instant};

use support::checks::{RELAXED, held_everywhere, ms, settle, watchdog};
use support::servers::{Masters, RedisServer, ServerOptions};
use support::unique_name;
use tokio_redlock::{ConfigError, LockManager, LockManagerBuilder, SERVERS_ENV, parse_server_list};

/// The password planted in the URLs of this file; it must never be shown.
const SECRET: &str = "hunter2-S3cret";

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The error's `Display` and `Debug`, checked free of `SECRET`.
fn shown(e: &ConfigError) -> String {
    let text = format!("{e}\n{e:?}");
    assert!(!text.contains(SECRET), "password shown: {text}");
    text
}

fn invalid_url(result: Result<impl std::fmt::Debug, ConfigError>, input: &str) -> String {
    match result {
        Err(e @ ConfigError::InvalidUrl { .. }) => shown(&e),
        other => panic!("{input}: expected ConfigError::InvalidUrl, got {other:?}"),
    }
}

#[test]
fn server_lists_split_members_and_keep_sentinel_hosts_and_sockets_whole() {
    let list = format!(
        " redis://10.0.0.1:6379 ,rediss://u:{SECRET}@10.0.0.2:6380/2,\
         redis+sentinel://:{SECRET}@s1:26379, s2:26380 ,[::1]:26381/mymaster/3?sentinel_password={SECRET},\
         redis+unix:///run/redis/a.sock?db=1&pass={SECRET},unix:///run/redis/b.sock,\
         REDIS+SENTINEL://s3/other,rediss+sentinel://s4:1,s5:2/tls-group"
    );
    assert_eq!(
        parse_server_list(&list).unwrap(),
        strings(&[
            "redis://10.0.0.1:6379",
            &format!("rediss://u:{SECRET}@10.0.0.2:6380/2"),
            &format!(
                "redis+sentinel://:{SECRET}@s1:26379,s2:26380,[::1]:26381/mymaster/3?sentinel_password={SECRET}"
            ),
            &format!("redis+unix:///run/redis/a.sock?db=1&pass={SECRET}"),
            "unix:///run/redis/b.sock",
            "REDIS+SENTINEL://s3/other",
            "rediss+sentinel://s4:1,s5:2/tls-group",
        ])
    );
    // A comma inside a Sentinel URL's credentials stays in the URL.
    assert_eq!(
        parse_server_list("redis+sentinel://u:pa,ss@s1:1/m,redis://a:1").unwrap(),
        strings(&["redis+sentinel://u:pa,ss@s1:1/m", "redis://a:1"])
    );
    // A percent-encoded comma is just text.
    assert_eq!(
        parse_server_list("redis+sentinel://s1:1/m?sentinel_password=a%2Cb,redis://a:1").unwrap(),
        strings(&[
            "redis+sentinel://s1:1/m?sentinel_password=a%2Cb",
            "redis://a:1"
        ])
    );
    for empty in ["", "   ", "\t"] {
        assert_eq!(parse_server_list(empty).unwrap(), Vec::<String>::new());
    }

    for bad in [
        format!("redis://:{SECRET}@a:1,,redis://b:2"),
        format!("redis://:{SECRET}@a:1,"),
        format!(",redis://:{SECRET}@a:1"),
        "localhost:6379".to_owned(),
        format!("redis://:{SECRET}@a:1,b:2"),
        // The host list of a Sentinel URL ends at its path: `s2:2` is not a member.
        format!("redis+sentinel://:{SECRET}@s1:1/m,s2:2"),
        format!("{SECRET}@a:1"),
    ] {
        invalid_url(parse_server_list(&bad), &bad);
        // The builder reports the same error from `build()`.
        let builder = LockManager::builder().server_list(&bad);
        assert!(!format!("{builder:?}").contains(SECRET));
        invalid_url(builder.build(), &bad);
    }
}

#[test]
fn password_fragments_never_show_in_list_or_sentinel_errors() {
    // Passwords with a character the URL syntax gives a meaning to, written unencoded: the
    // URL (or list) is refused, but no part of the password may be quoted in the error.
    // - a comma in a `?pass=`/`?sentinel_password=` value splits the list there, and the
    //   part after it is quoted as "no scheme";
    // - a `/` or `?` in a Sentinel URL's password ends its authority there, and the part
    //   before it is quoted as a "bad sentinel address".
    let lists = [
        "redis+unix:///run/r.sock?pass=hunter,2S3cretTail",
        "redis+sentinel://s1:1/m?sentinel_password=hunter,2S3cretTail",
    ];
    for bad in lists {
        let e = parse_server_list(bad).unwrap_err();
        let text = format!("{e}\n{e:?}");
        assert!(
            !text.contains("2S3cretTail"),
            "{bad}: the tail of the password is shown: {text}"
        );
    }
    // The credentials are split off first, so these build, and show no part of the password.
    let urls = [
        "redis+sentinel://admin:S3cretHead/tail@s1:26379/mymaster",
        "redis+sentinel://admin:S3cretHead?tail@s1:26379,s2:26380/mymaster",
    ];
    for url in urls {
        let manager = LockManager::builder().server(url).build().unwrap();
        let text = format!("{:?}\n{manager:?}", manager.masters().collect::<Vec<_>>());
        assert!(
            !text.contains("S3cretHead") && !text.contains("tail"),
            "{url}: the password is shown: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_list_members_lock_over_tcp_and_unix_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("list.sock");
    let tcp = Masters::start(2);
    let unix = RedisServer::start(ServerOptions::default().args(&[
        "--unixsocket",
        socket.to_str().unwrap(),
        "--unixsocketperm",
        "700",
    ]));
    let list = format!(
        "{} , redis+unix://{} ,{}",
        tcp[0].url(),
        socket.display(),
        tcp[1].url()
    );
    let manager = LockManager::builder()
        .server_list(&list)
        .node_timeout(RELAXED)
        .build()
        .unwrap();
    assert_eq!(manager.masters().count(), 3);
    assert_eq!(manager.quorum(), 2);

    let resource = unique_name("server-list");
    let mut lock = watchdog("lock", manager.lock(&resource).ttl(ms(5_000)))
        .await
        .unwrap();
    held_everywhere([&tcp[0], &tcp[1], &unix], resource.as_bytes(), lock.token()).await;
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();

    // `server_list` adds to `servers`, and a member twice is refused.
    let e = LockManager::builder()
        .server(tcp[0].url())
        .server_list(&list)
        .build()
        .unwrap_err();
    assert!(matches!(e, ConfigError::DuplicateServer(_)), "{e}");
    // The same Sentinel group with its hosts in another order is one member.
    let e = LockManager::builder()
        .server_list("redis+sentinel://s1:1,s2:2/m,redis+sentinel://s2:2,s1:1/m")
        .build()
        .unwrap_err();
    assert!(matches!(e, ConfigError::DuplicateServer(_)), "{e}");
    // Another master name (or database) behind the same sentinels is another member.
    let manager = LockManager::builder()
        .server_list("redis+sentinel://s1:1,s2:2/m,redis+sentinel://s1:1,s2:2/n,redis+sentinel://s1:1,s2:2/m/1")
        .build()
        .unwrap();
    assert_eq!(manager.quorum(), 2);
}

/// One sentinel group written twice, with its sentinels in another order, is one member
/// listed twice (`DuplicateServer`), and two groups over the same sentinels but different
/// master names or databases are distinct.
#[test]
fn the_same_sentinel_group_twice_is_a_duplicate() {
    let err = LockManager::builder()
        .server("redis+sentinel://127.0.0.1:1,127.0.0.1:2/m")
        .server("redis+sentinel://127.0.0.1:2,127.0.0.1:1/m")
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::DuplicateServer(_)), "{err}");
    assert!(
        LockManager::builder()
            .server("redis+sentinel://127.0.0.1:1,127.0.0.1:2/m")
            .server("redis+sentinel://127.0.0.1:1,127.0.0.1:2/m/1")
            .server("redis+sentinel://127.0.0.1:1,127.0.0.1:2/n")
            .build()
            .is_ok()
    );
}

/// A retry delay (plus jitter) no acquisition should sleep is refused by the builder, typed:
/// `retry_delay(Duration::MAX)` used to build, and a lock with a retry count then slept
/// forever after its first refusal.
#[test]
fn unreasonable_retry_delay_is_refused() {
    let with = |delay: Duration, jitter: Duration| {
        LockManager::builder()
            .server("redis://127.0.0.1:6379")
            .retry_delay(delay)
            .retry_jitter(jitter)
            .build()
    };
    let max = tokio_redlock::MAX_RETRY_SLEEP;
    for (delay, jitter) in [
        (Duration::MAX, Duration::ZERO),
        (Duration::ZERO, Duration::MAX),
        (Duration::MAX, Duration::MAX),
        (max, ms(1)),
        (max - ms(500), ms(501)),
    ] {
        match with(delay, jitter) {
            Err(ConfigError::RetrySleepTooLong {
                delay: d,
                jitter: j,
                max: m,
            }) => {
                assert_eq!((d, j, m), (delay, jitter, max));
            }
            other => panic!("retry delay {delay:?} ± {jitter:?}: {other:?}"),
        }
    }
    let err = with(Duration::MAX, Duration::ZERO).unwrap_err();
    assert!(err.to_string().contains("wait()"), "{err}");
    assert!(with(max, Duration::ZERO).is_ok());
    assert!(with(max - ms(500), ms(500)).is_ok());
    assert!(with(ms(200), ms(100)).is_ok());
}

// ---- from_env, in a child process -------------------------------------------------------

/// Names the `from_env` scenario a child process runs; unset in the parent.
const SCENARIO_ENV: &str = "TOKIO_REDLOCK_TEST_FROM_ENV_SCENARIO";
/// The resource the `valid` scenario locks and leaves locked for the parent to find.
const FROM_ENV_RESOURCE: &str = "config-test-from-env";
/// The name of the test that is both the parent and the child.
const FROM_ENV_TEST: &str = "from_env_reads_redlock_servers";

/// Runs this test binary again, only [`FROM_ENV_TEST`], as the child of `scenario`, with
/// `REDLOCK_SERVERS` set to `servers` (unset for `None`); returns its output. The parent's own
/// environment is never changed (`set_var` is `unsafe` in edition 2024, and `unsafe_code` is
/// forbidden).
fn run_child(scenario: &str, servers: Option<&str>) -> String {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", FROM_ENV_TEST, "--nocapture", "--test-threads=1"])
        .env(SCENARIO_ENV, scenario);
    match servers {
        Some(list) => command.env(SERVERS_ENV, list),
        None => command.env_remove(SERVERS_ENV),
    };
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child `{scenario}` failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains(&format!("from_env scenario `{scenario}` passed")),
        "the child did not run scenario `{scenario}`:\n{stdout}\n{stderr}"
    );
    stdout
}

/// The child's side: `from_env` under the environment the parent gave.
async fn from_env_child(scenario: &str) {
    let list = std::env::var(SERVERS_ENV).ok();
    match scenario {
        "unset" | "empty" | "blank" => {
            let e = LockManagerBuilder::from_env().unwrap_err();
            assert_eq!(e, ConfigError::MissingEnv(SERVERS_ENV), "{list:?}");
            assert!(e.to_string().contains(SERVERS_ENV), "{e}");
        }
        "invalid" => {
            let e = LockManagerBuilder::from_env().unwrap_err();
            invalid_url(Err::<(), _>(e), &format!("{list:?}"));
        }
        "mixed" => {
            let builder = LockManagerBuilder::from_env().unwrap();
            assert!(!format!("{builder:?}").contains(SECRET));
            let manager = builder.build().unwrap();
            let masters: Vec<&str> = manager.masters().collect();
            assert_eq!(masters.len(), 3, "{masters:?}");
            assert_eq!(manager.quorum(), 2);
            assert!(!format!("{manager:?} {masters:?}").contains(SECRET));
            assert!(masters[1].contains("s2:26380/mymaster"), "{masters:?}");
            assert!(masters[2].starts_with("unix:///"), "{masters:?}");
        }
        "valid" => {
            // The variable names the members; every other setting stays adjustable.
            let manager = LockManagerBuilder::from_env()
                .unwrap()
                .ttl(ms(30_000))
                .node_timeout(RELAXED)
                .build()
                .unwrap();
            assert_eq!(manager.quorum(), 2);
            let lock = watchdog("lock", manager.lock(FROM_ENV_RESOURCE))
                .await
                .unwrap();
            // Left locked: the parent finds this token on the masters, also on the slowest
            // one (its request finishes in the background after `lock` returned).
            settle(&manager).await;
            println!("token={}", lock.token());
            lock.keep_until_expiry();
        }
        other => panic!("unknown scenario {other}"),
    }
    println!("from_env scenario `{scenario}` passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_env_reads_redlock_servers() {
    if let Ok(scenario) = std::env::var(SCENARIO_ENV) {
        from_env_child(&scenario).await;
        return;
    }
    run_child("unset", None);
    run_child("empty", Some(""));
    run_child("blank", Some("   "));
    run_child(
        "invalid",
        Some(&format!("redis://:{SECRET}@a:1,localhost:6379")),
    );
    run_child(
        "mixed",
        Some(&format!(
            "redis://:{SECRET}@127.0.0.1:1, redis+sentinel://:{SECRET}@s1:26379,s2:26380/mymaster?sentinel_password={SECRET},unix:///tmp/none.sock?pass={SECRET}"
        )),
    );

    let masters = Masters::start(3);
    let out = run_child("valid", Some(&masters.urls().join(" , ")));
    // libtest may print the child's line right after its own "test … " text.
    let token = out
        .split_whitespace()
        .find_map(|word| word.strip_prefix("token="))
        .unwrap_or_else(|| panic!("no token in the child's output:\n{out}"));
    for s in masters.iter() {
        assert!(
            s.holds(FROM_ENV_RESOURCE.as_bytes(), token),
            "the child's lock is on {}",
            s.url()
        );
        let pttl = s.pttl(FROM_ENV_RESOURCE.as_bytes());
        assert!(
            (20_000..=30_000).contains(&pttl),
            "the child's TTL setting applies: PTTL {pttl}"
        );
    }
}

// ---- TLS settings and URL fragments -----------------------------------------------------

#[cfg(feature = "tls")]
#[test]
fn tls_settings_without_a_tls_member_are_refused() {
    let ca = support::tls::unknown_ca_pem();
    let pki = support::tls::pki();
    let plain = [
        format!("redis://:{SECRET}@127.0.0.1:1"),
        format!("redis+unix:///tmp/none.sock?pass={SECRET}"),
    ];
    let cases: Vec<(&str, LockManagerBuilder)> = vec![
        (
            "root certificate",
            LockManager::builder()
                .servers(plain.clone())
                .tls_root_certificate(ca.clone()),
        ),
        (
            "client certificate",
            LockManager::builder()
                .servers(plain.clone())
                .tls_client_certificate(
                    pki.client_cert_pem.clone().into_bytes(),
                    pki.client_key_pem.clone().into_bytes(),
                ),
        ),
        (
            "no verification",
            LockManager::builder()
                .servers(plain.clone())
                .danger_accept_invalid_certificates(true),
        ),
        (
            "sentinel over plaintext",
            LockManager::builder()
                .server("redis+sentinel://s1:26379/m")
                .tls_root_certificate(ca.clone()),
        ),
    ];
    for (what, builder) in cases {
        let e = builder.build().unwrap_err();
        assert_eq!(e, ConfigError::TlsWithoutTlsServer, "{what}");
        assert!(shown(&e).contains("rediss://"), "{what}: {e}");
    }

    // Verification left on is no TLS setting; one TLS member among plain ones suffices.
    LockManager::builder()
        .servers(plain.clone())
        .danger_accept_invalid_certificates(false)
        .build()
        .unwrap();
    for tls_member in [
        "rediss://127.0.0.1:2",
        "rediss+sentinel://s1:26379,s2:26380/m",
    ] {
        LockManager::builder()
            .servers(plain.clone())
            .server(tls_member)
            .tls_root_certificate(ca.clone())
            .build()
            .unwrap_or_else(|e| panic!("{tls_member}: {e}"));
    }
}

/// A plain Sentinel URL never speaks TLS, so TLS settings with only Sentinel (or only plain)
/// members are refused rather than silently unused; a `rediss+sentinel://` member counts as
/// a TLS member.
#[cfg(feature = "tls")]
#[test]
fn tls_settings_need_a_tls_member_sentinel_included() {
    let err = LockManager::builder()
        .server("redis+sentinel://127.0.0.1:1/m")
        .danger_accept_invalid_certificates(true)
        .build()
        .unwrap_err();
    assert_eq!(err, ConfigError::TlsWithoutTlsServer);
    assert!(
        LockManager::builder()
            .server("rediss+sentinel://127.0.0.1:1/m")
            .danger_accept_invalid_certificates(true)
            .build()
            .is_ok()
    );
}

#[cfg(not(feature = "tls"))]
#[test]
fn tls_urls_without_the_feature_name_it() {
    for url in [
        format!("rediss://:{SECRET}@127.0.0.1:1"),
        format!("rediss+sentinel://:{SECRET}@s1:26379/m"),
    ] {
        let text = invalid_url(LockManager::builder().server(url.clone()).build(), &url);
        assert!(text.contains("`tls` feature"), "{text}");
    }
}

#[test]
fn insecure_url_fragments_are_refused() {
    for url in [
        "rediss://127.0.0.1:6379/#insecure".to_owned(),
        "rediss://127.0.0.1:6379#insecure".to_owned(),
        format!("rediss://:{SECRET}@127.0.0.1:6379/0#insecure"),
        "redis://127.0.0.1:6379#insecure".to_owned(),
    ] {
        let text = invalid_url(LockManager::builder().server(url.clone()).build(), &url);
        assert!(
            text.contains("danger_accept_invalid_certificates"),
            "{url}: the message points to the builder switch: {text}"
        );
    }
}

#[test]
fn insecure_fragments_on_sentinel_urls_are_refused() {
    for url in [
        "redis+sentinel://s1:26379/mymaster#insecure".to_owned(),
        "rediss+sentinel://s1:26379,s2:26380/mymaster#insecure".to_owned(),
        format!(
            "rediss+sentinel://:{SECRET}@s1:26379/mymaster?sentinel_password={SECRET}#insecure"
        ),
    ] {
        invalid_url(LockManager::builder().server(url.clone()).build(), &url);
    }
}

#[test]
fn bad_sentinel_urls_are_typed_errors_with_passwords_redacted() {
    let cases = [
        (
            format!("redis+sentinel://u:{SECRET}@s1:26379"),
            "master name",
        ),
        (
            format!("redis+sentinel://u:{SECRET}@s1:26379/"),
            "master name",
        ),
        (
            format!("redis+sentinel://u:{SECRET}@s1:x/m"),
            "sentinel address",
        ),
        (
            format!("redis+sentinel://u:{SECRET}@s1:0/m"),
            "sentinel address",
        ),
        (
            format!("redis+sentinel://u:{SECRET}@s1:70000/m"),
            "sentinel address",
        ),
        (
            format!("redis+sentinel://u:{SECRET}@s1:1,/m"),
            "sentinel address",
        ),
        (
            format!("redis+sentinel://u:{SECRET}@s1:1,[::1/m"),
            "sentinel address",
        ),
        (format!("redis+sentinel://u:{SECRET}@s1:1/m/db"), "database"),
        (format!("redis+sentinel://u:{SECRET}@s1:1/m/-1"), "database"),
        (
            format!("redis+sentinel://u:{SECRET}@s1:1/m/1/2"),
            "path segments",
        ),
        (
            // Query names are not quoted: after an unencoded `&` in a password, the "name"
            // is the password's tail.
            format!("redis+sentinel://s1:1/m?sentinel_password={SECRET}&sentinel_pasword=typo"),
            "unknown query parameter",
        ),
        (
            format!("redis+sentinel://u:{SECRET}@s1:1/m?password={SECRET}"),
            "unknown query parameter",
        ),
        // A percent-encoded password is hidden in both forms.
        (
            "redis+sentinel://u:hunter2-S3%63ret@s1:1/m/x".to_owned(),
            "database",
        ),
    ];
    for (url, why) in &cases {
        let builder = LockManager::builder().server(url.clone());
        assert!(!format!("{builder:?}").contains(SECRET), "{builder:?}");
        assert!(!format!("{builder:?}").contains("S3%63ret"), "{builder:?}");
        let text = invalid_url(builder.build(), url);
        assert!(!text.contains("S3%63ret"), "{text}");
        assert!(
            text.contains(why),
            "{url}: the reason names the fault ({why}): {text}"
        );
        // The URL is quoted, password redacted; one whose sentinel addresses do not parse
        // (so its password cannot be told apart from them) only by its scheme.
        assert!(
            text.contains("s1") || text.contains("redis+sentinel://*** (redacted"),
            "{url}: the URL is quoted: {text}"
        );
    }

    // A good one with every credential: built, shown redacted everywhere.
    let url = format!(
        "redis+sentinel://user:{SECRET}@s1:26379,s2:26380/mymaster/2?sentinel_username=sen&sentinel_password={SECRET}"
    );
    let builder = LockManager::builder().server(url);
    assert!(!format!("{builder:?}").contains(SECRET));
    let manager = builder.build().unwrap();
    let text = format!("{manager:?} {:?}", manager.masters().collect::<Vec<_>>());
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("s2:26380/mymaster/2"), "{text}");
}

// ---- Passwords in odd places of a URL ---------------------------------------------------

/// The text of every place a member's address shows up without connecting: `masters()`,
/// the manager's and the builder's `Debug`, or the build error.
fn shown_for(url: &str) -> String {
    let builder = LockManager::builder().server(url);
    let mut out = format!("{builder:?}\n");
    match builder.build() {
        Ok(m) => {
            out.push_str(&format!("{:?}\n{m:?}\n", m.masters().collect::<Vec<_>>()));
        }
        Err(e) => out.push_str(&format!("{e}\n{e:?}\n")),
    }
    out
}

/// A Sentinel URL with several `host:port` sentinels (the normal form) whose query names the
/// parameter percent-encoded — `sentinel%5Fpassword=` — is accepted: the parser decodes
/// names, so the sentinels get the password. The redaction matches names decoded too, so the
/// password shows nowhere the address does: not in `masters()`, any `Debug`, any
/// `NodeOutcome` (hence any `LockError` text), nor the CLI's stderr
/// (`REDLOCK_SERVERS=... redlock status r`); the `master` metrics label is checked in
/// `metrics.rs`.
#[test]
fn a_percent_encoded_sentinel_password_name_is_redacted() {
    let url = "redis+sentinel://127.0.0.1:1,127.0.0.1:2/m?sentinel%5Fpassword=TOPSECRET";
    // Accepted: the password is in use.
    assert!(LockManager::builder().server(url).build().is_ok());
    let shown = shown_for(url);
    assert!(
        !shown.contains("TOPSECRET"),
        "the sentinel password shows in masters()/Debug:\n{shown}"
    );
}

/// An unencoded `@` inside the `sentinel_password` of a multi-sentinel URL is accepted
/// (form-decoding keeps it), and no part of the password shows: the address is rebuilt from
/// its parsed parts, not cut at the last `@` of the whole string — which lies inside the
/// query and would show `redis+sentinel://***@<tail of the password>` everywhere the address
/// is (and lose the sentinels and the master name).
#[test]
fn an_at_sign_in_a_sentinel_password_shows_no_part_of_it() {
    let url = "redis+sentinel://127.0.0.1:1,127.0.0.1:2/m?sentinel_password=top@SECRETTAIL";
    assert!(LockManager::builder().server(url).build().is_ok());
    let shown = shown_for(url);
    assert!(
        !shown.contains("SECRETTAIL"),
        "the tail of the sentinel password shows:\n{shown}"
    );
}

/// A `#` inside a query password (`redis+unix://…?pass=`, or the `sentinel_password` of a
/// one-sentinel URL) makes the rest a URL fragment. `build()` rightly refuses fragments, and
/// its error quotes the URL with the query value starred and the fragment — the tail of the
/// password — starred as well.
#[test]
fn a_fragment_after_a_query_password_is_not_echoed_in_the_error() {
    for url in [
        "redis+unix:///tmp/r.sock?pass=top#SECRETTAIL",
        "redis+sentinel://127.0.0.1:26379/m?sentinel_password=top#SECRETTAIL",
    ] {
        let err = LockManager::builder().server(url).build().unwrap_err();
        let shown = format!("{err}\n{err:?}");
        assert!(
            !shown.contains("SECRETTAIL"),
            "{url}: the password's tail shows in the error:\n{shown}"
        );
    }
}

/// A misspelt or differently spelt password parameter of a multi-sentinel URL
/// (`sentinel_pasword=`, `sentinelPassword=`, `sentinel_pass=`, `sentinel_pw=`) is rightly
/// refused as an unknown parameter, and the refusal does not quote its value: build errors
/// go to logs and to the CLI's stderr.
#[test]
fn a_misspelt_sentinel_password_parameter_is_not_echoed_in_the_error() {
    for param in [
        "sentinel_pasword",
        "sentinelPassword",
        "sentinel_pass",
        "sentinel_pw",
    ] {
        let url = format!("redis+sentinel://127.0.0.1:1,127.0.0.1:2/m?{param}=TOPSECRET");
        let err = LockManager::builder().server(&url).build().unwrap_err();
        let shown = format!("{err}\n{err:?}");
        assert!(
            !shown.contains("TOPSECRET"),
            "{param}: the password shows in the error:\n{shown}"
        );
    }
}

/// Passwords in the other odd places are redacted everywhere the address shows, and in the
/// `parse_server_list` error: an unencoded `/`, `?` or a doubled `@` in the user
/// information, `%`-escapes that are not UTF-8, repeated and percent-encoded `pass`
/// parameters of unix sockets, several `sentinel_password`s, a password in a one-sentinel URL
/// whose hosts do not parse.
#[test]
fn redaction_holds_for_other_odd_urls() {
    for url in [
        "redis://:pa/SECRET@127.0.0.1:6379",
        "redis://:pa?SECRET@127.0.0.1:6379",
        "redis://u:p%ZZSECRET@127.0.0.1:6379",
        "redis://u:p%FFSECRET@127.0.0.1:6379",
        "rediss://u:SECRET@127.0.0.1:6379",
        "redis+unix:///tmp/r.sock?pass=SECRET&pass=SECRET2",
        "redis+unix:///tmp/r.sock?%70ass=SECRET",
        "redis+unix:///tmp/r.sock?PASSWORD=SECRET",
        "unix:///tmp/r.sock?db=1&pass=SECRET",
        "redis+sentinel://:SECRET@[::1/m",
        "redis+sentinel://u:SECRET@s1,s2/m?sentinel_password=SECRETA&sentinel_password=SECRETB",
        "redis+sentinel://u:SE%ZZCRET@s1,s2/m",
        "redis+sentinel://u:SECRET@@s1,s2/m",
        "redis+sentinel://u:SECRET@127.0.0.1:1,127.0.0.1:2/m/3?sentinel_password=SECRETC",
        "rediss+sentinel://u:SECRET@127.0.0.1:1,[::1]:2/m",
        "REDIS+SENTINEL://u:SECRET@127.0.0.1:1,127.0.0.1:2/m?SENTINEL_PASSWORD=SECRETE",
    ] {
        let shown = shown_for(url).replace("SE%ZZCRET", "");
        assert!(!shown.contains("SECRET"), "{url}:\n{shown}");
        let list = format!("{:?}", parse_server_list(&format!("{url},,")));
        assert!(!list.contains("SECRET"), "{url}: {list}");
    }
}

// ---- Odd and huge inputs ----------------------------------------------------------------

/// Odd, hostile and huge inputs to `parse_server_list` and `build()` end quickly with a value
/// or a typed error, never a panic: IPv6 forms, empty and odd master names, non-UTF-8
/// escapes, multibyte text at scheme boundaries, 10 000 members, a Sentinel group of 10 000
/// sentinels, a 1 MB master name.
#[test]
fn odd_and_huge_inputs_neither_panic_nor_hang() {
    let started = Instant::now();
    let odd = [
        "",
        ",",
        "://",
        "redis+sentinel://",
        "redis+sentinel:///m",
        "redis+sentinel://,/m",
        "redis+sentinel://s1//",
        "redis+sentinel://s1/%FF",
        "redis+sentinel://s1/%",
        "redis+sentinel://s1/m/-1",
        "redis+sentinel://s1/m/99999999999999999999",
        "redis+sentinel://[::1]/m",
        "redis+sentinel://[::1]:0/m",
        "redis+sentinel://[::1]x/m",
        "redis+sentinel://::1/m",
        "redis+sentinel://[/m",
        "redis+sentinel://]/m",
        "redis+sentinel://s1:65536/m",
        "redis+sentinel://s 1/m",
        "redis+sentinel://s1/m?",
        "redis+sentinel://s1/m?&&",
        "redis+sentinel://s1/m?sentinel_password",
        "redis+sentinel://@/m",
        "redis+sentinel://s1/m%20name",
        "redis+sentinel://é:1,ü/ñ",
        "rediss+sentinel://s1/m",
        "redis+sentinelé://s1/m",
        "rédis+sentinel://s1/m",
        "redis+sentinel:/s1/m",
        "redis://",
        "redis://[::1",
        "redis://[::1]:6379/0",
        "redis://127.0.0.1:6379/x",
        "redis+unix://",
        "redis+unix:///",
        "unix://",
        "rediss://",
        "http://127.0.0.1:6379",
        "\u{0}redis://a:1",
        "redis://a:1\u{0}",
    ];
    for input in odd {
        let _ = parse_server_list(input);
        let _ = LockManager::builder().server(input).build();
        let _ = LockManager::builder().server_list(input).build();
    }
    let many: Vec<String> = (0..10_000)
        .map(|i| format!("redis://127.0.0.1:{}", 10_000 + i))
        .collect();
    let list = many.join(",");
    assert_eq!(parse_server_list(&list).unwrap().len(), 10_000);
    let m = LockManager::builder().server_list(&list).build().unwrap();
    assert_eq!(m.quorum(), 5_001);
    let hosts: Vec<String> = (0..10_000)
        .map(|i| format!("127.0.0.1:{}", 10_000 + i))
        .collect();
    let group = format!("redis+sentinel://{}/m", hosts.join(","));
    assert_eq!(parse_server_list(&group).unwrap().len(), 1);
    assert!(LockManager::builder().server(&group).build().is_ok());
    let long_name = format!("redis+sentinel://s1/{}", "m".repeat(1 << 20));
    assert!(LockManager::builder().server(&long_name).build().is_ok());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

// ---- LockManagerConfig from JSON (feature `serde`) ----------------------------------------

#[cfg(feature = "serde")]
mod serde_config {
    use std::time::Duration;

    use tokio_redlock::{ConfigError, LockManager, LockManagerConfig};

    use super::support::checks::{RELAXED, held_everywhere, ms, settle, watchdog};
    use super::support::servers::Masters;
    use super::support::unique_name;
    use super::{SECRET, shown, strings};

    fn from_json(json: &str) -> LockManagerConfig {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    fn json_error(json: &str) -> String {
        match serde_json::from_str::<LockManagerConfig>(json) {
            Ok(c) => panic!("{json} must be refused, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_field_with_humantime_durations() {
        let config = from_json(&format!(
            r#"{{
                "servers": ["redis://127.0.0.1:6379", "redis://:{SECRET}@127.0.0.1:6380",
                            "redis+sentinel://s1:26379,s2:26380/mymaster"],
                "ttl": "1m 30s",
                "retry_count": 5,
                "retry_delay": "250ms",
                "retry_jitter": "50ms",
                "drift_factor": 0.02,
                "node_timeout": "100ms",
                "connect_timeout": "2s",
                "key_prefix": "app:",
                "fencing": true,
                "notifications": false,
                "danger_accept_invalid_certificates": false
            }}"#
        ));
        assert_eq!(config.servers.len(), 3);
        assert_eq!(config.ttl, Duration::from_secs(90));
        assert_eq!(config.retry_count, 5);
        assert_eq!(config.retry_delay, ms(250));
        assert_eq!(config.retry_jitter, ms(50));
        assert!((config.drift_factor - 0.02).abs() < f64::EPSILON);
        assert_eq!(config.node_timeout, ms(100));
        assert_eq!(config.connect_timeout, ms(2_000));
        assert_eq!(config.key_prefix, "app:");
        assert!(config.fencing && !config.notifications);
        assert_eq!(config.tls_root_certificate, None);
        assert!(!format!("{config:?}").contains(SECRET), "{config:?}");

        let manager = config.build().unwrap();
        assert_eq!(manager.quorum(), 2);
        assert_eq!(manager.ttl(), Duration::from_secs(90));
    }

    #[test]
    fn missing_fields_take_the_builder_defaults() {
        let config = from_json(r#"{"servers": "redis://127.0.0.1:6379"}"#);
        let mut expected = LockManagerConfig::default();
        expected.servers = strings(&["redis://127.0.0.1:6379"]);
        assert_eq!(config, expected);
        assert_eq!(config.ttl, tokio_redlock::DEFAULT_TTL);
        assert_eq!(config.retry_count, tokio_redlock::DEFAULT_RETRY_COUNT);
        assert_eq!(config.retry_delay, tokio_redlock::DEFAULT_RETRY_DELAY);
        assert_eq!(config.retry_jitter, tokio_redlock::DEFAULT_RETRY_JITTER);
        assert_eq!(config.node_timeout, tokio_redlock::DEFAULT_NODE_TIMEOUT);
        assert_eq!(
            config.connect_timeout,
            tokio_redlock::DEFAULT_CONNECT_TIMEOUT
        );
        assert!(config.notifications && !config.fencing);
        assert!(config.key_prefix.is_empty());

        // No servers at all: the builder's error.
        assert_eq!(from_json("{}").build().err(), Some(ConfigError::NoServers));
    }

    #[test]
    fn servers_as_one_string_or_a_list_of_urls() {
        let one = from_json(
            r#"{"servers": "redis://a:1, redis+sentinel://s1:1,s2:2/m ,redis+unix:///r.sock"}"#,
        );
        let list = from_json(
            r#"{"servers": ["redis://a:1", "redis+sentinel://s1:1,s2:2/m", "redis+unix:///r.sock"]}"#,
        );
        for config in [one, list] {
            let manager = config.build().unwrap();
            let masters: Vec<&str> = manager.masters().collect();
            assert_eq!(masters.len(), 3, "{masters:?}");
            assert!(masters[1].contains("s1:1,s2:2/m"), "{masters:?}");
            assert!(masters[2].contains("r.sock"), "{masters:?}");
        }
        // A list entry is one URL, taken verbatim (see
        // `a_config_list_entry_is_one_url_even_with_a_comma_in_its_password`): one that does
        // not parse is the builder's typed error from `build()`, redacted.
        let bad = from_json(&format!(
            r#"{{"servers": ["redis://:{SECRET}@a:1,,redis://b:2"]}}"#
        ));
        let e = bad.build().unwrap_err();
        assert!(matches!(e, ConfigError::InvalidUrl { .. }), "{e}");
        shown(&e);
    }

    /// `LockManagerConfig.servers` is "a list of URLs or one comma-separated string": an
    /// entry of the list form is one URL, taken verbatim and never split again on commas. A
    /// URL whose password holds a literal comma (legal in user information, and accepted by
    /// `LockManagerBuilder::servers`) is therefore accepted as one list entry of a
    /// configuration file, as it is by the builder.
    #[test]
    fn a_config_list_entry_is_one_url_even_with_a_comma_in_its_password() {
        let url = "redis://:pa,ss@127.0.0.1:6379";
        assert!(LockManager::builder().server(url).build().is_ok());
        let config: LockManagerConfig =
            serde_json::from_value(serde_json::json!({ "servers": [url] })).unwrap();
        let built = config.build();
        assert!(
            built.is_ok(),
            "one list entry, one URL: {:?}",
            built.map(|m| m.quorum())
        );
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        let e = json_error(r#"{"servers": "redis://a:1", "ttll": "5s"}"#);
        assert!(e.contains("unknown field `ttll`"), "{e}");
        let e = json_error(r#"{"servers": "redis://a:1", "tls": {"insecure": true}}"#);
        assert!(e.contains("unknown field `tls`"), "{e}");
        for bad in [
            r#"{"servers": "redis://a:1", "ttl": "10 parsecs"}"#,
            r#"{"servers": "redis://a:1", "ttl": 10}"#,
            r#"{"servers": "redis://a:1", "retry_count": -1}"#,
            r#"{"servers": 6379}"#,
            r#"{"servers": "redis://a:1", "fencing": "yes"}"#,
        ] {
            json_error(bad);
        }
        // Values that parse but that the builder refuses.
        let e = from_json(r#"{"servers": "redis://a:1", "drift_factor": 1.5}"#)
            .build()
            .unwrap_err();
        assert!(matches!(e, ConfigError::DriftFactor(_)), "{e}");
        let e = from_json(r#"{"servers": "redis://a:1", "ttl": "0s"}"#)
            .build()
            .unwrap_err();
        assert!(matches!(e, ConfigError::TtlTooSmall(_)), "{e}");
    }

    /// Configuration edge cases are typed errors, and a round trip through JSON keeps the
    /// settings; `Debug` of the configuration redacts the usual password forms.
    #[test]
    fn config_edge_cases_are_typed() {
        let parse = |v: serde_json::Value| serde_json::from_value::<LockManagerConfig>(v);
        assert!(parse(serde_json::json!({"servers": "redis://a:1", "ttll": "1s"})).is_err());
        assert!(parse(serde_json::json!({"servers": null})).is_err());
        assert!(parse(serde_json::json!({"servers": [1]})).is_err());
        assert!(parse(serde_json::json!({"servers": "redis://a:1", "ttl": "10"})).is_err());
        assert!(parse(serde_json::json!({"servers": "redis://a:1", "ttl": "-1s"})).is_err());
        assert!(
            parse(serde_json::json!({"servers": "redis://a:1", "ttl": "99999999999999999999y"}))
                .is_err()
        );
        let empty = parse(serde_json::json!({})).unwrap();
        assert_eq!(empty.build().err(), Some(ConfigError::NoServers));
        let zero = parse(serde_json::json!({"servers": "redis://a:1", "ttl": "0s"})).unwrap();
        assert!(matches!(zero.build(), Err(ConfigError::TtlTooSmall(_))));
        // One string is split as REDLOCK_SERVERS is, when it is read: a bad list is refused
        // there.
        let bad_list = parse(serde_json::json!({"servers": "redis://a:1,,redis://b:2"}))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(bad_list.contains("empty entry"), "{bad_list}");
        #[cfg(feature = "tls")]
        {
            let missing = parse(serde_json::json!({
                "servers": "rediss://a:1",
                "tls_root_certificate": "/nonexistent/ca.pem"
            }))
            .unwrap();
            assert!(matches!(missing.build(), Err(ConfigError::TlsFile { .. })));
        }
        let full = parse(serde_json::json!({
            "servers": ["redis://:hunter2@a:1", "redis+sentinel://s1:1,s2:2/m?sentinel_password=sp"],
            "ttl": "1m 30s",
            "node_timeout": "200ms",
            "key_prefix": "app:",
            "fencing": true
        }))
        .unwrap();
        let again: LockManagerConfig =
            serde_json::from_str(&serde_json::to_string(&full).unwrap()).unwrap();
        assert!(again == full);
        let shown = format!("{full:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("=sp"),
            "{shown}"
        );
    }

    #[test]
    fn serialize_then_deserialize_gives_the_same_config() {
        let mut config = from_json(&format!(
            r#"{{"servers": ["redis://:{SECRET}@a:1", "redis://b:2"], "ttl": "1m 30s",
                 "retry_delay": "1s 500ms", "key_prefix": "p:", "fencing": true,
                 "tls_root_certificate": "/etc/ca.pem"}}"#
        ));
        config.retry_count = 7;
        config.notifications = false;
        let json = serde_json::to_string(&config).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        // Durations are written the humantime way.
        assert_eq!(value["ttl"], "1m 30s", "{json}");
        assert_eq!(value["retry_delay"], "1s 500ms", "{json}");
        assert_eq!(value["node_timeout"], "50ms", "{json}");
        assert_eq!(value["servers"][1], "redis://b:2", "{json}");
        let back: LockManagerConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn tls_files_in_a_config_need_a_tls_member() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        #[cfg(feature = "tls")]
        std::fs::write(&ca, super::support::tls::unknown_ca_pem()).unwrap();
        #[cfg(not(feature = "tls"))]
        std::fs::write(&ca, "not used").unwrap();
        let config = |extra: &str| {
            from_json(&format!(
                r#"{{"servers": "redis://:{SECRET}@127.0.0.1:1" {extra}}}"#
            ))
        };
        let with_root = config(&format!(
            r#", "tls_root_certificate": {}"#,
            serde_json::to_string(&ca).unwrap()
        ));
        let insecure = config(r#", "danger_accept_invalid_certificates": true"#);
        let missing = config(r#", "tls_root_certificate": "/nonexistent/ca.pem""#);
        let half = config(r#", "tls_client_certificate": "/nonexistent/client.pem""#);
        assert_eq!(
            half.build().err(),
            Some(ConfigError::TlsClientIdentityIncomplete)
        );
        #[cfg(feature = "tls")]
        {
            for c in [with_root.clone(), insecure] {
                assert_eq!(c.build().err(), Some(ConfigError::TlsWithoutTlsServer));
            }
            match missing.build() {
                Err(e @ ConfigError::TlsFile { what, .. }) => {
                    assert_eq!(what, "root certificate");
                    assert!(shown(&e).contains("/nonexistent/ca.pem"), "{e}");
                }
                other => panic!("expected TlsFile, got {other:?}"),
            }
            // With a TLS member the same file is accepted.
            let mut tls = with_root;
            tls.servers.push("rediss://127.0.0.1:2".to_owned());
            tls.build().unwrap();
        }
        #[cfg(not(feature = "tls"))]
        for c in [with_root, insecure, missing] {
            assert_eq!(c.build().err(), Some(ConfigError::TlsFeatureDisabled));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_manager_built_from_json_locks_real_masters() {
        let masters = Masters::start(3);
        let config = from_json(&format!(
            r#"{{"servers": "{}", "ttl": "5s", "node_timeout": "{}ms",
                 "key_prefix": "cfg:", "fencing": true}}"#,
            masters.urls().join(","),
            RELAXED.as_millis()
        ));
        let manager = config.build().unwrap();
        assert_eq!(manager.ttl(), ms(5_000));
        let resource = unique_name("from-json");
        let key = format!("cfg:{resource}");
        let mut lock = watchdog("lock", manager.lock(&resource)).await.unwrap();
        assert!(lock.fencing_token().is_some(), "fencing from the config");
        held_everywhere(masters.iter(), key.as_bytes(), lock.token()).await;
        for s in masters.iter() {
            let pttl = s.pttl(key.as_bytes());
            assert!(
                (4_000..=5_000).contains(&pttl),
                "the TTL from the config: {pttl}"
            );
            assert!(s.exists(format!("{{{key}}}:fence").as_bytes()));
        }
        watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
        settle(&manager).await;
        for s in masters.iter() {
            assert!(!s.exists(key.as_bytes()));
        }
    }
}

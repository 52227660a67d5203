//! Interoperability, against real masters: the key prefix reaches every name the library
//! writes (lock key, fencing counter, release channel); without a prefix our locks and those
//! of other Redlock libraries (`SET <resource> <random> NX PX <ttl>` and the standard
//! compare-and-delete release script: redsync, node-redlock, redlock-py, aioredlock,
//! rslock) exclude each other both ways, checked with raw commands and with the `rslock`
//! crate itself; and masters reached over Unix sockets (`redis+unix://`, `unix://`, with
//! `?db=` and `?pass=`) lock, extend and unlock like TCP ones, the password never shown.
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
use std::time::Duration;

use futures_util::StreamExt;
use redis::Value;
use support::checks::{RELAXED, held_everywhere, manager, millis, ms, render, settle, watchdog};
use support::servers::{Masters, RedisServer, ServerOptions};
use support::{eventually, unique_name};
use tokio_redlock::{LockManager, LockState, NodeStatus};

/// The release script of the Redlock article, as redsync, node-redlock, redlock-py,
/// aioredlock and rslock ship it.
const THEIR_RELEASE: &str = r#"if redis.call("get",KEYS[1]) == ARGV[1] then
    return redis.call("del",KEYS[1])
else
    return 0
end"#;

/// redsync's extend script: compare, then `PEXPIRE`.
const THEIR_EXTEND: &str = r#"if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("pexpire", KEYS[1], ARGV[2])
else
    return 0
end"#;

/// `SET key value NX PX ttl_ms`, as other libraries acquire: `true` when set.
fn their_set(server: &RedisServer, key: &str, value: &[u8], ttl_ms: u64) -> bool {
    let ttl = ttl_ms.to_string();
    match server.cmd_bytes(&[b"SET", key.as_bytes(), value, b"NX", b"PX", ttl.as_bytes()]) {
        Value::Okay => true,
        Value::Nil => false,
        other => panic!("unexpected SET NX PX reply {other:?}"),
    }
}

/// Runs one of their scripts; returns its integer reply.
fn their_script(server: &RedisServer, script: &str, key: &str, args: &[&[u8]]) -> i64 {
    let mut cmd: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), b"1", key.as_bytes()];
    cmd.extend_from_slice(args);
    match server.cmd_bytes(&cmd) {
        Value::Int(n) => n,
        other => panic!("unexpected script reply {other:?}"),
    }
}

fn held_by_other(s: &NodeStatus) -> bool {
    matches!(s, NodeStatus::HeldByOther { .. })
}

/// A pattern subscriber on `redlock:released:*` of one master: every release notification
/// it publishes, whatever the channel.
async fn release_listener(server: &RedisServer) -> redis::aio::PubSub {
    let client = redis::Client::open(server.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.psubscribe("redlock:released:*").await.unwrap();
    pubsub
}

/// The channels the library's waiters are subscribed to on `server`.
fn subscribed_channels(server: &RedisServer) -> Vec<String> {
    match server.cmd(&["PUBSUB", "CHANNELS", "*"]) {
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::BulkString(b) => String::from_utf8(b).unwrap(),
                other => panic!("unexpected PUBSUB CHANNELS item {other:?}"),
            })
            .collect(),
        other => panic!("unexpected PUBSUB CHANNELS reply {other:?}"),
    }
}

fn sorted_keys(server: &RedisServer) -> Vec<String> {
    let mut keys: Vec<String> = server
        .keys()
        .into_iter()
        .map(|k| String::from_utf8(k).unwrap())
        .collect();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_prefix_names_the_lock_key_the_fencing_counter_and_the_release_channel() {
    let masters = Masters::start(3);
    let prefixed = LockManager::builder()
        .servers(masters.urls())
        .node_timeout(RELAXED)
        .key_prefix("app1:")
        .fencing(true)
        .build()
        .unwrap();
    let unprefixed = manager(masters.urls(), RELAXED);
    let mut listeners = Vec::new();
    for s in masters.iter() {
        listeners.push(release_listener(s).await);
    }

    let mut lock = watchdog("lock", prefixed.lock("res").ttl(ms(10_000)))
        .await
        .unwrap();
    held_everywhere(masters.iter(), b"app1:res", lock.token()).await;
    let fencing = lock.fencing_token().expect("fencing is on").get();
    let mut agreeing = 0;
    for s in masters.iter() {
        // The lock key and the counter beside it, both prefixed; nothing under "res".
        assert_eq!(
            sorted_keys(s),
            ["app1:res", "{app1:res}:fence"],
            "keys on {}",
            s.url()
        );
        assert_eq!(s.pttl(b"{app1:res}:fence"), -1, "the counter never expires");
        let counter: u64 = String::from_utf8(s.get(b"{app1:res}:fence").unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            counter <= fencing,
            "{}: counter {counter} > {fencing}",
            s.url()
        );
        agreeing += usize::from(counter == fencing);
    }
    assert!(
        agreeing >= prefixed.quorum(),
        "a majority's counter is the token {fencing}"
    );

    // The prefix is plain byte concatenation: the unprefixed name of the same key is held,
    // the bare resource is free.
    let state = watchdog("is_locked", prefixed.is_locked("res"))
        .await
        .unwrap();
    assert!(state.is_held_by(&lock), "{state:?}");
    let state = watchdog("is_locked", unprefixed.is_locked("app1:res"))
        .await
        .unwrap();
    assert!(state.is_held_by(&lock), "{state:?}");
    let state = watchdog("is_locked", unprefixed.is_locked("res"))
        .await
        .unwrap();
    assert!(state.is_free(), "{state:?}");

    // A waiter of the same prefix subscribes to the prefixed channel.
    let waiter = LockManager::builder()
        .servers(masters.urls())
        .node_timeout(RELAXED)
        .key_prefix("app1:")
        .fencing(true)
        .build()
        .unwrap();
    let waiting = tokio::spawn({
        let waiter = waiter.clone();
        async move { waiter.lock("res").ttl(ms(5_000)).wait(ms(5_000)).await }
    });
    let subscribed = eventually(ms(3_000), || {
        masters
            .iter()
            .all(|s| subscribed_channels(s) == ["redlock:released:app1:res"])
    })
    .await;
    assert!(
        subscribed,
        "the waiter listens on redlock:released:app1:res: {:?}",
        masters.iter().map(subscribed_channels).collect::<Vec<_>>()
    );

    // Unlocking publishes on `redlock:released:app1:res` on every master.
    watchdog("unlock", prefixed.unlock(&mut lock))
        .await
        .unwrap();
    for (s, listener) in masters.iter().zip(listeners.iter_mut()) {
        let msg = watchdog("release notification", listener.on_message().next())
            .await
            .expect("subscriber stream ended");
        assert_eq!(
            msg.get_channel_name(),
            "redlock:released:app1:res",
            "on {}",
            s.url()
        );
    }
    let mut theirs = watchdog("waiter", waiting).await.unwrap().unwrap();
    let next = lock.fencing_token().unwrap().get();
    assert!(
        theirs.fencing_token().unwrap().get() > next,
        "the counter under the prefixed name keeps growing"
    );
    watchdog("unlock", waiter.unlock(&mut theirs))
        .await
        .unwrap();
    settle(&prefixed).await;
    settle(&waiter).await;
    for s in masters.iter() {
        assert!(!s.exists(b"app1:res") && !s.exists(b"res"));
        assert!(s.exists(b"{app1:res}:fence"), "the counter stays");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managers_with_different_prefixes_do_not_exclude_each_other() {
    let masters = Masters::start(3);
    let with_prefix = |prefix: &str| {
        LockManager::builder()
            .servers(masters.urls())
            .node_timeout(RELAXED)
            .key_prefix(prefix)
            .build()
            .unwrap()
    };
    let app1 = with_prefix("app1:");
    let app2 = with_prefix("app2:");
    let bare = with_prefix("");
    let app1_again = with_prefix("app1:");

    let mut a = watchdog("app1", app1.try_lock("res")).await.unwrap();
    let mut b = watchdog("app2", app2.try_lock("res")).await.unwrap();
    let mut c = watchdog("bare", bare.try_lock("res")).await.unwrap();
    held_everywhere(masters.iter(), b"app1:res", a.token()).await;
    held_everywhere(masters.iter(), b"app2:res", b.token()).await;
    held_everywhere(masters.iter(), b"res", c.token()).await;

    // The same prefix does exclude.
    let e = watchdog("app1 again", app1_again.try_lock("res"))
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{}", render(&e));

    for (m, lock) in [(&app1, &mut a), (&app2, &mut b), (&bare, &mut c)] {
        watchdog("unlock", m.unlock(lock)).await.unwrap();
    }
    for m in [&app1, &app2, &bare, &app1_again] {
        settle(m).await;
    }
    for s in masters.iter() {
        assert_eq!(s.dbsize(), 0, "{:?}", s.keys_with_pttl());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_set_nx_px_lock_excludes_ours_and_shows_as_held() {
    let masters = Masters::start(3);
    let manager = manager(masters.urls(), RELAXED);
    let resource = unique_name("foreign");
    let value = b"their-random-value-3f9a";

    // Another library holds it on a majority (masters 0 and 1).
    for s in masters.iter().take(2) {
        assert!(their_set(s, &resource, value, 10_000));
    }
    let e = watchdog("try_lock", manager.try_lock(&resource))
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{}", render(&e));
    let refused = e
        .outcomes()
        .iter()
        .filter(|o| held_by_other(o.status()))
        .count();
    assert!(refused >= 2, "{}", render(&e));
    // Our key on the third master, if granted, is cleaned up; theirs are untouched.
    settle(&manager).await;
    assert!(
        eventually(ms(2_000), || !masters[2].exists(resource.as_bytes())).await,
        "our partial grant is released"
    );
    for s in masters.iter().take(2) {
        assert_eq!(s.get(resource.as_bytes()).as_deref(), Some(&value[..]));
        assert!(s.pttl(resource.as_bytes()) > 8_000);
    }
    match watchdog("is_locked", manager.is_locked(&resource))
        .await
        .unwrap()
    {
        LockState::Held { holder, remaining } => {
            assert_eq!(holder.as_bytes(), value);
            let remaining = remaining.expect("their keys have a TTL");
            assert!(
                remaining > ms(8_000) && remaining <= ms(10_000),
                "{remaining:?}"
            );
        }
        other => panic!("their lock must show as held: {other:?}"),
    }

    // With fencing on, their lock excludes ours just the same.
    let fenced = LockManager::builder()
        .servers(masters.urls())
        .node_timeout(RELAXED)
        .fencing(true)
        .build()
        .unwrap();
    let e = watchdog("try_lock", fenced.try_lock(&resource))
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{}", render(&e));
    settle(&fenced).await;

    // Their lock on a minority only: Redlock grants ours on the other majority, and our
    // release leaves their key alone.
    let minority = unique_name("foreign-minority");
    assert!(their_set(&masters[0], &minority, value, 10_000));
    let mut ours = watchdog("try_lock", manager.try_lock(&minority))
        .await
        .unwrap();
    held_everywhere(masters.iter().skip(1), minority.as_bytes(), ours.token()).await;
    watchdog("unlock", manager.unlock(&mut ours)).await.unwrap();
    settle(&manager).await;
    assert_eq!(
        masters[0].get(minority.as_bytes()).as_deref(),
        Some(&value[..])
    );
    for s in masters.iter().skip(1) {
        assert!(!s.exists(minority.as_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_lock_excludes_theirs_and_their_scripts_work_on_it() {
    let masters = Masters::start(3);
    let manager = manager(masters.urls(), RELAXED);
    let resource = unique_name("ours");
    let key = resource.as_bytes();

    let mut lock = watchdog("lock", manager.lock(&resource).ttl(ms(10_000)))
        .await
        .unwrap();
    held_everywhere(masters.iter(), key, lock.token()).await;
    // Their acquisition finds our key on every master (SET NX answers nil), and the value
    // they would compare is our token as plain text.
    for s in masters.iter() {
        assert!(
            !their_set(s, &resource, b"their-value", 10_000),
            "{}",
            s.url()
        );
        assert_eq!(s.get(key).unwrap(), lock.token().as_bytes());
    }

    // Their extend script, given our token, extends our key; given another value, not.
    for s in masters.iter() {
        assert_eq!(
            their_script(s, THEIR_EXTEND, &resource, &[b"not-the-token", b"60000"]),
            0
        );
        assert_eq!(
            their_script(
                s,
                THEIR_EXTEND,
                &resource,
                &[lock.token().as_bytes(), b"20000"]
            ),
            1
        );
        let pttl = s.pttl(key);
        assert!((19_000..=20_000).contains(&pttl), "PTTL {pttl}");
    }

    // Their release script with another value leaves our lock alone...
    for s in masters.iter() {
        assert_eq!(
            their_script(s, THEIR_RELEASE, &resource, &[b"not-the-token"]),
            0
        );
        assert_eq!(s.get(key).unwrap(), lock.token().as_bytes());
    }
    let state = watchdog("is_locked", manager.is_locked(&resource))
        .await
        .unwrap();
    assert!(state.is_held_by(&lock), "{state:?}");

    // ...and with our token releases it.
    for s in masters.iter() {
        assert_eq!(
            their_script(s, THEIR_RELEASE, &resource, &[lock.token().as_bytes()]),
            1
        );
        assert!(!s.exists(key));
    }
    let state = watchdog("is_locked", manager.is_locked(&resource))
        .await
        .unwrap();
    assert!(state.is_free(), "{state:?}");
    let e = watchdog("unlock", manager.unlock(&mut lock))
        .await
        .unwrap_err();
    assert!(e.is_not_held(), "{}", render(&e));

    // Now they can take it, with their usual command.
    for s in masters.iter() {
        assert!(their_set(s, &resource, b"their-value", 10_000));
    }
}

/// The `rslock` crate (a Rust port of redlock-rb) beside ours on the same masters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rslock_and_tokio_redlock_exclude_each_other() {
    let masters = Masters::start(3);
    let manager = manager(masters.urls(), RELAXED);
    let mut rslock = rslock::LockManager::new(masters.urls());
    rslock.set_retry(2, ms(50));
    let resource = unique_name("rslock");
    let key = resource.as_bytes();

    // rslock holds it (20 random bytes, not text): we conflict, and see their value.
    let theirs = watchdog("rslock lock", rslock.lock(key, ms(10_000)))
        .await
        .unwrap();
    let e = watchdog("try_lock", manager.try_lock(&resource))
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{}", render(&e));
    match watchdog("is_locked", manager.is_locked(&resource))
        .await
        .unwrap()
    {
        LockState::Held { holder, .. } => assert_eq!(holder.as_bytes(), &theirs.val[..]),
        other => panic!("rslock's lock must show as held: {other:?}"),
    }
    watchdog("rslock unlock", rslock.unlock(&theirs)).await;
    settle(&manager).await;
    for s in masters.iter() {
        assert!(!s.exists(key), "rslock released on {}", s.url());
    }

    // We hold it: rslock cannot take it.
    let mut ours = watchdog("lock", manager.lock(&resource).ttl(ms(10_000)))
        .await
        .unwrap();
    held_everywhere(masters.iter(), key, ours.token()).await;
    let refused = watchdog("rslock lock", rslock.lock(key, ms(10_000))).await;
    assert!(refused.is_err(), "rslock took a lock we hold");
    for s in masters.iter() {
        assert_eq!(s.get(key).unwrap(), ours.token().as_bytes(), "{}", s.url());
    }

    // rslock's unlock, handed our token, releases our lock (same compare-and-delete).
    let ours_as_theirs = rslock::Lock {
        resource: key.to_vec(),
        val: ours.token().as_bytes().to_vec(),
        validity_time: 10_000,
        lock_manager: rslock.clone(),
    };
    watchdog("rslock unlock", rslock.unlock(&ours_as_theirs)).await;
    for s in masters.iter() {
        assert!(!s.exists(key), "released on {}", s.url());
    }
    let e = watchdog("unlock", manager.unlock(&mut ours))
        .await
        .unwrap_err();
    assert!(e.is_not_held(), "{}", render(&e));
}

/// A redis-server that also listens on `<dir>/redis.sock` (mode 700), with a password.
fn socket_server(dir: &Path, password: &str) -> (RedisServer, PathBuf) {
    let socket = dir.join("redis.sock");
    let server = RedisServer::start(ServerOptions::default().args(&[
        "--unixsocket",
        socket.to_str().unwrap(),
        "--unixsocketperm",
        "700",
        "--requirepass",
        password,
    ]));
    (server, socket)
}

/// A connection to database `db` of `server` (the helpers use database 0).
fn conn_to_db(server: &RedisServer, password: &str, db: u8) -> redis::Connection {
    let client = redis::Client::open(format!(
        "redis://:{password}@127.0.0.1:{}/{db}",
        server.port()
    ))
    .unwrap();
    client
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap()
}

/// GET in database `db` of `server`.
fn get_in_db(server: &RedisServer, password: &str, db: u8, key: &str) -> Option<String> {
    let mut conn = conn_to_db(server, password, db);
    redis::cmd("GET").arg(key).query(&mut conn).unwrap()
}

/// PTTL in database `db` of `server`.
fn pttl_in_db(server: &RedisServer, password: &str, db: u8, key: &str) -> i64 {
    let mut conn = conn_to_db(server, password, db);
    redis::cmd("PTTL").arg(key).query(&mut conn).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_masters_lock_extend_and_unlock_without_showing_the_password() {
    const SECRET: &str = "s0cket-s3cret";
    const WRONG: &str = "n0t-the-s3cret";
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut servers = Vec::new();
    let mut sockets = Vec::new();
    for dir in &dirs {
        let (server, socket) = socket_server(dir.path(), SECRET);
        servers.push(server);
        sockets.push(socket);
    }
    // Both schemes; the third member in database 2.
    let urls = [
        format!("redis+unix://{}?pass={SECRET}", sockets[0].display()),
        format!("unix://{}?pass={SECRET}", sockets[1].display()),
        format!("redis+unix://{}?db=2&pass={SECRET}", sockets[2].display()),
    ];
    let mut shown = Vec::new();
    let builder = LockManager::builder()
        .servers(urls.clone())
        .node_timeout(RELAXED);
    shown.push(format!("{builder:?}"));
    let manager = builder.build().unwrap();
    shown.push(format!("{manager:?}"));
    let masters: Vec<String> = manager.masters().map(str::to_owned).collect();
    shown.push(format!("{masters:?}"));
    for (master, socket) in masters.iter().zip(&sockets) {
        assert!(
            master.contains(socket.to_str().unwrap()),
            "{master} names its socket"
        );
    }
    assert_eq!(manager.quorum(), 2);

    let resource = unique_name("unix");
    let mut lock = watchdog("lock", manager.lock(&resource).ttl(ms(5_000)))
        .await
        .unwrap();
    let token = lock.token().to_owned();
    let on_all = eventually(ms(3_000), || {
        servers[0].holds(resource.as_bytes(), &token)
            && servers[1].holds(resource.as_bytes(), &token)
            && get_in_db(&servers[2], SECRET, 2, &resource).as_deref() == Some(token.as_str())
    })
    .await;
    assert!(on_all, "held on all three sockets (the third in db 2)");
    assert!(!servers[2].exists(resource.as_bytes()), "not in db 0");

    // Extend to 30 s: every socket's key follows (the slowest one may still be landing
    // when `extend` returns).
    let before = tokio::time::Instant::now();
    watchdog("extend", manager.extend(&mut lock, ms(30_000)))
        .await
        .unwrap();
    let pttls = || {
        [
            servers[0].pttl(resource.as_bytes()),
            servers[1].pttl(resource.as_bytes()),
            pttl_in_db(&servers[2], SECRET, 2, &resource),
        ]
    };
    let extended = eventually(ms(3_000), || {
        let slack = millis(before.elapsed()) + 500;
        pttls()
            .iter()
            .all(|pttl| *pttl > 30_000 - slack && *pttl <= 30_000)
    })
    .await;
    assert!(extended, "PTTLs {:?} after extending to 30 s", pttls());
    assert!(lock.validity() > ms(25_000));

    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    settle(&manager).await;
    assert!(!servers[0].exists(resource.as_bytes()));
    assert!(!servers[1].exists(resource.as_bytes()));
    assert_eq!(get_in_db(&servers[2], SECRET, 2, &resource), None);

    // One socket gone: the other two still make a quorum, and the failure names the
    // socket, not the password.
    servers[1].kill();
    let mut lock = watchdog("lock", manager.try_lock(&resource)).await.unwrap();
    shown.push(format!("{:?}", lock.outcomes()));
    let failed: Vec<_> = lock
        .outcomes()
        .iter()
        .filter(|o| matches!(o.status(), NodeStatus::Failed(_)))
        .collect();
    assert!(
        failed.len() <= 1 && failed.iter().all(|o| o.master() == masters[1]),
        "{failed:?}"
    );
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    // Two sockets gone: no quorum, each failure shown redacted.
    servers[2].kill();
    let e = watchdog("try_lock", manager.try_lock(&resource))
        .await
        .unwrap_err();
    assert!(e.is_unavailable(), "{}", render(&e));
    shown.push(render(&e));

    // A wrong password over a socket: an auth failure, neither password shown.
    let wrong = LockManager::builder()
        .server(format!("unix://{}?pass={WRONG}", sockets[0].display()))
        .node_timeout(RELAXED)
        .build()
        .unwrap();
    shown.push(format!("{wrong:?}"));
    let e = watchdog("try_lock", wrong.try_lock(&resource))
        .await
        .unwrap_err();
    assert!(e.is_auth(), "{}", render(&e));
    shown.push(render(&e));

    // The same socket under both schemes is one master listed twice.
    let e = LockManager::builder()
        .servers([
            format!("redis+unix://{}?pass={SECRET}", sockets[0].display()),
            format!("unix://{}?pass={SECRET}", sockets[0].display()),
        ])
        .build()
        .unwrap_err();
    assert!(
        matches!(e, tokio_redlock::ConfigError::DuplicateServer(_)),
        "{e}"
    );
    shown.push(format!("{e} / {e:?}"));
    // A bad database number quotes the URL.
    let e = LockManager::builder()
        .server(format!(
            "redis+unix://{}?db=x&pass={SECRET}",
            sockets[0].display()
        ))
        .build()
        .unwrap_err();
    assert!(
        matches!(e, tokio_redlock::ConfigError::InvalidUrl { .. }),
        "{e}"
    );
    shown.push(format!("{e} / {e:?}"));

    for text in &shown {
        assert!(
            !text.contains(SECRET) && !text.contains(WRONG),
            "password shown: {text}"
        );
    }
    settle(&manager).await;
}

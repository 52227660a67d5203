//! Self-test of the integration-test harness (`tests/support`): real Redis
//! masters can be paused, killed and restarted, and the fault proxy injects
//! exactly the faults it claims to.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod support;

use std::time::{Duration, Instant};

use redis::{AsyncConnectionConfig, RedisResult, Value, aio::MultiplexedConnection};
use support::{
    proxy::FaultProxy,
    servers::{Masters, Persistence, RedisServer, ServerOptions},
};

fn pong() -> Value {
    Value::SimpleString("PONG".into())
}

/// A multiplexed connection through `url` with an explicit response
/// timeout (the redis crate's default is only 500 ms).
async fn connect(url: &str, response_timeout: Duration) -> RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new().set_response_timeout(Some(response_timeout));
    redis::Client::open(url)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

async fn ping(conn: &mut MultiplexedConnection) -> RedisResult<Value> {
    redis::cmd("PING").query_async(conn).await
}

#[test]
fn masters_start_on_distinct_ports_and_answer() {
    let masters = Masters::start(3);
    assert_eq!(masters.len(), 3);
    let mut ports: Vec<u16> = masters.iter().map(RedisServer::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3, "ports must be distinct");
    for (server, url) in masters.iter().zip(masters.urls()) {
        assert_eq!(url, format!("redis://127.0.0.1:{}", server.port()));
        assert_eq!(server.cmd(&["PING"]), pong());
        assert_eq!(server.dbsize(), 0);
    }
    // Helpers round-trip binary data and TTLs.
    let s = &masters[0];
    assert_eq!(
        s.cmd_bytes(&[b"SET", b"k\xff", b"v\x00", b"PX", b"60000"]),
        Value::Okay
    );
    assert_eq!(s.get(b"k\xff"), Some(b"v\x00".to_vec()));
    assert!((59_000..=60_000).contains(&s.pttl(b"k\xff")));
    assert_eq!(s.pttl(b"missing"), -2);
    assert_eq!(s.keys(), vec![b"k\xff".to_vec()]);
    s.flush_scripts();
}

#[test]
fn paused_master_times_out_and_recovers_on_resume() {
    let masters = Masters::start(3);
    let client = redis::Client::open(masters[1].url()).unwrap();
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert_eq!(
        redis::cmd("PING").query::<Value>(&mut conn).unwrap(),
        pong()
    );

    masters[1].pause();
    let started = Instant::now();
    let err = redis::cmd("PING").query::<Value>(&mut conn).unwrap_err();
    assert!(err.is_timeout(), "expected a read timeout, got {err:?}");
    assert!(started.elapsed() >= Duration::from_millis(190));
    // The other masters are unaffected.
    assert_eq!(masters[0].cmd(&["PING"]), pong());
    assert_eq!(masters[2].cmd(&["PING"]), pong());

    masters[1].resume();
    assert_eq!(masters[1].cmd(&["PING"]), pong());
}

#[test]
fn aof_always_keeps_data_across_kill_and_restart() {
    let mut server = RedisServer::start(ServerOptions::persistence(Persistence::AofAlways));
    let port = server.port();
    assert_eq!(server.cmd(&["SET", "k", "v"]), Value::Okay);
    server.kill();
    assert!(!server.is_running());
    assert!(
        server.try_cmd(&["PING"]).is_err(),
        "a killed server must not answer"
    );
    server.kill(); // idempotent

    server.restart();
    assert!(server.is_running());
    assert_eq!(server.port(), port);
    assert_eq!(server.get(b"k"), Some(b"v".to_vec()));
}

#[test]
fn no_persistence_loses_data_on_restart() {
    let mut server = RedisServer::start(ServerOptions::default());
    assert_eq!(server.cmd(&["SET", "k", "v"]), Value::Okay);
    server.restart(); // kills the running server first
    assert_eq!(server.get(b"k"), None);
    assert_eq!(server.dbsize(), 0);
}

#[test]
fn requirepass_is_used_by_cmd_helpers() {
    let server = RedisServer::start(ServerOptions::default().args(&["--requirepass", "s3cret"]));
    assert_eq!(server.cmd(&["PING"]), pong());
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .unwrap();
    let err = redis::cmd("PING").query::<Value>(&mut conn).unwrap_err();
    assert_eq!(err.code(), Some("NOAUTH"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_latency_delays_each_direction() -> RedisResult<()> {
    let server = RedisServer::start(ServerOptions::default());
    let proxy = FaultProxy::start(server.addr()).await;
    assert_eq!(
        proxy.url(),
        format!("redis://127.0.0.1:{}", proxy.addr().port())
    );
    let mut conn = redis::Client::open(proxy.url())?
        .get_multiplexed_async_connection()
        .await?;
    assert_eq!(ping(&mut conn).await?, pong());
    assert_eq!(proxy.connection_count(), 1);

    proxy.set_reply_latency(Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(ping(&mut conn).await?, pong());
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );

    proxy.set_reply_latency(Duration::ZERO);
    proxy.set_request_latency(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(ping(&mut conn).await?, pong());
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );

    proxy.heal();
    let started = Instant::now();
    assert_eq!(ping(&mut conn).await?, pong());
    assert!(
        started.elapsed() < Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_drop_replies_executes_but_client_times_out() -> RedisResult<()> {
    let server = RedisServer::start(ServerOptions::default());
    let proxy = FaultProxy::start(server.addr()).await;
    let mut conn = connect(&proxy.url(), Duration::from_secs(10)).await?;
    assert_eq!(ping(&mut conn).await?, pong());

    proxy.drop_replies(true);
    let mut set = redis::cmd("SET");
    set.arg("x").arg(1);
    let outcome = tokio::time::timeout(
        Duration::from_millis(300),
        set.query_async::<Value>(&mut conn),
    )
    .await;
    assert!(
        outcome.is_err(),
        "the reply must never arrive, got {outcome:?}"
    );
    assert_eq!(
        server.get(b"x"),
        Some(b"1".to_vec()),
        "the server executed SET"
    );
    assert_eq!(proxy.connection_count(), 1, "the connection stays open");

    // Turning the fault off resets the connection that lost a reply (real
    // TCP never resumes a stream with a hole in it): the old connection
    // fails instead of handing the SET's late reply to the next request.
    proxy.drop_replies(false);
    let stale = tokio::time::timeout(Duration::from_secs(2), ping(&mut conn)).await;
    assert!(
        matches!(stale, Ok(Err(_))),
        "the old connection must be closed, got {stale:?}"
    );
    assert!(
        support::eventually(Duration::from_secs(2), || proxy.connection_count() == 0).await,
        "the connection that lost bytes is closed on both sides"
    );

    // A new connection works.
    let mut fresh = connect(&proxy.url(), Duration::from_secs(2)).await?;
    assert_eq!(ping(&mut fresh).await?, pong());
    assert_eq!(proxy.connection_count(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_heal_resets_only_connections_that_lost_replies() -> RedisResult<()> {
    let server = RedisServer::start(ServerOptions::default());
    let proxy = FaultProxy::start(server.addr()).await;
    let mut idle = connect(&proxy.url(), Duration::from_secs(10)).await?;
    let mut lossy = connect(&proxy.url(), Duration::from_secs(10)).await?;
    assert_eq!(ping(&mut idle).await?, pong());
    assert_eq!(ping(&mut lossy).await?, pong());

    proxy.drop_replies(true);
    let lost = tokio::time::timeout(Duration::from_millis(300), ping(&mut lossy)).await;
    assert!(lost.is_err(), "the reply must never arrive, got {lost:?}");

    proxy.heal();
    assert!(
        matches!(
            tokio::time::timeout(Duration::from_secs(2), ping(&mut lossy)).await,
            Ok(Err(_))
        ),
        "heal resets the connection that lost a reply"
    );
    assert_eq!(
        ping(&mut idle).await?,
        pong(),
        "a connection that lost nothing keeps working"
    );
    assert!(
        support::eventually(Duration::from_secs(2), || proxy.connection_count() == 1).await,
        "only the lossy connection is closed"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_stall_holds_bytes_then_releases_them() -> RedisResult<()> {
    let server = RedisServer::start(ServerOptions::default());
    let proxy = FaultProxy::start(server.addr()).await;
    let mut conn = connect(&proxy.url(), Duration::from_secs(10)).await?;
    assert_eq!(ping(&mut conn).await?, pong());

    proxy.stall(true);
    let mut stalled = conn.clone();
    let pending = tokio::spawn(async move {
        redis::cmd("SET")
            .arg("s")
            .arg("1")
            .query_async::<Value>(&mut stalled)
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "no reply may arrive while stalled");
    assert_eq!(server.get(b"s"), None, "the request is held, not forwarded");
    assert_eq!(proxy.connection_count(), 1);

    proxy.stall(false);
    let reply = tokio::time::timeout(Duration::from_secs(2), pending)
        .await
        .expect("released reply arrives")
        .expect("task")?;
    assert_eq!(reply, Value::Okay);
    assert_eq!(server.get(b"s"), Some(b"1".to_vec()));
    assert_eq!(ping(&mut conn).await?, pong());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_reset_all_breaks_open_connections() -> RedisResult<()> {
    let server = RedisServer::start(ServerOptions::default());
    let proxy = FaultProxy::start(server.addr()).await;
    let mut conn = connect(&proxy.url(), Duration::from_secs(2)).await?;
    assert_eq!(ping(&mut conn).await?, pong());
    assert_eq!(proxy.connection_count(), 1);

    proxy.reset_all();
    assert!(
        ping(&mut conn).await.is_err(),
        "a reset connection must fail"
    );
    assert!(
        support::eventually(Duration::from_secs(2), || proxy.connection_count() == 0).await,
        "reset connections are closed"
    );

    let mut fresh = connect(&proxy.url(), Duration::from_secs(2)).await?;
    assert_eq!(ping(&mut fresh).await?, pong());
    assert_eq!(proxy.connection_count(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_refuse_rejects_new_connections_only() -> RedisResult<()> {
    let server = RedisServer::start(ServerOptions::default());
    let proxy = FaultProxy::start(server.addr()).await;
    let mut existing = connect(&proxy.url(), Duration::from_secs(2)).await?;
    assert_eq!(ping(&mut existing).await?, pong());

    proxy.refuse(true);
    let refused = async {
        let mut conn = connect(&proxy.url(), Duration::from_secs(2)).await?;
        ping(&mut conn).await
    };
    assert!(
        refused.await.is_err(),
        "new connections must fail while refusing"
    );
    assert_eq!(
        ping(&mut existing).await?,
        pong(),
        "existing connections keep working"
    );
    assert_eq!(proxy.connection_count(), 1);

    proxy.refuse(false);
    let mut fresh = connect(&proxy.url(), Duration::from_secs(2)).await?;
    assert_eq!(ping(&mut fresh).await?, pong());
    Ok(())
}

//! Criterion micro-benchmark of one lock+unlock cycle against one local `redis-server`.
//!
//! Nothing public in tokio-redlock is meaningful without a server (`build()` only validates
//! settings), so this measures the shortest real path: `lock` + `unlock` on one master,
//! beside the same two round trips written by hand with `redis`. Kept short (a few seconds);
//! the scenario runner (`cargo run --release -p redlock-bench`) is the real benchmark.
#![allow(clippy::expect_used)] // a set-up failure aborts the benchmark with its message

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use redlock_bench::servers::RedisServer;
use tokio_redlock::LockManager;

const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

fn cycle(c: &mut Criterion) {
    let server = RedisServer::start().expect("start redis-server (is it installed?)");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let manager = LockManager::builder()
        .server(server.url())
        .ttl(Duration::from_secs(10))
        .build()
        .expect("manager");
    let client = redis::Client::open(server.url()).expect("client");
    let conn = runtime
        .block_on(client.get_multiplexed_async_connection())
        .expect("connection");
    let script = redis::Script::new(RELEASE);
    let next = AtomicU64::new(0);

    let mut group = c.benchmark_group("lock+unlock, 1 master");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("tokio-redlock", |b| {
        b.to_async(&runtime).iter(|| async {
            let resource = format!("criterion:ours:{}", next.fetch_add(1, Ordering::Relaxed));
            let mut lock = manager.lock(&resource).await.expect("lock");
            manager.unlock(&mut lock).await.expect("unlock");
        });
    });
    group.bench_function("by hand (SET NX PX + compare-and-delete)", |b| {
        b.to_async(&runtime).iter(|| async {
            let key = format!("criterion:hand:{}", next.fetch_add(1, Ordering::Relaxed));
            let token = format!("{:032x}", rand::random::<u128>());
            let mut conn = conn.clone();
            let set: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(10_000)
                .query_async(&mut conn)
                .await
                .expect("SET");
            assert!(set.is_some(), "fresh key refused");
            let deleted: i64 = script
                .key(&key)
                .arg(&token)
                .invoke_async(&mut conn)
                .await
                .expect("release");
            assert_eq!(deleted, 1);
        });
    });
    group.finish();
    runtime.block_on(manager.close());
}

criterion_group!(benches, cycle);
criterion_main!(benches);

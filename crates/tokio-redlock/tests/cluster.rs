//! A Redis Cluster as one quorum member, against real clusters (see `support::cluster`):
//! the harness itself; lock, extend, unlock, wait and fencing on keys in many slots through
//! one cluster and through three; mutual exclusion under contention; a seed list whose first
//! node is down; a slot migrated while locks are taken and released; a replica promoted.
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

use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::checks::{ms, render, settle, within};
use support::cluster::{RedisCluster, get_on_replica, role_of};
use support::eventually;
use tokio::time::Instant;
use tokio_redlock::{KeyState, LockError, LockManager, NodeError, NodeStatus};

/// A manager over `urls` (cluster members), with budgets relaxed for a loaded box.
fn manager(urls: &[String]) -> LockManager {
    LockManager::builder()
        .servers(urls.iter().cloned())
        .node_timeout(ms(300))
        .connect_timeout(ms(2_000))
        .retry_count(20)
        .retry_delay(ms(50))
        .fencing(true)
        .build()
        .expect("valid configuration")
}

/// Starts `n` independent clusters of three masters (and `replicas` replicas each) at once.
fn clusters(n: usize, replicas: usize) -> Vec<RedisCluster> {
    let handles: Vec<_> = (0..n)
        .map(|_| std::thread::spawn(move || RedisCluster::start(3, replicas)))
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        .collect()
}

/// Asserts that no key of any cluster lacks a TTL except the fencing counters (which never
/// expire, by design).
fn assert_no_lock_key_without_ttl(clusters: &[RedisCluster]) {
    for (c, cluster) in clusters.iter().enumerate() {
        for (key, pttl) in cluster.keys_with_pttl() {
            if key.ends_with(":fence") {
                continue;
            }
            assert_ne!(pttl, -1, "cluster {c}: key `{key}` has no TTL");
        }
    }
}

/// Lock, extend, re-lock and unlock `keys` through `manager`, checking each key on the
/// master that serves its slot in every cluster, and that fencing tokens grow.
async fn lock_cycle_on_every_slot(
    manager: &LockManager,
    clusters: &[RedisCluster],
    keys: &[String],
) {
    for key in keys {
        let mut lock = within(ms(10_000), "lock", manager.lock(key.as_str()))
            .await
            .unwrap_or_else(|e| panic!("lock {key}: {}", render(&e)));
        let first = lock.fencing_token().expect("fencing is on");
        // `lock` returns once a quorum granted: a slower member's request may still land.
        for cluster in clusters {
            let server = cluster.server_of(key.as_bytes());
            let fence = format!("{{{key}}}:fence");
            let landed = eventually(ms(3_000), || {
                server.holds(key.as_bytes(), lock.token())
                    && server.pttl(key.as_bytes()) > 0
                    && server.get(fence.as_bytes()).is_some()
            })
            .await;
            assert!(landed, "{key} on its slot's master, {fence} beside it");
        }
        manager
            .extend(&mut lock, Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("extend {key}: {}", render(&e)));
        for cluster in clusters {
            let server = cluster.server_of(key.as_bytes());
            let extended = eventually(ms(3_000), || server.pttl(key.as_bytes()) > 10_000).await;
            assert!(extended, "{key} extended on its slot's master");
        }
        assert!(
            manager
                .try_lock(key.as_str())
                .await
                .unwrap_err()
                .is_conflict()
        );
        let state = manager
            .is_locked(key.as_str())
            .await
            .expect("a quorum view");
        assert!(state.is_held_by(&lock), "{key}: {state:?}");
        manager
            .unlock(&mut lock)
            .await
            .unwrap_or_else(|e| panic!("unlock {key}: {}", render(&e)));
        for cluster in clusters {
            let server = cluster.server_of(key.as_bytes());
            let gone = eventually(ms(3_000), || !server.exists(key.as_bytes())).await;
            assert!(gone, "{key} released on its slot's master");
        }
        let mut again = manager.lock(key.as_str()).await.expect("free again");
        assert!(
            again.fencing_token().expect("fencing") > first,
            "{key}: tokens grow"
        );
        manager.unlock(&mut again).await.expect("unlock again");
    }
}

/// The harness, with raw redis-rs only: three masters serve every slot, each replica follows
/// its master, a key's slot names its master, and a migrated slot ends on its target.
#[test]
fn harness_forms_a_cluster_and_moves_slots() {
    let cluster = RedisCluster::start(3, 1);
    assert_eq!(cluster.nodes.len(), 6);
    assert_eq!(cluster.masters().len(), 3);
    let total: usize = cluster
        .masters()
        .iter()
        .map(|i| cluster.slots_of(*i).len())
        .sum();
    assert_eq!(total, 16_384);
    for i in cluster.masters() {
        let replica = cluster.replica_of(i).expect("one replica per master");
        assert_eq!(role_of(&cluster.nodes[replica].server), "slave");
    }
    let key = b"harness-key";
    let owner = cluster.owner_of(key);
    cluster.nodes[owner].server.cmd_bytes(&[b"SET", key, b"v"]);
    assert!(cluster.server_of(key).holds(key, b"v"));
    let slot = cluster.slot_of(key);
    let to = cluster
        .masters()
        .into_iter()
        .find(|i| *i != owner)
        .expect("another master");
    let migration = cluster.begin_migration(slot, owner, to);
    migration.finish();
    assert_eq!(cluster.owner_of(key), to);
    assert!(cluster.nodes[to].server.holds(key, b"v"));
}

/// One cluster as the only member: every operation on keys in 24 slots spread over the
/// three masters lands on the slot's master, helper keys beside the lock key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_cluster_locks_keys_in_many_slots() {
    let cluster = RedisCluster::start(3, 0);
    let keys = cluster.keys_in_many_slots("slot-key-", 24);
    let owners: std::collections::HashSet<usize> = keys
        .iter()
        .map(|k| cluster.owner_of(k.as_bytes()))
        .collect();
    assert_eq!(owners.len(), 3, "the keys cover every master");
    let manager = manager(&[cluster.url()]);
    assert_eq!(manager.quorum(), 1);
    let shown: Vec<&str> = manager.masters().collect();
    assert_eq!(shown, [cluster.url().as_str()]);
    lock_cycle_on_every_slot(&manager, std::slice::from_ref(&cluster), &keys).await;
    // `inspect` answers per member.
    let lock = manager.lock("inspected").await.expect("lock");
    let seen = manager.inspect("inspected").await.expect("inspect");
    assert_eq!(seen.len(), 1);
    assert!(
        matches!(&seen[0].state, KeyState::Held { holder, .. } if holder.is_token_of(&lock)),
        "{seen:?}"
    );
    let owner = &cluster.nodes[cluster.owner_of(b"inspected")].server;
    assert_eq!(
        seen[0].node.as_deref(),
        Some(format!("127.0.0.1:{}", owner.port()).as_str()),
        "the node that serves the key is named"
    );
    manager.unlock(&mut { lock }).await.expect("unlock");
    manager.close().await;
    settle(&manager).await;
    assert_no_lock_key_without_ttl(std::slice::from_ref(&cluster));
}

/// Three independent clusters as three members: the same cycle on every slot's master of
/// each; then one whole cluster killed, and a quorum of two still locks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clusters_make_a_quorum() {
    let mut clusters = clusters(3, 0);
    let urls: Vec<String> = clusters.iter().map(RedisCluster::url).collect();
    let manager = manager(&urls);
    assert_eq!(manager.quorum(), 2);
    let keys = clusters[0].keys_in_many_slots("three-", 12);
    lock_cycle_on_every_slot(&manager, &clusters, &keys).await;
    for node in &mut clusters[2].nodes {
        node.server.kill();
    }
    for key in &keys {
        let mut lock = manager
            .lock(key.as_str())
            .await
            .unwrap_or_else(|e| panic!("{}", render(&e)));
        match &lock.outcomes()[2].status() {
            NodeStatus::Failed(_) | NodeStatus::NotAwaited => {}
            other => panic!("a dead cluster answered: {other:?}"),
        }
        manager
            .unlock(&mut lock)
            .await
            .expect("unlock on two of three");
    }
    manager.close().await;
    settle(&manager).await;
    assert_no_lock_key_without_ttl(&clusters[..2]);
}

/// The seed list's first node is down (nothing listens there): the layout is learnt from
/// the next seeds, and locks work at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_list_whose_first_node_is_down() {
    let cluster = RedisCluster::start(3, 0);
    let dead = support::servers::free_port();
    let url = cluster.url().replacen(
        "redis+cluster://",
        &format!("redis+cluster://127.0.0.1:{dead},"),
        1,
    );
    let manager = manager(&[url]);
    let started = Instant::now();
    let mut lock = manager
        .lock("first-seed-down")
        .await
        .unwrap_or_else(|e| panic!("{}", render(&e)));
    assert!(
        started.elapsed() < ms(3_000),
        "took {:?}",
        started.elapsed()
    );
    manager.unlock(&mut lock).await.expect("unlock");
    // Every seed down: a typed failure within the connect budget, not a hang.
    let gone = format!(
        "redis+cluster://127.0.0.1:{dead},127.0.0.1:{}",
        support::servers::free_port()
    );
    let nobody = manager_with_retries(&[gone], 0);
    let started = Instant::now();
    let err = nobody.try_lock("x").await.unwrap_err();
    assert!(err.is_unavailable(), "{}", render(&err));
    assert!(
        started.elapsed() < ms(4_000),
        "took {:?}",
        started.elapsed()
    );
    match err.outcomes()[0].status() {
        NodeStatus::Failed(NodeError::Cluster(text)) => {
            assert!(text.contains("CLUSTER SLOTS"), "{text}")
        }
        other => panic!("{other:?}"),
    }
    manager.close().await;
    nobody.close().await;
}

fn manager_with_retries(urls: &[String], retries: u32) -> LockManager {
    LockManager::builder()
        .servers(urls.iter().cloned())
        .node_timeout(ms(300))
        .connect_timeout(ms(1_000))
        .retry_count(retries)
        .build()
        .expect("valid configuration")
}

/// A key whose helper keys cannot share its slot (a `}` without a hash tag) fails at once
/// with a typed error naming both slots, on a cluster member; nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_across_slots_fail_at_once_with_the_slots() {
    let cluster = RedisCluster::start(3, 0);
    let manager = manager(&[cluster.url()]);
    let err = manager.lock("a}b").await.unwrap_err();
    assert!(
        err.is_cross_slot() && err.is_invalid_input(),
        "{}",
        render(&err)
    );
    let LockError::CrossSlot { slots } = &err else {
        unreachable!()
    };
    assert_eq!(slots.len(), 2);
    assert_eq!(slots[0].1, cluster.slot_of(b"a}b"));
    assert_eq!(slots[1].1, cluster.slot_of(b"{a}b}:fence"));
    assert!(
        err.to_string().contains(&format!("slot {}", slots[0].1)),
        "{err}"
    );
    // With a hash tag the same name is fine.
    let mut lock = manager.lock("{a}b").await.expect("a tagged key");
    manager.unlock(&mut lock).await.expect("unlock");
    manager.close().await;
}

/// A recorded critical section.
#[derive(Clone, Copy, Debug)]
struct Section {
    resource: usize,
    entered: Instant,
    left: Instant,
    fence: u64,
}

/// No two sections of one resource overlap, and fencing tokens grow in entry order.
fn assert_no_overlap(sections: &[Section], resources: usize) {
    for r in 0..resources {
        let mut held: Vec<&Section> = sections.iter().filter(|s| s.resource == r).collect();
        held.sort_by_key(|s| s.entered);
        for pair in held.windows(2) {
            assert!(
                pair[1].entered >= pair[0].left,
                "resource {r}: overlap {:?} / {:?}",
                pair[0],
                pair[1]
            );
            assert!(
                pair[1].fence > pair[0].fence,
                "resource {r}: tokens {:?} / {:?}",
                pair[0],
                pair[1]
            );
        }
    }
}

/// `tasks` tasks contend for `resources` resources (in different slots) through `urls` for
/// `run`: every section is recorded while the lock is valid, and none overlap.
async fn contend(
    urls: &[String],
    resources: &[String],
    tasks: usize,
    run: Duration,
) -> Vec<Section> {
    let manager = manager(urls);
    let sections = Arc::new(Mutex::new(Vec::new()));
    let until = Instant::now() + run;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (manager, sections, resources) =
            (manager.clone(), Arc::clone(&sections), resources.to_vec());
        handles.push(tokio::spawn(async move {
            let mut n = t;
            while Instant::now() < until {
                let r = n % resources.len();
                n += 1;
                let Ok(mut lock) = manager
                    .lock(resources[r].as_str())
                    .ttl(ms(2_000))
                    .wait(ms(1_500))
                    .await
                else {
                    continue;
                };
                let entered = Instant::now();
                tokio::time::sleep(ms(2)).await;
                let left = Instant::now();
                assert!(left < lock.deadline(), "the section ended within validity");
                let fence = lock.fencing_token().expect("fencing").get();
                sections.lock().unwrap().push(Section {
                    resource: r,
                    entered,
                    left,
                    fence,
                });
                let _ = manager.unlock(&mut lock).await;
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    manager.close().await;
    settle(&manager).await;
    Arc::try_unwrap(sections).unwrap().into_inner().unwrap()
}

/// Mutual exclusion under contention, through one cluster and through three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contention_never_overlaps() {
    let all = clusters(3, 0);
    let resources = all[0].keys_in_many_slots("contended-", 3);
    let one = contend(&[all[0].url()], &resources, 12, ms(3_000)).await;
    assert!(one.len() > 30, "{} sections", one.len());
    assert_no_overlap(&one, resources.len());
    let urls: Vec<String> = all.iter().map(RedisCluster::url).collect();
    let three = contend(&urls, &resources, 12, ms(3_000)).await;
    assert!(three.len() > 30, "{} sections", three.len());
    assert_no_overlap(&three, resources.len());
    println!(
        "sections: one cluster {}, three clusters {}",
        one.len(),
        three.len()
    );
    assert_no_lock_key_without_ttl(&all);
}

/// A waiter wakes on the holder's release through sharded pub/sub: the release script
/// publishes with `SPUBLISH` on the key's hash-tagged channel, the waiter's manager has
/// subscribed (`SSUBSCRIBE`) on the master serving that slot, and the hand-off takes far
/// less than the 5 s retry delay and the 30 s TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_wakes_on_a_sharded_release() {
    let cluster = RedisCluster::start(3, 0);
    let slow = || {
        LockManager::builder()
            .server(cluster.url())
            .ttl(Duration::from_secs(30))
            .node_timeout(ms(300))
            .connect_timeout(ms(2_000))
            .retry_delay(Duration::from_secs(5))
            .retry_jitter(ms(0))
            .build()
            .expect("valid configuration")
    };
    let (holder, waiter) = (slow(), slow());
    for key in cluster.keys_in_many_slots("handoff-", 3) {
        let owner = &cluster.nodes[cluster.owner_of(key.as_bytes())].server;
        let channel = tokio_redlock::sharded_release_channel(key.as_bytes());
        let mut lock = holder.lock(key.as_str()).await.expect("lock");
        let wait = {
            let (waiter, key) = (waiter.clone(), key.clone());
            tokio::spawn(async move {
                waiter
                    .lock(key.as_str())
                    .wait(Duration::from_secs(20))
                    .await
            })
        };
        // The waiter's subscription is on the slot's master.
        let subscribed = eventually(ms(5_000), || {
            matches!(
                owner.cmd_bytes(&[b"PUBSUB", b"SHARDNUMSUB", &channel]),
                redis::Value::Array(ref items) if items.get(1) == Some(&redis::Value::Int(1))
            )
        })
        .await;
        assert!(subscribed, "{key}: SSUBSCRIBE on the slot's master");
        tokio::time::sleep(ms(200)).await;
        let released = Instant::now();
        holder.unlock(&mut lock).await.expect("unlock");
        let mut taken = within(ms(10_000), "waiter", wait)
            .await
            .expect("task")
            .expect("lock");
        let handoff = released.elapsed();
        assert!(handoff < ms(2_500), "{key}: hand-off took {handoff:?}");
        waiter.unlock(&mut taken).await.expect("unlock");
        assert!(
            owner.command_calls("spublish") > 0,
            "the release published with SPUBLISH"
        );
    }
    for node in &cluster.nodes {
        assert_eq!(
            node.server.command_calls("publish"),
            0,
            "no cluster-wide PUBLISH"
        );
    }
    holder.close().await;
    waiter.close().await;
    settle(&waiter).await;
    assert_eq!(waiter.background_tasks(), 0);
}

/// Contention on resources of one slot while that slot is migrated key by key to another
/// master (`SETSLOT … IMPORTING/MIGRATING`, `MIGRATE`, `SETSLOT … NODE`) and back: no two
/// sections overlap, fencing tokens keep growing, every release lands (no lock key is left
/// once the tasks are done, long before its TTL), and no key is left without a TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_migrating_while_locks_are_taken_and_released() {
    let cluster = Arc::new(RedisCluster::start(3, 0));
    let resources: Vec<String> = (0..4).map(|i| format!("{{migrating}}:r{i}")).collect();
    let slot = cluster.slot_of(resources[0].as_bytes());
    let source = cluster.owner_of_slot(slot);
    let target = cluster
        .masters()
        .into_iter()
        .find(|i| *i != source)
        .expect("another master");
    let manager = LockManager::builder()
        .server(cluster.url())
        .ttl(Duration::from_secs(10))
        .node_timeout(ms(300))
        .connect_timeout(ms(2_000))
        .retry_delay(ms(20))
        .fencing(true)
        .build()
        .expect("valid configuration");
    let sections = Arc::new(Mutex::new(Vec::new()));
    let unlock_errors = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (manager, sections, unlock_errors, stop, resources) = (
            manager.clone(),
            Arc::clone(&sections),
            Arc::clone(&unlock_errors),
            Arc::clone(&stop),
            resources.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = t;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = n % resources.len();
                n += 1;
                let Ok(mut lock) = manager.lock(resources[r].as_str()).wait(ms(2_000)).await else {
                    continue;
                };
                let entered = Instant::now();
                tokio::time::sleep(ms(3)).await;
                let left = Instant::now();
                assert!(left < lock.deadline());
                let fence = lock.fencing_token().expect("fencing").get();
                sections.lock().unwrap().push(Section {
                    resource: r,
                    entered,
                    left,
                    fence,
                });
                if let Err(e) = manager.unlock(&mut lock).await {
                    unlock_errors.lock().unwrap().push(render(&e));
                }
            }
        }));
    }
    let mover = {
        let cluster = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || {
            for (from, to) in [(source, target), (target, source)] {
                std::thread::sleep(Duration::from_millis(500));
                let migration = cluster.begin_migration(slot, from, to);
                // One key at a time, with pauses: requests meet every state (ASK, TRYAGAIN).
                for _ in 0..20 {
                    migration.migrate_keys(1);
                    std::thread::sleep(Duration::from_millis(25));
                }
                migration.finish();
                assert_eq!(cluster.owner_of_slot(slot), to);
            }
        })
    };
    within(ms(60_000), "migrations", mover)
        .await
        .expect("mover");
    let asked: u64 = [source, target]
        .iter()
        .map(|i| cluster.nodes[*i].server.command_calls("asking"))
        .sum();
    assert!(
        asked > 0,
        "requests were redirected with ASK during the migration"
    );
    tokio::time::sleep(ms(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in tasks {
        within(ms(30_000), "a task", task).await.expect("task");
    }
    let sections = Arc::try_unwrap(sections).unwrap().into_inner().unwrap();
    assert!(sections.len() > 40, "{} sections", sections.len());
    assert_no_overlap(&sections, resources.len());
    let errors = unlock_errors.lock().unwrap().clone();
    assert!(
        errors.iter().all(|e| !e.contains("NotHeld")),
        "an unlock found its lock gone: {errors:?}"
    );
    manager.close().await;
    settle(&manager).await;
    // Every release landed: no lock key is left (their TTL is 10 s).
    for i in [source, target] {
        let left: Vec<_> = cluster.nodes[i]
            .server
            .keys_with_pttl()
            .into_iter()
            .filter(|(k, _)| !k.ends_with(":fence"))
            .collect();
        assert!(left.is_empty(), "lock keys left on node {i}: {left:?}");
    }
    assert_no_lock_key_without_ttl(std::slice::from_ref(&*cluster));
    println!(
        "{} sections, {} unlock errors during migration",
        sections.len(),
        errors.len()
    );
}

/// A manual failover (`CLUSTER FAILOVER`) of the master serving a lock's slot: the lock
/// taken before it is released on the promoted replica (the old master, now a replica,
/// redirects with `MOVED`); locks keep being granted with growing fencing tokens; then the
/// new master is killed, its replica (the old master) takes over, and locking resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_promoted_by_cluster_failover_and_a_master_killed() {
    let mut cluster = RedisCluster::start(3, 1);
    let manager = manager(&[cluster.url()]);
    let key = "failover-key";
    let master = cluster.owner_of(key.as_bytes());
    let replica = cluster.replica_of(master).expect("a replica");
    // A TTL that outlasts the failover, which Redis may abandon and the harness then asks
    // for again (seconds): the release after it must find the lock still held.
    let mut before = manager.lock(key).ttl(ms(60_000)).await.expect("lock");
    let first = before.fencing_token().expect("fencing");
    // Wait until the replica has the key (replication is asynchronous).
    assert!(
        eventually(ms(5_000), || get_on_replica(
            &cluster.nodes[replica].server,
            key.as_bytes()
        )
        .is_some())
        .await,
        "the replica has the lock key"
    );
    cluster.failover(replica);
    assert_eq!(cluster.owner_of(key.as_bytes()), replica);
    manager
        .unlock(&mut before)
        .await
        .unwrap_or_else(|e| panic!("{}", render(&e)));
    assert!(
        !cluster.nodes[replica].server.exists(key.as_bytes()),
        "released on the new master"
    );
    let mut after = manager
        .lock(key)
        .await
        .unwrap_or_else(|e| panic!("{}", render(&e)));
    assert!(after.fencing_token().expect("fencing") > first);
    manager.unlock(&mut after).await.expect("unlock");
    // Replication is asynchronous: the release must have reached the replica before its
    // master dies, or the promoted replica would still hold that lock for its TTL (one
    // member's amnesia, which this test is not about).
    assert!(
        eventually(ms(5_000), || get_on_replica(
            &cluster.nodes[master].server,
            key.as_bytes()
        )
        .is_none())
        .await,
        "the release reached the replica"
    );
    // Kill the new master: its replica (the old master) is promoted by the cluster.
    cluster.nodes[replica].server.kill();
    cluster.wait_master(master, Duration::from_secs(30));
    let started = Instant::now();
    let mut again = loop {
        match manager.lock(key).await {
            Ok(lock) => break lock,
            Err(e) if started.elapsed() < ms(10_000) => {
                assert!(e.is_unavailable(), "{}", render(&e));
                tokio::time::sleep(ms(100)).await;
            }
            Err(e) => panic!("no lock after the failover: {}", render(&e)),
        }
    };
    manager.unlock(&mut again).await.expect("unlock");
    manager.close().await;
    settle(&manager).await;
}

/// A cluster with a password: locks work with it; a wrong one fails as `Auth` at once
/// (not a timeout, not a retry), and the password shows nowhere — not in the member's
/// address, the error, its `Debug`, or any log line. One cluster alone is allowed, with a
/// warning that names the failover caveat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_stay_hidden_and_one_cluster_alone_is_warned_about() {
    support::diagnostics::install_recording_everything();
    let secret = "Clu5terS3cret";
    let cluster = RedisCluster::start_with_password(3, 0, secret);
    let url = cluster.url().replacen(
        "redis+cluster://",
        &format!("redis+cluster://:{secret}@"),
        1,
    );
    let manager = manager(std::slice::from_ref(&url));
    let shown: Vec<&str> = manager.masters().collect();
    assert_eq!(shown, [url.replace(secret, "***").as_str()]);
    let mut lock = manager
        .lock("with-password")
        .await
        .unwrap_or_else(|e| panic!("{}", render(&e)));
    manager.unlock(&mut lock).await.expect("unlock");
    let warned = support::diagnostics::warnings_about("only member");
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("failover"), "{warned:?}");
    let wrong = url.replace(secret, "Wr0ngPa55");
    let refused = manager_with_retries(std::slice::from_ref(&wrong), 3);
    let started = Instant::now();
    let err = refused.lock("with-password").await.unwrap_err();
    assert!(
        started.elapsed() < ms(4_000),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.is_auth(), "{}", render(&err));
    for text in [
        render(&err),
        format!("{refused:?}"),
        support::diagnostics::all_events().join("\n"),
    ] {
        assert!(
            !text.contains(secret) && !text.contains("Wr0ngPa55"),
            "{text}"
        );
    }
    manager.close().await;
    refused.close().await;
}

/// Several resources, a semaphore and a read-write lock on a cluster member: each runs as
/// one script on the master of its slot (the semaphore's and the read-write lock's helper
/// keys share the name's slot; several resources share a hash tag), a lock of resources in
/// different slots fails at once with `CrossSlot` (nothing set), a waiter of several
/// resources wakes on the sharded release, no cluster-wide `PUBLISH` is sent, and no key
/// is left without a TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_resources_semaphores_and_read_write_locks_route_by_slot() {
    let cluster = RedisCluster::start(3, 0);
    let m = manager(&[cluster.url()]);
    let pair = ["{orders}:1", "{orders}:2"];
    let mut both = m
        .lock_all(pair)
        .await
        .unwrap_or_else(|e| panic!("{}", render(&e)));
    let owner = cluster.server_of(b"{orders}:1");
    assert!(
        pair.iter().all(|k| owner.exists(k.as_bytes())),
        "both keys on the slot's master"
    );

    // Resources in two slots: refused before any request.
    let spread = cluster.keys_in_many_slots("spread-", 2);
    let err = m
        .lock_all([spread[0].as_str(), spread[1].as_str()])
        .await
        .unwrap_err();
    assert!(
        err.is_cross_slot() && err.is_invalid_input(),
        "{}",
        render(&err)
    );
    for k in &spread {
        assert!(
            !cluster.server_of(k.as_bytes()).exists(k.as_bytes()),
            "{k} was set"
        );
    }

    // A waiter of both resources wakes on the sharded release.
    let waiter = LockManager::builder()
        .server(cluster.url())
        .node_timeout(ms(300))
        .connect_timeout(ms(2_000))
        .retry_delay(Duration::from_secs(5))
        .retry_jitter(ms(0))
        .build()
        .expect("valid configuration");
    let wait = {
        let waiter = waiter.clone();
        tokio::spawn(async move { waiter.lock_all(pair).wait(Duration::from_secs(20)).await })
    };
    let channel = tokio_redlock::sharded_release_channel(b"{orders}:1");
    let subscribed = eventually(ms(5_000), || {
        matches!(
            owner.cmd_bytes(&[b"PUBSUB", b"SHARDNUMSUB", &channel]),
            redis::Value::Array(ref items) if items.get(1) == Some(&redis::Value::Int(1))
        )
    })
    .await;
    assert!(subscribed, "SSUBSCRIBE on the slot's master");
    tokio::time::sleep(ms(200)).await;
    let released = Instant::now();
    m.unlock(&mut both).await.expect("unlock");
    let mut taken = within(ms(10_000), "waiter", wait)
        .await
        .expect("task")
        .unwrap_or_else(|e| panic!("{}", render(&e)));
    let handoff = released.elapsed();
    assert!(handoff < ms(2_500), "hand-off took {handoff:?}");
    waiter.unlock(&mut taken).await.expect("unlock");
    assert!(
        owner.command_calls("spublish") > 0,
        "released with SPUBLISH"
    );

    // A semaphore of two permits: its slot keys live on the name's master.
    let semaphore = m.semaphore("jobs", 2);
    let mut p1 = semaphore
        .lock()
        .await
        .unwrap_or_else(|e| panic!("{}", render(&e)));
    let mut p2 = semaphore
        .lock()
        .await
        .unwrap_or_else(|e| panic!("{}", render(&e)));
    let third = semaphore.try_lock().await.unwrap_err();
    assert!(third.is_conflict(), "{}", render(&third));
    let jobs = cluster.owner_of(b"jobs");
    let slots_here = cluster
        .keys_with_pttl()
        .into_iter()
        .filter(|(k, _)| k.starts_with("{jobs}:permit:"))
        .all(|(k, _)| cluster.owner_of(k.as_bytes()) == jobs);
    assert!(slots_here, "every slot key in the name's slot");
    // `inspect_permits` reads them on that master.
    let seen = m.inspect_permits("jobs").await.expect("inspect_permits");
    let slots = seen[0].state.as_ref().expect("read on the name's master");
    assert_eq!(slots.permits, Some(2), "{seen:?}");
    assert_eq!(slots.held.len(), 2, "{seen:?}");
    assert!(seen[0].node.is_some(), "{seen:?}");
    m.unlock(&mut p1).await.expect("unlock");
    m.unlock(&mut p2).await.expect("unlock");

    // Readers share, a writer waits for them.
    let mut r1 = m
        .read_lock("doc")
        .await
        .unwrap_or_else(|e| panic!("{}", render(&e)));
    let mut r2 = m
        .read_lock("doc")
        .await
        .unwrap_or_else(|e| panic!("{}", render(&e)));
    let state = m.is_locked("doc").await.expect("is_locked");
    assert!(state.is_shared(), "{state:?}");
    let refused = m.write_lock("doc").retry_count(0).await.unwrap_err();
    assert!(refused.is_conflict(), "{}", render(&refused));
    m.unlock(&mut r1).await.expect("unlock");
    m.unlock(&mut r2).await.expect("unlock");
    let mut writer = m
        .write_lock("doc")
        .await
        .unwrap_or_else(|e| panic!("{}", render(&e)));
    m.unlock(&mut writer).await.expect("unlock");

    for node in &cluster.nodes {
        assert_eq!(
            node.server.command_calls("publish"),
            0,
            "no cluster-wide PUBLISH"
        );
    }
    m.close().await;
    waiter.close().await;
    settle(&m).await;
    settle(&waiter).await;
    assert_no_lock_key_without_ttl(std::slice::from_ref(&cluster));
}

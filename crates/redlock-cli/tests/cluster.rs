//! Redis Cluster members on the command line: `-s`/`REDLOCK_SERVERS` take
//! `redis+cluster://` URLs (a comma-separated list keeps each cluster's seeds together),
//! `exec` runs under a lock on three clusters, `status` names the node that served the key,
//! and one cluster alone is warned about. Real clusters of `redis-server` processes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use predicates::prelude::*;
use support::cluster::RedisCluster;
use support::{RELAXED_NODE_TIMEOUT, name, redlock_bare};

fn three_clusters() -> Vec<RedisCluster> {
    let handles: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(|| RedisCluster::start(3, 0)))
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        .collect()
}

/// `exec` under a lock on three clusters named in `REDLOCK_SERVERS`: the command runs with
/// its token and fencing token, the key sits on each cluster's slot master while it runs,
/// and is gone after; `status` then shows each member with the node that served the key.
#[test]
fn exec_and_status_through_three_clusters() {
    let clusters = three_clusters();
    let list: Vec<String> = clusters.iter().map(RedisCluster::url).collect();
    let resource = name("cli-cluster");
    let out = redlock_bare()
        .env("REDLOCK_SERVERS", list.join(","))
        .args([
            "--node-timeout",
            RELAXED_NODE_TIMEOUT,
            "exec",
            "--fencing",
            &resource,
        ])
        .args([
            "-c",
            "echo token=$REDLOCK_TOKEN fence=$REDLOCK_FENCING_TOKEN",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("only one").not())
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("token=") && out.contains("fence=1"), "{out}");
    for cluster in &clusters {
        assert!(
            !cluster
                .server_of(resource.as_bytes())
                .exists(resource.as_bytes())
        );
    }
    // Held by someone: status names, per member, the node that answered.
    for cluster in &clusters {
        cluster.server_of(resource.as_bytes()).cmd(&[
            "SET",
            &resource,
            "someone-else",
            "PX",
            "20000",
        ]);
    }
    let mut status = redlock_bare();
    for url in &list {
        status.args(["-s", url]);
    }
    let out = status
        .args(["--node-timeout", RELAXED_NODE_TIMEOUT, "status", &resource])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    for cluster in &clusters {
        let port = cluster.server_of(resource.as_bytes()).port();
        assert!(out.contains(&format!("(node 127.0.0.1:{port})")), "{out}");
    }
}

/// One cluster alone: allowed, with one warning about the failover caveat (not the plain
/// "only one master" one).
#[test]
fn one_cluster_alone_runs_with_a_warning() {
    let cluster = RedisCluster::start(3, 0);
    redlock_bare()
        .args(["-s", &cluster.url(), "--node-timeout", RELAXED_NODE_TIMEOUT])
        .args(["exec", &name("alone"), "--", "true"])
        .assert()
        .success()
        .stderr(predicate::str::contains("only one member, a Redis Cluster"))
        .stderr(predicate::str::contains("failover"))
        .stderr(predicate::str::contains("only one master").not());
}

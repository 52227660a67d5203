//! A real Redis Cluster for integration tests: `masters` masters (3 by default), optionally
//! one replica each, every node a `redis-server --cluster-enabled yes` child process on a
//! free loopback port, joined by `redis-cli --cluster create`.
//!
//! [`RedisCluster::start`] returns only once every node reports `cluster_state:ok`, every
//! node names the same master for each slot, and each replica is in sync with its master.
//! Dropping the cluster SIGKILLs every node.
//!
//! Beside the addresses, the harness knows the layout: which node serves a key's slot
//! ([`RedisCluster::owner_of`]), a slot moved between masters step by step
//! ([`SlotMigration`]: `SETSLOT IMPORTING/MIGRATING`, `MIGRATE`, `SETSLOT NODE`), and a
//! replica promoted by `CLUSTER FAILOVER` ([`RedisCluster::failover`]).

use std::{
    collections::HashMap,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use redis::Value;

use super::sentinel::DataServer;
use super::servers::{RedisServer, ServerOptions, start_in_parallel};

/// How long `start` waits for the cluster to agree on its slots.
const FORM_TIMEOUT: Duration = Duration::from_secs(40);

/// The `--cluster-node-timeout` of every node (ms): how long a master may be unreachable
/// before its replica is promoted. Short, so a killed master is replaced within seconds.
pub const NODE_TIMEOUT_MS: u64 = 2_000;

/// The slots of a Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// One node of a test cluster.
pub struct ClusterNode {
    pub server: RedisServer,
    /// `CLUSTER MYID`.
    pub id: String,
}

/// A Redis Cluster of real processes; see the module docs.
pub struct RedisCluster {
    /// Every node, masters first (in `redis-cli --cluster create` order), then replicas.
    pub nodes: Vec<ClusterNode>,
}

/// Options of every node of a cluster, plus `extra` arguments.
fn node_options(extra: &[&str]) -> ServerOptions {
    ServerOptions::default()
        .args(&[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            &NODE_TIMEOUT_MS.to_string(),
            // A replica whose link is down for a moment may still be promoted: a test kills
            // masters on purpose.
            "--cluster-replica-validity-factor",
            "0",
            // The cluster stays up for the slots still served while one shard is down.
            "--cluster-require-full-coverage",
            "no",
            "--repl-diskless-sync-delay",
            "0",
        ])
        .args(extra)
}

impl RedisCluster {
    /// Starts a cluster of `masters` masters and `replicas` replicas per master.
    pub fn start(masters: usize, replicas: usize) -> Self {
        Self::start_with(masters, replicas, &[])
    }

    /// Like [`start`](Self::start), every node requiring `password` (replicas use it to
    /// reach their masters).
    pub fn start_with_password(masters: usize, replicas: usize, password: &str) -> Self {
        Self::start_with(
            masters,
            replicas,
            &["--requirepass", password, "--masterauth", password],
        )
    }

    /// Like [`start`](Self::start), with `extra` arguments for every node.
    pub fn start_with(masters: usize, replicas: usize, extra: &[&str]) -> Self {
        assert!(
            masters >= 3,
            "redis-cli --cluster create needs 3 masters or more"
        );
        let total = masters * (1 + replicas);
        let servers = start_in_parallel(total, &node_options(extra), RedisServer::start);
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for server in &servers {
            create.arg(format!("127.0.0.1:{}", server.port()));
        }
        if let Some(i) = extra.iter().position(|a| *a == "--requirepass") {
            create.args(["-a", extra[i + 1], "--no-auth-warning"]);
        }
        create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null());
        let output = create.output().unwrap_or_else(|e| {
            panic!("redis-cli --cluster create could not run ({e}); install redis-tools")
        });
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let nodes: Vec<ClusterNode> = servers
            .into_iter()
            .map(|server| {
                let id = text(server.cmd(&["CLUSTER", "MYID"]));
                ClusterNode { server, id }
            })
            .collect();
        let mut cluster = Self { nodes };
        cluster.order_masters_first();
        cluster.wait_formed(masters, replicas, FORM_TIMEOUT);
        cluster
    }

    /// Puts the masters first, replicas after (each group by port).
    fn order_masters_first(&mut self) {
        let mut roles: HashMap<String, bool> = HashMap::new();
        for node in &self.nodes {
            roles.insert(node.id.clone(), self.is_master_now(node));
        }
        self.nodes
            .sort_by_key(|n| (!roles.get(&n.id).copied().unwrap_or(false), n.server.port()));
    }

    fn is_master_now(&self, node: &ClusterNode) -> bool {
        role_of(&node.server) == "master"
    }

    /// Waits until every node says `cluster_state:ok`, all agree on the slot owners, there
    /// are `masters` masters and each replica's link is up.
    pub fn wait_formed(&self, masters: usize, replicas: usize, timeout: Duration) {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < timeout {
            match self.formed(masters, replicas) {
                Ok(()) => return,
                Err(why) => last = why,
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("the cluster did not form within {timeout:?}: {last}");
    }

    fn formed(&self, masters: usize, replicas: usize) -> Result<(), String> {
        let mut views = Vec::new();
        for node in self.live_nodes() {
            let info = node
                .server
                .try_cmd(&["CLUSTER", "INFO"])
                .map(text)
                .map_err(|e| format!("{}: {e}", node.server.port()))?;
            if !info.lines().any(|l| l.trim() == "cluster_state:ok") {
                return Err(format!("{} not ok yet", node.server.port()));
            }
            views.push(slot_owners(&node.server).map_err(|e| e.to_string())?);
        }
        let first = views.first().ok_or("no live node")?;
        if views.iter().any(|v| v != first) {
            return Err("the nodes disagree on the slot owners".to_owned());
        }
        let owners: std::collections::HashSet<u16> = first.values().copied().collect();
        if owners.len() != masters {
            return Err(format!(
                "{} masters serve slots, want {masters}",
                owners.len()
            ));
        }
        if replicas > 0 {
            for node in self.live_nodes() {
                if role_of(&node.server) == "slave" {
                    let info = node.server.info("replication");
                    if !info.lines().any(|l| l.trim() == "master_link_status:up") {
                        return Err(format!("replica {} not in sync", node.server.port()));
                    }
                }
            }
        }
        Ok(())
    }

    /// The nodes whose process runs.
    fn live_nodes(&self) -> impl Iterator<Item = &ClusterNode> {
        self.nodes
            .iter()
            .filter(|n| n.server.try_cmd(&["PING"]).is_ok())
    }

    /// The member URL: `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.server.port()))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// The member URL with only the given nodes (by index) as seeds, in that order.
    pub fn url_with_seeds(&self, seeds: &[usize]) -> String {
        let seeds: Vec<String> = seeds
            .iter()
            .map(|i| format!("127.0.0.1:{}", self.nodes[*i].server.port()))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// The slot of `key` (`CLUSTER KEYSLOT` on a live node).
    pub fn slot_of(&self, key: &[u8]) -> u16 {
        let node = self.live_nodes().next().expect("a live node");
        match node.server.cmd_bytes(&[b"CLUSTER", b"KEYSLOT", key]) {
            Value::Int(slot) => u16::try_from(slot).expect("a slot"),
            other => panic!("unexpected CLUSTER KEYSLOT reply {other:?}"),
        }
    }

    /// The index (in [`nodes`](Self::nodes)) of the master serving `slot`, as a live node
    /// sees it.
    pub fn owner_of_slot(&self, slot: u16) -> usize {
        let node = self.live_nodes().next().expect("a live node");
        let owners = slot_owners(&node.server).expect("CLUSTER SLOTS");
        let port = owners
            .get(&slot)
            .copied()
            .unwrap_or_else(|| panic!("no master serves slot {slot}"));
        self.index_of_port(port)
    }

    /// The index of the master serving `key`.
    pub fn owner_of(&self, key: &[u8]) -> usize {
        self.owner_of_slot(self.slot_of(key))
    }

    /// The node listening on `port`.
    pub fn index_of_port(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.server.port() == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// The server that holds `key` now (its slot's master).
    pub fn server_of(&self, key: &[u8]) -> &RedisServer {
        &self.nodes[self.owner_of(key)].server
    }

    /// The indexes of the masters now.
    pub fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| {
                self.nodes[*i].server.try_cmd(&["PING"]).is_ok()
                    && role_of(&self.nodes[*i].server) == "master"
                    && !self.slots_of(*i).is_empty()
            })
            .collect()
    }

    /// The slots master `i` serves (as a live node sees it).
    pub fn slots_of(&self, i: usize) -> Vec<u16> {
        let node = self.live_nodes().next().expect("a live node");
        let port = self.nodes[i].server.port();
        let owners = slot_owners(&node.server).expect("CLUSTER SLOTS");
        let mut slots: Vec<u16> = owners
            .into_iter()
            .filter(|(_, p)| *p == port)
            .map(|(s, _)| s)
            .collect();
        slots.sort_unstable();
        slots
    }

    /// Keys (`prefix` + a counter) spread over at least `slots` distinct slots, one per slot,
    /// covering every master.
    pub fn keys_in_many_slots(&self, prefix: &str, slots: usize) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        let mut keys = Vec::new();
        let mut n = 0u64;
        while keys.len() < slots {
            let key = format!("{prefix}{n}");
            n += 1;
            if seen.insert(self.slot_of(key.as_bytes())) {
                keys.push(key);
            }
        }
        keys
    }

    /// Every key of every live master, for leak checks: `(key, pttl)`.
    pub fn keys_with_pttl(&self) -> Vec<(String, i64)> {
        self.masters()
            .into_iter()
            .flat_map(|i| self.nodes[i].server.keys_with_pttl())
            .collect()
    }

    /// Promotes replica `replica` with `CLUSTER FAILOVER` (its master must be up) and waits
    /// until every live node names it for its slots.
    pub fn failover(&self, replica: usize) {
        let server = &self.nodes[replica].server;
        assert_eq!(role_of(server), "slave", "node {replica} is not a replica");
        // A manual failover that cannot finish in time (the replica slow to catch up on a
        // loaded machine) is abandoned by Redis without a word: ask again, a few times.
        for _ in 0..4 {
            if role_of(server) == "slave" {
                server.cmd(&["CLUSTER", "FAILOVER"]);
            }
            if self.is_master_everywhere(replica, Duration::from_secs(12)) {
                return;
            }
        }
        panic!("node {replica} was not promoted by CLUSTER FAILOVER");
    }

    /// Whether node `i` becomes, within `timeout`, a master that every live node names.
    fn is_master_everywhere(&self, i: usize, timeout: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if self.agrees_master(i) {
                return true;
            }
            thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn agrees_master(&self, i: usize) -> bool {
        let port = self.nodes[i].server.port();
        role_of(&self.nodes[i].server) == "master"
            && self.live_nodes().all(|n| {
                slot_owners(&n.server).is_ok_and(|owners| owners.values().any(|p| *p == port))
            })
            && self.live_nodes().all(|n| {
                n.server
                    .try_cmd(&["CLUSTER", "INFO"])
                    .is_ok_and(|info| text(info).lines().any(|l| l.trim() == "cluster_state:ok"))
            })
    }

    /// Waits until node `i` is a master every live node names for some slot.
    pub fn wait_master(&self, i: usize, timeout: Duration) {
        assert!(
            self.is_master_everywhere(i, timeout),
            "node {i} did not become a master within {timeout:?}"
        );
    }

    /// The replica of master `master`, if it has one.
    pub fn replica_of(&self, master: usize) -> Option<usize> {
        let id = &self.nodes[master].id;
        (0..self.nodes.len()).find(|i| {
            let server = &self.nodes[*i].server;
            server.try_cmd(&["PING"]).is_ok()
                && role_of(server) == "slave"
                && match server.try_cmd(&["CLUSTER", "NODES"]) {
                    Ok(nodes) => text(nodes).lines().any(|l| {
                        let fields: Vec<&str> = l.split(' ').collect();
                        fields.get(2).is_some_and(|f| f.contains("myself"))
                            && fields.get(3) == Some(&id.as_str())
                    }),
                    Err(_) => false,
                }
        })
    }

    /// Starts moving `slot` from master `from` to master `to` (both nodes' `SETSLOT`).
    pub fn begin_migration(&self, slot: u16, from: usize, to: usize) -> SlotMigration<'_> {
        let slot_s = slot.to_string();
        let (source, target) = (&self.nodes[from], &self.nodes[to]);
        target
            .server
            .cmd(&["CLUSTER", "SETSLOT", &slot_s, "IMPORTING", &source.id]);
        source
            .server
            .cmd(&["CLUSTER", "SETSLOT", &slot_s, "MIGRATING", &target.id]);
        SlotMigration {
            cluster: self,
            slot,
            from,
            to,
        }
    }
}

/// A slot on its way from one master to another; see [`RedisCluster::begin_migration`].
pub struct SlotMigration<'a> {
    cluster: &'a RedisCluster,
    pub slot: u16,
    pub from: usize,
    pub to: usize,
}

impl SlotMigration<'_> {
    /// Moves up to `batch` keys of the slot (`MIGRATE … KEYS`); returns how many were moved.
    pub fn migrate_keys(&self, batch: usize) -> usize {
        let source = &self.cluster.nodes[self.from].server;
        let target = &self.cluster.nodes[self.to].server;
        let keys = match source.cmd(&[
            "CLUSTER",
            "GETKEYSINSLOT",
            &self.slot.to_string(),
            &batch.to_string(),
        ]) {
            Value::Array(keys) => keys,
            other => panic!("unexpected GETKEYSINSLOT reply {other:?}"),
        };
        if keys.is_empty() {
            return 0;
        }
        let port = target.port().to_string();
        let mut args: Vec<Vec<u8>> = ["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"]
            .iter()
            .map(|a| a.as_bytes().to_vec())
            .collect();
        for key in &keys {
            match key {
                Value::BulkString(k) => args.push(k.clone()),
                other => panic!("unexpected key {other:?}"),
            }
        }
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        // A key that expired in between is skipped by MIGRATE ("NOKEY" when none is left).
        match source.try_cmd_bytes(&refs) {
            Ok(_) => {}
            Err(e) if e.to_string().contains("NOKEY") => {}
            Err(e) => panic!("MIGRATE failed: {e}"),
        }
        keys.len()
    }

    /// Moves every key left, then gives the slot to the target on every master.
    pub fn finish(self) {
        while self.migrate_keys(100) > 0 {}
        let slot = self.slot.to_string();
        let target_id = self.cluster.nodes[self.to].id.clone();
        // The target first: it then answers for the slot before the source sends MOVED.
        self.cluster.nodes[self.to]
            .server
            .cmd(&["CLUSTER", "SETSLOT", &slot, "NODE", &target_id]);
        self.cluster.nodes[self.from]
            .server
            .cmd(&["CLUSTER", "SETSLOT", &slot, "NODE", &target_id]);
        for i in self.cluster.masters() {
            if i != self.to && i != self.from {
                let _ = self.cluster.nodes[i]
                    .server
                    .try_cmd(&["CLUSTER", "SETSLOT", &slot, "NODE", &target_id]);
            }
        }
        let started = Instant::now();
        while self.cluster.owner_of_slot(self.slot) != self.to {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "slot {} never moved",
                self.slot
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `ROLE`'s first element: `master` or `slave`.
pub fn role_of(server: &RedisServer) -> String {
    match server.try_cmd(&["ROLE"]) {
        Ok(Value::Array(items)) => match items.first() {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            other => format!("{other:?}"),
        },
        other => format!("{other:?}"),
    }
}

/// Slot → port of its master, from `CLUSTER SLOTS` (on a plain or a TLS node).
pub fn slot_owners(server: &impl DataServer) -> redis::RedisResult<HashMap<u16, u16>> {
    let reply = server.try_cmd(&["CLUSTER", "SLOTS"])?;
    let mut owners = HashMap::new();
    let Value::Array(ranges) = reply else {
        return Ok(owners);
    };
    for range in ranges {
        let Value::Array(fields) = range else {
            continue;
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            continue;
        };
        let Some(Value::Int(port)) = master.get(1) else {
            continue;
        };
        let port = u16::try_from(*port).expect("a port");
        for slot in *start..=*end {
            owners.insert(u16::try_from(slot).expect("a slot"), port);
        }
    }
    Ok(owners)
}

/// A text reply as a `String`.
pub fn text(value: Value) -> String {
    match value {
        Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::SimpleString(s) => s,
        Value::VerbatimString { text, .. } => text,
        other => panic!("expected a text reply, got {other:?}"),
    }
}

/// `GET` on a replica of a cluster (after `READONLY`, on the same connection).
pub fn get_on_replica(server: &RedisServer, key: &[u8]) -> Option<Vec<u8>> {
    let client = redis::Client::open(server.url()).expect("client");
    let mut con = client
        .get_connection_with_timeout(super::servers::CMD_TIMEOUT)
        .expect("connection");
    redis::cmd("READONLY")
        .query::<()>(&mut con)
        .expect("READONLY");
    redis::cmd("GET").arg(key).query(&mut con).expect("GET")
}

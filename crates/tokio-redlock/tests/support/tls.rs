//! TLS-only `redis-server` processes (feature `tls`), with a throw-away PKI made by `rcgen`.
//!
//! [`pki`] generates, once per test process, a test CA, a server certificate for
//! `127.0.0.1` and `localhost` signed by it, a client certificate signed by it (for mutual
//! TLS), two server certificates signed by it that must not verify (one for another name, one
//! expired; see [`ServerCertificate`]), and a second, unrelated "unknown" CA. Each
//! [`TlsMaster`] writes the PEM files into its own temporary dir and runs `redis-server
//! --port 0 --tls-port P`: no plaintext listener at all, so a plaintext client against
//! [`TlsMaster::plain_url`] talks to the TLS port. Readiness is checked over TLS (trusting
//! the test CA, presenting the client certificate; without verification for a server whose
//! certificate must not verify) and by the process id in `INFO`, as in `servers.rs`.
//! Dropping a master SIGKILLs its process; a server that cannot start fails the test with
//! its log.

use std::{
    fs::File,
    io,
    ops::Index,
    path::Path,
    process::{Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use redis::{ClientTlsConfig, ErrorKind, RedisResult, TlsCertificates, Value};
use tempfile::TempDir;

use super::cluster::{NODE_TIMEOUT_MS, slot_owners, text};
use super::sentinel::{DataServer, NO_SYNC_DELAY, SentinelSet};
use super::servers::{
    CMD_TIMEOUT, ChildProcess, STARTUP_TIMEOUT, log_tail, query_on, start_in_parallel,
    start_with_retries,
};

const NOT_FOUND_HINT: &str = "redis-server not found: install it with \
    `sudo apt-get install -y redis-server` (Debian/Ubuntu); the TLS tests need a real \
    TLS-capable Redis and never skip";

/// The test PKI, PEM-encoded.
#[derive(Debug)]
pub struct Pki {
    /// The CA that signed the server and client certificates.
    pub ca_pem: String,
    /// Server certificate, SANs `127.0.0.1` and `localhost`, signed by the CA.
    pub server_cert_pem: String,
    pub server_key_pem: String,
    /// Client certificate (mutual TLS), signed by the CA.
    pub client_cert_pem: String,
    pub client_key_pem: String,
    /// Server certificate signed by the CA for `redis.example.invalid` only: it names no
    /// address the tests dial.
    pub other_name_cert_pem: String,
    pub other_name_key_pem: String,
    /// Server certificate signed by the CA for `127.0.0.1` and `localhost`, expired (valid
    /// from 2020 to 2021).
    pub expired_cert_pem: String,
    pub expired_key_pem: String,
    /// A second CA that signed nothing the servers use.
    pub unknown_ca_pem: String,
}

/// The process-wide test PKI (generated on first use).
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(generate_pki)
}

/// The unrelated CA: trusting only it, no test server's certificate verifies.
pub fn unknown_ca_pem() -> Vec<u8> {
    pki().unknown_ca_pem.clone().into_bytes()
}

fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "tokio-redlock tests");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("generate CA key");
    let cert = params.self_signed(&key).expect("self-sign CA");
    (cert.pem(), Issuer::new(params, key))
}

/// A leaf certificate and its key, signed by `issuer`; valid from January 1st of the first
/// year to January 1st of the second when `years` is given (else rcgen's default validity).
fn new_leaf(
    issuer: &Issuer<'_, KeyPair>,
    name: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
    years: Option<(i32, i32)>,
) -> (String, String) {
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(sans).expect("valid SANs");
    params.distinguished_name.push(DnType::CommonName, name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    if let Some((from, to)) = years {
        params.not_before = date_time_ymd(from, 1, 1);
        params.not_after = date_time_ymd(to, 1, 1);
    }
    let key = KeyPair::generate().expect("generate leaf key");
    let cert = params.signed_by(&key, issuer).expect("sign leaf");
    (cert.pem(), key.serialize_pem())
}

fn generate_pki() -> Pki {
    let (ca_pem, ca) = new_ca("tokio-redlock test CA");
    let (server_cert_pem, server_key_pem) = new_leaf(
        &ca,
        "localhost",
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
        None,
    );
    let (client_cert_pem, client_key_pem) = new_leaf(
        &ca,
        "tokio-redlock test client",
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
        None,
    );
    let (other_name_cert_pem, other_name_key_pem) = new_leaf(
        &ca,
        "redis.example.invalid",
        &["redis.example.invalid"],
        ExtendedKeyUsagePurpose::ServerAuth,
        None,
    );
    let (expired_cert_pem, expired_key_pem) = new_leaf(
        &ca,
        "localhost",
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
        Some((2020, 2021)),
    );
    let (unknown_ca_pem, _) = new_ca("unknown CA");
    Pki {
        ca_pem,
        server_cert_pem,
        server_key_pem,
        client_cert_pem,
        client_key_pem,
        other_name_cert_pem,
        other_name_key_pem,
        expired_cert_pem,
        expired_key_pem,
        unknown_ca_pem,
    }
}

/// The certificate, signed by the test CA, a TLS test server presents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServerCertificate {
    /// For `127.0.0.1` and `localhost`, valid now.
    #[default]
    Valid,
    /// For `redis.example.invalid` only: it does not name the address a client dials.
    OtherName,
    /// For `127.0.0.1` and `localhost`, expired (valid from 2020 to 2021).
    Expired,
}

impl ServerCertificate {
    /// The certificate and key PEMs.
    fn pems(self) -> (&'static str, &'static str) {
        let pki = pki();
        match self {
            Self::Valid => (&pki.server_cert_pem, &pki.server_key_pem),
            Self::OtherName => (&pki.other_name_cert_pem, &pki.other_name_key_pem),
            Self::Expired => (&pki.expired_cert_pem, &pki.expired_key_pem),
        }
    }

    /// Whether a client trusting the test CA accepts it (else the helpers connect without
    /// verification).
    fn verifies(self) -> bool {
        self == Self::Valid
    }
}

/// Startup options of a TLS test server.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// `--tls-auth-clients yes` (mutual TLS: a client certificate signed by the test CA is
    /// required) instead of `no`.
    pub mutual: bool,
    /// `--requirepass`, if any (the helpers AUTH with it).
    pub password: Option<String>,
    /// The certificate the server presents.
    pub certificate: ServerCertificate,
    /// Appended verbatim to the command line, e.g. `["--tls-replication", "yes"]`.
    pub extra_args: Vec<String>,
    /// A Redis Cluster node: `--cluster-enabled yes` with the cluster bus over TLS
    /// (`--tls-cluster yes`, bus port = TLS port + 10000) and the TLS port announced to
    /// clients and peers (`--cluster-announce-tls-port`); see [`TlsCluster`].
    pub cluster: bool,
}

/// One TLS-only `redis-server` child process on 127.0.0.1.
pub struct TlsMaster {
    process: ChildProcess,
    port: u16,
    opts: TlsOptions,
    // Declared last: dropped after the process is killed (dropped).
    dir: TempDir,
}

impl TlsMaster {
    /// Starts a TLS-only server on a free loopback port and waits until it answers over TLS.
    pub fn start(opts: TlsOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("redlock-redis-tls-")
            .tempdir()
            .expect("create temp dir for redis-server");
        write_pem_files(dir.path(), opts.certificate);
        let (port, process) = start_with_retries("TLS redis-server", |port| {
            spawn_and_wait(port, dir.path(), &opts)
        });
        Self {
            process,
            port,
            opts,
            dir,
        }
    }

    /// The TLS port (the server has no plaintext port).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rediss://127.0.0.1:PORT` (without credentials).
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    /// `rediss://localhost:PORT` (the certificate also names `localhost`).
    pub fn localhost_url(&self) -> String {
        format!("rediss://localhost:{}", self.port)
    }

    /// `redis://127.0.0.1:PORT`: plaintext against the TLS-only port (field case C17 a).
    pub fn plain_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The test CA that signed the server certificate.
    pub fn ca_pem(&self) -> Vec<u8> {
        pki().ca_pem.clone().into_bytes()
    }

    /// A client certificate the server accepts (mutual TLS).
    pub fn client_cert_pem(&self) -> Vec<u8> {
        pki().client_cert_pem.clone().into_bytes()
    }

    /// The key of [`client_cert_pem`](Self::client_cert_pem).
    pub fn client_key_pem(&self) -> Vec<u8> {
        pki().client_key_pem.clone().into_bytes()
    }

    pub fn options(&self) -> &TlsOptions {
        &self.opts
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of the server log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(self.dir.path())
    }

    /// SIGKILLs the process and reaps it. Idempotent.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    command_helpers!("TLS redis");

    /// Runs one command on a fresh sync TLS connection (trusting the test CA, or without
    /// verification for a certificate that must not verify; presenting the client
    /// certificate, AUTH if the server has a password, 2 s timeouts). Server error replies
    /// become `Err`.
    pub fn try_cmd_bytes(&self, args: &[&[u8]]) -> RedisResult<Value> {
        let mut conn = connect(self.port, &self.opts, CMD_TIMEOUT)?;
        query_on(&mut conn, args)
    }

    /// Clients connected over TLS right now (`INFO clients` `connected_clients`, the helper's
    /// own connection included).
    pub fn connected_clients(&self) -> i64 {
        let info = match self.cmd(&["INFO", "clients"]) {
            Value::BulkString(b) => String::from_utf8(b).expect("INFO is UTF-8"),
            Value::VerbatimString { text, .. } => text,
            other => panic!("unexpected INFO reply {other:?}"),
        };
        info.lines()
            .find_map(|l| l.trim().strip_prefix("connected_clients:"))
            .expect("connected_clients in INFO")
            .parse()
            .expect("connected_clients is a number")
    }
}

/// A Sentinel set over TLS only: master and replica are TLS-only servers replicating over TLS
/// (`--tls-replication yes`), and the sentinels listen on a TLS port only and reach the data
/// servers and each other over TLS, all with the test PKI. Its URL is
/// `rediss+sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/mymaster`; start it with
/// `TlsSentinelSet::launch()`.
pub type TlsSentinelSet = SentinelSet<TlsMaster>;

/// `--tls-replication yes`: replication (and, in `sentinel.conf`, the sentinels' links) over
/// TLS.
const TLS_REPLICATION: [&str; 2] = ["--tls-replication", "yes"];

impl DataServer for TlsMaster {
    const SENTINEL_SCHEME: &'static str = "rediss+sentinel";

    fn start_in_set(args: &[&str]) -> Self {
        let extra_args = [&NO_SYNC_DELAY[..], &TLS_REPLICATION, args]
            .concat()
            .into_iter()
            .map(str::to_owned)
            .collect();
        Self::start(TlsOptions {
            extra_args,
            ..TlsOptions::default()
        })
    }

    fn port(&self) -> u16 {
        Self::port(self)
    }

    fn try_cmd(&self, args: &[&str]) -> RedisResult<Value> {
        Self::try_cmd(self, args)
    }

    fn log_tail(&self) -> String {
        Self::log_tail(self)
    }

    fn sentinel_listen(port: u16, dir: &Path) -> String {
        write_pem_files(dir, ServerCertificate::Valid);
        format!(
            "port 0\n\
             tls-port {port}\n\
             tls-cert-file {}\n\
             tls-key-file {}\n\
             tls-ca-cert-file {}\n\
             tls-auth-clients no\n\
             tls-replication yes\n",
            dir.join("server.crt").display(),
            dir.join("server.key").display(),
            dir.join("ca.crt").display(),
        )
    }

    fn connect(port: u16, timeout: Duration) -> RedisResult<redis::Connection> {
        connect(port, &TlsOptions::default(), timeout)
    }
}

/// A set of independent TLS masters sharing the test PKI.
pub struct TlsMasters(pub Vec<TlsMaster>);

impl TlsMasters {
    /// Starts `n` masters in parallel with the same options.
    pub fn start(n: usize, opts: TlsOptions) -> Self {
        pki(); // generate once, before the threads race for it
        Self(start_in_parallel(n, &opts, TlsMaster::start))
    }

    pub fn urls(&self) -> Vec<String> {
        self.0.iter().map(TlsMaster::url).collect()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, TlsMaster> {
        self.0.iter()
    }
}

impl Index<usize> for TlsMasters {
    type Output = TlsMaster;

    fn index(&self, i: usize) -> &TlsMaster {
        &self.0[i]
    }
}

/// A Redis Cluster of TLS-only masters (no replicas): every node a [`TlsMaster`] started
/// with [`TlsOptions::cluster`] — no plaintext port, the cluster bus over TLS, the TLS port
/// announced — joined by `redis-cli --tls --cacert … --cluster create`. [`start`](Self::start)
/// returns once every node reports `cluster_state:ok` and all name the same master, by its
/// TLS port, for every slot. Dropping the cluster SIGKILLs every node.
pub struct TlsCluster {
    /// The masters, by port.
    pub nodes: Vec<TlsMaster>,
}

impl TlsCluster {
    /// Starts a cluster of `masters` TLS-only masters.
    pub fn start(masters: usize) -> Self {
        assert!(
            masters >= 3,
            "redis-cli --cluster create needs 3 masters or more"
        );
        pki(); // generate once, before the threads race for it
        let opts = TlsOptions {
            cluster: true,
            ..TlsOptions::default()
        };
        let mut nodes = start_in_parallel(masters, &opts, TlsMaster::start);
        nodes.sort_by_key(TlsMaster::port);
        let ca = nodes[0].dir().join("ca.crt");
        let mut create = Command::new("redis-cli");
        create.args(["--tls", "--cacert", path_str(&ca), "--cluster", "create"]);
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        // Its output goes to a file: redis-cli waits (forever) for the nodes to agree, so a
        // cluster that cannot form must end in a message, not a hang.
        let out_path = nodes[0].dir().join("cluster-create.out");
        let out = File::create(&out_path).expect("create cluster-create.out");
        create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone the output file"))
            .stderr(out);
        let mut child = create.spawn().unwrap_or_else(|e| {
            panic!("redis-cli --cluster create could not run ({e}); install redis-tools")
        });
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for redis-cli") {
                break Some(status);
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if status.is_none_or(|s| !s.success()) {
            let logs: Vec<String> = nodes.iter().map(TlsMaster::log_tail).collect();
            panic!(
                "redis-cli --tls --cluster create failed ({status:?}):\n{}\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default(),
                logs.join("\n")
            );
        }
        let cluster = Self { nodes };
        cluster.wait_formed(masters);
        cluster
    }

    /// Waits (40 s at most) until every node says `cluster_state:ok` and all name the same
    /// master, by one of the nodes' TLS ports, for every slot.
    fn wait_formed(&self, masters: usize) {
        let timeout = Duration::from_secs(40);
        let started = std::time::Instant::now();
        let mut last = String::new();
        while started.elapsed() < timeout {
            match self.formed(masters) {
                Ok(()) => return,
                Err(why) => last = why,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let logs: Vec<String> = self.nodes.iter().map(TlsMaster::log_tail).collect();
        panic!(
            "the TLS cluster did not form within {timeout:?}: {last}\n{}",
            logs.join("\n")
        );
    }

    fn formed(&self, masters: usize) -> Result<(), String> {
        let ports: std::collections::HashSet<u16> =
            self.nodes.iter().map(TlsMaster::port).collect();
        let mut views = Vec::new();
        for node in &self.nodes {
            let info = node
                .try_cmd(&["CLUSTER", "INFO"])
                .map(text)
                .map_err(|e| format!("{}: {e}", node.port()))?;
            if !info.lines().any(|l| l.trim() == "cluster_state:ok") {
                return Err(format!("{} not ok yet", node.port()));
            }
            let owners = slot_owners(node).map_err(|e| e.to_string())?;
            if owners.len() != usize::from(super::cluster::SLOTS) {
                return Err(format!(
                    "{} sees {} slots served",
                    node.port(),
                    owners.len()
                ));
            }
            views.push(owners);
        }
        let first = views.first().ok_or("no node")?;
        if views.iter().any(|v| v != first) {
            return Err("the nodes disagree on the slot owners".to_owned());
        }
        let owners: std::collections::HashSet<u16> = first.values().copied().collect();
        if owners.len() != masters || !owners.is_subset(&ports) {
            return Err(format!(
                "masters announced at {owners:?}, want {masters} of the TLS ports {ports:?}"
            ));
        }
        Ok(())
    }

    /// The member URL: `rediss+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        format!("rediss+cluster://{}", seeds.join(","))
    }

    /// The master serving `key`'s slot now.
    pub fn server_of(&self, key: &[u8]) -> &TlsMaster {
        let slot = match self.nodes[0].cmd_bytes(&[b"CLUSTER", b"KEYSLOT", key]) {
            Value::Int(slot) => u16::try_from(slot).expect("a slot"),
            other => panic!("unexpected CLUSTER KEYSLOT reply {other:?}"),
        };
        let owners = slot_owners(&self.nodes[0]).expect("CLUSTER SLOTS");
        let port = owners
            .get(&slot)
            .copied()
            .unwrap_or_else(|| panic!("no master serves slot {slot}"));
        self.nodes
            .iter()
            .find(|n| n.port() == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// Keys (`prefix` + a counter) in `slots` distinct slots.
    pub fn keys_in_many_slots(&self, prefix: &str, slots: usize) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        let mut keys = Vec::new();
        let mut n = 0u64;
        while keys.len() < slots {
            let key = format!("{prefix}{n}");
            n += 1;
            match self.nodes[0].cmd_bytes(&[b"CLUSTER", b"KEYSLOT", key.as_bytes()]) {
                Value::Int(slot) if seen.insert(slot) => keys.push(key),
                Value::Int(_) => {}
                other => panic!("unexpected CLUSTER KEYSLOT reply {other:?}"),
            }
        }
        keys
    }
}

/// A sync TLS connection to `127.0.0.1:port` trusting the test CA (no verification at all,
/// redis-rs's `#insecure`, when the server's certificate must not verify), presenting the
/// test client certificate, with the server's password if any.
fn connect(port: u16, opts: &TlsOptions, timeout: Duration) -> RedisResult<redis::Connection> {
    let mut url = match &opts.password {
        Some(pw) => format!("rediss://:{pw}@127.0.0.1:{port}"),
        None => format!("rediss://127.0.0.1:{port}"),
    };
    if !opts.certificate.verifies() {
        url.push_str("/#insecure");
    }
    let pki = pki();
    let client = redis::Client::build_with_tls(
        url,
        TlsCertificates {
            client_tls: Some(ClientTlsConfig {
                client_cert: pki.client_cert_pem.clone().into_bytes(),
                client_key: pki.client_key_pem.clone().into_bytes(),
            }),
            root_cert: Some(pki.ca_pem.clone().into_bytes()),
        },
    )?;
    let conn = client.get_connection_with_timeout(timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    Ok(conn)
}

fn write_pem_files(dir: &Path, certificate: ServerCertificate) {
    let (cert_pem, key_pem) = certificate.pems();
    for (name, pem) in [
        ("ca.crt", pki().ca_pem.as_str()),
        ("server.crt", cert_pem),
        ("server.key", key_pem),
    ] {
        std::fs::write(dir.join(name), pem).unwrap_or_else(|e| panic!("write {name}: {e}"));
    }
}

/// The test client certificate and its key, as `client.crt` and `client.key` in `dir`.
fn write_client_pem_files(dir: &Path) {
    let pki = pki();
    for (name, pem) in [
        ("client.crt", pki.client_cert_pem.as_str()),
        ("client.key", pki.client_key_pem.as_str()),
    ] {
        std::fs::write(dir.join(name), pem).unwrap_or_else(|e| panic!("write {name}: {e}"));
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp dir path is UTF-8")
}

/// Spawns a TLS-only `redis-server` on `port` and waits until it answers over TLS.
fn spawn_and_wait(port: u16, dir: &Path, opts: &TlsOptions) -> Result<ChildProcess, String> {
    let log = dir.join("redis.log");
    let stderr = File::create(dir.join("redis.stderr")).expect("create redis.stderr");
    let port_str = port.to_string();
    let mut command = Command::new("redis-server");
    command
        .args(["--port", "0", "--tls-port", &port_str])
        .args(["--bind", "127.0.0.1", "--dir", path_str(dir)])
        .args(["--tls-cert-file", path_str(&dir.join("server.crt"))])
        .args(["--tls-key-file", path_str(&dir.join("server.key"))])
        .args(["--tls-ca-cert-file", path_str(&dir.join("ca.crt"))])
        .args(["--tls-auth-clients", if opts.mutual { "yes" } else { "no" }])
        .args(["--enable-debug-command", "local", "--protected-mode", "no"])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--daemonize", "no", "--logfile", path_str(&log)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    if let Some(pw) = &opts.password {
        command.args(["--requirepass", pw]);
    }
    if opts.cluster {
        // The node's outgoing cluster-bus links present the test client certificate: the
        // server certificate is for server authentication only, and the peers verify it.
        write_client_pem_files(dir);
        command
            .args(["--tls-client-cert-file", path_str(&dir.join("client.crt"))])
            .args(["--tls-client-key-file", path_str(&dir.join("client.key"))])
            .args(["--cluster-enabled", "yes", "--tls-cluster", "yes"])
            .args(["--cluster-announce-tls-port", &port_str])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            .args(["--cluster-require-full-coverage", "no"]);
    }
    command.args(&opts.extra_args);
    let child = match command.spawn() {
        Ok(child) => ChildProcess::new(child, "TLS redis-server"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => panic!("{NOT_FOUND_HINT}"),
        Err(e) => panic!("spawning redis-server failed: {e}"),
    };
    child.wait_ready(
        STARTUP_TIMEOUT,
        |pid| match answers(port, pid, opts) {
            Ok(true) => Ok(()),
            Ok(false) => Err("answered, but not ready (or not our process)".to_owned()),
            Err(e) => Err(e),
        },
        || log_tail(dir),
    )
}

/// Whether *our* server (process `pid`) answers over TLS on `port` with `loading:0`.
fn answers(port: u16, pid: u32, opts: &TlsOptions) -> Result<bool, String> {
    let mut conn = connect(port, opts, Duration::from_millis(500)).map_err(|e| e.to_string())?;
    match redis::cmd("INFO")
        .arg("everything")
        .query::<String>(&mut conn)
    {
        Ok(info) => {
            let has = |line: &str| info.lines().any(|l| l.trim() == line);
            Ok(has(&format!("process_id:{pid}")) && has("loading:0"))
        }
        Err(e) if e.kind() == ErrorKind::AuthenticationFailed => Ok(true),
        Err(e) => Err(e.to_string()),
    }
}

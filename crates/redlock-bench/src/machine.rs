//! The machine a run happened on.

use std::process::Command;

/// Facts about the host, for the report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cpus: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Kernel release (`/proc/sys/kernel/osrelease`).
    pub kernel: String,
    /// `redis_version` of the first master (`INFO server`), or `redis-server --version`.
    pub redis_version: String,
    /// `/proc/loadavg` when the run started.
    pub load_before: String,
    /// `/proc/loadavg` when the run ended.
    pub load_after: String,
}

impl Machine {
    /// Reads what it can; unknown facts are `"unknown"`. Blocking (reads files, asks the
    /// first master with a short timeout).
    pub fn probe(first_master: Option<&str>) -> Self {
        let unknown = || "unknown".to_owned();
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    (k.trim() == "model name").then(|| v.trim().to_owned())
                })
            })
            .unwrap_or_else(unknown);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| unknown());
        let redis_version = first_master
            .and_then(info_version)
            .or_else(cli_version)
            .unwrap_or_else(unknown);
        Self {
            cpus: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            cpu_model,
            kernel,
            redis_version,
            load_before: load_average(),
            load_after: String::new(),
        }
    }
}

/// The first three fields of `/proc/loadavg`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn info_version(url: &str) -> Option<String> {
    let client = redis::Client::open(url).ok()?;
    let timeout = std::time::Duration::from_secs(1);
    let mut conn = client.get_connection_with_timeout(timeout).ok()?;
    conn.set_read_timeout(Some(timeout)).ok()?;
    let info: String = redis::cmd("INFO").arg("server").query(&mut conn).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(|v| v.trim().to_owned())
}

fn cli_version() -> Option<String> {
    let out = Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("v="))
        .map(str::to_owned)
}

/// What was measured: `tokio-redlock <version>` (the workspace's version).
pub fn source_state() -> String {
    format!("tokio-redlock {}", env!("CARGO_PKG_VERSION"))
}

#![doc = include_str!("../../../README.md")]
//!
//! # Optional features
//!
//! - `tls`: `rediss://` and `rediss+sentinel://` members over rustls with its `ring`
//!   provider (installed as the process default unless the application installed one):
//!   `LockManagerBuilder::tls_root_certificate`, `tls_client_certificate`,
//!   `danger_accept_invalid_certificates`.
//! - `metrics`: counters and histograms through the [`metrics`](https://docs.rs/metrics)
//!   facade; the names are listed under [Metrics reference](#metrics-reference).
//! - `serde`: `Deserialize`/`Serialize` for [`LockManagerConfig`].
//!
//! Without features the crate depends on `redis` (with `tokio-comp`, `script`, `sentinel`,
//! `cluster-async`), `tokio`, `tokio-util`, `thiserror`, `tracing`, `rand`, `futures-util`,
//! `url`, `percent-encoding` and `crc16` (Redis Cluster hash slots).
//!
//! # Metrics reference
//!
//! With the `metrics` feature the manager records, through whatever recorder the
//! application installed (Prometheus exporter, StatsD, …; nothing is recorded without one):
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `redlock_acquisitions_total` | counter | `primitive` | locks acquired (`lock`, `try_lock`, `acquire`, `with_lock`) |
//! | `redlock_acquire_failures_total` | counter | `reason`, `primitive` | every failed acquisition by cause: `conflict` (another holder had the resource), `no_quorum` (a quorum of masters was unreachable or failed), `validity_exhausted`, `fencing_contention`, `not_a_lock`, `permits_mismatch`, `closed`, `other` |
//! | `redlock_extensions_total` | counter | `outcome` = `ok` \| `failed`, `primitive` | extensions, explicit and automatic (guards) |
//! | `redlock_losses_total` | counter | `primitive` | guards that lost their lock before releasing it |
//! | `redlock_releases_total` | counter | `outcome` = `ok` \| `failed`, `primitive` | releases (`unlock`, guard release or drop) |
//! | `redlock_acquire_seconds` | histogram | `outcome` = `ok` \| `failed`, `primitive` | time from the call to the lock (or the error), waiting included |
//! | `redlock_hold_seconds` | histogram | `primitive` | time from acquisition to release |
//! | `redlock_master_errors_total` | counter | `master`, `kind` | failed requests per master (`master` is the configured URL, password redacted; `kind`: `timeout`, `refused`, `connection`, `tls`, `auth`, `no_permission`, `out_of_memory`, `read_only`, `not_master`, `sentinel`, `cluster`, `server`, `unexpected_reply`, `same_server`, `backlog`; a Redis Cluster member is one `master` label, whichever of its nodes failed; its `MOVED`/`ASK` redirections are not counted) |
//!
//! `primitive` names the kind of lock: `mutex` (one resource: `lock`, `acquire`, …),
//! `multi` (several resources at once: `lock_all`, `acquire_all`), `permit` (a
//! semaphore's permit), `reader` or `writer` (a read-write lock's). Traces carry the same
//! `primitive` field on the `redlock.acquire` span and the acquire, release and extend
//! events.
//!
//! Labels are bounded: resource names never appear (a label per resource would grow
//! without bound), and `master` takes one value per configured member.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
// docs.rs builds with `--cfg docsrs` (see `[package.metadata.docs.rs]`): feature badges.
#![cfg_attr(docsrs, feature(doc_cfg))]

// The public API: the manager and its builder, locks, guards, errors.
mod adopt;
mod attempt;
mod config;
mod error;
mod guard;
mod holder;
mod lock;
mod manager;
mod manager_config;
// Beyond the mutex: multi-resource locks, read-write locks, semaphores.
mod primitives;
// The quorum machinery: tally, verdicts, retry schedule, fencing, rounds.
mod quorum;
// The connection layer: one master each, members (plain, TLS, Unix, Sentinel).
mod transport;
// Shared leaves: key naming, Lua scripts, metrics, release notifications.
mod keys;
mod metrics;
mod notify;
mod scripts;

pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_DRIFT_FACTOR, DEFAULT_NODE_TIMEOUT, DEFAULT_RETRY_COUNT,
    DEFAULT_RETRY_DELAY, DEFAULT_RETRY_JITTER, DEFAULT_TTL, LockManagerBuilder, MAX_RETRY_SLEEP,
    MAX_TTL,
};
pub use error::{Cause, ConfigError, LockError, NodeError, NodeOutcome, NodeStatus, Operation};
pub use guard::{AcquireRequest, LockGuard, LockHandle, LossCause};
pub use holder::HolderInfo;
pub use keys::{
    Printable, check_resource, holder_key, lock_key, release_channel, sharded_release_channel,
};
pub use lock::{HolderToken, KeyState, Lock, LockState, MasterKey};
pub use manager::{LockManager, LockRequest};
pub use manager_config::LockManagerConfig;
pub use primitives::multi::MAX_RESOURCES;
pub use primitives::semaphore::{MAX_PERMITS, MasterPermits, PermitHolder, PermitSlots, Semaphore};
pub use quorum::fencing::FencingToken;
pub use transport::member::{SERVERS_ENV, parse_server_list};

/// The examples of `docs/primitives.md`, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/primitives.md")]
pub struct PrimitivesGuide;

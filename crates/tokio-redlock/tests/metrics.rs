//! Metrics (feature `metrics`): every counter and histogram of the crate docs' "Metrics"
//! table moves as documented against real masters — acquisitions, conflicts, "no quorum",
//! failures by reason, extensions, losses, releases, the acquire and hold times, and failed
//! requests per master and kind — and the labels stay bounded: never a resource name, never
//! a password, masters shown as their redacted URL.
//!
//! The recorder is `metrics_util`'s `DebuggingRecorder`, installed once as the global
//! recorder (the library records from spawned tasks too, so a thread-local recorder would
//! miss them). Its snapshots are deltas (counters are swapped to zero, histograms drained);
//! every test checks that first, starts from a drained recorder, and holds a file-wide lock,
//! so that under `cargo test` (tests as threads of one process) no test sees another's
//! numbers. Under nextest each test is its own process anyway.
#![cfg(feature = "metrics")]
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

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use support::checks::{RELAXED, held_everywhere, ms, render, settle, watchdog, within};
use support::servers::{Masters, RedisServer, ServerOptions, free_port};
use support::unique_name;
use tokio::sync::{Mutex, MutexGuard};
use tokio_redlock::{LockError, LockManager};

const ACQUISITIONS: &str = "redlock_acquisitions_total";
const ACQUIRE_FAILURES: &str = "redlock_acquire_failures_total";
const EXTENSIONS: &str = "redlock_extensions_total";
const LOSSES: &str = "redlock_losses_total";
const RELEASES: &str = "redlock_releases_total";
const ACQUIRE_SECONDS: &str = "redlock_acquire_seconds";
const HOLD_SECONDS: &str = "redlock_hold_seconds";
const MASTER_ERRORS: &str = "redlock_master_errors_total";
/// Every metric the crate docs list; nothing else may be recorded (no duplicates of
/// `redlock_acquire_failures_total{reason}` such as a separate conflicts counter).
const DOCUMENTED: &[&str] = &[
    ACQUISITIONS,
    ACQUIRE_FAILURES,
    EXTENSIONS,
    LOSSES,
    RELEASES,
    ACQUIRE_SECONDS,
    HOLD_SECONDS,
    MASTER_ERRORS,
];

/// A counter of this file only, to check that snapshots are deltas.
const PROBE: &str = "test_probe_total";

/// The per-lock metrics of a single-resource lock carry `primitive="mutex"`.
const MUTEX: &[(&str, &str)] = &[("primitive", "mutex")];
const OK: &[(&str, &str)] = &[("outcome", "ok"), ("primitive", "mutex")];
const FAILED: &[(&str, &str)] = &[("outcome", "failed"), ("primitive", "mutex")];
/// `redlock_acquire_failures_total`'s label for a resource held elsewhere.
const CONFLICT: &[(&str, &str)] = &[("reason", "conflict"), ("primitive", "mutex")];
/// `redlock_acquire_failures_total`'s label for too few masters reachable.
const NO_QUORUM: &[(&str, &str)] = &[("reason", "no_quorum"), ("primitive", "mutex")];

/// Every label the crate docs allow, with its allowed values (`master` takes the configured
/// URLs, checked separately).
const ALLOWED_LABELS: &[(&str, &[&str])] = &[
    (
        "reason",
        &[
            "conflict",
            "no_quorum",
            "validity_exhausted",
            "fencing_contention",
            "not_a_lock",
            "closed",
            "other",
        ],
    ),
    ("outcome", &["ok", "failed"]),
    (
        "primitive",
        &["mutex", "multi", "permit", "reader", "writer"],
    ),
    (
        "kind",
        &[
            "timeout",
            "refused",
            "connection",
            "tls",
            "auth",
            "no_permission",
            "out_of_memory",
            "read_only",
            "not_master",
            "sentinel",
            "cluster",
            "server",
            "unexpected_reply",
            "same_server",
        ],
    ),
];

/// The global recorder's snapshotter, installing the recorder on first use.
fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .unwrap_or_else(|_| panic!("another global metrics recorder is installed"));
        snapshotter
    })
}

/// Serializes the tests of this file: they share the global recorder.
static SERIAL: Mutex<()> = Mutex::const_new(());

type Labels = Vec<(String, String)>;

/// What was recorded between two snapshots.
#[derive(Debug, Default)]
struct Recorded {
    counters: BTreeMap<(String, Labels), u64>,
    histograms: BTreeMap<(String, Labels), Vec<f64>>,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    let mut labels: Labels = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    labels
}

impl Recorded {
    /// Everything recorded since the last snapshot (counters at zero left out).
    fn snapshot() -> Self {
        let mut out = Self::default();
        for (key, _, _, value) in snapshotter().snapshot().into_vec() {
            let (kind, key) = key.into_parts();
            let mut labels: Labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let id = (key.name().to_owned(), labels);
            match (kind, value) {
                (MetricKind::Counter, DebugValue::Counter(0)) => {}
                (MetricKind::Counter, DebugValue::Counter(n)) => {
                    *out.counters.entry(id).or_default() += n;
                }
                (MetricKind::Histogram, DebugValue::Histogram(v)) if v.is_empty() => {}
                (MetricKind::Histogram, DebugValue::Histogram(v)) => out
                    .histograms
                    .entry(id)
                    .or_default()
                    .extend(v.into_iter().map(|x| x.0)),
                (kind, value) => panic!("the library records no {kind:?}: {id:?} = {value:?}"),
            }
        }
        out
    }

    /// The counter with exactly these labels.
    fn counter(&self, name: &str, pairs: &[(&str, &str)]) -> u64 {
        self.counters
            .get(&(name.to_owned(), labels(pairs)))
            .copied()
            .unwrap_or(0)
    }

    /// The counter summed over all its label sets.
    fn total(&self, name: &str) -> u64 {
        self.counters
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|(_, v)| *v)
            .sum()
    }

    /// The histogram's samples with exactly these labels.
    fn samples(&self, name: &str, pairs: &[(&str, &str)]) -> Vec<f64> {
        self.histograms
            .get(&(name.to_owned(), labels(pairs)))
            .cloned()
            .unwrap_or_default()
    }

    /// Adds `other`'s counts and samples to these.
    fn absorb(&mut self, other: Self) {
        for (id, n) in other.counters {
            *self.counters.entry(id).or_default() += n;
        }
        for (id, v) in other.histograms {
            self.histograms.entry(id).or_default().extend(v);
        }
    }

    /// `redlock_master_errors_total` for one master and kind.
    fn master_errors(&self, master: &str, kind: &str) -> u64 {
        self.counter(MASTER_ERRORS, &[("master", master), ("kind", kind)])
    }

    /// `(master, kind, count)` of every failed-request counter.
    fn all_master_errors(&self) -> Vec<(String, String, u64)> {
        self.counters
            .iter()
            .filter(|((n, _), _)| n == MASTER_ERRORS)
            .map(|((_, labels), v)| {
                let get = |k: &str| {
                    labels
                        .iter()
                        .find(|(name, _)| name == k)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                (get("master"), get("kind"), *v)
            })
            .collect()
    }

    /// Every `(name, labels)` recorded.
    fn series(&self) -> impl Iterator<Item = &(String, Labels)> {
        self.counters.keys().chain(self.histograms.keys())
    }
}

/// One test's view of the recorder: exclusive, starting from zero, with label checks.
struct Metrics {
    /// Texts no label may contain: resource names, passwords.
    forbidden: Vec<String>,
    /// Master labels allowed so far (the managers' redacted addresses).
    masters: std::sync::Mutex<Vec<String>>,
    _serial: MutexGuard<'static, ()>,
}

impl Metrics {
    /// Takes the file-wide lock, drains the recorder and checks that snapshots are deltas.
    async fn begin(forbidden: &[&str]) -> Self {
        let serial = SERIAL.lock().await;
        let _ = Recorded::snapshot();
        for _ in 0..2 {
            metrics::counter!(PROBE).increment(1);
            let probe = Recorded::snapshot().counter(PROBE, &[]);
            assert_eq!(
                probe, 1,
                "DebuggingRecorder snapshots must be deltas (counter reset on snapshot)"
            );
        }
        Self {
            forbidden: forbidden.iter().map(|s| (*s).to_owned()).collect(),
            masters: std::sync::Mutex::new(Vec::new()),
            _serial: serial,
        }
    }

    /// Allows `master` labels naming this manager's masters.
    fn allow_masters(&self, manager: &LockManager) {
        self.masters
            .lock()
            .unwrap()
            .extend(manager.masters().map(str::to_owned));
    }

    /// Like [`take`](Self::take), but keeps collecting for up to 2 s until `done` holds of
    /// what was collected: for a count recorded by a background task just after the event
    /// the test waited for.
    async fn take_until(&self, done: impl Fn(&Recorded) -> bool) -> Recorded {
        let mut recorded = self.take();
        let deadline = tokio::time::Instant::now() + ms(2_000);
        while !done(&recorded) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(ms(10)).await;
            recorded.absorb(self.take());
        }
        recorded
    }

    /// What was recorded since the last call, checked for bounded, secret-free labels.
    fn take(&self) -> Recorded {
        let recorded = Recorded::snapshot();
        let masters = self.masters.lock().unwrap().clone();
        for (name, labels) in recorded.series() {
            assert!(
                DOCUMENTED.contains(&name.as_str()) || name == PROBE,
                "undocumented metric {name}"
            );
            for (key, value) in labels {
                for secret in &self.forbidden {
                    assert!(
                        !key.contains(secret.as_str()) && !value.contains(secret.as_str()),
                        "label {key}={value} of {name} contains {secret:?}"
                    );
                }
                if key == "master" {
                    assert!(
                        masters.contains(value),
                        "{name}: master label {value:?} is not a configured master's \
                         redacted address ({masters:?})"
                    );
                    continue;
                }
                let allowed = ALLOWED_LABELS
                    .iter()
                    .find(|(k, _)| k == key)
                    .unwrap_or_else(|| panic!("{name}: undocumented label {key}={value}"));
                assert!(
                    allowed.1.contains(&value.as_str()),
                    "{name}: undocumented value {key}={value}"
                );
            }
        }
        recorded
    }
}

/// A manager over `urls` whose per-master budget is `node_timeout`, with its master labels
/// allowed.
fn watched(m: &Metrics, builder: tokio_redlock::LockManagerBuilder) -> LockManager {
    let manager = builder.build().unwrap();
    m.allow_masters(&manager);
    manager
}

fn assert_between(what: &str, samples: &[f64], low: f64, high: f64) {
    for s in samples {
        assert!(
            (low..high).contains(s),
            "{what}: sample {s} s outside [{low}, {high}): {samples:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_extend_and_release_move_their_counters_and_histograms() {
    let resource = unique_name("metrics-private-resource");
    let m = Metrics::begin(&[&resource]).await;
    let masters = Masters::start(3);
    let manager = watched(
        &m,
        LockManager::builder()
            .servers(masters.urls())
            .node_timeout(RELAXED),
    );

    // An acquisition: one count, one acquire time, nothing else.
    let mut lock = watchdog("lock", manager.lock(&resource).ttl(ms(10_000)))
        .await
        .unwrap();
    held_everywhere(masters.iter(), resource.as_bytes(), lock.token()).await;
    let r = m.take();
    assert_eq!(r.counter(ACQUISITIONS, MUTEX), 1, "{r:#?}");
    let acquired = r.samples(ACQUIRE_SECONDS, OK);
    assert_eq!(acquired.len(), 1, "{r:#?}");
    assert_between("acquire_seconds", &acquired, 0.0, 5.0);
    for name in [ACQUIRE_FAILURES, RELEASES, EXTENSIONS, LOSSES] {
        assert_eq!(r.total(name), 0, "{name}: {r:#?}");
    }
    assert!(r.samples(ACQUIRE_SECONDS, FAILED).is_empty(), "{r:#?}");
    assert!(r.all_master_errors().is_empty(), "{r:#?}");

    // An extension.
    watchdog("extend", manager.extend(&mut lock, ms(10_000)))
        .await
        .unwrap();
    let r = m.take();
    assert_eq!(r.counter(EXTENSIONS, OK), 1, "{r:#?}");
    assert_eq!(r.counter(EXTENSIONS, FAILED), 0, "{r:#?}");

    // A release after a 200 ms hold: the hold time is at least that.
    tokio::time::sleep(ms(200)).await;
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    let r = m.take();
    assert_eq!(r.counter(RELEASES, OK), 1, "{r:#?}");
    assert_eq!(r.counter(RELEASES, FAILED), 0, "{r:#?}");
    let held = r.samples(HOLD_SECONDS, MUTEX);
    assert_eq!(held.len(), 1, "{r:#?}");
    assert_between("hold_seconds", &held, 0.2, 10.0);
    assert_eq!(r.total(ACQUISITIONS), 0, "{r:#?}");

    // A lapsed lock: its extension and its release fail, and no hold time is recorded.
    let mut lapsed = watchdog("lock", manager.lock(&resource).ttl(ms(200)))
        .await
        .unwrap();
    tokio::time::sleep(ms(350)).await;
    let e = watchdog("extend", manager.extend(&mut lapsed, ms(1_000)))
        .await
        .unwrap_err();
    assert!(e.is_not_held(), "{}", render(&e));
    let e = watchdog("unlock", manager.unlock(&mut lapsed))
        .await
        .unwrap_err();
    assert!(e.is_not_held(), "{}", render(&e));
    let r = m.take();
    assert_eq!(r.counter(ACQUISITIONS, MUTEX), 1, "{r:#?}");
    assert_eq!(r.counter(EXTENSIONS, FAILED), 1, "{r:#?}");
    assert_eq!(r.counter(EXTENSIONS, OK), 0, "{r:#?}");
    assert_eq!(r.counter(RELEASES, FAILED), 1, "{r:#?}");
    assert_eq!(r.counter(RELEASES, OK), 0, "{r:#?}");
    assert!(r.samples(HOLD_SECONDS, MUTEX).is_empty(), "{r:#?}");
    assert_eq!(r.total(LOSSES), 0, "a plain Lock is never 'lost': {r:#?}");

    // Guards and `with_lock` count like locks.
    let guard = watchdog("acquire", manager.acquire(&resource))
        .await
        .unwrap();
    watchdog("release", guard.release()).await.unwrap();
    let seven = watchdog(
        "with_lock",
        manager.with_lock(&resource, |_handle| async { 7 }),
    )
    .await
    .unwrap();
    assert_eq!(seven, 7);
    let r = m.take();
    assert_eq!(r.counter(ACQUISITIONS, MUTEX), 2, "{r:#?}");
    assert_eq!(r.samples(ACQUIRE_SECONDS, OK).len(), 2, "{r:#?}");
    assert_eq!(r.counter(RELEASES, OK), 2, "{r:#?}");
    assert_eq!(r.samples(HOLD_SECONDS, MUTEX).len(), 2, "{r:#?}");
    assert_eq!(r.total(ACQUIRE_FAILURES), 0, "{r:#?}");

    // A waiting acquisition: its acquire time includes the wait, and a wait that ends in
    // success is no conflict.
    let other = watched(
        &m,
        LockManager::builder()
            .servers(masters.urls())
            .node_timeout(RELAXED),
    );
    let mut theirs = watchdog("lock", other.lock(&resource).ttl(ms(10_000)))
        .await
        .unwrap();
    let releaser = tokio::spawn({
        let other = other.clone();
        async move {
            tokio::time::sleep(ms(400)).await;
            other.unlock(&mut theirs).await
        }
    });
    let mut waited = watchdog("wait", manager.lock(&resource).wait(ms(4_000)))
        .await
        .unwrap();
    releaser.await.unwrap().unwrap();
    watchdog("unlock", manager.unlock(&mut waited))
        .await
        .unwrap();
    let r = m.take();
    assert_eq!(r.counter(ACQUISITIONS, MUTEX), 2, "{r:#?}");
    let times = r.samples(ACQUIRE_SECONDS, OK);
    assert_eq!(times.len(), 2, "{r:#?}");
    let longest = times.iter().copied().fold(0.0, f64::max);
    assert!(
        longest >= 0.35,
        "the waiter's acquire time includes its ~400 ms wait: {times:?}"
    );
    assert_eq!(r.total(ACQUIRE_FAILURES), 0, "{r:#?}");
    assert_eq!(r.counter(RELEASES, OK), 2, "{r:#?}");
    assert!(r.all_master_errors().is_empty(), "{r:#?}");

    settle(&manager).await;
    settle(&other).await;
    let r = m.take();
    assert!(r.all_master_errors().is_empty(), "{r:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_acquisitions_are_counted_once_each_by_reason() {
    let resource = unique_name("metrics-contended-resource");
    let not_a_lock = unique_name("metrics-hash-resource");
    let m = Metrics::begin(&[&resource, &not_a_lock]).await;
    let masters = Masters::start(3);
    let holder = watched(
        &m,
        LockManager::builder()
            .servers(masters.urls())
            .node_timeout(RELAXED),
    );
    let contender = watched(
        &m,
        LockManager::builder()
            .servers(masters.urls())
            .node_timeout(RELAXED)
            .retry_delay(ms(50))
            .retry_jitter(ms(10)),
    );
    let mut held = watchdog("lock", holder.lock(&resource).ttl(ms(10_000)))
        .await
        .unwrap();
    held_everywhere(masters.iter(), resource.as_bytes(), held.token()).await;
    let r = m.take();
    assert_eq!(r.counter(ACQUISITIONS, MUTEX), 1, "{r:#?}");

    // One attempt refused by every master: a conflict.
    let e = watchdog("try_lock", contender.try_lock(&resource))
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{}", render(&e));
    let r = m.take();
    assert_eq!(r.counter(ACQUIRE_FAILURES, CONFLICT), 1, "{r:#?}");
    assert_eq!(r.total(ACQUIRE_FAILURES), 1, "{r:#?}");
    assert_eq!(r.total(ACQUISITIONS), 0, "{r:#?}");
    let failed = r.samples(ACQUIRE_SECONDS, FAILED);
    assert_eq!(failed.len(), 1, "{r:#?}");
    assert_between("failed acquire_seconds", &failed, 0.0, 5.0);
    assert!(r.samples(ACQUIRE_SECONDS, OK).is_empty(), "{r:#?}");

    // Three attempts (two retries) are still one failed acquisition.
    let e = watchdog("lock", contender.lock(&resource).retry_count(2))
        .await
        .unwrap_err();
    match &e {
        LockError::Conflict { attempts, .. } => assert_eq!(*attempts, 3, "{}", render(&e)),
        other => panic!("expected a conflict, got {}", render(other)),
    }
    let r = m.take();
    assert_eq!(r.counter(ACQUIRE_FAILURES, CONFLICT), 1, "{r:#?}");
    assert_eq!(r.total(ACQUIRE_FAILURES), 1, "{r:#?}");
    assert_eq!(r.samples(ACQUIRE_SECONDS, FAILED).len(), 1, "{r:#?}");

    // A bounded wait that ends in a conflict: its time includes the wait.
    let e = watchdog("wait", contender.lock(&resource).wait(ms(400)))
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{}", render(&e));
    let r = m.take();
    assert_eq!(r.counter(ACQUIRE_FAILURES, CONFLICT), 1, "{r:#?}");
    let failed = r.samples(ACQUIRE_SECONDS, FAILED);
    assert_eq!(failed.len(), 1, "{r:#?}");
    assert_between("waited acquire_seconds", &failed, 0.35, 5.0);

    // A non-lock value under the key: reason `not_a_lock`, neither a conflict nor a quorum
    // failure.
    for s in masters.iter() {
        s.cmd(&["HSET", &not_a_lock, "f", "v"]);
    }
    let e = watchdog("try_lock", contender.try_lock(&not_a_lock))
        .await
        .unwrap_err();
    assert!(e.is_not_a_lock(), "{}", render(&e));
    // A TTL the library refuses before any request: reason `other`.
    let e = watchdog("lock", contender.lock(&resource).ttl(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(e.is_invalid_input(), "{}", render(&e));
    let r = m.take();
    assert_eq!(
        r.counter(
            ACQUIRE_FAILURES,
            &[("reason", "not_a_lock"), ("primitive", "mutex")]
        ),
        1,
        "{r:#?}"
    );
    assert_eq!(
        r.counter(
            ACQUIRE_FAILURES,
            &[("reason", "other"), ("primitive", "mutex")]
        ),
        1,
        "{r:#?}"
    );
    assert_eq!(r.total(ACQUIRE_FAILURES), 2, "{r:#?}");
    assert_eq!(r.samples(ACQUIRE_SECONDS, FAILED).len(), 2, "{r:#?}");

    // A closed manager: reason `closed`.
    contender.close().await;
    let e = watchdog("try_lock", contender.try_lock(&resource))
        .await
        .unwrap_err();
    assert!(matches!(e, LockError::Closed), "{}", render(&e));
    let r = m.take();
    assert_eq!(
        r.counter(
            ACQUIRE_FAILURES,
            &[("reason", "closed"), ("primitive", "mutex")]
        ),
        1,
        "{r:#?}"
    );
    assert_eq!(r.total(ACQUIRE_FAILURES), 1, "{r:#?}");

    // Contention is not a master failure.
    watchdog("unlock", holder.unlock(&mut held)).await.unwrap();
    settle(&holder).await;
    let r = m.take();
    assert_eq!(r.counter(RELEASES, OK), 1, "{r:#?}");
    assert!(r.all_master_errors().is_empty(), "{r:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_masters_count_no_quorum_and_errors_per_master_and_kind() {
    let resource = unique_name("metrics-unreachable-resource");
    let m = Metrics::begin(&[&resource]).await;
    let mut masters = Masters::start(3);
    let urls = masters.urls();
    let manager = watched(
        &m,
        LockManager::builder()
            .servers(urls)
            .node_timeout(ms(200))
            .connect_timeout(ms(500)),
    );
    // The `master` labels: the configured URLs as `masters()` shows them.
    let urls: Vec<String> = manager.masters().map(str::to_owned).collect();
    // Connected to all three first.
    let mut lock = watchdog("lock", manager.try_lock(&resource)).await.unwrap();
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    settle(&manager).await;
    let _ = m.take();

    // Master 1 killed (its connection dies), master 2 frozen (requests time out).
    masters[1].kill();
    masters[2].pause();
    let e = within(ms(5_000), "try_lock", manager.try_lock(&resource))
        .await
        .unwrap_err();
    assert!(e.is_unavailable(), "{}", render(&e));
    settle(&manager).await;
    let r = m.take();
    assert_eq!(r.counter(ACQUIRE_FAILURES, NO_QUORUM), 1, "{r:#?}");
    assert_eq!(r.total(ACQUIRE_FAILURES), 1, "{r:#?}");
    assert_eq!(r.total(ACQUISITIONS), 0, "{r:#?}");
    assert_eq!(r.samples(ACQUIRE_SECONDS, FAILED).len(), 1, "{r:#?}");
    let killed = r.master_errors(&urls[1], "refused") + r.master_errors(&urls[1], "connection");
    assert!(
        killed >= 1,
        "the killed master's failures are `refused` or `connection`: {:#?}",
        r.all_master_errors()
    );
    assert!(
        r.master_errors(&urls[2], "timeout") >= 1,
        "the frozen master's failures are `timeout`: {:#?}",
        r.all_master_errors()
    );
    for (master, kind, _) in r.all_master_errors() {
        assert_ne!(
            master, urls[0],
            "the healthy master had no failure ({kind})"
        );
        let expected: &[&str] = if master == urls[1] {
            &["refused", "connection"]
        } else {
            &["timeout"]
        };
        assert!(
            expected.contains(&kind.as_str()),
            "{master}: unexpected kind {kind}"
        );
    }

    // A manager that never connected to the killed master: exactly `refused`.
    let fresh = watched(
        &m,
        LockManager::builder()
            .server(urls[1].clone())
            .connect_timeout(ms(500)),
    );
    let e = watchdog("try_lock", fresh.try_lock(&resource))
        .await
        .unwrap_err();
    assert!(e.is_unavailable(), "{}", render(&e));
    let r = m.take();
    assert!(r.master_errors(&urls[1], "refused") >= 1, "{r:#?}");
    assert_eq!(r.master_errors(&urls[1], "connection"), 0, "{r:#?}");
    assert_eq!(r.counter(ACQUIRE_FAILURES, NO_QUORUM), 1, "{r:#?}");
    masters[2].resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failures_are_labelled_with_the_redacted_master_and_no_password() {
    const PASSWORD: &str = "c0rrect-h0rse";
    const WRONG: &str = "wr0ng-batt3ry";
    let resource = unique_name("metrics-auth-resource");
    let m = Metrics::begin(&[&resource, PASSWORD, WRONG]).await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("auth.sock");
    let server = RedisServer::start(ServerOptions::default().args(&[
        "--requirepass",
        PASSWORD,
        "--unixsocket",
        socket.to_str().unwrap(),
        "--unixsocketperm",
        "700",
    ]));
    server.cmd(&["ACL", "SETUSER", "locker", "on", ">pw", "~*", "+@all"]);
    let port = server.port();
    let cases = [
        // A wrong password, a missing one, an ACL user's wrong one, and a wrong one in a
        // unix socket's query.
        format!("redis://:{WRONG}@127.0.0.1:{port}"),
        format!("redis://127.0.0.1:{port}"),
        format!("redis://locker:{WRONG}@127.0.0.1:{port}"),
        format!("redis+unix://{}?pass={WRONG}", socket.display()),
    ];
    for url in cases {
        let manager = watched(&m, LockManager::builder().server(url.clone()));
        let label = manager.masters().next().unwrap().to_owned();
        assert!(!label.contains(WRONG), "{label}");
        let e = watchdog("try_lock", manager.try_lock(&resource))
            .await
            .unwrap_err();
        assert!(e.is_auth(), "{url}: {}", render(&e));
        // The failed attempt's cleanup release runs in the background (and fails too).
        settle(&manager).await;
        let r = m.take();
        assert!(
            r.master_errors(&label, "auth") >= 1,
            "{label}: {:#?}",
            r.all_master_errors()
        );
        assert!(
            r.all_master_errors()
                .iter()
                .all(|(master, kind, _)| *master == label && kind == "auth"),
            "only `auth` failures of this master: {:#?}",
            r.all_master_errors()
        );
        assert_eq!(r.counter(ACQUIRE_FAILURES, NO_QUORUM), 1, "{r:#?}");
    }
    // The labels name the masters the way `masters()` does, password replaced.
    let masters = m.masters.lock().unwrap().clone();
    assert!(
        masters.contains(&format!("redis://:***@127.0.0.1:{port}"))
            && masters.contains(&format!("redis://locker:***@127.0.0.1:{port}")),
        "{masters:?}"
    );

    // The right password works and records no failure.
    let manager = watched(
        &m,
        LockManager::builder().server(format!("redis://:{PASSWORD}@127.0.0.1:{port}")),
    );
    let mut lock = watchdog("lock", manager.try_lock(&resource)).await.unwrap();
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    let r = m.take();
    assert!(r.all_master_errors().is_empty(), "{r:#?}");
    assert_eq!(r.counter(ACQUISITIONS, MUTEX), 1, "{r:#?}");
}

/// The `master` label of `redlock_master_errors_total` is the member's redacted address, so a
/// Sentinel URL's `sentinel_password` never reaches the exported metrics — also when the
/// query names the parameter percent-encoded (`sentinel%5Fpassword=`), which the parser
/// decodes (the sentinels get the password) and which the redaction therefore matches
/// decoded too. Nothing listens on the two sentinels' ports: the lookup fails and a master
/// error is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_passwords_never_reach_the_metrics_labels() {
    const SECRET: &str = "TOPSECRET";
    let resource = unique_name("metrics-sentinel-resource");
    let m = Metrics::begin(&[&resource, SECRET]).await;
    for param in ["sentinel%5Fpassword", "sentinel_password"] {
        let (a, b) = (free_port(), free_port());
        let url = format!("redis+sentinel://127.0.0.1:{a},127.0.0.1:{b}/m?{param}={SECRET}");
        let manager = watched(
            &m,
            LockManager::builder().server(url).connect_timeout(ms(500)),
        );
        let label = manager.masters().next().unwrap().to_owned();
        assert!(!label.contains(SECRET), "{label}");
        let e = watchdog("try_lock", manager.try_lock(&resource))
            .await
            .unwrap_err();
        assert!(e.is_unavailable(), "{param}: {}", render(&e));
        settle(&manager).await;
        let r = m.take();
        let errors = r.all_master_errors();
        assert!(
            !errors.is_empty() && errors.iter().all(|(master, ..)| *master == label),
            "{param}: master errors of {label} only: {errors:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guards_that_lose_their_lock_count_losses_and_failed_extensions() {
    let resource = unique_name("metrics-lost-resource");
    let m = Metrics::begin(&[&resource]).await;
    let masters = Masters::start(3);
    let urls = masters.urls();
    let manager = watched(
        &m,
        LockManager::builder()
            .servers(urls)
            .node_timeout(ms(100))
            .connect_timeout(ms(300)),
    );
    let urls: Vec<String> = manager.masters().map(str::to_owned).collect();

    // Auto-extended every 300 ms: extensions succeed while the masters answer.
    let guard = watchdog(
        "acquire",
        manager
            .acquire(&resource)
            .ttl(ms(900))
            .extend_every(ms(300)),
    )
    .await
    .unwrap();
    tokio::time::sleep(ms(700)).await;
    assert!(guard.is_valid() && !guard.is_lost());
    let r = m.take();
    assert_eq!(r.counter(ACQUISITIONS, MUTEX), 1, "{r:#?}");
    assert!(r.counter(EXTENSIONS, OK) >= 1, "{r:#?}");
    assert_eq!(r.counter(EXTENSIONS, FAILED), 0, "{r:#?}");
    assert_eq!(r.total(LOSSES), 0, "{r:#?}");

    // Two masters frozen: every extension times out there, and the lock is lost at its
    // deadline.
    masters[1].pause();
    masters[2].pause();
    within(ms(3_000), "lost()", guard.lost()).await;
    assert!(guard.is_lost());
    // The watchdog counts the loss just after waking `lost()`.
    let r = m.take_until(|r| r.total(LOSSES) > 0).await;
    assert_eq!(r.counter(LOSSES, MUTEX), 1, "{r:#?}");
    assert!(r.counter(EXTENSIONS, FAILED) >= 1, "{r:#?}");
    for url in &urls[1..] {
        assert!(
            r.master_errors(url, "timeout") >= 1,
            "{url}: {:#?}",
            r.all_master_errors()
        );
    }
    // Releasing a lost guard fails (no quorum answers): a failed release, no hold time.
    let e = watchdog("release", guard.release()).await.unwrap_err();
    assert!(e.is_unavailable() || e.is_not_held(), "{}", render(&e));
    let r = m.take();
    assert_eq!(r.counter(RELEASES, FAILED), 1, "{r:#?}");
    assert_eq!(r.counter(RELEASES, OK), 0, "{r:#?}");
    assert!(r.samples(HOLD_SECONDS, MUTEX).is_empty(), "{r:#?}");
    assert_eq!(r.total(LOSSES), 0, "a loss is counted once: {r:#?}");
    masters[1].resume();
    masters[2].resume();
    settle(&manager).await;
    let _ = m.take();

    // A guard without auto-extension runs out at its deadline: also a loss. Dropped
    // afterwards, its release finds the keys gone.
    let guard = watchdog("acquire", manager.acquire(&resource).ttl(ms(300)))
        .await
        .unwrap();
    within(ms(3_000), "lost()", guard.lost()).await;
    tokio::time::sleep(ms(100)).await;
    drop(guard);
    settle(&manager).await;
    let r = m.take();
    assert_eq!(r.counter(LOSSES, MUTEX), 1, "{r:#?}");
    assert_eq!(r.total(EXTENSIONS), 0, "{r:#?}");
    assert_eq!(r.counter(RELEASES, FAILED), 1, "{r:#?}");
    assert_eq!(r.counter(RELEASES, OK), 0, "{r:#?}");

    // Closing the manager ends a live guard without counting a loss: its lock is released.
    let guard = watchdog(
        "acquire",
        manager.acquire(&resource).ttl(ms(5_000)).auto_extend(),
    )
    .await
    .unwrap();
    within(ms(5_000), "close", manager.close()).await;
    assert!(guard.is_lost(), "holders are told the lock is gone");
    let r = m.take();
    assert_eq!(r.total(LOSSES), 0, "close is not a loss: {r:#?}");
    assert_eq!(r.counter(RELEASES, OK), 1, "{r:#?}");
    assert_eq!(r.samples(HOLD_SECONDS, MUTEX).len(), 1, "{r:#?}");
    for s in masters.iter() {
        assert!(!s.exists(resource.as_bytes()), "released on {}", s.url());
    }
    drop(guard);
}

/// A password of every printable ASCII character, written as is (`/`, `?`, `#`, `@`
/// unencoded), never reaches the `master` label: right, the master answers; wrong, the
/// label of the auth failure is the redacted URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_of_every_printable_ascii_character_never_reaches_the_master_label() {
    let all: String = (0x20u8..=0x7e).map(char::from).collect();
    let password = format!("SeCrEt{all}SeCrEt");
    let wrong = format!("SeCrEt{}SeCrEt", all.chars().rev().collect::<String>());
    let resource = unique_name("metrics-every-character");
    let m = Metrics::begin(&[&resource, "SeC", "eCr", "CrE", "rEt", "./0123", "?@ABC"]).await;
    let server = RedisServer::start(ServerOptions::default());
    server.cmd(&["CONFIG", "SET", "requirepass", &password]);
    let port = server.port();
    let refused = watched(
        &m,
        LockManager::builder().server(format!("redis://default:{wrong}@127.0.0.1:{port}")),
    );
    let label = refused.masters().next().unwrap().to_owned();
    assert_eq!(label, format!("redis://default:***@127.0.0.1:{port}"));
    let e = watchdog("try_lock", refused.try_lock(&resource))
        .await
        .unwrap_err();
    assert!(e.is_auth(), "{}", render(&e));
    settle(&refused).await;
    let r = m.take();
    assert!(r.master_errors(&label, "auth") >= 1, "{r:#?}");
    let manager = watched(
        &m,
        LockManager::builder().server(format!("redis://default:{password}@127.0.0.1:{port}")),
    );
    let mut lock = watchdog("lock", manager.try_lock(&resource)).await.unwrap();
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    let r = m.take();
    assert!(r.all_master_errors().is_empty(), "{r:#?}");
}

/// A Redis Cluster member is one `master` label (its redacted URL), whichever node failed;
/// a `MOVED` redirection after a slot moved is routing, not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_member_is_labelled_as_one_member() {
    use support::cluster::RedisCluster;
    let secret = "MetricsClu5ter";
    let m = Metrics::begin(&[secret]).await;
    let cluster = RedisCluster::start_with_password(3, 0, secret);
    let url = cluster.url().replacen(
        "redis+cluster://",
        &format!("redis+cluster://:{secret}@"),
        1,
    );
    let manager = watched(
        &m,
        LockManager::builder()
            .server(url)
            .node_timeout(ms(200))
            .connect_timeout(ms(1_000))
            .retry_count(0),
    );
    let member: String = manager.masters().next().unwrap().to_owned();
    let key = unique_name("metrics-cluster");
    let mut lock = watchdog("lock", manager.lock(&key)).await.unwrap();
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    // The key's slot moves to another master: the member's layout is stale, MOVED follows.
    let slot = cluster.slot_of(key.as_bytes());
    let from = cluster.owner_of_slot(slot);
    let to = cluster.masters().into_iter().find(|i| *i != from).unwrap();
    cluster.begin_migration(slot, from, to).finish();
    let mut lock = watchdog("lock after MOVED", manager.lock(&key))
        .await
        .unwrap();
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    settle(&manager).await;
    let r = m.take();
    assert!(
        r.all_master_errors().is_empty(),
        "MOVED is not an error: {r:#?}"
    );
    // The slot's master frozen: its timeouts are the member's.
    cluster.nodes[to].server.pause();
    let e = within(ms(5_000), "try_lock", manager.try_lock(&key))
        .await
        .unwrap_err();
    cluster.nodes[to].server.resume();
    assert!(e.is_unavailable(), "{}", render(&e));
    let r = m
        .take_until(|r| r.master_errors(&member, "timeout") >= 1)
        .await;
    assert!(
        r.master_errors(&member, "timeout") >= 1,
        "{:#?}",
        r.all_master_errors()
    );
    for (master, _, _) in r.all_master_errors() {
        assert_eq!(master, member, "one label per member, not per node");
    }
    manager.close().await;
}

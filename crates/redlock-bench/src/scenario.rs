//! The names of things measured: scenarios, contenders and metrics.

use std::fmt;

/// One benchmark scenario (S1–S5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    /// S1 with one master: sequential lock+unlock cycles on distinct resources.
    S1One,
    /// S1 with three masters.
    S1Three,
    /// S2: 64 tasks, each cycling on its own resources (three masters).
    S2,
    /// S3: 16 tasks on one resource, each holding it ~1 ms (three masters).
    S3,
    /// S4: S1 with three masters, one of them frozen (SIGSTOP).
    S4,
    /// S5: S1 with three masters and fencing tokens.
    S5,
    /// S1 with three Redis Cluster members (three clusters of three masters each).
    S1Clusters,
    /// Beside S1_3m: sequential `lock_all` + unlock cycles on three distinct resources at
    /// once (three masters).
    MultiThree,
    /// Beside S1_3m: sequential read-lock + unlock cycles (three masters).
    Reader,
    /// Beside S1_3m: sequential write-lock + unlock cycles (three masters).
    Writer,
    /// Beside S1_3m: sequential permit + release cycles on a semaphore of
    /// [`SEMAPHORE_PERMITS`] permits (three masters).
    Permit,
}

/// Permits of the semaphore in the `permit_3m` scenario.
pub const SEMAPHORE_PERMITS: u32 = 4;

/// Resources locked at once in the `multi3_3m` scenario.
pub const MULTI_RESOURCES: usize = 3;

impl Scenario {
    /// Every scenario, in run order.
    pub const ALL: [Self; 11] = [
        Self::S1One,
        Self::S1Three,
        Self::S2,
        Self::S3,
        Self::S4,
        Self::S5,
        Self::S1Clusters,
        Self::MultiThree,
        Self::Reader,
        Self::Writer,
        Self::Permit,
    ];

    /// The primitives beside the mutex: `BENCHMARKS.md` shows them in a section of their
    /// own, next to S1_3m from the same run.
    pub const PRIMITIVES: [Self; 4] = [Self::MultiThree, Self::Reader, Self::Writer, Self::Permit];

    /// Whether it is one of [`PRIMITIVES`](Self::PRIMITIVES).
    pub fn is_primitive(self) -> bool {
        Self::PRIMITIVES.contains(&self)
    }

    /// The id used in `RESULT` lines and on the command line.
    pub fn id(self) -> &'static str {
        match self {
            Self::S1One => "S1_1m",
            Self::S1Three => "S1_3m",
            Self::S2 => "S2",
            Self::S3 => "S3",
            Self::S4 => "S4",
            Self::S5 => "S5",
            Self::S1Clusters => "S1_3c",
            Self::MultiThree => "multi3_3m",
            Self::Reader => "read_3m",
            Self::Writer => "write_3m",
            Self::Permit => "permit_3m",
        }
    }

    /// Parses [`id`](Self::id) (case-insensitive; `S1` means both S1 variants' first).
    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.id().eq_ignore_ascii_case(id))
    }

    /// One line saying what the scenario does.
    pub fn title(self) -> &'static str {
        match self {
            Self::S1One => {
                "S1 latency, 1 master: one client, sequential lock+unlock on distinct resources, TTL 10 s"
            }
            Self::S1Three => {
                "S1 latency, 3 masters: one client, sequential lock+unlock on distinct resources, TTL 10 s"
            }
            Self::S2 => {
                "S2 throughput, 3 masters: 64 tasks, each cycling lock+unlock on its own resources"
            }
            Self::S3 => {
                "S3 contention, 3 masters: 16 tasks on one resource, each holds it ~1 ms then releases and asks again"
            }
            Self::S4 => "S4 degraded, 3 masters with one frozen (SIGSTOP): S1 otherwise",
            Self::S5 => "S5 fencing, 3 masters: S1 with a fencing token per acquisition",
            Self::S1Clusters => {
                "S1 latency, 3 Redis Cluster members (three clusters of 3 masters, keys spread over every slot): S1 otherwise"
            }
            Self::MultiThree => {
                "Multi-resource lock, 3 masters: S1 with `lock_all` of 3 distinct resources + unlock per cycle"
            }
            Self::Reader => "Read lock, 3 masters: S1 with `read_lock` + unlock per cycle",
            Self::Writer => "Write lock, 3 masters: S1 with `write_lock` + unlock per cycle",
            Self::Permit => {
                "Semaphore, 3 masters: S1 with one permit of a 4-permit semaphore + unlock per cycle"
            }
        }
    }

    /// Masters the scenario uses.
    pub fn masters(self) -> usize {
        match self {
            Self::S1One => 1,
            _ => 3,
        }
    }

    /// Whether its contenders take turns cycle by cycle (S1, S5) rather than one after the
    /// other (S2, S3, and S4, where one cycle of the floor or rslock takes 100 ms to 1 s).
    pub fn interleaved(self) -> bool {
        matches!(
            self,
            Self::S1One
                | Self::S1Three
                | Self::S5
                | Self::S1Clusters
                | Self::MultiThree
                | Self::Reader
                | Self::Writer
                | Self::Permit
        )
    }

    /// The contenders that run it.
    pub fn contenders(self) -> Vec<Contender> {
        // The floor speaks to fixed masters: on clusters, tokio-redlock alone (compared with
        // its own S1_3m).
        if self == Self::S1Clusters {
            return vec![Contender::Ours];
        }
        // rslock has a mutex only.
        if self.is_primitive() {
            return vec![Contender::Floor, Contender::QuorumFloor, Contender::Ours];
        }
        let mut list = vec![Contender::Floor, Contender::QuorumFloor, Contender::Ours];
        match self {
            Self::S3 => {
                list.push(Contender::OursPoll10ms);
                list.push(Contender::OursPollDefault);
                if cfg!(feature = "compare") {
                    list.push(Contender::Rslock);
                    list.push(Contender::Rslock10ms);
                }
            }
            // The same client without fencing, interleaved, is the baseline of fencing's
            // cost; rslock has no fencing tokens.
            Self::S5 => list.push(Contender::OursNoFencing),
            _ => {
                if cfg!(feature = "compare") {
                    list.push(Contender::Rslock);
                }
            }
        }
        list
    }

    /// The metrics reported for it.
    pub fn metrics(self) -> &'static [Metric] {
        match self {
            Self::S1One
            | Self::S1Three
            | Self::S4
            | Self::S5
            | Self::S1Clusters
            | Self::MultiThree
            | Self::Reader
            | Self::Writer
            | Self::Permit => &[Metric::P50Us, Metric::P99Us],
            Self::S2 => &[Metric::OpsPerS, Metric::RssKb],
            Self::S3 => &[
                Metric::OpsPerS,
                Metric::HandoffPct,
                Metric::MinTask,
                Metric::MaxTask,
                Metric::MaxWaitMs,
            ],
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// Who runs a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Contender {
    /// The Redlock wire work by hand with `redis`: `SET NX PX` on all masters in parallel,
    /// waiting for every reply, then the compare-and-delete script on all in parallel. In
    /// S3 it retries after a random 0–10 ms.
    Floor,
    /// The floor, but each step returns as soon as a quorum replied.
    QuorumFloor,
    /// tokio-redlock at its defaults (in S3: waiting with `wait_forever()`, woken by release
    /// notifications, FIFO turns among the waiters of one manager).
    Ours,
    /// tokio-redlock polling: notifications off, retry delay 10 ms ± 5 ms; S3 only.
    OursPoll10ms,
    /// tokio-redlock polling: notifications off, default retry delay 200 ms ± 100 ms; S3 only.
    OursPollDefault,
    /// tokio-redlock without fencing tokens, beside `Ours` in S5 only.
    OursNoFencing,
    /// rslock at its defaults (3 tries, random 0–200 ms between them).
    Rslock,
    /// rslock with a 10 ms retry delay (random 0–10 ms); S3 only.
    Rslock10ms,
}

impl Contender {
    /// The name used in `RESULT` lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::Floor => "floor",
            Self::QuorumFloor => "quorum_floor",
            Self::Ours => "ours",
            Self::OursPoll10ms => "ours_poll_10ms",
            Self::OursPollDefault => "ours_poll_default",
            Self::OursNoFencing => "ours_no_fencing",
            Self::Rslock => "rslock",
            Self::Rslock10ms => "rslock_10ms",
        }
    }

    /// Parses [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Floor,
            Self::QuorumFloor,
            Self::Ours,
            Self::OursPoll10ms,
            Self::OursPollDefault,
            Self::OursNoFencing,
            Self::Rslock,
            Self::Rslock10ms,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }

    /// The name with its settings where they matter (S3).
    pub fn label(self, scenario: Scenario) -> String {
        let settings = match (self, scenario) {
            (Self::Floor | Self::QuorumFloor, Scenario::S3) => " (retry after 0–10 ms)",
            (Self::Ours, Scenario::S3) => " (defaults: release notifications on)",
            (Self::OursPoll10ms, _) => " (notifications off, retry 10 ± 5 ms)",
            (Self::OursPollDefault, _) => " (notifications off, retry 200 ± 100 ms)",
            (Self::Ours, Scenario::S5) => " (fencing on)",
            (Self::OursNoFencing, _) => " (fencing off)",
            (Self::Rslock, Scenario::S3) => " (defaults: 3 tries, 0–200 ms)",
            (Self::Rslock10ms, _) => " (3 tries, 0–10 ms)",
            _ => "",
        };
        format!("{}{settings}", self.name())
    }
}

impl fmt::Display for Contender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A measured figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Median cycle (lock+unlock) latency, µs.
    P50Us,
    /// 99th percentile cycle latency, µs.
    P99Us,
    /// Cycles (S2) or acquisitions (S3) per second.
    OpsPerS,
    /// Share of acquisitions that went to another task than the previous holder, %.
    HandoffPct,
    /// Fewest acquisitions of any task.
    MinTask,
    /// Most acquisitions of any task.
    MaxTask,
    /// Longest time a task waited for the lock (including a wait cut by the end), ms.
    MaxWaitMs,
    /// Peak resident set size of the process during the run, KiB.
    RssKb,
}

impl Metric {
    /// The name used in `RESULT` lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::P50Us => "p50_us",
            Self::P99Us => "p99_us",
            Self::OpsPerS => "ops_per_s",
            Self::HandoffPct => "handoff_pct",
            Self::MinTask => "min_task",
            Self::MaxTask => "max_task",
            Self::MaxWaitMs => "max_wait_ms",
            Self::RssKb => "rss_kb",
        }
    }

    /// The column header in the table.
    pub fn header(self) -> &'static str {
        match self {
            Self::P50Us => "p50 µs",
            Self::P99Us => "p99 µs",
            Self::OpsPerS => "ops/s",
            Self::HandoffPct => "hand-offs %",
            Self::MinTask => "fewest/task",
            Self::MaxTask => "most/task",
            Self::MaxWaitMs => "longest wait ms",
            Self::RssKb => "peak RSS KiB",
        }
    }

    /// Whether a smaller value is better (latencies, waits, memory).
    pub fn lower_is_better(self) -> bool {
        matches!(
            self,
            Self::P50Us | Self::P99Us | Self::MaxWaitMs | Self::RssKb | Self::MaxTask
        )
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

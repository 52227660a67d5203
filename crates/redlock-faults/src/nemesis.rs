//! Nemeses: the faults of the catalogue (design note §4.3), random schedules drawn from a
//! seed, and their execution against a [`Cluster`].
//!
//! A schedule is a list of [`Step`]s planned before the run from a [`SeededRng`]: the same
//! seed always yields the same faults, targets, durations and start offsets, so a failing
//! run can be replayed (`--seed`). Steps never overlap: each fault heals before the next one
//! starts, and every heal is recorded, which is what the liveness checks measure from.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::time::Instant;

use crate::harness::{ClientLink, Cluster, HResult, LOCK_USER};
use crate::history::{Op, Phase, Recorder};
use crate::register::FencedRegister;
use crate::rng::SeededRng;

/// One fault, with its targets (node indices, a client index, a process index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// F1/F2: SIGSTOP the nodes, SIGCONT after the hold.
    Pause {
        /// Nodes.
        nodes: Vec<usize>,
    },
    /// F3/F4: SIGKILL, wait `delay`, restart on the same dir (AOF `always`: data kept;
    /// no persistence: empty).
    KillRestart {
        /// Nodes.
        nodes: Vec<usize>,
        /// Downtime before the restart.
        delay: Duration,
    },
    /// F6: the proxies discard replies (the server executes, the client never hears).
    DropReplies {
        /// Nodes.
        nodes: Vec<usize>,
        /// Only this client link (else every link).
        client: Option<usize>,
    },
    /// F17: the proxies hold bytes both ways, then deliver them late in one burst.
    Stall {
        /// Nodes.
        nodes: Vec<usize>,
        /// Only this client link (else every link).
        client: Option<usize>,
    },
    /// F16: existing connections reset, new ones refused for the hold.
    Refuse {
        /// Nodes.
        nodes: Vec<usize>,
        /// Only this client link (else every link).
        client: Option<usize>,
    },
    /// F16: every connection to the nodes reset at once (one-shot).
    Reset {
        /// Nodes.
        nodes: Vec<usize>,
    },
    /// F7: latency added by the proxies, near the TTL.
    Latency {
        /// Nodes.
        nodes: Vec<usize>,
        /// Added delay.
        latency: Duration,
        /// On replies (else on requests).
        replies: bool,
    },
    /// F8: SIGSTOP a `lock-worker` process, ideally inside its critical section.
    ClientPause {
        /// Process index (`p<i>`).
        process: usize,
    },
    /// F9: a clock step on the nodes, emulated by shifting every lock key's TTL (positive:
    /// forward jump, keys expire `delta_ms` sooner; negative: backward jump). One-shot.
    ClockJump {
        /// Nodes.
        nodes: Vec<usize>,
        /// Step in ms.
        delta_ms: i64,
    },
    /// F9: a fast clock, emulated by 1 ms forward steps every `every`, for the hold.
    ClockDrift {
        /// Nodes.
        nodes: Vec<usize>,
        /// Period of the 1 ms steps.
        every: Duration,
    },
    /// F11: `SCRIPT FLUSH` (one-shot).
    ScriptFlush {
        /// Nodes.
        nodes: Vec<usize>,
    },
    /// F12: the library's ACL user loses `EVAL`/`EVALSHA` for the hold.
    AclNoEval {
        /// Nodes.
        nodes: Vec<usize>,
    },
    /// F13: `maxmemory` below usage with `noeviction` for the hold.
    Oom {
        /// Nodes.
        nodes: Vec<usize>,
    },
    /// F14: `CLIENT PAUSE <hold> WRITE`.
    ClientPauseWrite {
        /// Nodes.
        nodes: Vec<usize>,
    },
    /// F15: `DEBUG SLEEP <hold>`.
    DebugSleep {
        /// Nodes.
        nodes: Vec<usize>,
    },
}

impl Fault {
    /// Kind name, as in histories and figures.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Pause { .. } => "pause",
            Self::KillRestart { .. } => "kill-restart",
            Self::DropReplies { .. } => "drop-replies",
            Self::Stall { .. } => "stall",
            Self::Refuse { .. } => "refuse",
            Self::Reset { .. } => "reset",
            Self::Latency { .. } => "latency",
            Self::ClientPause { .. } => "client-pause",
            Self::ClockJump { .. } => "clock-jump",
            Self::ClockDrift { .. } => "clock-drift",
            Self::ScriptFlush { .. } => "script-flush",
            Self::AclNoEval { .. } => "acl-no-eval",
            Self::Oom { .. } => "oom",
            Self::ClientPauseWrite { .. } => "client-pause-write",
            Self::DebugSleep { .. } => "debug-sleep",
        }
    }

    /// The nodes it targets (empty for a client pause).
    pub fn nodes(&self) -> &[usize] {
        match self {
            Self::Pause { nodes }
            | Self::KillRestart { nodes, .. }
            | Self::DropReplies { nodes, .. }
            | Self::Stall { nodes, .. }
            | Self::Refuse { nodes, .. }
            | Self::Reset { nodes }
            | Self::Latency { nodes, .. }
            | Self::ClockJump { nodes, .. }
            | Self::ClockDrift { nodes, .. }
            | Self::ScriptFlush { nodes }
            | Self::AclNoEval { nodes }
            | Self::Oom { nodes }
            | Self::ClientPauseWrite { nodes }
            | Self::DebugSleep { nodes } => nodes,
            Self::ClientPause { .. } => &[],
        }
    }

    /// True when, for every client, fewer than a quorum of masters can grant meanwhile.
    pub fn outage(&self, n: usize, quorum: usize) -> bool {
        let majority = self.nodes().len() > n.saturating_sub(quorum);
        match self {
            Self::Pause { .. }
            | Self::KillRestart { .. }
            | Self::AclNoEval { .. }
            | Self::Oom { .. }
            | Self::ClientPauseWrite { .. }
            | Self::DebugSleep { .. }
            | Self::DropReplies { client: None, .. }
            | Self::Stall { client: None, .. }
            | Self::Refuse { client: None, .. } => majority,
            _ => false,
        }
    }

    /// History targets: `n<i>` for nodes, `p<i>` for a process.
    pub fn targets(&self) -> Vec<String> {
        match self {
            Self::ClientPause { process } => vec![format!("p{process}")],
            _ => self.nodes().iter().map(|n| format!("n{n}")).collect(),
        }
    }
}

/// A planned fault: start offset from the workload start, and how long it stays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Offset from the start of the workload.
    pub at: Duration,
    /// How long the fault stays before it is healed (0 for one-shot faults).
    pub hold: Duration,
    /// The fault.
    pub fault: Fault,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "+{:>6}ms {:<18} {:<14} hold {:>5}ms {}",
            self.at.as_millis(),
            self.fault.kind(),
            self.fault.targets().join(","),
            self.hold.as_millis(),
            detail(&self.fault)
        )
    }
}

fn detail(fault: &Fault) -> String {
    match fault {
        Fault::KillRestart { delay, .. } => format!("restart after {}ms", delay.as_millis()),
        Fault::DropReplies { client, .. }
        | Fault::Stall { client, .. }
        | Fault::Refuse { client, .. } => {
            client.map_or_else(|| "all clients".to_owned(), |c| format!("client link {c}"))
        }
        Fault::Latency {
            latency, replies, ..
        } => format!(
            "{}ms on {}",
            latency.as_millis(),
            if *replies { "replies" } else { "requests" }
        ),
        Fault::ClockJump { delta_ms, .. } => {
            if *delta_ms >= 0 {
                format!("forward {delta_ms}ms")
            } else {
                format!("backward {}ms", delta_ms.saturating_neg())
            }
        }
        Fault::ClockDrift { every, .. } => format!("+1ms every {}ms", every.as_millis()),
        _ => String::new(),
    }
}

/// Families of faults a scenario draws its schedule from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// No faults.
    None,
    /// F1.
    PauseMinority,
    /// F2.
    PauseMajority,
    /// F3 (AOF `always`).
    KillRestartAof,
    /// F4 with a restart delayed past the TTL (no persistence).
    RestartDelayed,
    /// F4 with an immediate restart (no persistence): may violate.
    RestartImmediate,
    /// F6, F16, F17: proxy faults.
    Proxy,
    /// F7.
    Latency,
    /// F8.
    ClientPause,
    /// F9 within the drift allowance, and backward jumps.
    ClockSkew,
    /// F11.
    ScriptFlush,
    /// F12.
    Acl,
    /// F13.
    Oom,
    /// F14.
    ClientPauseWrite,
    /// F15.
    DebugSleep,
    /// A random mix of every safe family.
    Mixed,
}

/// What a schedule is drawn for.
#[derive(Clone, Debug)]
pub struct ScheduleParams {
    /// Masters.
    pub nodes: usize,
    /// Lock TTL.
    pub ttl: Duration,
    /// Per-master timeout.
    pub node_timeout: Duration,
    /// Client links (for faults aimed at one client).
    pub links: usize,
    /// `lock-worker` processes.
    pub processes: usize,
    /// First fault no earlier than this offset.
    pub from: Duration,
    /// No fault starts at or after this offset.
    pub to: Duration,
}

impl ScheduleParams {
    fn quorum(&self) -> usize {
        self.nodes.checked_div(2).unwrap_or(0).saturating_add(1)
    }

    fn minority(&self) -> usize {
        self.nodes.saturating_sub(self.quorum()).max(1)
    }

    fn ttl_x(&self, rng: &mut SeededRng, lo: f64, hi: f64) -> Duration {
        rng.duration(self.ttl.mul_f64(lo), self.ttl.mul_f64(hi))
    }

    /// Drift allowance of the TTL in whole ms (`ttl × 1 % + 2 ms`, rounded down).
    fn drift_ms(&self) -> u64 {
        let drift = self
            .ttl
            .mul_f64(tokio_redlock::DEFAULT_DRIFT_FACTOR)
            .saturating_add(Duration::from_millis(2));
        u64::try_from(drift.as_millis()).unwrap_or(2)
    }
}

fn some_nodes(rng: &mut SeededRng, p: &ScheduleParams, lo: usize, hi: usize) -> Vec<usize> {
    let lo64 = u64::try_from(lo).unwrap_or(1);
    let hi64 = u64::try_from(hi.min(p.nodes)).unwrap_or(1);
    let k = usize::try_from(rng.range(lo64, hi64)).unwrap_or(1);
    rng.subset(p.nodes, k)
}

fn minority(rng: &mut SeededRng, p: &ScheduleParams) -> Vec<usize> {
    some_nodes(rng, p, 1, p.minority())
}

fn majority(rng: &mut SeededRng, p: &ScheduleParams) -> Vec<usize> {
    let q = p.quorum();
    some_nodes(rng, p, q, q.saturating_add(1))
}

fn any_nodes(rng: &mut SeededRng, p: &ScheduleParams) -> Vec<usize> {
    some_nodes(rng, p, 1, p.nodes)
}

fn either(rng: &mut SeededRng, p: &ScheduleParams) -> Vec<usize> {
    if rng.chance(0.5) {
        minority(rng, p)
    } else {
        majority(rng, p)
    }
}

fn client(rng: &mut SeededRng, p: &ScheduleParams) -> Option<usize> {
    (p.links > 1 && rng.chance(0.4)).then(|| rng.index(p.links))
}

/// One fault of `family` and its hold. `Mixed` picks a safe family first.
fn draw(family: Family, rng: &mut SeededRng, p: &ScheduleParams) -> Option<(Fault, Duration)> {
    Some(match family {
        Family::None => return None,
        Family::PauseMinority => (
            Fault::Pause {
                nodes: minority(rng, p),
            },
            p.ttl_x(rng, 0.3, 2.0),
        ),
        Family::PauseMajority => (
            Fault::Pause {
                nodes: majority(rng, p),
            },
            p.ttl_x(rng, 0.5, 1.5),
        ),
        Family::KillRestartAof => {
            let delay = p.ttl_x(rng, 0.0, 0.5);
            (
                Fault::KillRestart {
                    nodes: any_nodes(rng, p),
                    delay,
                },
                delay,
            )
        }
        Family::RestartDelayed => {
            let delay = p.ttl.saturating_add(
                rng.duration(Duration::from_millis(100), Duration::from_millis(300)),
            );
            (
                Fault::KillRestart {
                    nodes: some_nodes(rng, p, 1, p.quorum()),
                    delay,
                },
                delay,
            )
        }
        Family::RestartImmediate => (
            Fault::KillRestart {
                nodes: minority(rng, p),
                delay: Duration::ZERO,
            },
            Duration::ZERO,
        ),
        Family::Proxy => match rng.below(4) {
            0 => (
                Fault::DropReplies {
                    nodes: any_nodes(rng, p),
                    client: client(rng, p),
                },
                p.ttl_x(rng, 0.3, 1.5),
            ),
            1 => {
                let lo = p.node_timeout.saturating_mul(2);
                let hold = rng.duration(lo, p.ttl.max(lo));
                (
                    Fault::Stall {
                        nodes: any_nodes(rng, p),
                        client: client(rng, p),
                    },
                    hold,
                )
            }
            2 => (
                Fault::Refuse {
                    nodes: any_nodes(rng, p),
                    client: client(rng, p),
                },
                p.ttl_x(rng, 0.3, 1.5),
            ),
            _ => (
                Fault::Reset {
                    nodes: any_nodes(rng, p),
                },
                Duration::ZERO,
            ),
        },
        Family::Latency => (
            Fault::Latency {
                nodes: any_nodes(rng, p),
                latency: p.ttl_x(rng, 0.3, 1.0),
                replies: rng.chance(0.5),
            },
            p.ttl_x(rng, 1.0, 3.0),
        ),
        Family::ClientPause => {
            if p.processes == 0 {
                return None;
            }
            (
                Fault::ClientPause {
                    process: rng.index(p.processes),
                },
                p.ttl_x(rng, 1.5, 3.0),
            )
        }
        Family::ClockSkew => match rng.below(3) {
            0 => {
                let max = p.drift_ms().saturating_sub(2).max(1);
                (
                    Fault::ClockJump {
                        nodes: any_nodes(rng, p),
                        delta_ms: i64::try_from(rng.range(1, max)).unwrap_or(1),
                    },
                    Duration::ZERO,
                )
            }
            1 => {
                let ttl_ms = u64::try_from(p.ttl.as_millis()).unwrap_or(1_000);
                let back = rng.range(ttl_ms.checked_div(4).unwrap_or(1), ttl_ms);
                (
                    Fault::ClockJump {
                        nodes: any_nodes(rng, p),
                        delta_ms: i64::try_from(back).unwrap_or(1).saturating_neg(),
                    },
                    Duration::ZERO,
                )
            }
            _ => {
                // 1 ms per `every`: a clock 0.25 % or 0.5 % fast; over one TTL the keys lose
                // at most ttl × rate + 1 ms, within the drift allowance.
                let every = if rng.chance(0.5) { 200 } else { 400 };
                (
                    Fault::ClockDrift {
                        nodes: any_nodes(rng, p),
                        every: Duration::from_millis(every),
                    },
                    p.ttl_x(rng, 2.0, 4.0),
                )
            }
        },
        Family::ScriptFlush => (
            Fault::ScriptFlush {
                nodes: any_nodes(rng, p),
            },
            Duration::ZERO,
        ),
        Family::Acl => (
            Fault::AclNoEval {
                nodes: either(rng, p),
            },
            p.ttl_x(rng, 0.5, 1.5),
        ),
        Family::Oom => (
            Fault::Oom {
                nodes: either(rng, p),
            },
            p.ttl_x(rng, 0.5, 1.5),
        ),
        Family::ClientPauseWrite => (
            Fault::ClientPauseWrite {
                nodes: either(rng, p),
            },
            p.ttl_x(rng, 0.3, 1.5),
        ),
        Family::DebugSleep => (
            Fault::DebugSleep {
                nodes: either(rng, p),
            },
            p.ttl_x(rng, 0.3, 1.5),
        ),
        Family::Mixed => {
            let mut safe = vec![
                Family::PauseMinority,
                Family::PauseMajority,
                Family::KillRestartAof,
                Family::Proxy,
                Family::Latency,
                Family::ClockSkew,
                Family::ScriptFlush,
                Family::Acl,
                Family::Oom,
                Family::ClientPauseWrite,
                Family::DebugSleep,
            ];
            if p.processes > 0 {
                safe.push(Family::ClientPause);
            }
            let pick = *rng.pick(&safe)?;
            return draw(pick, rng, p);
        }
    })
}

/// Draws the schedule of `family` for a run.
pub fn schedule(family: Family, seed: u64, p: &ScheduleParams) -> Vec<Step> {
    let mut rng = SeededRng::new(seed).fork("schedule");
    let mut steps = Vec::new();
    let mut at = p.from;
    while at < p.to {
        let Some((fault, hold)) = draw(family, &mut rng, p) else {
            break;
        };
        // Time the step takes beyond its hold (restarts, the wait for a critical section).
        let extra = match fault {
            Fault::KillRestart { .. } => Duration::from_millis(400),
            Fault::ClientPause { .. } => Duration::from_millis(500),
            _ => Duration::ZERO,
        };
        let clocky = matches!(fault, Fault::ClockJump { .. } | Fault::ClockDrift { .. });
        let end = at.saturating_add(hold).saturating_add(extra);
        if end >= p.to {
            break;
        }
        steps.push(Step { at, hold, fault });
        // Gaps keep faults apart; after a clock step a whole TTL passes before the next
        // one, so that no key sees two steps (their sum could exceed the allowance).
        let gap = if clocky {
            p.ttl.saturating_add(
                rng.duration(Duration::from_millis(100), Duration::from_millis(400)),
            )
        } else if matches!(family, Family::ScriptFlush) {
            rng.duration(Duration::from_millis(100), Duration::from_millis(400))
        } else {
            rng.duration(Duration::from_millis(200), Duration::from_millis(800))
        };
        at = end.saturating_add(gap);
    }
    steps
}

/// A `lock-worker` process the nemesis can pause.
#[derive(Clone, Debug)]
pub struct Proc {
    /// `p<i>`.
    pub name: String,
    /// Its pid.
    pub pid: i32,
}

/// What the nemesis acts on.
#[derive(Clone)]
pub struct Nemesis {
    /// The masters and links.
    pub cluster: Arc<Cluster>,
    /// Records under the process name `nemesis`.
    pub rec: Recorder,
    /// `lock-worker` processes.
    pub processes: Vec<Proc>,
    /// The register (to catch a process inside its critical section).
    pub register: Option<Arc<FencedRegister>>,
}

impl fmt::Debug for Nemesis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nemesis")
            .field("processes", &self.processes)
            .finish_non_exhaustive()
    }
}

const ADMIN: Duration = Duration::from_secs(3);

impl Nemesis {
    fn links(&self, client: Option<usize>) -> Vec<Arc<ClientLink>> {
        match client {
            Some(c) => self.cluster.links.get(c).cloned().into_iter().collect(),
            None => self.cluster.links.clone(),
        }
    }

    fn proxies(
        &self,
        nodes: &[usize],
        client: Option<usize>,
        f: impl Fn(&crate::harness::FaultProxy),
    ) {
        for link in self.links(client) {
            for n in nodes {
                if let Some(p) = link.proxy(*n) {
                    f(p);
                }
            }
        }
    }

    fn mark(&self, fault: &Fault, phase: Phase, extra: &str) {
        let n = self.cluster.nodes.len();
        let mut d = detail(fault);
        if !extra.is_empty() {
            if !d.is_empty() {
                d.push_str("; ");
            }
            d.push_str(extra);
        }
        self.rec.record(Op::Nemesis {
            fault: fault.kind().to_owned(),
            phase,
            targets: fault.targets(),
            outage: fault.outage(n, self.cluster.quorum()),
            detail: d,
        });
    }

    async fn on_nodes(&self, nodes: &[usize], args: &[&str]) -> HResult<()> {
        for n in nodes {
            if let Some(node) = self.cluster.nodes.get(*n) {
                node.admin(args, ADMIN).await?;
            }
        }
        Ok(())
    }

    /// Executes one step: inject, record, hold, heal, record.
    ///
    /// # Errors
    ///
    /// When the harness cannot inject or heal (a server does not restart, an admin command
    /// fails).
    pub async fn execute(&self, step: &Step) -> HResult<()> {
        let fault = &step.fault;
        let nodes = fault.nodes();
        match fault {
            Fault::Pause { .. } => {
                for n in nodes {
                    if let Some(node) = self.cluster.nodes.get(*n) {
                        node.pause();
                    }
                }
                self.mark(fault, Phase::Start, "");
                tokio::time::sleep(step.hold).await;
                self.mark(fault, Phase::Heal, "");
                for n in nodes {
                    if let Some(node) = self.cluster.nodes.get(*n) {
                        node.resume();
                    }
                }
                self.mark(fault, Phase::End, "");
            }
            Fault::KillRestart { delay, .. } => {
                for n in nodes {
                    if let Some(node) = self.cluster.nodes.get(*n) {
                        node.kill().await?;
                    }
                }
                self.mark(fault, Phase::Start, "");
                tokio::time::sleep(*delay).await;
                self.mark(fault, Phase::Heal, "");
                let restarts = nodes
                    .iter()
                    .filter_map(|n| self.cluster.nodes.get(*n))
                    .map(crate::harness::Node::restart);
                for r in futures_util::future::join_all(restarts).await {
                    r?;
                }
                self.mark(fault, Phase::End, "");
            }
            Fault::DropReplies { client, .. } => {
                self.proxies(nodes, *client, |p| p.drop_replies(true));
                self.mark(fault, Phase::Start, "");
                tokio::time::sleep(step.hold).await;
                self.mark(fault, Phase::Heal, "");
                self.proxies(nodes, *client, |p| p.drop_replies(false));
                self.mark(fault, Phase::End, "");
            }
            Fault::Stall { client, .. } => {
                self.proxies(nodes, *client, |p| p.stall(true));
                self.mark(fault, Phase::Start, "");
                tokio::time::sleep(step.hold).await;
                self.mark(fault, Phase::Heal, "");
                self.proxies(nodes, *client, |p| p.stall(false));
                self.mark(fault, Phase::End, "");
            }
            Fault::Refuse { client, .. } => {
                self.proxies(nodes, *client, |p| {
                    p.refuse(true);
                    p.reset_all();
                });
                self.mark(fault, Phase::Start, "");
                tokio::time::sleep(step.hold).await;
                self.mark(fault, Phase::Heal, "");
                self.proxies(nodes, *client, |p| p.refuse(false));
                self.mark(fault, Phase::End, "");
            }
            Fault::Reset { .. } => {
                self.proxies(nodes, None, crate::harness::FaultProxy::reset_all);
                self.mark(fault, Phase::Start, "");
                self.mark(fault, Phase::End, "");
            }
            Fault::Latency {
                latency, replies, ..
            } => {
                let (latency, replies) = (*latency, *replies);
                self.proxies(nodes, None, |p| {
                    if replies {
                        p.set_reply_latency(latency);
                    } else {
                        p.set_request_latency(latency);
                    }
                });
                self.mark(fault, Phase::Start, "");
                tokio::time::sleep(step.hold).await;
                self.mark(fault, Phase::Heal, "");
                self.proxies(nodes, None, |p| {
                    p.set_reply_latency(Duration::ZERO);
                    p.set_request_latency(Duration::ZERO);
                });
                self.mark(fault, Phase::End, "");
            }
            Fault::ClientPause { process } => {
                let Some(proc_) = self.processes.get(*process) else {
                    return Ok(());
                };
                // Strike inside the critical section: right after the process's first write.
                let mut caught = false;
                if let Some(register) = &self.register {
                    let mut writes = register.subscribe_writes();
                    let prefix = format!("{}#", proc_.name);
                    let wait = async {
                        loop {
                            match writes.recv().await {
                                Ok((holder, true)) if holder.starts_with(&prefix) => return true,
                                Ok(_)
                                | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                                Err(_) => return false,
                            }
                        }
                    };
                    caught = tokio::time::timeout(Duration::from_millis(1_500), wait)
                        .await
                        .unwrap_or(false);
                }
                let pid = Pid::from_raw(proc_.pid);
                let _ = kill(pid, Signal::SIGSTOP);
                self.mark(
                    fault,
                    Phase::Start,
                    if caught {
                        "inside its critical section"
                    } else {
                        ""
                    },
                );
                tokio::time::sleep(step.hold).await;
                self.mark(fault, Phase::Heal, "");
                let _ = kill(pid, Signal::SIGCONT);
                self.mark(fault, Phase::End, "");
            }
            Fault::ClockJump { delta_ms, .. } => {
                let mut changed = 0i64;
                for n in nodes {
                    if let Some(node) = self.cluster.nodes.get(*n) {
                        changed = changed.saturating_add(node.skew_ttls(*delta_ms).await?);
                    }
                }
                let note = format!("{changed} key(s) shifted");
                self.mark(fault, Phase::Start, &note);
                self.mark(fault, Phase::End, "");
            }
            Fault::ClockDrift { every, .. } => {
                self.mark(fault, Phase::Start, "");
                let until = Instant::now()
                    .checked_add(step.hold)
                    .unwrap_or_else(Instant::now);
                while Instant::now() < until {
                    tokio::time::sleep(*every).await;
                    for n in nodes {
                        if let Some(node) = self.cluster.nodes.get(*n) {
                            node.skew_ttls(1).await?;
                        }
                    }
                }
                self.mark(fault, Phase::End, "");
            }
            Fault::ScriptFlush { .. } => {
                self.on_nodes(nodes, &["SCRIPT", "FLUSH"]).await?;
                self.mark(fault, Phase::Start, "");
                self.mark(fault, Phase::End, "");
            }
            Fault::AclNoEval { .. } => {
                self.on_nodes(nodes, &["ACL", "SETUSER", LOCK_USER.0, "-eval", "-evalsha"])
                    .await?;
                self.mark(fault, Phase::Start, "");
                tokio::time::sleep(step.hold).await;
                self.mark(fault, Phase::Heal, "");
                self.on_nodes(nodes, &["ACL", "SETUSER", LOCK_USER.0, "+eval", "+evalsha"])
                    .await?;
                self.mark(fault, Phase::End, "");
            }
            Fault::Oom { .. } => {
                self.on_nodes(nodes, &["CONFIG", "SET", "maxmemory-policy", "noeviction"])
                    .await?;
                self.on_nodes(nodes, &["CONFIG", "SET", "maxmemory", "1"])
                    .await?;
                self.mark(fault, Phase::Start, "");
                tokio::time::sleep(step.hold).await;
                self.mark(fault, Phase::Heal, "");
                self.on_nodes(nodes, &["CONFIG", "SET", "maxmemory", "0"])
                    .await?;
                self.mark(fault, Phase::End, "");
            }
            Fault::ClientPauseWrite { .. } => {
                // The server-side pause outlasts the hold; UNPAUSE ends it, after the heal mark.
                let ms = step
                    .hold
                    .saturating_add(Duration::from_secs(10))
                    .as_millis()
                    .to_string();
                self.on_nodes(nodes, &["CLIENT", "PAUSE", &ms, "WRITE"])
                    .await?;
                self.mark(fault, Phase::Start, "");
                tokio::time::sleep(step.hold).await;
                self.mark(fault, Phase::Heal, "");
                self.on_nodes(nodes, &["CLIENT", "UNPAUSE"]).await?;
                self.mark(fault, Phase::End, "");
            }
            Fault::DebugSleep { .. } => {
                let secs = format!("{:.3}", step.hold.as_secs_f64());
                let timeout = step.hold.saturating_add(ADMIN);
                let mut connected = Vec::new();
                let mut sleeps = futures_util::stream::FuturesUnordered::new();
                for n in nodes {
                    if let Some(node) = self.cluster.nodes.get(*n) {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        connected.push(rx);
                        sleeps.push(node.debug_sleep(secs.clone(), timeout, tx));
                    }
                }
                // Each command leaves right after its connection is up: once all are
                // connected (and a moment more), every target is asleep.
                let all_connected = futures_util::future::join_all(connected);
                tokio::pin!(all_connected);
                let mut first = None;
                tokio::select! {
                    _ = &mut all_connected => {}
                    r = futures_util::StreamExt::next(&mut sleeps) => first = r,
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.mark(fault, Phase::Start, "");
                // The outage ends when the first sleeper wakes.
                let first = match first {
                    Some(r) => r,
                    None => futures_util::StreamExt::next(&mut sleeps)
                        .await
                        .unwrap_or(Ok(())),
                };
                self.mark(fault, Phase::Heal, "");
                first?;
                while let Some(r) = futures_util::StreamExt::next(&mut sleeps).await {
                    r?;
                }
                self.mark(fault, Phase::End, "");
            }
        }
        Ok(())
    }

    /// Heals everything that can be left behind (after an error or at the end): resumes
    /// every node and process, lifts proxy faults, restores ACLs and `maxmemory`.
    pub async fn heal_all(&self) {
        for node in &self.cluster.nodes {
            node.resume_if_running();
            let _ = node.admin(&["CLIENT", "UNPAUSE"], ADMIN).await;
            let _ = node
                .admin(&["CONFIG", "SET", "maxmemory", "0"], ADMIN)
                .await;
            let _ = node
                .admin(&["ACL", "SETUSER", LOCK_USER.0, "+eval", "+evalsha"], ADMIN)
                .await;
        }
        for p in &self.processes {
            let _ = kill(Pid::from_raw(p.pid), Signal::SIGCONT);
        }
        self.cluster.heal_links();
    }

    /// Runs `steps` in order, each at its offset from `origin` (or as soon as the previous
    /// one healed). Stops at the first harness error.
    ///
    /// # Errors
    ///
    /// The first harness error.
    pub async fn run(&self, origin: Instant, steps: &[Step]) -> HResult<()> {
        for step in steps {
            let at = origin.checked_add(step.at).unwrap_or(origin);
            tokio::time::sleep_until(at).await;
            if let Err(e) = self.execute(step).await {
                self.heal_all().await;
                return Err(e);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ScheduleParams {
        ScheduleParams {
            nodes: 5,
            ttl: Duration::from_millis(600),
            node_timeout: Duration::from_millis(60),
            links: 3,
            processes: 2,
            from: Duration::from_millis(500),
            to: Duration::from_secs(20),
        }
    }

    #[test]
    fn schedules_replay_from_their_seed() {
        for family in [
            Family::PauseMinority,
            Family::Proxy,
            Family::ClockSkew,
            Family::Mixed,
        ] {
            let a = schedule(family, 42, &params());
            let b = schedule(family, 42, &params());
            let c = schedule(family, 43, &params());
            assert!(!a.is_empty());
            assert_eq!(a, b);
            assert_ne!(a, c);
        }
        assert!(schedule(Family::None, 1, &params()).is_empty());
    }

    #[test]
    fn steps_never_overlap_and_stay_in_the_window() {
        let p = params();
        for seed in 0..200 {
            let steps = schedule(Family::Mixed, seed, &p);
            for w in steps.windows(2) {
                assert!(
                    w[0].at + w[0].hold <= w[1].at,
                    "{seed}: {} / {}",
                    w[0],
                    w[1]
                );
            }
            for s in &steps {
                assert!(s.at >= p.from && s.at + s.hold < p.to);
            }
        }
    }

    #[test]
    fn targets_respect_minority_and_majority() {
        let p = params();
        for seed in 0..200 {
            for s in schedule(Family::PauseMinority, seed, &p) {
                assert!((1..=2).contains(&s.fault.nodes().len()));
                assert!(!s.fault.outage(5, 3));
            }
            for s in schedule(Family::PauseMajority, seed, &p) {
                assert!((3..=4).contains(&s.fault.nodes().len()));
                assert!(s.fault.outage(5, 3));
            }
            for s in schedule(Family::ClockSkew, seed, &p) {
                if let Fault::ClockJump { delta_ms, .. } = s.fault {
                    // Forward jumps stay below the drift allowance (600 ms × 1 % + 2 ms).
                    assert!(delta_ms < 8, "{delta_ms}");
                }
            }
        }
    }
}

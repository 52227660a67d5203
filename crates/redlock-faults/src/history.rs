//! The history: every operation of every worker, every fault of the nemesis and every write
//! the fenced register saw, stamped with [`crate::clock::mono_ns`], as JSON lines.
//!
//! One line per event, e.g.
//!
//! ```text
//! {"t":81234567890,"process":"w3","type":"acquire-ok","res":"r0","id":17,"start":81234001234,"deadline":81833001234,"ttl_ms":600,"token":"3f9a01c2","fence":42}
//! ```

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::clock::mono_ns;

/// One recorded event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `CLOCK_MONOTONIC` nanoseconds when it happened.
    pub t: u64,
    /// Who recorded it: a worker (`w3`, `p0`), `nemesis`, `register`, or a targeted client.
    pub process: String,
    /// What happened.
    #[serde(flatten)]
    pub op: Op,
}

/// Start or end of a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The fault was injected.
    Start,
    /// Healing begins (from here on a quorum may come back before `end` is recorded).
    Heal,
    /// The fault was healed (or ended by itself).
    End,
}

/// What an acquisition asks for: the mutex, or one of the primitives built on it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `lock(res)` / `acquire(res)`: exclusive on `res`.
    #[default]
    Mutex,
    /// `read(res)`: shared with other readers, exclusive of everything else on `res`.
    Reader,
    /// `write(res)`: exclusive on `res`, like the mutex.
    Writer,
    /// `semaphore(res, k)`: one of at most `k` permits of `res`.
    Permit,
    /// `lock_all(members)`: exclusive on every member, all or nothing.
    Multi,
}

impl Mode {
    /// Kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mutex => "mutex",
            Self::Reader => "reader",
            Self::Writer => "writer",
            Self::Permit => "permit",
            Self::Multi => "multi",
        }
    }

    /// True for the default (the field is then left out of the JSON line).
    pub fn is_mutex(&self) -> bool {
        *self == Self::Mutex
    }
}

/// What a probe of one resource's state (`LockManager::is_locked`) answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Seen {
    /// Held on a majority by the prober's own token.
    Ours,
    /// Held on a majority by another token.
    Other,
    /// Free on a majority.
    Free,
    /// Readers hold it on a majority.
    Shared,
    /// No single answer on a majority, or the probe failed: proves nothing.
    Unknown,
}

/// The operations of a history. `res` is the resource, `id` the acquisition number within
/// its process: `(process, id)` names one holder. A multi-resource lock records its members
/// joined with `+` as `res` (`m0+m2`) and lists them in `members`; fenced writes, probes and
/// the register then name each member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Op {
    /// `lock()` / `acquire()` called.
    AcquireInvoke {
        /// Resource.
        res: String,
        /// Acquisition number.
        id: u64,
        /// What is asked for (left out for the mutex).
        #[serde(default, skip_serializing_if = "Mode::is_mutex")]
        mode: Mode,
        /// A multi-resource lock's requested members, canonical (sorted, each once).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        members: Vec<String>,
        /// A semaphore's number of permits.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        permits: Option<u32>,
    },
    /// The lock was granted.
    AcquireOk {
        /// Resource.
        res: String,
        /// Acquisition number.
        id: u64,
        /// Start of the winning attempt (`deadline − (ttl − drift)`), monotonic ns.
        start: u64,
        /// The lock's deadline, monotonic ns.
        deadline: u64,
        /// TTL of the grant, ms.
        ttl_ms: u64,
        /// First 8 hex digits of the lock token.
        token: String,
        /// The fencing token, when fencing is on.
        fence: Option<u64>,
        /// A multi-resource lock: the members the grant covers (`Lock::resources`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        members: Vec<String>,
        /// A multi-resource lock: one fencing token per member, in the order of `members`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        fences: Vec<u64>,
    },
    /// The acquisition failed.
    AcquireFail {
        /// Resource.
        res: String,
        /// Acquisition number.
        id: u64,
        /// `conflict`, `no-quorum`, `validity-exhausted`, `fencing-contention`, `cancelled`, …
        reason: String,
        /// The error's text (shortened).
        detail: String,
    },
    /// The worker entered its critical section.
    CsEnter {
        /// Resource.
        res: String,
        /// Acquisition number.
        id: u64,
    },
    /// The worker left its critical section.
    CsExit {
        /// Resource.
        res: String,
        /// Acquisition number.
        id: u64,
        /// The lock's deadline as the worker knew it, monotonic ns.
        deadline: u64,
        /// True when the section was cut short because the deadline was near.
        cut: bool,
    },
    /// A fenced write, as the worker saw its answer.
    Write {
        /// Resource.
        res: String,
        /// Acquisition number.
        id: u64,
        /// The fencing token sent.
        fence: u64,
        /// Whether the register accepted it.
        accepted: bool,
        /// The largest token the register had seen.
        max: u64,
    },
    /// `extend` called.
    ExtendInvoke {
        /// Resource.
        res: String,
        /// Acquisition number.
        id: u64,
    },
    /// The lock was extended (or a guard's watchdog was seen to have extended it).
    ExtendOk {
        /// Resource.
        res: String,
        /// Acquisition number.
        id: u64,
        /// The new deadline, monotonic ns.
        deadline: u64,
    },
    /// `extend` failed.
    ExtendFail {
        /// Resource.
        res: String,
        /// Acquisition number.
        id: u64,
        /// Error kind.
        reason: String,
        /// The deadline after the failure, monotonic ns.
        deadline: u64,
    },
    /// A guard reported its lock lost.
    Lost {
        /// Resource.
        res: String,
        /// Acquisition number.
        id: u64,
        /// The deadline it had, monotonic ns.
        deadline: u64,
    },
    /// A holder asked the masters who holds `res` (`LockManager::is_locked`) during its
    /// hold; recorded when the answer came back (the probe began at `invoked`).
    Probe {
        /// Resource probed (a member of a multi-resource lock).
        res: String,
        /// Acquisition number of the prober.
        id: u64,
        /// When the probe was sent, monotonic ns.
        invoked: u64,
        /// What a majority said.
        seen: Seen,
    },
    /// `unlock` / `release` called: from here on the worker no longer relies on the lock.
    ReleaseInvoke {
        /// Resource.
        res: String,
        /// Acquisition number.
        id: u64,
    },
    /// The release succeeded.
    ReleaseOk {
        /// Resource.
        res: String,
        /// Acquisition number.
        id: u64,
    },
    /// The release failed (the lock had lapsed, or no quorum answered).
    ReleaseFail {
        /// Resource.
        res: String,
        /// Acquisition number.
        id: u64,
        /// Error kind.
        reason: String,
        /// The error's text (shortened).
        detail: String,
    },
    /// A fault injected or healed by the nemesis.
    Nemesis {
        /// Fault kind (`pause`, `kill-restart-aof`, `drop-replies`, …).
        fault: String,
        /// Start or end.
        phase: Phase,
        /// Affected nodes (`n0`..) or client processes (`p0`..).
        targets: Vec<String>,
        /// True when the fault leaves fewer than a quorum of masters able to grant.
        outage: bool,
        /// Parameters, human-readable.
        detail: String,
    },
    /// A write as the fenced register applied it, in the register's own order.
    RegisterWrite {
        /// Resource.
        res: String,
        /// Holder, `process#id`.
        holder: String,
        /// Token of the write.
        fence: u64,
        /// Whether it was accepted (token ≥ every token seen).
        accepted: bool,
        /// Position in the register's order.
        seq: u64,
    },
    /// The process(es) got no CPU from `from` to `to` (seen by the stall detector).
    Stall {
        /// Last tick before the gap, monotonic ns.
        from: u64,
        /// First tick after it.
        to: u64,
        /// The processes (history names) that were frozen.
        processes: Vec<String>,
    },
    /// What a manager had left running when its workers stopped.
    LeakCheck {
        /// `LockManager::background_tasks()` after settling.
        background_tasks: usize,
        /// `LockManager::subscribed_resources()` after settling.
        subscribed: usize,
    },
    /// Free text (scenario steps, setup).
    Note {
        /// The text.
        text: String,
    },
}

impl Op {
    /// The resource and acquisition number, for worker operations.
    pub fn holder_op(&self) -> Option<(&str, u64)> {
        match self {
            Self::AcquireInvoke { res, id, .. }
            | Self::AcquireOk { res, id, .. }
            | Self::AcquireFail { res, id, .. }
            | Self::CsEnter { res, id }
            | Self::CsExit { res, id, .. }
            | Self::Write { res, id, .. }
            | Self::ExtendInvoke { res, id }
            | Self::Probe { res, id, .. }
            | Self::ExtendOk { res, id, .. }
            | Self::ExtendFail { res, id, .. }
            | Self::Lost { res, id, .. }
            | Self::ReleaseInvoke { res, id }
            | Self::ReleaseOk { res, id }
            | Self::ReleaseFail { res, id, .. } => Some((res, *id)),
            _ => None,
        }
    }
}

/// Where a recorder writes.
#[derive(Clone)]
enum Sink {
    Memory(Arc<Mutex<Vec<Event>>>),
    File(Arc<Mutex<BufWriter<File>>>),
}

/// Records events for one process name. Cheap to clone; clones share the sink.
#[derive(Clone)]
pub struct Recorder {
    process: Arc<str>,
    sink: Sink,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("process", &self.process)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder that keeps events in memory ([`Recorder::take`]).
    pub fn memory(process: &str) -> Self {
        Self {
            process: process.into(),
            sink: Sink::Memory(Arc::new(Mutex::new(Vec::new()))),
        }
    }

    /// A recorder that appends JSON lines to `path` (flushed after every event, so a paused
    /// or killed process loses nothing it recorded).
    ///
    /// # Errors
    ///
    /// When the file cannot be created.
    pub fn file(process: &str, path: &Path) -> io::Result<Self> {
        let file = File::create(path)?;
        Ok(Self {
            process: process.into(),
            sink: Sink::File(Arc::new(Mutex::new(BufWriter::new(file)))),
        })
    }

    /// The same sink under another process name.
    pub fn named(&self, process: &str) -> Self {
        Self {
            process: process.into(),
            sink: self.sink.clone(),
        }
    }

    /// The process name.
    pub fn process(&self) -> &str {
        &self.process
    }

    /// Records `op` now; returns its stamp.
    pub fn record(&self, op: Op) -> u64 {
        let t = mono_ns();
        self.record_at(t, op);
        t
    }

    /// Records `op` with the stamp `t`.
    pub fn record_at(&self, t: u64, op: Op) {
        let event = Event {
            t,
            process: self.process.to_string(),
            op,
        };
        match &self.sink {
            Sink::Memory(events) => events
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(event),
            Sink::File(out) => {
                let mut out = out.lock().unwrap_or_else(PoisonError::into_inner);
                if let Ok(line) = serde_json::to_string(&event) {
                    // A full disk must not stop the worker; the merge reports what arrived.
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            }
        }
    }

    /// The events recorded in memory so far (empty for a file recorder).
    pub fn take(&self) -> Vec<Event> {
        match &self.sink {
            Sink::Memory(events) => {
                std::mem::take(&mut *events.lock().unwrap_or_else(PoisonError::into_inner))
            }
            Sink::File(_) => Vec::new(),
        }
    }

    /// Flushes a file sink.
    pub fn flush(&self) {
        if let Sink::File(out) = &self.sink {
            let _ = out.lock().unwrap_or_else(PoisonError::into_inner).flush();
        }
    }
}

/// A merged history, ordered by stamp (ties keep their recording order).
#[derive(Clone, Debug, Default)]
pub struct History {
    /// The events, ascending by `t`.
    pub events: Vec<Event>,
}

impl History {
    /// Merges event lists (several processes) into one history ordered by stamp.
    pub fn merge(parts: impl IntoIterator<Item = Vec<Event>>) -> Self {
        let mut events: Vec<Event> = parts.into_iter().flatten().collect();
        events.sort_by_key(|e| e.t);
        Self { events }
    }

    /// Reads a JSON-lines history file. Lines that do not parse (a line cut short by a
    /// killed process) are skipped and counted.
    ///
    /// # Errors
    ///
    /// When the file cannot be read.
    pub fn read_jsonl(path: &Path) -> io::Result<(Vec<Event>, usize)> {
        let reader = BufReader::new(File::open(path)?);
        let mut events = Vec::new();
        let mut bad = 0usize;
        for line in reader.lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Event>(&line) {
                Ok(e) => events.push(e),
                Err(_) => bad = bad.saturating_add(1),
            }
        }
        Ok((events, bad))
    }

    /// Writes the history as JSON lines.
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn write_jsonl(&self, path: &Path) -> io::Result<()> {
        let mut out = BufWriter::new(File::create(path)?);
        for e in &self.events {
            let line = serde_json::to_string(e).map_err(io::Error::other)?;
            writeln!(out, "{line}")?;
        }
        out.flush()
    }

    /// The events of one holder (`process`, `id`), for violation excerpts.
    pub fn of_holder(&self, process: &str, id: u64) -> Vec<Event> {
        self.events
            .iter()
            .filter(|e| e.process == process && e.op.holder_op().is_some_and(|(_, i)| i == id))
            .cloned()
            .collect()
    }
}

/// One event as a short line for reports: `+12.345ms p0 acquire-ok r0#17 …`.
pub fn show(e: &Event, origin: u64) -> String {
    let json = serde_json::to_string(&e.op).unwrap_or_default();
    format!(
        "{:>10.3}ms {:<8} {}",
        crate::clock::ms_between(origin, e.t),
        e.process,
        json
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_as_json_lines() {
        let rec = Recorder::memory("w0");
        rec.record(Op::AcquireInvoke {
            res: "r0".into(),
            id: 1,
            mode: Mode::Mutex,
            members: Vec::new(),
            permits: None,
        });
        rec.record(Op::AcquireOk {
            res: "r0".into(),
            id: 1,
            start: 5,
            deadline: 10,
            ttl_ms: 600,
            token: "abcd0123".into(),
            fence: Some(3),
            members: Vec::new(),
            fences: Vec::new(),
        });
        rec.named("nemesis").record(Op::Nemesis {
            fault: "pause".into(),
            phase: Phase::Start,
            targets: vec!["n1".into()],
            outage: false,
            detail: String::new(),
        });
        let events = rec.take();
        assert_eq!(events.len(), 3);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let history = History::merge([events.clone()]);
        history.write_jsonl(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""type":"acquire-ok""#), "{text}");
        assert!(text.contains(r#""process":"nemesis""#), "{text}");
        let (back, bad) = History::read_jsonl(&path).unwrap();
        assert_eq!(bad, 0);
        assert_eq!(back, history.events);
    }

    #[test]
    fn a_file_recorder_writes_each_event_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p0.jsonl");
        let rec = Recorder::file("p0", &path).unwrap();
        rec.record(Op::Note { text: "hi".into() });
        let (events, bad) = History::read_jsonl(&path).unwrap();
        assert_eq!((events.len(), bad), (1, 0));
        assert_eq!(events[0].process, "p0");
    }

    #[test]
    fn primitives_round_trip_and_mutex_lines_stay_as_they_were() {
        let mutex = Op::AcquireInvoke {
            res: "r0".into(),
            id: 1,
            mode: Mode::Mutex,
            members: Vec::new(),
            permits: None,
        };
        assert_eq!(
            serde_json::to_string(&mutex).unwrap(),
            r#"{"type":"acquire-invoke","res":"r0","id":1}"#
        );
        let old: Op =
            serde_json::from_str(r#"{"type":"acquire-invoke","res":"r0","id":1}"#).unwrap();
        assert_eq!(old, mutex);
        for op in [
            Op::AcquireInvoke {
                res: "m0+m1".into(),
                id: 2,
                mode: Mode::Multi,
                members: vec!["m0".into(), "m1".into()],
                permits: None,
            },
            Op::AcquireInvoke {
                res: "sem0".into(),
                id: 3,
                mode: Mode::Permit,
                members: Vec::new(),
                permits: Some(2),
            },
            Op::AcquireOk {
                res: "m0+m1".into(),
                id: 2,
                start: 1,
                deadline: 2,
                ttl_ms: 600,
                token: "abcd0123".into(),
                fence: None,
                members: vec!["m0".into(), "m1".into()],
                fences: vec![4, 9],
            },
            Op::Probe {
                res: "m1".into(),
                id: 2,
                invoked: 1,
                seen: Seen::Ours,
            },
        ] {
            let line = serde_json::to_string(&op).unwrap();
            assert_eq!(serde_json::from_str::<Op>(&line).unwrap(), op, "{line}");
        }
    }
}

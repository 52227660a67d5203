//! `redlock status RESOURCE…`: on each master, whether the key exists, the holder's token
//! prefix and the PTTL (the library's `inspect`); then the quorum's view from the library
//! (`is_locked`). Text or JSON, and an exit code a script can test: 0 held, 1 free,
//! 2 unsettled, 69 unavailable (with several resources, the first of 69, 2, 1 that applies).

use std::time::Duration;

use serde::Serialize;
use tokio_redlock::{DEFAULT_TTL, LockError, LockManager, LockState, MasterPermits, Printable};

use crate::cli::{Common, StatusArgs};
use crate::exit;
use crate::probe::{self, HolderJson, MasterJson, MasterKey, show_duration};
use crate::report::{Report, output};

/// One resource's status.
struct Status {
    resource: String,
    masters: Vec<MasterKey>,
    view: Result<LockState, LockError>,
    /// The semaphore of the same name, when some master records one.
    permits: Option<Permits>,
}

/// A semaphore's permits: each master's record and the quorum's view.
struct Permits {
    masters: Vec<MasterPermits>,
    /// The number of permits a majority records; `None` when no majority agrees.
    total: Option<u32>,
    /// The permits held: a slot held by one token on a majority, sorted by slot.
    taken: Vec<Taken>,
}

/// A slot and the token holding it, with the remaining TTLs of the masters where it does.
type SlotHeld<'a> = (u32, &'a [u8], Vec<Option<Duration>>);

/// One permit held on a majority.
struct Taken {
    slot: u32,
    token_prefix: String,
    /// How long the majority keeps it (the quorum-th longest remaining TTL).
    remaining: Option<Duration>,
}

impl Permits {
    /// The quorum's view of the masters' records; `None` when no master records the
    /// semaphore (no permit held or recently held).
    fn of(masters: Vec<MasterPermits>, quorum: usize) -> Option<Self> {
        let records: Vec<&tokio_redlock::PermitSlots> = masters
            .iter()
            .filter_map(|m| m.state.as_ref().ok())
            .collect();
        if records
            .iter()
            .all(|r| r.permits.is_none() && r.held.is_empty())
        {
            return None;
        }
        let total = records
            .iter()
            .filter_map(|r| r.permits)
            .find(|k| records.iter().filter(|r| r.permits == Some(*k)).count() >= quorum);
        // (slot, token) → the remaining TTLs of the masters where that token holds it.
        let mut seen: Vec<SlotHeld<'_>> = Vec::new();
        for h in records.iter().flat_map(|r| &r.held) {
            match seen
                .iter_mut()
                .find(|(slot, token, _)| *slot == h.slot && *token == h.holder.as_bytes())
            {
                Some((_, _, ttls)) => ttls.push(h.remaining),
                None => seen.push((h.slot, h.holder.as_bytes(), vec![h.remaining])),
            }
        }
        let mut taken: Vec<Taken> = seen
            .into_iter()
            .filter(|(_, _, ttls)| ttls.len() >= quorum)
            .map(|(slot, token, mut ttls)| {
                // Longest first, no expiry first of all.
                ttls.sort_by(|a, b| match (a, b) {
                    (None, None) => std::cmp::Ordering::Equal,
                    (None, Some(_)) => std::cmp::Ordering::Less,
                    (Some(_), None) => std::cmp::Ordering::Greater,
                    (Some(a), Some(b)) => b.cmp(a),
                });
                Taken {
                    slot,
                    token_prefix: probe::token_prefix(token),
                    remaining: ttls.get(quorum.saturating_sub(1)).copied().flatten(),
                }
            })
            .collect();
        taken.sort_by_key(|t| t.slot);
        Some(Self {
            masters,
            total,
            taken,
        })
    }
}

/// The JSON document: one object for all resources.
#[derive(Serialize)]
struct StatusJson {
    masters: usize,
    quorum: usize,
    resources: Vec<ResourceJson>,
}

#[derive(Serialize)]
struct ResourceJson {
    resource: String,
    /// `free`, `held`, `shared` (readers), `unsettled`, or `unknown` (no quorum answered).
    state: &'static str,
    /// With `shared`: the most readers one master of the majority records; null otherwise.
    readers: Option<usize>,
    /// An exclusive holder (`exec -x`) waits for it: its intent is on at least one master
    /// (each master's `writer_waiting` says where).
    writer_waiting: bool,
    /// The semaphore of this name (`exec --permits`), when some master records one; null
    /// otherwise.
    permits: Option<PermitsJson>,
    holder_prefix: Option<String>,
    /// Who holds it, when the holder stored it (`redlock exec` does): null otherwise.
    holder: Option<HolderJson>,
    /// How long a majority keeps holding it; null when free, unknown, or without expiry.
    remaining_ms: Option<u64>,
    error: Option<String>,
    masters: Vec<MasterJson>,
}

/// A semaphore in `status --json`.
#[derive(Serialize)]
struct PermitsJson {
    /// The number of permits a majority of masters records; null when no majority agrees.
    total: Option<u32>,
    /// How many permits are held (each a slot held by one holder on a majority).
    taken: usize,
    holders: Vec<PermitHolderJson>,
    masters: Vec<MasterPermitsJson>,
}

#[derive(Serialize)]
struct PermitHolderJson {
    slot: u32,
    token_prefix: String,
    /// How long a majority keeps it; null without expiry.
    remaining_ms: Option<u64>,
}

#[derive(Serialize)]
struct MasterPermitsJson {
    master: String,
    reachable: bool,
    /// The number of permits this master records; null when none (or unreadable).
    permits: Option<u32>,
    /// The slots held on this master.
    held: Vec<PermitHolderJson>,
    error: Option<String>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl From<&Permits> for PermitsJson {
    fn from(p: &Permits) -> Self {
        Self {
            total: p.total,
            taken: p.taken.len(),
            holders: p
                .taken
                .iter()
                .map(|t| PermitHolderJson {
                    slot: t.slot,
                    token_prefix: t.token_prefix.clone(),
                    remaining_ms: t.remaining.map(ms),
                })
                .collect(),
            masters: p
                .masters
                .iter()
                .map(|m| match &m.state {
                    Ok(slots) => MasterPermitsJson {
                        master: m.master.to_string(),
                        reachable: true,
                        permits: slots.permits,
                        held: slots
                            .held
                            .iter()
                            .map(|h| PermitHolderJson {
                                slot: h.slot,
                                token_prefix: probe::token_prefix(h.holder.as_bytes()),
                                remaining_ms: h.remaining.map(ms),
                            })
                            .collect(),
                        error: None,
                    },
                    Err(e) => MasterPermitsJson {
                        master: m.master.to_string(),
                        reachable: false,
                        permits: None,
                        held: Vec::new(),
                        error: Some(e.to_string()),
                    },
                })
                .collect(),
        }
    }
}

/// Runs `redlock status` and returns the exit code.
pub(crate) async fn run(args: StatusArgs, common: &Common, report: Report) -> u8 {
    // Another resource's fencing counter or holder record is no lock: reading it as one
    // would show a counter or a record as "held".
    for resource in &args.resources {
        if let Err(e) = tokio_redlock::check_resource(b"", resource.as_bytes()) {
            let message = format!("no status: {e}");
            crate::report::json_setup_error(args.json, &message, exit::USAGE);
            report.error(message);
            return exit::USAGE;
        }
    }
    let manager = match crate::build_manager(common, DEFAULT_TTL, false) {
        Ok(m) => m,
        Err(e) => {
            crate::report::json_setup_error(args.json, &e, exit::USAGE);
            report.error(e);
            return exit::USAGE;
        }
    };
    // Each master's connect and one read, bounded by the manager's timeouts.
    let budget = probe::budget(common.node_timeout);
    let mut statuses = Vec::with_capacity(args.resources.len());
    for resource in &args.resources {
        statuses.push(status_of(&manager, resource, budget).await);
    }
    let quorum = manager.quorum();
    manager.close().await;
    let code = exit_code(&statuses);
    if args.json {
        let doc = StatusJson {
            masters: manager.masters().count(),
            quorum: manager.quorum(),
            resources: statuses.iter().map(to_json).collect(),
        };
        match serde_json::to_string_pretty(&doc) {
            Ok(text) => output(text),
            Err(e) => {
                report.error(format_args!("cannot write JSON: {e}"));
                return exit::SOFTWARE;
            }
        }
    } else if !report.is_quiet() {
        for s in &statuses {
            print_text(s, &manager, quorum);
        }
    }
    code
}

/// The exit code for the statuses: 69 if some resource's state is unknown, else 2 if some
/// is unsettled, else 1 if some is free, else 0 (all held). Held means a lock, readers, or
/// at least one permit of a semaphore of the name held on a majority.
fn exit_code(statuses: &[Status]) -> u8 {
    let code = |s: &Status| match &s.view {
        Ok(LockState::Held { .. } | LockState::Shared { .. }) => exit::STATUS_HELD,
        Ok(LockState::Free) if s.permits.as_ref().is_some_and(|p| !p.taken.is_empty()) => {
            exit::STATUS_HELD
        }
        Ok(LockState::Free) => exit::STATUS_FREE,
        Ok(_) => exit::STATUS_UNSETTLED,
        Err(_) => exit::UNAVAILABLE,
    };
    let rank = |c: u8| match c {
        exit::UNAVAILABLE => 3,
        exit::STATUS_UNSETTLED => 2,
        exit::STATUS_FREE => 1,
        _ => 0,
    };
    statuses
        .iter()
        .map(code)
        .max_by_key(|c| rank(*c))
        .unwrap_or(exit::STATUS_HELD)
}

async fn status_of(manager: &LockManager, resource: &str, budget: Duration) -> Status {
    let (per_master, view, permits) = tokio::join!(
        probe::read_all(manager, resource, budget),
        manager.is_locked(resource),
        tokio::time::timeout(budget, manager.inspect_permits(resource))
    );
    // Unreadable permits (a closed manager, no answer at all) show as no semaphore: the
    // lock's own lines already say which masters failed.
    let permits = match permits {
        Ok(Ok(masters)) => Permits::of(masters, manager.quorum()),
        _ => None,
    };
    Status {
        resource: resource.to_owned(),
        masters: per_master,
        view,
        permits,
    }
}

fn print_text(s: &Status, manager: &LockManager, quorum: usize) {
    let needed = format!("{} of {} masters needed", manager.quorum(), s.masters.len());
    let view = match &s.view {
        // The name's own key is free, but permits of its semaphore are held: say that first
        // (the status counts it as held).
        Ok(LockState::Free) => match s.permits.as_ref().filter(|p| !p.taken.is_empty()) {
            Some(p) => format!(
                "no lock, but {} of its semaphore's permits taken ({needed})",
                p.taken.len()
            ),
            None => format!("free ({needed})"),
        },
        Ok(LockState::Held { holder, remaining }) => format!(
            "held by {}… {} ({needed})",
            probe::token_prefix(holder.as_bytes()),
            remaining.map_or_else(
                || "with no expiry".to_owned(),
                |r| format!("for {} more", show_duration(r))
            )
        ),
        Ok(LockState::Shared { readers, remaining }) => format!(
            "shared by {readers} reader(s) {} ({needed})",
            remaining.map_or_else(
                || "with no expiry".to_owned(),
                |r| format!("for {} more", show_duration(r))
            )
        ),
        Ok(LockState::Unsettled { outcomes, .. }) => {
            let not_locks = outcomes
                .iter()
                .filter(|o| matches!(o.status(), tokio_redlock::NodeStatus::NotALock))
                .count();
            if not_locks >= manager.quorum() {
                format!(
                    "not a lock: the key holds a non-lock value on {not_locks} of {} masters",
                    s.masters.len()
                )
            } else {
                format!("unsettled: no single answer on a majority ({needed})")
            }
        }
        Ok(_) => format!("unsettled: no single answer on a majority ({needed})"),
        Err(e) if e.is_unavailable() => format!("unknown: no quorum answered ({needed})"),
        Err(e) => format!("unknown: {e}"),
    };
    output(format_args!("{}: {view}", Printable::new(&s.resource)));
    if let Ok(LockState::Held { holder, .. }) = &s.view
        && let Some(info) = probe::holder_of(&s.masters, holder.as_bytes())
    {
        output(format_args!("  holder: {}", probe::show_holder(info)));
    }
    let waiting = writer_waiting_on(s);
    if waiting > 0 {
        output(format_args!(
            "  an exclusive holder waits for it (on {waiting} of {} masters): new shared \
             holders queue behind it",
            s.masters.len()
        ));
    }
    for m in &s.masters {
        output(format_args!("  {m}"));
    }
    if let Some(p) = &s.permits {
        print_permits(p, s.masters.len(), quorum);
    }
}

/// The masters where an exclusive holder's intent is.
fn writer_waiting_on(s: &Status) -> usize {
    s.masters.iter().filter(|m| m.writer_waiting).count()
}

fn print_permits(p: &Permits, masters: usize, quorum: usize) {
    let total = p.total.map_or_else(|| "?".to_owned(), |k| k.to_string());
    output(format_args!(
        "  semaphore: {} of {total} permits taken ({quorum} of {masters} masters needed)",
        p.taken.len()
    ));
    for t in &p.taken {
        output(format_args!(
            "    permit {}: held by {}… {}",
            t.slot,
            t.token_prefix,
            t.remaining.map_or_else(
                || "with no expiry".to_owned(),
                |r| format!("for {} more", show_duration(r))
            )
        ));
    }
    for m in &p.masters {
        let line = match &m.state {
            Ok(slots) => {
                let held: Vec<String> = slots
                    .held
                    .iter()
                    .map(|h| {
                        format!(
                            "slot {} {}…{}",
                            h.slot,
                            probe::token_prefix(h.holder.as_bytes()),
                            h.remaining
                                .map(|r| format!(" PTTL {} ms", r.as_millis()))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                format!(
                    "permits {}, {} held{}",
                    slots
                        .permits
                        .map_or_else(|| "not recorded".to_owned(), |k| k.to_string()),
                    slots.held.len(),
                    if held.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", held.join(", "))
                    }
                )
            }
            Err(e) => e.to_string(),
        };
        output(format_args!("    {}: {line}", m.master));
    }
}

fn to_json(s: &Status) -> ResourceJson {
    let (state, holder_prefix, remaining_ms, error) = match &s.view {
        Ok(LockState::Free) => ("free", None, None, None),
        Ok(LockState::Held { holder, remaining }) => (
            "held",
            Some(probe::token_prefix(holder.as_bytes())),
            remaining.map(|r| u64::try_from(r.as_millis()).unwrap_or(u64::MAX)),
            None,
        ),
        Ok(LockState::Shared { remaining, .. }) => (
            "shared",
            None,
            remaining.map(|r| u64::try_from(r.as_millis()).unwrap_or(u64::MAX)),
            None,
        ),
        Ok(_) => ("unsettled", None, None, None),
        Err(e) => ("unknown", None, None, Some(e.to_string())),
    };
    let readers = match &s.view {
        Ok(LockState::Shared { readers, .. }) => Some(*readers),
        _ => None,
    };
    let holder = match &s.view {
        Ok(LockState::Held { holder, .. }) => {
            probe::holder_of(&s.masters, holder.as_bytes()).map(HolderJson::from)
        }
        _ => None,
    };
    ResourceJson {
        resource: Printable::new(&s.resource).to_string(),
        state,
        readers,
        writer_waiting: writer_waiting_on(s) > 0,
        permits: s.permits.as_ref().map(PermitsJson::from),
        holder_prefix,
        holder,
        remaining_ms,
        error,
        masters: s.masters.iter().map(MasterJson::from).collect(),
    }
}

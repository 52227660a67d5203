//! `redlock status RESOURCE…`: on each master, whether the key exists, the holder's token
//! prefix and the PTTL (the library's `inspect`); then the quorum's view from the library
//! (`is_locked`). Text or JSON, and an exit code a script can test: 0 held, 1 free,
//! 2 unsettled, 69 unavailable (with several resources, the first of 69, 2, 1 that applies).

use std::time::Duration;

use serde::Serialize;
use tokio_redlock::{DEFAULT_TTL, LockError, LockManager, LockState, Printable};

use crate::cli::{Common, StatusArgs};
use crate::exit;
use crate::probe::{self, HolderJson, MasterJson, MasterKey, show_duration};
use crate::report::{Report, output};

/// One resource's status.
struct Status {
    resource: String,
    masters: Vec<MasterKey>,
    view: Result<LockState, LockError>,
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
    /// `free`, `held`, `unsettled`, or `unknown` (no quorum answered).
    state: &'static str,
    holder_prefix: Option<String>,
    /// Who holds it, when the holder stored it (`redlock exec` does): null otherwise.
    holder: Option<HolderJson>,
    /// How long a majority keeps holding it; null when free, unknown, or without expiry.
    remaining_ms: Option<u64>,
    error: Option<String>,
    masters: Vec<MasterJson>,
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
            print_text(s, &manager);
        }
    }
    code
}

/// The exit code for the statuses: 69 if some resource's state is unknown, else 2 if some
/// is unsettled, else 1 if some is free, else 0 (all held).
fn exit_code(statuses: &[Status]) -> u8 {
    let code = |s: &Status| match &s.view {
        Ok(LockState::Held { .. }) => exit::STATUS_HELD,
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
    let (per_master, view) = tokio::join!(
        probe::read_all(manager, resource, budget),
        manager.is_locked(resource)
    );
    Status {
        resource: resource.to_owned(),
        masters: per_master,
        view,
    }
}

fn print_text(s: &Status, manager: &LockManager) {
    let needed = format!("{} of {} masters needed", manager.quorum(), s.masters.len());
    let view = match &s.view {
        Ok(LockState::Free) => format!("free ({needed})"),
        Ok(LockState::Held { holder, remaining }) => format!(
            "held by {}… {} ({needed})",
            probe::token_prefix(holder.as_bytes()),
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
    for m in &s.masters {
        output(format_args!("  {m}"));
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
        Ok(_) => ("unsettled", None, None, None),
        Err(e) => ("unknown", None, None, Some(e.to_string())),
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
        holder_prefix,
        holder,
        remaining_ms,
        error,
        masters: s.masters.iter().map(MasterJson::from).collect(),
    }
}

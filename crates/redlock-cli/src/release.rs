//! `redlock release --force [--yes] RESOURCE`: an operator clears a stuck lock, whoever
//! holds it.
//!
//! The library releases only a lock it holds (a compare-and-delete on its own token, which a
//! `Lock` carries and nobody can forge), so a forced release is done here, on the keys: the
//! resource's key is named by the library's [`lock_key`] (the CLI sets no key prefix), the
//! values on each master are read through the manager's `inspect` (so every member kind is
//! read as the lock itself is), and then each master that held a lock value gets a
//! compare-and-delete *of the value just read*: a lock taken by someone else in between is
//! left alone, and so is a key that is not a lock. The deletion is announced on the library's
//! [`release_channel`], so waiting clients try at once instead of at the key's expiry. The
//! fencing counter beside the key is never touched: tokens must keep growing.
//!
//! The deletion connects to each member with redis-rs directly (the library has no entry
//! point that deletes another holder's key), with the same TLS settings. A Sentinel group is
//! not resolved to its master here: it is reported as not changed, and its key expires by its
//! TTL.

use std::time::Duration;

use redis::{ConnectionAddr, IntoConnectionInfo};
use serde::Serialize;
use tokio_redlock::{
    DEFAULT_TTL, Printable, check_resource, holder_key, lock_key, release_channel,
};

use crate::cli::{Common, ReleaseArgs};
use crate::exit;
use crate::probe::{self, KeyState, MasterJson, MasterKey};
use crate::report::{Report, output};

/// Deletes the key if it holds `ARGV[1]`, with the holder record at `KEYS[2]` if it is that
/// value's (its first line is `token=<value>`), and announces it on `ARGV[2]`. Returns 1
/// deleted, 0 no key, -1 another value now, -2 not a string (not a lock).
const DELETE_IF_SAME: &str = r"
local v = redis.pcall('GET', KEYS[1])
if type(v) == 'table' then return -2 end
if not v then return 0 end
if v ~= ARGV[1] then return -1 end
redis.call('DEL', KEYS[1])
local prefix = 'token=' .. ARGV[1] .. '\n'
local record = redis.pcall('GET', KEYS[2])
if type(record) == 'string' and string.sub(record, 1, #prefix) == prefix then
  redis.pcall('DEL', KEYS[2])
end
redis.pcall('PUBLISH', ARGV[2], '')
return 1
";

/// What was done on one master.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    /// The lock value read before was deleted.
    Removed,
    /// It would be deleted (no `--yes`).
    WouldRemove,
    /// There was no key.
    Absent,
    /// The key held another value by the time of the deletion (a new holder): left alone.
    Changed,
    /// The key holds something that is not a lock: left alone.
    NotALock,
    /// Readers hold it (`redlock exec --shared`): left alone, they are not cleared here.
    Readers,
    /// The master could not be read or changed; its key expires by its TTL.
    Failed,
    /// A Sentinel group: not changed here.
    Skipped,
}

/// One master's line of the report.
#[derive(Debug, Serialize)]
struct MasterResult {
    /// What it held before, as `status --json` shows it.
    before: MasterJson,
    action: Action,
    /// Why it failed or was skipped.
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct ReleaseJson {
    resource: String,
    deleted: bool,
    masters: Vec<MasterResult>,
    /// Masters where permits of a semaphore of this name are held (not cleared: see the
    /// command's help).
    semaphore_masters_with_permits: usize,
}

/// Runs `redlock release` and returns the exit code.
pub(crate) async fn run(args: ReleaseArgs, common: &Common, report: Report) -> u8 {
    let urls = match common.server_urls() {
        Ok(urls) => urls,
        Err(e) => {
            crate::report::json_setup_error(args.json, &e, exit::USAGE);
            report.error(e);
            return exit::USAGE;
        }
    };
    // Another resource's helper key (fencing counter, holder record, a semaphore's or a
    // read-write lock's keys) is no lock to delete: a deleted counter would let fencing
    // tokens go backwards.
    if let Err(e) = check_resource(b"", args.resource.as_bytes()) {
        let message = format!("no forced release: {e}");
        crate::report::json_setup_error(args.json, &message, exit::USAGE);
        report.error(message);
        return exit::USAGE;
    }
    let manager = match crate::build_manager(common, DEFAULT_TTL, false) {
        Ok(m) => m,
        Err(e) => {
            crate::report::json_setup_error(args.json, &e, exit::USAGE);
            report.error(e);
            return exit::USAGE;
        }
    };
    let budget = probe::budget(common.node_timeout);
    let before = probe::read_all(&manager, &args.resource, budget).await;
    // A semaphore's permits are slots beside the name: not cleared here, only reported.
    let permits_held =
        match tokio::time::timeout(budget, manager.inspect_permits(&args.resource)).await {
            Ok(Ok(masters)) => masters
                .iter()
                .filter(|m| m.state.as_ref().is_ok_and(|s| !s.held.is_empty()))
                .count(),
            _ => 0,
        };
    manager.close().await;
    let key = lock_key(b"", args.resource.as_bytes());
    let channel = release_channel(&key);
    let mut results = Vec::with_capacity(before.len());
    for (url, master) in urls.iter().zip(&before) {
        let (action, error) = match &master.state {
            KeyState::Absent => (Action::Absent, None),
            KeyState::NotALock => (Action::NotALock, None),
            KeyState::Shared { .. } => (Action::Readers, None),
            KeyState::Failed(e) => (Action::Failed, Some(e.clone())),
            KeyState::Held { .. } if is_sentinel(url) => (
                Action::Skipped,
                Some(
                    "a Sentinel group: not changed by release --force; its key expires by its \
                     TTL"
                    .to_owned(),
                ),
            ),
            KeyState::Held { .. } if !args.yes => (Action::WouldRemove, None),
            KeyState::Held { value, .. } => {
                match delete_if_same(url, common, &key, value.as_slice(), &channel, budget).await {
                    Ok(1) => (Action::Removed, None),
                    Ok(0) => (Action::Absent, None),
                    Ok(-2) => (Action::NotALock, None),
                    Ok(_) => (Action::Changed, None),
                    Err(e) => (Action::Failed, Some(e)),
                }
            }
        };
        results.push(MasterResult {
            before: MasterJson::from(master),
            action,
            error,
        });
    }
    let shown = Printable::new(&args.resource);
    let deleted = results.iter().any(|r| r.action == Action::Removed);
    if args.json {
        let doc = ReleaseJson {
            resource: shown.to_string(),
            deleted,
            masters: results,
            semaphore_masters_with_permits: permits_held,
        };
        let code = code_for(&doc.masters, args.yes, permits_held > 0);
        match serde_json::to_string_pretty(&doc) {
            Ok(text) => output(text),
            Err(e) => {
                report.error(format_args!("cannot write JSON: {e}"));
                return exit::SOFTWARE;
            }
        }
        if !args.yes {
            report.error("nothing deleted: add --yes to delete");
        }
        return code;
    }
    if !report.is_quiet() {
        output(format_args!(
            "{shown}: {}",
            if args.yes {
                "forced release"
            } else {
                "what a forced release would remove (nothing deleted)"
            }
        ));
        for (r, master) in results.iter().zip(&before) {
            output(format_args!("  {}", describe(r, master)));
        }
    }
    if permits_held > 0 {
        report.error(format_args!(
            "`{shown}` is also a semaphore with permits held on {permits_held} master(s): \
             release --force does not clear permits (each ends by its TTL once its holder is \
             stopped; `redlock status {shown}` lists them)"
        ));
    }
    if !args.yes {
        report.error("nothing deleted: add --yes to delete");
    }
    code_for(&results, args.yes, permits_held > 0)
}

/// 64 without `--yes`; 69 when some master that may hold the lock was not changed; 65 when
/// a key holds something else (a non-lock value, readers) or permits of a semaphore of the
/// name are held; 0 otherwise.
fn code_for(results: &[MasterResult], yes: bool, permits_held: bool) -> u8 {
    if !yes {
        exit::USAGE
    } else if results
        .iter()
        .any(|r| matches!(r.action, Action::Failed | Action::Skipped))
    {
        exit::UNAVAILABLE
    } else if permits_held
        || results
            .iter()
            .any(|r| matches!(r.action, Action::NotALock | Action::Readers))
    {
        exit::DATA
    } else {
        exit::OK
    }
}

/// One master's line: its redacted address, and what was done there.
fn describe(r: &MasterResult, master: &MasterKey) -> String {
    let held = || match &master.state {
        KeyState::Held { value, pttl } => format!(
            "the lock of {}… ({})",
            probe::token_prefix(value),
            pttl.map_or_else(
                || "no expiry".to_owned(),
                |p| format!("PTTL {} ms", p.as_millis())
            )
        ),
        _ => "the key".to_owned(),
    };
    let what = match r.action {
        Action::Removed => format!("removed {}", held()),
        Action::WouldRemove => format!("would remove {}", held()),
        Action::Absent => "no key".to_owned(),
        Action::Changed => {
            "held by a new holder by the time of the deletion: left alone".to_owned()
        }
        Action::NotALock => "holds a value that is not a lock: left alone".to_owned(),
        Action::Readers => format!(
            "shared by {} reader(s): left alone (release --force clears exclusive locks \
             only; each reader's lease ends by its TTL once its process is stopped)",
            match &master.state {
                KeyState::Shared { readers, .. } => *readers,
                _ => 0,
            }
        ),
        Action::Failed | Action::Skipped => format!(
            "not changed: {}",
            r.error.as_deref().unwrap_or("unknown error")
        ),
    };
    format!("{}: {what}", master.master)
}

fn is_sentinel(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("redis+sentinel://") || lower.starts_with("rediss+sentinel://")
}

/// Deletes `key` on the master at `url` if it still holds `value`; the script's answer.
async fn delete_if_same(
    url: &str,
    common: &Common,
    key: &[u8],
    value: &[u8],
    channel: &[u8],
    budget: Duration,
) -> Result<i64, String> {
    let work = async {
        let client = client(url, common)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::Script::new(DELETE_IF_SAME)
            .key(key)
            .key(&*holder_key(key))
            .arg(value)
            .arg(channel)
            .invoke_async::<i64>(&mut conn)
            .await
    };
    match tokio::time::timeout(budget, work).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(scrub(&e.to_string())),
        Err(_) => Err(format!("no answer within {}", probe::show_duration(budget))),
    }
}

/// A redis-rs client for a direct member, with the TLS settings of the manager.
fn client(url: &str, common: &Common) -> redis::RedisResult<redis::Client> {
    let mut info = url.into_connection_info()?;
    if let ConnectionAddr::TcpTls {
        host,
        port,
        tls_params,
        ..
    } = info.addr().clone()
    {
        info = info.set_addr(ConnectionAddr::TcpTls {
            host,
            port,
            insecure: common.danger_accept_invalid_certs,
            tls_params,
        });
        let root_cert = match &common.tls_ca_cert {
            Some(path) => Some(std::fs::read(path)?),
            None => None,
        };
        let client_tls = match (&common.tls_cert, &common.tls_key) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: std::fs::read(cert)?,
                client_key: std::fs::read(key)?,
            }),
            _ => None,
        };
        if root_cert.is_some() || client_tls.is_some() {
            return redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls,
                    root_cert,
                },
            );
        }
    }
    redis::Client::open(info)
}

/// An error text that might carry credentials (an `@`, as in a URL) is not shown.
fn scrub(text: &str) -> String {
    if text.contains('@') {
        "the master failed (details withheld: they may name credentials)".to_owned()
    } else {
        text.to_owned()
    }
}

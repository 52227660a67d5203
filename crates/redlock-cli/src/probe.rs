//! Per-master reads of a lock key, for `status` and for the report of a lost lock: the
//! library's `is_locked` answers with the quorum's view, and these tools show each master,
//! read through the manager (`LockManager::inspect`), so TLS, Unix-socket and Sentinel
//! members are read as the lock itself is. Nothing here prints a full token or a password
//! (the library redacts the addresses and scrubs the error texts).

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use tokio_redlock::{DEFAULT_CONNECT_TIMEOUT, HolderInfo, LockManager, Printable};

/// Time added to the reads' own bounds before the outer bound gives up on them, so that
/// each master's own timeout (reported per master) normally fires first.
const SLACK: Duration = Duration::from_millis(250);

/// Characters of a token shown in output.
pub(crate) const SHOWN_TOKEN_CHARS: usize = 8;

/// What one master holds under a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyState {
    /// No such key.
    Absent,
    /// A string value (a lock token) with its remaining TTL (`None`: no expiry).
    Held {
        /// The whole value; never print it, use [`token_prefix`].
        value: Vec<u8>,
        /// PTTL, `None` when the key has no expiry.
        pttl: Option<Duration>,
    },
    /// Readers of a read-write lock hold it (`redlock exec --shared`).
    Shared {
        /// The readers this master records.
        readers: usize,
        /// PTTL (as long as the longest reader's lease), `None` when the key has no expiry.
        pttl: Option<Duration>,
    },
    /// A value of another type (a hash, a list, …): not a lock. (Its PTTL is not read.)
    NotALock,
    /// The master did not answer, or answered with an error.
    Failed(String),
}

/// One master's answer: its redacted address and what it holds.
#[derive(Clone, Debug)]
pub(crate) struct MasterKey {
    /// The master's address, password redacted.
    pub(crate) master: String,
    /// For a Redis Cluster member: the node (`host:port`) that served the key.
    pub(crate) node: Option<String>,
    /// What it holds under the key.
    pub(crate) state: KeyState,
    /// Who holds it here, when the holder stored a record for the token the key holds.
    pub(crate) holder_info: Option<HolderInfo>,
    /// An exclusive holder (`redlock exec -x`) waits for the key here.
    pub(crate) writer_waiting: bool,
}

/// The first [`SHOWN_TOKEN_CHARS`] characters of a token, control characters and invalid
/// UTF-8 escaped.
pub(crate) fn token_prefix(value: &[u8]) -> String {
    String::from_utf8_lossy(value)
        .chars()
        .take(SHOWN_TOKEN_CHARS)
        .flat_map(char::escape_default)
        .collect()
}

impl From<tokio_redlock::MasterKey> for MasterKey {
    fn from(m: tokio_redlock::MasterKey) -> Self {
        use tokio_redlock::KeyState as Lib;
        let state = match m.state {
            Lib::Absent => KeyState::Absent,
            Lib::Held { holder, remaining } => KeyState::Held {
                value: holder.as_bytes().to_vec(),
                pttl: remaining,
            },
            Lib::Shared { readers, remaining } => KeyState::Shared {
                readers,
                pttl: remaining,
            },
            Lib::NotALock => KeyState::NotALock,
            Lib::Failed(e) => KeyState::Failed(e.to_string()),
            // A state a newer library may add; not printed (it might hold a token).
            _ => KeyState::Failed("an answer this redlock version does not know".to_owned()),
        };
        Self {
            master: m.master.to_string(),
            node: m.node.map(|n| n.to_string()),
            state,
            holder_info: m.holder_info,
            writer_waiting: m.writer_waiting,
        }
    }
}

/// The outer bound of [`read_all`]: a connect and a request on each master (the manager
/// bounds each by its connect and node timeouts), plus [`SLACK`].
pub(crate) fn budget(node_timeout: Duration) -> Duration {
    DEFAULT_CONNECT_TIMEOUT
        .saturating_add(node_timeout)
        .saturating_add(SLACK)
}

/// Every master of `manager` shown as failed with `why` (a read that did not complete).
fn every_master_failed(manager: &LockManager, why: &str) -> Vec<MasterKey> {
    manager
        .masters()
        .map(|master| MasterKey {
            master: master.to_owned(),
            node: None,
            state: KeyState::Failed(why.to_owned()),
            holder_info: None,
            writer_waiting: false,
        })
        .collect()
}

/// Reads `resource` on every master through `manager`, in the order of its masters. Each
/// master is bounded by the manager's timeouts; the whole read by `timeout`, after which
/// every master shows as failed.
pub(crate) async fn read_all(
    manager: &LockManager,
    resource: &str,
    timeout: Duration,
) -> Vec<MasterKey> {
    let failed = |why: String| every_master_failed(manager, &why);
    match tokio::time::timeout(timeout, manager.inspect(resource)).await {
        Ok(Ok(keys)) => keys.into_iter().map(MasterKey::from).collect(),
        Ok(Err(e)) => failed(e.to_string()),
        Err(_) => failed(format!("no answer within {}", show_duration(timeout))),
    }
}

/// Reads the semaphore `name` on every master for the report of a lost permit: a master
/// where `token` holds a slot shows as holding `token` (with that slot's PTTL), one where
/// it holds none as without a key. Bounded as [`read_all`].
pub(crate) async fn read_permit(
    manager: &LockManager,
    name: &str,
    token: &str,
    timeout: Duration,
) -> Vec<MasterKey> {
    let failed = |why: String| every_master_failed(manager, &why);
    match tokio::time::timeout(timeout, manager.inspect_permits(name)).await {
        Ok(Ok(masters)) => masters
            .into_iter()
            .map(|m| {
                let state = match m.state {
                    Ok(slots) => slots
                        .held
                        .into_iter()
                        .find(|h| h.holder.as_bytes() == token.as_bytes())
                        .map_or(KeyState::Absent, |h| KeyState::Held {
                            value: h.holder.as_bytes().to_vec(),
                            pttl: h.remaining,
                        }),
                    Err(e) => KeyState::Failed(e.to_string()),
                };
                MasterKey {
                    master: m.master.to_string(),
                    node: m.node.map(|n| n.to_string()),
                    state,
                    holder_info: None,
                    writer_waiting: false,
                }
            })
            .collect(),
        Ok(Err(e)) => failed(e.to_string()),
        Err(_) => failed(format!("no answer within {}", show_duration(timeout))),
    }
}

/// The holder record of the token `holder` (the quorum's holder), from the first master
/// that shows one for that token.
pub(crate) fn holder_of<'a>(masters: &'a [MasterKey], holder: &[u8]) -> Option<&'a HolderInfo> {
    masters.iter().find_map(|m| match &m.state {
        KeyState::Held { value, .. } if value.as_slice() == holder => m.holder_info.as_ref(),
        _ => None,
    })
}

/// A holder for people: `host build-7, pid 30750, since 2026-12-07T01:14:29Z (12.3s ago),
/// command ./deploy.sh v1.2`. Every value is untrusted (anyone who can write the masters'
/// keys can write it): shown escaped and cut, as resource names are.
pub(crate) fn show_holder(info: &HolderInfo) -> String {
    let ago = std::time::SystemTime::now()
        .duration_since(info.since())
        .map(|d| format!(" ({} ago)", show_duration(d)))
        .unwrap_or_default();
    let since = rfc3339(info.since(), false)
        .unwrap_or_else(|| format!("{} ms after the Unix epoch", since_ms(info.since())));
    format!(
        "host {}, pid {}, since {since}{ago}, command {}",
        Printable::new(info.host()),
        info.pid(),
        Printable::new(info.command()),
    )
}

/// `time` in RFC 3339 (UTC; with milliseconds when `millis`), or `None` for a time RFC 3339
/// cannot show (after the year 9999, or before 1970). A record's time is untrusted input, and
/// `humantime` reports such a time as a formatting error, which `format!` and `to_string`
/// turn into a panic: the text is written through `fmt::Write`, which returns it instead.
fn rfc3339(time: std::time::SystemTime, millis: bool) -> Option<String> {
    use std::fmt::Write as _;
    // `humantime` also panics (an `expect`) on a time before the epoch.
    time.duration_since(std::time::UNIX_EPOCH).ok()?;
    let mut text = String::new();
    let written = if millis {
        write!(text, "{}", humantime::format_rfc3339_millis(time))
    } else {
        write!(text, "{}", humantime::format_rfc3339_seconds(time))
    };
    written.ok().map(|()| text)
}

/// Milliseconds since the Unix epoch (0 before it).
fn since_ms(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The JSON form of a holder record; values escaped as in text.
#[derive(Debug, Serialize)]
pub(crate) struct HolderJson {
    host: String,
    pid: u32,
    command: String,
    /// RFC 3339, UTC, by the holder's clock; `null` for a time it cannot show (after the
    /// year 9999: a record is untrusted input).
    since: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    since_ms: u64,
}

impl From<&HolderInfo> for HolderJson {
    fn from(info: &HolderInfo) -> Self {
        Self {
            host: Printable::new(info.host()).to_string(),
            pid: info.pid(),
            command: Printable::new(info.command()).to_string(),
            since: rfc3339(info.since(), true),
            since_ms: since_ms(info.since()),
        }
    }
}

/// A duration for people: `850ms`, `1.2s`, `28.4s`, `5m 3s`.
pub(crate) fn show_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

impl fmt::Display for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(node) => write!(f, "{} (node {node}): ", self.master)?,
            None => write!(f, "{}: ", self.master)?,
        }
        match &self.state {
            KeyState::Absent => f.write_str("no key"),
            KeyState::Held { value, pttl } => {
                write!(f, "held by {}…", token_prefix(value))?;
                match pttl {
                    Some(p) => write!(f, ", PTTL {} ms", p.as_millis()),
                    None => f.write_str(", no expiry"),
                }
            }
            KeyState::Shared { readers, pttl } => {
                write!(f, "shared by {readers} reader(s)")?;
                match pttl {
                    Some(p) => write!(f, ", PTTL {} ms", p.as_millis())?,
                    None => f.write_str(", no expiry")?,
                }
                if self.writer_waiting {
                    f.write_str("; an exclusive holder waits")?;
                }
                Ok(())
            }
            KeyState::NotALock => f.write_str("holds a value that is not a lock"),
            KeyState::Failed(e) => f.write_str(e),
        }?;
        if self.writer_waiting && matches!(self.state, KeyState::Held { .. }) {
            f.write_str("; an exclusive holder waits")?;
        }
        Ok(())
    }
}

/// The JSON form of one master's answer.
#[derive(Debug, Serialize)]
pub(crate) struct MasterJson {
    master: String,
    /// For a Redis Cluster member: the node that served the key (omitted otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
    reachable: bool,
    exists: Option<bool>,
    is_lock: Option<bool>,
    token_prefix: Option<String>,
    /// PTTL in ms: -1 no expiry, -2 no key, null when unknown (the master failed, or the key
    /// is not a lock: its PTTL is not read).
    pttl_ms: Option<i64>,
    /// The readers this master records while readers hold the key (`--shared`); null
    /// otherwise.
    readers: Option<usize>,
    /// An exclusive holder (`-x`) waits for the key here (its intent is there).
    writer_waiting: bool,
    error: Option<String>,
}

fn pttl_ms(p: Option<Duration>) -> i64 {
    p.map_or(-1, |p| i64::try_from(p.as_millis()).unwrap_or(i64::MAX))
}

impl From<&MasterKey> for MasterJson {
    fn from(m: &MasterKey) -> Self {
        let master = m.master.clone();
        let node = m.node.clone();
        match &m.state {
            KeyState::Absent => Self {
                master,
                node: node.clone(),
                reachable: true,
                exists: Some(false),
                is_lock: None,
                token_prefix: None,
                pttl_ms: Some(-2),
                readers: None,
                writer_waiting: m.writer_waiting,
                error: None,
            },
            KeyState::Held { value, pttl } => Self {
                master,
                node: node.clone(),
                reachable: true,
                exists: Some(true),
                is_lock: Some(true),
                token_prefix: Some(token_prefix(value)),
                pttl_ms: Some(pttl_ms(*pttl)),
                readers: None,
                writer_waiting: m.writer_waiting,
                error: None,
            },
            KeyState::Shared { readers, pttl } => Self {
                master,
                node: node.clone(),
                reachable: true,
                exists: Some(true),
                is_lock: Some(true),
                token_prefix: None,
                pttl_ms: Some(pttl_ms(*pttl)),
                readers: Some(*readers),
                writer_waiting: m.writer_waiting,
                error: None,
            },
            KeyState::NotALock => Self {
                master,
                node: node.clone(),
                reachable: true,
                exists: Some(true),
                is_lock: Some(false),
                token_prefix: None,
                pttl_ms: None,
                readers: None,
                writer_waiting: false,
                error: None,
            },
            KeyState::Failed(e) => Self {
                master,
                node: node.clone(),
                reachable: false,
                exists: None,
                is_lock: None,
                token_prefix: None,
                pttl_ms: None,
                readers: None,
                writer_waiting: false,
                error: Some(e.clone()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_prefixes_are_short_and_escaped() {
        assert_eq!(token_prefix(b"0123456789abcdef"), "01234567");
        assert_eq!(token_prefix(b"a\nb"), "a\\nb");
        assert_eq!(token_prefix(b""), "");
    }

    #[test]
    fn times_past_rfc3339_are_shown_without_panicking() {
        use std::time::{SystemTime, UNIX_EPOCH};
        let ok = UNIX_EPOCH + Duration::from_millis(1_765_072_800_123);
        assert_eq!(
            rfc3339(ok, true).as_deref(),
            Some("2025-12-07T02:00:00.123Z")
        );
        assert_eq!(rfc3339(ok, false).as_deref(), Some("2025-12-07T02:00:00Z"));
        let year_10000 = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        assert_eq!(rfc3339(year_10000, true), None);
        assert_eq!(rfc3339(year_10000, false), None);
        let far = UNIX_EPOCH + Duration::from_millis(u64::MAX);
        assert_eq!(rfc3339(far, false), None);
        assert_eq!(since_ms(far), u64::MAX);
        assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_secs(1), false), None);
        assert!(rfc3339(SystemTime::now(), false).is_some());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(show_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(show_duration(Duration::from_millis(28_449)), "28.4s");
        assert_eq!(show_duration(Duration::from_secs(303)), "5m 3s");
    }
}

//! [`HolderInfo`]: who holds a lock (host, process, command, since when), stored beside the
//! lock key for acquisitions that opt in, and read back by
//! [`LockManager::inspect`](crate::LockManager::inspect).
//!
//! # Where and how it is stored
//!
//! The lock key itself stays a plain token set with `SET <key> <token> NX PX <ttl>`, so
//! other Redlock libraries interoperate on it unchanged. The record lives in a helper key,
//! `{<key>}:holder` (or `<key>:holder` when the key has a hash tag: the lock key's Redis
//! Cluster hash slot), and is written in the same script as the lock key, to expire at the
//! key's own expiry time (`PXAT` of its `PEXPIRETIME`; `PX` with the same TTL before Redis
//! 7.0): there is no moment at which the lock is held and the record missing, and the record
//! expires with the lock. An extension gives it the lock's new TTL, and every release of the
//! key deletes it too (`unlock`, a dropped handle's release in the background, a resent
//! release, the cleanup of a failed attempt): the release script deletes the record only if
//! it names the token being released. The record names its token, and is shown only while
//! the lock key on that master still holds that token: a record whose key was taken over
//! (another client's `SET`) is never shown as the holder, and it expires by its TTL.
//!
//! The value is text, one `name=value` per line, the token first:
//!
//! ```text
//! token=3f2a9c1e0b7d4a66e1c2f0a9d8b7c6e5
//! host=build-7
//! pid=30750
//! since_ms=1765072800123
//! command=./deploy.sh v1.2
//! ```
//!
//! `since_ms` is the wall-clock time (milliseconds since the Unix epoch, on the holder's
//! host) at which the acquisition started. In `host` and `command`, control characters
//! (newlines included), `%` and bytes outside ASCII are percent-encoded (`%0A`); readers
//! ignore names they do not know. A value read back is untrusted input (anyone who can
//! write the key can write it): print it escaped, as [`Printable`](crate::Printable) does.
//!
//! Acquisitions that do not opt in write and read nothing more than before (the plain
//! `SET … NX PX GET` fast path).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use percent_encoding::{AsciiSet, CONTROLS, percent_decode, percent_encode};

/// Bytes of `host` kept in a record.
const MAX_HOST: usize = 255;
/// Bytes of `command` kept in a record.
const MAX_COMMAND: usize = 1024;
/// A record longer than this is not read (it was not written by us): `inspect` reads at
/// most one byte more, so a huge foreign value there costs no more than a record.
pub(crate) const MAX_RECORD: usize = 8192;

/// What is percent-encoded in a record's values: controls (newlines included), `%`, and
/// (always, by `percent_encode`) bytes outside ASCII.
const ENCODED: &AsciiSet = &CONTROLS.add(b'%');

/// A holder record as the requests carry it: its key (`{<key>}:holder`) and its value.
pub(crate) type Record = (std::sync::Arc<[u8]>, std::sync::Arc<[u8]>);

/// Who holds a lock: the host, the process id, the command and the time the acquisition
/// started.
///
/// Give one to [`LockRequest::holder_info`](crate::LockRequest::holder_info) or
/// [`AcquireRequest::holder_info`](crate::AcquireRequest::holder_info) to store it beside the
/// lock while it is held; [`LockManager::inspect`](crate::LockManager::inspect) then shows it
/// in [`MasterKey::holder_info`](crate::MasterKey::holder_info) on each master where the
/// lock is still held by that acquisition. The `redlock exec` CLI stores one for every
/// command it runs, and `redlock status` shows it.
///
/// Source: this crate's own convention (not part of Redlock), stored so that other Redlock
/// clients interoperate on the lock key unchanged; see the module docs of the record format.
///
/// # Examples
///
/// ```
/// use tokio_redlock::HolderInfo;
///
/// let info = HolderInfo::new("build-7", "nightly-report --full");
/// assert_eq!(info.host(), "build-7");
/// assert_eq!(info.pid(), std::process::id());
/// assert_eq!(info.command(), "nightly-report --full");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct HolderInfo {
    host: String,
    pid: u32,
    command: String,
    since: SystemTime,
}

impl HolderInfo {
    /// A holder on `host` running `command`, in this process ([`std::process::id`]). Each
    /// is free text (the host name, the command line); the record keeps at most 255 bytes
    /// of the host and 1024 of the command. The time is set when the lock is acquired.
    pub fn new(host: impl Into<String>, command: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            pid: std::process::id(),
            command: command.into(),
            since: SystemTime::now(),
        }
    }

    /// The holder's host, as it gave it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The holder's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The holder's command, as it gave it.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// When the holder's acquisition started, by the holder's wall clock (read back from a
    /// record; [`SystemTime::now`] in a `HolderInfo` not yet used to acquire).
    pub fn since(&self) -> SystemTime {
        self.since
    }
}

impl fmt::Debug for HolderInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values read back are untrusted: escaped, as every name the library shows.
        f.debug_struct("HolderInfo")
            .field("host", &crate::Printable::new(&self.host).to_string())
            .field("pid", &self.pid)
            .field("command", &crate::Printable::new(&self.command).to_string())
            .field("since", &self.since)
            .finish()
    }
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    s.get(..end).unwrap_or_default()
}

/// The record of `info` for the acquisition with `token` that started at `since`.
pub(crate) fn encode(token: &str, info: &HolderInfo, since: SystemTime) -> Vec<u8> {
    let since_ms = since
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    format!(
        "token={token}\nhost={}\npid={}\nsince_ms={since_ms}\ncommand={}\n",
        percent_encode(cut(&info.host, MAX_HOST).as_bytes(), ENCODED),
        info.pid,
        percent_encode(cut(&info.command, MAX_COMMAND).as_bytes(), ENCODED),
    )
    .into_bytes()
}

/// The token and holder of a record; `None` when it is not a well-formed record (too long,
/// not text, a field missing or malformed).
pub(crate) fn decode(record: &[u8]) -> Option<(Vec<u8>, HolderInfo)> {
    if record.len() > MAX_RECORD {
        return None;
    }
    let text = std::str::from_utf8(record).ok()?;
    let (mut token, mut host, mut pid, mut since, mut command) = (None, None, None, None, None);
    for line in text.lines() {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let decoded = || {
            percent_decode(value.as_bytes())
                .decode_utf8_lossy()
                .into_owned()
        };
        match name {
            "token" => token = Some(value.as_bytes().to_vec()),
            "host" => host = Some(decoded()),
            "pid" => pid = value.parse::<u32>().ok(),
            "since_ms" => {
                since = value
                    .parse::<u64>()
                    .ok()
                    .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms)));
            }
            "command" => command = Some(decoded()),
            _ => {}
        }
    }
    Some((
        token?,
        HolderInfo {
            host: host?,
            pid: pid?,
            command: command?,
            since: since?,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_untrusted_bytes_encoded() {
        let info = HolderInfo {
            host: "h%1\nx".to_owned(),
            pid: 42,
            command: "sh -c 'a=b; echo é'\n\u{1b}[2J".to_owned(),
            since: UNIX_EPOCH + Duration::from_millis(1_765_072_800_123),
        };
        let record = encode("0123abcd", &info, info.since);
        let text = String::from_utf8(record.clone()).unwrap();
        assert_eq!(text.lines().count(), 5, "one field per line: {text}");
        assert!(text.starts_with("token=0123abcd\n"));
        assert!(text.contains("host=h%251%0Ax\n"), "{text}");
        let (token, back) = decode(&record).unwrap();
        assert_eq!(token, b"0123abcd");
        assert_eq!(back, info);
    }

    #[test]
    fn long_values_are_cut_and_bad_records_are_refused() {
        let info = HolderInfo::new("h".repeat(300), "é".repeat(600));
        let (_, back) = decode(&encode("t", &info, info.since)).unwrap();
        assert_eq!(back.host().len(), MAX_HOST);
        assert_eq!(back.command(), "é".repeat(512));
        assert_eq!(back.since(), {
            let ms = info.since.duration_since(UNIX_EPOCH).unwrap().as_millis();
            UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap())
        });
        for bad in [
            &b""[..],
            b"token=t\nhost=h\npid=x\nsince_ms=1\ncommand=c\n",
            b"token=t\nhost=h\npid=1\ncommand=c\n",
            b"\xff\xfe",
            b"a plain lock token",
        ] {
            assert!(decode(bad).is_none(), "{bad:?}");
        }
        assert!(decode(&vec![b'a'; MAX_RECORD + 1]).is_none());
        // Unknown fields are ignored.
        let (_, ok) =
            decode(b"token=t\nhost=h\npid=1\nsince_ms=1\ncommand=c\nnew=field\n").unwrap();
        assert_eq!(ok.pid(), 1);
    }
}

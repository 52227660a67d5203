//! Per-master reads of a lock key, for `status` and for the report of a lost lock: the
//! library answers only with the quorum's view, and these tools show each master.
//!
//! Each read opens its own connection (bounded by a timeout), so it also works while the
//! manager's connections are stuck. Nothing here prints a full token or a password.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

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
    /// A value of another type (a hash, a list, …): not a lock.
    NotALock {
        /// PTTL, `None` when the key has no expiry.
        pttl: Option<Duration>,
    },
    /// The master did not answer, or answered with an error.
    Failed(String),
}

/// One master's answer: its redacted address and what it holds.
#[derive(Clone, Debug)]
pub(crate) struct MasterKey {
    /// The master's address, password redacted.
    pub(crate) master: String,
    /// What it holds under the key.
    pub(crate) state: KeyState,
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

/// A configured master: the URL to connect with and the redacted address to show.
#[derive(Clone, Debug)]
pub(crate) struct Master {
    /// The URL as configured (may hold a password: never print it).
    pub(crate) url: String,
    /// The address as the library shows it, password redacted.
    pub(crate) shown: String,
}

/// Reads `key` on every master in parallel, each bounded by `timeout`.
pub(crate) async fn read_all(masters: &[Master], key: &[u8], timeout: Duration) -> Vec<MasterKey> {
    let secrets: Vec<String> = masters.iter().filter_map(|m| password(&m.url)).collect();
    let reads = masters.iter().map(|m| {
        let secrets = &secrets;
        async move {
            let state = match tokio::time::timeout(timeout, read_one(&m.url, key)).await {
                Ok(Ok(state)) => state,
                Ok(Err(e)) => KeyState::Failed(scrub(&describe(&e), secrets)),
                Err(_) => KeyState::Failed(format!("no answer within {}", show_duration(timeout))),
            };
            MasterKey {
                master: m.shown.clone(),
                state,
            }
        }
    });
    futures_util::future::join_all(reads).await
}

async fn read_one(url: &str, key: &[u8]) -> redis::RedisResult<KeyState> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let kind: String = redis::cmd("TYPE").arg(key).query_async(&mut con).await?;
    if kind == "none" {
        return Ok(KeyState::Absent);
    }
    let pttl: i64 = redis::cmd("PTTL").arg(key).query_async(&mut con).await?;
    let pttl = u64::try_from(pttl).ok().map(Duration::from_millis);
    if kind != "string" {
        return Ok(KeyState::NotALock { pttl });
    }
    let value: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(&mut con).await?;
    Ok(match value {
        Some(value) => KeyState::Held { value, pttl },
        // Expired between the two reads.
        None => KeyState::Absent,
    })
}

/// A short description of a redis error, without the server's address.
fn describe(e: &redis::RedisError) -> String {
    if e.is_connection_refusal() {
        "connection refused".to_owned()
    } else if e.is_timeout() {
        "timed out".to_owned()
    } else {
        e.to_string()
    }
}

/// The password in a `scheme://user:password@host…` URL, if any.
pub(crate) fn password(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

/// `text` with every secret replaced by `***`.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_owned(), |t, s| t.replace(s.as_str(), "***"))
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
        write!(f, "{}: ", self.master)?;
        match &self.state {
            KeyState::Absent => f.write_str("no key"),
            KeyState::Held { value, pttl } => {
                write!(f, "held by {}…", token_prefix(value))?;
                match pttl {
                    Some(p) => write!(f, ", PTTL {} ms", p.as_millis()),
                    None => f.write_str(", no expiry"),
                }
            }
            KeyState::NotALock { .. } => f.write_str("holds a value that is not a lock"),
            KeyState::Failed(e) => f.write_str(e),
        }
    }
}

/// The JSON form of one master's answer.
#[derive(Debug, Serialize)]
pub(crate) struct MasterJson {
    master: String,
    reachable: bool,
    exists: Option<bool>,
    is_lock: Option<bool>,
    token_prefix: Option<String>,
    /// PTTL in ms: -1 no expiry, -2 no key, null when unknown.
    pttl_ms: Option<i64>,
    error: Option<String>,
}

fn pttl_ms(p: Option<Duration>) -> i64 {
    p.map_or(-1, |p| i64::try_from(p.as_millis()).unwrap_or(i64::MAX))
}

impl From<&MasterKey> for MasterJson {
    fn from(m: &MasterKey) -> Self {
        let master = m.master.clone();
        match &m.state {
            KeyState::Absent => Self {
                master,
                reachable: true,
                exists: Some(false),
                is_lock: None,
                token_prefix: None,
                pttl_ms: Some(-2),
                error: None,
            },
            KeyState::Held { value, pttl } => Self {
                master,
                reachable: true,
                exists: Some(true),
                is_lock: Some(true),
                token_prefix: Some(token_prefix(value)),
                pttl_ms: Some(pttl_ms(*pttl)),
                error: None,
            },
            KeyState::NotALock { pttl } => Self {
                master,
                reachable: true,
                exists: Some(true),
                is_lock: Some(false),
                token_prefix: None,
                pttl_ms: Some(pttl_ms(*pttl)),
                error: None,
            },
            KeyState::Failed(e) => Self {
                master,
                reachable: false,
                exists: None,
                is_lock: None,
                token_prefix: None,
                pttl_ms: None,
                error: Some(e.clone()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_found_and_scrubbed() {
        assert_eq!(
            password("redis://u:s3cret@h:6379/0").as_deref(),
            Some("s3cret")
        );
        assert_eq!(password("redis://:pw@h").as_deref(), Some("pw"));
        assert_eq!(password("redis://h:6379"), None);
        assert_eq!(password("redis://u@h"), None);
        assert_eq!(
            scrub("WRONGPASS s3cret", &["s3cret".to_owned()]),
            "WRONGPASS ***"
        );
    }

    #[test]
    fn token_prefixes_are_short_and_escaped() {
        assert_eq!(token_prefix(b"0123456789abcdef"), "01234567");
        assert_eq!(token_prefix(b"a\nb"), "a\\nb");
        assert_eq!(token_prefix(b""), "");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(show_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(show_duration(Duration::from_millis(28_449)), "28.4s");
        assert_eq!(show_duration(Duration::from_secs(303)), "5m 3s");
    }
}

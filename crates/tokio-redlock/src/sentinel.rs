//! A Sentinel group as one quorum member: finding its current master.
//!
//! Why not redis-rs's `SentinelClient`: it takes the sentinels' answers in the configured
//! order, so one frozen sentinel listed first holds every lookup for redis-rs's own connect
//! timeout (1 s) — with the library's default connect budget, also 1 s, the member was lost
//! although two sentinels of three were healthy. Here every sentinel is asked at once and
//! the lookup ends as soon as a majority of them has answered; the address most of them name
//! wins. Whether that server really is a master is checked by `ROLE` on the member's own
//! connection (`node.rs`), so a stale sentinel cannot make a replica count.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use redis::RedisError;
use tokio::time::Instant;

use crate::failover::FailoverWatch;
use crate::member::SentinelSpec;
use crate::tls::TlsSettings;

/// A Sentinel group: its sentinels, how to reach the master they name, and the watch that
/// follows its failovers.
pub(crate) struct SentinelGroup {
    spec: SentinelSpec,
    sentinels: Vec<redis::Client>,
    tls: TlsSettings,
    watch: FailoverWatch,
}

/// Why a lookup found no master.
#[derive(Debug)]
pub(crate) enum LookupError {
    /// A sentinel refused us (credentials, TLS): the error as it came.
    Redis(RedisError),
    /// No sentinel answered, or the sentinels that answered do not know the name.
    Sentinel(String),
}

impl SentinelGroup {
    /// The group of `spec`; connects to nothing.
    pub(crate) fn new(
        spec: SentinelSpec,
        tls: &TlsSettings,
        node_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, RedisError> {
        let sentinels = spec.sentinel_clients(tls)?;
        let watch = FailoverWatch::new(
            sentinels.clone(),
            spec.master_name.clone(),
            node_timeout,
            connect_timeout,
        );
        Ok(Self {
            spec,
            sentinels,
            tls: tls.clone(),
            watch,
        })
    }

    /// The group as configured.
    pub(crate) fn spec(&self) -> &SentinelSpec {
        &self.spec
    }

    /// The group's failover watch.
    pub(crate) fn watch(&self) -> &FailoverWatch {
        &self.watch
    }

    /// A client for the master the sentinels name now. Every sentinel is asked at once
    /// (`SENTINEL GET-MASTER-ADDR-BY-NAME`); the lookup ends when a majority has answered,
    /// when all have answered or failed, or — once at least one named a master — after half
    /// of `budget`. The address named most often wins (the first named on a tie).
    pub(crate) async fn master(&self, budget: Duration) -> Result<redis::Client, LookupError> {
        let name = self.spec.master_name.as_str();
        let mut asks: FuturesUnordered<_> = self
            .sentinels
            .iter()
            .map(|sentinel| async move {
                let mut con = sentinel.get_multiplexed_async_connection().await?;
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(name)
                    .query_async::<Option<(String, u16)>>(&mut con)
                    .await
            })
            .collect();
        let majority = self
            .sentinels
            .len()
            .checked_div(2)
            .unwrap_or(0)
            .saturating_add(1);
        let patience = Instant::now()
            .checked_add(budget.checked_div(2).unwrap_or_default())
            .unwrap_or_else(Instant::now);
        // Addresses in the order first named, with how many sentinels named each.
        let mut named: Vec<((String, u16), usize)> = Vec::new();
        let mut answered = 0usize;
        let mut failure: Option<RedisError> = None;
        loop {
            let next = if named.is_empty() {
                asks.next().await
            } else {
                match tokio::time::timeout_at(patience, asks.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                }
            };
            let Some(reply) = next else { break };
            match reply {
                Ok(Some(addr)) => {
                    answered = answered.saturating_add(1);
                    count(&mut named, addr);
                }
                Ok(None) => answered = answered.saturating_add(1),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
            if answered >= majority {
                break;
            }
        }
        match most_named(&named) {
            Some((host, port)) => self
                .spec
                .master_client(&host, port, &self.tls)
                .map_err(LookupError::Redis),
            None if answered > 0 => Err(LookupError::Sentinel(format!(
                "the sentinels that answered ({answered} of {}) know no master named `{name}`",
                self.sentinels.len()
            ))),
            None => match failure {
                Some(e) if is_credentials_or_tls(&e) => Err(LookupError::Redis(e)),
                Some(e) => Err(LookupError::Sentinel(format!("no sentinel answered: {e}"))),
                None => Err(LookupError::Sentinel("no sentinel answered".to_owned())),
            },
        }
    }
}

/// Errors that keep their own kind rather than "no sentinel answered".
fn is_credentials_or_tls(e: &RedisError) -> bool {
    matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
        || e.kind() == redis::ErrorKind::AuthenticationFailed
        || crate::tls::tls_cause(e).is_some()
}

/// Counts one more sentinel naming `addr`.
fn count(named: &mut Vec<((String, u16), usize)>, addr: (String, u16)) {
    match named.iter_mut().find(|(a, _)| *a == addr) {
        Some((_, n)) => *n = n.saturating_add(1),
        None => named.push((addr, 1)),
    }
}

/// The address named most often; on a tie, the first one named.
fn most_named(named: &[((String, u16), usize)]) -> Option<(String, u16)> {
    named
        .iter()
        .enumerate()
        .max_by_key(|(i, (_, n))| (*n, std::cmp::Reverse(*i)))
        .map(|(_, (addr, _))| addr.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn winner(names: &[(&str, u16)]) -> Option<(String, u16)> {
        let mut named = Vec::new();
        for (host, port) in names {
            count(&mut named, ((*host).to_owned(), *port));
        }
        most_named(&named)
    }

    #[test]
    fn the_most_named_address_wins_and_ties_go_to_the_first() {
        assert_eq!(winner(&[]), None);
        assert_eq!(
            winner(&[("a", 1), ("b", 2), ("b", 2)]),
            Some(("b".to_owned(), 2))
        );
        assert_eq!(winner(&[("a", 1), ("b", 2)]), Some(("a".to_owned(), 1)));
        assert_eq!(
            winner(&[("a", 1), ("b", 2), ("a", 1)]),
            Some(("a".to_owned(), 1))
        );
    }
}

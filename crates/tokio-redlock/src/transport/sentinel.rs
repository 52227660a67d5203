//! A Sentinel group as one quorum member: finding its current master.
//!
//! Why not redis-rs's `SentinelClient`: it takes the sentinels' answers in the configured
//! order, so one frozen sentinel listed first holds every lookup for redis-rs's own connect
//! timeout (1 s) — with the library's default connect budget, also 1 s, the member was lost
//! although two sentinels of three were healthy. Here every sentinel is asked at once
//! (`SENTINEL MASTER <name>`) and the lookup ends as soon as a majority of them has answered.
//! The answer with the highest `config-epoch` wins: right after a failover the sentinels that
//! have not heard of it yet still name the old master, and a majority of them would send us
//! back to it; the epoch is what Sentinel itself uses to let the newest configuration win. On
//! equal epochs the address most sentinels name wins. Whether that server really is a
//! master is checked by `ROLE` on the member's own connection (`node.rs`), so a stale
//! sentinel cannot make a replica count.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use redis::RedisError;
use tokio::time::Instant;

use crate::transport::failover::FailoverWatch;
use crate::transport::member::SentinelSpec;
use crate::transport::tls::TlsSettings;

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

    /// A client for the master the sentinels name now, with the configuration epoch of that
    /// answer. Every sentinel is asked at once (`SENTINEL MASTER <name>`); the lookup ends
    /// when a majority has answered, when all have answered or failed, or — once at least one
    /// named a master — after half of `budget`. The highest `config-epoch` wins, then the
    /// address named most often, then the first named.
    pub(crate) async fn master(
        &self,
        budget: Duration,
    ) -> Result<(redis::Client, u64), LookupError> {
        let name = self.spec.master_name.as_str();
        let mut asks: FuturesUnordered<_> = self
            .sentinels
            .iter()
            .map(|sentinel| async move {
                let mut con = sentinel.get_multiplexed_async_connection().await?;
                ask(&mut con, name).await
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
        // Answers in the order first given, with how many sentinels gave each.
        let mut named: Vec<(Named, usize)> = Vec::new();
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
        match newest(&named) {
            Some(Named { host, port, epoch }) => self
                .spec
                .master_client(&host, port, &self.tls)
                .map(|client| (client, epoch))
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
        || crate::transport::tls::tls_cause(e).is_some()
}

/// One sentinel's answer: the master's address and the configuration epoch it was set in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Named {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) epoch: u64,
}

/// Asks one sentinel for the master `name`: `None` when it does not know the name.
pub(crate) async fn ask(
    con: &mut redis::aio::MultiplexedConnection,
    name: &str,
) -> Result<Option<Named>, RedisError> {
    let reply = redis::cmd("SENTINEL")
        .arg("MASTER")
        .arg(name)
        .query_async::<std::collections::HashMap<String, String>>(con)
        .await;
    let fields = match reply {
        Ok(fields) => fields,
        // "ERR No such master with that name"
        Err(e) if e.code() == Some("ERR") => return Ok(None),
        Err(e) => return Err(e),
    };
    let host = fields.get("ip").cloned();
    let port = fields.get("port").and_then(|p| p.parse::<u16>().ok());
    let epoch = fields
        .get("config-epoch")
        .and_then(|e| e.parse::<u64>().ok())
        .unwrap_or(0);
    Ok(match (host, port) {
        (Some(host), Some(port)) => Some(Named { host, port, epoch }),
        _ => None,
    })
}

/// Counts one more sentinel giving `answer`.
fn count(named: &mut Vec<(Named, usize)>, answer: Named) {
    match named.iter_mut().find(|(a, _)| *a == answer) {
        Some((_, n)) => *n = n.saturating_add(1),
        None => named.push((answer, 1)),
    }
}

/// The newest answer: highest epoch, then named most often, then first named.
fn newest(named: &[(Named, usize)]) -> Option<Named> {
    named
        .iter()
        .enumerate()
        .max_by_key(|(i, (a, n))| (a.epoch, *n, std::cmp::Reverse(*i)))
        .map(|(_, (answer, _))| answer.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn winner(names: &[(&str, u64)]) -> Option<(String, u64)> {
        let mut named = Vec::new();
        for (host, epoch) in names {
            let answer = Named {
                host: (*host).to_owned(),
                port: 1,
                epoch: *epoch,
            };
            count(&mut named, answer);
        }
        newest(&named).map(|n| (n.host, n.epoch))
    }

    #[test]
    fn the_newest_epoch_wins_then_the_most_named_then_the_first() {
        assert_eq!(winner(&[]), None);
        // Right after a failover: two stale sentinels, one that knows.
        assert_eq!(
            winner(&[("old", 0), ("old", 0), ("new", 1)]),
            Some(("new".to_owned(), 1))
        );
        assert_eq!(
            winner(&[("a", 0), ("b", 0), ("b", 0)]),
            Some(("b".to_owned(), 0))
        );
        assert_eq!(winner(&[("a", 0), ("b", 0)]), Some(("a".to_owned(), 0)));
    }
}

//! Following a Sentinel group's failovers: the watch behind a Sentinel member's connections.
//!
//! A connection to a master the sentinels have replaced must be dropped at once, not when the
//! old master is finally demoted: that takes the sentinels seconds (or never happens while
//! they cannot reach it), and until then the old master still accepts writes — a lock taken
//! there is taken on a master nobody else uses, and its key is wiped when the server
//! resynchronises from the new master.
//!
//! A task subscribes to `+switch-master` on every sentinel of the group and, every second,
//! asks each `SENTINEL MASTER <name>`: a switch it announces, or an address that differs
//! from the one the member is connected to in a configuration at least as new (Sentinel's
//! `config-epoch`; a sentinel that has not heard of a failover yet still names the old master
//! under the old epoch, and is not followed back), bumps an epoch; a connection opened under
//! an older epoch is not used again. A sentinel that does not answer a check in time (frozen,
//! partitioned) or whose connection ends is reconnected to after a pause, while the others go
//! on watching: one dead sentinel hides nothing. The task starts
//! with the member's first connection and stops at `close()` or when the manager is dropped.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::ConnectionAddr;
use tokio_util::sync::CancellationToken;

use crate::transport::sentinel::ask;

/// How often the watched sentinel is asked for the master's address.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Pause before the watch reconnects to a sentinel it lost.
const BACKOFF: Duration = Duration::from_millis(200);
/// The least time a sentinel is given to answer a check.
const MIN_CHECK_TIMEOUT: Duration = Duration::from_millis(250);

/// The failover watch of one Sentinel member; see the module docs.
pub(crate) struct FailoverWatch {
    shared: Arc<Shared>,
    sentinels: Vec<redis::Client>,
    master_name: String,
    /// Budget for one check of a sentinel.
    check_timeout: Duration,
    connect_timeout: Duration,
    started: AtomicBool,
    stop: CancellationToken,
}

/// The master a connection goes to.
#[derive(Clone, Debug)]
struct Connected {
    host: String,
    port: u16,
    /// The `config-epoch` of the sentinels' answer that named it.
    config_epoch: u64,
}

/// What the watch and the member share.
struct Shared {
    /// Bumped at every switch of our master.
    epoch: AtomicU64,
    /// The master the member's current connection goes to, with the Sentinel configuration
    /// epoch it was named in (`None` once retired).
    connected: Mutex<Option<Connected>>,
}

impl Shared {
    /// Retires the connection to `from` (if it is still the current one).
    fn switched(&self, master_name: &str, why: &str) {
        let mut connected = self.connected.lock().unwrap_or_else(|p| p.into_inner());
        if connected.take().is_some() {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            tracing::info!(master_name, "{why}: reconnecting to the new master");
        }
    }
}

impl FailoverWatch {
    /// A watch over `sentinels` for `master_name`; nothing runs until the first connection.
    pub(crate) fn new(
        sentinels: Vec<redis::Client>,
        master_name: String,
        node_timeout: Duration,
        connect_timeout: Duration,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                epoch: AtomicU64::new(0),
                connected: Mutex::new(None),
            }),
            sentinels,
            master_name,
            check_timeout: node_timeout.max(MIN_CHECK_TIMEOUT).min(connect_timeout),
            connect_timeout,
            started: AtomicBool::new(false),
            stop: CancellationToken::new(),
        }
    }

    /// The current epoch: read it before looking up the master, keep it with the connection.
    pub(crate) fn epoch(&self) -> u64 {
        self.shared.epoch.load(Ordering::Acquire)
    }

    /// Records the master a new connection (opened under `epoch`, named in Sentinel
    /// configuration `config_epoch`) goes to, and starts the task on the first call. A
    /// connection opened under a retired epoch is not recorded.
    pub(crate) fn connected_to(&self, client: &redis::Client, epoch: u64, config_epoch: u64) {
        let addr = match client.get_connection_info().addr() {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                Some(Connected {
                    host: host.clone(),
                    port: *port,
                    config_epoch,
                })
            }
            _ => None,
        };
        {
            let mut connected = self
                .shared
                .connected
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if self.epoch() == epoch {
                *connected = addr;
            }
        }
        if self.stop.is_cancelled() || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let task = watch(
            self.sentinels.clone(),
            self.master_name.clone(),
            Arc::clone(&self.shared),
            self.check_timeout,
            self.connect_timeout,
        );
        let stop = self.stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = task => {}
            }
        });
    }

    /// Stops the task.
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for FailoverWatch {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The name of the master a `+switch-master` message is about: the message is
/// `<master-name> <old-ip> <old-port> <new-ip> <new-port>`, and the name may hold spaces.
fn switched_master(payload: &str) -> Option<&str> {
    let mut fields = payload.rsplitn(5, ' ');
    let _new_port = fields.next()?;
    let _new_ip = fields.next()?;
    let _old_port = fields.next()?;
    let _old_ip = fields.next()?;
    fields.next()
}

/// The watch's task; runs until cancelled.
async fn watch(
    sentinels: Vec<redis::Client>,
    master_name: String,
    shared: Arc<Shared>,
    check_timeout: Duration,
    connect_timeout: Duration,
) {
    // Every sentinel at once: a switch is seen through whichever hears of it first, and a
    // frozen or slow sentinel leaves no gap while another is being connected to.
    let watches = sentinels.iter().map(|sentinel| {
        let (master_name, shared) = (&master_name, &shared);
        async move {
            loop {
                let error =
                    watch_one(sentinel, master_name, shared, check_timeout, connect_timeout)
                        .await;
                tracing::debug!(master_name = %master_name, %error, "failover watch: sentinel lost; reconnecting");
                tokio::time::sleep(BACKOFF).await;
            }
        }
    });
    futures_util::future::join_all(watches).await;
}

/// Watches through one sentinel until it fails; returns why.
async fn watch_one(
    sentinel: &redis::Client,
    master_name: &str,
    shared: &Shared,
    check_timeout: Duration,
    connect_timeout: Duration,
) -> String {
    let connect = async {
        let mut pubsub = sentinel.get_async_pubsub().await?;
        pubsub.subscribe("+switch-master").await?;
        let con = sentinel.get_multiplexed_async_connection().await?;
        Ok::<_, redis::RedisError>((pubsub, con))
    };
    let (mut pubsub, mut con) = match tokio::time::timeout(connect_timeout, connect).await {
        Ok(Ok(connected)) => connected,
        Ok(Err(e)) => return e.to_string(),
        Err(_) => return format!("no connection within {connect_timeout:?}"),
    };
    let mut messages = pubsub.on_message();
    loop {
        // Checked right after subscribing too: a switch announced before it is not missed.
        match tokio::time::timeout(check_timeout, ask(&mut con, master_name)).await {
            Ok(Ok(named)) => {
                let ours = shared
                    .connected
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                if let (Some(named), Some(ours)) = (named, ours)
                    && (named.host != ours.host || named.port != ours.port)
                    && named.epoch >= ours.config_epoch
                {
                    shared.switched(master_name, "the sentinels name another master");
                }
            }
            Ok(Err(e)) => return e.to_string(),
            Err(_) => return format!("no answer to a check within {check_timeout:?}"),
        }
        let wait = tokio::time::sleep(CHECK_EVERY);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                message = messages.next() => {
                    let Some(message) = message else {
                        return "the subscription ended".to_owned();
                    };
                    let payload: String = message.get_payload().unwrap_or_default();
                    if switched_master(&payload) == Some(master_name) {
                        shared.switched(master_name, "the sentinels announced a failover");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_messages_name_their_master_even_with_spaces() {
        assert_eq!(
            switched_master("mymaster 127.0.0.1 1 127.0.0.1 2"),
            Some("mymaster")
        );
        assert_eq!(
            switched_master("my master 127.0.0.1 1 127.0.0.1 2"),
            Some("my master")
        );
        assert_eq!(switched_master("127.0.0.1 1 127.0.0.1 2"), None);
        assert_eq!(switched_master(""), None);
    }
}

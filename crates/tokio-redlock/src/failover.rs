//! Following a Sentinel group's failovers: the `+switch-master` watch behind a Sentinel
//! member's connections.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::{ConnectionAddr, RedisError};
use tokio_util::sync::CancellationToken;

use crate::member::SentinelSpec;
use crate::tls::TlsSettings;

/// Follows a Sentinel group's failovers, so that a connection to a master the sentinels have
/// replaced is dropped at once rather than when the old master is finally demoted (which
/// takes the sentinels seconds; until then it still accepts writes, and keys written there
/// are wiped when it resynchronises from the new master).
///
/// A task subscribes to `+switch-master` on one sentinel at a time (the next one when that
/// connection ends); right after subscribing it also asks `SENTINEL GET-MASTER-ADDR-BY-NAME`,
/// so a switch announced before the subscription is not missed. Every switch of our master
/// bumps an epoch; a connection opened under an older epoch is not used again. The task
/// starts with the member's first connection and stops at `close()` or when the manager is
/// dropped.
pub(crate) struct FailoverWatch {
    /// Bumped at every switch of our master.
    epoch: Arc<AtomicU64>,
    /// The master our current connection goes to.
    connected: Arc<Mutex<Option<(String, u16)>>>,
    /// Sentinel clients and the master name, for the task.
    sentinels: Vec<redis::Client>,
    master_name: String,
    connect_timeout: Duration,
    started: AtomicBool,
    stop: CancellationToken,
}

impl FailoverWatch {
    /// A watch for `spec`'s master; nothing runs until [`start`](Self::start).
    pub(crate) fn new(
        spec: &SentinelSpec,
        tls: &TlsSettings,
        connect_timeout: Duration,
    ) -> Result<Self, RedisError> {
        Ok(Self {
            epoch: Arc::new(AtomicU64::new(0)),
            connected: Arc::new(Mutex::new(None)),
            sentinels: spec.sentinel_clients(tls)?,
            master_name: spec.master_name.clone(),
            connect_timeout,
            started: AtomicBool::new(false),
            stop: CancellationToken::new(),
        })
    }

    /// The current epoch: read it before resolving the master, keep it with the connection.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Records the master a new connection goes to, and starts the task (once).
    pub(crate) fn connected_to(&self, client: &redis::Client) {
        let addr = match client.get_connection_info().addr() {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                Some((host.clone(), *port))
            }
            _ => None,
        };
        *self.connected.lock().unwrap_or_else(|p| p.into_inner()) = addr;
        if self.stop.is_cancelled() || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let task = watch_switches(
            self.sentinels.clone(),
            self.master_name.clone(),
            Arc::clone(&self.epoch),
            Arc::clone(&self.connected),
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

/// Pause before the watch moves on to the next sentinel.
const WATCH_BACKOFF: Duration = Duration::from_millis(500);

/// The failover watch's task: see [`FailoverWatch`]. Runs until cancelled.
async fn watch_switches(
    sentinels: Vec<redis::Client>,
    master_name: String,
    epoch: Arc<AtomicU64>,
    connected: Arc<Mutex<Option<(String, u16)>>>,
    connect_timeout: Duration,
) {
    let switched = |why: &str| {
        epoch.fetch_add(1, Ordering::AcqRel);
        tracing::info!(master_name = %master_name, "{why}: reconnecting to the new master");
    };
    let mut next = 0usize;
    loop {
        let Some(sentinel) = next
            .checked_rem(sentinels.len())
            .and_then(|i| sentinels.get(i))
        else {
            return;
        };
        next = next.wrapping_add(1);
        let session = async {
            let mut pubsub = tokio::time::timeout(connect_timeout, sentinel.get_async_pubsub())
                .await
                .map_err(|_| "connect timed out".to_owned())?
                .map_err(|e| e.to_string())?;
            pubsub
                .subscribe("+switch-master")
                .await
                .map_err(|e| e.to_string())?;
            // A switch announced before the subscription: compare with the sentinel's view.
            let mut con =
                tokio::time::timeout(connect_timeout, sentinel.get_multiplexed_async_connection())
                    .await
                    .map_err(|_| "connect timed out".to_owned())?
                    .map_err(|e| e.to_string())?;
            let named: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(&master_name)
                .query_async(&mut con)
                .await
                .map_err(|e| e.to_string())?;
            let ours = connected.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let (Some(named), Some(ours)) = (named, ours)
                && named != ours
            {
                switched("the sentinels name another master");
            }
            drop(con);
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                // "<master-name> <old-ip> <old-port> <new-ip> <new-port>"
                let payload: String = message.get_payload().unwrap_or_default();
                if payload.split(' ').next() == Some(master_name.as_str()) {
                    switched("the sentinels announced a failover (+switch-master)");
                }
            }
            Ok::<(), String>(())
        };
        if let Err(error) = session.await {
            tracing::debug!(master_name = %master_name, %error, "failover watch: sentinel lost; trying the next");
        }
        tokio::time::sleep(WATCH_BACKOFF).await;
    }
}

//! Release notifications: waiters wake when a lock is released, not after a polling delay.
//!
//! The release script publishes on a per-resource channel. A manager keeps, per master, one
//! subscriber connection, opened lazily by the first waiter and shared by all of them; it
//! subscribes to the channels of the resources that have waiters, re-subscribes after a
//! reconnect, and wakes exactly the waiters of the resource released.
//!
//! On a Redis Cluster member, releases are published with `SPUBLISH` on the key's sharded
//! channel ([`keys::sharded_release_channel`]: the lock key as the channel's hash tag, so it
//! hashes to the key's slot), and the member's subscriber keeps one redis-rs cluster
//! connection whose `SSUBSCRIBE`s go to the master serving each channel's slot. A slot that
//! moves ends its subscriptions there (the server sends `sunsubscribe`); the subscriber
//! subscribes every channel again each [`RESUBSCRIBE_EVERY`], which lands them on the new
//! master. Waiting works as on a plain master: the registry is keyed by the plain channel.
//!
//! Herd control: per resource, at most [`ATTEMPTING`] waiters of a manager attempt at once;
//! the others queue on a FIFO-fair semaphore, so within one manager the waiters of a resource
//! take their turns in arrival order. Across managers (other processes) there is no order.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::keys;
use crate::transport::node::Node;

/// Waiters of one resource (per manager) that attempt at the same time.
pub(crate) const ATTEMPTING: usize = 1;

/// Pause before reconnecting a subscriber connection that failed.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// How often a Redis Cluster member's subscriber subscribes every channel again, so that a
/// subscription a slot migration or a failover ended is back on the slot's new master.
const RESUBSCRIBE_EVERY: Duration = Duration::from_secs(1);

/// A subscriber task's wake-up: the registry changed, reconcile with it.
struct Changed;

/// The waiters of one resource.
struct Entry {
    notify: Arc<Notify>,
    turns: Arc<Semaphore>,
    waiters: usize,
    /// Whether some master has confirmed the subscription (its waiters were woken then).
    confirmed: bool,
}

/// Channel registry and subscriber tasks of one manager.
pub(crate) struct Notifier {
    nodes: Vec<Arc<Node>>,
    registry: Mutex<HashMap<Arc<[u8]>, Entry>>,
    /// Per master, the command queue of its subscriber task, once started.
    subscribers: Mutex<Vec<Option<mpsc::UnboundedSender<Changed>>>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    connect_timeout: Duration,
}

/// A waiter's registration for one resource: wakes on its releases, and holds a place in its
/// queue of turns. Dropping it unsubscribes when it was the last waiter of the resource.
pub(crate) struct Subscription {
    notifier: Arc<Notifier>,
    channel: Arc<[u8]>,
    pub(crate) notify: Arc<Notify>,
    pub(crate) turns: Arc<Semaphore>,
}

impl Notifier {
    pub(crate) fn new(
        nodes: Vec<Arc<Node>>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
        connect_timeout: Duration,
    ) -> Self {
        let subscribers = Mutex::new(nodes.iter().map(|_| None).collect());
        Self {
            nodes,
            registry: Mutex::new(HashMap::new()),
            subscribers,
            tasks,
            shutdown,
            connect_timeout,
        }
    }

    /// Registers a waiter for `channel`, subscribing on every master for its first waiter.
    pub(crate) fn subscribe(self: &Arc<Self>, channel: Arc<[u8]>) -> Subscription {
        // Commands are sent under the registry lock, so a subscribe and an unsubscribe of the
        // same channel reach the subscriber tasks in the order the registry saw them.
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let entry = registry
            .entry(Arc::clone(&channel))
            .or_insert_with(|| Entry {
                notify: Arc::new(Notify::new()),
                turns: Arc::new(Semaphore::new(ATTEMPTING)),
                waiters: 0,
                confirmed: false,
            });
        entry.waiters = entry.waiters.saturating_add(1);
        let (notify, turns) = (Arc::clone(&entry.notify), Arc::clone(&entry.turns));
        if entry.waiters == 1 {
            self.broadcast();
        }
        drop(registry);
        Subscription {
            notifier: Arc::clone(self),
            channel,
            notify,
            turns,
        }
    }

    /// Channels with waiters and subscriptions still held: for tests and diagnostics.
    pub(crate) fn channels(&self) -> usize {
        self.registry.lock().map(|r| r.len()).unwrap_or_default()
    }

    /// Whether `channel` has waiters in this manager now.
    pub(crate) fn has_waiters(&self, channel: &[u8]) -> bool {
        self.registry
            .lock()
            .map(|r| r.contains_key(channel))
            .unwrap_or(false)
    }

    /// Tells every master's subscriber task that the registry changed, starting the tasks on
    /// first use.
    fn broadcast(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        for (i, slot) in subscribers.iter_mut().enumerate() {
            if slot.as_ref().is_none_or(mpsc::UnboundedSender::is_closed) {
                let Some(node) = self.nodes.get(i) else {
                    continue;
                };
                let (tx, rx) = mpsc::unbounded_channel();
                if node.is_cluster() {
                    let task = cluster_subscriber(
                        Arc::clone(node),
                        Arc::downgrade(self),
                        rx,
                        self.shutdown.clone(),
                        self.connect_timeout,
                    );
                    runtime.spawn(self.tasks.track_future(task));
                } else {
                    let task = subscriber(
                        Arc::clone(node),
                        Arc::downgrade(self),
                        rx,
                        self.shutdown.clone(),
                        self.connect_timeout,
                    );
                    runtime.spawn(self.tasks.track_future(task));
                }
                *slot = Some(tx);
            }
            if let Some(tx) = slot {
                // A closed task is replaced on the next broadcast; a new one reconciles with
                // the whole registry anyway.
                let _ = tx.send(Changed);
            }
        }
    }

    /// Wakes the waiters of `channel` the first time a master confirms its subscription: a
    /// release published before then may have been missed, so they try once more. Releases
    /// are published on every master, so one live subscription is enough from then on.
    fn confirmed(&self, channel: &[u8]) {
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = registry.get_mut(channel)
            && !entry.confirmed
        {
            entry.confirmed = true;
            entry.notify.notify_waiters();
        }
    }

    /// Wakes the waiters of `channel`.
    fn wake(&self, channel: &[u8]) {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = registry.get(channel) {
            entry.notify.notify_waiters();
        }
    }

    fn all_channels(&self) -> Vec<Arc<[u8]>> {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        registry.keys().cloned().collect()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut registry = self
            .notifier
            .registry
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match registry.get_mut(&self.channel) {
            Some(entry) if entry.waiters <= 1 => {
                registry.remove(&self.channel);
                self.notifier.broadcast();
            }
            Some(entry) => entry.waiters = entry.waiters.saturating_sub(1),
            None => {}
        }
    }
}

/// One master's subscriber: (re)connects, keeps its subscriptions equal to the registry's
/// channels (one SUBSCRIBE / UNSUBSCRIBE per batch of changes), and wakes waiters on messages.
/// The first acknowledged SUBSCRIBE of a channel (on any master) wakes its waiters too: a
/// release published before the subscription took effect would otherwise be missed, so they
/// try once more.
/// Ends on shutdown or when the manager is gone.
async fn subscriber(
    node: Arc<Node>,
    notifier: Weak<Notifier>,
    mut changes: mpsc::UnboundedReceiver<Changed>,
    shutdown: CancellationToken,
    connect_timeout: Duration,
) {
    loop {
        // A (re)connect reconciles with the registry itself, so changes signalled while this
        // master was away are moot: drop them, keeping memory bounded during an outage.
        while changes.try_recv().is_ok() {}
        let connect = tokio::time::timeout(connect_timeout, node.pubsub());
        let pubsub = tokio::select! {
            () = shutdown.cancelled() => return,
            result = connect => match result {
                Ok(Ok(pubsub)) => pubsub,
                Ok(Err(e)) => {
                    tracing::debug!(master = %node.address(), error = %e, "subscriber: cannot connect");
                    if pause_or_stop(&shutdown).await { return; }
                    continue;
                }
                Err(_) => {
                    if pause_or_stop(&shutdown).await { return; }
                    continue;
                }
            },
        };
        let (mut sink, mut stream) = pubsub.split();
        let mut subscribed: HashSet<Arc<[u8]>> = HashSet::new();
        loop {
            let Some(live) = notifier.upgrade() else {
                return;
            };
            match reconcile(&live, &mut sink, &mut subscribed, connect_timeout).await {
                Ok(()) => {}
                Err(()) => {
                    tracing::debug!(master = %node.address(), "subscriber: (un)subscribe failed; reconnecting");
                    break;
                }
            }
            drop(live);
            tokio::select! {
                () = shutdown.cancelled() => return,
                change = changes.recv() => {
                    if change.is_none() { return }
                    // Coalesce a burst of changes into one reconciliation.
                    while changes.try_recv().is_ok() {}
                }
                message = stream.next() => {
                    let Some(message) = message else { break };
                    let Some(notifier) = notifier.upgrade() else { return };
                    if let Ok(channel) = message.get_channel::<Vec<u8>>() {
                        notifier.wake(&channel);
                    }
                }
            }
        }
        if pause_or_stop(&shutdown).await {
            return;
        }
    }
}

/// Brings one subscriber connection's subscriptions in line with the registry.
async fn reconcile(
    notifier: &Notifier,
    sink: &mut redis::aio::PubSubSink,
    subscribed: &mut HashSet<Arc<[u8]>>,
    budget: Duration,
) -> Result<(), ()> {
    let wanted: HashSet<Arc<[u8]>> = notifier.all_channels().into_iter().collect();
    let add: Vec<Arc<[u8]>> = wanted.difference(subscribed).cloned().collect();
    let remove: Vec<Arc<[u8]>> = subscribed.difference(&wanted).cloned().collect();
    if !add.is_empty() {
        let names: Vec<&[u8]> = add.iter().map(|c| &**c).collect();
        match tokio::time::timeout(budget, sink.subscribe(names)).await {
            Ok(Ok(())) => {}
            _ => return Err(()),
        }
        for channel in add {
            notifier.confirmed(&channel);
            subscribed.insert(channel);
        }
    }
    if !remove.is_empty() {
        let names: Vec<&[u8]> = remove.iter().map(|c| &**c).collect();
        match tokio::time::timeout(budget, sink.unsubscribe(names)).await {
            Ok(Ok(())) => {}
            _ => return Err(()),
        }
        for channel in &remove {
            subscribed.remove(channel);
        }
    }
    Ok(())
}

/// A Redis Cluster member's subscriber: one redis-rs cluster connection (RESP3) whose
/// `SSUBSCRIBE`s go to the master of each channel's slot; keeps its subscriptions equal to
/// the registry's channels (as sharded channels), subscribes every channel again each
/// [`RESUBSCRIBE_EVERY`], and wakes waiters on `smessage` pushes. Ends on shutdown or when
/// the manager is gone.
async fn cluster_subscriber(
    node: Arc<Node>,
    notifier: Weak<Notifier>,
    mut changes: mpsc::UnboundedReceiver<Changed>,
    shutdown: CancellationToken,
    connect_timeout: Duration,
) {
    loop {
        while changes.try_recv().is_ok() {}
        let (tx, mut pushes) = mpsc::unbounded_channel();
        let connect = node.cluster_subscriber(tx);
        let mut con = tokio::select! {
            () = shutdown.cancelled() => return,
            result = connect => match result {
                Some(Ok(con)) => con,
                Some(Err(e)) => {
                    tracing::debug!(master = %node.address(), error = %e, "subscriber: cannot connect");
                    if pause_or_stop(&shutdown).await { return; }
                    continue;
                }
                None => return,
            },
        };
        // Plain channel (the registry's key) → sharded channel, for those subscribed.
        let mut subscribed: HashMap<Arc<[u8]>, Arc<[u8]>> = HashMap::new();
        let mut resubscribe = tokio::time::interval(RESUBSCRIBE_EVERY);
        resubscribe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut again = false;
        loop {
            let Some(live) = notifier.upgrade() else {
                return;
            };
            let reconciled = reconcile_sharded(
                &live,
                &mut con,
                &mut subscribed,
                std::mem::take(&mut again),
                connect_timeout,
            )
            .await;
            drop(live);
            if reconciled.is_err() {
                tracing::debug!(master = %node.address(), "subscriber: (un)subscribe failed; reconnecting");
                break;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                change = changes.recv() => {
                    if change.is_none() { return }
                    while changes.try_recv().is_ok() {}
                }
                _ = resubscribe.tick() => again = true,
                push = pushes.recv() => {
                    let Some(push) = push else { break };
                    if push.kind != redis::PushKind::SMessage {
                        continue;
                    }
                    let Some(notifier) = notifier.upgrade() else { return };
                    if let Some(redis::Value::BulkString(channel)) = push.data.first() {
                        for (plain, sharded) in &subscribed {
                            if **sharded == **channel {
                                notifier.wake(plain);
                            }
                        }
                    }
                }
            }
        }
        if pause_or_stop(&shutdown).await {
            return;
        }
    }
}

/// Brings a cluster subscriber's sharded subscriptions in line with the registry; with
/// `again`, subscribes every wanted channel anew (a slot may have moved).
async fn reconcile_sharded(
    notifier: &Notifier,
    con: &mut redis::cluster_async::ClusterConnection,
    subscribed: &mut HashMap<Arc<[u8]>, Arc<[u8]>>,
    again: bool,
    budget: Duration,
) -> Result<(), ()> {
    let wanted: HashSet<Arc<[u8]>> = notifier.all_channels().into_iter().collect();
    let add: Vec<Arc<[u8]>> = wanted
        .iter()
        .filter(|c| again || !subscribed.contains_key(*c))
        .cloned()
        .collect();
    let remove: Vec<Arc<[u8]>> = subscribed
        .keys()
        .filter(|c| !wanted.contains(*c))
        .cloned()
        .collect();
    // One command per channel: the channels of one command must share a slot.
    for channel in add {
        let Some(key) = keys::channel_lock_key(&channel) else {
            continue;
        };
        let sharded = keys::sharded_release_channel(key);
        match tokio::time::timeout(budget, con.ssubscribe(&*sharded)).await {
            Ok(Ok(())) => {}
            _ => return Err(()),
        }
        if subscribed.insert(Arc::clone(&channel), sharded).is_none() {
            notifier.confirmed(&channel);
        }
    }
    for channel in remove {
        if let Some(sharded) = subscribed.remove(&channel) {
            match tokio::time::timeout(budget, con.sunsubscribe(&*sharded)).await {
                Ok(Ok(())) => {}
                _ => return Err(()),
            }
        }
    }
    Ok(())
}

/// Waits before a reconnect; true when the manager shut down meanwhile.
async fn pause_or_stop(shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(RECONNECT_PAUSE) => false,
    }
}

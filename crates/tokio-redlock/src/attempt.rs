//! Acquisition: one attempt (fan-out, early verdict, validity) and the retry loop around it,
//! with the cleanup that makes a dropped future leave no key behind.
//!
//! Source: Redlock spec, "The Redlock algorithm" steps 1–5 and "Retry on Failure";
//! the crate docs' "How Redlock works here".

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use std::pin::Pin;

use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::futures::OwnedNotified;
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::{LockError, NodeError, NodeOutcome, NodeStatus, Operation};
use crate::holder::{self, HolderInfo};
use crate::keys::{self, Keys, Printable};
use crate::lock::{Lock, MayHold};
use crate::manager::Shared;
use crate::metrics::Primitive;
use crate::notify::Subscription;
use crate::quorum::fencing::{self, FencingToken};
use crate::quorum::retry;
use crate::quorum::round::Round;
use crate::quorum::{self, Verdict, Vote};
use crate::transport::node::{AcquireReply, FenceReply, Intent, Publish};

/// What one acquisition takes: its resources (one, or several taken all or nothing) and the
/// kind of lock, named in metrics and traces.
#[derive(Clone)]
pub(crate) struct Target {
    /// Sorted and distinct (see [`crate::primitives::multi::canonical`]).
    pub(crate) resources: Arc<[Arc<[u8]>]>,
    pub(crate) primitive: Primitive,
    /// For a semaphore permit, the semaphore's number of permits (its one resource is the
    /// semaphore's name).
    pub(crate) permits: Option<u32>,
}

impl Target {
    /// A single resource: the mutex.
    pub(crate) fn one(resource: Arc<[u8]>) -> Self {
        Self {
            resources: Arc::from([resource]),
            primitive: Primitive::Mutex,
            permits: None,
        }
    }

    /// The resource errors name: the one resource, or for several the one a refusing master
    /// named (`busy`, an index into the resources), else the first.
    pub(crate) fn resource(&self, busy: Option<usize>) -> Arc<[u8]> {
        busy.and_then(|i| self.resources.get(i))
            .or_else(|| self.resources.first())
            .map_or_else(|| Arc::from(&b""[..]), Arc::clone)
    }

    /// The lock keys, in the order of the resources.
    fn keys(&self, prefix: &[u8]) -> Keys {
        match &*self.resources {
            [one] if self.primitive == Primitive::Reader => {
                Keys::reader(keys::lock_key(prefix, one))
            }
            [one] => Keys::one(keys::lock_key(prefix, one)),
            many => Keys::many(many.iter().map(|r| keys::lock_key(prefix, r)).collect()),
        }
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.resources.iter().map(|r| Printable(r).to_string()))
            .finish()
    }
}

/// What the caller asked for in one `lock` call.
#[derive(Clone, Debug)]
pub(crate) struct AcquireOptions {
    pub(crate) ttl: Duration,
    pub(crate) patience: Patience,
    /// Who holds the lock, stored beside it (opt-in).
    pub(crate) holder: Option<Arc<HolderInfo>>,
    /// A caller-chosen token instead of a fresh one per attempt (`LockRequest::token`).
    pub(crate) token: Option<Arc<str>>,
    /// Retry delay and jitter for this call instead of the manager's.
    pub(crate) retry: Option<(Duration, Duration)>,
}

/// How long to keep trying while the resource is held elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Patience {
    /// This many retries after the first attempt.
    Retries(u32),
    /// Until this much time has passed since the call started.
    Wait(Duration),
    /// Until the lock is acquired (or a quorum is unreachable).
    Forever,
}

/// Why one attempt failed, with the per-master outcomes of its round.
pub(crate) enum Failure {
    /// Held elsewhere (possibly with some failures): worth retrying.
    Conflict(Vec<NodeOutcome>),
    /// A split vote: too few refusals for anyone to hold a majority (contenders took a
    /// minority each, or masters failed). Retried like a conflict.
    Split(Vec<NodeOutcome>),
    /// A quorum agreed too late.
    TooSlow { elapsed: Duration },
    /// Too few masters reachable. A waiting acquisition rides it out unless `permanent`
    /// (too many masters refuse for a reason that waiting cannot cure).
    Unavailable {
        outcomes: Vec<NodeOutcome>,
        permanent: bool,
    },
    /// A non-lock value sits under the key: not retried.
    NotALock(Vec<NodeOutcome>),
    /// The lock was granted but no fencing token could be agreed (outcomes of the last
    /// FENCE round); the lock was released. Worth retrying.
    FencingContention(Vec<NodeOutcome>),
    /// A semaphore's permits key says another number of permits (`found`, when a number)
    /// on too many masters: its users disagree. Not retried.
    PermitsMismatch {
        found: Option<u32>,
        outcomes: Vec<NodeOutcome>,
    },
}

impl Failure {
    /// Masters that answered the attempt (granted, refused, or not a lock).
    fn answered(&self) -> usize {
        match self {
            Self::Conflict(outcomes)
            | Self::Split(outcomes)
            | Self::Unavailable { outcomes, .. }
            | Self::NotALock(outcomes)
            | Self::FencingContention(outcomes)
            | Self::PermitsMismatch { outcomes, .. } => outcomes
                .iter()
                .filter(|o| !matches!(o.status(), NodeStatus::Failed(_) | NodeStatus::NotAwaited))
                .count(),
            // A quorum granted, too late.
            Self::TooSlow { .. } => usize::MAX,
        }
    }
}

/// Releases an attempt's keys on every master if dropped while armed: a cancelled `lock`
/// future leaves no key for longer than the masters need to answer. The releases are parked
/// on each master's release worker (no task per cancelled call), which resends them until
/// they land or the keys have expired.
pub(crate) struct ReleaseOnDrop {
    armed: Option<Armed>,
    /// Per master, the round's sent flag (`None`: not asked). Until the round started,
    /// `tracked` is false and every master counts as asked.
    flags: Vec<Option<Arc<std::sync::atomic::AtomicBool>>>,
    tracked: bool,
}

/// What a cleanup needs: the manager, the lock keys, the holder record's key (when the
/// attempt writes one), the attempt's token and its TTL.
type Armed = (Arc<Shared>, Keys, Option<Arc<[u8]>>, Arc<str>, Duration);

impl ReleaseOnDrop {
    pub(crate) fn arm(
        shared: &Arc<Shared>,
        keys: &Keys,
        holder_key: Option<&Arc<[u8]>>,
        token: &Arc<str>,
        ttl: Duration,
    ) -> Self {
        Self {
            armed: Some((
                Arc::clone(shared),
                keys.clone(),
                holder_key.cloned(),
                Arc::clone(token),
                ttl,
            )),
            flags: Vec::new(),
            tracked: false,
        }
    }

    /// Follows the round's sent flags: a master whose request never left needs no release.
    pub(crate) fn track(&mut self, flags: Vec<Option<Arc<std::sync::atomic::AtomicBool>>>) {
        self.flags = flags;
        self.tracked = true;
    }

    pub(crate) fn disarm(&mut self) {
        self.armed = None;
    }
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        if let Some((shared, keys, holder_key, token, ttl)) = self.armed.take() {
            tracing::debug!(
                key = %Printable(keys.first()),
                keys = keys.len(),
                token = %keys::token_prefix(token.as_bytes()),
                "acquire dropped mid-flight: releasing in the background"
            );
            let expires = shared.key_expiry(ttl);
            let tracked = self.tracked;
            for i in 0..shared.nodes.len() {
                let sent = self
                    .flags
                    .get(i)
                    .and_then(Option::as_ref)
                    .is_some_and(|f| f.load(Ordering::Acquire));
                if sent || !tracked {
                    shared.release_later(
                        i,
                        &keys,
                        holder_key.as_ref(),
                        &token,
                        Publish::Yes,
                        expires,
                    );
                }
            }
        }
    }
}

fn vote(reply: &Result<AcquireReply, NodeError>) -> Vote {
    match reply {
        Ok(AcquireReply::Granted { .. }) => Vote::Yes,
        Ok(AcquireReply::Held { .. } | AcquireReply::NotALock { .. }) => Vote::No,
        Err(_) => Vote::Failed,
    }
}

/// Acquires `target` (all of its resources, or none), trying again per `options.patience`
/// while it is held elsewhere.
///
/// Between attempts it sleeps until the first of: the earliest expiry of the holder's keys
/// seen in the last attempt, or the retry delay with its jitter; a waiter (`wait`,
/// `wait_forever`) also wakes on a release notification for the resource (when
/// notifications are on) and takes a turn on the resource's queue, so that per manager only
/// a bounded number of waiters attempt at once, in arrival order (see `notify.rs`). A
/// lock of several resources wakes on a release of any of them and takes no turns (a
/// waiter queued on several resources' turns would hold one while waiting for another).
pub(crate) async fn acquire(
    shared: &Arc<Shared>,
    target: Target,
    options: AcquireOptions,
) -> Result<Lock, LockError> {
    let started = Instant::now();
    let checked = crate::primitives::multi::check(&shared.settings.key_prefix, &target)
        .and_then(|()| crate::primitives::semaphore::check(&shared.settings.key_prefix, &target))
        .and_then(|()| crate::primitives::rwlock::check(&shared.settings.key_prefix, &target))
        .and_then(|()| check_target(shared, &target, &options));
    let result = match checked {
        Ok(()) => match acquire_unrecorded(shared, &target, options).await {
            // The manager was closed during the call: its connections were dropped under
            // the round (and queued requests never left), so the masters' failures say only
            // that. Closed is what happened.
            Err(e) if e.is_unavailable() && shared.check_open().is_err() => Err(LockError::Closed),
            other => other,
        },
        Err(e) => Err(e),
    };
    crate::metrics::acquisition(target.primitive, &result, started.elapsed());
    result
}

/// [`acquire`] without the metrics.
async fn acquire_unrecorded(
    shared: &Arc<Shared>,
    target: &Target,
    options: AcquireOptions,
) -> Result<Lock, LockError> {
    let resource = target.resource(None);
    crate::error::ConfigError::check_ttl(options.ttl)
        .map_err(|e| LockError::InvalidArgument(e.to_string()))?;
    let options = AcquireOptions {
        ttl: crate::manager::whole_millis(options.ttl),
        ..options
    };
    check_own_options(&options)?;
    shared.check_open()?;
    let keys = target.keys(&shared.settings.key_prefix);
    // Without fencing the scripts never read the counters: pass the lock keys.
    let fence_keys = if shared.settings.fencing {
        Keys::many(keys.as_slice().iter().map(|k| keys::fence_key(k)).collect())
    } else {
        keys.clone()
    };
    let slots = target.permits.map(|k| {
        crate::primitives::semaphore::Slots::new(
            &keys::lock_key(&shared.settings.key_prefix, &resource),
            k,
        )
    });
    // Waiters of one queue take turns within this manager: a mutex's, a writer's, and a
    // semaphore's (one queue per semaphore). Without turns, a freed permit woke every waiter,
    // each master gave it to another, no slot reached a quorum, and a thousand waiters got a
    // handful of permits a minute. Several resources wait on every one's channel without
    // turns (a waiter queued on several queues would hold a turn while waiting for another),
    // and readers share: neither takes turns.
    let single = keys.single().is_some() && !keys.is_reader();
    let channels: Vec<Arc<[u8]>> = match &slots {
        Some(slots) => vec![Arc::clone(slots.channel())],
        None => keys
            .as_slice()
            .iter()
            .map(|k| keys::release_channel(k))
            .collect(),
    };
    let first_start = Instant::now();
    let deadline = match options.patience {
        // A wait too long to be represented is a wait without end.
        Patience::Wait(d) => first_start.checked_add(d),
        Patience::Retries(_) | Patience::Forever => None,
    };
    // A writer that may retry registers an intent (one per call) that makes new readers
    // queue behind it; it is withdrawn when the call ends, however it ends.
    let intent = (target.primitive == Primitive::Writer
        && !matches!(options.patience, Patience::Retries(0)))
    .then(|| writer_intent(shared, options.patience))
    .flatten();
    // The masters where an attempt may have left the intent: a withdrawal goes only there.
    let intent_left = Arc::new(MayHold::default());
    let _withdraw = intent.as_ref().and_then(|intent| {
        let key = keys.single()?;
        Some(Withdraw {
            shared: Arc::clone(shared),
            intent_key: Keys::one(keys::intent_key(key)).with_channel(keys::release_channel(key)),
            intent: intent.clone(),
            left: Arc::clone(&intent_left),
        })
    });
    let mut subscriptions: Vec<Subscription> = Vec::new();
    let mut _turn: Option<OwnedSemaphorePermit> = None;
    let mut attempt = 0u32;
    // Whether some attempt of this call had answers from a quorum of masters: from then on
    // a wait without end rides out an outage.
    let mut reached = false;
    let mut notified: Vec<Pin<Box<OwnedNotified>>> = Vec::new();
    let waiting = !matches!(options.patience, Patience::Retries(_));
    // A waiter whose resource already has waiters in this manager queues behind them before
    // its first attempt: no jumping the queue, and no stampede of newcomers at every master.
    if waiting
        && single
        && shared.settings.notifications
        && let Some(channel) = channels.first()
        && shared.notifier.has_waiters(channel)
    {
        let sub = shared.notifier.subscribe(Arc::clone(channel));
        match take_turn(shared, &sub, deadline).await? {
            Some(permit) => _turn = Some(permit),
            None => {
                return Err(LockError::Conflict {
                    resource,
                    attempts: 0,
                    waited: first_start.elapsed(),
                    outcomes: Vec::new(),
                });
            }
        }
        subscriptions.push(sub);
    }
    loop {
        attempt = attempt.saturating_add(1);
        // Registered before the attempt, so a release during it still wakes us.
        listen(&mut notified, &subscriptions);
        let span = tracing::debug_span!(
            "redlock.acquire",
            primitive = target.primitive.as_str(),
            resource = %Printable(&resource),
            resources = keys.len(),
            attempt
        );
        if let (Some(token), Some(key)) = (&options.token, keys.single()) {
            withdraw_parked(shared, key, token).await;
        }
        let one_attempt = async {
            match &slots {
                Some(slots) => {
                    crate::primitives::semaphore::attempt_once(
                        shared,
                        target,
                        slots,
                        options.ttl,
                        deadline,
                    )
                    .await
                }
                None => {
                    attempt_once(
                        shared,
                        target,
                        &keys,
                        &fence_keys,
                        &options,
                        deadline,
                        intent.as_ref().map(|i| (i, &*intent_left)),
                    )
                    .await
                }
            }
        };
        let (failure, busy) = match one_attempt.instrument(span).await {
            Ok(lock) => return Ok(lock),
            Err(failure) => failure,
        };
        let resource = target.resource(busy);
        let out_of_patience = match options.patience {
            Patience::Retries(n) => attempt >= retry::attempts(n),
            Patience::Wait(_) => deadline.is_some_and(|d| Instant::now() >= d),
            Patience::Forever => false,
        };
        let nodes = &shared.nodes;
        let hint = match &failure {
            // A waiter rides out a transient outage (timeouts, refused or lost connections)
            // within its patience, sleeping the retry delay between attempts.
            // A wait without end rides out only an outage that began after it had reached a
            // quorum: one that finds the masters unreachable from its first attempt (a wrong
            // address, or Redis down) says so at once instead of hanging.
            Failure::Unavailable {
                permanent: false, ..
            } if waiting && !out_of_patience && (deadline.is_some() || reached) => None,
            Failure::Unavailable { outcomes, .. } => {
                return Err(LockError::NoQuorum {
                    operation: Operation::Acquire,
                    resource,
                    quorum: quorum::quorum(nodes.len()),
                    masters: nodes.len(),
                    outcomes: outcomes.clone(),
                });
            }
            Failure::NotALock(outcomes) => {
                return Err(LockError::NotALock {
                    resource,
                    outcomes: outcomes.clone(),
                });
            }
            Failure::PermitsMismatch { found, outcomes } => {
                return Err(LockError::PermitsMismatch {
                    resource,
                    permits: target.permits.unwrap_or_default(),
                    found: *found,
                    outcomes: outcomes.clone(),
                });
            }
            // A split vote backs off like a conflict: the keys it saw may be a real holder's
            // (one we only partly see because a master failed), so it waits for that
            // holder's expiry, a release notification or the retry delay — never a spin.
            Failure::Conflict(outcomes) | Failure::Split(outcomes) => earliest_expiry(outcomes),
            Failure::TooSlow { .. } | Failure::FencingContention(_) => None,
        };
        // A TTL at or below the drift never leaves validity: trying again cannot help.
        reached |= failure.answered() >= quorum::quorum(nodes.len());
        let hopeless = quorum::lease(options.ttl, shared.settings.drift_factor).is_none();
        if out_of_patience || hopeless {
            return Err(give_up(
                failure,
                resource,
                attempt,
                first_start,
                options.ttl,
            ));
        }
        // Waiting: subscribe to releases (first failure only) and take a turn.
        // Notifications and turns are for waiters (`wait`, `wait_forever`), who queue in
        // arrival order: a retry count keeps the classic randomized retry, since waking every
        // retrying caller at each release would make them all stampede the masters.
        if waiting && shared.settings.notifications && subscriptions.is_empty() {
            subscriptions = channels
                .iter()
                .map(|c| shared.notifier.subscribe(Arc::clone(c)))
                .collect();
            // Listen from now on: a release after this point wakes the first sleep too.
            listen(&mut notified, &subscriptions);
        }
        // Turns are for waiters (`wait`, `wait_forever`); a retry count promises a bounded
        // number of attempts at the retry pace, so it does not queue behind others.
        if waiting
            && single
            && _turn.is_none()
            && let Some(sub) = subscriptions.first()
        {
            match take_turn(shared, sub, deadline).await? {
                Some(permit) => _turn = Some(permit),
                None => {
                    return Err(give_up(
                        failure,
                        resource,
                        attempt,
                        first_start,
                        options.ttl,
                    ));
                }
            }
        }
        let (delay, jitter) = options
            .retry
            .unwrap_or((shared.settings.retry_delay, shared.settings.retry_jitter));
        let mut sleep = retry::retry_sleep(delay, jitter, rand::random::<f64>());
        if let Some(hint) = hint {
            // Wake just after the holder's keys expire: a lock released by a client that
            // publishes nothing (or an expiry) is taken at once.
            let jitter = Duration::from_micros(rand::random_range(0..2_000));
            sleep = sleep.min(hint.saturating_add(jitter));
        }
        // A sleep too long to be represented ends only by the deadline or a notification.
        let wake_at = match (Instant::now().checked_add(sleep), deadline) {
            (Some(w), Some(d)) => Some(w.min(d)),
            (w, d) => w.or(d),
        };
        tokio::select! {
            () = async {
                match wake_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {}
            Some(()) = async {
                if notified.is_empty() {
                    None
                } else {
                    futures_util::future::select_all(notified.iter_mut()).await;
                    Some(())
                }
            } => {}
            // `close()`: end now with `Closed` rather than after the pause.
            () = shared.shutdown.cancelled() => {}
        }
        shared.check_open()?;
    }
}

/// A writer's intent for one call: a fresh id, living two retry pauses and a node timeout
/// (so each attempt refreshes it before it expires), never longer than the call's wait.
fn writer_intent(shared: &Shared, patience: Patience) -> Option<Intent> {
    let settings = &shared.settings;
    let mut ttl = settings
        .retry_delay
        .saturating_add(settings.retry_jitter)
        .saturating_mul(2)
        .saturating_add(settings.node_timeout);
    if let Patience::Wait(wait) = patience {
        ttl = ttl.min(wait);
    }
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    (ttl_ms > 0).then(|| Intent {
        id: keys::new_token(),
        ttl_ms,
    })
}

/// Withdraws a writer's intent on every master when its call ends (acquired, given up,
/// failed or dropped): a compare-and-delete of the intent key, parked on each master's
/// release worker, which tells the waiting readers.
struct Withdraw {
    shared: Arc<Shared>,
    intent_key: Keys,
    intent: Intent,
    /// The masters where an attempt may have left the intent (see [`attempt_once`]).
    left: Arc<MayHold>,
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        let expires = self
            .shared
            .key_expiry(Duration::from_millis(self.intent.ttl_ms));
        for i in (0..self.shared.nodes.len()).filter(|i| self.left.contains(*i)) {
            self.shared.release_later(
                i,
                &self.intent_key,
                None,
                &self.intent.id,
                Publish::Yes,
                expires,
            );
        }
    }
}

/// Waits for this waiter's turn on the resource's queue; `None` when the deadline passed
/// first.
///
/// # Errors
///
/// [`LockError::Closed`] as soon as the manager closes: a queued waiter does not sit out the
/// turns of those ahead of it.
async fn take_turn(
    shared: &Shared,
    sub: &Subscription,
    deadline: Option<Instant>,
) -> Result<Option<OwnedSemaphorePermit>, LockError> {
    let turns = Arc::clone(&sub.turns);
    let turn = async {
        match deadline {
            Some(d) => tokio::time::timeout_at(d, turns.acquire_owned())
                .await
                .ok()
                .and_then(Result::ok),
            // The semaphore is never closed, so this only ends with a permit.
            None => turns.acquire_owned().await.ok(),
        }
    };
    tokio::select! {
        () = shared.shutdown.cancelled() => Err(LockError::Closed),
        turn = turn => Ok(turn),
    }
}

/// Arms `slots` with a fresh, enabled notification future of each subscription.
fn listen(slots: &mut Vec<Pin<Box<OwnedNotified>>>, subscriptions: &[Subscription]) {
    slots.clear();
    for sub in subscriptions {
        let mut notified = Box::pin(Arc::clone(&sub.notify).notified_owned());
        notified.as_mut().enable();
        slots.push(notified);
    }
}

/// The error that ends an acquisition whose patience ran out.
fn give_up(
    failure: Failure,
    resource: Arc<[u8]>,
    attempts: u32,
    first_start: Instant,
    ttl: Duration,
) -> LockError {
    match failure {
        Failure::TooSlow { elapsed } => LockError::ValidityExhausted {
            operation: Operation::Acquire,
            resource,
            ttl,
            elapsed,
            attempts,
        },
        Failure::FencingContention(outcomes) => LockError::FencingContention { resource, outcomes },
        Failure::Conflict(outcomes)
        | Failure::Split(outcomes)
        | Failure::Unavailable { outcomes, .. }
        | Failure::NotALock(outcomes)
        | Failure::PermitsMismatch { outcomes, .. } => LockError::Conflict {
            resource,
            attempts,
            waited: first_start.elapsed(),
            outcomes,
        },
    }
}

/// The earliest remaining TTL among the masters that reported another holder.
fn earliest_expiry(outcomes: &[NodeOutcome]) -> Option<Duration> {
    outcomes
        .iter()
        .filter_map(|o| match o.status() {
            NodeStatus::HeldByOther { remaining } => *remaining,
            _ => None,
        })
        .min()
}

/// One attempt: the Redlock spec's steps 1–4. A failure comes with the index of the resource
/// most refusing masters named as busy (several resources only).
async fn attempt_once(
    shared: &Arc<Shared>,
    target: &Target,
    keys: &Keys,
    fence_keys: &Keys,
    options: &AcquireOptions,
    patience: Option<Instant>,
    intent: Option<(&Intent, &MayHold)>,
) -> Result<Lock, (Failure, Option<usize>)> {
    let (intent, intent_left) = intent.unzip();
    let (holder_info, ttl) = (options.holder.as_deref(), options.ttl);
    let own = options.token.is_some();
    let token = options.token.clone().unwrap_or_else(keys::new_token);
    // The holder record names this attempt's token and its wall-clock start (a mutex only:
    // `check_target` refuses one for other locks).
    let holder: Option<holder::Record> = holder_info
        .zip(keys.single().filter(|_| !keys.is_reader()))
        .map(|(info, key)| {
            let record = holder::encode(&token, info, std::time::SystemTime::now());
            (keys::holder_key(key), Arc::from(record))
        });
    // Readers carry no fencing token (they do not write).
    let fencing = shared.settings.fencing && !keys.is_reader();
    // Step 1: the clock is read before the first request leaves. Every key expires at
    // `start + ttl` (each master gets the time left when its request leaves).
    let start = Instant::now();
    let expires_at = start.checked_add(ttl).unwrap_or(start);
    let holder_key = holder.as_ref().map(|(k, _)| k);
    let mut cleanup = ReleaseOnDrop::arm(shared, keys, holder_key, &token, ttl);
    // A request still waiting in our own queue when the TTL has passed could not leave any
    // validity: it gives up as a backlog failure.
    // The caller's patience bounds it too: past the end of a wait, a request that could not
    // leave is not sent.
    let queue_until = expires_at;
    let queue_until = patience.map_or(queue_until, |p| queue_until.min(p.max(start)));
    let mut round = Round::start(
        &shared.nodes,
        |_| true,
        vote,
        queue_until,
        |node, call| {
            let (keys, fence_keys, token, holder) = (
                keys.clone(),
                fence_keys.clone(),
                Arc::clone(&token),
                holder.clone(),
            );
            let intent = intent.cloned();
            async move {
                if own && let (Some(key), Some(fence_key)) = (keys.single(), fence_keys.single()) {
                    return node
                        .acquire_own(key, fence_key, &token, expires_at, fencing, &call)
                        .await;
                }
                let holder = holder.as_ref().map(|(k, r)| (&**k, &**r));
                node.acquire(
                    &keys,
                    &fence_keys,
                    holder,
                    &token,
                    expires_at,
                    fencing,
                    intent.as_ref(),
                    &call,
                )
                .await
            }
        },
    );
    cleanup.track(round.sent_flags());
    // Step 2: decide as soon as the outcome is known.
    let verdict = round.decide().await;
    let elapsed = start.elapsed();
    let granted = round.tally().yes();
    if let Some(left) = intent_left {
        // A writer's intent is set by a master that refused it; a grant withdraws ours. A
        // master that has not answered yet may still refuse (its request may leave later),
        // and one that failed after the request was sent may have set it.
        for i in 0..shared.nodes.len() {
            let may_have_set = match round.reply(i) {
                None => true,
                Some(Ok(AcquireReply::Granted { .. })) => false,
                Some(Ok(_)) => true,
                Some(Err(_)) => round.was_sent(i),
            };
            if may_have_set {
                left.mark(i);
            }
        }
    }
    tracing::debug!(
        primitive = target.primitive.as_str(),
        resource = %Printable(keys.first()),
        token = %keys::token_prefix(token.as_bytes()),
        granted,
        masters = shared.nodes.len(),
        elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        ?verdict,
        "acquire round"
    );
    let mut fencing_failed = None;
    if verdict == Verdict::Won {
        // Step 3: validity = ttl − elapsed − drift must be positive.
        if let Some(lease) = quorum::lease(ttl, shared.settings.drift_factor) {
            let deadline = start.checked_add(lease).unwrap_or(start);
            // One fencing token per resource; the slow paths (counters that disagree) of
            // several resources run side by side.
            let mut fencing_tokens = Vec::new();
            if fencing {
                let issued = futures_util::future::join_all(
                    keys.as_slice()
                        .iter()
                        .zip(fence_keys.as_slice())
                        .enumerate()
                        .map(|(j, (key, fence_key))| {
                            let (granted, seen) = fence_values(&round, j);
                            issue_fencing_token(
                                shared, granted, seen, key, fence_key, &token, deadline,
                            )
                        }),
                )
                .await;
                for t in issued {
                    match t {
                        Ok(t) => fencing_tokens.push(t),
                        Err(outcomes) => {
                            fencing_failed = Some(outcomes);
                            break;
                        }
                    }
                }
            }
            // Validity is checked after the fencing slow path too: a token is handed out
            // only while the lock is still valid.
            if fencing_failed.is_none() && Instant::now() < deadline {
                // Requests still in flight (a slow master) may yet set the key. It is part
                // of the lock now and `unlock` deletes it on every master; if one lands after
                // the unlock, it is released when its reply comes back.
                let outcomes = round.outcomes(&shared.nodes, |r| r.status());
                // Masters that answered and may hold the key: a grant, or a failure after
                // the request was sent. Requests still pending (sent, or adopted while their
                // master connects) mark their master when their reply says so; if that comes
                // after the unlock, they release it themselves (the unlock marks the lock
                // released before it reads the marks).
                let may_hold = MayHold::default();
                for (i, reply) in round.replies() {
                    if may_hold_key(reply) && (reply.is_ok() || round.was_sent(i)) {
                        may_hold.mark(i);
                    }
                }
                if own && let Some(key) = keys.single() {
                    shared.supersede(key, &token);
                }
                let held = shared.register_lock(keys, holder_key, &token, ttl, may_hold);
                let late = Arc::clone(&held);
                shared.release_after_replies(
                    round.into_pending(),
                    holder_key,
                    &token,
                    Publish::Yes,
                    shared.key_expiry(ttl),
                    move |i, reply| {
                        if !may_hold_key(reply) {
                            return None;
                        }
                        late.may_hold.mark(i);
                        late.released
                            .load(Ordering::SeqCst)
                            .then(|| late.keys.clone())
                    },
                );
                cleanup.disarm();
                return Ok(Lock {
                    resource: target.resource(None),
                    resources: Arc::clone(&target.resources),
                    keys: keys.clone(),
                    primitive: target.primitive,
                    token,
                    ttl,
                    deadline,
                    manager: shared.id,
                    fencing_tokens: fencing_tokens.into(),
                    holder,
                    held,
                    owner: Arc::downgrade(shared),
                    outcomes,
                    acquired_at: Instant::now(),
                });
            }
        }
    }
    // Step 4: release on every master that may hold our key: all but those that definitely
    // refused. Masters that granted answered promptly, so their release is awaited and the
    // caller sees a clean slate; the others are parked on their master's release worker, so
    // a frozen master does not cost a second timeout. A failed attempt's cleanup never wakes
    // waiters: it frees nothing a waiter could take that expiry or a holder's release will
    // not announce.
    let failure = match fencing_failed {
        Some(outcomes) => Failure::FencingContention(outcomes),
        None => classify(&round, verdict, elapsed, &shared.nodes, expires_at),
    };
    let busy = (keys.len() > 1).then(|| most_named_busy(&round)).flatten();
    if own {
        own_token_cleanup(shared, round, keys, &token, ttl).await;
        cleanup.disarm();
        return Err((failure, busy));
    }
    clean_up_failed(
        shared,
        round,
        keys,
        holder_key,
        &token,
        ttl,
        |r| matches!(r, AcquireReply::Granted { .. }),
        may_hold_key,
    )
    .await;
    cleanup.disarm();
    Err((failure, busy))
}

/// Step 4 of a failed attempt: releases `keys` (under `token`, without waking waiters) on
/// every master that may hold one: all but those that definitely refused. Masters that
/// granted answered promptly, so their release is awaited and the caller sees a clean
/// slate; the others are parked on their master's release worker, so a frozen master does
/// not cost a second timeout. A failed attempt's cleanup never wakes waiters: it frees
/// nothing a waiter could take that expiry or a holder's release will not announce. The
/// holder record at `holder_key` (a mutex's, when it stored one) goes with the key.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn clean_up_failed<T: Send + 'static>(
    shared: &Arc<Shared>,
    round: Round<T>,
    keys: &Keys,
    holder_key: Option<&Arc<[u8]>>,
    token: &Arc<str>,
    ttl: Duration,
    granted: fn(&T) -> bool,
    may_hold: fn(&Result<T, NodeError>) -> bool,
) {
    let publish = Publish::No;
    let expires = shared.key_expiry(ttl);
    let granted: Vec<bool> = (0..shared.nodes.len())
        .map(|i| matches!(round.reply(i), Some(Ok(r)) if granted(r)))
        .collect();
    // A failed request is over (its future ended), so whatever it sent is ahead of this
    // release on the connection.
    for (i, reply) in round.replies() {
        if reply.is_err() && round.was_sent(i) {
            shared.release_later(i, keys, holder_key, token, publish, expires);
        }
    }
    // A request not answered yet gets its release right after its reply, never before it;
    // one never sent is dropped with the round.
    let all = keys.clone();
    shared.release_after_replies(
        round.into_pending(),
        holder_key,
        token,
        publish,
        expires,
        move |_, reply| may_hold(reply).then(|| all.clone()),
    );
    if granted.contains(&true) {
        let mut release = shared.release_round(keys, holder_key, token, publish, expires, |i| {
            granted.get(i) == Some(&true)
        });
        release.settle().await;
        shared.release_what_failed(release, keys, holder_key, token, publish, expires, |_| true);
    }
}

/// The resource (index) that most refusing masters named as held: the one to blame in an
/// error about several resources.
fn most_named_busy(round: &Round<AcquireReply>) -> Option<usize> {
    let named: Vec<usize> = round
        .replies()
        .filter_map(|(_, r)| match r {
            Ok(AcquireReply::Held { busy, .. } | AcquireReply::NotALock { busy }) => Some(*busy),
            _ => None,
        })
        .collect();
    named
        .iter()
        .copied()
        .max_by_key(|b| named.iter().filter(|c| *c == b).count())
}

/// Agrees on a fencing token for a won round (SPEC's fencing protocol; see `fencing.rs`):
/// the fast path when a quorum of granting masters returned one value, else the slow path of
/// conditional raises, tried twice. `Err` carries the last FENCE round's outcomes.
async fn issue_fencing_token(
    shared: &Arc<Shared>,
    granted: Vec<u64>,
    seen: Vec<u64>,
    key: &Arc<[u8]>,
    fence_key: &Arc<[u8]>,
    token: &Arc<str>,
    deadline: Instant,
) -> Result<FencingToken, Vec<NodeOutcome>> {
    let q = quorum::quorum(shared.nodes.len());
    if let Some(agreed) = fencing::agreed(&granted, q) {
        return Ok(FencingToken(agreed));
    }
    let mut proposal = fencing::proposal(seen);
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let t = proposal;
        let mut raise = Round::start(
            &shared.nodes,
            |_| true,
            fence_vote,
            deadline,
            |node, call| {
                let (key, fence_key, token) =
                    (Arc::clone(key), Arc::clone(fence_key), Arc::clone(token));
                async move { node.fence(&key, &fence_key, &token, t, &call).await }
            },
        );
        let verdict = raise.decide().await;
        outcomes = raise.outcomes(&shared.nodes, |r| r.status());
        let refused = raise.replies().filter_map(|(_, r)| match r {
            Ok(FenceReply::Refused { counter }) => Some(*counter),
            _ => None,
        });
        proposal = fencing::proposal(refused.chain([t]));
        raise.finish_in_background(&shared.tasks);
        tracing::debug!(proposal = t, ?verdict, "fencing slow path");
        if verdict == Verdict::Won {
            return Ok(FencingToken(t));
        }
    }
    Err(outcomes)
}

/// The counter values of key `j` in a round: those of the granting masters, and every value
/// seen.
fn fence_values(round: &Round<AcquireReply>, j: usize) -> (Vec<u64>, Vec<u64>) {
    let mut granted = Vec::new();
    let mut seen = Vec::new();
    for (_, reply) in round.replies() {
        match reply {
            Ok(AcquireReply::Granted { fences }) => {
                if let Some(fence) = fences.get(j) {
                    granted.push(*fence);
                    seen.push(*fence);
                }
            }
            Ok(AcquireReply::Held { fences, .. }) => seen.extend(fences.get(j)),
            Ok(AcquireReply::NotALock { .. }) | Err(_) => {}
        }
    }
    (granted, seen)
}

fn fence_vote(reply: &Result<FenceReply, NodeError>) -> Vote {
    match reply {
        Ok(FenceReply::Raised) => Vote::Yes,
        Ok(FenceReply::Refused { .. } | FenceReply::NotOwner) => Vote::No,
        Err(_) => Vote::Failed,
    }
}

/// Whether a master that sent this reply may hold the attempt's key: all but a definite refusal.
fn may_hold_key(reply: &Result<AcquireReply, NodeError>) -> bool {
    !matches!(
        reply,
        Ok(AcquireReply::Held { .. } | AcquireReply::NotALock { .. })
    )
}

/// [`Failure::Unavailable`] when the round's failures alone rule out a quorum: too many
/// masters unreachable, or more permanent failures (wrong credentials, ACL, one server twice:
/// they do not heal by waiting) than the quorum tolerates. A cause mixed with ordinary
/// refusals (a holder that will go away) is worth waiting out: `None`.
pub(crate) fn unavailable<T: Send + 'static>(
    round: &Round<T>,
    outcomes: &[NodeOutcome],
) -> Option<Failure> {
    let n = outcomes.len();
    let tolerable = n.saturating_sub(quorum::quorum(n));
    let permanent = round
        .replies()
        .filter(|(_, r)| matches!(r, Err(e) if e.is_permanent()))
        .count()
        > tolerable;
    (round.tally().unreachable_majority() || permanent).then(|| Failure::Unavailable {
        outcomes: outcomes.to_vec(),
        permanent,
    })
}

/// Why a round that did not produce a lock failed.
fn classify(
    round: &Round<AcquireReply>,
    verdict: Verdict,
    elapsed: Duration,
    nodes: &[Arc<crate::transport::node::Node>],
    expires_at: Instant,
) -> Failure {
    if verdict == Verdict::Won {
        return Failure::TooSlow { elapsed };
    }
    let outcomes = round.outcomes(nodes, |r| r.status());
    let tally = round.tally();
    // Requests that could not leave before the TTL ran out (waiting for a connection or a
    // slot): with them a quorum was still possible, so the TTL was too short, not the
    // masters unreachable.
    let too_late = round
        .replies()
        .filter(|(_, r)| matches!(r, Err(e) if e.is_backlog()))
        .count();
    if too_late > 0
        && tally.no() == 0
        && tally.yes().saturating_add(too_late) >= quorum::quorum(nodes.len())
        && Instant::now() >= expires_at
    {
        return Failure::TooSlow { elapsed };
    }
    if let Some(failure) = unavailable(round, &outcomes) {
        return failure;
    }
    let tolerable = nodes.len().saturating_sub(quorum::quorum(nodes.len()));
    let not_a_lock = round
        .replies()
        .filter(|(_, r)| matches!(r, Ok(AcquireReply::NotALock { .. })))
        .count();
    if not_a_lock > tolerable {
        return Failure::NotALock(outcomes);
    }
    if tally.no() < quorum::quorum(nodes.len()) {
        return Failure::Split(outcomes);
    }
    Failure::Conflict(outcomes)
}

/// Checks what depends on the kind of lock, before any request: a caller-chosen token and a
/// holder record are for a lock of one resource (a mutex) only, and on a Redis Cluster
/// member every key one script touches (each lock key and its helper keys) must be in one
/// hash slot ([`LockError::CrossSlot`]: a multi-resource lock's resources share a slot only
/// when they share a hash tag).
fn check_target(
    shared: &Shared,
    target: &Target,
    options: &AcquireOptions,
) -> Result<(), LockError> {
    if target.primitive != Primitive::Mutex {
        let what = match (&options.token, &options.holder) {
            (Some(_), _) => Some("a caller-chosen token"),
            (None, Some(_)) => Some("a holder record"),
            (None, None) => None,
        };
        if let Some(what) = what {
            return Err(LockError::InvalidArgument(format!(
                "{what} is only supported on a lock of one resource (`lock`, `acquire`), not \
                 on a {} lock",
                target.primitive.as_str()
            )));
        }
    }
    if shared.nodes.iter().any(|n| n.is_cluster()) {
        // A cluster member runs each script on one slot: the lock keys and their helper
        // keys (which share each lock key's slot but for keys like `a}b`).
        let lock_keys = target.keys(&shared.settings.key_prefix);
        let all: Vec<Arc<[u8]>> = lock_keys
            .as_slice()
            .iter()
            .flat_map(|k| [Arc::clone(k), keys::fence_key(k)])
            .collect();
        let refs: Vec<&[u8]> = all.iter().map(|k| &**k).collect();
        keys::check_one_slot(&refs)?;
    }
    Ok(())
}

/// The longest caller-chosen token accepted, in bytes.
pub(crate) const MAX_TOKEN_LEN: usize = 256;

/// Checks the per-call options the manager's settings do not cover: a caller-chosen token
/// (see [`check_token`]) without a holder record beside it, and a retry sleep within
/// [`MAX_RETRY_SLEEP`](crate::MAX_RETRY_SLEEP).
fn check_own_options(options: &AcquireOptions) -> Result<(), LockError> {
    if let Some(token) = &options.token {
        check_token(token)?;
        if options.holder.is_some() {
            return Err(LockError::InvalidArgument(
                "a holder record cannot be stored with a caller-chosen token".to_owned(),
            ));
        }
    }
    if let Some((delay, jitter)) = options.retry
        && delay
            .checked_add(jitter)
            .is_none_or(|sleep| sleep > crate::MAX_RETRY_SLEEP)
    {
        return Err(LockError::InvalidArgument(
            crate::error::ConfigError::RetrySleepTooLong {
                delay,
                jitter,
                max: crate::MAX_RETRY_SLEEP,
            }
            .to_string(),
        ));
    }
    Ok(())
}

/// A caller-chosen token: non-empty, at most [`MAX_TOKEN_LEN`] bytes, no control characters.
pub(crate) fn check_token(token: &str) -> Result<(), LockError> {
    if token.is_empty() {
        return Err(LockError::InvalidArgument(
            "the lock token is empty".to_owned(),
        ));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(LockError::InvalidArgument(format!(
            "the lock token is {} bytes long; at most {MAX_TOKEN_LEN} are accepted",
            token.len()
        )));
    }
    if token.chars().any(char::is_control) {
        return Err(LockError::InvalidArgument(
            "the lock token contains a control character".to_owned(),
        ));
    }
    if token.starts_with(RESERVED_TOKEN_PREFIX) {
        // Readers keep `redlock:shared` under a read-write lock's key: a mutex with that
        // token would count as granted beside the readers, and its release would delete
        // their marker under them.
        return Err(LockError::InvalidArgument(format!(
            "the lock token starts with `{RESERVED_TOKEN_PREFIX}`, which is reserved for the \
             values this library keeps under lock keys (such as the readers' marker)"
        )));
    }
    Ok(())
}

/// Caller-chosen tokens may not start with this: the values the library itself keeps under
/// lock keys ([`keys::SHARED`]) do.
pub(crate) const RESERVED_TOKEN_PREFIX: &str = "redlock:";

/// Withdraws, on every master, the releases of `token` under `key` parked for resending,
/// and waits (at most two node timeouts plus the connect timeout) for one the release
/// worker is sending right now: with a caller-chosen token a late release of an earlier lock
/// (or attempt) would delete the key this attempt is about to hold.
async fn withdraw_parked(shared: &Shared, key: &[u8], token: &str) {
    let withdrawn: usize = shared
        .nodes
        .iter()
        .map(|n| n.withdraw_parked(key, token))
        .sum();
    if withdrawn > 0 {
        tracing::debug!(
            key = %Printable(key),
            withdrawn,
            "parked releases of the same token withdrawn before a new attempt"
        );
    }
    let settings = &shared.settings;
    let bound = settings
        .node_timeout
        .saturating_mul(2)
        .saturating_add(settings.connect_timeout);
    let started = Instant::now();
    while shared.nodes.iter().any(|n| n.release_in_flight(key, token)) {
        if started.elapsed() >= bound {
            tracing::debug!(key = %Printable(key), "a release of the same token is still in flight");
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The cleanup of a failed attempt with a caller-chosen token: the replies still owed are
/// awaited for up to one node timeout, then the masters that granted are released in one
/// round that is awaited (each request bounded by the node timeout) and never parked for
/// resending; masters that failed or still had not answered get no release.
/// A release sent later than the next attempt with the same token could delete that
/// attempt's key; a release sent before it on the same connection runs before it. What
/// stays behind carries the caller's token: it expires by its TTL, and the next attempt with
/// that token counts it as granted.
async fn own_token_cleanup(
    shared: &Arc<Shared>,
    mut round: Round<AcquireReply>,
    keys: &Keys,
    token: &Arc<str>,
    ttl: Duration,
) {
    // The replies still owed, for at most one node timeout: a master that grants late is
    // released with the others.
    let _ = tokio::time::timeout(shared.settings.node_timeout, round.settle()).await;
    let granted: Vec<bool> = (0..shared.nodes.len())
        .map(|i| matches!(round.reply(i), Some(Ok(AcquireReply::Granted { .. }))))
        .collect();
    // Requests still on the wire are dropped: their keys (if set) expire by the TTL.
    drop(round);
    // A lock of this manager still holds the token there: its keys are not ours to delete.
    let held_here = keys.single().is_some_and(|key| shared.holds(key, token));
    if granted.contains(&true) && !held_here {
        let expires = shared.key_expiry(ttl);
        let mut release = shared.release_round(keys, None, token, Publish::No, expires, |i| {
            granted.get(i) == Some(&true)
        });
        release.settle().await;
    }
}

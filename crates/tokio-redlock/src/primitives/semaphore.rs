//! Counting semaphores on the quorum: [`LockManager::semaphore`] and [`Semaphore`].
//!
//! # Layout (design S1: k slots, each a Redlock mutex)
//!
//! For a semaphore named `S` (key `prefix + S`) with k permits, every master has:
//! - k slot keys `{S}:permit:0` … `{S}:permit:<k−1>` (see `keys::helper_key`), each an
//!   ordinary Redlock mutex key: a permit holder's token with `PX ttl`;
//! - the permits key `{S}:permits` = k, with a TTL at least the last grant's or extension's
//!   (`scripts/extend_permit.lua`): users that disagree on k are refused
//!   ([`LockError::PermitsMismatch`]) while it lives.
//!
//! An attempt draws a token and a random rotation r, and sends every master one script
//! (`scripts/acquire_permit.lua`) that takes the first free slot in the order r, r+1, … (mod
//! k). Masters may grant different slots; the attempt holds a permit when **one slot** was
//! granted by a quorum, with validity left (`quorum::slots`). Then the masters that granted
//! other slots (and those whose answer is unknown) delete them; a failed attempt deletes
//! every slot it was granted, as a failed lock does.
//!
//! # Safety
//!
//! Counting holders per master under a majority quorum is not safe for k > 1: with 3
//! masters and k = 2, holders A, B, C granted on masters {1,2}, {2,3}, {1,3} each have a
//! majority while every master counts two. Here a permit is one slot held on a quorum, and
//! each slot is a Redlock mutex: two holders of one slot would both hold its key on a
//! quorum, and two quorums share a master where the key holds one token (until the first
//! holder's deadline, its token is still there: the Redlock argument). So there is at most
//! one holder per slot, and at most k holders — under exactly the mutex's assumptions.
//!
//! Sources: the Redlock algorithm (<https://redis.io/docs/latest/develop/clients/patterns/distributed-locks/>);
//! the counterexample to per-master counting is the one madelson/DistributedLock gives for
//! its Redis semaphore ("3 users acquiring AB, BC, and AC. Each database sees 2 tickets
//! taken!", `src/DistributedLock.Redis/RedisDistributedSemaphore.cs`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use crate::attempt::{AcquireOptions, Failure, Patience, ReleaseOnDrop, Target, clean_up_failed};
use crate::error::{LockError, NodeError};
use crate::guard::AcquireRequest;
use crate::keys::{self, Keys, Printable};
use crate::lock::{Lock, MayHold};
use crate::manager::{LockManager, LockRequest, Shared};
use crate::metrics::Primitive;
use crate::quorum::round::Round;
use crate::quorum::slots::{SlotVerdict, slot_verdict};
use crate::quorum::{self, Vote};
use crate::transport::node::{Call, Peek, PermitReply, Publish};

/// The most permits a semaphore may have: each acquisition runs one script over every slot.
pub const MAX_PERMITS: u32 = 256;

/// The keys of one semaphore.
pub(crate) struct Slots {
    /// The semaphore's own name key (read only: is the name also used as a lock?).
    name_key: Arc<[u8]>,
    /// The permits key: the k every user must agree on.
    limit_key: Arc<[u8]>,
    /// The k slot keys, by index.
    slots: Vec<Arc<[u8]>>,
    /// Where a released permit is announced: the permits key's release channel.
    channel: Arc<[u8]>,
    permits: u32,
}

impl Slots {
    /// The keys of the semaphore whose name key is `name_key`.
    pub(crate) fn new(name_key: &Arc<[u8]>, permits: u32) -> Self {
        let limit_key = keys::helper_key(name_key, b"permits");
        let slots = (0..permits)
            .map(|i| keys::helper_key(name_key, format!("permit:{i}").as_bytes()))
            .collect();
        Self {
            name_key: Arc::clone(name_key),
            channel: keys::release_channel(&limit_key),
            limit_key,
            slots,
            permits,
        }
    }

    /// The channel waiters listen on.
    pub(crate) fn channel(&self) -> &Arc<[u8]> {
        &self.channel
    }

    /// Every slot except `but`, released together (announced on the semaphore's channel).
    fn others(&self, but: Option<usize>) -> Keys {
        let keys: Vec<Arc<[u8]>> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != but)
            .map(|(_, k)| Arc::clone(k))
            .collect();
        let keys = match <[_; 1]>::try_from(keys) {
            Ok([one]) => Keys::one(one),
            Err(keys) => Keys::many(keys),
        };
        keys.with_channel(Arc::clone(&self.channel))
    }
}

/// Refuses, before any request, a number of permits outside `1..=MAX_PERMITS`, and a
/// semaphore whose key is `{Y}` (braces around a name `Y` without a hash tag): its slots and
/// permits key (`{Y}:permit:<n>`, `{Y}:permits`) would be those of the semaphore `Y`, so two
/// differently named semaphores would share their permits.
pub(crate) fn check(prefix: &[u8], target: &Target) -> Result<(), LockError> {
    let Some(k) = target.permits else {
        return Ok(());
    };
    if k == 0 || k > MAX_PERMITS {
        return Err(LockError::InvalidArgument(format!(
            "a semaphore has 1 to {MAX_PERMITS} permits, not {k}"
        )));
    }
    super::refuse_helper_twins(
        prefix,
        target.resources.iter(),
        "semaphore",
        "slots and permits key",
        "sem",
    )
}

/// The reply type of a permit round: the reply, and whether the name is also a lock there.
type Reply = (PermitReply, bool);

fn vote(reply: &Result<Reply, NodeError>) -> Vote {
    match reply {
        Ok((PermitReply::Granted { .. }, _)) => Vote::Yes,
        Ok((PermitReply::Full { .. } | PermitReply::Mismatch { .. } | PermitReply::Foreign, _)) => {
            Vote::No
        }
        Err(_) => Vote::Failed,
    }
}

/// Whether a master that sent this reply may hold a slot of the attempt.
fn may_hold_slot(reply: &Result<Reply, NodeError>) -> bool {
    !matches!(
        reply,
        Ok((
            PermitReply::Full { .. } | PermitReply::Mismatch { .. } | PermitReply::Foreign,
            _
        ))
    )
}

/// One permit attempt: the Redlock steps with a per-slot verdict.
pub(crate) async fn attempt_once(
    shared: &Arc<Shared>,
    target: &Target,
    slots: &Slots,
    ttl: Duration,
    patience: Option<Instant>,
) -> Result<Lock, (Failure, Option<usize>)> {
    let token = keys::new_token();
    let k = slots.permits;
    let rotation = rand::random_range(0..k.max(1));
    let start = Instant::now();
    let expires_at = start.checked_add(ttl).unwrap_or(start);
    let all = slots.others(None);
    let mut cleanup = ReleaseOnDrop::arm(shared, &all, None, &token, ttl);
    let queue_until = patience.map_or(expires_at, |p| expires_at.min(p.max(start)));
    // The slot keys in this attempt's rotation, after the name and permits keys.
    let ordered: Arc<[Arc<[u8]>]> = [Arc::clone(&slots.name_key), Arc::clone(&slots.limit_key)]
        .into_iter()
        .chain((0..k).filter_map(|j| {
            let i = usize::try_from(rotation.saturating_add(j).checked_rem(k)?).ok()?;
            slots.slots.get(i).cloned()
        }))
        .collect();
    let slot_of = move |reply: &Result<Reply, NodeError>| match reply {
        Ok((PermitReply::Granted { position }, _)) => u32::try_from(*position)
            .ok()
            .and_then(|p| rotation.saturating_add(p).checked_rem(k))
            .and_then(|i| usize::try_from(i).ok()),
        _ => None,
    };
    let mut round = Round::start(
        &shared.nodes,
        |_| true,
        vote,
        queue_until,
        |node, call| {
            let (ordered, token) = (Arc::clone(&ordered), Arc::clone(&token));
            async move {
                node.acquire_permit(&ordered, &token, expires_at, k, &call)
                    .await
            }
        },
    );
    cleanup.track(round.sent_flags());
    let n = shared.nodes.len();
    let verdict = round
        .decide_with(
            |r| {
                slot_verdict(
                    n,
                    r.replies().map(|(_, reply)| slot_of(reply)),
                    r.tally().pending(),
                )
            },
            SlotVerdict::Lost,
        )
        .await;
    let elapsed = start.elapsed();
    tracing::debug!(
        primitive = Primitive::Permit.as_str(),
        resource = %Printable(&target.resource(None)),
        token = %keys::token_prefix(token.as_bytes()),
        permits = k,
        ?verdict,
        elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "permit round"
    );
    if let SlotVerdict::Won(w) = verdict
        && let Some(lease) = quorum::lease(ttl, shared.settings.drift_factor)
        && let Some(deadline) = start.checked_add(lease)
        && Instant::now() < deadline
        && let Some(slot_key) = slots.slots.get(w)
    {
        if round.replies().any(|(_, r)| matches!(r, Ok((_, true)))) {
            tracing::warn!(
                resource = %Printable(&target.resource(None)),
                "the semaphore's name is also held as a lock: a name serves as a lock or as a \
                 semaphore, and the two do not exclude each other"
            );
        }
        let held_keys = Keys::one(Arc::clone(slot_key))
            .with_channel(Arc::clone(&slots.channel))
            .with_permits(Arc::clone(&slots.limit_key), k);
        let others = slots.others(Some(w));
        let expires = shared.key_expiry(ttl);
        let outcomes = round.outcomes(&shared.nodes, |r| r.0.status());
        let may_hold = MayHold::default();
        for (i, reply) in round.replies() {
            let sent = reply.is_ok() || round.was_sent(i);
            if slot_of(reply) == Some(w) || (reply.is_err() && sent) {
                may_hold.mark(i);
            }
            // Masters that granted another slot, or may have: that slot goes back now (and
            // its waiters are told: it is free).
            if !others.is_empty() && sent && may_hold_slot(reply) && slot_of(reply) != Some(w) {
                shared.release_later(i, &others, None, &token, Publish::Yes, expires);
            }
        }
        let held = shared.register_lock(&held_keys, None, &token, ttl, may_hold);
        let late = Arc::clone(&held);
        let (all_late, others_late) = (all.clone(), others.clone());
        shared.release_after_replies(
            round.into_pending(),
            None,
            &token,
            Publish::Yes,
            expires,
            move |i, reply| {
                if !may_hold_slot(reply) {
                    return None;
                }
                let granted = slot_of(reply);
                if granted == Some(w) || reply.is_err() {
                    late.may_hold.mark(i);
                }
                let released = late.released.load(Ordering::SeqCst);
                match granted {
                    Some(s) if s == w => released.then(|| late.keys.clone()),
                    Some(_) => Some(others_late.clone()),
                    None if released => Some(all_late.clone()),
                    None => (!others_late.is_empty()).then(|| others_late.clone()),
                }
            },
        );
        cleanup.disarm();
        return Ok(Lock {
            resource: target.resource(None),
            resources: Arc::clone(&target.resources),
            keys: held_keys,
            primitive: Primitive::Permit,
            token,
            ttl,
            deadline,
            manager: shared.id,
            fencing_tokens: Arc::from([]),
            holder: None,
            held,
            owner: Arc::downgrade(shared),
            outcomes,
            acquired_at: Instant::now(),
        });
    }
    let failure = classify(&round, verdict, elapsed, shared);
    clean_up_failed(
        shared,
        round,
        &all,
        None,
        &token,
        ttl,
        |r| matches!(r, (PermitReply::Granted { .. }, _)),
        may_hold_slot,
    )
    .await;
    cleanup.disarm();
    Err((failure, None))
}

/// Why a permit round that produced no permit failed.
fn classify(
    round: &Round<Reply>,
    verdict: SlotVerdict,
    elapsed: Duration,
    shared: &Shared,
) -> Failure {
    if matches!(verdict, SlotVerdict::Won(_)) {
        return Failure::TooSlow { elapsed };
    }
    let nodes = &shared.nodes;
    let outcomes = round.outcomes(nodes, |r| r.0.status());
    let tally = round.tally();
    if let Some(failure) = crate::attempt::unavailable(round, &outcomes) {
        return failure;
    }
    let tolerable = nodes.len().saturating_sub(quorum::quorum(nodes.len()));
    let mismatches: Vec<Option<u32>> = round
        .replies()
        .filter_map(|(_, r)| match r {
            Ok((PermitReply::Mismatch { found }, _)) => Some(*found),
            _ => None,
        })
        .collect();
    if mismatches.len() > tolerable {
        return Failure::PermitsMismatch {
            found: mismatches.first().copied().flatten(),
            outcomes,
        };
    }
    // A slot held by a value no permit holder wrote is never freed: not worth waiting for.
    let foreign = round
        .replies()
        .filter(|(_, r)| matches!(r, Ok((PermitReply::Foreign, _))))
        .count();
    if foreign > tolerable {
        return Failure::NotALock(outcomes);
    }
    if tally.no() < quorum::quorum(nodes.len()) {
        return Failure::Split(outcomes);
    }
    Failure::Conflict(outcomes)
}

/// A counting semaphore: at most [`permits`](Self::permits) holders at once of the name,
/// across every process using the same masters, prefix and number of permits. Created by
/// [`LockManager::semaphore`]; cheap, and holds nothing until a permit is taken.
///
/// Each permit is a lease with a deadline, released, extended and lost on its own: a
/// [`Lock`] ([`lock`](Self::lock), [`try_lock`](Self::try_lock)) or a
/// [`LockGuard`](crate::LockGuard) with auto-extension and a lost signal
/// ([`acquire`](Self::acquire)). Release and extend them with
/// [`LockManager::unlock`] and [`LockManager::extend`], as locks. A waiting acquisition
/// wakes when any permit is released.
///
/// # How it works, and why at most k hold
///
/// The semaphore is k slots on every master, each an ordinary Redlock mutex key
/// (`{S}:permit:<i>`, where `S` is the name's key). An attempt sends every master one
/// script that takes the first free slot in a random rotation chosen for the attempt (so
/// that without contention every master picks the same slot), and holds a permit when one
/// slot was granted by a quorum with validity left; slots granted elsewhere are given back
/// at once. A holder holds its slot on a quorum, and a slot is a mutex: two holders of one
/// slot would need two quorums, which share a master where the slot holds one token. So at
/// most one holder per slot: **at most k holders**, under the assumptions of the mutex
/// (clock rates within the drift factor, masters that keep acknowledged writes).
///
/// Counting holders on each master and requiring a majority, as some libraries do, is not
/// safe for k > 1, even without any fault. With 3 masters and k = 2: master 1 receives A, C,
/// B (B refused: full), master 2 receives A, B, C (C refused), master 3 receives B, C, A (A
/// refused). A holds masters {1,2}, B {2,3}, C {1,3}: each has a majority, each master counts
/// two, and three hold at once. (In general, k permits need any k + 1 quorums to share a
/// master, which holds only when (k+1)·q > k·N: for k ≥ 2, soon every master.) The
/// model test `tests/semaphore_model.rs` finds that case against counting and none against
/// the slots.
///
/// # Cost
///
/// Per call, one request to each master, all in parallel: one per acquisition attempt (plus
/// one on the masters that may have granted a failed attempt, to clean it up), one per
/// extension, one per release. When masters granted different slots, those that granted
/// another slot than the winning one give it back: one more request to them, in the
/// background. O(k) work per acquire script; at most [`MAX_PERMITS`] permits. Permits carry
/// no fencing token. Works with any quorum of masters up, as the mutex. No fairness across
/// processes: waiters wake on a release of any permit (one notification channel per
/// semaphore), on the least remaining TTL of the full slots, or after the retry delay.
///
/// # Interop and Redis Cluster
///
/// A name serves as a lock or as a semaphore, not both: a semaphore's slots do not
/// exclude a lock, a reader or a writer on its name (a warning is logged when one is seen).
/// Every user of a name must give the same number of permits: an acquisition that finds
/// another number on a majority fails with [`LockError::PermitsMismatch`] (the number is
/// kept with the TTL of the longest grant or extension, so the check holds while any permit
/// is held). The slot keys and the permits key share the name's hash slot (`{S}:…`), so on a
/// Redis Cluster member each script runs on one master. More: `docs/primitives.md`.
///
/// Source: the Redlock algorithm
/// (<https://redis.io/docs/latest/develop/clients/patterns/distributed-locks/>), applied to
/// each slot.
///
/// # Examples
///
/// ```
/// # include!("../../tests/support/doc_masters.rs");
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let masters = DocMasters::start(3);
/// # let urls = masters.urls();
/// use std::time::Duration;
///
/// let manager = tokio_redlock::LockManager::builder().servers(urls).build()?;
/// // At most 2 exports at once, cluster-wide.
/// let exports = manager.semaphore("exports", 2);
/// let first = exports
///     .acquire()
///     .ttl(Duration::from_secs(30))
///     .auto_extend()
///     .wait(Duration::from_secs(60))
///     .await?;
/// let mut second = exports.lock().await?;
/// assert!(exports.try_lock().await.unwrap_err().is_conflict()); // both permits are out
/// manager.unlock(&mut second).await?;
/// let mut third = exports.try_lock().await?; // one is free again
/// manager.unlock(&mut third).await?;
/// first.release().await?;
/// manager.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Semaphore<'a> {
    manager: &'a LockManager,
    name: Arc<[u8]>,
    permits: u32,
}

impl<'a> Semaphore<'a> {
    /// The semaphore's name.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// How many holders it admits at once.
    pub fn permits(&self) -> u32 {
        self.permits
    }

    fn target(&self) -> Target {
        Target {
            resources: Arc::from([Arc::clone(&self.name)]),
            primitive: Primitive::Permit,
            permits: Some(self.permits),
        }
    }

    /// Starts taking one permit, as a [`Lock`]; settings default to the manager's, and
    /// [`LockRequest`]'s setters adjust them (`wait` wakes on any permit's release).
    ///
    /// # Errors
    ///
    /// As [`LockManager::lock`] (a conflict means every permit stayed taken); and
    /// [`LockError::PermitsMismatch`] when the semaphore's users disagree on the number of
    /// permits; [`LockError::InvalidArgument`] for 0 or more than [`MAX_PERMITS`] permits,
    /// or a name that is another name in braces (see [`LockManager::semaphore`]), before
    /// any request.
    ///
    /// # Cancel safety
    ///
    /// As [`LockManager::lock`]: a dropped future leaves no slot taken for longer than one
    /// cleanup round trip.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// let mut permit = manager.semaphore("downloads", 4).lock().await?;
    /// // ... download ...
    /// manager.unlock(&mut permit).await?;
    /// # Ok(()) }
    /// ```
    pub fn lock(&self) -> LockRequest<'a> {
        LockRequest::new(self.manager, self.target())
    }

    /// One attempt to take a permit, no retry: `lock().retry_count(0)`.
    ///
    /// # Errors
    ///
    /// As [`lock`](Self::lock).
    ///
    /// # Cancel safety
    ///
    /// As [`lock`](Self::lock).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// match manager.semaphore("downloads", 4).try_lock().await {
    ///     Ok(mut permit) => manager.unlock(&mut permit).await?,
    ///     Err(e) if e.is_conflict() => println!("4 downloads running already"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn try_lock(&self) -> Result<Lock, LockError> {
        self.lock().retry_count(0).await
    }

    /// Starts taking one permit as a [`LockGuard`](crate::LockGuard): with a watchdog that
    /// can extend it ([`AcquireRequest::auto_extend`]) and that reports its loss.
    ///
    /// # Errors
    ///
    /// As [`lock`](Self::lock).
    ///
    /// # Cancel safety
    ///
    /// As [`LockManager::acquire`]: a dropped future leaves no watchdog and no slot.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// let permit = manager.semaphore("downloads", 4).acquire().auto_extend().await?;
    /// permit.release().await?;
    /// # Ok(()) }
    /// ```
    pub fn acquire(&self) -> AcquireRequest<'a> {
        AcquireRequest::new(
            self.manager,
            self.target(),
            AcquireOptions {
                ttl: self.manager.ttl(),
                patience: Patience::Retries(self.manager.shared().settings.retry_count),
                holder: None,
                token: None,
                retry: None,
            },
        )
    }
}

/// What one master records of a semaphore, as read by [`LockManager::inspect_permits`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MasterPermits {
    /// The master as configured, password redacted (as [`LockManager::masters`]).
    pub master: Arc<str>,
    /// For a Redis Cluster member: the node (`host:port`) that serves the semaphore's slot
    /// keys; `None` for other members.
    pub node: Option<Arc<str>>,
    /// What it records, or why it could not be read.
    pub state: Result<PermitSlots, NodeError>,
}

/// The permits of a semaphore on one master ([`MasterPermits::state`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PermitSlots {
    /// The number of permits its users agreed on, as this master records it (the record
    /// lives as long as the longest permit granted there); `None` when there is no record:
    /// no permit is held there. A record that is not a number reads as `None`.
    pub permits: Option<u32>,
    /// The slots held on this master, by slot index: one per permit held here.
    pub held: Vec<PermitHolder>,
}

/// One held slot of a semaphore on one master ([`PermitSlots::held`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PermitHolder {
    /// The slot's index, `0 ..` the number of permits.
    pub slot: u32,
    /// The permit holder's token (compare with [`Lock::token`]; never log it whole).
    pub holder: crate::HolderToken,
    /// The slot key's remaining TTL, as a safe lower bound when the call returns (as in
    /// [`LockManager::inspect`]); `None` when the key has no TTL.
    pub remaining: Option<Duration>,
}

impl LockManager {
    /// What each master records of the semaphore `name`, in the order of
    /// [`masters`](Self::masters): the number of permits its users gave and which slots are
    /// held, by whom and for how long. For diagnostics (`redlock status`): a permit is held
    /// when one token holds one slot on a quorum of masters. Read-only: a `PTTL` and `GET`
    /// of the permits record, then of each slot (concurrently) on each master,
    /// each bounded by the node timeout (the connect timeout while connecting); at most
    /// [`MAX_PERMITS`] slots are read.
    ///
    /// # Errors
    ///
    /// [`LockError::Closed`] after [`close`](Self::close);
    /// [`LockError::InvalidArgument`] for an empty name, before any request. A master's
    /// failure is its [`MasterPermits::state`], not an error of the call.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// for m in manager.inspect_permits("exports").await? {
    ///     match m.state {
    ///         Ok(slots) => println!("{}: {} of {:?} taken", m.master, slots.held.len(), slots.permits),
    ///         Err(e) => println!("{}: {e}", m.master),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn inspect_permits(
        &self,
        name: impl AsRef<[u8]>,
    ) -> Result<Vec<MasterPermits>, LockError> {
        let shared = self.shared();
        shared.check_open()?;
        keys::check_not_empty(name.as_ref())?;
        let name_key = keys::lock_key(&shared.settings.key_prefix, name.as_ref());
        let limit_key = keys::helper_key(&name_key, b"permits");
        let call = Call::until(shared.query_queue_until());
        let start = Instant::now();
        let reads = shared.nodes.iter().map(|node| {
            let (name_key, limit_key, call) =
                (Arc::clone(&name_key), Arc::clone(&limit_key), call.clone());
            async move {
                let state = async {
                    // `peek` (not a plain GET): on a Redis Cluster member it goes to the
                    // node serving the semaphore's slot.
                    let record = match node.peek(&limit_key, &call).await? {
                        Peek::Value { value, .. } => value,
                        Peek::Absent | Peek::NotALock | Peek::Shared { .. } => {
                            return Ok(PermitSlots {
                                permits: None,
                                held: Vec::new(),
                            });
                        }
                    };
                    let permits = std::str::from_utf8(&record)
                        .ok()
                        .and_then(|t| t.parse::<u32>().ok());
                    let slots = Slots::new(&name_key, permits.unwrap_or(0).min(MAX_PERMITS));
                    let peeks = slots.slots.iter().map(|slot| node.peek(slot, &call));
                    let mut held = Vec::new();
                    for (i, peek) in futures_util::future::join_all(peeks)
                        .await
                        .into_iter()
                        .enumerate()
                    {
                        if let Peek::Value { value, remaining } = peek? {
                            held.push(PermitHolder {
                                slot: u32::try_from(i).unwrap_or(u32::MAX),
                                holder: crate::HolderToken(value),
                                remaining,
                            });
                        }
                    }
                    Ok(PermitSlots { permits, held })
                }
                .await;
                MasterPermits {
                    master: Arc::clone(node.address()),
                    node: node.serving(&limit_key),
                    state,
                }
            }
        });
        let mut states = futures_util::future::join_all(reads).await;
        let (elapsed, drift_factor) = (start.elapsed(), shared.settings.drift_factor);
        for slot in states
            .iter_mut()
            .filter_map(|m| m.state.as_mut().ok())
            .flat_map(|s| s.held.iter_mut())
        {
            if let Some(r) = &mut slot.remaining {
                *r = quorum::remaining_bound(*r, elapsed, drift_factor);
            }
        }
        Ok(states)
    }

    /// A counting semaphore named `name` with `permits` permits: at most `permits` holders
    /// at once. See [`Semaphore`] for how it works and why it is safe. Creating it sends
    /// nothing; the number of permits is checked when a permit is taken (1 to
    /// [`MAX_PERMITS`]), and so is the name: a name that is another name in braces (`{jobs}`
    /// beside `jobs`) is refused, as its slots would be that semaphore's.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// let workers = manager.semaphore("gpu", 2);
    /// assert_eq!(workers.permits(), 2);
    /// let mut permit = workers.lock().await?;
    /// manager.unlock(&mut permit).await?;
    /// # Ok(()) }
    /// ```
    pub fn semaphore(&self, name: impl AsRef<[u8]>, permits: u32) -> Semaphore<'_> {
        Semaphore {
            manager: self,
            name: name.as_ref().into(),
            permits,
        }
    }
}

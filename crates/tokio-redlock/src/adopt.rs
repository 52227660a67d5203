//! [`LockManager::adopt`]: a [`Lock`] handle for keys that already hold a known token on a
//! quorum of masters (aioredlock's `get_lock`, and its hand-built `Lock` passed to
//! `unlock`/`extend`).
//!
//! Source: the Redlock spec's validity rule, applied to what the masters report: the
//! quorum's remaining TTL, measured from before the reads left, less the drift (as
//! [`LockManager::is_locked`] reports it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{LockError, Operation};
use crate::keys::{self, Keys};
use crate::lock::{Held, Lock, LockState, MayHold};
use crate::manager::{LockManager, whole_millis};
use crate::metrics::Primitive;

impl LockManager {
    /// A handle for the lock on `resource` that `token` holds on a quorum of masters, taken
    /// by this or another process (with a caller-chosen token,
    /// [`LockRequest::token`](crate::LockRequest::token)). Nothing is written: the masters
    /// are read as [`is_locked`](Self::is_locked) reads them.
    ///
    /// The deadline is the quorum's remaining TTL counted from before the reads left, less
    /// the drift allowance (`PTTL × drift factor + 2 ms`): a safe lower bound on how long the
    /// keys still exist. [`Lock::ttl`] is that remaining time. Extend and unlock the handle
    /// as any other; it carries no fencing token.
    ///
    /// Dropping an adopted handle leaves the keys to their TTL (as
    /// [`Lock::keep_until_expiry`] does), and [`close`](Self::close) does not release it:
    /// another process may own the lock. Only an explicit [`unlock`](Self::unlock) releases.
    ///
    /// # Errors
    ///
    /// - [`LockError::NotHeld`] (operation [`Operation::Query`]) when `token` does not hold
    ///   the resource on a quorum (free, another holder, in flux, or no validity left);
    /// - [`LockError::NoQuorum`] when too few masters answered;
    /// - [`LockError::InvalidArgument`] for an empty token, one over 256 bytes, with a
    ///   control character or starting with `redlock:`, or keys that have no TTL (not set
    ///   by a lock);
    /// - [`LockError::Closed`] after [`close`](Self::close).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// // Another process took "orders:42" with the token "worker-7"; release it here.
    /// let mut lock = manager.adopt("orders:42", "worker-7").await?;
    /// println!("held for {:?} more", lock.validity());
    /// manager.unlock(&mut lock).await?;
    /// # Ok(()) }
    /// ```
    pub async fn adopt(
        &self,
        resource: impl AsRef<[u8]>,
        token: impl Into<String>,
    ) -> Result<Lock, LockError> {
        let token: Arc<str> = Arc::from(token.into());
        crate::attempt::check_token(&token)?;
        let shared = self.shared();
        let resource: Arc<[u8]> = resource.as_ref().into();
        keys::check_lock_key(&shared.settings.key_prefix, &resource)?;
        let state = self.is_locked(&resource).await?;
        // `is_locked`'s remaining time is a lower bound when it returns: counted from now.
        let now = Instant::now();
        let remaining = match state {
            LockState::Held { holder, remaining } if holder.as_bytes() == token.as_bytes() => {
                remaining.ok_or_else(|| {
                    LockError::InvalidArgument(
                        "the keys holding this token have no TTL: not a lock".to_owned(),
                    )
                })?
            }
            LockState::Unsettled { outcomes } => {
                return Err(not_held(&resource, outcomes));
            }
            _ => return Err(not_held(&resource, Vec::new())),
        };
        if remaining.is_zero() {
            return Err(not_held(&resource, Vec::new()));
        }
        let ttl = whole_millis(remaining).max(Duration::from_millis(1));
        let key = keys::lock_key(&shared.settings.key_prefix, &resource);
        // Every master may hold the key; the handle is not in the registry (`close` leaves
        // it), and its id is one the registry never issues.
        let may_hold = MayHold::default();
        for i in 0..shared.nodes.len() {
            may_hold.mark(i);
        }
        let held = Arc::new(Held {
            id: u64::MAX,
            keys: Keys::one(Arc::clone(&key)),
            holder_key: None,
            token: Arc::clone(&token),
            released: AtomicBool::new(false),
            may_hold,
            ttl_ms: AtomicU64::new(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
            keep_on_drop: AtomicBool::new(true),
            superseded: AtomicBool::new(false),
        });
        Ok(Lock {
            resources: Arc::from([Arc::clone(&resource)]),
            resource,
            keys: Keys::one(key),
            primitive: Primitive::Mutex,
            token,
            ttl,
            deadline: now.checked_add(remaining).unwrap_or(now),
            manager: shared.id,
            fencing_tokens: Arc::from([]),
            holder: None,
            held,
            owner: Arc::downgrade(shared),
            outcomes: Vec::new(),
            acquired_at: now,
        })
    }
}

fn not_held(resource: &Arc<[u8]>, outcomes: Vec<crate::NodeOutcome>) -> LockError {
    LockError::NotHeld {
        operation: Operation::Query,
        resource: Arc::clone(resource),
        outcomes,
    }
}

//! Acquisition with a caller-chosen token ([`LockRequest::token`](crate::LockRequest::token)):
//! the key counts as granted when it is absent or already holds the token, and the
//! releases still parked for that key and token are withdrawn before the request leaves.
//!
//! Source: aioredlock's lock script (`SET` when the key is absent or already holds the id),
//! with the TTL only ever raised (see `scripts/acquire_own.lua`).

use std::sync::Arc;

use tokio::time::Instant;

use super::{AcquireReply, Call, Node, Parked, ParkedRelease, triple, unexpected};
use crate::error::NodeError;
use crate::scripts;

impl Node {
    /// Acquires `key` for the caller-chosen `token`: set when absent; a key already holding
    /// the token is granted too, its TTL raised to what is left until `expires_at` (never
    /// lowered). Always the acquire-own script (no `SET NX GET` fast path: that one would
    /// leave an own key's TTL as it is, shorter than the validity counted for it).
    ///
    /// On a Redis Cluster member the request goes to the master of the key's slot.
    pub(crate) async fn acquire_own(
        self: &Arc<Self>,
        key: &[u8],
        fence_key: &[u8],
        token: &str,
        expires_at: Instant,
        fencing: bool,
        call: &Call,
    ) -> Result<AcquireReply, NodeError> {
        self.at_key(key, call, |node, call| async move {
            node.acquire_own_here(key, fence_key, token, expires_at, fencing, &call)
                .await
        })
        .await
    }

    /// [`acquire_own`](Self::acquire_own) on this server.
    async fn acquire_own_here(
        self: &Arc<Self>,
        key: &[u8],
        fence_key: &[u8],
        token: &str,
        expires_at: Instant,
        fencing: bool,
        call: &Call,
    ) -> Result<AcquireReply, NodeError> {
        let ttl = self.ttl_when_sent(expires_at, call).await?.to_string();
        let fencing: &[u8] = if fencing { b"1" } else { b"0" };
        let (reply, _) = self
            .eval(
                &scripts::ACQUIRE_OWN,
                &[key, fence_key],
                &[token.as_bytes(), ttl.as_bytes(), fencing],
                call,
            )
            .await?;
        let (code, fence, pttl) = triple(&reply)?;
        let remaining = u64::try_from(pttl)
            .ok()
            .map(std::time::Duration::from_millis);
        let fence = u64::try_from(fence).map_err(|_| unexpected(&reply))?;
        match code {
            1 => Ok(AcquireReply::Granted {
                fences: vec![fence],
            }),
            0 => Ok(AcquireReply::Held {
                remaining,
                fences: vec![fence],
                busy: 0,
            }),
            -1 => Ok(AcquireReply::NotALock { busy: 0 }),
            _ => Err(unexpected(&reply)),
        }
    }

    /// Withdraws the releases of `token` under `key` parked on this master: those still
    /// queued are dropped, and one the release worker is sending right now is not queued
    /// again if that send fails. A new acquisition with the same token must not be deleted
    /// by the late release of an earlier one. (A send already on the connection runs before
    /// the new acquisition, which leaves after it on the same connection.) Returns how many
    /// queued releases were dropped.
    pub(crate) fn withdraw_parked(&self, key: &[u8], token: &str) -> usize {
        let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        let before = parked.queue.len();
        parked
            .queue
            .retain(|r| !(r.keys.is_one(key) && &*r.token == token));
        let dropped = before.saturating_sub(parked.queue.len());
        if parked.working {
            let seq = parked.seq;
            let found = parked
                .withdrawn
                .iter()
                .position(|w| &*w.key == key && &*w.token == token);
            let full = parked.withdrawn.len() >= WITHDRAWN_MAX;
            match found.and_then(|i| parked.withdrawn.get_mut(i)) {
                Some(w) => w.before = seq,
                None if !full => {
                    parked.withdrawn.push(Withdrawal {
                        key: Arc::from(key),
                        token: Arc::from(token),
                        before: seq,
                    });
                }
                // Past the bound the releases in flight may still be queued again; they
                // expire with their keys.
                None => {}
            }
        }
        dropped
    }
}

impl Node {
    /// Whether the release worker is sending a release of `token` under `key` right now
    /// (it may be resent once on a fresh connection inside that send).
    pub(crate) fn release_in_flight(&self, key: &[u8], token: &str) -> bool {
        self.parked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .in_flight
            .iter()
            .any(|(k, t)| &**k == key && &**t == token)
    }
}

/// At most this many withdrawals are remembered while a release worker runs.
const WITHDRAWN_MAX: usize = 4096;

/// A withdrawal of the releases of one key and token parked before sequence `before`.
pub(super) struct Withdrawal {
    key: Arc<[u8]>,
    token: Arc<str>,
    before: u64,
}

impl Parked {
    /// Whether `release` was withdrawn after it was parked.
    pub(super) fn is_withdrawn(&self, release: &ParkedRelease) -> bool {
        self.withdrawn.iter().any(|w| {
            release.seq < w.before && release.keys.is_one(&w.key) && w.token == release.token
        })
    }
}

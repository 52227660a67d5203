//! Acquisition with a caller-chosen token ([`LockRequest::token`](crate::LockRequest::token)):
//! the key counts as granted when it is absent or already holds the token, and the
//! releases still parked for that key and token are withdrawn before the request leaves.
//!
//! Source: aioredlock's lock script (`SET` when the key is absent or already holds the id),
//! with the TTL only ever raised (see `scripts/acquire_own.lua`).

use std::sync::Arc;

use tokio::time::Instant;

use super::{AcquireReply, Call, Node, triple, unexpected};
use crate::error::NodeError;
use crate::scripts;

impl Node {
    /// Acquires `key` for the caller-chosen `token`: set when absent; a key already holding
    /// the token is granted too, its TTL raised to what is left until `expires_at` (never
    /// lowered). Always the acquire-own script (no `SET NX GET` fast path: that one would
    /// leave an own key's TTL as it is, shorter than the validity counted for it).
    pub(crate) async fn acquire_own(
        self: &Arc<Self>,
        key: &[u8],
        fence_key: &[u8],
        token: &str,
        expires_at: Instant,
        fencing: bool,
        call: &Call,
    ) -> Result<AcquireReply, NodeError> {
        let asked = Instant::now();
        if !self.is_up() {
            drop(self.link(call).await.map_err(|e| self.note_error(e))?);
        }
        let left = expires_at.saturating_duration_since(Instant::now());
        let ttl_ms = u64::try_from(left.as_micros().div_ceil(1_000)).unwrap_or(u64::MAX);
        if ttl_ms == 0 {
            return Err(self.note_error(NodeError::Backlog(asked.elapsed())));
        }
        let ttl = ttl_ms.to_string();
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
            1 => Ok(AcquireReply::Granted { fence }),
            0 => Ok(AcquireReply::Held { remaining, fence }),
            -1 => Ok(AcquireReply::NotALock),
            _ => Err(unexpected(&reply)),
        }
    }

    /// Withdraws the releases of `token` under `key` still parked on this master (not yet
    /// taken by the release worker): a new acquisition with the same token must not be
    /// deleted by the late release of an earlier one. Returns how many were withdrawn.
    pub(crate) fn withdraw_parked(&self, key: &[u8], token: &str) -> usize {
        let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        let before = parked.queue.len();
        parked
            .queue
            .retain(|r| !(&*r.key == key && &*r.token == token));
        before.saturating_sub(parked.queue.len())
    }
}

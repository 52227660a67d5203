//! Read-write locks on the quorum: [`LockManager::read`], [`LockManager::write`] and their
//! [`Lock`](crate::Lock) forms. See [`LockManager::read`] for the layout, the safety
//! argument and the fairness.

use std::sync::Arc;

use crate::attempt::{AcquireOptions, Patience, Target};
use crate::error::LockError;
use crate::guard::AcquireRequest;
use crate::manager::{LockManager, LockRequest};
use crate::metrics::Primitive;

/// Refuses, before any request, a reader or writer of a resource whose key is `{Y}` (braces
/// around a name `Y` without a hash tag): its read-write lock's helper keys (`{Y}:readers`,
/// `{Y}:reader:<token>`, `{Y}:wintent`) are those of the resource `Y`, and a reader of one
/// would hide the other's readers from its writers.
pub(crate) fn check(prefix: &[u8], target: &Target) -> Result<(), LockError> {
    if !matches!(target.primitive, Primitive::Reader | Primitive::Writer) {
        return Ok(());
    }
    super::refuse_helper_twins(
        prefix,
        target.resources.iter(),
        "read-write lock",
        "readers' set and writer intent",
        "rw",
    )
}

impl LockManager {
    fn rw_target(resource: &[u8], primitive: Primitive) -> Target {
        Target {
            resources: Arc::from([Arc::<[u8]>::from(resource)]),
            primitive,
            permits: None,
        }
    }

    fn rw_request(&self, target: Target) -> AcquireRequest<'_> {
        AcquireRequest::new(
            self,
            target,
            AcquireOptions {
                ttl: self.ttl(),
                patience: Patience::Retries(self.shared().settings.retry_count),
                holder: None,
                token: None,
                retry: None,
            },
        )
    }

    /// Starts taking a **read** (shared) lock on `resource` as a
    /// [`LockGuard`](crate::LockGuard): any number of readers at once, no writer. Each
    /// reader is a lease of its own, extended (auto-extension), released and lost on its
    /// own. [`read_lock`](Self::read_lock) gives a plain [`Lock`](crate::Lock).
    ///
    /// # How it works, and why it is safe
    ///
    /// Readers occupy the resource's very key `X` (the key [`lock`](Self::lock) takes)
    /// with the value `redlock:shared`, which no token equals: every Redlock mutex on the
    /// name — ours, a [`write`](Self::write), a [`lock_all`](Self::lock_all) containing it,
    /// or another Redlock client's — sees the key taken and is refused, and readers are
    /// refused while `X` holds a token. Beside `X`, each reader has a lease key of its own
    /// and the readers' set; every script keeps `X`'s TTL at least the longest live lease
    /// (acquire and extend take a maximum, a release recomputes it over the readers left,
    /// and the last one deletes `X`). A reader needs the quorum a writer needs: on each
    /// master of a reader's quorum its lease is live, hence `X` holds `redlock:shared`;
    /// on each master of a writer's quorum `X` holds the writer's token; two quorums share
    /// a master, where `X` holds one value. (A smaller read quorum is not offered: a
    /// reader on a minority could coexist with a plain mutex on the rest.)
    ///
    /// # Fairness
    ///
    /// Writers are preferred: a writer that waits ([`write`](Self::write) with retries)
    /// leaves a short-lived intent beside `X` on the masters that refused it, and new
    /// readers queue behind it (readers already in stay and may extend: bound them with
    /// [`AcquireRequest::max_hold`]). The intent only delays readers, never admits anyone;
    /// it is withdrawn when the writer's call ends, and expires by itself otherwise (two
    /// retry delays plus a node timeout). A reader that nests a second read of the same
    /// resource may thus wait behind a writer that waits for the first: do not nest reads.
    /// Only [`write`](Self::write) and [`write_lock`](Self::write_lock) leave an intent: a
    /// plain [`lock`](Self::lock) waiting on the name does not, and can wait behind a
    /// steady stream of readers.
    ///
    /// There is no upgrade of a reader to a writer (two upgrading readers would wait on
    /// each other forever), and no downgrade of a writer to a reader in place: release,
    /// take the other kind, and check again what you read. Nothing is reentrant.
    ///
    /// # Cost
    ///
    /// Per call, one request to each master, all in parallel: one per acquisition attempt
    /// (plus one on the masters that may have granted a failed attempt, to clean it up), one
    /// per extension, one per release. A reader's release walks the readers left (O(readers)
    /// on each master) and publishes the release notification when it was the last one; at
    /// most 1 024 readers hold one resource at once (more wait, as for a writer). Readers
    /// carry no fencing token.
    ///
    /// # Interop and Redis Cluster
    ///
    /// A plain lock on the name — ours, or another Redlock client's `SET X token NX PX` —
    /// excludes readers and is excluded by them: it finds `redlock:shared` where it expects
    /// nothing, and a foreign compare-and-delete never matches it.
    /// [`is_locked`](Self::is_locked) reports
    /// [`LockState::Shared`](crate::LockState::Shared), never the marker as a token. The
    /// helper keys (`{X}:readers`, `{X}:reader:<token>`, `{X}:wintent`) share `X`'s hash
    /// slot, so on a Redis Cluster member each script runs on one master, as the mutex's.
    /// More: `docs/primitives.md`.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire): [`LockError::Conflict`](crate::LockError::Conflict)
    /// when a writer (or any lock) held the resource, or a writer waited, through every
    /// attempt.
    /// [`LockError::InvalidArgument`] before any request when the resource's key is a name
    /// in braces (`{orders}`, a whole key that is its own hash tag): its read-write lock's
    /// helper keys would be those of the name without them (`orders`).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire): a dropped future leaves no reader behind for longer
    /// than one cleanup round trip.
    ///
    /// # Examples
    ///
    /// ```
    /// # include!("../../tests/support/doc_masters.rs");
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let masters = DocMasters::start(3);
    /// # let urls = masters.urls();
    /// let manager = tokio_redlock::LockManager::builder().servers(urls).build()?;
    /// let first = manager.read("catalog").auto_extend().await?;
    /// let second = manager.read("catalog").await?; // readers share
    /// assert!(manager.is_locked("catalog").await?.is_shared());
    /// // No writer, and no plain lock, while anyone reads.
    /// assert!(manager.write_lock("catalog").retry_count(0).await.unwrap_err().is_conflict());
    /// assert!(manager.try_lock("catalog").await.unwrap_err().is_conflict());
    /// first.release().await?;
    /// second.release().await?;
    /// manager.close().await;
    /// # Ok(()) }
    /// ```
    pub fn read(&self, resource: impl AsRef<[u8]>) -> AcquireRequest<'_> {
        self.rw_request(Self::rw_target(resource.as_ref(), Primitive::Reader))
    }

    /// Starts taking a read lock on `resource` as a plain [`Lock`](crate::Lock) (no
    /// watchdog): see [`read`](Self::read). Release it with [`unlock`](Self::unlock),
    /// extend it with [`extend`](Self::extend).
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    ///
    /// # Cancel safety
    ///
    /// As [`read`](Self::read).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// let mut reader = manager.read_lock("catalog").await?;
    /// manager.unlock(&mut reader).await?;
    /// # Ok(()) }
    /// ```
    pub fn read_lock(&self, resource: impl AsRef<[u8]>) -> LockRequest<'_> {
        LockRequest::new(self, Self::rw_target(resource.as_ref(), Primitive::Reader))
    }

    /// Starts taking the **write** (exclusive) lock on `resource` as a
    /// [`LockGuard`](crate::LockGuard): no reader and no other writer. The writer is the
    /// mutex: it takes exactly the key [`acquire`](Self::acquire) takes (with the same
    /// fencing counter), so writers and plain locks on a name exclude each other and their
    /// fencing tokens order together. What it adds is the writer's intent while it waits,
    /// which makes new readers queue behind it (see [`read`](Self::read) for the layout, the
    /// safety argument and the fairness).
    ///
    /// Why a writer never meets a reader: both need a quorum; on each master of the writer's
    /// quorum the key holds the writer's token, on each master of a reader's quorum its lease
    /// is live and so the key holds `redlock:shared`; two quorums share a master, where the
    /// key holds one value.
    ///
    /// # Cost
    ///
    /// As the mutex: one request to each master per acquisition attempt (plus the cleanup of
    /// a failed one), per extension and per release; with fencing, the mutex's slow path (one
    /// or two more rounds when the counters disagree). A call that may retry (the default)
    /// also withdraws its intent when it ends, however it ends: one more request to each
    /// master, sent in the background, which wakes the readers queued behind it.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire); and [`LockError::InvalidArgument`] before any request
    /// when the resource's key is a name in braces, as for [`read`](Self::read).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire); the intent of a dropped call is withdrawn in the
    /// background.
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
    /// let writer = manager.write("catalog").wait(Duration::from_secs(30)).await?;
    /// // ... rewrite the catalog: no reader sees it half done ...
    /// assert!(manager.read_lock("catalog").retry_count(0).await.unwrap_err().is_conflict());
    /// assert!(manager.try_lock("catalog").await.unwrap_err().is_conflict()); // the writer is the mutex
    /// writer.release().await?;
    /// manager.close().await;
    /// # Ok(()) }
    /// ```
    pub fn write(&self, resource: impl AsRef<[u8]>) -> AcquireRequest<'_> {
        self.rw_request(Self::rw_target(resource.as_ref(), Primitive::Writer))
    }

    /// Starts taking the write lock on `resource` as a plain [`Lock`](crate::Lock): see
    /// [`write`](Self::write).
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write).
    ///
    /// # Cancel safety
    ///
    /// As [`write`](Self::write).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// let mut writer = manager.write_lock("catalog").await?;
    /// manager.unlock(&mut writer).await?;
    /// # Ok(()) }
    /// ```
    pub fn write_lock(&self, resource: impl AsRef<[u8]>) -> LockRequest<'_> {
        LockRequest::new(self, Self::rw_target(resource.as_ref(), Primitive::Writer))
    }
}

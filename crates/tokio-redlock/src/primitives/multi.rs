//! Several resources locked at once, all or nothing: [`LockManager::lock_all`] and
//! [`LockManager::acquire_all`].
//!
//! # Layout and protocol
//!
//! The lock holds exactly the keys single-resource locks take (`prefix + resource`), one
//! token for all of them, with one TTL. Each master runs one script over every key
//! (`scripts/acquire_multi.lua`): it checks each key, and grants (sets every key with
//! `PX ttl`) only if every key is free or already holds this token; otherwise it writes
//! nothing and names the first busy key with its remaining TTL. A master votes yes only if
//! it granted every key. The tally, the drift, the validity (`ttl − elapsed − drift`, from
//! an instant taken before the first request), the cleanup of a failed attempt on every
//! master that may hold a key, the release of a dropped future, waiting and retrying are the
//! single-resource lock's, unchanged. Release (`scripts/release_multi.lua`) deletes each key
//! still holding the token and publishes on each deleted key's release channel; extension
//! (`scripts/extend_multi.lua`) resets every key's TTL only where every key is still ours.
//!
//! # Safety
//!
//! - **Exclusion with a lock on one member** `Y` (a single-resource lock, another
//!   multi-resource lock, or another Redlock client's lock on the same name): both need `Y`
//!   to hold their own token on a majority of masters while valid; two majorities share a
//!   master, and a key holds one value. The Redlock argument, word for word: by its
//!   deadline (`ttl − drift` after the first request left) every granting master still
//!   holds our token, since only our release removes it and its TTL has not run out.
//! - **All or nothing**: on one master, by the atomicity of a script; across masters, by
//!   the quorum rule — a lock exists only when a majority granted every key, and a failed
//!   attempt deletes what the others granted. A handle therefore covers its whole set.
//! - **No deadlock**: nobody holds keys while waiting (a failed attempt releases before it
//!   sleeps), so there is no hold-and-wait, whatever order callers name resources in.
//!   Overlapping sets can split the votes (livelock), broken by the jittered retries as for
//!   a single resource.
//!
//! # Cost
//!
//! One round trip per acquisition, release or extension, whatever the number of resources
//! (plus, with fencing, one round per resource whose counters disagree, run side by side).
//! Server work is O(m) per request; m is capped at [`MAX_RESOURCES`].
//!
//! Sources: the Redlock algorithm (<https://redis.io/docs/latest/develop/clients/patterns/distributed-locks/>);
//! node-redlock's one-script acquisition of several resources
//! (`mike-marcacci/node-redlock:src/index.ts`), which this follows per master.

use std::sync::Arc;

use crate::attempt::{AcquireOptions, Patience, Target};
use crate::error::LockError;
use crate::guard::AcquireRequest;
use crate::keys;
use crate::manager::{LockManager, LockRequest};
use crate::metrics::Primitive;

/// The most resources one lock may hold at once: each request runs one script over every
/// key, and a master runs nothing else meanwhile. Default and limit: 64.
pub const MAX_RESOURCES: usize = 64;

/// Resources in canonical form: sorted by their bytes, each once. A resource named twice is
/// locked once.
pub(crate) fn canonical<I, R>(resources: I) -> Arc<[Arc<[u8]>]>
where
    I: IntoIterator<Item = R>,
    R: AsRef<[u8]>,
{
    let mut all: Vec<Arc<[u8]>> = resources.into_iter().map(|r| r.as_ref().into()).collect();
    all.sort();
    all.dedup();
    all.into()
}

/// Refuses, before any request, what cannot be locked: no resource at all, more than
/// [`MAX_RESOURCES`], or a resource whose key is reserved ([`LockError::ReservedKey`]).
pub(crate) fn check(prefix: &[u8], target: &Target) -> Result<(), LockError> {
    if target.resources.is_empty() {
        return Err(LockError::InvalidArgument(
            "no resource to lock: name at least one".to_owned(),
        ));
    }
    if target.resources.len() > MAX_RESOURCES {
        return Err(LockError::InvalidArgument(format!(
            "{} distinct resources in one lock: at most {MAX_RESOURCES}",
            target.resources.len()
        )));
    }
    for resource in target.resources.iter() {
        keys::check_lock_key(prefix, resource)?;
    }
    Ok(())
}

impl LockManager {
    /// Starts acquiring every resource of `resources` at once, all or nothing: the returned
    /// [`Lock`](crate::Lock) holds each of them under one token, with one TTL and one
    /// deadline, or the call fails holding none. `.await` it, or adjust it first with
    /// [`LockRequest::ttl`], [`LockRequest::retry_count`], [`LockRequest::wait`] or
    /// [`LockRequest::wait_forever`].
    ///
    /// Each resource's key is the key [`lock`](Self::lock) takes for it, so a lock on `a`
    /// and a lock of `["a", "b"]` exclude each other (so does any other Redlock client
    /// locking `a`). Resources are locked in canonical order: sorted by their bytes, and a
    /// resource named twice is locked once ([`Lock::resources`](crate::Lock::resources)
    /// lists them). [`unlock`](Self::unlock) and [`extend`](Self::extend) act on all of
    /// them at once; a waiting acquisition wakes on a release of any of them. With a
    /// single resource it is exactly [`lock`](Self::lock).
    ///
    /// # How it works, and why it is safe
    ///
    /// Each attempt is one request per master, as for one resource: one script checks every
    /// key and sets them all (`PX ttl`, one token) only if each is free or already ours, so
    /// a master grants every key or none; it votes yes only if it granted every key. Quorum,
    /// drift, validity, the cleanup of a failed attempt and retries are the single-resource
    /// lock's. Then:
    ///
    /// - *exclusion*: any lock on a member `Y` (single, another set, another Redlock
    ///   client) needs `Y` to hold its own token on a majority; two majorities share a
    ///   master, where `Y` holds one value — the Redlock argument on each member;
    /// - *all or nothing*: on a master by script atomicity, across masters by the quorum
    ///   rule (a failed attempt deletes what the minority granted), so a lock covers its
    ///   whole set or does not exist; extension is all or nothing per master too;
    /// - *no deadlock*: a failed attempt releases before it sleeps, so nobody holds keys
    ///   while waiting, whatever order callers name resources in. Overlapping sets may split
    ///   votes; the jittered retries break that as for one resource. A large set can starve
    ///   against a steady stream of single-resource locks on its members.
    ///
    /// # Cost
    ///
    /// Per call, one request to each master, all in parallel: one per acquisition attempt
    /// (plus one on the masters that may have granted a failed attempt, to clean it up), one
    /// per extension, one per release — whatever the number of resources. With fencing, one
    /// more round (two at most) per resource whose counters disagree on the masters, run
    /// side by side. O(resources) work in each master's script; the release publishes on
    /// each released key's channel.
    ///
    /// # Interop and Redis Cluster
    ///
    /// The keys are the plain lock keys: [`lock`](Self::lock) on any member, another set
    /// containing it, or another Redlock client's lock on it (aioredlock, node-redlock,
    /// redsync) excludes the set and is excluded by it; a reader of a member too (see
    /// [`read`](Self::read)). With fencing each resource gets its own token
    /// ([`Lock::fencing_tokens`](crate::Lock::fencing_tokens)), from the counter plain
    /// locks on it use. On a Redis Cluster member the script runs on one master, so every
    /// resource must be in one hash slot: give them a common hash tag (`{orders}:1`,
    /// `{orders}:2`), or the call fails at once with
    /// [`LockError::CrossSlot`](crate::LockError::CrossSlot). More: `docs/primitives.md`.
    ///
    /// # Errors
    ///
    /// As [`lock`](Self::lock), where errors about a held or foreign key name the resource
    /// the refusing masters named (or the first resource); and
    /// [`LockError::InvalidArgument`] before any request for an empty list or more than
    /// [`MAX_RESOURCES`] distinct resources, [`LockError::ReservedKey`] when one of them is
    /// reserved.
    ///
    /// # Cancel safety
    ///
    /// As [`lock`](Self::lock): a dropped future leaves no key behind for longer than one
    /// cleanup round trip, on any of the resources.
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
    /// // Move stock between two warehouses: both or neither.
    /// let mut lock = manager.lock_all(["stock:paris", "stock:berlin"]).await?;
    /// let held: Vec<&[u8]> = lock.resources().collect();
    /// assert_eq!(held, [&b"stock:berlin"[..], b"stock:paris"]); // sorted
    /// // A plain lock on either resource is refused meanwhile, and so is an overlapping set.
    /// assert!(manager.try_lock("stock:paris").await.unwrap_err().is_conflict());
    /// let overlapping = manager.lock_all(["stock:paris", "stock:rome"]).retry_count(0).await;
    /// assert!(overlapping.unwrap_err().is_conflict());
    /// manager.unlock(&mut lock).await?;
    /// manager.close().await;
    /// # Ok(()) }
    /// ```
    pub fn lock_all<I, R>(&self, resources: I) -> LockRequest<'_>
    where
        I: IntoIterator<Item = R>,
        R: AsRef<[u8]>,
    {
        LockRequest::new(self, multi_target(resources))
    }

    /// Starts acquiring every resource of `resources` at once, all or nothing, as a
    /// [`LockGuard`](crate::LockGuard): [`lock_all`](Self::lock_all) with a watchdog that can
    /// extend the whole set ([`AcquireRequest::auto_extend`]) and reports its loss
    /// ([`LockGuard::lost`](crate::LockGuard::lost)) — lost as a whole: an extension succeeds
    /// on a master only where every key is still ours.
    ///
    /// # Errors
    ///
    /// As [`lock_all`](Self::lock_all).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire): dropping the future leaves no watchdog and no key.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// let guard = manager
    ///     .acquire_all(["account:7", "account:9"])
    ///     .auto_extend()
    ///     .await?;
    /// // ... transfer, select!-ing on guard.lost() ...
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub fn acquire_all<I, R>(&self, resources: I) -> AcquireRequest<'_>
    where
        I: IntoIterator<Item = R>,
        R: AsRef<[u8]>,
    {
        AcquireRequest::new(
            self,
            multi_target(resources),
            AcquireOptions {
                ttl: self.ttl(),
                patience: Patience::Retries(self.shared().settings.retry_count),
                holder: None,
                token: None,
                retry: None,
            },
        )
    }
}

/// The target of `lock_all`: canonical resources; one resource is a plain mutex.
fn multi_target<I, R>(resources: I) -> Target
where
    I: IntoIterator<Item = R>,
    R: AsRef<[u8]>,
{
    let resources = canonical(resources);
    let primitive = if resources.len() == 1 {
        Primitive::Mutex
    } else {
        Primitive::Multi
    };
    Target {
        resources,
        primitive,
        permits: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_is_sorted_and_distinct() {
        let set = canonical(["b", "a", "b", "c", "a"]);
        let names: Vec<&[u8]> = set.iter().map(|r| &**r).collect();
        assert_eq!(names, [&b"a"[..], b"b", b"c"]);
        assert!(canonical(Vec::<&str>::new()).is_empty());
    }

    #[test]
    fn empty_and_oversized_sets_are_refused() {
        let empty = multi_target(Vec::<&str>::new());
        assert!(check(b"", &empty).is_err_and(|e| matches!(e, LockError::InvalidArgument(_))));
        let many = multi_target((0..=MAX_RESOURCES).map(|i| i.to_string()));
        assert!(check(b"", &many).is_err_and(|e| matches!(e, LockError::InvalidArgument(_))));
        let most = multi_target((0..MAX_RESOURCES).map(|i| i.to_string()));
        assert!(check(b"", &most).is_ok());
        let reserved = multi_target(["ok", "{ok}:fence"]);
        assert!(check(b"", &reserved).is_err_and(|e| e.is_reserved_key()));
    }
}

//! Beyond the mutex, on the same quorum machinery: several resources locked at once
//! ([`multi`]), read-write locks ([`rwlock`]) and counting semaphores ([`semaphore`]).
//!
//! Each primitive is a [`Target`](crate::attempt::Target) for the mutex's acquisition path
//! (fan-out, early verdict, validity, cleanup, waiting, guards), with its own keys and Lua
//! scripts; these modules hold what is specific to each: the public entry points on
//! [`LockManager`](crate::LockManager), the checks of their input, and their layout and
//! safety arguments.

pub(crate) mod multi;
pub(crate) mod rwlock;
pub(crate) mod semaphore;

use crate::error::LockError;
use crate::keys::{self, Printable};

/// Refuses, before any request, a `what` (a read-write lock, a semaphore) on a resource
/// whose key is `{Y}` (braces around a name `Y` without a hash tag): its helper keys, named
/// `helpers` in the message, would be those of the resource `Y` (see `keys::helper_twin`),
/// so the two would share them. The message suggests the name with `:suffix`.
pub(crate) fn refuse_helper_twins<'a>(
    prefix: &[u8],
    resources: impl IntoIterator<Item = &'a std::sync::Arc<[u8]>>,
    what: &str,
    helpers: &str,
    suffix: &str,
) -> Result<(), LockError> {
    for resource in resources {
        let key = keys::lock_key(prefix, resource);
        if let Some(twin) = keys::helper_twin(&key) {
            return Err(LockError::InvalidArgument(format!(
                "no {what} on the key `{}`: its {helpers} would be those of the key `{}` \
                 (braces around a name are its hash tag); name it differently, such as \
                 `{}:{suffix}`",
                Printable::new(&*key),
                Printable(twin),
                Printable::new(&*key),
            )));
        }
    }
    Ok(())
}

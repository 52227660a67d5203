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

//! The Lua scripts, loaded once with `include_str!` and hashed for `EVALSHA`.

use std::sync::LazyLock;

/// A script's body and its SHA1, computed once.
pub(crate) struct LuaScript {
    pub(crate) body: &'static str,
    pub(crate) sha: String,
}

impl LuaScript {
    fn new(body: &'static str) -> Self {
        let sha = redis::Script::new(body).get_hash().to_owned();
        Self { body, sha }
    }
}

/// `SET NX PX` (+ fencing `INCR`): see `scripts/acquire.lua`.
pub(crate) static ACQUIRE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/acquire.lua")));
/// Compare-and-delete: see `scripts/release.lua`.
pub(crate) static RELEASE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/release.lua")));
/// Compare-and-`PEXPIRE`: see `scripts/extend.lua`.
pub(crate) static EXTEND: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/extend.lua")));

/// Fencing slow path, conditional raise: see `scripts/fence.lua`.
pub(crate) static FENCE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/fence.lua")));

/// All-or-nothing acquisition of several keys: see `scripts/acquire_multi.lua`.
pub(crate) static ACQUIRE_MULTI: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/acquire_multi.lua")));
/// Compare-and-delete of several keys: see `scripts/release_multi.lua`.
pub(crate) static RELEASE_MULTI: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/release_multi.lua")));
/// All-or-nothing compare-and-`PEXPIRE` of several keys: see `scripts/extend_multi.lua`.
pub(crate) static EXTEND_MULTI: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/extend_multi.lua")));

/// A semaphore permit: the first free slot of a rotation: see `scripts/acquire_permit.lua`.
pub(crate) static ACQUIRE_PERMIT: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/acquire_permit.lua")));

/// A reader of a read-write lock: see `scripts/acquire_read.lua`.
pub(crate) static ACQUIRE_READ: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/acquire_read.lua")));
/// A reader's release: see `scripts/release_read.lua`.
pub(crate) static RELEASE_READ: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/release_read.lua")));
/// A reader's extension: see `scripts/extend_read.lua`.
pub(crate) static EXTEND_READ: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/extend_read.lua")));
/// A writer with its intent: see `scripts/acquire_write.lua`.
pub(crate) static ACQUIRE_WRITE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/acquire_write.lua")));

/// `SET NX PX`, or raise the TTL of a key already holding the caller's token: see
/// `scripts/acquire_own.lua`.
pub(crate) static ACQUIRE_OWN: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/acquire_own.lua")));

/// `scripts/extend_permit.lua`: a semaphore slot's extension, which keeps the permits
/// record alive as long as the slot.
pub(crate) static EXTEND_PERMIT: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/extend_permit.lua")));

/// Every script, loaded on each new connection.
pub(crate) static ALL: [&LazyLock<LuaScript>; 14] = [
    &ACQUIRE,
    &RELEASE,
    &EXTEND,
    &FENCE,
    &ACQUIRE_OWN,
    &ACQUIRE_MULTI,
    &RELEASE_MULTI,
    &EXTEND_MULTI,
    &ACQUIRE_PERMIT,
    &ACQUIRE_READ,
    &RELEASE_READ,
    &EXTEND_READ,
    &ACQUIRE_WRITE,
    &EXTEND_PERMIT,
];

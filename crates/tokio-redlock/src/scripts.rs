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

/// `SET NX PX`, or raise the TTL of a key already holding the caller's token: see
/// `scripts/acquire_own.lua`.
pub(crate) static ACQUIRE_OWN: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/acquire_own.lua")));

/// Every script, loaded on each new connection.
pub(crate) static ALL: [&LazyLock<LuaScript>; 5] =
    [&ACQUIRE, &RELEASE, &EXTEND, &FENCE, &ACQUIRE_OWN];

//! Key naming and tokens: one place for every name the library writes to Redis.
//!
//! - lock key: `prefix + resource`, byte for byte, so that a lock taken by another Redlock
//!   library on the same name excludes ours and vice versa;
//! - fencing counter: `{<lock key>}:fence`, or `<lock key>:fence` when the lock key already
//!   carries a hash tag, so both keys share a hash slot. A lock key of either form *is*
//!   another resource's counter, so it is refused ([`check_lock_key`]): no lock can sit on a
//!   counter (which would break that resource's fenced acquisitions), and no acquisition can
//!   wait forever on a counter, which has no TTL;
//! - holder record: `{<lock key>}:holder` (same rule), written only for acquisitions that
//!   opted in ([`HolderInfo`](crate::HolderInfo)); reserved the same way;
//! - token: 128 random bits from the thread-local CSPRNG, as 32 lowercase hex digits.

use std::fmt;
use std::sync::Arc;

use crate::error::LockError;

/// The lock key for a resource: the configured
/// [`key_prefix`](crate::LockManagerBuilder::key_prefix) followed by the resource bytes (without
/// a prefix, the resource name itself, as other Redlock libraries name it).
///
/// For tools that work on the keys directly (an operator's forced release); a lock is taken
/// and released through [`LockManager`](crate::LockManager).
///
/// # Examples
///
/// ```
/// assert_eq!(&*tokio_redlock::lock_key(b"app:", b"orders:42"), b"app:orders:42");
/// assert_eq!(&*tokio_redlock::lock_key(b"", b"orders:42"), b"orders:42");
/// ```
pub fn lock_key(prefix: &[u8], resource: &[u8]) -> Arc<[u8]> {
    let mut key = Vec::with_capacity(prefix.len().saturating_add(resource.len()));
    key.extend_from_slice(prefix);
    key.extend_from_slice(resource);
    key.into()
}

/// The channel the release script publishes on (an empty message) when it deletes
/// `lock_key`: waiters of the resource subscribe to it. Channels live apart from keys, so it
/// cannot collide with one. A tool that deletes a lock key itself publishes there too, so
/// that waiters try at once instead of at the key's expiry.
///
/// # Examples
///
/// ```
/// assert_eq!(&*tokio_redlock::release_channel(b"orders:42"), b"redlock:released:orders:42");
/// ```
pub fn release_channel(lock_key: &[u8]) -> Arc<[u8]> {
    let mut channel = Vec::with_capacity(CHANNEL_PREFIX.len().saturating_add(lock_key.len()));
    channel.extend_from_slice(CHANNEL_PREFIX);
    channel.extend_from_slice(lock_key);
    channel.into()
}

/// What [`release_channel`] puts before the lock key (the multi-key release script gets it as
/// an argument and builds each key's channel itself).
pub(crate) const CHANNEL_PREFIX: &[u8] = b"redlock:released:";

/// The keys one lock holds, all under one token: one key for a mutex (and a semaphore
/// permit: one slot key), the sorted, distinct keys of its resources for a multi-resource
/// lock; and where a release tells the waiters. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Keys {
    keys: Arc<[Arc<[u8]>]>,
    /// A reader of a read-write lock: the one key is the lock key `X`, which holds
    /// [`SHARED`]; the reader's own keys beside it come from `X` and the token.
    reader: bool,
    /// The one channel a release publishes on, instead of each deleted key's own release
    /// channel (a semaphore's slots share the semaphore's channel).
    channel: Option<Arc<[u8]>>,
    /// A semaphore permit: the semaphore's permits record and its number of permits, which
    /// an extension of the one slot key keeps alive as long as the slot.
    permits: Option<(Arc<[u8]>, u32)>,
}

impl Keys {
    /// The one key of a single-resource lock.
    pub(crate) fn one(key: Arc<[u8]>) -> Self {
        Self {
            keys: Arc::from([key]),
            reader: false,
            channel: None,
            permits: None,
        }
    }

    /// A reader of the read-write lock whose lock key is `key`.
    pub(crate) fn reader(key: Arc<[u8]>) -> Self {
        Self {
            reader: true,
            ..Self::one(key)
        }
    }

    /// Whether these are a reader's keys.
    pub(crate) fn is_reader(&self) -> bool {
        self.reader
    }

    /// Several keys, kept in the order given (callers pass them sorted and distinct).
    pub(crate) fn many(keys: Vec<Arc<[u8]>>) -> Self {
        Self {
            keys: keys.into(),
            reader: false,
            channel: None,
            permits: None,
        }
    }

    /// The same keys, whose release publishes on `channel` only.
    pub(crate) fn with_channel(mut self, channel: Arc<[u8]>) -> Self {
        self.channel = Some(channel);
        self
    }

    /// The same one slot key, as a permit of the semaphore whose permits record is
    /// `limit_key`, with `permits` permits.
    pub(crate) fn with_permits(mut self, limit_key: Arc<[u8]>, permits: u32) -> Self {
        self.permits = Some((limit_key, permits));
        self
    }

    /// The permits record and number of permits of a semaphore permit's keys, if these are
    /// one.
    pub(crate) fn permits(&self) -> Option<(&Arc<[u8]>, u32)> {
        self.permits.as_ref().map(|(key, k)| (key, *k))
    }

    /// The channel a release publishes on instead of the keys' own, if any.
    pub(crate) fn channel(&self) -> Option<&Arc<[u8]>> {
        self.channel.as_ref()
    }

    /// The keys, in order.
    pub(crate) fn as_slice(&self) -> &[Arc<[u8]>] {
        &self.keys
    }

    /// The single key, when there is exactly one: requests then take the mutex's own
    /// scripts (and its `SET NX` fast path), byte for byte what other Redlock clients send.
    pub(crate) fn single(&self) -> Option<&Arc<[u8]>> {
        match &*self.keys {
            [key] => Some(key),
            _ => None,
        }
    }

    /// Whether these are exactly the one key `key` of a mutex (not a reader's).
    pub(crate) fn is_one(&self, key: &[u8]) -> bool {
        !self.reader && self.single().is_some_and(|k| &**k == key)
    }

    /// How many keys.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no key at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The first key (sorted order): named in logs.
    pub(crate) fn first(&self) -> &[u8] {
        self.keys.first().map_or(&[], |k| k)
    }
}

/// The value readers keep under a read-write lock's key while at least one reader holds it:
/// no token (32 hex digits here; UUIDs, hex or base64 in other Redlock clients) can equal
/// it, so every string-based Redlock mutex on the name sees the key as taken.
pub(crate) const SHARED: &str = "redlock:shared";

/// The set of the readers' tokens beside a read-write lock's key.
pub(crate) fn readers_key(lock_key: &[u8]) -> Arc<[u8]> {
    helper_key(lock_key, b"readers")
}

/// What a reader's lease key is made of: this prefix followed by its token.
pub(crate) fn reader_prefix(lock_key: &[u8]) -> Arc<[u8]> {
    helper_key(lock_key, b"reader:")
}

/// A reader's lease key: [`reader_prefix`] followed by its token.
pub(crate) fn reader_key(lock_key: &[u8], token: &str) -> Arc<[u8]> {
    let mut suffix = b"reader:".to_vec();
    suffix.extend_from_slice(token.as_bytes());
    helper_key(lock_key, &suffix)
}

/// The key a waiting writer registers its intent under: new readers queue behind it.
pub(crate) fn intent_key(lock_key: &[u8]) -> Arc<[u8]> {
    helper_key(lock_key, b"wintent")
}

/// The channel the release script publishes on with `SPUBLISH` (sharded pub/sub, Redis 7)
/// on a Redis Cluster member: [`release_channel`] with the lock key as its hash tag
/// (`redlock:released:{<key>}`, or `redlock:released:<key>` when the key already carries a
/// hash tag), so that the channel hashes to the lock key's slot. A sharded message then
/// travels only within the shard that serves the key, and waiters subscribe (`SSUBSCRIBE`)
/// on that shard's master alone.
///
/// A tool that deletes a lock key on a cluster itself publishes there (`SPUBLISH`).
///
/// # Examples
///
/// ```
/// use tokio_redlock::sharded_release_channel;
///
/// assert_eq!(&*sharded_release_channel(b"orders:42"), b"redlock:released:{orders:42}");
/// assert_eq!(&*sharded_release_channel(b"{orders}:42"), b"redlock:released:{orders}:42");
/// ```
pub fn sharded_release_channel(lock_key: &[u8]) -> Arc<[u8]> {
    const PREFIX: &[u8] = b"redlock:released:";
    let mut channel = Vec::with_capacity(
        PREFIX
            .len()
            .saturating_add(lock_key.len())
            .saturating_add(2),
    );
    channel.extend_from_slice(PREFIX);
    if has_hash_tag(lock_key) {
        channel.extend_from_slice(lock_key);
    } else {
        channel.push(b'{');
        channel.extend_from_slice(lock_key);
        channel.push(b'}');
    }
    channel.into()
}

/// The lock key of a release channel ([`release_channel`] or [`sharded_release_channel`]),
/// if `channel` is one.
pub(crate) fn channel_lock_key(channel: &[u8]) -> Option<&[u8]> {
    channel.strip_prefix(b"redlock:released:")
}

/// The number of hash slots of a Redis Cluster.
pub(crate) const SLOTS: u16 = 16_384;

/// The Redis Cluster hash slot of a key: CRC16 (XMODEM) of its hash tag (the bytes between
/// the first `{` and the next `}`, when not empty), else of the whole key, modulo 16384 —
/// the cluster specification's `HASH_SLOT`, computed with the CRC16 redis-rs itself uses.
pub(crate) fn slot(key: &[u8]) -> u16 {
    let hashed = hash_tag(key).unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(hashed) % SLOTS
}

/// The hash tag of a key, if it has one (see [`has_hash_tag`]).
fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|b| *b == b'{')?;
    let rest = key.get(open.saturating_add(1)..)?;
    let close = rest.iter().position(|b| *b == b'}')?;
    rest.get(..close).filter(|tag| !tag.is_empty())
}

/// Refuses a request whose keys are not all in one hash slot, as a Redis Cluster member
/// needs ([`LockError::CrossSlot`], naming each key's slot), before anything is sent: a
/// cluster would answer `CROSSSLOT`, and no retry can change a key's slot.
///
/// Every helper key of a resource shares its lock key's slot ([`helper_key`]), except for
/// a lock key that holds a `}` without a hash tag (`a}b`, `x{}y}`): braces around it cannot
/// make a tag of the whole key, so its helper keys hash elsewhere.
pub(crate) fn check_one_slot(keys: &[&[u8]]) -> Result<(), LockError> {
    let slots: Vec<(Arc<[u8]>, u16)> = keys.iter().map(|k| (Arc::from(*k), slot(k))).collect();
    match slots.first() {
        Some((_, first)) if slots.iter().any(|(_, s)| s != first) => {
            Err(LockError::CrossSlot { slots })
        }
        _ => Ok(()),
    }
}

/// The fencing counter key beside a lock key, in the same Redis Cluster hash slot.
pub(crate) fn fence_key(lock_key: &[u8]) -> Arc<[u8]> {
    helper_key(lock_key, b"fence")
}

/// The key of the holder record beside `lock_key` (see [`HolderInfo`](crate::HolderInfo)):
/// `{<lock key>}:holder`, or `<lock key>:holder` when the lock key has a hash tag, so both
/// share a Redis Cluster hash slot. For tools that work on the keys directly: an operator's
/// forced release deletes the record with the key.
///
/// # Examples
///
/// ```
/// assert_eq!(&*tokio_redlock::holder_key(b"orders:42"), b"{orders:42}:holder");
/// assert_eq!(&*tokio_redlock::holder_key(b"{orders}:42"), b"{orders}:42:holder");
/// ```
pub fn holder_key(lock_key: &[u8]) -> Arc<[u8]> {
    helper_key(lock_key, b"holder")
}

/// A helper key of a lock key (`H(X, s)`: fencing counter, holder record, reader keys,
/// semaphore slots), in the lock key's Redis Cluster hash slot: `{X}:s`, or `X:s` when `X`
/// already carries a hash tag. Every helper key of a resource is made here.
pub(crate) fn helper_key(lock_key: &[u8], suffix: &[u8]) -> Arc<[u8]> {
    let mut key = Vec::with_capacity(
        lock_key
            .len()
            .saturating_add(suffix.len())
            .saturating_add(3),
    );
    if has_hash_tag(lock_key) {
        key.extend_from_slice(lock_key);
    } else {
        key.push(b'{');
        key.extend_from_slice(lock_key);
        key.push(b'}');
    }
    key.push(b':');
    key.extend_from_slice(suffix);
    key.into()
}

/// The helper keys of a lock key that no resource may lock, by exact suffix, with what they
/// are: a lock there would break the owning resource (its fenced acquisitions, who it shows
/// as its holder, its semaphore's number of permits, its readers or its waiting writer),
/// and an acquisition of a fencing counter would wait for a key that never expires. Two
/// more suffixes take a variable part: `permit:<digits>` (a semaphore's slot) and
/// `reader:<32 hex digits>` (a reader's lease), see [`strip_reserved_suffix`].
pub(crate) const RESERVED_HELPERS: [(&[u8], &str); 5] = [
    (b"fence", "fencing counter"),
    (b"holder", "holder record"),
    (b"permits", "semaphore's permits"),
    (b"readers", "readers' set"),
    (b"wintent", "writer intent"),
];

/// The part of `key` before a reserved helper suffix, if it ends with one, and what kind of
/// helper key it is: one of [`RESERVED_HELPERS`], `:permit:<digits>` (a semaphore's slot)
/// or `:reader:<32 hex digits>` (a read-write lock's reader lease).
fn strip_reserved_suffix(key: &[u8]) -> Option<(&[u8], &'static str)> {
    for (suffix, kind) in RESERVED_HELPERS {
        if let Some(stem) = key.strip_suffix(suffix).and_then(|k| k.strip_suffix(b":")) {
            return Some((stem, kind));
        }
    }
    let hex = key
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_hexdigit())
        .count();
    if hex >= 32
        && let Some(stem) = key
            .get(..key.len().saturating_sub(32))
            .and_then(|k| k.strip_suffix(b":reader:"))
    {
        return Some((stem, "reader lease"));
    }
    let digits = key.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let stem = key
        .get(..key.len().saturating_sub(digits))?
        .strip_suffix(b":permit:")?;
    Some((stem, "semaphore slot"))
}

/// The lock key whose helper key `key` is, if it is one, and what kind of helper key
/// ([`strip_reserved_suffix`]): `key` is `{<owner>}:<suffix>` with an owner without a hash
/// tag, or `<owner>:<suffix>` with an owner that has one (`helper_key(owner, suffix) ==
/// key`).
///
/// A key can be the helper of two lock keys (`{fc}:fence` is that of `fc` and of `{fc}`);
/// the one without braces is named.
pub(crate) fn helper_owner(key: &[u8]) -> Option<(&[u8], &'static str)> {
    let (owner, kind) = strip_reserved_suffix(key)?;
    if let Some(inner) = owner.strip_prefix(b"{").and_then(|o| o.strip_suffix(b"}"))
        && !has_hash_tag(inner)
    {
        return Some((inner, kind));
    }
    has_hash_tag(owner).then_some((owner, kind))
}

/// Checks that the lock key of `resource` (after the key `prefix`) is not another
/// resource's helper key: its fencing counter (`{<key>}:fence`), its holder record
/// (`{<key>}:holder`), a semaphore's permits or slot (`{<key>}:permits`,
/// `{<key>}:permit:<n>`), or a read-write lock's readers' set, reader lease or writer
/// intent (`{<key>}:readers`, `{<key>}:reader:<token>`, `{<key>}:wintent`); without the
/// braces where `<key>` has a hash tag. No lock may sit there, and a tool that works on the
/// keys directly must not delete one as if it were a lock: a deleted fencing counter starts
/// again from 1, so fencing tokens would go backwards. Acquisitions check this themselves;
/// an operator's forced release checks it first.
///
/// # Errors
///
/// [`LockError::ReservedKey`] (with [`is_reserved_key`](LockError::is_reserved_key) and
/// [`is_invalid_input`](LockError::is_invalid_input)) naming the lock key it belongs to;
/// [`LockError::InvalidArgument`] for an empty resource name.
///
/// # Examples
///
/// ```
/// assert!(tokio_redlock::check_resource(b"", b"orders:42").is_ok());
/// let e = tokio_redlock::check_resource(b"", b"{orders:42}:fence").unwrap_err();
/// assert!(e.is_reserved_key());
/// assert!(tokio_redlock::check_resource(b"", b"{jobs}:permit:3").is_err());
/// assert!(tokio_redlock::check_resource(b"app:", b"orders:42:holder").is_ok());
/// assert!(tokio_redlock::check_resource(b"app:", b"").unwrap_err().is_invalid_input());
/// assert!(tokio_redlock::check_resource(b"{app}:", b"orders:42:holder").is_err());
/// ```
pub fn check_resource(prefix: &[u8], resource: &[u8]) -> Result<(), LockError> {
    check_lock_key(prefix, &Arc::from(resource))
}

/// Refuses an empty resource name ([`LockError::InvalidArgument`]) before any request, for
/// the acquisitions and the queries alike: most likely an unset variable, and two callers
/// with one would share the key of nothing.
pub(crate) fn check_not_empty(resource: &[u8]) -> Result<(), LockError> {
    if resource.is_empty() {
        return Err(LockError::InvalidArgument(
            "the resource name is empty: name what the lock protects".to_owned(),
        ));
    }
    Ok(())
}

/// Refuses an empty resource name ([`LockError::InvalidArgument`]) and a resource whose lock
/// key is a helper key of another resource ([`LockError::ReservedKey`]), before any
/// request: a lock on a fencing counter would break that resource's fenced acquisitions
/// (and wait for a counter that never expires); a lock on a holder record would change the
/// holder it shows; a lock on a semaphore's slot would take a permit behind its users'
/// backs.
pub(crate) fn check_lock_key(prefix: &[u8], resource: &Arc<[u8]>) -> Result<(), LockError> {
    check_not_empty(resource)?;
    let key = lock_key(prefix, resource);
    match helper_owner(&key) {
        Some((owner, helper)) => Err(LockError::ReservedKey {
            resource: Arc::clone(resource),
            helper_of: owner.into(),
            helper,
        }),
        None => Ok(()),
    }
}

/// The key whose helper keys `key`'s helper keys are, when they are another key's: `key` is
/// `{Y}` for a `Y` without a hash tag, so `helper_key(key, s)` = `{Y}:s` = `helper_key(Y, s)`.
/// Resources on such a pair share their fencing counter and holder record harmlessly, but a
/// read-write lock's readers' set and writer intent must be one resource's alone.
pub(crate) fn helper_twin(key: &[u8]) -> Option<&[u8]> {
    let inner = key.strip_prefix(b"{")?.strip_suffix(b"}")?;
    (has_hash_tag(key) && !has_hash_tag(inner)).then_some(inner)
}

/// Whether Redis Cluster would hash only part of this key: a `{` followed later by a `}`
/// with at least one byte between them (the cluster spec's "hash tags").
pub(crate) fn has_hash_tag(key: &[u8]) -> bool {
    let Some(open) = key.iter().position(|b| *b == b'{') else {
        return false;
    };
    let rest = key.get(open.saturating_add(1)..).unwrap_or_default();
    matches!(rest.iter().position(|b| *b == b'}'), Some(close) if close > 0)
}

/// A fresh lock token: 128 bits from `rand`'s thread-local CSPRNG (ChaCha, reseeded from the
/// OS), hex-encoded. One per acquisition attempt, never reused.
pub(crate) fn new_token() -> Arc<str> {
    let bits: u128 = rand::random();
    format!("{bits:032x}").into()
}

/// At most this many characters of a resource name appear in messages and logs.
const SHOWN_CHARS: usize = 64;

/// A resource name made safe to print: invalid UTF-8 and control characters (escape
/// sequences included) and Unicode bidi controls are escaped, and long names are cut at 64
/// characters with the full length noted. The library's errors and logs show resource names
/// this way; applications that print names from untrusted input can do the same.
///
/// # Examples
///
/// ```
/// use tokio_redlock::Printable;
///
/// assert_eq!(Printable::new(b"orders:42").to_string(), "orders:42");
/// assert_eq!(Printable::new(b"x\x1b]0;title\x07").to_string(), "x\\u{1b}]0;title\\u{7}");
/// assert_eq!(Printable::new(b"bad\xff").to_string(), "bad\\xff");
/// ```
#[derive(Clone, Copy)]
pub struct Printable<'a>(pub(crate) &'a [u8]);

/// As `Display`, in quotes: a `Debug` of a huge or hostile name stays short and inert.
impl fmt::Debug for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl<'a> Printable<'a> {
    /// Shows `name` (any bytes) escaped and cut as described above.
    pub fn new(name: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        Self(name.as_ref())
    }
}

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = 0usize;
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                if shown == SHOWN_CHARS {
                    return write!(f, "…({} bytes)", self.0.len());
                }
                if c.is_control() || is_bidi_control(c) {
                    write!(f, "{}", c.escape_default())?;
                } else {
                    write!(f, "{c}")?;
                }
                shown = shown.saturating_add(1);
            }
            for b in chunk.invalid() {
                if shown == SHOWN_CHARS {
                    return write!(f, "…({} bytes)", self.0.len());
                }
                write!(f, "\\x{b:02x}")?;
                shown = shown.saturating_add(1);
            }
        }
        Ok(())
    }
}

/// Characters that reorder text on a terminal (Unicode bidi controls): shown escaped, so a
/// resource name cannot disguise a message.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The first 8 characters of a token, enough to tell holders apart in logs without letting a
/// reader of the logs release or extend the lock.
pub(crate) fn token_prefix(token: &[u8]) -> Printable<'_> {
    Printable(token.get(..8).unwrap_or(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_key_is_prefix_then_resource_bytes() {
        assert_eq!(&*lock_key(b"", b"orders:42"), b"orders:42");
        assert_eq!(&*lock_key(b"app:", b"\xff\x00r"), b"app:\xff\x00r");
    }

    #[test]
    fn fence_key_shares_the_hash_slot() {
        assert_eq!(&*fence_key(b"orders:42"), b"{orders:42}:fence");
        assert_eq!(&*fence_key(b"a:b{c}d"), b"a:b{c}d:fence");
        // "{}" is not a hash tag: the whole key is hashed, so we add our own braces.
        assert_eq!(&*fence_key(b"x{}y"), b"{x{}y}:fence");
        assert!(!has_hash_tag(b"no}tag{"));
    }

    #[test]
    fn no_lock_key_can_be_a_helper_key() {
        for owner in [&b"fc"[..], b"a:b{c}d", b"x{}y", b"", b"}:fence", b"a{b}c}"] {
            for (helper, kind) in [
                (fence_key(owner), "fencing counter"),
                (holder_key(owner), "holder record"),
            ] {
                assert_eq!(helper_owner(&helper), Some((owner, kind)), "{helper:?}");
                let resource: Arc<[u8]> = Arc::clone(&helper);
                assert!(matches!(
                    check_lock_key(b"", &resource),
                    Err(LockError::ReservedKey { helper_of, helper, .. })
                        if &*helper_of == owner && helper == kind
                ));
            }
        }
        // With a prefix, the lock key (prefix + resource) is what is checked.
        let resource: Arc<[u8]> = Arc::from(&b"{x}:fence"[..]);
        assert!(
            check_lock_key(b"app:", &resource).is_err(),
            "app:{{x}}:fence is app:{{x}}'s"
        );
        let resource: Arc<[u8]> = Arc::from(&b"x}:fence"[..]);
        assert!(check_lock_key(b"{app:", &resource).is_err());
        for fine in [
            &b"fc"[..],
            b"fence",
            b":fence",
            b"{fc}:fence2",
            b"fc:fence",
            b"x{}:fence",
            b"holder",
            b"{fc}:holders",
            b"fc:holder",
        ] {
            assert_eq!(helper_owner(fine), None, "{fine:?}");
        }
    }

    #[test]
    fn semaphore_helper_keys_are_reserved() {
        for owner in [&b"jobs"[..], b"a{b}c"] {
            for suffix in [&b"permits"[..], b"permit:0", b"permit:255"] {
                let helper = helper_key(owner, suffix);
                assert_eq!(
                    helper_owner(&helper).map(|(o, _)| o),
                    Some(owner),
                    "{helper:?}"
                );
                let resource: Arc<[u8]> = Arc::clone(&helper);
                assert!(check_lock_key(b"", &resource).is_err());
            }
        }
        for suffix in [&b"readers"[..], b"wintent"] {
            let helper = helper_key(b"doc", suffix);
            assert_eq!(helper_owner(&helper).map(|(o, _)| o), Some(&b"doc"[..]));
        }
        let lease = reader_key(b"doc", &new_token());
        assert_eq!(helper_owner(&lease), Some((&b"doc"[..], "reader lease")));
        assert!(lease.starts_with(&reader_prefix(b"doc")));
        assert_eq!(helper_owner(b"{doc}:reader:abc"), None);
        for fine in [
            &b"{jobs}:permit:"[..],
            b"{jobs}:permit:x",
            b"{jobs}:permitted",
            b"jobs:permits",
        ] {
            assert_eq!(helper_owner(fine), None, "{fine:?}");
        }
    }

    #[test]
    fn slots_follow_the_cluster_spec() {
        // Values from the cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(
            crc16::State::<crc16::XMODEM>::calculate(b"123456789"),
            0x31C3
        );
        assert_eq!(slot(b"foo"), 12_182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_ne!(slot(b"foo{}{bar}"), slot(b"bar"));
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
        assert_eq!(slot(b"foo{bar}{zap}"), slot(b"bar"));
        for key in [&b"orders:42"[..], b"a{b}c", b"{x}", b"\xff\x00"] {
            assert_eq!(slot(&fence_key(key)), slot(key), "{key:?}");
            assert_eq!(slot(&sharded_release_channel(key)), slot(key), "{key:?}");
            assert_eq!(channel_lock_key(&release_channel(key)), Some(key));
            assert!(check_one_slot(&[key, &fence_key(key)]).is_ok(), "{key:?}");
        }
        // A `}` without a tag: braces cannot make the whole key a tag.
        let key = &b"a}b"[..];
        let err = check_one_slot(&[key, &fence_key(key)]);
        assert!(
            matches!(&err, Err(LockError::CrossSlot { slots }) if slots.len() == 2),
            "{err:?}"
        );
    }

    #[test]
    fn tokens_are_128_bit_hex_and_distinct() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn printable_escapes_and_truncates() {
        assert_eq!(Printable(b"ok\xff\x00").to_string(), "ok\\xff\\u{0}");
        assert_eq!(
            Printable("a\u{202E}b".as_bytes()).to_string(),
            "a\\u{202e}b"
        );
        let long = vec![b'a'; 70_000];
        let shown = Printable(&long).to_string();
        assert!(shown.starts_with(&"a".repeat(64)));
        assert!(shown.ends_with("…(70000 bytes)"));
        assert_eq!(token_prefix(b"0123456789abcdef").to_string(), "01234567");
    }

    #[test]
    fn a_braced_name_has_the_helper_keys_of_the_name() {
        for (key, twin) in [
            (&b"{a}"[..], Some(&b"a"[..])),
            (b"{a:b}", Some(b"a:b")),
            (b"{a}}", Some(b"a}")),
            (b"a", None),
            (b"{}", None),
            (b"{a}b", None),
            (b"{{a}}", None),
            (b"{a{b}c}", None),
        ] {
            assert_eq!(helper_twin(key), twin, "{key:?}");
            if let Some(twin) = twin {
                assert_eq!(helper_key(key, b"readers"), helper_key(twin, b"readers"));
            }
        }
    }
}

//! The contenders behind one interface: tokio-redlock, the two hand-written floors, and
//! rslock (feature `compare`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Script};
use tokio_redlock::{Lock, LockManager};

use crate::BenchError;
use crate::scenario::{Contender, MULTI_RESOURCES, SEMAPHORE_PERMITS, Scenario};

/// Lock TTL in every scenario.
pub(crate) const TTL: Duration = Duration::from_secs(10);
/// Per-master request budget of the floors: tokio-redlock's default node timeout, so both
/// give up on a frozen master after the same time.
pub(crate) const FLOOR_TIMEOUT: Duration = tokio_redlock::DEFAULT_NODE_TIMEOUT;
/// Upper bound of the floors' random retry sleep in S3.
const FLOOR_RETRY_MAX_US: u64 = 10_000;

/// Compare-and-delete, the Redlock spec's release script.
const RELEASE_LUA: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
/// `SET NX PX` plus the fencing counter's `INCR` in one round trip (the floor of S5).
const ACQUIRE_FENCED_LUA: &str = r"if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return redis.call('INCR', KEYS[2]) end return 0";

/// The floor of `multi3_3m`: every key free, then all set (one token, one TTL); 1 or 0.
const ACQUIRE_MULTI_LUA: &str = r"for i = 1, #KEYS do if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end end
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2]) end
return 1";
/// Compare-and-delete of every key given; how many were deleted.
const RELEASE_MULTI_LUA: &str = r"local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then n = n + redis.call('DEL', KEYS[i]) end
end
return n";
/// The floor of `read_3m` (KEYS: the lock key, the readers' set, this reader's lease key):
/// refused while the key holds a token, else the lease, the set and the shared marker with
/// the longest TTL.
const ACQUIRE_READ_LUA: &str = r"local v = redis.call('GET', KEYS[1])
if v and v ~= 'redlock:shared' then return 0 end
redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
local keep = math.max(tonumber(ARGV[2]), redis.call('PTTL', KEYS[1]))
redis.call('SET', KEYS[1], 'redlock:shared', 'PX', keep)
redis.call('PEXPIRE', KEYS[2], keep)
return 1";
/// A reader leaves: out of the set, its lease deleted, the marker too when it was the last.
const RELEASE_READ_LUA: &str = r"local was = redis.call('SREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
if redis.call('SCARD', KEYS[2]) == 0 and redis.call('GET', KEYS[1]) == 'redlock:shared' then
  redis.call('DEL', KEYS[1], KEYS[2])
end
return was";
/// The floor of `permit_3m` (KEYS: the slots in the attempt's rotation): the first slot
/// `SET NX PX` grants, 1-based; 0 when every slot is taken.
const ACQUIRE_PERMIT_LUA: &str = r"for j = 1, #KEYS do
  if redis.call('SET', KEYS[j], ARGV[1], 'NX', 'PX', ARGV[2]) then return j end
end
return 0";

/// What one cycle locks: the wire shape of the scenario's primitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// One key (`SET NX PX`, or the fenced script).
    Mutex,
    /// [`MULTI_RESOURCES`] keys in one script per master.
    Multi,
    /// A reader: the lock key, the readers' set and a lease key, in one script.
    Read,
    /// One of [`SEMAPHORE_PERMITS`] slot keys, in one script.
    Permit,
}

impl Shape {
    fn of(scenario: Scenario) -> Self {
        match scenario {
            Scenario::MultiThree => Self::Multi,
            Scenario::Reader => Self::Read,
            Scenario::Permit => Self::Permit,
            // A writer's wire work, nobody waiting, is the mutex's.
            _ => Self::Mutex,
        }
    }
}

/// The `i`-th of the resources a `multi3_3m` cycle locks together.
fn member(resource: &str, i: usize) -> String {
    format!("{resource}:{i}")
}

/// A contender ready to run cycles.
pub(crate) struct Client {
    kind: Kind,
    scenario: Scenario,
}

enum Kind {
    Ours(LockManager),
    Floor(Arc<Floor>),
    #[cfg(feature = "compare")]
    Rslock(rslock::LockManager),
}

/// A lock held by some contender.
pub(crate) enum Held {
    Ours(Lock),
    Floor(FloorLock),
    #[cfg(feature = "compare")]
    Rslock(rslock::Lock),
}

impl Client {
    /// Sets up `contender` for `scenario` over `urls` (connections open on first use or here).
    pub(crate) async fn new(
        contender: Contender,
        scenario: Scenario,
        urls: &[String],
    ) -> Result<Self, BenchError> {
        let fencing = scenario == Scenario::S5 && contender != Contender::OursNoFencing;
        let kind = match contender {
            Contender::Floor | Contender::QuorumFloor => Kind::Floor(Arc::new(
                Floor::connect(
                    urls,
                    contender == Contender::QuorumFloor,
                    fencing,
                    Shape::of(scenario),
                )
                .await?,
            )),
            Contender::Ours
            | Contender::OursPoll10ms
            | Contender::OursPollDefault
            | Contender::OursNoFencing => {
                let mut builder = LockManager::builder()
                    .servers(urls.iter().cloned())
                    .ttl(TTL)
                    .fencing(fencing);
                if matches!(
                    contender,
                    Contender::OursPoll10ms | Contender::OursPollDefault
                ) {
                    builder = builder.notifications(false);
                }
                if contender == Contender::OursPoll10ms {
                    builder = builder
                        .retry_delay(Duration::from_millis(10))
                        .retry_jitter(Duration::from_millis(5));
                }
                Kind::Ours(
                    builder
                        .build()
                        .map_err(|e| BenchError::Setup(format!("tokio-redlock: {e}")))?,
                )
            }
            Contender::Rslock | Contender::Rslock10ms => rslock_kind(contender, urls)?,
        };
        Ok(Self { kind, scenario })
    }

    /// One acquisition attempt as the library's plain call makes it (its own retries
    /// included), then the release.
    pub(crate) async fn cycle(&self, resource: &str) -> Result<(), String> {
        match &self.kind {
            Kind::Ours(m) => {
                let mut lock = match self.scenario {
                    Scenario::MultiThree => {
                        m.lock_all((0..MULTI_RESOURCES).map(|i| member(resource, i)))
                            .await
                    }
                    Scenario::Reader => m.read_lock(resource).await,
                    Scenario::Writer => m.write_lock(resource).await,
                    Scenario::Permit => m.semaphore(resource, SEMAPHORE_PERMITS).lock().await,
                    _ => m.lock(resource).await,
                }
                .map_err(|e| e.to_string())?;
                m.unlock(&mut lock).await.map_err(|e| e.to_string())
            }
            Kind::Floor(f) => {
                let lock = f.try_lock(resource).await?;
                f.release(&lock).await
            }
            #[cfg(feature = "compare")]
            Kind::Rslock(m) => {
                let lock = m
                    .lock(resource, TTL)
                    .await
                    .map_err(|e| format!("rslock: {e}"))?;
                m.unlock(&lock).await;
                Ok(())
            }
        }
    }

    /// Waits until `resource` is acquired, retrying as the contender does. An `Err` is a
    /// failure other than "held elsewhere" (the caller counts it and asks again).
    pub(crate) async fn lock_wait(&self, resource: &str) -> Result<Held, String> {
        match &self.kind {
            Kind::Ours(m) => m
                .lock(resource)
                .wait_forever()
                .await
                .map(Held::Ours)
                .map_err(|e| e.to_string()),
            Kind::Floor(f) => f.lock_wait(resource).await.map(Held::Floor),
            #[cfg(feature = "compare")]
            Kind::Rslock(m) => m
                .acquire_no_guard(resource, TTL)
                .await
                .map(Held::Rslock)
                .map_err(|e| format!("rslock: {e}")),
        }
    }

    /// Releases a lock from [`lock_wait`](Self::lock_wait).
    pub(crate) async fn unlock(&self, held: Held) -> Result<(), String> {
        match (&self.kind, held) {
            (Kind::Ours(m), Held::Ours(mut lock)) => {
                m.unlock(&mut lock).await.map_err(|e| e.to_string())
            }
            (Kind::Floor(f), Held::Floor(lock)) => f.release(&lock).await,
            #[cfg(feature = "compare")]
            (Kind::Rslock(m), Held::Rslock(lock)) => {
                m.unlock(&lock).await;
                Ok(())
            }
            _ => Err("lock of another contender".into()),
        }
    }

    /// Closes the contender (waits for tokio-redlock's background cleanups).
    pub(crate) async fn close(self) {
        if let Kind::Ours(m) = self.kind {
            m.close().await;
        }
    }
}

#[cfg(feature = "compare")]
fn rslock_kind(contender: Contender, urls: &[String]) -> Result<Kind, BenchError> {
    // `rslock::LockManager::new` unwraps the URL: check it first.
    let clients = urls
        .iter()
        .map(|u| redis::Client::open(u.as_str()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BenchError::Setup(format!("rslock: {e}")))?;
    let mut manager = rslock::LockManager::from_clients(clients);
    if contender == Contender::Rslock10ms {
        manager.set_retry(3, Duration::from_millis(10));
    }
    Ok(Kind::Rslock(manager))
}

#[cfg(not(feature = "compare"))]
fn rslock_kind(_: Contender, _: &[String]) -> Result<Kind, BenchError> {
    Err(BenchError::Setup(
        "rslock needs the `compare` feature of redlock-bench".into(),
    ))
}

/// The Redlock wire work by hand: one multiplexed connection per master.
pub(crate) struct Floor {
    conns: Vec<MultiplexedConnection>,
    quorum: usize,
    /// Quorum floor: each step returns as soon as a quorum replied.
    early: bool,
    fencing: bool,
    shape: Shape,
    ttl_ms: u64,
    release: Arc<Script>,
    acquire_fenced: Arc<Script>,
    acquire_multi: Arc<Script>,
    release_multi: Arc<Script>,
    acquire_read: Arc<Script>,
    release_read: Arc<Script>,
    acquire_permit: Arc<Script>,
}

/// A floor lock: the keys its release takes (per shape), and our token.
pub(crate) struct FloorLock {
    keys: Arc<[String]>,
    token: String,
}

/// One master's answer to the acquire step.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// Granted; for a permit, the slot (index into the attempt's key list), else 0.
    Granted(usize),
    Refused,
    /// Error or timeout: the key may or may not be set.
    Unknown,
    /// Not heard from when the quorum floor's step ended (its answer is handled in the
    /// background): the key may or may not be set.
    Pending,
}

impl Floor {
    async fn connect(
        urls: &[String],
        early: bool,
        fencing: bool,
        shape: Shape,
    ) -> Result<Self, BenchError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            // Bounded per request below, as tokio-redlock does.
            .set_response_timeout(None);
        let mut conns = Vec::with_capacity(urls.len());
        for url in urls {
            let client =
                redis::Client::open(url.as_str()).map_err(|e| BenchError::Setup(e.to_string()))?;
            let conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|e| BenchError::Setup(format!("{url}: {e}")))?;
            conns.push(conn);
        }
        let scripts = [
            RELEASE_LUA,
            ACQUIRE_FENCED_LUA,
            ACQUIRE_MULTI_LUA,
            RELEASE_MULTI_LUA,
            ACQUIRE_READ_LUA,
            RELEASE_READ_LUA,
            ACQUIRE_PERMIT_LUA,
        ]
        .map(|lua| Arc::new(Script::new(lua)));
        // Load the scripts up front so no measured call pays NOSCRIPT.
        for conn in &mut conns {
            for script in &scripts {
                script
                    .load_async(conn)
                    .await
                    .map_err(|e| BenchError::Setup(format!("SCRIPT LOAD: {e}")))?;
            }
        }
        let [
            release,
            acquire_fenced,
            acquire_multi,
            release_multi,
            acquire_read,
            release_read,
            acquire_permit,
        ] = scripts;
        Ok(Self {
            quorum: urls.len().checked_div(2).unwrap_or(0).saturating_add(1),
            conns,
            early,
            fencing,
            shape,
            ttl_ms: u64::try_from(TTL.as_millis()).unwrap_or(u64::MAX),
            release,
            acquire_fenced,
            acquire_multi,
            release_multi,
            acquire_read,
            release_read,
            acquire_permit,
        })
    }

    /// The quorum floor's end of a step: the requests still pending are driven to their
    /// end in a background task. Dropping them instead would not do: redis-rs skips a
    /// request whose future is dropped before the connection's driver took it, so a
    /// release could vanish and leave the key until its TTL. Every request was polled once
    /// already, so it sits in its connection's queue ahead of any later request.
    fn finish_in_background<F>(mut pending: FuturesUnordered<F>)
    where
        F: Future + Send + 'static,
        F::Output: Send,
    {
        if !pending.is_empty() {
            tokio::spawn(async move { while pending.next().await.is_some() {} });
        }
    }

    /// The keys one attempt on `resource` works on, per shape: the key (mutex); every
    /// member's key (multi); the lock key, the readers' set and the lease key (read); the
    /// slot keys in a random rotation (permit).
    fn keys(&self, resource: &str, token: &str) -> Vec<String> {
        match self.shape {
            Shape::Mutex => vec![resource.to_owned()],
            Shape::Multi => (0..MULTI_RESOURCES).map(|i| member(resource, i)).collect(),
            Shape::Read => vec![
                resource.to_owned(),
                format!("{{{resource}}}:readers"),
                format!("{{{resource}}}:reader:{token}"),
            ],
            Shape::Permit => {
                let k = SEMAPHORE_PERMITS;
                let rotation = rand::random_range(0..k);
                (0..k)
                    .map(|j| {
                        let i = rotation.saturating_add(j).checked_rem(k).unwrap_or(0);
                        format!("{{{resource}}}:permit:{i}")
                    })
                    .collect()
            }
        }
    }

    /// One master's acquire request.
    async fn acquire_one(
        &self,
        mut conn: MultiplexedConnection,
        keys: Arc<[String]>,
        token: Arc<str>,
    ) -> Reply {
        let ttl_ms = self.ttl_ms;
        let script = match self.shape {
            Shape::Mutex if !self.fencing => {
                let Some(key) = keys.first() else {
                    return Reply::Unknown;
                };
                let mut cmd = redis::cmd("SET");
                cmd.arg(key).arg(&*token).arg("NX").arg("PX").arg(ttl_ms);
                let r = tokio::time::timeout(
                    FLOOR_TIMEOUT,
                    cmd.query_async::<Option<String>>(&mut conn),
                )
                .await;
                return match r {
                    Ok(Ok(Some(_))) => Reply::Granted(0),
                    Ok(Ok(None)) => Reply::Refused,
                    _ => Reply::Unknown,
                };
            }
            Shape::Mutex => &self.acquire_fenced,
            Shape::Multi => &self.acquire_multi,
            Shape::Read => &self.acquire_read,
            Shape::Permit => &self.acquire_permit,
        };
        let mut call = script.prepare_invoke();
        for key in keys.iter() {
            call.key(key);
        }
        if self.shape == Shape::Mutex {
            // The fenced acquire: the counter key after the lock key.
            let fence = keys
                .first()
                .map(|k| format!("{k}:fence"))
                .unwrap_or_default();
            call.key(fence);
        }
        call.arg(&*token).arg(ttl_ms);
        let r = tokio::time::timeout(FLOOR_TIMEOUT, call.invoke_async::<i64>(&mut conn)).await;
        match r {
            Ok(Ok(n)) if n > 0 => Reply::Granted(if self.shape == Shape::Permit {
                usize::try_from(n.saturating_sub(1)).unwrap_or(0)
            } else {
                0
            }),
            Ok(Ok(_)) => Reply::Refused,
            _ => Reply::Unknown,
        }
    }

    /// One acquire step on every master in parallel. Returns the slot (index into `keys`;
    /// 0 but for permits) a quorum granted, if any, and each master's answer as far as it
    /// came.
    async fn acquire(
        self: &Arc<Self>,
        keys: &Arc<[String]>,
        token: &str,
    ) -> (Option<usize>, Vec<Reply>) {
        let token: Arc<str> = token.into();
        let mut pending: FuturesUnordered<_> = self
            .conns
            .iter()
            .enumerate()
            .map(|(i, conn)| {
                let (this, conn) = (Arc::clone(self), conn.clone());
                let (keys, token) = (Arc::clone(keys), Arc::clone(&token));
                async move { (i, this.acquire_one(conn, keys, token).await) }
            })
            .collect();
        let n = self.conns.len();
        // Masters not heard from are `Pending` (they may still grant).
        let mut replies = vec![Reply::Pending; n];
        let mut granted = vec![0usize; keys.len().max(1)];
        let mut refused = 0usize;
        let mut won = None;
        while let Some((i, reply)) = pending.next().await {
            if let Some(slot) = replies.get_mut(i) {
                *slot = reply;
            }
            match reply {
                Reply::Granted(s) => {
                    if let Some(count) = granted.get_mut(s) {
                        *count = count.saturating_add(1);
                        if *count >= self.quorum {
                            won = Some(s);
                        }
                    }
                }
                Reply::Refused | Reply::Unknown | Reply::Pending => {
                    refused = refused.saturating_add(1);
                }
            }
            let decided = won.is_some() || n.saturating_sub(refused) < self.quorum;
            if self.early && decided {
                match won {
                    // A permit won: a master still to answer gives back the other slot it
                    // may grant, in the background, as the library does.
                    Some(slot) if self.shape == Shape::Permit && !pending.is_empty() => {
                        let this = Arc::clone(self);
                        let rest: Arc<[String]> = keys
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| *i != slot)
                            .map(|(_, k)| k.clone())
                            .collect();
                        tokio::spawn(async move {
                            while let Some((i, reply)) = pending.next().await {
                                let other = match reply {
                                    Reply::Granted(s) => s != slot,
                                    Reply::Unknown | Reply::Pending => true,
                                    Reply::Refused => false,
                                };
                                if let (true, Some(conn)) = (other, this.conns.get(i)) {
                                    let (rest, token) = (Arc::clone(&rest), Arc::clone(&token));
                                    this.release_one(conn.clone(), rest, token).await;
                                }
                            }
                        });
                    }
                    _ => Self::finish_in_background(pending),
                }
                break;
            }
        }
        (won, replies)
    }

    /// One master's release of `keys` (per shape; a permit releases the slots given).
    async fn release_one(
        &self,
        mut conn: MultiplexedConnection,
        keys: Arc<[String]>,
        token: Arc<str>,
    ) -> bool {
        let script = match self.shape {
            Shape::Mutex => &self.release,
            Shape::Read => &self.release_read,
            Shape::Permit if keys.len() == 1 => &self.release,
            Shape::Multi | Shape::Permit => &self.release_multi,
        };
        let mut call = script.prepare_invoke();
        for key in keys.iter() {
            call.key(key);
        }
        call.arg(&*token);
        matches!(
            tokio::time::timeout(FLOOR_TIMEOUT, call.invoke_async::<i64>(&mut conn)).await,
            Ok(Ok(n)) if n >= 1
        )
    }

    /// One release step: `keys` released with our token on the masters `ask` selects, in
    /// parallel. Returns how many deleted something.
    async fn release_on(
        self: &Arc<Self>,
        keys: &Arc<[String]>,
        token: &str,
        ask: impl Fn(usize) -> bool,
    ) -> usize {
        let token: Arc<str> = token.into();
        let mut pending: FuturesUnordered<_> = self
            .conns
            .iter()
            .enumerate()
            .filter(|(i, _)| ask(*i))
            .map(|(_, conn)| {
                let (this, conn) = (Arc::clone(self), conn.clone());
                let (keys, token) = (Arc::clone(keys), Arc::clone(&token));
                async move { this.release_one(conn, keys, token).await }
            })
            .collect();
        let asked = pending.len();
        let (mut deleted, mut replied) = (0usize, 0usize);
        while let Some(done) = pending.next().await {
            replied = replied.saturating_add(1);
            if done {
                deleted = deleted.saturating_add(1);
            }
            let failed = replied.saturating_sub(deleted);
            let decided = deleted >= self.quorum || failed > asked.saturating_sub(self.quorum);
            if self.early && decided {
                Self::finish_in_background(pending);
                break;
            }
        }
        deleted
    }

    /// One attempt; a lost attempt releases where a key may have been set (a won permit
    /// attempt also gives back the other slots some masters granted).
    async fn attempt(self: &Arc<Self>, resource: &str) -> Result<Option<FloorLock>, String> {
        let token = format!("{:032x}", rand::random::<u128>());
        let keys: Arc<[String]> = self.keys(resource, &token).into();
        let (won, replies) = self.acquire(&keys, &token).await;
        if let Some(slot) = won {
            let held: Arc<[String]> = if self.shape == Shape::Permit {
                // (`Pending` masters are handled in the background by `acquire`.)
                let others = |i: usize| match replies.get(i) {
                    Some(Reply::Unknown) => true,
                    Some(Reply::Granted(s)) => *s != slot,
                    _ => false,
                };
                if (0..replies.len()).any(others) {
                    let rest: Arc<[String]> = keys
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i != slot)
                        .map(|(_, k)| k.clone())
                        .collect();
                    self.release_on(&rest, &token, others).await;
                }
                keys.get(slot).cloned().into_iter().collect()
            } else {
                keys
            };
            return Ok(Some(FloorLock { keys: held, token }));
        }
        let maybe_set = |i: usize| replies.get(i).is_some_and(|r| *r != Reply::Refused);
        if (0..replies.len()).any(maybe_set) {
            self.release_on(&keys, &token, maybe_set).await;
        }
        Ok(None)
    }

    async fn try_lock(self: &Arc<Self>, resource: &str) -> Result<FloorLock, String> {
        self.attempt(resource)
            .await?
            .ok_or_else(|| "floor: no quorum".to_owned())
    }

    async fn lock_wait(self: &Arc<Self>, resource: &str) -> Result<FloorLock, String> {
        loop {
            if let Some(lock) = self.attempt(resource).await? {
                return Ok(lock);
            }
            let sleep = rand::random_range(0..FLOOR_RETRY_MAX_US);
            tokio::time::sleep(Duration::from_micros(sleep)).await;
        }
    }

    async fn release(self: &Arc<Self>, lock: &FloorLock) -> Result<(), String> {
        let deleted = self.release_on(&lock.keys, &lock.token, |_| true).await;
        if deleted >= self.quorum {
            Ok(())
        } else {
            Err(format!("floor: released on {deleted} masters only"))
        }
    }
}

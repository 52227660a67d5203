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
use crate::scenario::{Contender, Scenario};

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

/// A contender ready to run cycles.
pub(crate) struct Client {
    kind: Kind,
}

enum Kind {
    Ours(LockManager),
    Floor(Floor),
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
            Contender::Floor | Contender::QuorumFloor => Kind::Floor(
                Floor::connect(urls, contender == Contender::QuorumFloor, fencing).await?,
            ),
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
        Ok(Self { kind })
    }

    /// One acquisition attempt as the library's plain call makes it (its own retries
    /// included), then the release.
    pub(crate) async fn cycle(&self, resource: &str) -> Result<(), String> {
        match &self.kind {
            Kind::Ours(m) => {
                let mut lock = m.lock(resource).await.map_err(|e| e.to_string())?;
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
    ttl_ms: u64,
    release: Arc<Script>,
    acquire_fenced: Arc<Script>,
}

/// A floor lock: the key and our token.
pub(crate) struct FloorLock {
    key: String,
    token: String,
}

/// One master's answer to the acquire step.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reply {
    Granted,
    Refused,
    /// Error or timeout: the key may or may not be set.
    Unknown,
}

impl Floor {
    async fn connect(urls: &[String], early: bool, fencing: bool) -> Result<Self, BenchError> {
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
        let release = Script::new(RELEASE_LUA);
        let acquire_fenced = Script::new(ACQUIRE_FENCED_LUA);
        // Load the scripts up front so no measured call pays NOSCRIPT.
        for conn in &mut conns {
            for script in [&release, &acquire_fenced] {
                script
                    .load_async(conn)
                    .await
                    .map_err(|e| BenchError::Setup(format!("SCRIPT LOAD: {e}")))?;
            }
        }
        Ok(Self {
            quorum: urls.len().checked_div(2).unwrap_or(0).saturating_add(1),
            conns,
            early,
            fencing,
            ttl_ms: u64::try_from(TTL.as_millis()).unwrap_or(u64::MAX),
            release: Arc::new(release),
            acquire_fenced: Arc::new(acquire_fenced),
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

    /// One acquire step: `SET NX PX` (or the fenced script) on every master in parallel.
    /// Returns whether a quorum granted, and each master's answer as far as it came.
    async fn acquire(&self, key: &str, token: &str) -> (bool, Vec<Reply>) {
        let key: Arc<str> = key.into();
        let token: Arc<str> = token.into();
        let fence_key: Arc<str> = format!("{key}:fence").into();
        let mut pending: FuturesUnordered<_> = self
            .conns
            .iter()
            .enumerate()
            .map(|(i, conn)| {
                let mut conn = conn.clone();
                let (key, token, fence_key) =
                    (Arc::clone(&key), Arc::clone(&token), Arc::clone(&fence_key));
                let (fencing, ttl_ms) = (self.fencing, self.ttl_ms);
                let script = Arc::clone(&self.acquire_fenced);
                async move {
                    let reply = if fencing {
                        let mut call = script.key(&*key);
                        call.key(&*fence_key).arg(&*token).arg(ttl_ms);
                        let r = tokio::time::timeout(
                            FLOOR_TIMEOUT,
                            call.invoke_async::<i64>(&mut conn),
                        )
                        .await;
                        match r {
                            Ok(Ok(n)) if n > 0 => Reply::Granted,
                            Ok(Ok(_)) => Reply::Refused,
                            _ => Reply::Unknown,
                        }
                    } else {
                        let mut cmd = redis::cmd("SET");
                        cmd.arg(&*key).arg(&*token).arg("NX").arg("PX").arg(ttl_ms);
                        let r = tokio::time::timeout(
                            FLOOR_TIMEOUT,
                            cmd.query_async::<Option<String>>(&mut conn),
                        )
                        .await;
                        match r {
                            Ok(Ok(Some(_))) => Reply::Granted,
                            Ok(Ok(None)) => Reply::Refused,
                            _ => Reply::Unknown,
                        }
                    };
                    (i, reply)
                }
            })
            .collect();
        let n = self.conns.len();
        // Masters not heard from count as `Unknown` (they may still grant).
        let mut replies = vec![Reply::Unknown; n];
        let (mut granted, mut refused) = (0usize, 0usize);
        while let Some((i, reply)) = pending.next().await {
            if let Some(slot) = replies.get_mut(i) {
                *slot = reply;
            }
            match reply {
                Reply::Granted => granted = granted.saturating_add(1),
                Reply::Refused | Reply::Unknown => refused = refused.saturating_add(1),
            }
            let decided = granted >= self.quorum || n.saturating_sub(refused) < self.quorum;
            if self.early && decided {
                Self::finish_in_background(pending);
                break;
            }
        }
        (granted >= self.quorum, replies)
    }

    /// One release step: compare-and-delete on the masters `ask` selects, in parallel.
    /// Returns how many deleted the key.
    async fn release_on(&self, key: &str, token: &str, ask: impl Fn(usize) -> bool) -> usize {
        let key: Arc<str> = key.into();
        let token: Arc<str> = token.into();
        let mut pending: FuturesUnordered<_> = self
            .conns
            .iter()
            .enumerate()
            .filter(|(i, _)| ask(*i))
            .map(|(_, conn)| {
                let mut conn = conn.clone();
                let (key, token) = (Arc::clone(&key), Arc::clone(&token));
                let script = Arc::clone(&self.release);
                async move {
                    let mut call = script.key(&*key);
                    call.arg(&*token);
                    matches!(
                        tokio::time::timeout(FLOOR_TIMEOUT, call.invoke_async::<i64>(&mut conn))
                            .await,
                        Ok(Ok(1))
                    )
                }
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

    /// One attempt; a lost attempt releases where the key may have been set.
    async fn attempt(&self, key: &str) -> Result<Option<FloorLock>, String> {
        let token = format!("{:032x}", rand::random::<u128>());
        let (won, replies) = self.acquire(key, &token).await;
        if won {
            return Ok(Some(FloorLock {
                key: key.to_owned(),
                token,
            }));
        }
        let maybe_set = |i: usize| replies.get(i).is_some_and(|r| *r != Reply::Refused);
        if (0..replies.len()).any(maybe_set) {
            self.release_on(key, &token, maybe_set).await;
        }
        Ok(None)
    }

    async fn try_lock(&self, key: &str) -> Result<FloorLock, String> {
        self.attempt(key)
            .await?
            .ok_or_else(|| "floor: no quorum".to_owned())
    }

    async fn lock_wait(&self, key: &str) -> Result<FloorLock, String> {
        loop {
            if let Some(lock) = self.attempt(key).await? {
                return Ok(lock);
            }
            let sleep = rand::random_range(0..FLOOR_RETRY_MAX_US);
            tokio::time::sleep(Duration::from_micros(sleep)).await;
        }
    }

    async fn release(&self, lock: &FloorLock) -> Result<(), String> {
        let deleted = self.release_on(&lock.key, &lock.token, |_| true).await;
        if deleted >= self.quorum {
            Ok(())
        } else {
            Err(format!("floor: released on {deleted} masters only"))
        }
    }
}

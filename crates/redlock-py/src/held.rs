//! `NativeLock`: a held lock as the Python layer sees it. It owns either a plain
//! [`Lock`] (taken with a `lock_timeout`) or a [`LockGuard`] (auto-extended), behind a tokio
//! mutex so that a concurrent `extend` and `unlock` of one lock serialize. The synchronous
//! getters (`valid`, `validity`, `deadline`) read a snapshot and never take the mutex.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use pyo3::prelude::*;
use tokio::runtime::Handle;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_redlock::{LockError, LockGuard, LockHandle, LockManager};

use crate::errors;
use crate::runtime;

/// What a `NativeLock` holds.
pub(crate) enum Inner {
    Plain(tokio_redlock::Lock),
    Guard(LockGuard),
    /// Released (or handed to the background release).
    Gone,
}

/// The synchronous view of a plain lock: its deadline and TTL after the last operation.
struct Snapshot {
    deadline: Instant,
    ttl: Duration,
    /// Released on purpose (`unlock`, `abandon`): its end is not a loss.
    released: bool,
}

/// An acquired lock (`Lock._native` in Python).
#[pyclass(module = "tokio_redlock._native", frozen)]
pub(crate) struct NativeLock {
    manager: Arc<LockManager>,
    inner: Arc<Mutex<Inner>>,
    /// The guard's view (auto-extended locks); `None` for plain locks.
    view: Option<LockHandle>,
    snapshot: Arc<StdMutex<Snapshot>>,
    resource: Vec<u8>,
    token: String,
    fencing_token: Option<u64>,
    /// The runtime the lock's cleanup needs when it is dropped outside of it.
    runtime: Handle,
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl NativeLock {
    pub(crate) fn plain(
        manager: Arc<LockManager>,
        lock: tokio_redlock::Lock,
        runtime: Handle,
    ) -> Self {
        Self {
            manager,
            view: None,
            snapshot: Arc::new(StdMutex::new(Snapshot {
                deadline: lock.deadline(),
                ttl: lock.ttl(),
                released: false,
            })),
            resource: lock.resource().to_vec(),
            token: lock.token().to_owned(),
            fencing_token: lock.fencing_token().map(|t| t.get()),
            inner: Arc::new(Mutex::new(Inner::Plain(lock))),
            runtime,
        }
    }

    pub(crate) fn guarded(manager: Arc<LockManager>, guard: LockGuard, runtime: Handle) -> Self {
        Self {
            manager,
            view: Some(guard.handle()),
            snapshot: Arc::new(StdMutex::new(Snapshot {
                deadline: guard.deadline(),
                ttl: guard.ttl(),
                released: false,
            })),
            resource: guard.resource().to_vec(),
            token: guard.token().to_owned(),
            fencing_token: guard.fencing_token().map(|t| t.get()),
            inner: Arc::new(Mutex::new(Inner::Guard(guard))),
            runtime,
        }
    }

    fn snap(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.snapshot.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn deadline_now(&self) -> Instant {
        match &self.view {
            Some(view) if view.is_lost() => Instant::now().min(view.deadline()),
            Some(view) => {
                let snap = self.snap();
                if snap.released {
                    snap.deadline
                } else {
                    view.deadline()
                }
            }
            None => self.snap().deadline,
        }
    }
}

fn store(snapshot: &StdMutex<Snapshot>, deadline: Instant, ttl: Duration) {
    let mut s = snapshot.lock().unwrap_or_else(|p| p.into_inner());
    s.deadline = deadline;
    s.ttl = ttl;
}

fn mark_released(snapshot: &StdMutex<Snapshot>) {
    let mut s = snapshot.lock().unwrap_or_else(|p| p.into_inner());
    s.released = true;
    s.deadline = s.deadline.min(Instant::now());
}

#[pymethods]
impl NativeLock {
    /// The resource name, as bytes.
    #[getter]
    fn resource(&self) -> &[u8] {
        &self.resource
    }

    /// The lock token (the Python `Lock.id`).
    #[getter]
    fn token(&self) -> &str {
        &self.token
    }

    /// The fencing token, or `None` when the manager issues none.
    #[getter]
    fn fencing_token(&self) -> Option<u64> {
        self.fencing_token
    }

    /// True for an auto-extended lock.
    #[getter]
    fn auto_extend(&self) -> bool {
        self.view.is_some()
    }

    /// Seconds left until the deadline; 0.0 once past it, released or lost.
    #[getter]
    fn validity(&self) -> f64 {
        seconds(
            self.deadline_now()
                .saturating_duration_since(Instant::now()),
        )
    }

    /// The TTL of the last acquisition or extension, in seconds.
    #[getter]
    fn ttl(&self) -> f64 {
        seconds(self.snap().ttl)
    }

    /// True while held: before the deadline, not released, not lost.
    #[getter]
    fn valid(&self) -> bool {
        // A lost lock is invalid at once, not at its old deadline: `deadline_now` of a lost
        // lock is "now" read a moment later than any `now` read here.
        !self.lost() && Instant::now() < self.deadline_now()
    }

    /// True once an auto-extended lock was lost (never for plain locks).
    #[getter]
    fn lost(&self) -> bool {
        self.view.as_ref().is_some_and(LockHandle::is_lost)
    }

    /// Why the lock was lost, or `None`.
    #[getter]
    fn loss_cause(&self) -> Option<String> {
        self.view
            .as_ref()
            .and_then(LockHandle::loss_cause)
            .map(|c| c.to_string())
    }

    /// Releases the lock (awaitable). `None` on success; a release that finds the keys
    /// gone (expired) also succeeds, as in aioredlock.
    fn unlock<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (manager, inner, snapshot) = (
            Arc::clone(&self.manager),
            Arc::clone(&self.inner),
            Arc::clone(&self.snapshot),
        );
        runtime::awaitable(py, async move {
            let mut held = inner.lock().await;
            mark_released(&snapshot);
            let result = match &mut *held {
                Inner::Plain(lock) => {
                    let r = manager.unlock(lock).await;
                    store(&snapshot, lock.deadline(), lock.ttl());
                    r
                }
                Inner::Guard(_) => {
                    let Inner::Guard(guard) = std::mem::replace(&mut *held, Inner::Gone) else {
                        return Ok(());
                    };
                    guard.release().await
                }
                Inner::Gone => Ok(()),
            };
            result.or_else(errors::convert)
        })
    }

    /// Extends the lock to `ttl` seconds from now (awaitable): compare-and-`PEXPIRE`, never
    /// re-creating an expired key.
    fn extend<'py>(&self, py: Python<'py>, ttl: f64) -> PyResult<Bound<'py, PyAny>> {
        let ttl = crate::duration(ttl, "lock_timeout")?;
        let (manager, inner, snapshot) = (
            Arc::clone(&self.manager),
            Arc::clone(&self.inner),
            Arc::clone(&self.snapshot),
        );
        let resource = self.resource.clone();
        runtime::awaitable(py, async move {
            let mut held = inner.lock().await;
            let result = match &mut *held {
                Inner::Plain(lock) => {
                    let r = manager.extend(lock, ttl).await;
                    store(&snapshot, lock.deadline(), lock.ttl());
                    r
                }
                Inner::Guard(guard) => {
                    let r = guard.extend(ttl).await;
                    if r.is_ok() {
                        snapshot.lock().unwrap_or_else(|p| p.into_inner()).ttl = ttl;
                    }
                    r
                }
                Inner::Gone => Err(LockError::NotHeld {
                    operation: tokio_redlock::Operation::Extend,
                    resource: resource.into(),
                    outcomes: Vec::new(),
                }),
            };
            result.map_err(errors::to_py)
        })
    }

    /// Resolves when an auto-extended lock is lost, or when a plain lock's deadline passes
    /// while it is not released (awaitable). Never resolves for a lock released on purpose.
    fn wait_lost<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let view = self.view.clone();
        let snapshot = Arc::clone(&self.snapshot);
        runtime::awaitable(py, async move {
            if let Some(view) = view {
                view.lost().await;
                return Ok(());
            }
            loop {
                let (deadline, released) = {
                    let s = snapshot.lock().unwrap_or_else(|p| p.into_inner());
                    (s.deadline, s.released)
                };
                if released {
                    // Released on purpose: not a loss.
                    std::future::pending::<()>().await;
                }
                if deadline <= Instant::now() {
                    return Ok(());
                }
                tokio::time::sleep_until(deadline).await;
            }
        })
    }

    /// Stops auto-extension and releases the lock in the background (the Python setter
    /// `lock.valid = False`).
    fn abandon(&self) {
        let inner = Arc::clone(&self.inner);
        mark_released(&self.snapshot);
        let _entered = self.runtime.enter();
        let taken = match inner.try_lock() {
            Ok(mut held) => Some(std::mem::replace(&mut *held, Inner::Gone)),
            Err(_) => None,
        };
        match taken {
            Some(held) => drop(held),
            None => {
                // An operation is in flight: give it up after that operation.
                self.runtime.spawn(async move {
                    let mut held = inner.lock().await;
                    drop(std::mem::replace(&mut *held, Inner::Gone));
                });
            }
        }
    }
}

impl Drop for NativeLock {
    fn drop(&mut self) {
        // A lock nobody released (a cancelled `lock()` whose result arrived, an abandoned
        // object): the library releases it on drop, which needs the runtime.
        let _entered = self.runtime.enter();
        if let Ok(mut held) = self.inner.try_lock() {
            drop(std::mem::replace(&mut *held, Inner::Gone));
        }
    }
}

//! `NativeManager`: a [`LockManager`] whose operations return awaitables.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use tokio::runtime::Handle;
use tokio_redlock::{KeyState, LockManager, LockState};

use crate::errors;
use crate::held::NativeLock;
use crate::runtime;

/// Every manager alive, with the process that created it, so that interpreter exit can
/// release what they still hold.
static LIVE: Mutex<Vec<(u32, Weak<LockManager>)>> = Mutex::new(Vec::new());

/// The managers still alive that this process created (pruning the dead ones). A forked
/// child sees none of its parent's: their locks and connections are the parent's.
pub(crate) fn live_managers() -> Vec<Arc<LockManager>> {
    let pid = std::process::id();
    let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    live.retain(|(_, w)| w.strong_count() > 0);
    live.iter()
        .filter(|(owner, _)| *owner == pid)
        .filter_map(|(_, w)| w.upgrade())
        .collect()
}

/// The lock manager behind an `Aioredlock`.
#[pyclass(module = "tokio_redlock._native", frozen)]
pub(crate) struct NativeManager {
    manager: Arc<LockManager>,
    pid: u32,
    runtime: Handle,
}

impl NativeManager {
    fn checked(&self) -> PyResult<Arc<LockManager>> {
        if self.pid == std::process::id() {
            Ok(Arc::clone(&self.manager))
        } else {
            Err(PyRuntimeError::new_err(format!(
                "this Aioredlock was created in pid {}; create a new Aioredlock after fork",
                self.pid
            )))
        }
    }
}

/// `(state, holder, remaining seconds)` of a quorum view: `"free"`, `"held"`, `"unsettled"`.
type QuorumView = (&'static str, Option<String>, Option<f64>);

/// `(master, state, holder, remaining seconds, detail)` of one master's key.
type MasterView = (String, &'static str, Option<String>, Option<f64>, String);

#[pymethods]
impl NativeManager {
    /// Builds the manager (no connection is made until the first operation).
    ///
    /// Raises `ValueError` for a configuration the library refuses (no server, an invalid
    /// URL, a server listed twice, a TTL out of range).
    #[new]
    #[pyo3(signature = (servers, ttl, retry_count, retry_delay, retry_jitter, node_timeout, fencing=false, notifications=true))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        servers: Vec<String>,
        ttl: f64,
        retry_count: u32,
        retry_delay: f64,
        retry_jitter: f64,
        node_timeout: f64,
        fencing: bool,
        notifications: bool,
    ) -> PyResult<Self> {
        let runtime = runtime::handle()?;
        let _entered = runtime.enter();
        let manager = LockManager::builder()
            .servers(servers)
            .ttl(crate::duration(ttl, "internal_lock_timeout")?)
            .retry_count(retry_count)
            .retry_delay(crate::duration(retry_delay, "retry_delay")?)
            .retry_jitter(crate::duration(retry_jitter, "retry_delay")?)
            .node_timeout(crate::duration(node_timeout, "node_timeout")?)
            .fencing(fencing)
            .notifications(notifications)
            .build()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let manager = Arc::new(manager);
        LIVE.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((std::process::id(), Arc::downgrade(&manager)));
        Ok(Self {
            manager,
            pid: std::process::id(),
            runtime,
        })
    }

    /// Acquires `resource` (awaitable → `NativeLock`). `retries` after the first attempt, or
    /// `wait` seconds of waiting (woken by release notifications; `inf`: no limit).
    /// `auto_extend` makes a guard whose watchdog extends the lock every `ttl / 3`.
    /// `token`: a caller-chosen lock id (a key already holding it counts as granted).
    /// `retry_delay`: `(delay, jitter)` seconds between attempts for this call.
    #[pyo3(signature = (resource, ttl, retries=None, wait=None, auto_extend=false, max_hold=None, token=None, retry_delay=None))]
    #[allow(clippy::too_many_arguments)] // the Python keyword arguments, one each
    fn lock<'py>(
        &self,
        py: Python<'py>,
        resource: String,
        ttl: f64,
        retries: Option<u32>,
        wait: Option<f64>,
        auto_extend: bool,
        max_hold: Option<f64>,
        token: Option<String>,
        retry_delay: Option<(f64, f64)>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let manager = self.checked()?;
        let ttl = crate::duration(ttl, "lock_timeout")?;
        let retry_delay = retry_delay
            .map(|(d, j)| -> PyResult<_> {
                Ok((
                    crate::duration(d, "retry_delay")?,
                    crate::duration(j, "retry_delay")?,
                ))
            })
            .transpose()?;
        let wait = match wait {
            Some(w) if w.is_infinite() && w > 0.0 => Some(None),
            Some(w) => Some(Some(crate::duration(w, "wait")?)),
            None => None,
        };
        let max_hold = max_hold
            .map(|m| crate::duration(m, "max_hold"))
            .transpose()?;
        let runtime = self.runtime.clone();
        runtime::awaitable(py, async move {
            if auto_extend {
                let mut request = manager.acquire(&resource).ttl(ttl).auto_extend();
                if let Some(t) = token {
                    request = request.token(t);
                }
                if let Some((d, j)) = retry_delay {
                    request = request.retry_delay(d, j);
                }
                if let Some(n) = retries {
                    request = request.retry_count(n);
                }
                request = match wait {
                    Some(Some(w)) => request.wait(w),
                    Some(None) => request.wait_forever(),
                    None => request,
                };
                if let Some(m) = max_hold {
                    request = request.max_hold(m);
                }
                let guard = request.await.map_err(errors::to_py)?;
                Ok(NativeLock::guarded(Arc::clone(&manager), guard, runtime))
            } else {
                let mut request = manager.lock(&resource).ttl(ttl);
                if let Some(t) = token {
                    request = request.token(t);
                }
                if let Some((d, j)) = retry_delay {
                    request = request.retry_delay(d, j);
                }
                if let Some(n) = retries {
                    request = request.retry_count(n);
                }
                request = match wait {
                    Some(Some(w)) => request.wait(w),
                    Some(None) => request.wait_forever(),
                    None => request,
                };
                let lock = request.await.map_err(errors::to_py)?;
                Ok(NativeLock::plain(Arc::clone(&manager), lock, runtime))
            }
        })
    }

    /// A handle for the lock `token` holds on `resource` on a quorum of masters (awaitable →
    /// `NativeLock`), its deadline the quorum's remaining TTL. Dropping it releases nothing;
    /// `unlock` does. Raises `LockNotHeldError` when `token` does not hold it on a quorum.
    fn adopt<'py>(
        &self,
        py: Python<'py>,
        resource: String,
        token: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let manager = self.checked()?;
        let runtime = self.runtime.clone();
        runtime::awaitable(py, async move {
            let lock = manager
                .adopt(&resource, token)
                .await
                .map_err(errors::to_py)?;
            Ok(NativeLock::plain(Arc::clone(&manager), lock, runtime))
        })
    }

    /// The quorum's view of `resource` (awaitable → `(state, holder, remaining)`).
    fn is_locked<'py>(&self, py: Python<'py>, resource: String) -> PyResult<Bound<'py, PyAny>> {
        let manager = self.checked()?;
        runtime::awaitable(py, async move {
            let state = manager.is_locked(&resource).await.map_err(errors::to_py)?;
            let view: QuorumView = match state {
                LockState::Free => ("free", None, None),
                LockState::Held { holder, remaining } => (
                    "held",
                    Some(String::from_utf8_lossy(holder.as_bytes()).into_owned()),
                    remaining.map(|r| r.as_secs_f64()),
                ),
                // Readers of a read-write lock hold the name (no single holder token).
                LockState::Shared { remaining, .. } => {
                    ("held", None, remaining.map(|r| r.as_secs_f64()))
                }
                _ => ("unsettled", None, None),
            };
            Ok(view)
        })
    }

    /// Every master's key for `resource` (awaitable → list of
    /// `(master, state, holder, remaining, detail)`; state is `"held"`, `"shared"` (readers),
    /// `"absent"`, `"not_a_lock"` or `"failed"`).
    fn inspect<'py>(&self, py: Python<'py>, resource: String) -> PyResult<Bound<'py, PyAny>> {
        let manager = self.checked()?;
        runtime::awaitable(py, async move {
            let keys = manager.inspect(&resource).await.map_err(errors::to_py)?;
            let views: Vec<MasterView> = keys
                .into_iter()
                .map(|k| match k.state {
                    KeyState::Held { holder, remaining } => (
                        k.master.to_string(),
                        "held",
                        Some(String::from_utf8_lossy(holder.as_bytes()).into_owned()),
                        remaining.map(|r| r.as_secs_f64()),
                        String::new(),
                    ),
                    KeyState::Absent => (k.master.to_string(), "absent", None, None, String::new()),
                    KeyState::NotALock => (
                        k.master.to_string(),
                        "not_a_lock",
                        None,
                        None,
                        String::new(),
                    ),
                    KeyState::Shared { remaining, .. } => (
                        k.master.to_string(),
                        "shared",
                        None,
                        remaining.map(|r| r.as_secs_f64()),
                        String::new(),
                    ),
                    KeyState::Failed(e) => {
                        (k.master.to_string(), "failed", None, None, e.to_string())
                    }
                    _ => (k.master.to_string(), "unknown", None, None, String::new()),
                })
                .collect();
            Ok(views)
        })
    }

    /// Closes the manager (awaitable): releases every lock it still holds, stops its tasks
    /// and drops its connections. Later operations raise `LockUnavailableError`.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let manager = self.checked()?;
        runtime::awaitable(py, async move {
            manager.close().await;
            Ok(())
        })
    }

    /// The masters' addresses, passwords redacted.
    fn masters(&self) -> Vec<String> {
        self.manager.masters().map(str::to_owned).collect()
    }

    /// Masters needed for a quorum.
    fn quorum(&self) -> usize {
        self.manager.quorum()
    }

    /// Background work still running (cleanup releases, stragglers).
    fn background_tasks(&self) -> usize {
        self.manager.background_tasks()
    }

    /// Resources with waiters subscribed to release notifications.
    fn subscribed_resources(&self) -> usize {
        self.manager.subscribed_resources()
    }

    /// The node timeout in seconds, as configured.
    fn default_ttl(&self) -> f64 {
        self.manager.ttl().as_secs_f64()
    }
}

/// Releases what live managers still hold and closes them, bounded by `limit`.
pub(crate) fn close_all(runtime: &Handle, limit: Duration) {
    let managers = live_managers();
    if managers.is_empty() {
        return;
    }
    runtime.block_on(async move {
        let closing = managers.iter().map(|m| m.close());
        let _ = tokio::time::timeout(limit, futures_join(closing)).await;
    });
}

async fn futures_join<I>(futures: I)
where
    I: IntoIterator,
    I::Item: std::future::Future<Output = ()>,
{
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    for f in set {
        f.await;
    }
}

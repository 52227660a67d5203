//! The package's own tokio runtime: built on first use, rebuilt after a fork, shut down at
//! interpreter exit. pyo3-async-runtimes' hidden global runtime can neither be replaced after
//! a fork nor shut down, so the package implements its `generic::Runtime` traits instead.

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;
use pyo3_async_runtimes::generic::{ContextExt, JoinError, Runtime as GenericRuntime};
use tokio::runtime::{Builder, Handle, Runtime};

/// Worker threads of the runtime; `TOKIO_REDLOCK_THREADS` overrides.
const DEFAULT_THREADS: usize = 2;

/// How long interpreter exit waits for the runtime's tasks to stop.
const SHUTDOWN_WAIT: Duration = Duration::from_millis(500);

enum State {
    /// Not built yet in this process.
    Idle,
    /// Running, built by process `pid`.
    Running { pid: u32, runtime: Runtime },
    /// Shut down at interpreter exit: no new work.
    Down,
}

static STATE: Mutex<State> = Mutex::new(State::Idle);

fn lock_state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

fn build() -> std::io::Result<Runtime> {
    let threads = std::env::var("TOKIO_REDLOCK_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_THREADS);
    Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("tokio-redlock")
        .enable_time()
        .enable_io()
        .build()
}

/// The runtime's handle, building the runtime on first use (and again in a forked child).
pub(crate) fn handle() -> PyResult<Handle> {
    let mut state = lock_state();
    let pid = std::process::id();
    if let State::Running { pid: owner, .. } = &*state
        && *owner != pid
    {
        // A fork child: the parent's worker threads do not exist here. Never drop that
        // runtime (dropping joins threads that are gone): forget it.
        if let State::Running { runtime, .. } = std::mem::replace(&mut *state, State::Idle) {
            std::mem::forget(runtime);
        }
    }
    match &*state {
        State::Running { runtime, .. } => Ok(runtime.handle().clone()),
        State::Down => Err(PyRuntimeError::new_err(
            "tokio_redlock is shut down (the interpreter is exiting)",
        )),
        State::Idle => {
            let runtime = build().map_err(|e| {
                PyRuntimeError::new_err(format!("cannot start the tokio runtime: {e}"))
            })?;
            let handle = runtime.handle().clone();
            *state = State::Running { pid, runtime };
            Ok(handle)
        }
    }
}

/// The runtime's handle if this process built it and it is running (never builds one).
pub(crate) fn running() -> Option<Handle> {
    match &*lock_state() {
        State::Running { pid, runtime } if *pid == std::process::id() => {
            Some(runtime.handle().clone())
        }
        _ => None,
    }
}

/// Called in a forked child (`os.register_at_fork`): the inherited runtime's threads are
/// gone, so it is forgotten, and the next call builds a new one.
pub(crate) fn after_fork() {
    let mut state = lock_state();
    if let State::Running { runtime, .. } = std::mem::replace(&mut *state, State::Idle) {
        std::mem::forget(runtime);
    }
}

/// Stops the runtime (interpreter exit): waits up to half a second for its tasks.
/// Must run without the GIL (tasks may be logging through Python).
pub(crate) fn shutdown() {
    let taken = std::mem::replace(&mut *lock_state(), State::Down);
    if let State::Running { pid, runtime } = taken {
        if pid == std::process::id() {
            runtime.shutdown_timeout(SHUTDOWN_WAIT);
        } else {
            std::mem::forget(runtime);
        }
    }
}

/// The join error of a task that could not even be spawned.
pub(crate) struct NotSpawned;

impl JoinError for NotSpawned {
    fn is_panic(&self) -> bool {
        false
    }
    fn into_panic(self) -> Box<dyn std::any::Any + Send + 'static> {
        Box::new("not spawned")
    }
}

/// The pyo3-async-runtimes runtime backed by the package's tokio runtime.
pub(crate) struct PackageRuntime;

tokio::task_local! {
    static TASK_LOCALS: OnceCell<TaskLocals>;
}

type Joined = Pin<Box<dyn Future<Output = Result<(), NotSpawned>> + Send>>;

fn joined(join: Option<tokio::task::JoinHandle<()>>) -> Joined {
    Box::pin(async move {
        match join {
            Some(join) => join.await.map_err(|_| NotSpawned),
            None => Err(NotSpawned),
        }
    })
}

impl GenericRuntime for PackageRuntime {
    type JoinError = NotSpawned;
    type JoinHandle = Joined;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        joined(handle().ok().map(|h| h.spawn(fut)))
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        joined(handle().ok().map(|h| h.spawn_blocking(f)))
    }
}

impl ContextExt for PackageRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS
            .try_with(|c| c.get().cloned())
            .unwrap_or_default()
    }
}

/// Turns a Rust future into an awaitable bound to the running event loop; the future runs
/// on the package's runtime without the GIL. Cancelling the awaitable drops the future
/// inside the runtime (the library's cancel safety then applies).
pub(crate) fn awaitable<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    // Fail here, with the GIL held, rather than in a task that cannot be spawned.
    handle()?;
    pyo3_async_runtimes::generic::future_into_py::<PackageRuntime, F, T>(py, fut)
}

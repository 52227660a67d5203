//! `tokio_redlock._native`: the native half of the `tokio-redlock` Python package, which
//! gives asyncio programs aioredlock 0.7.3's API on this workspace's Redlock engine.
//!
//! The Python layer (`python/tokio_redlock`) holds everything users import; this extension
//! wraps [`tokio_redlock::LockManager`], [`tokio_redlock::Lock`] and
//! [`tokio_redlock::LockGuard`] and turns their futures into asyncio awaitables with
//! `pyo3-async-runtimes`, on a tokio runtime the package owns (built on first use, rebuilt
//! after `fork`, shut down at interpreter exit). No lock logic lives here.

use std::sync::Mutex;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

mod errors;
mod held;
mod manager;
mod runtime;

/// How long interpreter exit waits for live managers to release their locks.
const EXIT_RELEASE_WAIT: Duration = Duration::from_secs(1);

/// Seconds (a Python float) as a [`Duration`]; `ValueError` for a negative, NaN or
/// infinite value.
pub(crate) fn duration(seconds: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        PyValueError::new_err(format!(
            "{what} must be a finite number of seconds >= 0, got {seconds}"
        ))
    })
}

/// The logging bridge's cache reset, set when the bridge was installed.
static LOGGING: Mutex<Option<pyo3_log::ResetHandle>> = Mutex::new(None);

/// Makes logging configuration done since the last call take effect for the library's log
/// records (levels are cached so that filtered records never take the GIL).
#[pyfunction]
fn refresh_logging() {
    if let Some(reset) = &*LOGGING.lock().unwrap_or_else(|p| p.into_inner()) {
        reset.reset();
    }
}

/// Interpreter exit (`atexit`): releases what live managers hold (up to a second), then
/// stops the runtime (up to half a second). Runs without the GIL.
#[pyfunction]
fn _shutdown(py: Python<'_>) {
    py.detach(|| {
        if let Some(handle) = runtime::running() {
            manager::close_all(&handle, EXIT_RELEASE_WAIT);
        }
        runtime::shutdown();
    });
}

/// `os.register_at_fork(after_in_child=...)`: forgets the parent's runtime.
#[pyfunction]
fn _after_fork() {
    runtime::after_fork();
}

/// Background work of every live manager (cleanup releases, stragglers): 0 once nothing is
/// left running.
#[pyfunction]
fn background_tasks() -> usize {
    manager::live_managers()
        .iter()
        .map(|m| m.background_tasks())
        .fold(0, usize::saturating_add)
}

/// Managers alive in this process.
#[pyfunction]
fn live_managers() -> usize {
    manager::live_managers().len()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // Another logger already installed (an embedding application's): keep it.
    if let Ok(logger) = pyo3_log::Logger::new(py, pyo3_log::Caching::LoggersAndLevels)
        && let Ok(reset) = logger.install()
    {
        *LOGGING.lock().unwrap_or_else(|p| p.into_inner()) = Some(reset);
    }
    m.add_class::<manager::NativeManager>()?;
    m.add_class::<held::NativeLock>()?;
    m.add("NativeError", py.get_type::<errors::NativeError>())?;
    m.add_function(wrap_pyfunction!(refresh_logging, m)?)?;
    m.add_function(wrap_pyfunction!(_shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(_after_fork, m)?)?;
    m.add_function(wrap_pyfunction!(background_tasks, m)?)?;
    m.add_function(wrap_pyfunction!(live_managers, m)?)?;
    Ok(())
}

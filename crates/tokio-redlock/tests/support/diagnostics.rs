//! Whole-binary diagnostics for tests that must prove "no error was logged" or look for a
//! warning: a global `tracing` recorder of WARN and ERROR events (the library logs on tokio's
//! worker threads, so a per-thread subscriber would miss them), and a panic hook that records
//! panics on tokio's worker threads (unobserved task failures; a test's own assertions fail
//! on its libtest thread instead). Installed once per test binary.

use std::fmt::Write as _;
use std::sync::{Mutex, Once};

use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Every event at any level, when installed by [`install_recording_everything`].
static ALL_EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static WORKER_PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

/// Records each event as `LEVEL target: field=value ...`.
struct Recorder;

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let meta = event.metadata();
        let mut text = format!("{} {}:", meta.level(), meta.target());
        event.record(&mut FieldText(&mut text));
        EVENTS.lock().unwrap().push(text);
    }
}

/// Records every event, whatever its level, as [`Recorder`] does.
struct Everything;

impl<S: tracing::Subscriber> Layer<S> for Everything {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let meta = event.metadata();
        let mut text = format!("{} {}:", meta.level(), meta.target());
        event.record(&mut FieldText(&mut text));
        ALL_EVENTS.lock().unwrap().push(text);
    }
}

struct FieldText<'a>(&'a mut String);

impl tracing::field::Visit for FieldText<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

/// Installs the recorder and the panic hook (once per test binary).
pub fn install() {
    install_layers(false);
}

/// [`install`], and also records every event at every level (TRACE included), for
/// [`all_events`]. For test binaries that must check everything the library logs.
pub fn install_recording_everything() {
    install_layers(true);
}

/// Every event recorded since [`install_recording_everything`], at every level.
pub fn all_events() -> Vec<String> {
    ALL_EVENTS.lock().unwrap().clone()
}

fn install_layers(everything: bool) {
    INSTALL.call_once(|| {
        let everything = everything.then(|| Everything.with_filter(LevelFilter::TRACE));
        let subscriber = tracing_subscriber::registry()
            .with(Recorder.with_filter(LevelFilter::WARN))
            .with(everything);
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global tracing subscriber in this test binary");
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let on_worker = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("tokio-"));
            if on_worker {
                WORKER_PANICS.lock().unwrap().push(info.to_string());
            }
            previous(info);
        }));
    });
}

/// Recorded WARN and ERROR events that mention `needle`.
pub fn warnings_about(needle: &str) -> Vec<String> {
    EVENTS
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.contains(needle))
        .cloned()
        .collect()
}

/// Fails if any ERROR event was logged or any task panicked on a runtime thread.
pub fn assert_no_error_log_and_no_worker_panic() {
    let errors: Vec<String> = EVENTS
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.starts_with("ERROR"))
        .cloned()
        .collect();
    assert!(errors.is_empty(), "ERROR events were logged: {errors:#?}");
    let panics = WORKER_PANICS.lock().unwrap().clone();
    assert!(
        panics.is_empty(),
        "tasks panicked on runtime threads: {panics:#?}"
    );
}

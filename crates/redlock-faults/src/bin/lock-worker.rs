//! `lock-worker`: one redlock-faults worker in its own process, for client-process pauses
//! (SIGSTOP of a whole client). Started by the orchestrator (CI tier, `redlock-soak`); it
//! writes its history to `--history` and stops when its stdin closes.

use clap::Parser;
use redlock_faults::cli::{LockWorkerArgs, lock_worker_main};

fn main() -> std::process::ExitCode {
    match lock_worker_main(LockWorkerArgs::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("lock-worker: {e}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

//! Who holds a resource: the quorum's answer (`is_locked`, a `LockState`) and each master's
//! (`inspect`, for diagnostics), with the holder's host, pid and command when it stored them
//! (`holder_info`).
//!
//! ```sh
//! REDLOCK_SERVERS=redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003 \
//!     cargo run -p tokio-redlock --example holder
//! ```
#![allow(clippy::print_stdout)]

use std::time::Duration;

use tokio_redlock::{HolderInfo, KeyState, LockManagerBuilder, LockState, NodeStatus};

const RESOURCE: &str = "examples:holder";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Two managers stand for two processes: `theirs` holds the lock, `ours` asks about it.
    let ours = LockManagerBuilder::from_env()?.build()?;
    let theirs = LockManagerBuilder::from_env()?.build()?;

    println!("before: {}", describe(&ours.is_locked(RESOURCE).await?));
    // The holder opts in to a holder record: who it is, for everyone who inspects the lock.
    let mut lock = theirs
        .lock(RESOURCE)
        .ttl(Duration::from_secs(30))
        .holder_info(HolderInfo::new("example-host", "examples/holder"))
        .await?;

    // The quorum's view: `Held` when one token holds the key on a majority of masters, with
    // how long that majority keeps it; `Free` when a majority has no key; `Unsettled` when
    // no single answer holds on a majority (an acquisition in progress, a lock expiring, a
    // value that is not a lock).
    let state = ours.is_locked(RESOURCE).await?;
    println!("while held: {}", describe(&state));

    // `is_held_by` compares the holder's token with a `Lock` handle: the process that
    // acquired the lock checks its own handle ("is it still mine?"); for everyone else,
    // `Held` means "someone else has it". The token itself is never printed whole.
    println!("held by their handle: {}", state.is_held_by(&lock));

    // Every master's view, in the order of `masters()`; a master that fails shows as
    // `KeyState::Failed` instead of failing the call.
    for master in ours.inspect(RESOURCE).await? {
        let what = match master.state {
            KeyState::Absent => "no key".to_owned(),
            KeyState::Held {
                remaining: Some(left),
                ..
            } => format!("held, {} s left", left.as_secs()),
            KeyState::Held {
                remaining: None, ..
            } => "held, no TTL (not set by a lock library)".to_owned(),
            KeyState::NotALock => "a value that is not a lock".to_owned(),
            KeyState::Failed(e) => format!("no answer: {e}"),
            other => format!("{other:?}"),
        };
        println!("  {}: {what}", master.master);
        // Shown only while the key holds the token the record names. Untrusted text: a
        // real tool prints it escaped (`tokio_redlock::Printable`).
        if let Some(info) = &master.holder_info {
            println!(
                "    holder: {}, pid {}, command {}",
                tokio_redlock::Printable::new(info.host()),
                info.pid(),
                tokio_redlock::Printable::new(info.command()),
            );
        }
    }

    theirs.unlock(&mut lock).await?;
    println!(
        "after unlock: {}",
        describe(&ours.is_locked(RESOURCE).await?)
    );

    ours.close().await;
    theirs.close().await;
    Ok(())
}

/// One line for a quorum view. `LockState` is `#[non_exhaustive]`: keep a catch-all arm.
fn describe(state: &LockState) -> String {
    match state {
        LockState::Free => "free".to_owned(),
        LockState::Held { remaining, .. } => match remaining {
            Some(left) => format!("held, about {} s left", left.as_secs()),
            None => "held, with no TTL".to_owned(),
        },
        LockState::Unsettled { outcomes } => {
            // Say what is known: a value that is not a lock is no disagreement.
            let not_a_lock = outcomes
                .iter()
                .filter(|o| *o.status() == NodeStatus::NotALock)
                .count();
            if not_a_lock > 0 {
                format!(
                    "unsettled: a non-lock value on {not_a_lock} of {} masters",
                    outcomes.len()
                )
            } else {
                "unsettled: no single answer on a majority of masters".to_owned()
            }
        }
        other => format!("{other:?}"),
    }
}

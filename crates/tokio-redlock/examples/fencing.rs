//! Fencing tokens: a store that refuses the writes of a holder whose lock has expired.
//!
//! A lock is a lease: a holder that pauses (GC, a stopped VM, a slow disk) can wake up after
//! its lock expired and another client took it, and still believe it holds the lock. With
//! `fencing(true)` every lock carries a number that grows with every acquisition of the
//! resource; the store remembers the highest it has seen and refuses lower ones.
//!
//! ```sh
//! REDLOCK_SERVERS=redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003 \
//!     cargo run -p tokio-redlock --example fencing
//! ```
#![allow(clippy::print_stdout)]

use std::sync::Mutex;
use std::time::Duration;

use tokio_redlock::{FencingToken, LockManagerBuilder};

const RESOURCE: &str = "examples:fencing";

/// The protected resource. In a database, the check and the write are one statement:
/// `UPDATE t SET v = $1, fence = $2 WHERE id = $3 AND fence <= $2` (0 rows: refused).
#[derive(Default)]
struct Store {
    /// The highest token seen, and the value.
    state: Mutex<(u64, String)>,
}

impl Store {
    /// Writes `value` unless a write with a higher token came first.
    fn write(&self, token: FencingToken, value: &str) -> Result<(), String> {
        let mut state = self.state.lock().map_err(|e| e.to_string())?;
        if token.get() < state.0 {
            return Err(format!(
                "refused: token {token} is older than {} (a newer holder wrote already)",
                state.0
            ));
        }
        *state = (token.get(), value.to_owned());
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Fencing is opt-in. Every resource then has a counter key `{<key>}:fence` that never
    // expires; for the guarantee, run the masters with `appendonly yes`.
    let a = LockManagerBuilder::from_env()?.fencing(true).build()?;
    let b = LockManagerBuilder::from_env()?.fencing(true).build()?;
    let store = Store::default();

    // Client A takes a short lock...
    let mut lock_a = a.lock(RESOURCE).ttl(Duration::from_millis(500)).await?;
    let token_a = lock_a.fencing_token().ok_or("no fencing token")?;
    println!("A: acquired with token {token_a}");

    // ...and pauses before writing. Its lock expires meanwhile; B, waiting for the
    // resource, gets it as soon as A's keys expire, with a larger token.
    let mut lock_b = b.lock(RESOURCE).wait(Duration::from_secs(5)).await?;
    let token_b = lock_b.fencing_token().ok_or("no fencing token")?;
    println!("B: acquired with token {token_b} after A's lock expired");
    store.write(token_b, "written by B")?;
    println!("B: write accepted");
    b.unlock(&mut lock_b).await?;

    // A wakes up and writes as if it still held the lock: the store refuses.
    match store.write(token_a, "written by A") {
        Ok(()) => return Err("the store accepted a stale write".into()),
        Err(refusal) => println!("A: {refusal}"),
    }
    // A's release tells it the lock had lapsed.
    if let Err(e) = a.unlock(&mut lock_a).await {
        println!("A: unlock: not held any more: {}", e.is_not_held());
    }

    let (token, value) = store.state.lock().map_err(|e| e.to_string())?.clone();
    println!("store: {value:?} with token {token}");
    a.close().await;
    b.close().await;
    Ok(())
}

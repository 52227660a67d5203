//! Acquisitions dropped at random points, in batches, for the cancel-safety tests of every
//! primitive: after each batch the caller checks that nothing is left behind.

use std::time::Duration;

use rand::{RngExt, SeedableRng, rngs::StdRng};
use tokio::task::JoinSet;
use tokio_redlock::{Lock, LockError, LockManager};

use super::checks::{ms, proxies_for, settle};
use super::eventually;
use super::proxy::FaultProxy;
use super::servers::Masters;

/// A manager behind one fault proxy per master, for drop storms: 500 ms node timeout, a
/// short retry delay (3 ms, jitter 2 ms). Its connections are opened by `warm` (an acquisition
/// that is released at once), then every reply is delayed 1 ms so that drops land while
/// requests are on the wire. Returns the manager and the proxies (keep them alive).
pub async fn dropping_manager<F, Fut>(masters: &Masters, warm: F) -> (LockManager, Vec<FaultProxy>)
where
    F: FnOnce(LockManager) -> Fut,
    Fut: Future<Output = Result<Lock, LockError>>,
{
    let proxies = proxies_for(masters).await;
    let manager = LockManager::builder()
        .servers(proxies.iter().map(FaultProxy::url))
        .node_timeout(ms(500))
        .retry_delay(ms(3))
        .retry_jitter(ms(2))
        .build()
        .unwrap();
    let mut lock = warm(manager.clone()).await.unwrap();
    manager.unlock(&mut lock).await.unwrap();
    settle(&manager).await;
    for proxy in &proxies {
        proxy.set_reply_latency(ms(1));
    }
    (manager, proxies)
}

/// Runs 10 batches of 20 acquisitions, each dropped after a random 0–10 ms (seeded by
/// `seed`); one that completes is unlocked, one refused must be a conflict. `acquire(manager,
/// rng, j)` makes the `j`-th acquisition of a batch (drawing from `rng` what it varies). After each batch it waits until the manager
/// has no background task, then until `leftovers()` finds nothing left on the masters (`Err`
/// describes what is left), at most 2 s. Returns how many were dropped and how
/// many acquired; fails unless both happened.
pub async fn drop_storm<F, Fut>(
    manager: &LockManager,
    seed: u64,
    mut acquire: F,
    leftovers: impl Fn() -> Result<(), String>,
) -> (usize, usize)
where
    F: FnMut(LockManager, &mut StdRng, usize) -> Fut,
    Fut: Future<Output = Result<Lock, LockError>> + Send + 'static,
{
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut dropped, mut acquired) = (0usize, 0usize);
    for batch in 0..10 {
        let mut set = JoinSet::new();
        for j in 0..20 {
            let delay = Duration::from_micros(rng.random_range(0..=10_000));
            let request = acquire(manager.clone(), &mut rng, j);
            let m = manager.clone();
            set.spawn(async move {
                match tokio::time::timeout(delay, request).await {
                    Err(_) => (1, 0),
                    Ok(Ok(mut lock)) => {
                        m.unlock(&mut lock).await.unwrap();
                        (0, 1)
                    }
                    Ok(Err(e)) => {
                        assert!(e.is_conflict(), "{e}");
                        (0, 0)
                    }
                }
            });
        }
        while let Some(outcome) = set.join_next().await {
            let (d, a) = outcome.unwrap();
            dropped += d;
            acquired += a;
        }
        assert!(
            eventually(ms(3_000), || manager.background_tasks() == 0).await,
            "batch {batch}: background tasks left"
        );
        let clean = eventually(ms(2_000), || leftovers().is_ok()).await;
        assert!(
            clean,
            "batch {batch}: {}",
            leftovers().err().unwrap_or_default()
        );
    }
    println!("{dropped} dropped, {acquired} acquired and released");
    assert!(dropped > 0 && acquired > 0, "both paths must run");
    (dropped, acquired)
}

/// `Ok` when no master holds any key; else what they hold.
pub fn empty(masters: &Masters) -> Result<(), String> {
    if masters.iter().all(|s| s.dbsize() == 0) {
        return Ok(());
    }
    Err(format!(
        "keys left: {:?}",
        masters.iter().map(|s| s.dump()).collect::<Vec<_>>()
    ))
}

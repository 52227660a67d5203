//! Caller-chosen tokens (`LockRequest::token`), adopted handles (`LockManager::adopt`) and
//! per-call retry delays (`LockRequest::retry_delay`): a key already holding the token is
//! granted with its TTL only ever raised, a late release of an earlier lock (or a failed
//! attempt's cleanup) never deletes the key a later lock with the same token holds, and an
//! adopted handle's deadline is the quorum's remaining TTL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::print_stdout,
    clippy::print_stderr,
    unreachable_pub
)]

mod support;

use std::time::Duration;

use support::checks::{
    RELAXED, assert_no_key_without_ttl, held_everywhere, manager, ms, proxies_for, settle,
};
use support::servers::Masters;
use tokio::time::Instant;
use tokio_redlock::{LockError, LockManager, NodeError, Operation};

/// The token used throughout: what an aioredlock user passes as `lock_identifier`.
const TOKEN: &str = "worker-7";

fn assert_invalid(result: Result<impl std::fmt::Debug, LockError>, needle: &str) {
    let err = result.expect_err("must be refused");
    assert!(
        matches!(err, LockError::InvalidArgument(_)),
        "expected InvalidArgument, got {err:?}"
    );
    assert!(err.to_string().contains(needle), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_token_is_granted_again_and_its_ttl_only_raised() {
    let masters = Masters::start(3);
    let m = manager(masters.urls(), RELAXED);

    let first = m.lock("r").token(TOKEN).ttl(ms(2_000)).await.unwrap();
    assert_eq!(first.token(), TOKEN);
    held_everywhere(masters.iter(), b"r", TOKEN).await;
    // The same holder again, with a longer TTL: granted, every key's TTL raised.
    let second = m.lock("r").token(TOKEN).ttl(ms(20_000)).await.unwrap();
    settle(&m).await;
    for s in masters.iter() {
        let pttl = s.pttl(b"r");
        assert!(pttl > 15_000, "TTL raised to the new lock's: {pttl}");
    }
    assert!(second.validity() > ms(15_000));
    // A shorter TTL never lowers it: the earlier handles keep deadlines their keys outlive.
    let third = m.lock("r").token(TOKEN).ttl(ms(1_000)).await.unwrap();
    settle(&m).await;
    for s in masters.iter() {
        assert!(s.pttl(b"r") > 15_000, "never lowered");
    }
    assert!(third.validity() <= ms(1_000));
    // Another token is refused.
    let err = m
        .lock("r")
        .token("someone-else")
        .retry_count(0)
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    // The older handles were superseded: extending one is refused (it would cut the newer
    // lock's TTL), and dropping them releases nothing.
    let mut first = first;
    let err = m.extend(&mut first, ms(1_000)).await.unwrap_err();
    assert!(err.is_not_held(), "{err:?}");
    assert!(!first.is_valid());
    for s in masters.iter() {
        assert!(
            s.pttl(b"r") > 15_000,
            "a superseded handle's extension lowered the TTL"
        );
    }
    let guard = m.acquire("r").token(TOKEN).auto_extend().await.unwrap();
    let mut newest = m.lock("r").token(TOKEN).ttl(ms(20_000)).await.unwrap();
    drop(guard);
    drop(first);
    drop(second);
    drop(third);
    tokio::time::sleep(ms(300)).await;
    for s in masters.iter() {
        assert!(
            s.holds(b"r", TOKEN),
            "a superseded handle's drop released the key"
        );
    }
    // An explicit unlock of the newest releases the keys.
    m.unlock(&mut newest).await.unwrap();
    settle(&m).await;
    for s in masters.iter() {
        assert_eq!(s.get(b"r"), None);
    }
    m.close().await;
    assert_no_key_without_ttl(masters.iter());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_and_retry_sleeps_are_refused_before_any_request() {
    let masters = Masters::start(1);
    let m = manager(masters.urls(), RELAXED);
    assert_invalid(m.lock("r").token("").await, "empty");
    assert_invalid(m.lock("r").token("x".repeat(257)).await, "257 bytes");
    assert_invalid(m.lock("r").token("a\nb").await, "control character");
    // The readers' marker, and anything else in the library's own namespace of values.
    assert_invalid(m.lock("r").token("redlock:shared").await, "reserved");
    assert_invalid(m.lock("r").token("redlock:x").await, "reserved");
    assert_invalid(m.adopt("r", "redlock:shared").await, "reserved");
    assert_invalid(
        m.lock("r")
            .token(TOKEN)
            .holder_info(tokio_redlock::HolderInfo::new("h", "c"))
            .await,
        "holder record",
    );
    assert_invalid(
        m.acquire("r").token("").auto_extend().await.map(|_| ()),
        "empty",
    );
    assert_invalid(
        m.lock("r")
            .retry_delay(Duration::from_secs(50), Duration::from_secs(20))
            .await,
        "retry",
    );
    assert_invalid(m.adopt("r", "").await, "empty");
    // The longest token accepted works.
    let mut lock = m.lock("r").token("x".repeat(256)).await.unwrap();
    m.unlock(&mut lock).await.unwrap();
    assert_eq!(masters.get(0).unwrap().dbsize(), 0, "nothing was written");
    m.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftover_key_with_own_token_counts_as_granted() {
    let masters = Masters::start(3);
    let m = manager(masters.urls(), RELAXED);
    // What a failed attempt of this holder left on one master (say, a late reply).
    masters
        .get(0)
        .unwrap()
        .cmd(&["SET", "r", TOKEN, "PX", "300"]);
    let mut lock = m
        .lock("r")
        .token(TOKEN)
        .ttl(ms(10_000))
        .retry_count(0)
        .await
        .unwrap();
    settle(&m).await;
    for s in masters.iter() {
        assert!(s.pttl(b"r") > 9_000, "granted everywhere with the new TTL");
    }
    m.unlock(&mut lock).await.unwrap();
    m.close().await;
}

/// The release of an earlier lock that a master never confirmed is parked and resent; a new
/// lock with the same token must withdraw it, or its resend deletes the new lock's key.
/// Master 0 executes every request but its replies are lost, so each resend would land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_release_of_the_same_token_never_deletes_a_reacquired_key() {
    let masters = Masters::start(3);
    let proxies = proxies_for(&masters).await;
    let urls: Vec<String> = proxies.iter().map(|p| p.url()).collect();
    // Long enough that the connection is not replaced (8 timeouts in a row) before the new
    // acquisition has reached master 0.
    let node_timeout = ms(300);
    let m = manager(urls, node_timeout);

    let mut first = m.lock("r").token(TOKEN).ttl(ms(10_000)).await.unwrap();
    proxies[0].drop_replies(true);
    match m.unlock(&mut first).await {
        Ok(()) => {}
        // On a loaded machine master 1 or 2 may miss the node timeout as well: its release
        // is then resent like master 0's, and lands (its replies arrive).
        Err(e) => assert!(
            e.is_unavailable() && e.failures().all(NodeError::is_timeout),
            "masters 1 and 2 released: {e:?}"
        ),
    }
    // Master 0's release timed out (it did run there): parked and resent in the background.
    tokio::time::sleep(node_timeout * 3 + ms(200)).await;
    let released = || (1..3).all(|i| !masters.get(i).unwrap().exists(b"r"));
    assert!(
        support::eventually(ms(5_000), released).await,
        "masters 1 and 2 released"
    );
    let pending = m.pending_master_work();
    assert!(pending > 0, "the release is parked: {pending}");

    let second = m.lock("r").token(TOKEN).ttl(ms(10_000)).await.unwrap();
    // Master 0 ran the acquisition too (its reply was lost): it holds the new lock's key.
    // Under load the connection to master 0 may have been replaced meanwhile (its replies
    // are lost, so it never comes up) and the acquisition never reached it; the key is then
    // set there as that acquisition would have, so that a release not withdrawn has a key
    // to delete either way.
    if !support::eventually(ms(2_000), || masters.get(0).unwrap().holds(b"r", TOKEN)).await {
        masters
            .get(0)
            .unwrap()
            .cmd(&["SET", "r", TOKEN, "PX", "10000"]);
    }
    proxies[0].drop_replies(false);
    // Long enough for several resends of a release that had not been withdrawn.
    tokio::time::sleep(ms(1_500)).await;
    for s in masters.iter() {
        assert!(
            s.holds(b"r", TOKEN),
            "a late release of the earlier lock deleted the new lock's key on {}",
            s.url()
        );
    }
    assert!(second.is_valid());
    drop(second);
    m.close().await;
}

/// A failed attempt with the token of a lock this manager holds deletes nothing: the keys
/// it was granted are that lock's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempt_never_deletes_the_keys_of_a_held_lock_with_its_token() {
    let masters = Masters::start(3);
    let proxies = proxies_for(&masters).await;
    let urls: Vec<String> = proxies.iter().map(|p| p.url()).collect();
    let m = manager(urls, ms(100));

    let held = m.lock("r").token(TOKEN).ttl(ms(10_000)).await.unwrap();
    proxies[1].stall(true);
    proxies[2].stall(true);
    let err = m
        .lock("r")
        .token(TOKEN)
        .ttl(ms(10_000))
        .retry_count(0)
        .await
        .unwrap_err();
    assert!(err.is_unavailable() || err.is_conflict(), "{err:?}");
    tokio::time::sleep(ms(300)).await;
    assert!(
        masters.get(0).unwrap().holds(b"r", TOKEN),
        "the failed attempt's cleanup deleted the held lock's key"
    );
    assert!(held.is_valid());
    proxies[1].stall(false);
    proxies[2].stall(false);
    drop(held);
    m.close().await;
}

/// A failed attempt with a token no lock holds cleans up what it was granted, at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempt_with_a_fresh_token_cleans_up_before_returning() {
    let masters = Masters::start(3);
    let m = manager(masters.urls(), RELAXED);
    let other = manager(masters.urls(), RELAXED);
    // Another holder on masters 1 and 2 only: master 0 grants, the attempt fails.
    for s in masters.iter().skip(1) {
        s.cmd(&["SET", "r", "other", "PX", "10000"]);
    }
    let err = m.lock("r").token(TOKEN).retry_count(0).await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(
        masters.get(0).unwrap().get(b"r"),
        None,
        "released before the call returned"
    );
    assert_eq!(m.background_tasks(), 0, "nothing parked or left running");
    m.close().await;
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopted_handle_has_the_quorums_deadline_and_releases_only_when_asked() {
    let masters = Masters::start(3);
    let owner = manager(masters.urls(), RELAXED);
    let other = manager(masters.urls(), RELAXED);
    let lock = owner.lock("r").token(TOKEN).ttl(ms(5_000)).await.unwrap();

    let started = Instant::now();
    let adopted = other.adopt("r", TOKEN).await.unwrap();
    assert_eq!(adopted.token(), TOKEN);
    assert!(adopted.validity() <= ms(5_000));
    assert!(adopted.validity() > ms(3_000), "{:?}", adopted.validity());
    // Never later than the owner's own deadline allows the keys to live.
    assert!(adopted.deadline() <= started + ms(5_000));
    // Dropping an adopted handle releases nothing; closing its manager neither.
    drop(adopted);
    let mut adopted = other.adopt("r", TOKEN).await.unwrap();
    other.extend(&mut adopted, ms(8_000)).await.unwrap();
    settle(&other).await;
    for s in masters.iter() {
        assert!(s.pttl(b"r") > 7_000);
    }
    // Wrong token, free resource: typed "not held".
    let err = other.adopt("r", "not-the-holder").await.unwrap_err();
    assert!(err.is_not_held(), "{err:?}");
    let err = other.adopt("free", TOKEN).await.unwrap_err();
    assert!(err.is_not_held(), "{err:?}");
    assert!(matches!(
        err,
        LockError::NotHeld {
            operation: Operation::Query,
            ..
        }
    ));
    // An explicit unlock releases for the owner too.
    other.unlock(&mut adopted).await.unwrap();
    settle(&other).await;
    for s in masters.iter() {
        assert_eq!(s.get(b"r"), None);
    }
    drop(lock);
    let kept = LockManager::clone(&other);
    let _again = owner.lock("r").token(TOKEN).await.unwrap();
    settle(&owner).await;
    let adopted = kept.adopt("r", TOKEN).await.unwrap();
    other.close().await;
    drop(adopted);
    for s in masters.iter() {
        assert!(s.holds(b"r", TOKEN), "close left the adopted lock alone");
    }
    owner.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_call_retry_delay_paces_the_attempts() {
    let masters = Masters::start(1);
    let m = LockManager::builder()
        .servers(masters.urls())
        .retry_delay(ms(1))
        .retry_jitter(Duration::ZERO)
        .build()
        .unwrap();
    let _held = m.lock("r").ttl(ms(10_000)).await.unwrap();
    let started = Instant::now();
    let err = m
        .lock("r")
        .retry_count(2)
        .retry_delay(ms(300), Duration::ZERO)
        .await
        .unwrap_err();
    assert!(err.is_conflict());
    assert!(
        started.elapsed() >= ms(590),
        "two sleeps of 300 ms: {:?}",
        started.elapsed()
    );
    m.close().await;
}

/// A caller-chosen token is for a lock of one resource: several resources, a semaphore's
/// permit, a reader and a writer refuse it before any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_chosen_token_is_for_a_lock_of_one_resource() {
    let masters = Masters::start(1);
    let m = manager(masters.urls(), RELAXED);
    assert_invalid(m.lock_all(["a", "b"]).token(TOKEN).await, "one resource");
    assert_invalid(
        m.semaphore("s", 2).lock().token(TOKEN).await,
        "one resource",
    );
    assert_invalid(m.read_lock("rw").token(TOKEN).await, "one resource");
    assert_invalid(m.write_lock("rw").token(TOKEN).await, "one resource");
    assert_invalid(
        m.acquire_all(["a", "b"]).token(TOKEN).await.map(|_| ()),
        "one resource",
    );
    assert_eq!(masters.get(0).unwrap().dbsize(), 0, "nothing was written");
    m.close().await;
}

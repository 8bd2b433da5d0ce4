//! Conformance cases for [`switchboard_core::RateLimiter`] and the rate-limits service.

use std::time::Duration;

use switchboard_core::{Algorithm, Error, Policy, PolicyRef, RateLimitCheck, RateLimitKey, RateLimitRequest};

use crate::harness::{TestEngine, eventually};

fn key(s: &str) -> RateLimitKey {
    RateLimitKey::new(s).expect("valid key")
}

fn req(k: &str, policy: Policy, cost: u32) -> RateLimitRequest {
    RateLimitRequest { key: key(k), policy, cost }
}

async fn allowed(t: &TestEngine, k: &str, policy: Policy) -> bool {
    let d = t.engine.rate_limiter.check(&[req(k, policy, 1)]).await.unwrap();
    d[0].allowed
}

/// GCRA: the burst passes at once with `remaining` counting down, the next is denied with a
/// retry time of one emission interval at most.
pub async fn gcra_allows_the_burst_then_denies_with_retry_after(t: &TestEngine) {
    let policy = Policy { burst: Some(4), ..Policy::gcra(2, 1000) };
    for expected_remaining in (0..4).rev() {
        let d = t.engine.rate_limiter.check(&[req("gcra", policy, 1)]).await.unwrap()[0];
        assert!(d.allowed);
        assert_eq!(d.limit, 4);
        assert_eq!(d.remaining, expected_remaining);
        assert_eq!(d.retry_after_ms, 0);
    }
    let d = t.engine.rate_limiter.check(&[req("gcra", policy, 1)]).await.unwrap()[0];
    assert!(!d.allowed);
    assert_eq!(d.remaining, 0);
    assert!(d.retry_after_ms > 0 && d.retry_after_ms <= 500, "one emission interval (500 ms) at most: {d:?}");
    assert!(d.reset_after_ms > 1500 && d.reset_after_ms <= 2000, "four intervals to drain: {d:?}");
    tokio::time::sleep(Duration::from_millis(d.retry_after_ms + 30)).await;
    assert!(allowed(t, "gcra", policy).await, "allowed again after retry_after");
}

/// Sliding window: the limit holds within a window and requests pass again later.
pub async fn sliding_window_denies_over_the_limit_and_recovers(t: &TestEngine) {
    let policy = Policy::gcra(3, 400).with_algorithm(Algorithm::SlidingWindow);
    let mut results = Vec::new();
    for _ in 0..4 {
        results.push(allowed(t, "sw", policy).await);
    }
    // All four fall in at most two adjacent windows; the weighted estimate never lets a fourth in
    // unless the first ones are already weighted down, which 4 fast calls cannot achieve twice.
    assert_eq!(results.iter().filter(|a| **a).count(), 3, "{results:?}");
    let denied = t.engine.rate_limiter.check(&[req("sw", policy, 1)]).await.unwrap()[0];
    assert!(!denied.allowed);
    assert!(denied.retry_after_ms > 0 && denied.retry_after_ms <= 800, "{denied:?}");
    eventually(Duration::from_secs(3), "sliding window lets requests in again", || async {
        allowed(t, "sw", policy).await
    })
    .await;
}

/// Sliding log: exactly `limit` per window, and the retry time is when the oldest entry leaves.
pub async fn sliding_log_is_exact_and_recovers(t: &TestEngine) {
    let policy = Policy::gcra(5, 500).with_algorithm(Algorithm::SlidingLog);
    for i in 0..5 {
        let d = t.engine.rate_limiter.check(&[req("log", policy, 1)]).await.unwrap()[0];
        assert!(d.allowed, "request {i}");
        assert_eq!(d.remaining, 4 - i);
    }
    let d = t.engine.rate_limiter.check(&[req("log", policy, 1)]).await.unwrap()[0];
    assert!(!d.allowed);
    assert!(d.retry_after_ms > 0 && d.retry_after_ms <= 500, "{d:?}");
    tokio::time::sleep(Duration::from_millis(d.retry_after_ms + 30)).await;
    assert!(allowed(t, "log", policy).await);
}

/// A cost of several units uses several units, on every algorithm.
pub async fn cost_counts_several_units(t: &TestEngine) {
    for algorithm in [Algorithm::Gcra, Algorithm::SlidingWindow, Algorithm::SlidingLog] {
        let policy = Policy::gcra(10, 60_000).with_algorithm(algorithm);
        let k = format!("cost-{}", algorithm.as_str());
        let d = t.engine.rate_limiter.check(&[req(&k, policy, 7)]).await.unwrap()[0];
        assert!(d.allowed);
        assert_eq!(d.remaining, 3, "{algorithm:?}");
        let d = t.engine.rate_limiter.check(&[req(&k, policy, 4)]).await.unwrap()[0];
        assert!(!d.allowed, "{algorithm:?}");
        assert_eq!(d.remaining, 3, "a denied request consumes nothing ({algorithm:?})");
        let d = t.engine.rate_limiter.check(&[req(&k, policy, 3)]).await.unwrap()[0];
        assert!(d.allowed && d.remaining == 0, "{algorithm:?}: {d:?}");
    }
}

/// Status answers like a check but consumes nothing.
pub async fn status_consumes_nothing(t: &TestEngine) {
    for algorithm in [Algorithm::Gcra, Algorithm::SlidingWindow, Algorithm::SlidingLog] {
        let policy = Policy::gcra(2, 60_000).with_algorithm(algorithm);
        let k = key(&format!("status-{}", algorithm.as_str()));
        let fresh = t.engine.rate_limiter.status(&k, &policy).await.unwrap();
        assert!(fresh.allowed && fresh.remaining == 2, "{algorithm:?}: {fresh:?}");
        for _ in 0..5 {
            assert_eq!(t.engine.rate_limiter.status(&k, &policy).await.unwrap().remaining, 2);
        }
        assert!(allowed(t, k.as_str(), policy).await);
        assert!(allowed(t, k.as_str(), policy).await);
        let spent = t.engine.rate_limiter.status(&k, &policy).await.unwrap();
        assert!(!spent.allowed && spent.remaining == 0 && spent.retry_after_ms > 0, "{algorithm:?}: {spent:?}");
    }
}

/// Reset forgets a key's state.
pub async fn reset_forgets_the_key(t: &TestEngine) {
    let policy = Policy::gcra(1, 60_000);
    assert!(allowed(t, "resettable", policy).await);
    assert!(!allowed(t, "resettable", policy).await);
    assert!(t.engine.rate_limiter.reset(&key("resettable")).await.unwrap());
    assert!(allowed(t, "resettable", policy).await);
    assert!(!t.engine.rate_limiter.reset(&key("never-used")).await.unwrap());
}

/// A multi-key check consumes all keys or none.
pub async fn multi_key_check_is_all_or_nothing(t: &TestEngine) {
    let roomy = Policy::gcra(10, 60_000).with_algorithm(Algorithm::SlidingWindow);
    let tight = Policy::gcra(1, 60_000).with_algorithm(Algorithm::SlidingLog);
    let user = Policy::gcra(5, 60_000);
    let first = t
        .engine
        .rate_limiter
        .check(&[req("ip", roomy, 1), req("endpoint", tight, 1), req("user", user, 1)])
        .await
        .unwrap();
    assert!(first.iter().all(|d| d.allowed));
    assert_eq!(first.iter().map(|d| d.remaining).collect::<Vec<_>>(), vec![9, 0, 4]);
    let second = t
        .engine
        .rate_limiter
        .check(&[req("ip", roomy, 1), req("endpoint", tight, 1), req("user", user, 1)])
        .await
        .unwrap();
    assert_eq!(second.iter().map(|d| d.allowed).collect::<Vec<_>>(), vec![true, false, true]);
    assert_eq!(second.iter().map(|d| d.remaining).collect::<Vec<_>>(), vec![9, 0, 4], "nothing consumed");
    assert_eq!(t.engine.rate_limiter.status(&key("ip"), &roomy).await.unwrap().remaining, 9);
    assert_eq!(t.engine.rate_limiter.status(&key("user"), &user).await.unwrap().remaining, 4);
    // Through the service: duplicates are refused, the outcome carries the longest retry.
    let checks = vec![
        RateLimitCheck { key: key("ip"), policy: PolicyRef::Inline(roomy), cost: None },
        RateLimitCheck { key: key("endpoint"), policy: PolicyRef::Inline(tight), cost: None },
    ];
    let outcome = t.sb.rate_limits().check(&checks).await.unwrap();
    assert!(!outcome.allowed);
    assert!(outcome.retry_after_ms > 0);
    assert_eq!(outcome.tightest().map(|d| d.key.as_str()), Some("endpoint"));
    let dup = vec![checks[0].clone(), checks[0].clone()];
    assert!(matches!(t.sb.rate_limits().check(&dup).await, Err(Error::InvalidArgument(_))));
}

/// Many concurrent checks on one key admit exactly the limit, on every algorithm.
pub async fn concurrent_checks_never_admit_more_than_the_limit(t: &TestEngine) {
    for algorithm in [Algorithm::Gcra, Algorithm::SlidingWindow, Algorithm::SlidingLog] {
        let policy = Policy::gcra(50, 60_000).with_algorithm(algorithm);
        let k = format!("hot-{}", algorithm.as_str());
        let checks = (0..200).map(|_| {
            let limiter = t.engine.rate_limiter.clone();
            let r = req(&k, policy, 1);
            tokio::spawn(async move { limiter.check(&[r]).await })
        });
        let admitted = futures_util::future::join_all(checks)
            .await
            .into_iter()
            .filter(|r| r.as_ref().expect("task").as_ref().expect("check")[0].allowed)
            .count();
        // GCRA refills continuously: 60 s / 50 = 1.2 s per unit, far longer than this burst.
        assert_eq!(admitted, 50, "{algorithm:?}");
    }
}

/// State kept with one algorithm does not confuse another.
pub async fn state_of_another_algorithm_counts_as_empty(t: &TestEngine) {
    let gcra = Policy::gcra(1, 60_000);
    assert!(allowed(t, "switching", gcra).await);
    assert!(!allowed(t, "switching", gcra).await);
    for algorithm in [Algorithm::SlidingLog, Algorithm::SlidingWindow, Algorithm::Gcra] {
        let policy = gcra.with_algorithm(algorithm);
        assert!(allowed(t, "switching", policy).await, "{algorithm:?} starts from empty");
        assert!(!allowed(t, "switching", policy).await, "{algorithm:?} then limits");
    }
}

/// Idle keys vanish once their window has passed (bounded state).
pub async fn idle_state_disappears_after_its_window(t: &TestEngine) {
    for algorithm in [Algorithm::Gcra, Algorithm::SlidingWindow, Algorithm::SlidingLog] {
        let policy = Policy::gcra(2, 200).with_algorithm(algorithm);
        let k = format!("idle-{}", algorithm.as_str());
        assert!(allowed(t, &k, policy).await);
        eventually(Duration::from_secs(3), "idle rate-limit state is dropped", || async {
            !t.engine.rate_limiter.reset(&key(&k)).await.unwrap()
        })
        .await;
    }
}

/// Named policies come from the config; unknown names and bad inline policies are refused.
pub async fn named_policies_resolve_and_unknown_names_are_refused(t: &TestEngine) {
    let rl = t.sb.rate_limits();
    let k = key("named");
    for remaining in [2, 1, 0] {
        assert_eq!(rl.check_named(&k, "test_send").await.unwrap().remaining, remaining);
    }
    assert!(!rl.check_named(&k, "test_send").await.unwrap().allowed);
    assert!(matches!(rl.check_named(&k, "no_such_policy").await, Err(Error::InvalidArgument(_))));
    let zero = RateLimitCheck { key: k.clone(), policy: PolicyRef::Inline(Policy::gcra(0, 1000)), cost: None };
    assert!(matches!(rl.check(&[zero]).await, Err(Error::InvalidArgument(_))));
    let too_costly = RateLimitCheck { key: k, policy: PolicyRef::Inline(Policy::gcra(5, 1000)), cost: Some(6) };
    assert!(matches!(rl.check(&[too_costly]).await, Err(Error::InvalidArgument(_))));
}

//! `MemoryRateLimiter`: limiter state per key under one mutex (so multi-key checks are atomic),
//! decided by core's reference algorithms. Idle keys are dropped once their window has passed.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use switchboard_core::ratelimit::algorithms::{LimiterState, evaluate};
use switchboard_core::{Decision, Policy, RateLimitKey, RateLimitRequest, RateLimiter, Result, Timestamp};

use crate::lock;
use crate::sweeper::Sweepable;

#[derive(Default)]
pub(crate) struct MemoryRateLimiter {
    // One lock for all keys: critical sections are a few hundred nanoseconds of arithmetic, far
    // below what contention on two cores would make noticeable, and multi-key checks stay simple.
    state: Mutex<HashMap<RateLimitKey, Entry>>,
}

struct Entry {
    state: LimiterState,
    /// When the state no longer matters (ms since epoch).
    expires_at_ms: i64,
}

fn stored(map: &HashMap<RateLimitKey, Entry>, key: &RateLimitKey, now_ms: i64) -> Option<LimiterState> {
    map.get(key).filter(|e| e.expires_at_ms > now_ms).map(|e| e.state.clone())
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, requests: &[RateLimitRequest]) -> Result<Vec<Decision>> {
        let now_ms = Timestamp::now().as_millis();
        let mut map = lock(&self.state);
        let evaluations: Vec<_> = requests
            .iter()
            .map(|r| evaluate(stored(&map, &r.key, now_ms).as_ref(), &r.policy, r.cost, now_ms))
            .collect();
        if evaluations.iter().all(|e| e.consumed.is_some()) {
            let mut decisions = Vec::with_capacity(requests.len());
            for (request, evaluation) in requests.iter().zip(evaluations) {
                if let Some((decision, state, expires_at_ms)) = evaluation.consumed {
                    map.insert(request.key.clone(), Entry { state, expires_at_ms });
                    decisions.push(decision);
                }
            }
            Ok(decisions)
        } else {
            Ok(evaluations.into_iter().map(|e| e.current).collect())
        }
    }

    async fn status(&self, key: &RateLimitKey, policy: &Policy) -> Result<Decision> {
        let now_ms = Timestamp::now().as_millis();
        let map = lock(&self.state);
        Ok(evaluate(stored(&map, key, now_ms).as_ref(), policy, 1, now_ms).current)
    }

    async fn reset(&self, key: &RateLimitKey) -> Result<bool> {
        let now_ms = Timestamp::now().as_millis();
        Ok(lock(&self.state).remove(key).is_some_and(|e| e.expires_at_ms > now_ms))
    }
}

impl Sweepable for MemoryRateLimiter {
    fn sweep(&self, now: Timestamp) {
        let now_ms = now.as_millis();
        lock(&self.state).retain(|_, e| e.expires_at_ms > now_ms);
    }
}

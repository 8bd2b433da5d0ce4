//! The reference rate-limit algorithms as pure functions of (state, policy, cost, now). The memory
//! engine calls them; `crates/redis/lua/ratelimit_check.lua` performs the same arithmetic in the
//! same order, so both engines give the same answers (the conformance suite checks it).

use std::collections::VecDeque;

use super::{Algorithm, Decision, Policy};

/// Slack for float comparisons, so `2.9999999` counts as 3. The Lua mirror uses the same value.
const EPS: f64 = 1e-6;

/// Stored state of one key (serde: how the embedded engine's durable mode stores it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LimiterState {
    /// GCRA: the theoretical arrival time, in ms.
    Gcra {
        /// Theoretical arrival time (ms since epoch, fractional).
        tat: f64,
    },
    /// Sliding window: the current window's index and the counts of it and the previous one.
    Window {
        /// `floor(now / window_ms)` when last written.
        index: i64,
        /// Count in window `index`.
        curr: u64,
        /// Count in window `index - 1`.
        prev: u64,
    },
    /// Sliding log: request times in ms, oldest first.
    Log {
        /// Request times (ms since epoch), oldest first.
        entries: VecDeque<i64>,
    },
}

impl LimiterState {
    fn algorithm(&self) -> Algorithm {
        match self {
            LimiterState::Gcra { .. } => Algorithm::Gcra,
            LimiterState::Window { .. } => Algorithm::SlidingWindow,
            LimiterState::Log { .. } => Algorithm::SlidingLog,
        }
    }
}

/// The outcome of evaluating one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The decision without consuming: `allowed` says whether `cost` fits now.
    pub current: Decision,
    /// When it fits: the decision after consuming, the state to store and when that state can be
    /// dropped (ms since epoch).
    pub consumed: Option<(Decision, LimiterState, i64)>,
}

fn ceil_ms(x: f64) -> u64 {
    if x <= 0.0 { 0 } else { (x - EPS).ceil().max(0.0) as u64 }
}

fn floor_count(x: f64) -> u32 {
    if x <= 0.0 { 0 } else { (x + EPS).floor() as u32 }
}

/// Evaluates a request of `cost` against `state` at `now_ms`. State of another algorithm counts
/// as empty.
pub fn evaluate(state: Option<&LimiterState>, policy: &Policy, cost: u32, now_ms: i64) -> Evaluation {
    let state = state.filter(|s| s.algorithm() == policy.algorithm);
    match policy.algorithm {
        Algorithm::Gcra => gcra(state, policy, cost, now_ms),
        Algorithm::SlidingWindow => sliding_window(state, policy, cost, now_ms),
        Algorithm::SlidingLog => sliding_log(state, policy, cost, now_ms),
    }
}

fn gcra(state: Option<&LimiterState>, policy: &Policy, cost: u32, now_ms: i64) -> Evaluation {
    let now = now_ms as f64;
    let capacity = policy.capacity();
    let interval = policy.window_ms as f64 / f64::from(policy.limit);
    let tolerance = f64::from(capacity) * interval;
    // Work relative to now: at epoch-ms magnitudes an f64 has no sub-microsecond precision, so
    // comparisons of absolute times would make the slack meaningless.
    let ahead = match state {
        Some(LimiterState::Gcra { tat }) => (*tat - now).max(0.0),
        _ => 0.0,
    };
    let new_ahead = ahead + f64::from(cost) * interval;
    let allow_in = new_ahead - tolerance;
    let allowed = allow_in <= EPS;
    let current = Decision {
        allowed,
        limit: capacity,
        remaining: floor_count((tolerance - ahead) / interval),
        reset_after_ms: ceil_ms(ahead),
        retry_after_ms: if allowed { 0 } else { ceil_ms(allow_in) },
    };
    let consumed = allowed.then(|| {
        let after = Decision {
            allowed: true,
            limit: capacity,
            remaining: floor_count((tolerance - new_ahead) / interval),
            reset_after_ms: ceil_ms(new_ahead),
            retry_after_ms: 0,
        };
        let new_tat = now + new_ahead;
        (after, LimiterState::Gcra { tat: new_tat }, new_tat.ceil() as i64)
    });
    Evaluation { current, consumed }
}

fn sliding_window(state: Option<&LimiterState>, policy: &Policy, cost: u32, now_ms: i64) -> Evaluation {
    let window = policy.window_ms as i64;
    let limit = f64::from(policy.limit);
    let index = now_ms.div_euclid(window);
    let (curr, prev) = match state {
        Some(LimiterState::Window { index: i, curr, prev: p }) if *i == index => (*curr, *p),
        Some(LimiterState::Window { index: i, curr, .. }) if *i == index - 1 => (0, *curr),
        _ => (0, 0),
    };
    let start = index * window;
    let elapsed = (now_ms - start) as f64;
    let w = window as f64;
    let estimate = prev as f64 * (w - elapsed) / w + curr as f64;
    let cost_f = f64::from(cost);
    let allowed = estimate + cost_f <= limit + EPS;
    let reset_after_ms = if curr > 0 {
        (start + 2 * window - now_ms) as u64
    } else if prev > 0 {
        (start + window - now_ms) as u64
    } else {
        0
    };
    let retry_after_ms = if allowed {
        0
    } else if curr as f64 + cost_f <= limit + EPS {
        // Fits in this window once enough of the previous one has slid out.
        let needed = w - (limit - curr as f64 - cost_f) * w / prev as f64;
        ceil_ms(start as f64 + needed - now_ms as f64)
    } else {
        // Only in the next window, once enough of this one has slid out.
        let needed = w - (limit - cost_f) * w / curr as f64;
        ceil_ms((start + window) as f64 + needed - now_ms as f64)
    };
    let current = Decision {
        allowed,
        limit: policy.limit,
        remaining: floor_count(limit - estimate),
        reset_after_ms,
        retry_after_ms,
    };
    let consumed = allowed.then(|| {
        let after = Decision {
            allowed: true,
            limit: policy.limit,
            remaining: floor_count(limit - estimate - cost_f),
            reset_after_ms: (start + 2 * window - now_ms) as u64,
            retry_after_ms: 0,
        };
        let next = LimiterState::Window { index, curr: curr + u64::from(cost), prev };
        (after, next, start + 2 * window)
    });
    Evaluation { current, consumed }
}

fn sliding_log(state: Option<&LimiterState>, policy: &Policy, cost: u32, now_ms: i64) -> Evaluation {
    let window = policy.window_ms as i64;
    let mut entries: VecDeque<i64> = match state {
        Some(LimiterState::Log { entries }) => entries.iter().copied().filter(|t| t + window > now_ms).collect(),
        _ => VecDeque::new(),
    };
    let n = entries.len() as u64;
    let limit = u64::from(policy.limit);
    let cost64 = u64::from(cost);
    let allowed = n + cost64 <= limit;
    let retry_after_ms = if allowed {
        0
    } else {
        // The (n + cost - limit)-th oldest entry must leave the window first.
        let k = (n + cost64 - limit) as usize;
        entries.get(k - 1).map_or(window as u64, |t| (t + window - now_ms) as u64)
    };
    let current = Decision {
        allowed,
        limit: policy.limit,
        remaining: limit.saturating_sub(n) as u32,
        reset_after_ms: entries.back().map_or(0, |t| (t + window - now_ms) as u64),
        retry_after_ms,
    };
    let consumed = allowed.then(|| {
        entries.extend(std::iter::repeat_n(now_ms, cost as usize));
        let after = Decision {
            allowed: true,
            limit: policy.limit,
            remaining: (limit - n - cost64) as u32,
            reset_after_ms: window as u64,
            retry_after_ms: 0,
        };
        (after, LimiterState::Log { entries }, now_ms + window)
    });
    Evaluation { current, consumed }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(policy: Policy, times: &[i64]) -> Vec<bool> {
        let mut state = None;
        times
            .iter()
            .map(|now| {
                let e = evaluate(state.as_ref(), &policy, 1, *now);
                if let Some((_, s, _)) = e.consumed {
                    state = Some(s);
                    true
                } else {
                    false
                }
            })
            .collect()
    }

    #[test]
    fn gcra_allows_the_burst_then_the_rate() {
        let p = Policy { burst: Some(2), ..Policy::gcra(1, 1000) };
        assert_eq!(run(p, &[0, 0, 0, 999, 1000, 1001]), [true, true, false, false, true, false]);
    }

    #[test]
    fn sliding_window_weights_the_previous_window() {
        let p = Policy::gcra(2, 1000).with_algorithm(Algorithm::SlidingWindow);
        // Two in window 0; at 1500 the estimate is 2 * 0.5 = 1, so one more fits.
        assert_eq!(run(p, &[0, 10, 20, 1500, 1600]), [true, true, false, true, false]);
    }

    #[test]
    fn sliding_log_is_exact() {
        let p = Policy::gcra(2, 1000).with_algorithm(Algorithm::SlidingLog);
        assert_eq!(run(p, &[0, 500, 999, 1000, 1001, 1499, 1500]), [true, true, false, true, false, false, true]);
    }

    #[test]
    fn gcra_fractional_intervals_admit_exactly_the_burst_at_epoch_times() {
        // 1000 / 3 ms is not representable; three requests must still exactly fill a burst of 3.
        let p = Policy::gcra(3, 1000);
        let now = 1_795_000_000_123;
        assert_eq!(run(p, &[now, now, now, now]), [true, true, true, false]);
        assert_eq!(run(p, &[now, now, now, now + 334]), [true, true, true, true]);
    }

    #[test]
    fn denied_requests_say_when_to_retry() {
        let p = Policy::gcra(1, 1000);
        let first = evaluate(None, &p, 1, 0).consumed.unwrap().1;
        let e = evaluate(Some(&first), &p, 1, 250);
        assert!(!e.current.allowed);
        assert_eq!(e.current.retry_after_ms, 750);
        let p = p.with_algorithm(Algorithm::SlidingLog);
        let first = evaluate(None, &p, 1, 0).consumed.unwrap().1;
        assert_eq!(evaluate(Some(&first), &p, 1, 250).current.retry_after_ms, 750);
    }

    #[test]
    fn policy_shorthand_parses() {
        assert_eq!("10 per 60 s".parse::<Policy>().unwrap(), Policy::gcra(10, 60_000));
        assert_eq!(
            "5 per 1m sliding_log".parse::<Policy>().unwrap(),
            Policy::gcra(5, 60_000).with_algorithm(Algorithm::SlidingLog)
        );
        assert_eq!("10 per 1 s burst 20".parse::<Policy>().unwrap().burst, Some(20));
        assert!("10 every 60 s".parse::<Policy>().is_err());
        assert!("0 per 1 s".parse::<Policy>().is_err());
    }
}

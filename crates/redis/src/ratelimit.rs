//! `RedisRateLimiter`: every check, single- or multi-key, is one run of
//! `lua/ratelimit_check.lua`, which mirrors core's reference algorithms on the server clock.
//!
//! Redis Cluster: each key is tagged by its own rate-limit key, so the keys of a multi-key check
//! usually live on different slots, which one script cannot span. There a check whose keys span
//! slots runs in two steps: every key decides without consuming (concurrently, each on its own
//! shard); only if all allow, every key consumes. See [`RateLimiter::check`] for what that keeps
//! and what it loosens under concurrency.

use std::sync::LazyLock;

use async_trait::async_trait;
use redis::Script;
use switchboard_core::{Decision, Error, Policy, RateLimitKey, RateLimitRequest, RateLimiter, Result};

use crate::connection::{Conn, lua};
use crate::keys::{Keys, slot};

static CHECK: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/ratelimit_check.lua")));

/// Integers the script returns per key.
const REPLY_WIDTH: usize = 5;

/// Rate limits in Redis. See [`RateLimiter`] for the contract.
///
/// State per key, expiring when it no longer matters: `gcra` one string (the theoretical
/// arrival time, stored with 17 significant digits so it round-trips exactly),
/// `sliding_window` a hash of the window index and two counts, `sliding_log` a ZSET of request
/// times. State of another algorithm has another Redis type and counts as empty.
pub(crate) struct RedisRateLimiter {
    conn: Conn,
    keys: Keys,
}

impl RedisRateLimiter {
    pub(crate) fn new(conn: Conn, keys: Keys) -> Self {
        RedisRateLimiter { conn, keys }
    }

    /// Runs the check script over `(key, policy, cost)`, consuming only if `consume` and every
    /// key allows it.
    async fn run<'a>(
        &self,
        op: &'static str,
        items: impl ExactSizeIterator<Item = (&'a RateLimitKey, &'a Policy, u32)>,
        consume: bool,
    ) -> Result<Vec<Decision>> {
        let n = items.len();
        if n > 1 && self.conn.is_cluster() {
            let items: Vec<_> = items.collect();
            let first = slot(&self.keys.rate_limit(items[0].0));
            if items.iter().any(|(key, ..)| slot(&self.keys.rate_limit(key)) != first) {
                return self.run_across_slots(op, &items, consume).await;
            }
            return self.run_one_script(op, items.into_iter(), consume).await;
        }
        self.run_one_script(op, items, consume).await
    }

    /// One script over every key: atomic, all or nothing (every key in one slot on a cluster).
    async fn run_one_script<'a>(
        &self,
        op: &'static str,
        items: impl ExactSizeIterator<Item = (&'a RateLimitKey, &'a Policy, u32)>,
        consume: bool,
    ) -> Result<Vec<Decision>> {
        let n = items.len();
        let mut invocation = CHECK.prepare_invoke();
        for (key, policy, cost) in items {
            invocation
                .key(self.keys.rate_limit(key))
                .arg(policy.algorithm.as_str())
                .arg(policy.limit)
                .arg(policy.window_ms)
                .arg(policy.capacity())
                .arg(cost)
                .arg(u8::from(consume));
        }
        let flat: Vec<i64> = self.conn.script(op, &invocation).await?;
        if flat.len() != n * REPLY_WIDTH {
            return Err(Error::Internal(format!("redis: {op}: {} integers for {n} keys", flat.len())));
        }
        flat.chunks_exact(REPLY_WIDTH).map(|c| decision(op, c)).collect()
    }
}

impl RedisRateLimiter {
    /// A check whose keys span cluster slots: every key decides without consuming (one script
    /// per key, all sent at once); if any denies, those decisions are the answer and nothing
    /// was consumed. Otherwise every key consumes; a key that a concurrent check emptied in
    /// between denies then, and the keys that did consume keep it (an over-count: it errs
    /// towards denying, never admits past a limit).
    async fn run_across_slots(
        &self,
        op: &'static str,
        items: &[(&RateLimitKey, &Policy, u32)],
        consume: bool,
    ) -> Result<Vec<Decision>> {
        let invocations = |consume: bool| {
            items
                .iter()
                .map(|(key, policy, cost)| {
                    let mut invocation = CHECK.prepare_invoke();
                    invocation
                        .key(self.keys.rate_limit(key))
                        .arg(policy.algorithm.as_str())
                        .arg(policy.limit)
                        .arg(policy.window_ms)
                        .arg(policy.capacity())
                        .arg(cost)
                        .arg(u8::from(consume));
                    invocation
                })
                .collect::<Vec<_>>()
        };
        let decide = |replies: Vec<Vec<i64>>| -> Result<Vec<Decision>> {
            replies
                .iter()
                .map(|flat| match flat.len() == REPLY_WIDTH {
                    true => decision(op, flat),
                    false => Err(Error::Internal(format!("redis: {op}: {} integers for one key", flat.len()))),
                })
                .collect()
        };
        let first = decide(self.conn.script_batch(op, &CHECK, &invocations(false)).await?)?;
        if !consume || first.iter().any(|d| !d.allowed) {
            return Ok(first);
        }
        decide(self.conn.script_batch(op, &CHECK, &invocations(true)).await?)
    }
}

fn decision(op: &str, c: &[i64]) -> Result<Decision> {
    let bad = || Error::Internal(format!("redis: {op}: decision out of range: {c:?}"));
    Ok(Decision {
        allowed: c[0] == 1,
        limit: u32::try_from(c[1]).map_err(|_| bad())?,
        remaining: u32::try_from(c[2]).map_err(|_| bad())?,
        reset_after_ms: u64::try_from(c[3]).map_err(|_| bad())?,
        retry_after_ms: u64::try_from(c[4]).map_err(|_| bad())?,
    })
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, requests: &[RateLimitRequest]) -> Result<Vec<Decision>> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        self.run("rate_limits.check", requests.iter().map(|r| (&r.key, &r.policy, r.cost)), true).await
    }

    async fn status(&self, key: &RateLimitKey, policy: &Policy) -> Result<Decision> {
        let mut decisions = self.run("rate_limits.status", std::iter::once((key, policy, 1)), false).await?;
        decisions.pop().ok_or_else(|| Error::Internal("redis: rate_limits.status: no decision".into()))
    }

    async fn reset(&self, key: &RateLimitKey) -> Result<bool> {
        let removed: i64 = self.conn.cmd("rate_limits.reset", redis::cmd("DEL").arg(self.keys.rate_limit(key))).await?;
        Ok(removed > 0)
    }
}

//! Rate limits: policies, decisions, the [`RateLimiter`] contract, and (in [`algorithms`]) the
//! reference implementation of each algorithm that the memory engine runs and the Redis engine's
//! Lua mirrors operation for operation.

pub mod algorithms;

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::RateLimitKey;

/// Which algorithm decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Algorithm {
    /// Generic cell rate algorithm: a steady rate plus a burst, one value per key.
    #[default]
    Gcra,
    /// Two fixed windows weighted by overlap: cheap and smooth, approximate.
    SlidingWindow,
    /// One entry per request in the window: exact, costs memory per request.
    SlidingLog,
}

impl Algorithm {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Gcra => "gcra",
            Algorithm::SlidingWindow => "sliding_window",
            Algorithm::SlidingLog => "sliding_log",
        }
    }
}

/// Largest `limit` / `burst` of a policy.
pub const MAX_POLICY_LIMIT: u32 = 1_000_000;
/// Largest `limit` of a `sliding_log` policy (one stored entry per request).
pub const MAX_LOG_LIMIT: u32 = 10_000;
/// Longest window: 30 days.
pub const MAX_WINDOW_MS: u64 = 30 * 24 * 3600 * 1000;

/// `limit` requests per `window_ms`, decided by `algorithm`. For `gcra`, `burst` (default
/// `limit`) is how many may come at once; the others ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Policy {
    /// Algorithm (default `gcra`).
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Requests allowed per window, 1..=1000000 (`sliding_log`: 1..=10000).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000000))]
    pub limit: u32,
    /// Window length in milliseconds, 1..=2592000000 (30 d).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 2592000000_u64))]
    pub window_ms: u64,
    /// GCRA only: requests allowed at once (default `limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000000))]
    pub burst: Option<u32>,
}

impl Policy {
    /// A GCRA policy of `limit` per `window_ms`.
    pub fn gcra(limit: u32, window_ms: u64) -> Self {
        Policy { algorithm: Algorithm::Gcra, limit, window_ms, burst: None }
    }

    /// The same limit with another algorithm.
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// How many requests fit at once: `burst` for GCRA, `limit` for the others.
    pub fn capacity(&self) -> u32 {
        match self.algorithm {
            Algorithm::Gcra => self.burst.unwrap_or(self.limit),
            _ => self.limit,
        }
    }

    /// Checks the bounds; the error names `field`.
    pub fn validate(&self, field: &str) -> Result<()> {
        if self.limit == 0 || self.limit > MAX_POLICY_LIMIT {
            return Err(Error::invalid(&format!("{field}.limit"), format!("must be 1..={MAX_POLICY_LIMIT}")));
        }
        if self.window_ms == 0 || self.window_ms > MAX_WINDOW_MS {
            return Err(Error::invalid(&format!("{field}.window_ms"), format!("must be 1..={MAX_WINDOW_MS}")));
        }
        if let Some(b) = self.burst
            && (b == 0 || b > MAX_POLICY_LIMIT)
        {
            return Err(Error::invalid(&format!("{field}.burst"), format!("must be 1..={MAX_POLICY_LIMIT}")));
        }
        if self.algorithm == Algorithm::SlidingLog && self.limit > MAX_LOG_LIMIT {
            return Err(Error::invalid(
                &format!("{field}.limit"),
                format!("sliding_log allows at most {MAX_LOG_LIMIT}"),
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} per {} ms ({})", self.limit, self.window_ms, self.algorithm.as_str())
    }
}

/// Parses the config shorthand `"10 per 60 s"`, optionally followed by an algorithm and a burst:
/// `"100 per 1 m sliding_log"`, `"10 per 1 s gcra burst 20"`. Units: ms, s, m, h, d.
impl FromStr for Policy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "policy",
                format!("{s:?} is not like \"10 per 60 s [gcra|sliding_window|sliding_log] [burst N]\""),
            )
        };
        let words: Vec<&str> = s.split_whitespace().collect();
        let (limit, rest) = match words.as_slice() {
            [limit, "per", rest @ ..] => (limit.parse::<u32>().map_err(|_| bad())?, rest),
            _ => return Err(bad()),
        };
        // "60 s" or "60s"
        let (amount, unit, rest) = match rest {
            [n, unit, rest @ ..] if n.chars().all(|c| c.is_ascii_digit()) => (n.to_string(), unit.to_string(), rest),
            [joined, rest @ ..] => {
                let split = joined.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
                (joined[..split].to_string(), joined[split..].to_string(), rest)
            }
            [] => return Err(bad()),
        };
        let amount: u64 = amount.parse().map_err(|_| bad())?;
        let unit_ms: u64 = match unit.as_str() {
            "ms" => 1,
            "s" | "sec" | "second" | "seconds" => 1000,
            "m" | "min" | "minute" | "minutes" => 60_000,
            "h" | "hour" | "hours" => 3_600_000,
            "d" | "day" | "days" => 86_400_000,
            _ => return Err(bad()),
        };
        let mut policy = Policy::gcra(limit, amount.saturating_mul(unit_ms));
        let mut rest = rest.iter();
        while let Some(word) = rest.next() {
            match *word {
                "gcra" => policy.algorithm = Algorithm::Gcra,
                "sliding_window" => policy.algorithm = Algorithm::SlidingWindow,
                "sliding_log" => policy.algorithm = Algorithm::SlidingLog,
                "burst" => policy.burst = Some(rest.next().and_then(|b| b.parse().ok()).ok_or_else(bad)?),
                _ => return Err(bad()),
            }
        }
        policy.validate("policy")?;
        Ok(policy)
    }
}

/// One key to check with its policy and cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitRequest {
    /// The limited thing, e.g. `ip:10.0.0.1`.
    pub key: RateLimitKey,
    /// The policy deciding it.
    pub policy: Policy,
    /// How many units this request uses (1..=capacity).
    pub cost: u32,
}

/// The decision for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Decision {
    /// Whether the request is (or, when nothing was consumed, would be) allowed.
    pub allowed: bool,
    /// The policy's capacity (see [`Policy::capacity`]).
    pub limit: u32,
    /// Requests of cost 1 still allowed right now.
    pub remaining: u32,
    /// Milliseconds until the key is back to its full capacity.
    pub reset_after_ms: u64,
    /// Milliseconds until this request could be allowed; 0 when allowed.
    pub retry_after_ms: u64,
}

/// Storage and decision of rate limits. Times come from the engine's clock (the Redis server's
/// for Redis, so nodes with skewed clocks still agree).
///
/// Contract, for every engine: decisions follow [`algorithms`] exactly; state for a key kept
/// with another algorithm than the policy's counts as empty; idle keys vanish after their window.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Decides all `requests` atomically, all or nothing: if every one is allowed, every one is
    /// consumed and the decisions after consumption are returned; otherwise nothing is consumed
    /// and each decision says whether that key alone would allow it, with its current
    /// `remaining`. Keys are distinct (the service checks).
    ///
    /// Atomicity by topology: on the memory engine, standalone Redis and Redis under Sentinel
    /// the whole check is one atomic step. On Redis Cluster a check whose keys all share one
    /// slot is one atomic step too; a check whose keys span slots decides every key first,
    /// without consuming, and only if all allow consumes every key. Run alone it gives the same
    /// answers; under concurrent checks of the same keys no key ever admits past its limit,
    /// but a key emptied between the two steps denies the check while its other keys stay
    /// consumed (the check errs towards denying).
    async fn check(&self, requests: &[RateLimitRequest]) -> Result<Vec<Decision>>;

    /// The decision a cost-1 check would get now, consuming nothing.
    async fn status(&self, key: &RateLimitKey, policy: &Policy) -> Result<Decision>;

    /// Forgets the key's state; `false` if there was none.
    async fn reset(&self, key: &RateLimitKey) -> Result<bool>;
}

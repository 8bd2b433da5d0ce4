//! [`RateLimits`]: named and ad-hoc policies, multi-key checks, metrics over a [`RateLimiter`].

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::observe;
use crate::config::RateLimitsConfig;
use crate::error::{Error, Result};
use crate::ids::RateLimitKey;
use crate::limits::MAX_BATCH;
use crate::ratelimit::{Decision, Policy, RateLimitRequest, RateLimiter};

/// A policy by its configured name, or given in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PolicyRef {
    /// A policy named in the configuration, e.g. `"send_message"`.
    Named(String),
    /// An ad-hoc policy.
    Inline(Policy),
}

/// One key to check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RateLimitCheck {
    /// The limited thing, e.g. `ip:10.0.0.1`.
    pub key: RateLimitKey,
    /// Its policy.
    pub policy: PolicyRef,
    /// Units used, 1..= the policy's capacity (its burst, or limit; default 1).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000000))]
    pub cost: Option<u32>,
}

/// The decision for one key of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyDecision {
    /// The key.
    pub key: RateLimitKey,
    /// The policy that decided, resolved.
    pub policy: Policy,
    /// The policy's name when it was named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<String>,
    /// The decision.
    #[serde(flatten)]
    pub decision: Decision,
}

/// The answer to a (multi-key) check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckOutcome {
    /// True when every key allowed it (and all were consumed).
    pub allowed: bool,
    /// Longest wait before a retry could succeed, 0 when allowed.
    pub retry_after_ms: u64,
    /// One decision per key, in request order.
    pub decisions: Vec<KeyDecision>,
}

impl CheckOutcome {
    /// The decision with the fewest remaining requests (what rate-limit headers report).
    pub fn tightest(&self) -> Option<&KeyDecision> {
        self.decisions.iter().min_by_key(|d| (d.decision.allowed, d.decision.remaining))
    }
}

/// The rate-limits service.
#[derive(Clone)]
pub struct RateLimits {
    limiter: Arc<dyn RateLimiter>,
    policies: BTreeMap<String, Policy>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").field("policies", &self.policies).finish_non_exhaustive()
    }
}

impl RateLimits {
    /// Wraps `limiter` with the configured named policies.
    pub fn new(limiter: Arc<dyn RateLimiter>, config: RateLimitsConfig) -> Self {
        RateLimits { limiter, policies: config.policies }
    }

    /// The configured policies by name.
    pub fn policies(&self) -> &BTreeMap<String, Policy> {
        &self.policies
    }

    /// Resolves a policy reference; unknown names are an invalid argument.
    pub fn resolve(&self, field: &str, policy: &PolicyRef) -> Result<(Policy, Option<String>)> {
        match policy {
            PolicyRef::Named(name) => match self.policies.get(name) {
                Some(p) => Ok((*p, Some(name.clone()))),
                None => Err(Error::invalid(field, format!("no policy named {name:?} is configured"))),
            },
            PolicyRef::Inline(p) => {
                p.validate(field)?;
                Ok((*p, None))
            }
        }
    }

    /// Checks one or more keys atomically, all or nothing. See [`RateLimiter::check`].
    pub async fn check(&self, checks: &[RateLimitCheck]) -> Result<CheckOutcome> {
        if checks.is_empty() || checks.len() > MAX_BATCH {
            return Err(Error::invalid("checks", format!("must hold 1..={MAX_BATCH} keys")));
        }
        let mut seen = HashSet::with_capacity(checks.len());
        let mut requests = Vec::with_capacity(checks.len());
        let mut names = Vec::with_capacity(checks.len());
        for (i, c) in checks.iter().enumerate() {
            if !seen.insert(&c.key) {
                return Err(Error::invalid(&format!("checks[{i}].key"), "appears twice"));
            }
            let (policy, name) = self.resolve(&format!("checks[{i}].policy"), &c.policy)?;
            let cost = c.cost.unwrap_or(1);
            if cost == 0 || cost > policy.capacity() {
                return Err(Error::invalid(
                    &format!("checks[{i}].cost"),
                    format!("must be 1..={} for this policy", policy.capacity()),
                ));
            }
            requests.push(RateLimitRequest { key: c.key.clone(), policy, cost });
            names.push(name);
        }
        let decisions = observe("rate_limits", "check", self.limiter.check(&requests)).await?;
        if decisions.len() != requests.len() {
            return Err(Error::Internal(format!(
                "engine answered {} decisions for {} keys",
                decisions.len(),
                requests.len()
            )));
        }
        let allowed = decisions.iter().all(|d| d.allowed);
        metrics::counter!("switchboard_rate_limit_decisions_total", "result" => if allowed { "allowed" } else { "denied" })
            .increment(1);
        let retry_after_ms = decisions.iter().map(|d| d.retry_after_ms).max().unwrap_or(0);
        let decisions = requests
            .into_iter()
            .zip(names)
            .zip(decisions)
            .map(|((r, policy_name), decision)| KeyDecision { key: r.key, policy: r.policy, policy_name, decision })
            .collect();
        Ok(CheckOutcome { allowed, retry_after_ms, decisions })
    }

    /// Checks one key with a named policy; a shorthand for the library.
    pub async fn check_named(&self, key: &RateLimitKey, policy: &str) -> Result<Decision> {
        let check = RateLimitCheck { key: key.clone(), policy: PolicyRef::Named(policy.to_owned()), cost: None };
        let outcome = self.check(std::slice::from_ref(&check)).await?;
        Ok(outcome.decisions[0].decision)
    }

    /// The decision a cost-1 check would get, consuming nothing.
    pub async fn status(&self, key: &RateLimitKey, policy: &PolicyRef) -> Result<KeyDecision> {
        let (resolved, policy_name) = self.resolve("policy", policy)?;
        let decision = observe("rate_limits", "status", self.limiter.status(key, &resolved)).await?;
        Ok(KeyDecision { key: key.clone(), policy: resolved, policy_name, decision })
    }

    /// Forgets a key's state.
    pub async fn reset(&self, key: &RateLimitKey) -> Result<bool> {
        observe("rate_limits", "reset", self.limiter.reset(key)).await
    }
}

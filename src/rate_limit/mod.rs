//! Rate limiting: every limit of a named policy checked and consumed in one
//! Redis round trip.
//!
//! The algorithm is GCRA (the generic cell rate algorithm). Each limit keeps
//! a single timestamp, the time at which its allowance would be whole again,
//! so memory stays constant however high the limit, where a sliding log keeps
//! one entry per request. It is exact, not the estimate a two-window sliding
//! counter makes, and it has no window edges a caller can straddle to get
//! twice the limit. `burst` requests pass at once, then one every
//! window/limit; the retry time of a denial is exact.

mod headers;
mod lease;
mod policy;

use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use headers::{ceil_secs, legacy_headers, ratelimit_header, ratelimit_policy_header};
use lease::Leases;
pub use policy::{Limit, Policies, Policy};

use crate::auth::TenantId;
use crate::config::{RateLimitSettings, RedisDownMode};
use crate::metrics::Metrics;
use crate::stores::redis::gcra::{GcraLimit, GcraState};
use crate::stores::redis::Redis;
use crate::stores::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    #[error("no rate-limit policy named {0:?}")]
    UnknownPolicy(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The state of one limit after a check.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitState {
    pub limit: Limit,
    pub allowed: bool,
    pub remaining: u64,
    /// Until the allowance is whole again.
    pub reset_us: u64,
    /// Until a request of this cost would pass; 0 when it did.
    pub retry_us: u64,
}

/// What a check decided.
#[derive(Debug, Clone)]
pub struct Decision {
    pub policy: Arc<Policy>,
    /// Whether the caller may go ahead (always, in shadow mode).
    pub allowed: bool,
    /// The policy would have denied, but is in shadow mode.
    pub shadow_denied: bool,
    /// Redis could not answer and the policy fails open: nothing was counted.
    pub unchecked: bool,
    pub limits: Vec<LimitState>,
}

impl Decision {
    /// The limit the top-level fields describe: the violated one that frees
    /// up last, else the one with the least left.
    pub fn binding(&self) -> Option<&LimitState> {
        let violated = self.limits.iter().filter(|l| !l.allowed);
        violated.max_by_key(|l| l.retry_us).or_else(|| {
            self.limits
                .iter()
                .min_by_key(|l| (l.remaining, std::cmp::Reverse(l.reset_us)))
        })
    }

    pub fn retry_after_us(&self) -> u64 {
        self.limits.iter().map(|l| l.retry_us).max().unwrap_or(0)
    }

    fn unchecked(policy: Arc<Policy>) -> Self {
        let limits = policy
            .limits
            .iter()
            .map(|limit| LimitState {
                limit: limit.clone(),
                allowed: true,
                remaining: limit.burst,
                reset_us: 0,
                retry_us: 0,
            })
            .collect();
        Self {
            policy,
            allowed: true,
            shadow_denied: false,
            unchecked: true,
            limits,
        }
    }
}

#[derive(Clone)]
pub struct RateLimiter {
    redis: Redis,
    policies: Arc<Policies>,
    settings: Arc<RateLimitSettings>,
    leases: Arc<Leases>,
    metrics: Arc<Metrics>,
}

impl RateLimiter {
    pub fn new(
        redis: Redis,
        settings: &RateLimitSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Self, RateLimitError> {
        let policies = Policies::from_settings(settings)
            .map_err(|(key, problem)| RateLimitError::Invalid(format!("{key}: {problem}")))?;
        Ok(Self {
            redis,
            policies: Arc::new(policies),
            settings: Arc::new(settings.clone()),
            leases: Arc::new(Leases::default()),
            metrics,
        })
    }

    pub fn default_policy(&self) -> &str {
        &self.settings.default_policy
    }

    /// The policy every authenticated request passes, if one is configured.
    pub fn gateway_policy(&self) -> Option<&str> {
        Some(self.settings.gateway_policy.as_str()).filter(|name| !name.is_empty())
    }

    /// Consumes `cost` from every limit of `policy` for `key`, if all allow it.
    pub async fn check(
        &self,
        tenant: &TenantId,
        policy: &str,
        key: &str,
        cost: u64,
    ) -> Result<Decision, RateLimitError> {
        self.refuse_gateway_policy(policy)?;
        self.evaluate(tenant, policy, key, cost, true).await
    }

    /// The gateway's own policy is keyed by API key id: a caller could
    /// otherwise spend (or watch) another key's budget through it.
    fn refuse_gateway_policy(&self, policy: &str) -> Result<(), RateLimitError> {
        if self.gateway_policy() == Some(policy) {
            return Err(RateLimitError::Invalid(format!(
                "policy {policy:?} holds the gateway's own limits (rate_limit.gateway_policy); \
                 callers cannot check it"
            )));
        }
        Ok(())
    }

    /// Admits one request of the gateway's own traffic under `policy`:
    /// `None` when it may go ahead, else the denial.
    ///
    /// A busy key would otherwise cost a Redis round trip per request, so a
    /// check reserves a small share of the limit at once (1/64 of its
    /// smallest burst, and a single unit for small limits, which therefore
    /// stay exact) and spends it locally for up to a second. Units count
    /// against the limit when reserved, so a key gets ahead of a window
    /// only by units reserved just before it and spent within it.
    pub async fn admit(
        &self,
        tenant: &TenantId,
        policy_name: &str,
        key: &str,
    ) -> Result<Option<Decision>, RateLimitError> {
        let lease_key = lease::key(tenant, policy_name, key);
        if self.leases.take_one(&lease_key) {
            self.count(policy_name, "allowed");
            return Ok(None);
        }
        let policy = self
            .policies
            .get(tenant, policy_name)
            .ok_or_else(|| RateLimitError::UnknownPolicy(policy_name.to_owned()))?;
        let batch = (policy.max_cost() / lease::SHARE)
            .min(self.settings.max_cost)
            .max(1);
        let mut granted = batch;
        let mut decision = self.evaluate(tenant, policy_name, key, batch, true).await?;
        if !decision.allowed && batch > 1 {
            granted = 1;
            decision = self.evaluate(tenant, policy_name, key, 1, true).await?;
        }
        if !decision.allowed {
            return Ok(Some(decision));
        }
        if granted > 1 && !decision.unchecked && !decision.shadow_denied {
            self.leases.grant(lease_key, granted - 1);
        }
        Ok(None)
    }

    /// What a check of cost 1 would decide, consuming nothing.
    pub async fn status(
        &self,
        tenant: &TenantId,
        policy: &str,
        key: &str,
    ) -> Result<Decision, RateLimitError> {
        self.refuse_gateway_policy(policy)?;
        self.evaluate(tenant, policy, key, 1, false).await
    }

    async fn evaluate(
        &self,
        tenant: &TenantId,
        policy_name: &str,
        key: &str,
        cost: u64,
        consume: bool,
    ) -> Result<Decision, RateLimitError> {
        let policy = self
            .policies
            .get(tenant, policy_name)
            .ok_or_else(|| RateLimitError::UnknownPolicy(policy_name.to_owned()))?;
        self.validate(&policy, key, cost)?;

        let slot = slot_tag(tenant, &policy.name, key);
        let limits: Vec<GcraLimit<'_>> = policy
            .limits
            .iter()
            .map(|limit| GcraLimit {
                name: &limit.name,
                emission_us: limit.emission_us,
                tolerance_us: limit.tolerance_us,
            })
            .collect();
        let answer = self
            .redis
            .gcra(&slot, &limits, cost, consume, self.settings.timeout())
            .await;
        let decision = match answer {
            Ok((enforced, states)) => decision_from(policy.clone(), enforced, states),
            Err(error) if error.is_unavailable() && policy.on_redis_down == RedisDownMode::Open => {
                tracing::warn!(policy = %policy.name, %error, "rate limit not checked: Redis unavailable, failing open");
                Decision::unchecked(policy.clone())
            }
            Err(error) => return Err(error.into()),
        };
        if consume {
            let outcome = if decision.unchecked {
                "unchecked"
            } else if decision.shadow_denied {
                "shadow_denied"
            } else if decision.allowed {
                "allowed"
            } else {
                "denied"
            };
            self.count(&policy.name, outcome);
        }
        Ok(decision)
    }

    fn count(&self, policy: &str, outcome: &str) {
        self.metrics
            .rate_limit_decisions
            .with_label_values(&[policy, outcome])
            .inc();
    }

    fn validate(&self, policy: &Policy, key: &str, cost: u64) -> Result<(), RateLimitError> {
        if key.is_empty() || key.len() > self.settings.max_key_bytes {
            return Err(RateLimitError::Invalid(format!(
                "key must be 1 to {} bytes",
                self.settings.max_key_bytes
            )));
        }
        let most = self.settings.max_cost.min(policy.max_cost());
        if cost == 0 || cost > most {
            return Err(RateLimitError::Invalid(format!(
                "cost must be 1 to {most} for policy {:?} (its smallest burst, and rate_limit.max_cost)",
                policy.name
            )));
        }
        Ok(())
    }
}

/// One hash tag for all limits of a (tenant, policy, key), so the script's
/// keys share a Redis Cluster slot; hashing keeps any caller's key, whatever
/// its bytes, out of the key's structure.
fn slot_tag(tenant: &TenantId, policy: &str, key: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [tenant.as_str(), policy, key] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

fn decision_from(policy: Arc<Policy>, enforced: bool, states: Vec<GcraState>) -> Decision {
    let limits = policy
        .limits
        .iter()
        .zip(states)
        .map(|(limit, state)| LimitState {
            limit: limit.clone(),
            allowed: state.allowed,
            remaining: state.remaining,
            reset_us: state.reset_us,
            retry_us: state.retry_us,
        })
        .collect();
    Decision {
        allowed: enforced || policy.shadow,
        shadow_denied: !enforced && policy.shadow,
        unchecked: false,
        limits,
        policy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_tags_separate_tenants_policies_and_keys() {
        let a = TenantId::parse("a").unwrap();
        let b = TenantId::parse("b").unwrap();
        assert_ne!(slot_tag(&a, "p", "k"), slot_tag(&b, "p", "k"));
        assert_ne!(slot_tag(&a, "p", "k"), slot_tag(&a, "q", "k"));
        // Lengths are part of the hash, so parts cannot slide into each other.
        assert_ne!(slot_tag(&a, "pk", ""), slot_tag(&a, "p", "k"));
        assert_eq!(slot_tag(&a, "p", "k").len(), 32);
    }
}

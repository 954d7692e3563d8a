//! Named policies from the configuration, compiled into the numbers the
//! GCRA script works with.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::TenantId;
use crate::config::{PolicySettings, RateLimitSettings, RedisDownMode};

/// One limit of a policy: `limit` units per `window`, at most `burst` at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub name: String,
    pub limit: u64,
    pub window: Duration,
    pub burst: u64,
    /// Microseconds one unit of cost occupies: the window over the limit,
    /// rounded up so the rate never exceeds the one configured.
    pub emission_us: u64,
    /// Microseconds of credit a caller may run ahead: `burst` units.
    pub tolerance_us: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub limits: Vec<Limit>,
    pub shadow: bool,
    pub on_redis_down: RedisDownMode,
}

impl Policy {
    /// The largest cost a single check can ever be allowed.
    pub fn max_cost(&self) -> u64 {
        self.limits.iter().map(|l| l.burst).min().unwrap_or(0)
    }
}

/// Every policy, and the per-tenant replacements.
#[derive(Debug, Clone)]
pub struct Policies {
    shared: BTreeMap<String, Arc<Policy>>,
    by_tenant: BTreeMap<String, BTreeMap<String, Arc<Policy>>>,
}

/// A configuration key and what is wrong with it.
pub type PolicyError = (String, String);

impl Policies {
    pub fn from_settings(settings: &RateLimitSettings) -> Result<Self, PolicyError> {
        let compile_all = |prefix: &str, policies: &BTreeMap<String, PolicySettings>| {
            policies
                .iter()
                .map(|(name, policy)| {
                    compile(&format!("{prefix}.{name}"), name, policy)
                        .map(|p| (name.clone(), Arc::new(p)))
                })
                .collect::<Result<BTreeMap<_, _>, _>>()
        };
        let shared = compile_all("rate_limit.policies", &settings.policies)?;
        let mut by_tenant = BTreeMap::new();
        for (tenant, policies) in &settings.tenants {
            let key = format!("rate_limit.tenants.{tenant}");
            TenantId::parse(tenant).map_err(|e| (key.clone(), e.to_string()))?;
            by_tenant.insert(tenant.clone(), compile_all(&key, policies)?);
        }
        let policies = Self { shared, by_tenant };
        for (key, name) in [
            ("rate_limit.default_policy", &settings.default_policy),
            ("rate_limit.gateway_policy", &settings.gateway_policy),
        ] {
            if key.ends_with("gateway_policy") && name.is_empty() {
                continue;
            }
            if !policies.shared.contains_key(name) {
                return Err((key.to_owned(), format!("no policy named {name:?}")));
            }
        }
        Ok(policies)
    }

    /// The policy `name` as it applies to `tenant`.
    pub fn get(&self, tenant: &TenantId, name: &str) -> Option<Arc<Policy>> {
        self.by_tenant
            .get(tenant.as_str())
            .and_then(|policies| policies.get(name))
            .or_else(|| self.shared.get(name))
            .cloned()
    }
}

fn compile(key: &str, name: &str, settings: &PolicySettings) -> Result<Policy, PolicyError> {
    let problem = |what: String| (key.to_owned(), what);
    if !valid_name(name) {
        return Err(problem(
            "policy names are 1 to 64 characters of a-z, 0-9, '-' and '_'".into(),
        ));
    }
    if settings.limits.is_empty() {
        return Err(problem("a policy needs at least one limit".into()));
    }
    let mut limits: Vec<Limit> = Vec::new();
    for limit in &settings.limits {
        if !valid_name(&limit.name) || limits.iter().any(|l| l.name == limit.name) {
            return Err(problem(format!(
                "limit name {:?} must be unique in its policy and use a-z, 0-9, '-' and '_'",
                limit.name
            )));
        }
        let window = humantime::parse_duration(&limit.window)
            .map_err(|e| problem(format!("window {:?}: {e}", limit.window)))?;
        let burst = limit.burst.unwrap_or(limit.limit);
        let window_us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        if limit.limit == 0 || burst == 0 || window_us < limit.limit {
            return Err(problem(format!(
                "limit {:?} needs limit >= 1, burst >= 1 and a window of at least one microsecond per unit",
                limit.name
            )));
        }
        let emission_us = window_us.div_ceil(limit.limit);
        let tolerance_us = emission_us
            .checked_mul(burst)
            .filter(|t| *t < (1 << 50))
            .ok_or_else(|| {
                problem(format!(
                    "limit {:?}: burst times window is too large",
                    limit.name
                ))
            })?;
        limits.push(Limit {
            name: limit.name.clone(),
            limit: limit.limit,
            window,
            burst,
            emission_us,
            tolerance_us,
        });
    }
    Ok(Policy {
        name: name.to_owned(),
        limits,
        shadow: settings.shadow,
        on_redis_down: settings.on_redis_down,
    })
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LimitSettings;

    fn settings(limits: Vec<(&str, u64, &str, Option<u64>)>) -> RateLimitSettings {
        let policy = PolicySettings {
            limits: limits
                .into_iter()
                .map(|(name, limit, window, burst)| LimitSettings {
                    name: name.into(),
                    limit,
                    window: window.into(),
                    burst,
                })
                .collect(),
            shadow: false,
            on_redis_down: RedisDownMode::Open,
        };
        RateLimitSettings {
            timeout_ms: 100,
            default_policy: "api".into(),
            gateway_policy: String::new(),
            max_key_bytes: 100,
            max_cost: 10,
            policies: BTreeMap::from([("api".to_owned(), policy)]),
            tenants: BTreeMap::new(),
        }
    }

    #[test]
    fn compiles_rate_and_burst() {
        let policies = Policies::from_settings(&settings(vec![
            ("minute", 100, "1m", Some(20)),
            ("day", 1000, "1day", None),
        ]))
        .unwrap();
        let policy = policies.get(&TenantId::parse("t").unwrap(), "api").unwrap();
        assert_eq!(policy.limits[0].emission_us, 600_000);
        assert_eq!(policy.limits[0].tolerance_us, 12_000_000);
        assert_eq!(policy.limits[1].burst, 1000);
        assert_eq!(policy.limits[1].emission_us, 86_400_000);
        assert_eq!(policy.max_cost(), 20);
    }

    #[test]
    fn rounds_the_emission_interval_up() {
        let policies = Policies::from_settings(&settings(vec![("w", 7, "1m", None)])).unwrap();
        let policy = policies.get(&TenantId::parse("t").unwrap(), "api").unwrap();
        assert_eq!(policy.limits[0].emission_us, 8_571_429);
    }

    #[test]
    fn refuses_bad_limits() {
        for limits in [
            vec![],
            vec![("m", 0, "1m", None)],
            vec![("m", 10, "1m", Some(0))],
            vec![("m", 10, "forever", None)],
            vec![("m", 10, "1m", None), ("m", 5, "1s", None)],
            vec![("Bad Name", 10, "1m", None)],
        ] {
            assert!(Policies::from_settings(&settings(limits)).is_err());
        }
    }

    #[test]
    fn sizes_that_would_overflow_the_arithmetic_are_refused() {
        let compiled = |limit, window, burst| {
            Policies::from_settings(&settings(vec![("m", limit, window, burst)]))
        };
        // One unit per microsecond is the finest rate; finer is refused.
        assert!(compiled(1_000_000, "1s", None).is_ok());
        assert!(compiled(1_000_001, "1s", None).is_err());
        // Burst times emission interval must stay far inside 64 bits, where
        // the Redis script adds it to a clock in microseconds.
        assert!(compiled(10, "1s", Some(u64::MAX)).is_err());
        assert!(compiled(1, "1000years", None).is_err());
        let error = compiled(1, "36years", None).unwrap_err();
        assert!(error.1.contains("too large"), "{error:?}");
        assert!(compiled(1, "35years", None).is_ok());
    }

    #[test]
    fn tenant_policies_replace_shared_ones() {
        let mut s = settings(vec![("m", 10, "1m", None)]);
        let mut acme = s.policies.clone();
        acme.get_mut("api").unwrap().limits[0].limit = 99;
        s.tenants.insert("acme".into(), acme);
        let policies = Policies::from_settings(&s).unwrap();
        let limit_of = |tenant: &str| {
            policies
                .get(&TenantId::parse(tenant).unwrap(), "api")
                .unwrap()
                .limits[0]
                .limit
        };
        assert_eq!(limit_of("acme"), 99);
        assert_eq!(limit_of("other"), 10);
        assert!(policies
            .get(&TenantId::parse("acme").unwrap(), "nope")
            .is_none());
    }

    #[test]
    fn default_policy_must_exist() {
        let mut s = settings(vec![("m", 10, "1m", None)]);
        s.default_policy = "missing".into();
        assert!(Policies::from_settings(&s).is_err());
    }
}

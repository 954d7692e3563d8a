//! Every Redis key the gateway writes. Each starts with `sgw:` and a short
//! kind; the part in braces is the Redis Cluster hash tag, so every key one
//! script or transaction touches lives on one node. Tenant ids hold neither
//! ':' nor braces, so no tenant's key reads as another's.
//!
//! README's operations section lists these prefixes; a test below keeps the
//! two in step.

/// Each prefix and what its keys hold, as README documents them.
pub const PREFIXES: &[(&str, &str)] = &[
    ("sgw:c:", "a cache value: `sgw:c:{tenant}:<key>`"),
    (
        "sgw:cl:",
        "a tenant's cache ledger (keys by expiry): `sgw:cl:{tenant}`",
    ),
    ("sgw:cz:", "a tenant's cache value sizes: `sgw:cz:{tenant}`"),
    (
        "sgw:ct:",
        "a tenant's cache bytes in total: `sgw:ct:{tenant}`",
    ),
    (
        "sgw:s:",
        "a session: `sgw:s:{<tag>}:<tenant>:<secret>`, the tag shared by one user's sessions",
    ),
    (
        "sgw:su:",
        "one user's sessions (an index): `sgw:su:{<tag>}:<tenant>`",
    ),
    (
        "sgw:st:",
        "a tenant's live sessions, for its budget: `sgw:st:{tenant}`",
    ),
    (
        "sgw:rl:",
        "one limit's GCRA state: `sgw:rl:{<hash of tenant, policy, key>}:<limit>`",
    ),
    (
        "sgw:dq:",
        "a cached dashboard answer and its `:lock`: `sgw:dq:{tenant:<query hash>}`",
    ),
    (
        "sgw:lb:",
        "a challenge's leaderboard and its `:built` mark: `sgw:lb:{tenant:<challenge>}`",
    ),
];

pub fn cache_value(tenant: &str, key: &str) -> String {
    format!("sgw:c:{{{tenant}}}:{key}")
}

pub fn cache_ledger(tenant: &str) -> String {
    format!("sgw:cl:{{{tenant}}}")
}

pub fn cache_sizes(tenant: &str) -> String {
    format!("sgw:cz:{{{tenant}}}")
}

pub fn cache_total(tenant: &str) -> String {
    format!("sgw:ct:{{{tenant}}}")
}

/// Every session key of one tag and tenant starts with this; the secret ends it.
pub fn session_prefix(tag: &str, tenant: &str) -> String {
    format!("sgw:s:{{{tag}}}:{tenant}:")
}

pub fn user_sessions(tag: &str, tenant: &str) -> String {
    format!("sgw:su:{{{tag}}}:{tenant}")
}

pub fn tenant_sessions(tenant: &str) -> String {
    format!("sgw:st:{{{tenant}}}")
}

/// `slot` is one hash of tenant, policy and key, so all of a policy's limits
/// for one key share a node and one script call.
pub fn rate_limit(slot: &str, limit: &str) -> String {
    format!("sgw:rl:{{{slot}}}:{limit}")
}

pub fn dashboard_answer(tenant: &str, fingerprint: &str) -> String {
    format!("sgw:dq:{{{tenant}:{fingerprint}}}")
}

/// The lock shares its answer's hash tag, so both live on one node.
pub fn dashboard_lock(answer: &str) -> String {
    format!("{answer}:lock")
}

/// The board and its mark share a hash tag: one node holds both.
pub fn leaderboard(tenant: &str, challenge: &str) -> (String, String) {
    let board = format!("sgw:lb:{{{tenant}:{challenge}}}");
    let mark = format!("{board}:built");
    (board, mark)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_tag(key: &str) -> &str {
        let open = key.find('{').expect("a hash tag");
        let close = open + key[open..].find('}').expect("a closed hash tag");
        &key[open + 1..close]
    }

    fn prefix_of(key: &str) -> &'static str {
        PREFIXES
            .iter()
            .map(|(prefix, _)| *prefix)
            .find(|prefix| key.starts_with(prefix))
            .unwrap_or_else(|| panic!("{key} has no listed prefix"))
    }

    #[test]
    fn every_key_has_a_listed_prefix_and_the_exact_layout() {
        let (board, mark) = leaderboard("acme", "c1");
        let answer = dashboard_answer("acme", "f00d");
        let cases = [
            (cache_value("acme", "a:{b}/c"), "sgw:c:{acme}:a:{b}/c"),
            (cache_ledger("acme"), "sgw:cl:{acme}"),
            (cache_sizes("acme"), "sgw:cz:{acme}"),
            (cache_total("acme"), "sgw:ct:{acme}"),
            (
                format!("{}s3cret", session_prefix("t4g", "acme")),
                "sgw:s:{t4g}:acme:s3cret",
            ),
            (user_sessions("t4g", "acme"), "sgw:su:{t4g}:acme"),
            (tenant_sessions("acme"), "sgw:st:{acme}"),
            (rate_limit("ab12", "minute"), "sgw:rl:{ab12}:minute"),
            (answer.clone(), "sgw:dq:{acme:f00d}"),
            (dashboard_lock(&answer), "sgw:dq:{acme:f00d}:lock"),
            (board, "sgw:lb:{acme:c1}"),
            (mark, "sgw:lb:{acme:c1}:built"),
        ];
        let mut used = std::collections::HashSet::new();
        for (key, expected) in &cases {
            assert_eq!(key, expected);
            used.insert(prefix_of(key));
        }
        assert_eq!(used.len(), PREFIXES.len(), "a listed prefix no key uses");
    }

    #[test]
    fn keys_used_together_share_one_hash_tag() {
        let cache = [
            cache_value("acme", "k"),
            cache_ledger("acme"),
            cache_sizes("acme"),
            cache_total("acme"),
        ];
        assert!(cache.iter().all(|key| hash_tag(key) == "acme"));
        let session = format!("{}x", session_prefix("t4g", "acme"));
        assert_eq!(hash_tag(&session), hash_tag(&user_sessions("t4g", "acme")));
        let answer = dashboard_answer("acme", "f");
        assert_eq!(hash_tag(&answer), hash_tag(&dashboard_lock(&answer)));
        let (board, mark) = leaderboard("acme", "c");
        assert_eq!(hash_tag(&board), hash_tag(&mark));
    }

    #[test]
    fn readme_documents_every_prefix() {
        let readme = include_str!("../../../README.md");
        for (prefix, _) in PREFIXES {
            assert!(
                readme.contains(&format!("`{prefix}`")),
                "README does not list {prefix}"
            );
        }
    }
}

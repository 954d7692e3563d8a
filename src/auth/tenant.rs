//! Tenant ids: the boundary no request crosses.

use std::fmt;

use serde::Serialize;

/// 1 to 64 characters of lower-case letters, digits, `-` and `_`, starting
/// with a letter or digit, so a tenant id is safe in keys, labels and logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

#[derive(Debug, thiserror::Error)]
#[error("invalid tenant {0:?}: use 1 to 64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit")]
pub struct InvalidTenant(pub String);

impl TenantId {
    pub fn parse(raw: &str) -> Result<Self, InvalidTenant> {
        let valid = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && raw
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidTenant(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_refuses() {
        assert!(TenantId::parse("acme-01").is_ok());
        for bad in ["", "Acme", "-acme", "a b", "a/b", &"x".repeat(65)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
    }
}

//! Session ids: `<slot tag><secret>`, 64 hex characters.
//!
//! The secret is 128 bits from the operating system's random source; it is
//! what makes an id unguessable. The tag is derived from the tenant and the
//! user, so a session and its user's index share a Redis Cluster slot and
//! every script touches one slot; it is not secret.

use sha2::{Digest, Sha256};

use crate::auth::TenantId;

const TAG_HEX: usize = 32;
const SECRET_BYTES: usize = 16;
pub const SESSION_ID_HEX: usize = TAG_HEX + 2 * SECRET_BYTES;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionId {
    tag: String,
    secret: String,
}

#[derive(Debug, thiserror::Error)]
#[error("a session id is {SESSION_ID_HEX} lower-case hexadecimal characters")]
pub struct MalformedSessionId;

impl SessionId {
    pub fn generate(tenant: &TenantId, user_id: &str) -> Self {
        Self {
            tag: user_tag(tenant, user_id),
            secret: new_secret(),
        }
    }

    /// A new secret for the same user, as rotation needs.
    pub fn rotated(&self) -> Self {
        Self {
            tag: self.tag.clone(),
            secret: new_secret(),
        }
    }

    pub fn parse(raw: &str) -> Result<Self, MalformedSessionId> {
        let well_formed = raw.len() == SESSION_ID_HEX
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return Err(MalformedSessionId);
        }
        let (tag, secret) = raw.split_at(TAG_HEX);
        Ok(Self {
            tag: tag.to_owned(),
            secret: secret.to_owned(),
        })
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.tag, self.secret)
    }
}

/// The slot tag of a user's sessions within a tenant.
pub fn user_tag(tenant: &TenantId, user_id: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [tenant.as_str(), user_id] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..TAG_HEX / 2])
}

fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_keep_the_user_tag() {
        let tenant = TenantId::parse("t").unwrap();
        let id = SessionId::generate(&tenant, "alice");
        let text = id.to_string();
        assert_eq!(text.len(), SESSION_ID_HEX);
        assert_eq!(SessionId::parse(&text).unwrap(), id);
        assert_eq!(id.tag(), user_tag(&tenant, "alice"));
        let rotated = id.rotated();
        assert_eq!(rotated.tag(), id.tag());
        assert_ne!(rotated.secret(), id.secret());
    }

    #[test]
    fn secrets_differ() {
        let tenant = TenantId::parse("t").unwrap();
        assert_ne!(
            SessionId::generate(&tenant, "a"),
            SessionId::generate(&tenant, "a")
        );
    }

    #[test]
    fn refuses_malformed_ids() {
        for raw in ["", "abc", &"g".repeat(64), &"A".repeat(64), &"a".repeat(65)] {
            assert!(SessionId::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn tags_separate_tenants_and_users() {
        let a = TenantId::parse("a").unwrap();
        let b = TenantId::parse("b").unwrap();
        assert_ne!(user_tag(&a, "u"), user_tag(&b, "u"));
        assert_ne!(user_tag(&a, "u"), user_tag(&a, "v"));
    }
}

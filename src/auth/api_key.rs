//! Issuing and verifying API keys.
//!
//! A key reads `sgw_<id>_<secret>`: the id (16 hex digits) finds the row, the
//! whole key's SHA-256 is compared with the stored hash in constant time. The
//! secret has 256 random bits, so a fast hash suffices: there is nothing to
//! guess that a slow hash would protect.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::key_cache::KeyCache;
use super::{AuthError, Principal, Scope, TenantId};
use crate::config::AuthSettings;
use crate::stores::postgres::{ApiKeyRow, NewApiKeyRow, Postgres};
use crate::stores::StoreError;

const PREFIX: &str = "sgw_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

#[derive(Clone)]
pub struct ApiKeys {
    postgres: Postgres,
    verified: Arc<KeyCache>,
}

/// A key just made: the only time its plain text exists.
pub struct IssuedKey {
    pub key: String,
    pub info: ApiKeyInfo,
}

/// What may be shown about a stored key.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKeyInfo {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
}

impl From<ApiKeyRow> for ApiKeyInfo {
    fn from(row: ApiKeyRow) -> Self {
        Self {
            id: row.id,
            tenant: row.tenant_id,
            name: row.name,
            scopes: row.scopes,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        }
    }
}

impl ApiKeys {
    pub fn new(postgres: Postgres, settings: &AuthSettings) -> Self {
        Self {
            postgres,
            verified: Arc::new(KeyCache::new(
                Duration::from_millis(settings.key_cache_ttl_ms),
                settings.key_cache_capacity,
            )),
        }
    }

    pub async fn create(
        &self,
        tenant: &TenantId,
        scopes: &[Scope],
        name: &str,
    ) -> Result<IssuedKey, StoreError> {
        let id = hex::encode(random_bytes::<ID_BYTES>());
        let key = format!(
            "{PREFIX}{id}_{}",
            hex::encode(random_bytes::<SECRET_BYTES>())
        );
        let scopes: Vec<String> = scopes.iter().map(|s| s.as_str().to_owned()).collect();
        let row = self
            .postgres
            .insert_api_key(NewApiKeyRow {
                id: &id,
                tenant_id: tenant.as_str(),
                name,
                secret_hash: &hash(&key),
                scopes: &scopes,
            })
            .await?;
        Ok(IssuedKey {
            key,
            info: row.into(),
        })
    }

    pub async fn authenticate(&self, presented: &str) -> Result<Principal, AuthError> {
        let id = key_id(presented).ok_or(AuthError::InvalidKey)?;
        let presented_hash = hash(presented);
        if let Some((secret_hash, principal)) = self.verified.get(id) {
            // A key's secret never changes: a mismatch needs no second opinion.
            return if bool::from(presented_hash.as_slice().ct_eq(&secret_hash)) {
                Ok(principal)
            } else {
                Err(AuthError::InvalidKey)
            };
        }
        if self.verified.was_refused(id) {
            return Err(AuthError::InvalidKey);
        }
        let Some(row) = self.postgres.api_key(id).await? else {
            self.verified.remember_refused(id);
            return Err(AuthError::InvalidKey);
        };
        if row.revoked_at.is_some() {
            self.verified.remember_refused(id);
            return Err(AuthError::InvalidKey);
        }
        let matches: bool = presented_hash.as_slice().ct_eq(&row.secret_hash).into();
        if !matches {
            return Err(AuthError::InvalidKey);
        }
        let tenant = TenantId::parse(&row.tenant_id).map_err(|_| AuthError::InvalidKey)?;
        // Scopes unknown to this build (written by a newer one) grant nothing.
        let scopes = row.scopes.iter().filter_map(|s| s.parse().ok()).collect();
        let principal = Principal {
            tenant,
            key_id: row.id,
            scopes,
        };
        self.verified.insert(id, row.secret_hash, principal.clone());
        Ok(principal)
    }

    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<ApiKeyInfo>, StoreError> {
        let rows = self.postgres.api_keys_of_tenant(tenant.as_str()).await?;
        Ok(rows.into_iter().map(ApiKeyInfo::from).collect())
    }

    /// Revokes a live key; within `tenant` when given. False when no such live key.
    pub async fn revoke(&self, id: &str, tenant: Option<&TenantId>) -> Result<bool, StoreError> {
        let revoked = self
            .postgres
            .revoke_api_key(id, tenant.map(TenantId::as_str))
            .await?;
        if revoked {
            self.verified.forget(id);
        }
        Ok(revoked)
    }
}

/// The id part of a well-formed key.
fn key_id(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let is_hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (is_hex(id, ID_BYTES * 2) && is_hex(secret, SECRET_BYTES * 2)).then_some(id)
}

fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_keys_yield_their_id() {
        let key = format!("sgw_{}_{}", "ab".repeat(8), "cd".repeat(32));
        assert_eq!(key_id(&key), Some("abababababababab"));
    }

    #[test]
    fn malformed_keys_are_refused() {
        for bad in [
            "",
            "sgw_",
            "Bearer x",
            &format!("sgw_{}_{}", "ab".repeat(8), "cd".repeat(31)),
            &format!("sgw_{}_{}", "zz".repeat(8), "cd".repeat(32)),
            &format!("key_{}_{}", "ab".repeat(8), "cd".repeat(32)),
        ] {
            assert_eq!(key_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn random_keys_differ() {
        assert_ne!(random_bytes::<32>(), random_bytes::<32>());
    }
}

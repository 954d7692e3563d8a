//! Who is calling: API keys, the tenant they belong to and the scopes they carry.

mod api_key;
mod key_cache;
mod scope;
mod tenant;

pub use api_key::{ApiKeyInfo, ApiKeys, IssuedKey};
pub use scope::{Scope, UnknownScope};
pub use tenant::{InvalidTenant, TenantId};

use crate::stores::StoreError;

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: TenantId,
    pub key_id: String,
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// `admin` carries every other scope within its tenant.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }

    pub fn require(&self, scope: Scope) -> Result<(), AuthError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(AuthError::MissingScope(scope))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No key in `Authorization: Bearer` or `X-API-Key`.
    #[error("an API key is required: send Authorization: Bearer KEY or X-API-Key: KEY")]
    MissingKey,
    /// A key that is malformed, unknown or revoked; which one is not told.
    #[error("the API key is not valid")]
    InvalidKey,
    /// A valid key without the scope the operation needs.
    #[error("this API key lacks the {0} scope")]
    MissingScope(Scope),
    #[error(transparent)]
    Store(#[from] StoreError),
}

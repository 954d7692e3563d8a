//! The most live sessions one tenant may hold (`sessions.max_sessions_per_tenant`),
//! so a tenant inventing users cannot fill Redis for everyone.
//!
//! A tenant's index is a sorted set of its session ids scored by absolute
//! expiry, under the tenant's own hash tag: a session counts from its
//! creation until its absolute expiry or its revocation. Sessions that
//! ended earlier (idle expiry, the per-user cap, revoke-all) stay counted
//! until a create finds the budget spent; then the oldest entries are
//! checked and those whose session is gone are dropped, and the create is
//! tried once more.

use super::id::SessionId;
use super::{session_key, SessionError, Sessions};
use crate::auth::TenantId;

/// Oldest entries checked for ended sessions when the budget is spent.
const SWEEP_ENTRIES: usize = 32;

impl Sessions {
    /// Counts session `id` against its tenant's budget.
    pub(super) async fn reserve(
        &self,
        tenant: &TenantId,
        id: &SessionId,
    ) -> Result<(), SessionError> {
        if self.try_reserve(tenant, id).await? {
            return Ok(());
        }
        self.sweep(tenant).await?;
        if self.try_reserve(tenant, id).await? {
            return Ok(());
        }
        Err(SessionError::OverBudget(format!(
            "the tenant holds {} live sessions, its budget (sessions.max_sessions_per_tenant)",
            self.settings.max_sessions_per_tenant
        )))
    }

    async fn try_reserve(&self, tenant: &TenantId, id: &SessionId) -> Result<bool, SessionError> {
        Ok(self
            .redis
            .tenant_sessions_reserve(
                tenant.as_str(),
                &id.to_string(),
                self.settings.absolute_ttl_secs * 1000,
                self.settings.max_sessions_per_tenant,
            )
            .await?)
    }

    /// Drops the oldest entries whose session no longer exists.
    async fn sweep(&self, tenant: &TenantId) -> Result<(), SessionError> {
        let oldest = self
            .redis
            .tenant_sessions_oldest(tenant.as_str(), SWEEP_ENTRIES)
            .await?;
        let mut gone = Vec::new();
        for member in oldest {
            let Ok(id) = SessionId::parse(&member) else {
                gone.push(member);
                continue;
            };
            // Each session key lives in its user's slot: one call each.
            if !self.redis.session_exists(session_key(tenant, &id)).await? {
                gone.push(member);
            }
        }
        if !gone.is_empty() {
            self.forget(tenant, &gone).await?;
        }
        Ok(())
    }

    /// Stops counting the given session ids.
    pub(super) async fn forget(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<(), SessionError> {
        Ok(self
            .redis
            .tenant_sessions_forget(tenant.as_str(), ids)
            .await?)
    }

    /// Counts a rotated session under its new id.
    pub(super) async fn rename(
        &self,
        tenant: &TenantId,
        old: &SessionId,
        new: &SessionId,
    ) -> Result<(), SessionError> {
        Ok(self
            .redis
            .tenant_sessions_rename(tenant.as_str(), &old.to_string(), &new.to_string())
            .await?)
    }
}

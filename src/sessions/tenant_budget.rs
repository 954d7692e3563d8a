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
use super::{Keys, SessionError, Sessions};
use crate::auth::TenantId;
use crate::stores::redis_keys;

/// Oldest entries checked for ended sessions when the budget is spent.
const SWEEP_ENTRIES: isize = 32;

fn index_key(tenant: &TenantId) -> String {
    redis_keys::tenant_sessions(tenant.as_str())
}

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
        let mut call = self.scripts.tenant_reserve.prepare_invoke();
        call.key(index_key(tenant))
            .arg(id.to_string())
            .arg(self.settings.absolute_ttl_secs * 1000)
            .arg(self.settings.max_sessions_per_tenant);
        let counted: u8 = self
            .redis
            .run("session_tenant_reserve", |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok(counted == 1)
    }

    /// Drops the oldest entries whose session no longer exists.
    async fn sweep(&self, tenant: &TenantId) -> Result<(), SessionError> {
        let index = index_key(tenant);
        let key = index.clone();
        let oldest: Vec<String> = self
            .redis
            .run("session_tenant_sweep", |mut c| async move {
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(SWEEP_ENTRIES - 1)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let mut gone = Vec::new();
        for member in oldest {
            let Ok(id) = SessionId::parse(&member) else {
                gone.push(member);
                continue;
            };
            // Each session key lives in its user's slot: one call each.
            let session = Keys::new(tenant, &id).session;
            let exists: bool = self
                .redis
                .run("session_tenant_sweep", |mut c| async move {
                    redis::cmd("EXISTS").arg(session).query_async(&mut c).await
                })
                .await?;
            if !exists {
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
        let index = index_key(tenant);
        let ids = ids.to_vec();
        self.redis
            .run("session_tenant_forget", |mut c| async move {
                redis::cmd("ZREM")
                    .arg(index)
                    .arg(ids)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await?;
        Ok(())
    }

    /// Counts a rotated session under its new id.
    pub(super) async fn rename(
        &self,
        tenant: &TenantId,
        old: &SessionId,
        new: &SessionId,
    ) -> Result<(), SessionError> {
        let mut call = self.scripts.tenant_rename.prepare_invoke();
        call.key(index_key(tenant))
            .arg(old.to_string())
            .arg(new.to_string());
        self.redis
            .run("session_tenant_rename", |mut c| async move {
                call.invoke_async::<()>(&mut c).await
            })
            .await?;
        Ok(())
    }
}

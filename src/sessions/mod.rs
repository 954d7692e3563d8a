//! Sessions in Redis: create, read (with sliding idle expiry), update under
//! a version precondition, rotate, revoke, and per-user listing and revoking.
//!
//! Each operation is one Lua script, so it is atomic and one round trip. A
//! session's keys and its user's index share a hash tag (see [`id`]).

mod id;
mod tenant_budget;

use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;

pub use id::{MalformedSessionId, SessionId, SESSION_ID_HEX};

use crate::auth::TenantId;
use crate::config::SessionSettings;
use crate::metrics::Metrics;
use crate::stores::redis::sessions::{NewSession, SessionKey, SessionRecord, SessionUpdate};
use crate::stores::redis::Redis;
use crate::stores::{StoreError, StoreKind};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no live session with that id")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("the session is at version {current}, not the one given in If-Match")]
    VersionMismatch { current: u64 },
    /// The tenant holds its most live sessions.
    #[error("{0}")]
    OverBudget(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<MalformedSessionId> for SessionError {
    fn from(error: MalformedSessionId) -> Self {
        SessionError::Invalid(error.to_string())
    }
}

/// A session as callers see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Session {
    pub session_id: String,
    pub user_id: String,
    pub data: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub absolute_expires_at: OffsetDateTime,
    pub idle_ttl_seconds: u64,
    pub version: u64,
}

/// Which version an update expects to replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Any,
    Version(u64),
}

#[derive(Clone)]
pub struct Sessions {
    redis: Redis,
    settings: Arc<SessionSettings>,
    metrics: Arc<Metrics>,
}

impl Sessions {
    pub fn new(redis: Redis, settings: &SessionSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            redis,
            settings: Arc::new(settings.clone()),
            metrics,
        }
    }

    pub async fn create(
        &self,
        tenant: &TenantId,
        user_id: &str,
        data: &serde_json::Value,
        ttl_seconds: Option<u64>,
    ) -> Result<Session, SessionError> {
        self.check_user_id(user_id)?;
        let data = self.encode_data(data)?;
        let idle = ttl_seconds.unwrap_or(self.settings.default_idle_ttl_secs);
        if idle == 0 || idle > self.settings.max_idle_ttl_secs {
            return Err(SessionError::Invalid(format!(
                "ttl_seconds must be 1 to {}",
                self.settings.max_idle_ttl_secs
            )));
        }
        let id = SessionId::generate(tenant, user_id);
        self.reserve(tenant, &id).await?;
        let new = NewSession {
            key: session_key(tenant, &id),
            user_id,
            data: &data,
            idle_ms: idle * 1000,
            absolute_ms: self.settings.absolute_ttl_secs * 1000,
            max_per_user: self.settings.max_sessions_per_user.into(),
        };
        let (record, ended) = match self.redis.session_create(&new).await {
            Ok(created) => created,
            Err(error) => {
                // Not created: not counted either (a sweep would drop it).
                let _ = self.forget(tenant, &[id.to_string()]).await;
                return Err(error.into());
            }
        };
        self.count("created", 1);
        self.count("evicted", ended);
        session(&id, record)
    }

    /// The session, its idle expiry slid forward when `slide` asks (by
    /// default, when `sessions.sliding` does).
    pub async fn get(
        &self,
        tenant: &TenantId,
        id: &SessionId,
        slide: Option<bool>,
    ) -> Result<Session, SessionError> {
        let slide = slide.unwrap_or(self.settings.sliding);
        let record = self
            .redis
            .session_get(session_key(tenant, id), slide)
            .await?;
        self.count(if record.is_some() { "read" } else { "missed" }, 1);
        session(id, record.ok_or(SessionError::NotFound)?)
    }

    pub async fn update(
        &self,
        tenant: &TenantId,
        id: &SessionId,
        expected: Expected,
        data: &serde_json::Value,
    ) -> Result<Session, SessionError> {
        let data = self.encode_data(data)?;
        let expected = match expected {
            Expected::Any => None,
            Expected::Version(version) => Some(version),
        };
        let update = self
            .redis
            .session_update(session_key(tenant, id), expected, &data)
            .await?;
        match update {
            SessionUpdate::Updated(record) => {
                self.count("updated", 1);
                session(id, record)
            }
            SessionUpdate::VersionMismatch { current } => {
                Err(SessionError::VersionMismatch { current })
            }
            SessionUpdate::NotFound => Err(SessionError::NotFound),
        }
    }

    /// Moves the session to a new id, as a privilege change calls for; the
    /// old id stops working at once.
    pub async fn rotate(&self, tenant: &TenantId, id: &SessionId) -> Result<Session, SessionError> {
        let new_id = id.rotated();
        let record = self
            .redis
            .session_rotate(session_key(tenant, id), new_id.secret())
            .await?;
        let record = record.ok_or(SessionError::NotFound)?;
        self.count("rotated", 1);
        if let Err(error) = self.rename(tenant, id, &new_id).await {
            // Counted under the old id until a sweep finds it gone.
            tracing::warn!(%error, "rotated session not renamed in its tenant's count");
        }
        session(&new_id, record)
    }

    pub async fn delete(&self, tenant: &TenantId, id: &SessionId) -> Result<(), SessionError> {
        if !self.redis.session_delete(session_key(tenant, id)).await? {
            return Err(SessionError::NotFound);
        }
        self.count("revoked", 1);
        if let Err(error) = self.forget(tenant, &[id.to_string()]).await {
            tracing::warn!(%error, "revoked session still counted for its tenant until a sweep");
        }
        Ok(())
    }

    /// The user's live sessions, soonest to expire first.
    pub async fn list(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Vec<Session>, SessionError> {
        self.check_user_id(user_id)?;
        let tag = id::user_tag(tenant, user_id);
        let rows = self
            .redis
            .session_list(user_key(tenant, &tag), user_id)
            .await?;
        rows.into_iter()
            .map(|(secret, record)| {
                let id = SessionId::parse(&format!("{tag}{secret}"))?;
                session(&id, record)
            })
            .collect()
    }

    /// Ends every session of the user, but `except` when it is one of them.
    pub async fn revoke_all(
        &self,
        tenant: &TenantId,
        user_id: &str,
        except: Option<&str>,
    ) -> Result<u64, SessionError> {
        self.check_user_id(user_id)?;
        let tag = id::user_tag(tenant, user_id);
        let keep = match except {
            Some(raw) => {
                let id = SessionId::parse(raw)?;
                // An id of another user cannot be one of this user's.
                if id.tag() == tag {
                    id.secret().to_owned()
                } else {
                    String::new()
                }
            }
            None => String::new(),
        };
        let ended = self
            .redis
            .session_revoke_all(user_key(tenant, &tag), user_id, &keep)
            .await?;
        self.count("revoked", ended);
        Ok(ended)
    }

    fn check_user_id(&self, user_id: &str) -> Result<(), SessionError> {
        if user_id.is_empty() || user_id.len() > self.settings.max_user_id_bytes {
            return Err(SessionError::Invalid(format!(
                "user_id must be 1 to {} bytes",
                self.settings.max_user_id_bytes
            )));
        }
        Ok(())
    }

    fn encode_data(&self, data: &serde_json::Value) -> Result<String, SessionError> {
        if !data.is_object() {
            return Err(SessionError::Invalid("data must be a JSON object".into()));
        }
        let encoded = data.to_string();
        if encoded.len() > self.settings.max_data_bytes {
            return Err(SessionError::TooLarge(format!(
                "session data is {} bytes of JSON; the limit is {}",
                encoded.len(),
                self.settings.max_data_bytes
            )));
        }
        Ok(encoded)
    }

    fn count(&self, event: &str, n: u64) {
        if n > 0 {
            self.metrics
                .session_events
                .with_label_values(&[event])
                .inc_by(n);
        }
    }
}

/// Where session `id` of `tenant` lives.
fn session_key<'a>(tenant: &'a TenantId, id: &'a SessionId) -> SessionKey<'a> {
    SessionKey {
        tenant: tenant.as_str(),
        tag: id.tag(),
        secret: id.secret(),
    }
}

/// Where the index of the user with hash tag `tag` lives.
fn user_key<'a>(tenant: &'a TenantId, tag: &'a str) -> SessionKey<'a> {
    SessionKey {
        tenant: tenant.as_str(),
        tag,
        secret: "",
    }
}

fn session(id: &SessionId, record: SessionRecord) -> Result<Session, SessionError> {
    let time = |ms: i64| {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map_err(unexpected)
    };
    Ok(Session {
        session_id: id.to_string(),
        data: serde_json::from_str(&record.data).map_err(unexpected)?,
        user_id: record.user_id,
        created_at: time(record.created_ms)?,
        expires_at: time(record.expires_ms)?,
        absolute_expires_at: time(record.absolute_ms)?,
        idle_ttl_seconds: u64::try_from(record.idle_ms / 1000).unwrap_or(0),
        version: record.version,
    })
}

fn unexpected(error: impl std::fmt::Display) -> SessionError {
    SessionError::Store(StoreError::failed(
        StoreKind::Redis,
        format!("unexpected session record: {error}"),
    ))
}

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
use crate::stores::redis::Redis;
use crate::stores::redis_keys;
use crate::stores::{StoreError, StoreKind};

const PRELUDE: &str = include_str!("scripts/prelude.lua");

struct Scripts {
    create: redis::Script,
    get: redis::Script,
    update: redis::Script,
    rotate: redis::Script,
    delete: redis::Script,
    list: redis::Script,
    revoke_all: redis::Script,
    tenant_reserve: redis::Script,
    tenant_rename: redis::Script,
}

impl Scripts {
    fn new() -> Self {
        let script = |body: &str| redis::Script::new(&format!("{PRELUDE}{body}"));
        Self {
            create: script(include_str!("scripts/create.lua")),
            get: script(include_str!("scripts/get.lua")),
            update: script(include_str!("scripts/update.lua")),
            rotate: script(include_str!("scripts/rotate.lua")),
            delete: script(include_str!("scripts/delete.lua")),
            list: script(include_str!("scripts/list.lua")),
            revoke_all: script(include_str!("scripts/revoke_all.lua")),
            tenant_reserve: script(include_str!("scripts/tenant_reserve.lua")),
            tenant_rename: script(include_str!("scripts/tenant_rename.lua")),
        }
    }
}

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

/// What the scripts answer for a session:
/// (user_id, data, created, absolute, idle, version, expires), times in ms.
type Record = (String, String, i64, i64, i64, u64, i64);
/// A listed session: its secret, then the [`Record`] fields.
type ListedRecord = (String, String, String, i64, i64, i64, u64, i64);

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
    scripts: Arc<Scripts>,
    metrics: Arc<Metrics>,
}

impl Sessions {
    pub fn new(redis: Redis, settings: &SessionSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            redis,
            settings: Arc::new(settings.clone()),
            scripts: Arc::new(Scripts::new()),
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
        let keys = Keys::new(tenant, &id);
        let mut call = self.scripts.create.prepare_invoke();
        call.key(&keys.session)
            .key(&keys.index)
            .arg(id.secret())
            .arg(user_id)
            .arg(data)
            .arg(idle * 1000)
            .arg(self.settings.absolute_ttl_secs * 1000)
            .arg(self.settings.max_sessions_per_user)
            .arg(&keys.prefix);
        let (user_id, data, created, absolute, idle, version, expires, ended): (
            String,
            String,
            i64,
            i64,
            i64,
            u64,
            i64,
            u64,
        ) = match self
            .redis
            .run("session_create", |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await
        {
            Ok(created) => created,
            Err(error) => {
                // Not created: not counted either (a sweep would drop it).
                let _ = self.forget(tenant, &[id.to_string()]).await;
                return Err(error.into());
            }
        };
        self.count("created", 1);
        self.count("evicted", ended);
        session(
            &id,
            (user_id, data, created, absolute, idle, version, expires),
        )
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
        let keys = Keys::new(tenant, id);
        let mut call = self.scripts.get.prepare_invoke();
        call.key(&keys.session).arg(u8::from(slide));
        let record: Option<Record> = self
            .redis
            .run("session_get", |mut c| async move {
                call.invoke_async(&mut c).await
            })
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
        let keys = Keys::new(tenant, id);
        let mut call = self.scripts.update.prepare_invoke();
        call.key(&keys.session)
            .arg(match expected {
                Expected::Any => "*".to_owned(),
                Expected::Version(v) => v.to_string(),
            })
            .arg(data);
        let reply: Vec<redis::Value> = self
            .redis
            .run("session_update", |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await?;
        let status: i64 = reply
            .first()
            .map(redis::from_redis_value_ref)
            .transpose()
            .map_err(unexpected)?
            .unwrap_or(0);
        match status {
            1 => {
                let record: Record =
                    redis::from_redis_value(redis::Value::Array(reply[1..].to_vec()))
                        .map_err(unexpected)?;
                self.count("updated", 1);
                session(id, record)
            }
            -1 => {
                let current: u64 = reply
                    .get(1)
                    .map(redis::from_redis_value_ref)
                    .transpose()
                    .map_err(unexpected)?
                    .unwrap_or(0);
                Err(SessionError::VersionMismatch { current })
            }
            _ => Err(SessionError::NotFound),
        }
    }

    /// Moves the session to a new id, as a privilege change calls for; the
    /// old id stops working at once.
    pub async fn rotate(&self, tenant: &TenantId, id: &SessionId) -> Result<Session, SessionError> {
        let new_id = id.rotated();
        let keys = Keys::new(tenant, id);
        let new_keys = Keys::new(tenant, &new_id);
        let mut call = self.scripts.rotate.prepare_invoke();
        call.key(&keys.session)
            .key(&new_keys.session)
            .key(&keys.index)
            .arg(id.secret())
            .arg(new_id.secret());
        let record: Option<Record> = self
            .redis
            .run("session_rotate", |mut c| async move {
                call.invoke_async(&mut c).await
            })
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
        let keys = Keys::new(tenant, id);
        let mut call = self.scripts.delete.prepare_invoke();
        call.key(&keys.session).key(&keys.index).arg(id.secret());
        let deleted: u64 = self
            .redis
            .run("session_delete", |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await?;
        if deleted == 0 {
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
        let keys = Keys::for_user(tenant, user_id);
        let mut call = self.scripts.list.prepare_invoke();
        call.key(&keys.index).arg(user_id).arg(&keys.prefix);
        let rows: Vec<ListedRecord> = self
            .redis
            .run("session_list", |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await?;
        let tag = id::user_tag(tenant, user_id);
        rows.into_iter()
            .map(
                |(secret, user_id, data, created, absolute, idle, version, expires)| {
                    let id = SessionId::parse(&format!("{tag}{secret}"))?;
                    session(
                        &id,
                        (user_id, data, created, absolute, idle, version, expires),
                    )
                },
            )
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
        let keep = match except {
            Some(raw) => {
                let id = SessionId::parse(raw)?;
                // An id of another user cannot be one of this user's.
                if id.tag() == id::user_tag(tenant, user_id) {
                    id.secret().to_owned()
                } else {
                    String::new()
                }
            }
            None => String::new(),
        };
        let keys = Keys::for_user(tenant, user_id);
        let mut call = self.scripts.revoke_all.prepare_invoke();
        call.key(&keys.index)
            .arg(user_id)
            .arg(&keys.prefix)
            .arg(keep);
        let ended: u64 = self
            .redis
            .run("session_revoke_all", |mut c| async move {
                call.invoke_async(&mut c).await
            })
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

/// The Redis keys of one session and of its user's index. The tenant is
/// part of every key, so one tenant's id never finds another's session.
struct Keys {
    session: String,
    index: String,
    /// The session key without the secret, for scripts that walk the index.
    prefix: String,
}

impl Keys {
    fn new(tenant: &TenantId, id: &SessionId) -> Self {
        Self::with_tag(tenant, id.tag(), id.secret())
    }

    fn for_user(tenant: &TenantId, user_id: &str) -> Self {
        Self::with_tag(tenant, &id::user_tag(tenant, user_id), "")
    }

    fn with_tag(tenant: &TenantId, tag: &str, secret: &str) -> Self {
        let prefix = redis_keys::session_prefix(tag, tenant.as_str());
        Self {
            session: format!("{prefix}{secret}"),
            index: redis_keys::user_sessions(tag, tenant.as_str()),
            prefix,
        }
    }
}

fn session(id: &SessionId, record: Record) -> Result<Session, SessionError> {
    let (user_id, data, created, absolute, idle, version, expires) = record;
    let time = |ms: i64| {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map_err(unexpected)
    };
    Ok(Session {
        session_id: id.to_string(),
        user_id,
        data: serde_json::from_str(&data).map_err(unexpected)?,
        created_at: time(created)?,
        expires_at: time(expires)?,
        absolute_expires_at: time(absolute)?,
        idle_ttl_seconds: u64::try_from(idle / 1000).unwrap_or(0),
        version,
    })
}

fn unexpected(error: impl std::fmt::Display) -> SessionError {
    SessionError::Store(StoreError::failed(
        StoreKind::Redis,
        format!("unexpected session record: {error}"),
    ))
}

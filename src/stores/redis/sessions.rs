//! Sessions' Redis operations. Each is one Lua script (atomic, one round
//! trip) over a session's key and its user's index, which share the user's
//! hash tag; a tenant's count of live sessions is a sorted set under the
//! tenant's own tag.

use std::sync::LazyLock;

use redis::Script;

use super::{keys, Redis};
use crate::stores::{StoreError, StoreKind};

const PRELUDE: &str = include_str!("scripts/sessions/prelude.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

static CREATE: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("scripts/sessions/create.lua")));
static GET: LazyLock<Script> = LazyLock::new(|| script(include_str!("scripts/sessions/get.lua")));
static UPDATE: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("scripts/sessions/update.lua")));
static ROTATE: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("scripts/sessions/rotate.lua")));
static DELETE: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("scripts/sessions/delete.lua")));
static LIST: LazyLock<Script> = LazyLock::new(|| script(include_str!("scripts/sessions/list.lua")));
static REVOKE_ALL: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("scripts/sessions/revoke_all.lua")));
static TENANT_RESERVE: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("scripts/sessions/tenant_reserve.lua")));
static TENANT_RENAME: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("scripts/sessions/tenant_rename.lua")));

/// Where a session lives: its tenant, its user's hash tag, and its secret
/// (empty for the user's index alone).
#[derive(Debug, Clone, Copy)]
pub struct SessionKey<'a> {
    pub tenant: &'a str,
    pub tag: &'a str,
    pub secret: &'a str,
}

/// The Redis keys of one session and of its user's index. The tenant is
/// part of every key, so one tenant's id never finds another's session.
struct SessionKeys {
    session: String,
    index: String,
    /// The session key without the secret, for scripts that walk the index.
    prefix: String,
}

impl SessionKeys {
    fn of(key: SessionKey<'_>) -> Self {
        let prefix = keys::session_prefix(key.tag, key.tenant);
        SessionKeys {
            session: format!("{prefix}{}", key.secret),
            index: keys::user_sessions(key.tag, key.tenant),
            prefix,
        }
    }
}

/// A session as the scripts hold it; times in milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub user_id: String,
    /// The data's JSON text.
    pub data: String,
    pub created_ms: i64,
    pub absolute_ms: i64,
    pub idle_ms: i64,
    pub version: u64,
    pub expires_ms: i64,
}

/// The scripts' answer for a session:
/// (user_id, data, created, absolute, idle, version, expires).
type RecordReply = (String, String, i64, i64, i64, u64, i64);
/// A listed session: its secret, then the [`RecordReply`] fields.
type ListedReply = (String, String, String, i64, i64, i64, u64, i64);

impl From<RecordReply> for SessionRecord {
    fn from(reply: RecordReply) -> Self {
        let (user_id, data, created_ms, absolute_ms, idle_ms, version, expires_ms) = reply;
        SessionRecord {
            user_id,
            data,
            created_ms,
            absolute_ms,
            idle_ms,
            version,
            expires_ms,
        }
    }
}

/// A session to create, and the bounds it is created under.
pub struct NewSession<'a> {
    pub key: SessionKey<'a>,
    pub user_id: &'a str,
    pub data: &'a str,
    pub idle_ms: u64,
    pub absolute_ms: u64,
    /// The user's oldest sessions beyond this many end.
    pub max_per_user: u64,
}

/// What became of an update.
#[derive(Debug, PartialEq)]
pub enum SessionUpdate {
    Updated(SessionRecord),
    /// The session is at `current`, not at the version expected.
    VersionMismatch {
        current: u64,
    },
    NotFound,
}

fn unexpected(error: impl std::fmt::Display) -> StoreError {
    StoreError::failed(
        StoreKind::Redis,
        format!("unexpected session record: {error}"),
    )
}

impl Redis {
    /// Creates the session; answers it and how many of the user's older
    /// sessions ended to stay within the per-user bound.
    pub async fn session_create(
        &self,
        new: &NewSession<'_>,
    ) -> Result<(SessionRecord, u64), StoreError> {
        let keys = SessionKeys::of(new.key);
        let mut call = CREATE.prepare_invoke();
        call.key(&keys.session)
            .key(&keys.index)
            .arg(new.key.secret)
            .arg(new.user_id)
            .arg(new.data)
            .arg(new.idle_ms)
            .arg(new.absolute_ms)
            .arg(new.max_per_user)
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
        ) = self
            .run("session_create", |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await?;
        let record = (user_id, data, created, absolute, idle, version, expires).into();
        Ok((record, ended))
    }

    /// The session, its idle expiry slid forward when `slide`.
    pub async fn session_get(
        &self,
        key: SessionKey<'_>,
        slide: bool,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let keys = SessionKeys::of(key);
        let mut call = GET.prepare_invoke();
        call.key(&keys.session).arg(u8::from(slide));
        let record: Option<RecordReply> = self
            .run("session_get", |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok(record.map(SessionRecord::from))
    }

    /// Replaces the session's data if it is at version `expected` (any
    /// version when `None`).
    pub async fn session_update(
        &self,
        key: SessionKey<'_>,
        expected: Option<u64>,
        data: &str,
    ) -> Result<SessionUpdate, StoreError> {
        let keys = SessionKeys::of(key);
        let mut call = UPDATE.prepare_invoke();
        call.key(&keys.session)
            .arg(expected.map_or_else(|| "*".to_owned(), |v| v.to_string()))
            .arg(data);
        let reply: Vec<redis::Value> = self
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
                let record: RecordReply =
                    redis::from_redis_value(redis::Value::Array(reply[1..].to_vec()))
                        .map_err(unexpected)?;
                Ok(SessionUpdate::Updated(record.into()))
            }
            -1 => {
                let current: u64 = reply
                    .get(1)
                    .map(redis::from_redis_value_ref)
                    .transpose()
                    .map_err(unexpected)?
                    .unwrap_or(0);
                Ok(SessionUpdate::VersionMismatch { current })
            }
            _ => Ok(SessionUpdate::NotFound),
        }
    }

    /// Moves the session to `new_secret` under the same user; the old key
    /// stops working at once. `None` when there was no such session.
    pub async fn session_rotate(
        &self,
        key: SessionKey<'_>,
        new_secret: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let keys = SessionKeys::of(key);
        let new_keys = SessionKeys::of(SessionKey {
            secret: new_secret,
            ..key
        });
        let mut call = ROTATE.prepare_invoke();
        call.key(&keys.session)
            .key(&new_keys.session)
            .key(&keys.index)
            .arg(key.secret)
            .arg(new_secret);
        let record: Option<RecordReply> = self
            .run("session_rotate", |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok(record.map(SessionRecord::from))
    }

    /// Ends the session; false when there was none.
    pub async fn session_delete(&self, key: SessionKey<'_>) -> Result<bool, StoreError> {
        let keys = SessionKeys::of(key);
        let mut call = DELETE.prepare_invoke();
        call.key(&keys.session).key(&keys.index).arg(key.secret);
        let deleted: u64 = self
            .run("session_delete", |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok(deleted > 0)
    }

    /// The live sessions of the user whose index `user` names (its secret
    /// unused), each with its secret, soonest to expire first.
    pub async fn session_list(
        &self,
        user: SessionKey<'_>,
        user_id: &str,
    ) -> Result<Vec<(String, SessionRecord)>, StoreError> {
        let keys = SessionKeys::of(user);
        let mut call = LIST.prepare_invoke();
        call.key(&keys.index).arg(user_id).arg(&keys.prefix);
        let rows: Vec<ListedReply> = self
            .run("session_list", |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(secret, user_id, data, created, absolute, idle, version, expires)| {
                    let record = (user_id, data, created, absolute, idle, version, expires);
                    (secret, record.into())
                },
            )
            .collect())
    }

    /// Ends every session of the user but the one with secret `keep`
    /// (none when empty); answers how many ended.
    pub async fn session_revoke_all(
        &self,
        user: SessionKey<'_>,
        user_id: &str,
        keep: &str,
    ) -> Result<u64, StoreError> {
        let keys = SessionKeys::of(user);
        let mut call = REVOKE_ALL.prepare_invoke();
        call.key(&keys.index)
            .arg(user_id)
            .arg(&keys.prefix)
            .arg(keep);
        self.run("session_revoke_all", |mut c| async move {
            call.invoke_async(&mut c).await
        })
        .await
    }

    /// Whether the session still exists (the tenant count's sweep).
    pub async fn session_exists(&self, key: SessionKey<'_>) -> Result<bool, StoreError> {
        let session = SessionKeys::of(key).session;
        self.run("session_tenant_sweep", |mut c| async move {
            redis::cmd("EXISTS").arg(session).query_async(&mut c).await
        })
        .await
    }

    /// Counts session `id` in its tenant's count if the count stays within
    /// `max`; it counts for `absolute_ms`. False when the count is full.
    pub async fn tenant_sessions_reserve(
        &self,
        tenant: &str,
        id: &str,
        absolute_ms: u64,
        max: u64,
    ) -> Result<bool, StoreError> {
        let mut call = TENANT_RESERVE.prepare_invoke();
        call.key(keys::tenant_sessions(tenant))
            .arg(id)
            .arg(absolute_ms)
            .arg(max);
        let counted: u8 = self
            .run("session_tenant_reserve", |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok(counted == 1)
    }

    /// The `count` session ids of the tenant's count closest to their
    /// absolute expiry.
    pub async fn tenant_sessions_oldest(
        &self,
        tenant: &str,
        count: usize,
    ) -> Result<Vec<String>, StoreError> {
        let index = keys::tenant_sessions(tenant);
        let last = isize::try_from(count).unwrap_or(isize::MAX) - 1;
        self.run("session_tenant_sweep", |mut c| async move {
            redis::cmd("ZRANGE")
                .arg(index)
                .arg(0)
                .arg(last)
                .query_async(&mut c)
                .await
        })
        .await
    }

    /// Stops counting the given session ids.
    pub async fn tenant_sessions_forget(
        &self,
        tenant: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        let index = keys::tenant_sessions(tenant);
        self.run("session_tenant_forget", |mut c| async move {
            redis::cmd("ZREM")
                .arg(index)
                .arg(ids)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// Counts a rotated session under its new id.
    pub async fn tenant_sessions_rename(
        &self,
        tenant: &str,
        old: &str,
        new: &str,
    ) -> Result<(), StoreError> {
        let mut call = TENANT_RENAME.prepare_invoke();
        call.key(keys::tenant_sessions(tenant)).arg(old).arg(new);
        self.run("session_tenant_rename", |mut c| async move {
            call.invoke_async::<()>(&mut c).await
        })
        .await
    }
}

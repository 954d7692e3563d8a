//! Challenge leaderboards: a sorted set in Redis per challenge holding each
//! user's best score, rebuilt from Postgres whenever Redis lacks it.
//!
//! Postgres is the record; the board is a copy that answers fast. A board
//! counts as whole only while its mark lives: the mark is set when the
//! board is merged with Postgres and expires after
//! `challenges.leaderboard_rebuild_secs`, so a score that Redis missed
//! (Redis down when it was submitted) shows up within that time.

use std::time::Duration;

use uuid::Uuid;

use crate::auth::TenantId;
use crate::stores::postgres::BestScore;
use crate::stores::redis::Redis;
use crate::stores::StoreError;

#[derive(Clone)]
pub struct Leaderboards {
    redis: Redis,
    rebuild_every: Duration,
    scripts: std::sync::Arc<Scripts>,
}

struct Scripts {
    record: redis::Script,
    merge: redis::Script,
    top: redis::Script,
}

/// A board's first entries and how many users it ranks.
#[derive(Debug, Clone)]
pub struct Standing {
    pub entries: Vec<BestScore>,
    pub ranked_users: u64,
}

impl Leaderboards {
    pub fn new(redis: Redis, rebuild_every: Duration) -> Self {
        Self {
            redis,
            rebuild_every,
            scripts: std::sync::Arc::new(Scripts {
                record: redis::Script::new(include_str!("scripts/record.lua")),
                merge: redis::Script::new(include_str!("scripts/merge.lua")),
                top: redis::Script::new(include_str!("scripts/top.lua")),
            }),
        }
    }

    pub async fn record(
        &self,
        tenant: &TenantId,
        challenge: Uuid,
        user: Uuid,
        score: f64,
    ) -> Result<(), StoreError> {
        let (board, _) = keys(tenant, challenge);
        let mut call = self.scripts.record.prepare_invoke();
        call.key(board).arg(score).arg(user.to_string());
        self.redis
            .run("leaderboard_record", |mut c| async move {
                call.invoke_async::<()>(&mut c).await
            })
            .await
    }

    /// The best `limit` entries, or `None` when the board must be rebuilt.
    pub async fn top(
        &self,
        tenant: &TenantId,
        challenge: Uuid,
        limit: u32,
    ) -> Result<Option<Standing>, StoreError> {
        let (board, mark) = keys(tenant, challenge);
        let mut call = self.scripts.top.prepare_invoke();
        call.key(board).key(mark).arg(limit);
        let answer: Option<(u64, Vec<(String, f64)>)> = self
            .redis
            .run("leaderboard_top", |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok(answer.map(|(ranked_users, entries)| Standing {
            ranked_users,
            entries: entries
                .into_iter()
                .filter_map(|(user, score)| {
                    Some(BestScore {
                        user_id: user.parse().ok()?,
                        score,
                    })
                })
                .collect(),
        }))
    }

    /// Merges every user's best score, as Postgres has them, into the board.
    pub async fn rebuild(
        &self,
        tenant: &TenantId,
        challenge: Uuid,
        scores: &[BestScore],
    ) -> Result<(), StoreError> {
        let (board, mark) = keys(tenant, challenge);
        let mut call = self.scripts.merge.prepare_invoke();
        call.key(board)
            .key(mark)
            .arg(self.rebuild_every.as_millis() as u64);
        for best in scores {
            call.arg(best.score).arg(best.user_id.to_string());
        }
        self.redis
            .run("leaderboard_rebuild", |mut c| async move {
                call.invoke_async::<()>(&mut c).await
            })
            .await
    }
}

/// The board and its mark share a hash tag: one Redis Cluster node holds both.
fn keys(tenant: &TenantId, challenge: Uuid) -> (String, String) {
    let board = format!("sgw:lb:{{{tenant}:{challenge}}}");
    let mark = format!("{board}:built");
    (board, mark)
}

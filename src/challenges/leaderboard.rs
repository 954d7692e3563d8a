//! Challenge leaderboards: a sorted set in Redis per challenge holding each
//! user's best score, rebuilt from Postgres whenever Redis lacks it.
//!
//! Postgres is the record; the board is a copy that answers fast. A board
//! counts as whole only while its mark lives: the mark is set when the
//! board is merged with Postgres and expires after
//! `challenges.leaderboard_rebuild_secs`, so a score that Redis missed
//! (Redis down when it was submitted) shows up within that time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use crate::auth::TenantId;
use crate::stores::postgres::BestScore;
use crate::stores::redis::Redis;
use crate::stores::redis_keys;
use crate::stores::StoreError;

/// Users merged into a board per script call: a long script blocks Redis
/// for every other caller, rate-limit checks included.
const USERS_PER_MERGE: usize = 1000;

/// The boards being rebuilt by this gateway, each behind a lock its
/// concurrent readers wait on.
type Rebuilds = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

#[derive(Clone)]
pub struct Leaderboards {
    redis: Redis,
    rebuild_every: Duration,
    scripts: Arc<Scripts>,
    rebuilds: Arc<Rebuilds>,
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
            scripts: Arc::new(Scripts {
                record: redis::Script::new(include_str!("scripts/record.lua")),
                merge: redis::Script::new(include_str!("scripts/merge.lua")),
                top: redis::Script::new(include_str!("scripts/top.lua")),
            }),
            rebuilds: Arc::default(),
        }
    }

    /// Runs `rebuild` for the board unless a rebuild of it is under way in
    /// this gateway: then waits for that one and runs nothing, so a burst
    /// of readers of a cold board costs one Postgres read and one merge.
    pub async fn single_flight<F, Fut, T>(
        &self,
        tenant: &TenantId,
        challenge: Uuid,
        rebuild: F,
    ) -> Option<T>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let (board, _) = keys(tenant, challenge);
        let (lock, first) = {
            let mut rebuilds = self.rebuilds.lock().unwrap_or_else(|e| e.into_inner());
            match rebuilds.get(&board) {
                Some(lock) => (lock.clone(), false),
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    rebuilds.insert(board.clone(), lock.clone());
                    (lock, true)
                }
            }
        };
        let _turn = lock.lock().await;
        if !first {
            return None;
        }
        let outcome = rebuild().await;
        self.rebuilds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&board);
        Some(outcome)
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

    /// Merges every user's best score, as Postgres has them, into the
    /// board, in parts of [`USERS_PER_MERGE`]; the last marks it built.
    pub async fn rebuild(
        &self,
        tenant: &TenantId,
        challenge: Uuid,
        scores: &[BestScore],
    ) -> Result<(), StoreError> {
        let (board, mark) = keys(tenant, challenge);
        // An empty board is marked built too.
        let parts: Vec<&[BestScore]> = if scores.is_empty() {
            vec![&[]]
        } else {
            scores.chunks(USERS_PER_MERGE).collect()
        };
        for (index, part) in parts.iter().enumerate() {
            let last = index + 1 == parts.len();
            let mut call = self.scripts.merge.prepare_invoke();
            call.key(&board).key(&mark).arg(if last {
                self.rebuild_every.as_millis() as u64
            } else {
                0
            });
            for best in *part {
                call.arg(best.score).arg(best.user_id.to_string());
            }
            self.redis
                .run("leaderboard_rebuild", |mut c| async move {
                    call.invoke_async::<()>(&mut c).await
                })
                .await?;
        }
        Ok(())
    }
}

fn keys(tenant: &TenantId, challenge: Uuid) -> (String, String) {
    redis_keys::leaderboard(tenant.as_str(), &challenge.to_string())
}

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
use crate::stores::StoreError;

/// The boards being rebuilt by this gateway (by tenant and challenge), each
/// behind a lock its concurrent readers wait on.
type Rebuilds = Mutex<HashMap<(TenantId, Uuid), Arc<tokio::sync::Mutex<()>>>>;

#[derive(Clone)]
pub struct Leaderboards {
    redis: Redis,
    rebuild_every: Duration,
    rebuilds: Arc<Rebuilds>,
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
        let board = (tenant.clone(), challenge);
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
        self.redis
            .leaderboard_record(tenant.as_str(), challenge, user, score)
            .await
    }

    /// The best `limit` entries, or `None` when the board must be rebuilt.
    pub async fn top(
        &self,
        tenant: &TenantId,
        challenge: Uuid,
        limit: u32,
    ) -> Result<Option<Standing>, StoreError> {
        let top = self
            .redis
            .leaderboard_top(tenant.as_str(), challenge, limit)
            .await?;
        Ok(top.map(|(ranked_users, entries)| Standing {
            entries,
            ranked_users,
        }))
    }

    /// Merges every user's best score, as Postgres has them, into the
    /// board, which then counts as whole for `challenges.leaderboard_rebuild_secs`.
    pub async fn rebuild(
        &self,
        tenant: &TenantId,
        challenge: Uuid,
        scores: &[BestScore],
    ) -> Result<(), StoreError> {
        self.redis
            .leaderboard_merge(tenant.as_str(), challenge, scores, self.rebuild_every)
            .await
    }
}

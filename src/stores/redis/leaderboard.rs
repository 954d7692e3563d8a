//! Leaderboards' Redis operations: a sorted set per challenge holding each
//! user's best score, and a mark that lives while the set is known whole.

use std::sync::LazyLock;

use redis::Script;
use uuid::Uuid;

use super::{keys, Redis};
use crate::stores::postgres::BestScore;
use crate::stores::StoreError;

static RECORD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/leaderboard/record.lua")));
static MERGE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/leaderboard/merge.lua")));
static TOP: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/leaderboard/top.lua")));

/// Users merged into a board per script call: a long script blocks Redis
/// for every other caller, rate-limit checks included.
const USERS_PER_MERGE: usize = 1000;

impl Redis {
    /// Keeps `score` as the user's best when it beats the one held.
    pub async fn leaderboard_record(
        &self,
        tenant: &str,
        challenge: Uuid,
        user: Uuid,
        score: f64,
    ) -> Result<(), StoreError> {
        let (board, _) = keys::leaderboard(tenant, &challenge.to_string());
        let mut call = RECORD.prepare_invoke();
        call.key(board).arg(score).arg(user.to_string());
        self.run("leaderboard_record", |mut c| async move {
            call.invoke_async::<()>(&mut c).await
        })
        .await
    }

    /// The best `limit` entries and how many users the board ranks, or
    /// `None` when the board is not known whole.
    pub async fn leaderboard_top(
        &self,
        tenant: &str,
        challenge: Uuid,
        limit: u32,
    ) -> Result<Option<(u64, Vec<BestScore>)>, StoreError> {
        let (board, mark) = keys::leaderboard(tenant, &challenge.to_string());
        let mut call = TOP.prepare_invoke();
        call.key(board).key(mark).arg(limit);
        let answer: Option<(u64, Vec<(String, f64)>)> = self
            .run("leaderboard_top", |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok(answer.map(|(ranked_users, entries)| {
            let entries = entries
                .into_iter()
                .filter_map(|(user, score)| {
                    Some(BestScore {
                        user_id: user.parse().ok()?,
                        score,
                    })
                })
                .collect();
            (ranked_users, entries)
        }))
    }

    /// Merges every user's best score into the board, in parts of
    /// [`USERS_PER_MERGE`]; the last part marks the board whole for
    /// `whole_for`.
    pub async fn leaderboard_merge(
        &self,
        tenant: &str,
        challenge: Uuid,
        scores: &[BestScore],
        whole_for: std::time::Duration,
    ) -> Result<(), StoreError> {
        let (board, mark) = keys::leaderboard(tenant, &challenge.to_string());
        // An empty board is marked whole too.
        let parts: Vec<&[BestScore]> = if scores.is_empty() {
            vec![&[]]
        } else {
            scores.chunks(USERS_PER_MERGE).collect()
        };
        for (index, part) in parts.iter().enumerate() {
            let last = index + 1 == parts.len();
            let mut call = MERGE.prepare_invoke();
            call.key(&board).key(&mark).arg(if last {
                whole_for.as_millis() as u64
            } else {
                0
            });
            for best in *part {
                call.arg(best.score).arg(best.user_id.to_string());
            }
            self.run("leaderboard_rebuild", |mut c| async move {
                call.invoke_async::<()>(&mut c).await
            })
            .await?;
        }
        Ok(())
    }
}

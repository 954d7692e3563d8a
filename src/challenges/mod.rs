//! Challenges, the users who take them and their submissions.
//!
//! Postgres holds all three. A submission's output stays inline while it is
//! small and goes to IPFS through the files path when it is not; each
//! submission is recorded for the challenge statistics and, when scored, on
//! the challenge's leaderboard in Redis.

pub mod leaderboard;

use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

use crate::analytics::{Analytics, SubmissionEvent};
use crate::auth::TenantId;
use crate::config::ChallengeSettings;
use crate::files::{Files, FilesError, UploadDetails};
use crate::stores::postgres::{
    BestScore, ChallengeRow, NewChallenge, NewSubmission, NewUser, Postgres, SubmissionRow, UserRow,
};
use crate::stores::StoreError;
use leaderboard::{Leaderboards, Standing};

pub const DIFFICULTIES: &[&str] = &["easy", "medium", "hard"];
pub const STATUSES: &[&str] = &["queued", "running", "passed", "failed", "error"];

/// Most users a leaderboard rebuild reads from Postgres.
const REBUILD_MAX_USERS: i64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Files(#[from] FilesError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A submission as a caller sends it.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmissionInput {
    pub user_id: Uuid,
    pub language: String,
    #[serde(default)]
    pub code: String,
    pub status: Option<String>,
    pub score: Option<f64>,
    pub runtime_ms: Option<i32>,
    pub output: Option<String>,
}

/// Where the leaderboard answer came from.
pub enum LeaderboardSource {
    Redis,
    /// Rebuilt into Redis from Postgres just now.
    Rebuilt,
    /// Redis unavailable: read from Postgres.
    Postgres,
}

#[derive(Clone)]
pub struct Challenges {
    postgres: Postgres,
    files: Files,
    analytics: Analytics,
    leaderboards: Leaderboards,
    settings: Arc<ChallengeSettings>,
}

impl Challenges {
    pub fn new(
        postgres: Postgres,
        files: Files,
        analytics: Analytics,
        leaderboards: Leaderboards,
        settings: &ChallengeSettings,
    ) -> Self {
        Self {
            postgres,
            files,
            analytics,
            leaderboards,
            settings: Arc::new(settings.clone()),
        }
    }

    pub fn settings(&self) -> &ChallengeSettings {
        &self.settings
    }

    pub async fn create_user(
        &self,
        tenant: &TenantId,
        user: NewUser<'_>,
    ) -> Result<UserRow, ChallengeError> {
        text_field("external_id", user.external_id, 1, 256)?;
        text_field("display_name", user.display_name, 0, 256)?;
        if let Some(email) = user.email {
            text_field("email", email, 3, 320)?;
            if !email.contains('@') {
                return Err(ChallengeError::Invalid("email must contain @".into()));
            }
        }
        let external_id = user.external_id.to_owned();
        self.postgres
            .insert_user(tenant.as_str(), user)
            .await?
            .ok_or_else(|| {
                ChallengeError::Conflict(format!(
                    "a user with external_id {external_id:?} already exists"
                ))
            })
    }

    pub async fn user(&self, tenant: &TenantId, id: Uuid) -> Result<UserRow, ChallengeError> {
        self.postgres
            .user(tenant.as_str(), id)
            .await?
            .ok_or_else(|| ChallengeError::NotFound(format!("no user {id} in this tenant")))
    }

    pub async fn create_challenge(
        &self,
        tenant: &TenantId,
        challenge: NewChallenge<'_>,
    ) -> Result<ChallengeRow, ChallengeError> {
        text_field("slug", challenge.slug, 1, 128)?;
        if !challenge
            .slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(ChallengeError::Invalid(
                "slug may hold lowercase letters, digits and '-' only".into(),
            ));
        }
        text_field("title", challenge.title, 1, 256)?;
        text_field("description", challenge.description, 0, 65_536)?;
        if !DIFFICULTIES.contains(&challenge.difficulty) {
            return Err(ChallengeError::Invalid(format!(
                "difficulty must be one of {}",
                DIFFICULTIES.join(", ")
            )));
        }
        let slug = challenge.slug.to_owned();
        self.postgres
            .insert_challenge(tenant.as_str(), challenge)
            .await?
            .ok_or_else(|| {
                ChallengeError::Conflict(format!("a challenge with slug {slug:?} already exists"))
            })
    }

    pub async fn challenge(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<ChallengeRow, ChallengeError> {
        self.postgres
            .challenge(tenant.as_str(), id)
            .await?
            .ok_or_else(|| ChallengeError::NotFound(format!("no challenge {id} in this tenant")))
    }

    /// Stores a submission: its output first (in IPFS when large), then the
    /// row; then the event and the leaderboard, which may lag but never lose
    /// it, since both are rebuilt from what is stored.
    pub async fn submit(
        &self,
        tenant: &TenantId,
        challenge_id: Uuid,
        input: SubmissionInput,
    ) -> Result<SubmissionRow, ChallengeError> {
        let status = input.status.as_deref().unwrap_or("queued");
        text_field("language", &input.language, 1, 64)?;
        if !STATUSES.contains(&status) {
            return Err(ChallengeError::Invalid(format!(
                "status must be one of {}",
                STATUSES.join(", ")
            )));
        }
        if input.code.len() > self.settings.max_code_bytes {
            return Err(ChallengeError::Invalid(format!(
                "code is {} bytes; the limit is {} (challenges.max_code_bytes)",
                input.code.len(),
                self.settings.max_code_bytes
            )));
        }
        if input.score.is_some_and(|score| !score.is_finite()) {
            return Err(ChallengeError::Invalid(
                "score must be a finite number".into(),
            ));
        }
        if input.runtime_ms.is_some_and(|ms| ms < 0) {
            return Err(ChallengeError::Invalid(
                "runtime_ms must not be negative".into(),
            ));
        }
        // Checked first, so no output reaches IPFS for a submission that
        // cannot be stored.
        self.challenge(tenant, challenge_id).await?;
        self.user(tenant, input.user_id).await?;

        let id = Uuid::new_v4();
        let output = input.output.unwrap_or_default();
        let output_size = output.len() as i64;
        let (output_inline, stored_output) = if output.len() > self.settings.inline_output_max_bytes
        {
            let details = UploadDetails {
                name: format!("submission-{id}-output.txt"),
                owner: Some(input.user_id.to_string()),
                declared_type: Some("text/plain; charset=utf-8".into()),
                metadata: serde_json::json!({"submission_id": id, "challenge_id": challenge_id}),
                replication_min: self.files.settings().replication_min,
                replication_max: self.files.settings().replication_max,
            };
            let file = self
                .files
                .store(tenant, Bytes::from(output), &details)
                .await?;
            self.analytics.file_uploaded(&file);
            (None, Some(file))
        } else {
            (Some(output), None)
        };
        let inserted = self
            .postgres
            .insert_submission(
                tenant.as_str(),
                NewSubmission {
                    id,
                    challenge_id,
                    user_id: input.user_id,
                    language: &input.language,
                    code: &input.code,
                    status,
                    score: input.score,
                    runtime_ms: input.runtime_ms,
                    output_inline: output_inline.as_deref(),
                    output_cid: stored_output.as_ref().map(|file| file.cid.as_str()),
                    output_size,
                },
            )
            .await;
        let row = match inserted {
            Ok(Some(row)) => row,
            Ok(None) | Err(_) => {
                if let Some(file) = &stored_output {
                    self.forget_output(tenant, &file.cid).await;
                }
                return Err(match inserted {
                    Ok(_) => ChallengeError::NotFound(
                        "the challenge or the user is no longer in this tenant".into(),
                    ),
                    Err(error) => error.into(),
                });
            }
        };
        self.analytics.submission_recorded(&SubmissionEvent {
            tenant,
            challenge_id,
            user_id: row.user_id,
            submission_id: row.id,
            status: &row.status,
            runtime_ms: row.runtime_ms,
        });
        if let Some(score) = row.score {
            if let Err(error) = self
                .leaderboards
                .record(tenant, challenge_id, row.user_id, score)
                .await
            {
                tracing::warn!(%error, submission = %row.id,
                    "leaderboard not updated; its next rebuild from Postgres adds the score");
            }
        }
        Ok(row)
    }

    pub async fn submission(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<SubmissionRow, ChallengeError> {
        self.postgres
            .submission(tenant.as_str(), id)
            .await?
            .ok_or_else(|| ChallengeError::NotFound(format!("no submission {id} in this tenant")))
    }

    /// The challenge's best `limit` users: from Redis, rebuilt there from
    /// Postgres when Redis lacks the board, straight from Postgres when
    /// Redis is unavailable.
    pub async fn leaderboard(
        &self,
        tenant: &TenantId,
        challenge_id: Uuid,
        limit: u32,
    ) -> Result<(Standing, LeaderboardSource), ChallengeError> {
        self.challenge(tenant, challenge_id).await?;
        match self.leaderboards.top(tenant, challenge_id, limit).await {
            Ok(Some(standing)) => return Ok((standing, LeaderboardSource::Redis)),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "leaderboard unavailable in Redis; reading Postgres");
                return Ok((
                    self.standing_from_postgres(tenant, challenge_id, limit)
                        .await?,
                    LeaderboardSource::Postgres,
                ));
            }
        }
        let scores = self
            .postgres
            .best_scores(tenant.as_str(), challenge_id, REBUILD_MAX_USERS)
            .await?;
        let rebuilt = self
            .leaderboards
            .rebuild(tenant, challenge_id, &scores)
            .await;
        let top = match rebuilt {
            Ok(()) => self.leaderboards.top(tenant, challenge_id, limit).await,
            Err(error) => Err(error),
        };
        match top {
            Ok(Some(standing)) => Ok((standing, LeaderboardSource::Rebuilt)),
            Ok(None) | Err(_) => Ok((standing(scores, limit), LeaderboardSource::Postgres)),
        }
    }

    async fn standing_from_postgres(
        &self,
        tenant: &TenantId,
        challenge_id: Uuid,
        limit: u32,
    ) -> Result<Standing, ChallengeError> {
        let scores = self
            .postgres
            .best_scores(tenant.as_str(), challenge_id, REBUILD_MAX_USERS)
            .await?;
        Ok(standing(scores, limit))
    }

    async fn forget_output(&self, tenant: &TenantId, cid: &str) {
        let Ok(cid) = crate::files::ContentId::parse(cid) else {
            return;
        };
        if let Err(error) = self.files.delete(tenant, &cid).await {
            tracing::warn!(%error, %cid, "output of a failed submission left in IPFS");
        }
    }

    pub fn files(&self) -> &Files {
        &self.files
    }
}

/// The first `limit` of every user's best score, best first.
fn standing(scores: Vec<BestScore>, limit: u32) -> Standing {
    Standing {
        ranked_users: scores.len() as u64,
        entries: scores.into_iter().take(limit as usize).collect(),
    }
}

fn text_field(name: &str, value: &str, min: usize, max: usize) -> Result<(), ChallengeError> {
    let length = value.chars().count();
    if length < min || value.len() > max || value.chars().any(char::is_control) {
        return Err(ChallengeError::Invalid(format!(
            "{name} must have {min} to {max} bytes and no control characters"
        )));
    }
    Ok(())
}

//! The platform's entities: users, challenges and their submissions.

use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{query_error, Postgres};
use crate::stores::StoreError;

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: Uuid,
    pub external_id: String,
    pub display_name: String,
    pub email: Option<String>,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct ChallengeRow {
    pub id: Uuid,
    pub slug: String,
    pub title: String,
    pub description: String,
    pub difficulty: String,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct SubmissionRow {
    pub id: Uuid,
    pub challenge_id: Uuid,
    pub user_id: Uuid,
    pub language: String,
    pub code: String,
    pub status: String,
    pub score: Option<f64>,
    pub runtime_ms: Option<i32>,
    pub output_inline: Option<String>,
    pub output_cid: Option<String>,
    pub output_size: Option<i64>,
    pub created_at: OffsetDateTime,
}

pub struct NewUser<'a> {
    pub external_id: &'a str,
    pub display_name: &'a str,
    pub email: Option<&'a str>,
}

pub struct NewChallenge<'a> {
    pub slug: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    pub difficulty: &'a str,
}

pub struct NewSubmission<'a> {
    pub id: Uuid,
    pub challenge_id: Uuid,
    pub user_id: Uuid,
    pub language: &'a str,
    pub code: &'a str,
    pub status: &'a str,
    pub score: Option<f64>,
    pub runtime_ms: Option<i32>,
    pub output_inline: Option<&'a str>,
    pub output_cid: Option<&'a str>,
    pub output_size: i64,
}

/// A user's best score on a challenge.
#[derive(Debug, Clone)]
pub struct BestScore {
    pub user_id: Uuid,
    pub score: f64,
}

const USER_COLUMNS: &str = "id, external_id, display_name, email, created_at";
const CHALLENGE_COLUMNS: &str = "id, slug, title, description, difficulty, created_at";
const SUBMISSION_COLUMNS: &str = "id, challenge_id, user_id, language, code, status, score, \
     runtime_ms, output_inline, output_cid, output_size, created_at";

impl UserRow {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            external_id: row.get("external_id"),
            display_name: row.get("display_name"),
            email: row.get("email"),
            created_at: row.get("created_at"),
        }
    }
}

impl ChallengeRow {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            slug: row.get("slug"),
            title: row.get("title"),
            description: row.get("description"),
            difficulty: row.get("difficulty"),
            created_at: row.get("created_at"),
        }
    }
}

impl SubmissionRow {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            challenge_id: row.get("challenge_id"),
            user_id: row.get("user_id"),
            language: row.get("language"),
            code: row.get("code"),
            status: row.get("status"),
            score: row.get("score"),
            runtime_ms: row.get("runtime_ms"),
            output_inline: row.get("output_inline"),
            output_cid: row.get("output_cid"),
            output_size: row.get("output_size"),
            created_at: row.get("created_at"),
        }
    }
}

impl Postgres {
    /// `None` when the tenant already has a user with that external id.
    pub async fn insert_user(
        &self,
        tenant_id: &str,
        user: NewUser<'_>,
    ) -> Result<Option<UserRow>, StoreError> {
        self.guard
            .run("insert_user", async {
                let client = self.client().await?;
                let row = client
                    .query_opt(
                        &format!(
                            "INSERT INTO users (id, tenant_id, external_id, display_name, email) \
                             VALUES ($1, $2, $3, $4, $5) \
                             ON CONFLICT (tenant_id, external_id) DO NOTHING \
                             RETURNING {USER_COLUMNS}"
                        ),
                        &[
                            &Uuid::new_v4(),
                            &tenant_id,
                            &user.external_id,
                            &user.display_name,
                            &user.email,
                        ],
                    )
                    .await
                    .map_err(query_error)?;
                Ok(row.as_ref().map(UserRow::from_row))
            })
            .await
    }

    pub async fn user(&self, tenant_id: &str, id: Uuid) -> Result<Option<UserRow>, StoreError> {
        self.guard
            .run("find_user", async {
                let client = self.client().await?;
                let row = client
                    .query_opt(
                        &format!(
                            "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND id = $2"
                        ),
                        &[&tenant_id, &id],
                    )
                    .await
                    .map_err(query_error)?;
                Ok(row.as_ref().map(UserRow::from_row))
            })
            .await
    }

    /// `None` when the tenant already has a challenge with that slug.
    pub async fn insert_challenge(
        &self,
        tenant_id: &str,
        challenge: NewChallenge<'_>,
    ) -> Result<Option<ChallengeRow>, StoreError> {
        self.guard
            .run("insert_challenge", async {
                let client = self.client().await?;
                let row = client
                    .query_opt(
                        &format!(
                            "INSERT INTO challenges (id, tenant_id, slug, title, description, difficulty) \
                             VALUES ($1, $2, $3, $4, $5, $6) \
                             ON CONFLICT (tenant_id, slug) DO NOTHING \
                             RETURNING {CHALLENGE_COLUMNS}"
                        ),
                        &[
                            &Uuid::new_v4(),
                            &tenant_id,
                            &challenge.slug,
                            &challenge.title,
                            &challenge.description,
                            &challenge.difficulty,
                        ],
                    )
                    .await
                    .map_err(query_error)?;
                Ok(row.as_ref().map(ChallengeRow::from_row))
            })
            .await
    }

    pub async fn challenge(
        &self,
        tenant_id: &str,
        id: Uuid,
    ) -> Result<Option<ChallengeRow>, StoreError> {
        self.guard
            .run("find_challenge", async {
                let client = self.client().await?;
                let row = client
                    .query_opt(
                        &format!(
                            "SELECT {CHALLENGE_COLUMNS} FROM challenges WHERE tenant_id = $1 AND id = $2"
                        ),
                        &[&tenant_id, &id],
                    )
                    .await
                    .map_err(query_error)?;
                Ok(row.as_ref().map(ChallengeRow::from_row))
            })
            .await
    }

    /// Inserts the submission when its challenge and user belong to the
    /// tenant; `None` when either does not.
    pub async fn insert_submission(
        &self,
        tenant_id: &str,
        new: NewSubmission<'_>,
    ) -> Result<Option<SubmissionRow>, StoreError> {
        self.guard
            .run("insert_submission", async {
                let client = self.client().await?;
                let row = client
                    .query_opt(
                        &format!(
                            "INSERT INTO submissions (id, tenant_id, challenge_id, user_id, language, \
                                 code, status, score, runtime_ms, output_inline, output_cid, output_size, \
                                 completed_at) \
                             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                                 CASE WHEN $7 IN ('passed', 'failed', 'error') THEN now() END \
                             WHERE EXISTS (SELECT 1 FROM challenges WHERE tenant_id = $2 AND id = $3) \
                               AND EXISTS (SELECT 1 FROM users WHERE tenant_id = $2 AND id = $4) \
                               AND ($11::text IS NULL OR EXISTS (SELECT 1 FROM file_metadata \
                                   WHERE tenant_id = $2 AND cid = $11 AND state = 'committed' \
                                   FOR SHARE)) \
                             RETURNING {SUBMISSION_COLUMNS}"
                        ),
                        &[
                            &new.id,
                            &tenant_id,
                            &new.challenge_id,
                            &new.user_id,
                            &new.language,
                            &new.code,
                            &new.status,
                            &new.score,
                            &new.runtime_ms,
                            &new.output_inline,
                            &new.output_cid,
                            &new.output_size,
                        ],
                    )
                    .await
                    .map_err(query_error)?;
                Ok(row.as_ref().map(SubmissionRow::from_row))
            })
            .await
    }

    pub async fn submission(
        &self,
        tenant_id: &str,
        id: Uuid,
    ) -> Result<Option<SubmissionRow>, StoreError> {
        self.guard
            .run("find_submission", async {
                let client = self.client().await?;
                let row = client
                    .query_opt(
                        &format!(
                            "SELECT {SUBMISSION_COLUMNS} FROM submissions WHERE tenant_id = $1 AND id = $2"
                        ),
                        &[&tenant_id, &id],
                    )
                    .await
                    .map_err(query_error)?;
                Ok(row.as_ref().map(SubmissionRow::from_row))
            })
            .await
    }

    /// Each user's best score on the challenge, best first; at most `limit`.
    pub async fn best_scores(
        &self,
        tenant_id: &str,
        challenge_id: Uuid,
        limit: i64,
    ) -> Result<Vec<BestScore>, StoreError> {
        self.guard
            .run("best_scores", async {
                let client = self.client().await?;
                let rows = client
                    .query(
                        "SELECT user_id, max(score) AS score FROM submissions \
                         WHERE tenant_id = $1 AND challenge_id = $2 AND score IS NOT NULL \
                         GROUP BY user_id ORDER BY score DESC, user_id::text DESC LIMIT $3",
                        &[&tenant_id, &challenge_id, &limit],
                    )
                    .await
                    .map_err(query_error)?;
                Ok(rows
                    .iter()
                    .map(|row| BestScore {
                        user_id: row.get("user_id"),
                        score: row.get("score"),
                    })
                    .collect())
            })
            .await
    }
}

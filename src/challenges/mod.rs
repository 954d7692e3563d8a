//! Challenges, the users who take them and their submissions.
//!
//! Postgres holds all three. A submission's output stays inline while it is
//! small and goes to IPFS through the files path when it is not; each
//! submission is recorded for the challenge statistics and, when scored, on
//! the challenge's leaderboard in Redis.

pub mod leaderboard;
mod model;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use crate::analytics::{Analytics, SubmissionEvent};
use crate::auth::TenantId;
use crate::config::ChallengeSettings;
use crate::files::{ContentId, Files, FilesError, StoredFile, UploadDetails};
use crate::stores::kubo::ContentStream;
use crate::stores::postgres::{self as store, BestScore, NewSubmission, Postgres};
use crate::stores::StoreError;
use leaderboard::{Leaderboards, Standing};
pub use model::{Challenge, Difficulty, NewChallenge, NewUser, Submission, SubmissionStatus, User};

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
    #[serde(default, deserialize_with = "crate::whole_number::option_i32")]
    pub runtime_ms: Option<i32>,
    pub output: Option<String>,
}

/// A submission's output, once read.
pub enum SubmissionOutput {
    Inline(String),
    /// Stored in IPFS as a file of the tenant; `created` when the tenant
    /// had no file with this content before.
    Stored {
        cid: ContentId,
        size: i64,
        created: bool,
    },
}

/// Where a streamed submission's output goes while its request is read.
pub struct OutputSink<'a> {
    challenges: &'a Challenges,
    tenant: &'a TenantId,
    challenge_id: Uuid,
    submission_id: Uuid,
    user_id: Uuid,
    output: Option<SubmissionOutput>,
}

impl OutputSink<'_> {
    /// Keeps the output: inline when small, else streamed into IPFS. A
    /// submission has one output at most.
    pub async fn store<S, E>(&mut self, body: S) -> Result<(), ChallengeError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        if self.output.is_some() {
            return Err(ChallengeError::Invalid(
                "a submission has one output at most".into(),
            ));
        }
        let output = self
            .challenges
            .store_output(
                self.tenant,
                self.challenge_id,
                self.submission_id,
                self.user_id,
                body,
            )
            .await?;
        self.output = Some(output);
        Ok(())
    }
}

/// A submission's output as a client receives it.
pub enum OutputToSend {
    Inline(String),
    Stored {
        cid: ContentId,
        size: u64,
        content: ContentStream,
    },
}

/// Where the leaderboard answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    ) -> Result<User, ChallengeError> {
        text_field("external_id", user.external_id, 1, 256)?;
        text_field("display_name", user.display_name, 0, 256)?;
        if let Some(email) = user.email {
            text_field("email", email, 3, 320)?;
            if !email.contains('@') {
                return Err(ChallengeError::Invalid("email must contain @".into()));
            }
        }
        let row = store::NewUser {
            external_id: user.external_id,
            display_name: user.display_name,
            email: user.email,
        };
        let inserted = self.postgres.insert_user(tenant.as_str(), row).await?;
        inserted.map(User::from).ok_or_else(|| {
            ChallengeError::Conflict(format!(
                "a user with external_id {:?} already exists",
                user.external_id
            ))
        })
    }

    pub async fn user(&self, tenant: &TenantId, id: Uuid) -> Result<User, ChallengeError> {
        self.postgres
            .user(tenant.as_str(), id)
            .await?
            .map(User::from)
            .ok_or_else(|| ChallengeError::NotFound(format!("no user {id} in this tenant")))
    }

    pub async fn create_challenge(
        &self,
        tenant: &TenantId,
        challenge: NewChallenge<'_>,
    ) -> Result<Challenge, ChallengeError> {
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
        let row = store::NewChallenge {
            slug: challenge.slug,
            title: challenge.title,
            description: challenge.description,
            difficulty: challenge.difficulty.as_str(),
        };
        let inserted = self.postgres.insert_challenge(tenant.as_str(), row).await?;
        let Some(row) = inserted else {
            return Err(ChallengeError::Conflict(format!(
                "a challenge with slug {:?} already exists",
                challenge.slug
            )));
        };
        Ok(Challenge::try_from(row)?)
    }

    pub async fn challenge(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Challenge, ChallengeError> {
        let row = self.postgres.challenge(tenant.as_str(), id).await?;
        let row = row
            .ok_or_else(|| ChallengeError::NotFound(format!("no challenge {id} in this tenant")))?;
        Ok(Challenge::try_from(row)?)
    }

    /// Stores a submission: its output first (in IPFS when large), then the
    /// row; then the event and the leaderboard, which may lag but never lose
    /// it, since both are rebuilt from what is stored.
    /// Stores a submission whose output, if any, came inside `input`.
    pub async fn submit(
        &self,
        tenant: &TenantId,
        challenge_id: Uuid,
        mut input: SubmissionInput,
    ) -> Result<Submission, ChallengeError> {
        self.check(tenant, challenge_id, &input).await?;
        let id = Uuid::new_v4();
        let output = match input.output.take() {
            Some(text) => {
                let body = futures_util::stream::once(async move {
                    Ok::<_, std::convert::Infallible>(Bytes::from(text))
                });
                Some(
                    self.store_output(tenant, challenge_id, id, input.user_id, body)
                        .await?,
                )
            }
            None => None,
        };
        self.record(tenant, challenge_id, id, input, output).await
    }

    /// A submission whose output streams after it in the request: checked
    /// first, so nothing is stored for a submission that would be refused;
    /// then `rest` reads the remainder of the request, handing any output
    /// to the sink. An output stored for a submission that fails after it
    /// is removed again.
    pub async fn submit_streamed<F>(
        &self,
        tenant: &TenantId,
        challenge_id: Uuid,
        input: SubmissionInput,
        rest: F,
    ) -> Result<Submission, ChallengeError>
    where
        F: AsyncFnOnce(&mut OutputSink<'_>) -> Result<(), ChallengeError>,
    {
        self.check(tenant, challenge_id, &input).await?;
        let mut sink = OutputSink {
            challenges: self,
            tenant,
            challenge_id,
            submission_id: Uuid::new_v4(),
            user_id: input.user_id,
            output: None,
        };
        let read = rest(&mut sink).await;
        let (id, output) = (sink.submission_id, sink.output);
        if let Err(error) = read {
            if let Some(output) = &output {
                self.discard_output(tenant, output).await;
            }
            return Err(error);
        }
        self.record(tenant, challenge_id, id, input, output).await
    }

    /// Validates a submission and checks its challenge and user exist, so
    /// no output reaches IPFS for a submission that cannot be stored.
    async fn check(
        &self,
        tenant: &TenantId,
        challenge_id: Uuid,
        input: &SubmissionInput,
    ) -> Result<(), ChallengeError> {
        text_field("language", &input.language, 1, 64)?;
        SubmissionStatus::parse(input.status.as_deref())?;
        no_nul("code", &input.code)?;
        if let Some(output) = &input.output {
            no_nul("output", output)?;
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
        self.challenge(tenant, challenge_id).await?;
        self.user(tenant, input.user_id).await?;
        Ok(())
    }

    /// Reads a submission's output: kept inline (as text) while it fits
    /// `inline_output_max_bytes`, streamed into IPFS as a file of the tenant
    /// once it does not, so a large output is never held whole.
    async fn store_output<S, E>(
        &self,
        tenant: &TenantId,
        challenge_id: Uuid,
        submission_id: Uuid,
        user_id: Uuid,
        body: S,
    ) -> Result<SubmissionOutput, ChallengeError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let inline_max = self.settings.inline_output_max_bytes;
        let mut body = std::pin::pin!(body);
        // The chunks read so far, kept as they came: a large output goes on
        // to IPFS without being copied.
        let mut head: Vec<Bytes> = Vec::new();
        let mut head_len = 0;
        while head_len <= inline_max {
            match body.next().await {
                Some(Ok(chunk)) => {
                    head_len += chunk.len();
                    head.push(chunk);
                }
                Some(Err(error)) => {
                    return Err(ChallengeError::Invalid(format!(
                        "the output ended abnormally: {error}"
                    )))
                }
                None => {
                    let text = String::from_utf8(head.concat()).map_err(|_| {
                        ChallengeError::Invalid("the output must be UTF-8 text".into())
                    })?;
                    no_nul("output", &text)?;
                    return Ok(SubmissionOutput::Inline(text));
                }
            }
        }
        let details = UploadDetails {
            name: format!("submission-{submission_id}-output.txt"),
            owner: Some(user_id.to_string()),
            declared_type: Some("text/plain; charset=utf-8".into()),
            metadata: serde_json::json!({
                "submission_id": submission_id,
                "challenge_id": challenge_id,
            }),
            replication_min: self.files.settings().replication_min,
            replication_max: self.files.settings().replication_max,
        };
        let whole = futures_util::stream::iter(head.into_iter().map(Ok)).chain(body);
        let StoredFile { file, created } = self.files.store(tenant, whole, &details).await?;
        Ok(SubmissionOutput::Stored {
            size: i64::try_from(file.charged_bytes()).unwrap_or(i64::MAX),
            cid: file.cid,
            created,
        })
    }

    /// Records a checked submission with its output; an output stored in
    /// IPFS for a submission that cannot be recorded is removed again.
    async fn record(
        &self,
        tenant: &TenantId,
        challenge_id: Uuid,
        id: Uuid,
        input: SubmissionInput,
        output: Option<SubmissionOutput>,
    ) -> Result<Submission, ChallengeError> {
        let (output_inline, stored_output, output_size) = match &output {
            None => (None, None, 0),
            Some(SubmissionOutput::Inline(text)) => (Some(text.as_str()), None, text.len() as i64),
            Some(SubmissionOutput::Stored { cid, size, .. }) => (None, Some(cid.as_str()), *size),
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
                    status: SubmissionStatus::parse(input.status.as_deref())?.as_str(),
                    score: input.score,
                    runtime_ms: input.runtime_ms,
                    output_inline,
                    output_cid: stored_output,
                    output_size,
                },
            )
            .await;
        let row = match inserted {
            Ok(Some(row)) => Submission::try_from(row)?,
            Ok(None) | Err(_) => {
                if let Some(output) = &output {
                    self.discard_output(tenant, output).await;
                }
                return Err(match inserted {
                    Ok(_) => ChallengeError::NotFound(
                        "the challenge, the user or the output's file is no longer in this tenant"
                            .into(),
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
            status: row.status.as_str(),
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

    /// Removes an output stored for a submission that was not recorded,
    /// unless the file was there before: then it is someone else's too.
    async fn discard_output(&self, tenant: &TenantId, output: &SubmissionOutput) {
        let SubmissionOutput::Stored {
            cid, created: true, ..
        } = output
        else {
            return;
        };
        if let Err(error) = self.files.delete(tenant, cid).await {
            tracing::warn!(%error, %cid, "output of a failed submission left in IPFS");
        }
    }

    pub async fn submission(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Submission, ChallengeError> {
        let row = self.postgres.submission(tenant.as_str(), id).await?;
        let row = row.ok_or_else(|| {
            ChallengeError::NotFound(format!("no submission {id} in this tenant"))
        })?;
        Ok(Submission::try_from(row)?)
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
        let rebuilt = self
            .leaderboards
            .single_flight(tenant, challenge_id, || async {
                let scores = self
                    .postgres
                    .best_scores(tenant.as_str(), challenge_id, REBUILD_MAX_USERS)
                    .await?;
                let rebuilt = self
                    .leaderboards
                    .rebuild(tenant, challenge_id, &scores)
                    .await;
                Ok::<_, ChallengeError>((scores, rebuilt))
            })
            .await;
        let (source, fallback) = match rebuilt {
            Some(outcome) => {
                let (scores, rebuilt) = outcome?;
                let source = match rebuilt {
                    Ok(()) => LeaderboardSource::Rebuilt,
                    Err(_) => LeaderboardSource::Postgres,
                };
                (source, Some(scores))
            }
            // Another request of this gateway just rebuilt it.
            None => (LeaderboardSource::Redis, None),
        };
        match (
            self.leaderboards.top(tenant, challenge_id, limit).await,
            fallback,
        ) {
            (Ok(Some(standing)), _) if source != LeaderboardSource::Postgres => {
                Ok((standing, source))
            }
            (_, Some(scores)) => Ok((standing(scores, limit), LeaderboardSource::Postgres)),
            (_, None) => Ok((
                self.standing_from_postgres(tenant, challenge_id, limit)
                    .await?,
                LeaderboardSource::Postgres,
            )),
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

    /// A submission's output on its way to a client: its inline text, or
    /// its stored file streamed from IPFS (a download of the tenant's).
    pub async fn output(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<OutputToSend, ChallengeError> {
        let submission = self.submission(tenant, id).await?;
        let Some(cid) = submission.output_cid else {
            return Ok(OutputToSend::Inline(
                submission.output_inline.unwrap_or_default(),
            ));
        };
        let file = self.files.file(tenant, &cid).await?;
        let size = file.charged_bytes();
        let content = self
            .files
            .download(tenant, file.cid.as_str(), None, size)
            .await?;
        Ok(OutputToSend::Stored {
            cid: file.cid,
            size,
            content,
        })
    }
}

/// The first `limit` of every user's best score, best first.
fn standing(scores: Vec<BestScore>, limit: u32) -> Standing {
    Standing {
        ranked_users: scores.len() as u64,
        entries: scores.into_iter().take(limit as usize).collect(),
    }
}

/// Text stored in Postgres cannot hold NUL; other control characters
/// (tabs, newlines) are fine in code and output.
fn no_nul(name: &str, value: &str) -> Result<(), ChallengeError> {
    if value.contains('\0') {
        return Err(ChallengeError::Invalid(format!(
            "{name} must not contain NUL characters"
        )));
    }
    Ok(())
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

//! What the challenges capability hands out and takes in: users,
//! challenges and submissions with their words typed and their output's
//! CID parsed. Rows stay in the store.

use time::OffsetDateTime;
use uuid::Uuid;

use super::ChallengeError;
use crate::files::ContentId;
use crate::stores::postgres::{ChallengeRow, SubmissionRow, UserRow};
use crate::stores::{StoreError, StoreKind};

/// How hard a challenge is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Difficulty {
    Easy,
    Medium,
    Hard,
}

impl Difficulty {
    pub const ALL: [Difficulty; 3] = [Difficulty::Easy, Difficulty::Medium, Difficulty::Hard];
    /// The words the API takes, in the order of [`Difficulty::ALL`].
    pub const NAMES: [&'static str; 3] = ["easy", "medium", "hard"];

    pub const fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    fn named(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == text)
    }

    pub fn parse(text: &str) -> Result<Self, ChallengeError> {
        Self::named(text).ok_or_else(|| {
            ChallengeError::Invalid(format!(
                "difficulty must be one of {}",
                Self::NAMES.join(", ")
            ))
        })
    }
}

/// Where a submission stands, as its submitter reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmissionStatus {
    Queued,
    Running,
    Passed,
    Failed,
    Error,
}

impl SubmissionStatus {
    pub const ALL: [SubmissionStatus; 5] = [
        SubmissionStatus::Queued,
        SubmissionStatus::Running,
        SubmissionStatus::Passed,
        SubmissionStatus::Failed,
        SubmissionStatus::Error,
    ];
    /// The words the API takes, in the order of [`SubmissionStatus::ALL`].
    pub const NAMES: [&'static str; 5] = ["queued", "running", "passed", "failed", "error"];

    pub const fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    fn named(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// A submission's status; absent means queued.
    pub fn parse(text: Option<&str>) -> Result<Self, ChallengeError> {
        let Some(text) = text else {
            return Ok(SubmissionStatus::Queued);
        };
        Self::named(text).ok_or_else(|| {
            ChallengeError::Invalid(format!("status must be one of {}", Self::NAMES.join(", ")))
        })
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub external_id: String,
    pub display_name: String,
    pub email: Option<String>,
    pub created_at: OffsetDateTime,
}

/// A user as a caller describes one.
pub struct NewUser<'a> {
    pub external_id: &'a str,
    pub display_name: &'a str,
    pub email: Option<&'a str>,
}

#[derive(Debug, Clone)]
pub struct Challenge {
    pub id: Uuid,
    pub slug: String,
    pub title: String,
    pub description: String,
    pub difficulty: Difficulty,
    pub created_at: OffsetDateTime,
}

/// A challenge as a caller describes one.
pub struct NewChallenge<'a> {
    pub slug: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    pub difficulty: Difficulty,
}

#[derive(Debug, Clone)]
pub struct Submission {
    pub id: Uuid,
    pub challenge_id: Uuid,
    pub user_id: Uuid,
    pub language: String,
    pub code: String,
    pub status: SubmissionStatus,
    pub score: Option<f64>,
    pub runtime_ms: Option<i32>,
    /// The output's text when it was kept inline.
    pub output_inline: Option<String>,
    /// The output's file when it went to IPFS.
    pub output_cid: Option<ContentId>,
    pub output_size: Option<u64>,
    pub created_at: OffsetDateTime,
}

/// A stored value no caller could have given is a fault of the store.
fn broken(what: &str, value: &str) -> StoreError {
    StoreError::failed(StoreKind::Postgres, format!("stored {what} {value:?}"))
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            id: row.id,
            external_id: row.external_id,
            display_name: row.display_name,
            email: row.email,
            created_at: row.created_at,
        }
    }
}

impl TryFrom<ChallengeRow> for Challenge {
    type Error = StoreError;

    fn try_from(row: ChallengeRow) -> Result<Self, StoreError> {
        let difficulty = Difficulty::named(&row.difficulty)
            .ok_or_else(|| broken("difficulty", &row.difficulty))?;
        Ok(Challenge {
            id: row.id,
            slug: row.slug,
            title: row.title,
            description: row.description,
            difficulty,
            created_at: row.created_at,
        })
    }
}

impl TryFrom<SubmissionRow> for Submission {
    type Error = StoreError;

    fn try_from(row: SubmissionRow) -> Result<Self, StoreError> {
        let status =
            SubmissionStatus::named(&row.status).ok_or_else(|| broken("status", &row.status))?;
        let output_cid = row
            .output_cid
            .as_deref()
            .map(|cid| ContentId::parse(cid).map_err(|_| broken("output CID", cid)))
            .transpose()?;
        let output_size = row
            .output_size
            .map(|size| u64::try_from(size).map_err(|_| broken("output size", &size.to_string())))
            .transpose()?;
        Ok(Submission {
            id: row.id,
            challenge_id: row.challenge_id,
            user_id: row.user_id,
            language: row.language,
            code: row.code,
            status,
            score: row.score,
            runtime_ms: row.runtime_ms,
            output_inline: row.output_inline,
            output_cid,
            output_size,
            created_at: row.created_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submission_row() -> SubmissionRow {
        SubmissionRow {
            id: Uuid::new_v4(),
            challenge_id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            language: "rust".into(),
            code: "fn main() {}".into(),
            status: "passed".into(),
            score: Some(1.0),
            runtime_ms: Some(3),
            output_inline: None,
            output_cid: Some("bafkqaaa".into()),
            output_size: Some(0),
            created_at: OffsetDateTime::now_utc(),
        }
    }

    #[test]
    fn difficulties_and_statuses_read_their_own_words_only() {
        for (difficulty, name) in Difficulty::ALL.into_iter().zip(Difficulty::NAMES) {
            assert_eq!(difficulty.as_str(), name);
            assert_eq!(Difficulty::parse(name).unwrap(), difficulty);
        }
        for (status, name) in SubmissionStatus::ALL
            .into_iter()
            .zip(SubmissionStatus::NAMES)
        {
            assert_eq!(status.as_str(), name);
            assert_eq!(SubmissionStatus::parse(Some(name)).unwrap(), status);
        }
        assert_eq!(
            SubmissionStatus::parse(None).unwrap(),
            SubmissionStatus::Queued
        );
        for bad in ["", "Easy", "medium "] {
            assert!(matches!(
                Difficulty::parse(bad),
                Err(ChallengeError::Invalid(m)) if m == "difficulty must be one of easy, medium, hard"
            ));
        }
        assert!(matches!(
            SubmissionStatus::parse(Some("done")),
            Err(ChallengeError::Invalid(m)) if m.starts_with("status must be one of queued")
        ));
    }

    #[test]
    fn a_stored_submission_becomes_typed() {
        let submission = Submission::try_from(submission_row()).unwrap();
        assert_eq!(submission.status, SubmissionStatus::Passed);
        assert_eq!(submission.output_cid.unwrap().as_str(), "bafkqaaa");
        assert_eq!(submission.output_size, Some(0));
    }

    #[test]
    fn a_row_no_caller_could_have_written_is_a_store_fault() {
        for row in [
            SubmissionRow {
                status: "done".into(),
                ..submission_row()
            },
            SubmissionRow {
                output_cid: Some("not-a-cid".into()),
                ..submission_row()
            },
            SubmissionRow {
                output_size: Some(-5),
                ..submission_row()
            },
        ] {
            let error = Submission::try_from(row).unwrap_err();
            assert!(error.to_string().contains("stored"), "{error}");
        }
        let challenge = ChallengeRow {
            id: Uuid::new_v4(),
            slug: "s".into(),
            title: "t".into(),
            description: String::new(),
            difficulty: "extreme".into(),
            created_at: OffsetDateTime::now_utc(),
        };
        assert!(Challenge::try_from(challenge).is_err());
    }
}

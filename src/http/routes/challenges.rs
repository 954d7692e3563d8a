//! Users, challenges, submissions and leaderboards.

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Principal, Scope};
use crate::challenges::leaderboard::Standing;
use crate::challenges::{
    Challenge, Challenges, Difficulty, LeaderboardSource, NewChallenge, NewUser, OutputToSend,
    Submission, SubmissionInput, User,
};
use crate::error_code::ErrorCode;
use crate::files::FilesError;
use crate::http::error::{extractors, ApiError};
use crate::http::form::{is_multipart, next_part, text_field};
use crate::http::page_limit::page_limit;
use crate::http::resource;
use crate::http::AppState;
use crate::rfc3339;

pub fn configure(cfg: &mut web::ServiceConfig, max_submission_bytes: usize) {
    cfg.service(resource("/users").route(web::post().to(create_user)))
        .service(resource("/users/{id}").route(web::get().to(read_user)))
        .service(resource("/challenges").route(web::post().to(create_challenge)))
        .service(resource("/challenges/{id}").route(web::get().to(read_challenge)))
        .service(
            resource("/challenges/{id}/submissions")
                .app_data(extractors::json_config(max_submission_bytes))
                .route(web::post().to(submit)),
        )
        .service(resource("/challenges/{id}/leaderboard").route(web::get().to(leaderboard)))
        .service(resource("/submissions/{id}").route(web::get().to(read_submission)))
        .service(resource("/submissions/{id}/output").route(web::get().to(read_output)));
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    external_id: String,
    #[serde(default)]
    display_name: String,
    email: Option<String>,
}

#[utoipa::path(post, path = "/users", tag = "challenges", summary = "Create a user", request_body = CreateUser, responses((status = 201, description = "The user", body = UserResponse), (status = 409, description = "The external id exists")))]
async fn create_user(
    principal: Principal,
    state: web::Data<AppState>,
    body: web::Json<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Challenges)?;
    let user = state
        .challenges
        .create_user(
            &principal.tenant,
            NewUser {
                external_id: &body.external_id,
                display_name: &body.display_name,
                email: body.email.as_deref(),
            },
        )
        .await?;
    Ok(HttpResponse::Created().json(user_json(&user)))
}

#[utoipa::path(get, path = "/users/{id}", tag = "challenges", summary = "A user", params(("id" = uuid::Uuid, Path)), responses((status = 200, description = "The user", body = UserResponse)))]
async fn read_user(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Challenges)?;
    let user = state.challenges.user(&principal.tenant, *id).await?;
    Ok(HttpResponse::Ok().json(user_json(&user)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateChallenge {
    slug: String,
    title: String,
    #[serde(default)]
    description: String,
    difficulty: Option<String>,
}

#[utoipa::path(post, path = "/challenges", tag = "challenges", summary = "Create a challenge", request_body = CreateChallenge, responses((status = 201, description = "The challenge", body = ChallengeResponse), (status = 409, description = "The slug exists")))]
async fn create_challenge(
    principal: Principal,
    state: web::Data<AppState>,
    body: web::Json<CreateChallenge>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Challenges)?;
    let difficulty = match body.difficulty.as_deref() {
        Some(word) => Difficulty::parse(word)?,
        None => Difficulty::Medium,
    };
    let challenge = state
        .challenges
        .create_challenge(
            &principal.tenant,
            NewChallenge {
                slug: &body.slug,
                title: &body.title,
                description: &body.description,
                difficulty,
            },
        )
        .await?;
    Ok(HttpResponse::Created().json(challenge_json(&challenge)))
}

#[utoipa::path(get, path = "/challenges/{id}", tag = "challenges", summary = "A challenge", params(("id" = uuid::Uuid, Path)), responses((status = 200, description = "The challenge", body = ChallengeResponse)))]
async fn read_challenge(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Challenges)?;
    let challenge = state.challenges.challenge(&principal.tenant, *id).await?;
    Ok(HttpResponse::Ok().json(challenge_json(&challenge)))
}

#[utoipa::path(post, path = "/challenges/{id}/submissions", tag = "challenges", summary = "Submit: large outputs go to IPFS, scores to the leaderboard", params(("id" = uuid::Uuid, Path, description = "The challenge")), request_body(description = "The submission as JSON, output included; or multipart/form-data with a `submission` part (the same JSON without `output`) followed by an `output` part, streamed to IPFS when large", content((crate::challenges::SubmissionInput = "application/json"), (Vec<u8> = "multipart/form-data"))), responses((status = 201, description = "The submission", body = SubmissionResponse)))]
async fn submit(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    req: HttpRequest,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    principal
        .require(Scope::Challenges)
        .map_err(ApiError::from)?;
    let challenges = &state.challenges;
    let submission = if is_multipart(&req) {
        let idle = std::time::Duration::from_secs(state.settings.server.idle_timeout_secs);
        let payload = crate::http::idle::request_body(payload, idle);
        submit_form(challenges, &principal, *id, &req, payload).await?
    } else {
        // Read with the route's JSON settings: its size limit and the
        // error answer every JSON body gets.
        let body = web::Json::<SubmissionInput>::from_request(&req, &mut payload.into_inner())
            .await?
            .into_inner();
        challenges
            .submit(&principal.tenant, *id, body)
            .await
            .map_err(ApiError::from)?
    };
    Ok(HttpResponse::Created().json(submission_json(&submission)))
}

/// A submission as a form: the `submission` part first, so it is checked
/// before any output is stored, then an optional `output` part streamed
/// through.
async fn submit_form(
    challenges: &Challenges,
    principal: &Principal,
    challenge_id: Uuid,
    req: &HttpRequest,
    payload: impl futures_util::Stream<Item = Result<bytes::Bytes, actix_web::error::PayloadError>>
        + 'static,
) -> Result<Submission, ApiError> {
    let mut form = Multipart::new(req.headers(), payload);
    let expected = |what: &str| {
        FilesError::invalid(
            ErrorCode::InvalidMultipart,
            format!("expected {what}; a submission form is a \"submission\" part, then an optional \"output\" part"),
        )
    };
    let text = {
        // The form moves on to its next part only once this one is dropped.
        let mut field = next_part(&mut form)
            .await?
            .ok_or_else(|| expected("a \"submission\" part"))?;
        if field.name() != Some("submission") {
            return Err(expected("the \"submission\" part first").into());
        }
        text_field(&mut field, challenges.settings().max_submission_bytes).await?
    };
    let input: SubmissionInput = serde_json::from_str(&text).map_err(|e| {
        ApiError::bad_request(ErrorCode::InvalidJson, format!("the submission part: {e}"))
    })?;
    if input.output.is_some() {
        return Err(expected("the output in the \"output\" part only").into());
    }
    let submission = challenges
        .submit_streamed(&principal.tenant, challenge_id, input, async |sink| {
            match next_part(&mut form).await? {
                None => return Ok(()),
                Some(field) if field.name() == Some("output") => sink.store(field).await?,
                Some(_) => return Err(expected("an \"output\" part after the submission").into()),
            }
            match next_part(&mut form).await? {
                None => Ok(()),
                Some(_) => Err(expected("nothing after the \"output\" part").into()),
            }
        })
        .await?;
    Ok(submission)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct LeaderboardQuery {
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/challenges/{id}/leaderboard", tag = "challenges", summary = "Each user's best score, best first", params(("id" = uuid::Uuid, Path, description = "The challenge"), LeaderboardQuery), responses((status = 200, description = "The leaderboard and where it was read", body = LeaderboardResponse)))]
async fn leaderboard(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    query: web::Query<LeaderboardQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Challenges)?;
    let settings = state.challenges.settings();
    let limit = page_limit(
        query.limit,
        settings.leaderboard_default_limit,
        settings.leaderboard_max_limit,
        "challenges.leaderboard_max_limit",
    )?;
    let (standing, source) = state
        .challenges
        .leaderboard(&principal.tenant, *id, limit)
        .await?;
    Ok(HttpResponse::Ok().json(leaderboard_json(*id, &standing, &source)))
}

#[utoipa::path(get, path = "/submissions/{id}", tag = "challenges", summary = "A submission, its output inline or named by CID", params(("id" = uuid::Uuid, Path)), responses((status = 200, description = "The submission", body = SubmissionResponse)))]
async fn read_submission(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Challenges)?;
    let submission = state.challenges.submission(&principal.tenant, *id).await?;
    Ok(HttpResponse::Ok().json(submission_json(&submission)))
}

/// The output alone, as text: inline from Postgres, or streamed from IPFS.
#[utoipa::path(get, path = "/submissions/{id}/output", tag = "challenges", summary = "A submission's output as text, streamed from IPFS when stored there", params(("id" = uuid::Uuid, Path)), responses((status = 200, description = "The output", body = String)))]
async fn read_output(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Challenges)?;
    let mut response = HttpResponse::Ok();
    response.content_type("text/plain; charset=utf-8");
    match state.challenges.output(&principal.tenant, *id).await? {
        OutputToSend::Inline(text) => Ok(response.body(text)),
        OutputToSend::Stored { cid, size, content } => {
            response.insert_header((
                header::HeaderName::from_static("x-output-cid"),
                cid.to_string(),
            ));
            Ok(response.no_chunking(size).streaming(content))
        }
    }
}

#[derive(Serialize, ToSchema)]
struct UserResponse {
    id: Uuid,
    external_id: String,
    display_name: String,
    email: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
}

fn user_json(user: &User) -> UserResponse {
    UserResponse {
        id: user.id,
        external_id: user.external_id.clone(),
        display_name: user.display_name.clone(),
        email: user.email.clone(),
        created_at: rfc3339::format(user.created_at),
    }
}

#[derive(Serialize, ToSchema)]
struct ChallengeResponse {
    id: Uuid,
    slug: String,
    title: String,
    description: String,
    /// easy, medium or hard.
    difficulty: String,
    #[schema(format = DateTime)]
    created_at: String,
}

fn challenge_json(challenge: &Challenge) -> ChallengeResponse {
    ChallengeResponse {
        id: challenge.id,
        slug: challenge.slug.clone(),
        title: challenge.title.clone(),
        description: challenge.description.clone(),
        difficulty: challenge.difficulty.as_str().to_owned(),
        created_at: rfc3339::format(challenge.created_at),
    }
}

/// Where a submission's output is: inline, or a file in IPFS.
#[derive(Serialize, ToSchema)]
#[serde(tag = "stored_in", rename_all = "lowercase")]
enum OutputResponse {
    Inline {
        text: Option<String>,
        size: Option<u64>,
    },
    Ipfs {
        cid: String,
        size: Option<u64>,
        /// Where the output streams from: `/submissions/{id}/output`.
        url: String,
    },
}

#[derive(Serialize, ToSchema)]
struct SubmissionResponse {
    id: Uuid,
    challenge_id: Uuid,
    user_id: Uuid,
    language: String,
    code: String,
    /// queued, running, passed, failed or error.
    status: String,
    score: Option<f64>,
    runtime_ms: Option<i32>,
    output: OutputResponse,
    #[schema(format = DateTime)]
    created_at: String,
}

fn submission_json(submission: &Submission) -> SubmissionResponse {
    let output = match &submission.output_cid {
        Some(cid) => OutputResponse::Ipfs {
            cid: cid.to_string(),
            size: submission.output_size,
            url: format!("/submissions/{}/output", submission.id),
        },
        None => OutputResponse::Inline {
            text: submission.output_inline.clone(),
            size: submission.output_size,
        },
    };
    SubmissionResponse {
        id: submission.id,
        challenge_id: submission.challenge_id,
        user_id: submission.user_id,
        language: submission.language.clone(),
        code: submission.code.clone(),
        status: submission.status.as_str().to_owned(),
        score: submission.score,
        runtime_ms: submission.runtime_ms,
        output,
        created_at: rfc3339::format(submission.created_at),
    }
}

#[derive(Serialize, ToSchema)]
struct LeaderboardEntry {
    rank: usize,
    user_id: Uuid,
    score: f64,
}

#[derive(Serialize, ToSchema)]
struct LeaderboardResponse {
    challenge_id: Uuid,
    entries: Vec<LeaderboardEntry>,
    /// Users with a score on the challenge.
    ranked_users: u64,
    /// redis, rebuilt (from Postgres into Redis just now) or postgres (Redis unavailable).
    source: &'static str,
}

fn leaderboard_json(
    challenge: Uuid,
    standing: &Standing,
    source: &LeaderboardSource,
) -> LeaderboardResponse {
    LeaderboardResponse {
        challenge_id: challenge,
        entries: standing
            .entries
            .iter()
            .enumerate()
            .map(|(i, best)| LeaderboardEntry {
                rank: i + 1,
                user_id: best.user_id,
                score: best.score,
            })
            .collect(),
        ranked_users: standing.ranked_users,
        source: match source {
            LeaderboardSource::Redis => "redis",
            LeaderboardSource::Rebuilt => "rebuilt",
            LeaderboardSource::Postgres => "postgres",
        },
    }
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    create_user,
    read_user,
    create_challenge,
    read_challenge,
    submit,
    leaderboard,
    read_submission,
    read_output
))]
pub struct Api;

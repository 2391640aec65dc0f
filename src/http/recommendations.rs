//! Solo listening: recommendations, feedback, comparisons and the taste profile.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{AuthUser, JsonBody};
use crate::{
    bandit::{
        actor::{ChooseSolo, Outcome, Shown},
        context::{Maturity, Pull},
    },
    domain::now_ms,
    error::{ApiError, ErrorBody, ErrorCode},
    experiments::{assign, attribution::credited_request},
    recommend::{self, Pair, Recommended, Recommender},
    state::AppState,
    storage::experiments::{self, NewExposure},
    taste::{
        actor::{GetProfile, RecordComparison, RecordFeedback},
        FeedbackKind, Profile,
    },
};

pub const DEFAULT_LIMIT: usize = 10;
pub const MAX_LIMIT: usize = 100;
pub const MAX_EXCLUDE: usize = 500;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(recommendations)
        .service(feedback)
        .service(next_comparison)
        .service(compare)
        .service(profile);
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecommendationRequest {
    /// 1–100, default 10.
    limit: Option<usize>,
    context: Option<RecommendationContext>,
    /// Track ids not to recommend this time (at most 500).
    exclude: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecommendationContext {
    /// Only tracks of this genre or sub-genre (see `GET /api/v1/genres`). Filters the ranked
    /// candidates, so a rare genre may give fewer than `limit` items.
    genre: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RecommendationList {
    /// Quote it in feedback (`request_id`) so the answer is attributed to this list.
    request_id: String,
    /// `hybrid` (retrieval, NCF and the hybrid ranker), `ncf` or `content` (retrieval, then that
    /// model's score alone), `popularity` (popular and diverse, ignoring taste), chosen by the
    /// strategy bandit; `popular_diverse` while the listener has no taste yet.
    strategy: &'static str,
    /// The A/B variant that served this list, when an experiment is running.
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    items: Vec<Recommended>,
    /// How many retrieval candidates the rankers scored.
    candidates_considered: usize,
}

/// Personal recommendations: retrieval over every track, ranked by the NCF and hybrid models,
/// with each signal's contribution. Learns from feedback at once.
#[utoipa::path(
    request_body = RecommendationRequest,
    responses(
        (status = 200, body = RecommendationList),
        (status = 400, description = "malformed_json, unknown_field", body = ErrorBody),
        (status = 401, description = "missing_token, invalid_token", body = ErrorBody),
        (status = 404, description = "track_not_found (in exclude)", body = ErrorBody),
        (status = 422, description = "invalid_field", body = ErrorBody),
        (status = 503, description = "overloaded (see Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "recommendations"
)]
#[post("/api/v1/recommendations")]
pub async fn recommendations(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    body: JsonBody<RecommendationRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let limit = body.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(invalid(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let exclude = body.exclude.unwrap_or_default();
    if exclude.len() > MAX_EXCLUDE {
        return Err(invalid(format!(
            "exclude may list at most {MAX_EXCLUDE} tracks"
        )));
    }
    let exclude = exclude
        .iter()
        .enumerate()
        .map(|(i, id)| state.track_index(id, &format!("exclude[{i}]")))
        .collect::<Result<Vec<u32>, ApiError>>()?;
    let genre = match body.context.and_then(|c| c.genre) {
        None => None,
        Some(g) => Some(state.genre(&g)?),
    };
    // A running experiment decides the strategy for the listeners it holds; else the bandit.
    let experiment = state.experiments.running();
    let variant = experiment
        .as_ref()
        .map(|e| assign::variant_for(&e.variants, &e.id, user.id.as_str()).clone());
    let snapshot = state.recommender.snapshot(&user.id).await?;
    let maturity = Maturity::of_signals(Recommender::signals(&snapshot));
    let strategy = match (&experiment, &variant) {
        (Some(experiment), Some(variant)) => experiment.strategy_of(variant),
        _ => state
            .bandit
            .send(ChooseSolo(maturity))
            .await
            .map_err(|_| ApiError::internal(anyhow::anyhow!("the bandit actor is gone")))?,
    };
    let list = state
        .recommender
        .for_snapshot(
            &snapshot,
            recommend::Request {
                limit,
                genre,
                exclude,
                strategy,
            },
        )
        .await?;
    let request_id = uuid::Uuid::now_v7().to_string();
    let track_ids: Vec<&str> = list.items.iter().map(|i| i.track.id.as_str()).collect();
    // Stored before the answer, so feedback quoting the id always finds its exposure.
    experiments::insert_exposure(
        &state.db,
        &NewExposure {
            request_id: &request_id,
            user_id: Some(user.id.as_str()),
            group_id: None,
            experiment_id: experiment.as_ref().map(|e| e.id.as_str()),
            variant: variant.as_ref().map(|v| v.name.as_str()),
            strategy: list.strategy,
            track_ids: &track_ids,
            created_at: now_ms(),
        },
    )
    .await?;
    if experiment.is_none() && list.strategy == strategy.as_str() {
        state.bandit.do_send(Shown {
            request_id: request_id.clone(),
            pull: Pull::Solo(maturity, strategy),
        });
    }
    Ok(HttpResponse::Ok().json(RecommendationList {
        request_id,
        strategy: list.strategy,
        variant: variant.map(|v| v.name),
        items: list.items,
        candidates_considered: list.considered,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    track_id: String,
    kind: FeedbackKind,
    /// The `request_id` of the recommendation list the track came from, if any.
    request_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FeedbackAccepted {
    interaction_id: String,
    track_id: String,
    kind: FeedbackKind,
    /// Whether the quoted `request_id` was credited: only a list shown to you, for a track in
    /// it. Otherwise the feedback is kept as plain feedback.
    credited: bool,
}

/// Records a like, dislike, skip, play or add. Stored before the answer; the next
/// recommendation already reflects it.
#[utoipa::path(
    request_body = FeedbackRequest,
    responses(
        (status = 202, body = FeedbackAccepted),
        (status = 400, description = "malformed_json, unknown_field", body = ErrorBody),
        (status = 401, description = "missing_token, invalid_token", body = ErrorBody),
        (status = 404, description = "track_not_found", body = ErrorBody),
        (status = 422, description = "missing_field, invalid_field (e.g. an unknown kind)", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "recommendations"
)]
#[post("/api/v1/feedback")]
pub async fn feedback(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    body: JsonBody<FeedbackRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let item = state.track_index(&body.track_id, "track_id")?;
    let quoted = body.request_id.map(|r| request_id(&r)).transpose()?;
    let track_id = state.catalog.track(item).id.as_str().to_string();
    let request_id = credited_request(&state.db, quoted, &user.id, &track_id).await?;
    let interaction_id = state
        .users
        .send(
            &user.id,
            RecordFeedback {
                item,
                track_id: body.track_id.clone(),
                kind: body.kind,
                request_id: request_id.clone(),
                group_id: None,
            },
        )
        .await??;
    let credited = request_id.is_some();
    if let Some(request_id) = request_id {
        state.bandit.do_send(Outcome {
            request_id,
            kind: body.kind,
        });
    }
    Ok(HttpResponse::Accepted().json(FeedbackAccepted {
        interaction_id,
        track_id: body.track_id,
        kind: body.kind,
        credited,
    }))
}

/// The next pair worth asking about; 204 when there is none left.
#[utoipa::path(
    responses(
        (status = 200, body = Pair),
        (status = 204, description = "no pair left to compare"),
        (status = 401, description = "missing_token, invalid_token", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "recommendations"
)]
#[get("/api/v1/comparisons/next")]
pub async fn next_comparison(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse, ApiError> {
    Ok(
        match recommend::next_pair(&state.recommender, &user.id).await? {
            Some(pair) => HttpResponse::Ok().json(pair),
            None => HttpResponse::NoContent().finish(),
        },
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComparisonRequest {
    a: String,
    b: String,
    /// Equal to `a` or `b`.
    winner: String,
    request_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ComparisonAccepted {
    comparison_id: String,
}

/// Records which of two tracks the listener prefers; the taste vector is refitted at once.
#[utoipa::path(
    request_body = ComparisonRequest,
    responses(
        (status = 202, body = ComparisonAccepted),
        (status = 400, description = "malformed_json, unknown_field", body = ErrorBody),
        (status = 401, description = "missing_token, invalid_token", body = ErrorBody),
        (status = 404, description = "track_not_found", body = ErrorBody),
        (status = 422, description = "missing_field, invalid_field", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "recommendations"
)]
#[post("/api/v1/comparisons")]
pub async fn compare(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    body: JsonBody<ComparisonRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if body.a == body.b {
        return Err(invalid("a and b must be different tracks"));
    }
    if body.winner != body.a && body.winner != body.b {
        return Err(invalid("winner must be equal to a or b"));
    }
    let a = state.track_index(&body.a, "a")?;
    let b = state.track_index(&body.b, "b")?;
    let request_id = body.request_id.map(|r| request_id(&r)).transpose()?;
    let comparison_id = state
        .users
        .send(
            &user.id,
            RecordComparison {
                a_wins: body.winner == body.a,
                a: (a, body.a),
                b: (b, body.b),
                request_id,
            },
        )
        .await??;
    Ok(HttpResponse::Accepted().json(ComparisonAccepted { comparison_id }))
}

#[derive(Serialize, ToSchema)]
pub struct ProfileResponse {
    user_id: String,
    #[serde(flatten)]
    profile: Profile,
}

/// What the server has learned: feedback counts, top genres, audio-feature taste, confidence.
#[utoipa::path(
    responses(
        (status = 200, body = ProfileResponse),
        (status = 401, description = "missing_token, invalid_token", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "recommendations"
)]
#[get("/api/v1/me/profile")]
pub async fn profile(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse, ApiError> {
    let profile = state.users.send(&user.id, GetProfile).await?;
    Ok(HttpResponse::Ok().json(ProfileResponse {
        user_id: user.id.to_string(),
        profile,
    }))
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidField, message)
}

/// Request ids are the UUIDs this server hands out.
fn request_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| invalid("request_id must be a request_id returned by this server (a UUID)"))
}

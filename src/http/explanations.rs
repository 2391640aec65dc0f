//! `GET /api/v1/tracks/{id}/explanation[?group=ID]`: why a track suits the caller, or their
//! group, in two or three sentences built only from facts the server holds.

use std::time::Instant;

use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::AuthUser;
use crate::{
    domain::TrackId,
    error::{ApiError, ErrorBody, ErrorCode},
    explain::{
        actor::{explainer_gone, Explain},
        gather,
    },
    groups::ids::GroupId,
    state::AppState,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(explanation);
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExplanationParams {
    /// Explain for this group (the caller must be a member) instead of the caller alone.
    group: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Explanation {
    track_id: String,
    text: String,
    /// `llm` (written by the language model from the facts) or `template` (built from the
    /// facts directly: no model configured, or it was slow, failing or talked nonsense).
    source: &'static str,
    /// The language model that wrote it, for `llm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    /// Served from the cache of earlier answers for the same track and taste.
    cached: bool,
    /// Why the template answered although a model is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback: Option<String>,
    latency_ms: u64,
}

/// Why this track fits the caller (or their group): its features, the audience's taste and
/// the ranker's strongest signals.
#[utoipa::path(
    params(("id" = String, Path, description = "Track id"), ExplanationParams),
    responses(
        (status = 200, body = Explanation),
        (status = 400, description = "invalid_id, invalid_query", body = ErrorBody),
        (status = 401, description = "missing_token, invalid_token", body = ErrorBody),
        (status = 403, description = "not_a_member", body = ErrorBody),
        (status = 404, description = "track_not_found, group_not_found", body = ErrorBody),
        (status = 503, description = "overloaded", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "recommendations"
)]
#[get("/api/v1/tracks/{id}/explanation")]
pub async fn explanation(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
    params: web::Query<ExplanationParams>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let id = TrackId::parse(&id).map_err(|e| ApiError::new(ErrorCode::InvalidId, e))?;
    let item = state
        .catalog
        .index_of(id.as_str())
        .ok_or_else(|| ApiError::new(ErrorCode::TrackNotFound, format!("no track has id {id}")))?;
    let facts = match &params.group {
        Some(group) => {
            // A malformed id here is a bad query parameter, not a bad path.
            GroupId::parse(group)
                .map_err(|e| ApiError::new(ErrorCode::InvalidQuery, format!("group: {e}")))?;
            let room = state.groups.member_room(group, &user.id).await?;
            gather::for_group(&state.recommender, &room, item).await?
        }
        None => gather::for_listener(&state.recommender, &user.id, item).await?,
    };
    let answer = state
        .explainer
        .send(Explain {
            facts,
            deltas: None,
        })
        .await
        .map_err(explainer_gone)?;
    Ok(HttpResponse::Ok().json(Explanation {
        track_id: id.to_string(),
        text: answer.text,
        source: answer.source.as_str(),
        model: answer.model,
        cached: answer.cached,
        fallback: answer.fallback,
        latency_ms: started.elapsed().as_millis() as u64,
    }))
}

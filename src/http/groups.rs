//! Group sessions over REST: create, join by code, and read-only mirrors of the socket state
//! (snapshot, event log, recommendations). Changes to a group go over the socket.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{AuthUser, JsonBody};
use crate::{
    error::{ApiError, ErrorBody, ErrorCode},
    groups::{settings::SettingsPatch, state::GroupView, CreatedGroup, EventPage},
    recommend::GroupRecommendations,
    state::AppState,
};

pub const DEFAULT_EVENTS_PAGE: i64 = 500;
pub const MAX_EVENTS_PAGE: i64 = 1_000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create_group)
        .service(join_group)
        .service(get_group)
        .service(group_events)
        .service(group_recommendations);
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    /// 1–80 characters.
    name: String,
    /// Defaults: max_members 32, skip_threshold 0.5, aggregation fair, guest_controls true.
    settings: Option<SettingsPatch>,
}

/// Creates a group session with the caller as host.
#[utoipa::path(
    request_body = CreateGroup,
    responses(
        (status = 201, body = CreatedGroup),
        (status = 400, description = "malformed_json, unknown_field", body = ErrorBody),
        (status = 401, description = "missing_token, invalid_token", body = ErrorBody),
        (status = 422, description = "missing_field, invalid_field", body = ErrorBody),
        (status = 429, description = "quota_exceeded (rooms per user per day)", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "groups"
)]
#[post("/api/v1/groups")]
pub async fn create_group(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    body: JsonBody<CreateGroup>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let created = state
        .groups
        .create(&user.id, &user.display_name, &body.name, body.settings)
        .await?;
    Ok(HttpResponse::Created().json(created))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinGroup {
    /// The six-character code (case, spaces and dashes do not matter).
    join_code: String,
}

#[derive(Serialize, ToSchema)]
pub struct JoinedGroup {
    group_id: String,
    name: String,
    /// The group's seq after joining.
    seq: i64,
    /// `member`, or `pending` while the host has not let you in yet (ask again to find out).
    status: &'static str,
}

/// Joins a group by its code (joining again is harmless). Then open a socket and send `join`.
/// In a room whose host approves newcomers the answer is 202 `pending` until the host lets you
/// in; ask again (every few seconds) to find out.
#[utoipa::path(
    request_body = JoinGroup,
    responses(
        (status = 200, body = JoinedGroup),
        (status = 202, description = "waiting for the host's approval", body = JoinedGroup),
        (status = 401, description = "missing_token, invalid_token", body = ErrorBody),
        (status = 403, description = "not_allowed (removed or declined by the host, or the room is locked)", body = ErrorBody),
        (status = 404, description = "join_code_not_found", body = ErrorBody),
        (status = 409, description = "group_full", body = ErrorBody),
        (status = 422, description = "missing_field, invalid_field", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "groups"
)]
#[post("/api/v1/groups/join")]
pub async fn join_group(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    body: JsonBody<JoinGroup>,
) -> Result<HttpResponse, ApiError> {
    let joined = state
        .groups
        .join_by_code(&user.id, &user.display_name, &body.join_code)
        .await?;
    let (mut response, status) = if joined.member {
        (HttpResponse::Ok(), "member")
    } else {
        (HttpResponse::Accepted(), "pending")
    };
    Ok(response.json(JoinedGroup {
        group_id: joined.group_id,
        name: joined.name,
        seq: joined.seq,
        status,
    }))
}

/// The group as members see it: members with presence, the playlist, settings and `seq`.
#[utoipa::path(
    params(("id" = String, Path, description = "Group id")),
    responses(
        (status = 200, body = GroupView),
        (status = 400, description = "invalid_id", body = ErrorBody),
        (status = 401, description = "missing_token, invalid_token", body = ErrorBody),
        (status = 403, description = "not_a_member", body = ErrorBody),
        (status = 404, description = "group_not_found", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "groups"
)]
#[get("/api/v1/groups/{id}")]
pub async fn get_group(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let room = state.groups.member_room(&path, &user.id).await?;
    Ok(HttpResponse::Ok().json(room.view().await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Return events with seq greater than this (default 0: from the start).
    after: Option<i64>,
    /// 1–1000, default 500.
    limit: Option<i64>,
}

/// The group's event log after `after`, oldest first: exactly what a socket would have received.
#[utoipa::path(
    params(("id" = String, Path, description = "Group id"), EventsQuery),
    responses(
        (status = 200, body = EventPage),
        (status = 400, description = "invalid_id, invalid_query", body = ErrorBody),
        (status = 401, description = "missing_token, invalid_token", body = ErrorBody),
        (status = 403, description = "not_a_member", body = ErrorBody),
        (status = 404, description = "group_not_found", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "groups"
)]
#[get("/api/v1/groups/{id}/events")]
pub async fn group_events(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    path: web::Path<String>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let after = query.after.unwrap_or(0);
    let limit = query.limit.unwrap_or(DEFAULT_EVENTS_PAGE);
    if after < 0 {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            "after must be 0 or more",
        ));
    }
    if !(1..=MAX_EVENTS_PAGE).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("limit must be between 1 and {MAX_EVENTS_PAGE}"),
        ));
    }
    let room = state.groups.member_room(&path, &user.id).await?;
    Ok(HttpResponse::Ok().json(state.groups.events(&room, after, limit).await?))
}

/// The group's current recommendations with its harmony (computed now if there are none yet).
#[utoipa::path(
    params(("id" = String, Path, description = "Group id")),
    responses(
        (status = 200, body = GroupRecommendations),
        (status = 400, description = "invalid_id", body = ErrorBody),
        (status = 401, description = "missing_token, invalid_token", body = ErrorBody),
        (status = 403, description = "not_a_member", body = ErrorBody),
        (status = 404, description = "group_not_found", body = ErrorBody),
        (status = 503, description = "overloaded (see Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "groups"
)]
#[get("/api/v1/groups/{id}/recommendations")]
pub async fn group_recommendations(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let room = state.groups.member_room(&path, &user.id).await?;
    Ok(HttpResponse::Ok().json(&*room.recommendations().await?))
}

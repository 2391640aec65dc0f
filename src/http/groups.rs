//! Group sessions over REST: create, join by code, and read-only mirrors of the socket state
//! (snapshot, event log, recommendations). Changes to a group go over the socket.

use actix::Addr;
use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{AuthUser, JsonBody};
use crate::{
    domain::{now_ms, text, UserId},
    error::{ApiError, ErrorBody, ErrorCode},
    groups::{
        actor::{
            mailbox, stored_events, Execute, GetRecommendations, GetView, GroupActor, IsMember,
            Origin,
        },
        commands::Command,
        events::{Event, EventBody},
        ids::{generate_join_code, normalize_join_code, GroupId},
        settings::{GroupSettings, SettingsPatch},
        state::GroupView,
    },
    recommend::GroupRecommendations,
    state::AppState,
    storage::groups,
};

pub const MAX_NAME_CHARS: usize = 80;
pub const DEFAULT_EVENTS_PAGE: i64 = 500;
pub const MAX_EVENTS_PAGE: i64 = 1_000;
/// Join codes drawn before giving up (a clash is a one-in-millions event).
const JOIN_CODE_ATTEMPTS: usize = 5;

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

#[derive(Serialize, ToSchema)]
pub struct CreatedGroup {
    group_id: String,
    /// Six characters others type (or scan) to join.
    join_code: String,
    name: String,
    settings: GroupSettings,
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
    let name = body.name.trim().to_string();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            format!("name must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    text::check_line("name", &name).map_err(|e| ApiError::new(ErrorCode::InvalidField, e))?;
    enforce_room_quota(&state, &user.id).await?;
    let settings = GroupSettings::default()
        .patched(&body.settings.unwrap_or_default())
        .map_err(|e| ApiError::new(ErrorCode::InvalidField, e))?;
    let group_id = GroupId::generate();
    let created = EventBody::GroupCreated {
        name: name.clone(),
        host: user.id.as_str().to_string(),
        host_name: user.display_name.clone(),
        settings: settings.clone(),
    };
    let (kind, payload) = created.to_columns();
    let settings_json = serde_json::to_string(&settings).expect("settings serialise");
    for _ in 0..JOIN_CODE_ATTEMPTS {
        let join_code = generate_join_code();
        let stored = groups::create(
            &state.db,
            &groups::NewGroup {
                id: group_id.as_str(),
                name: &name,
                join_code: &join_code,
                host: &user.id,
                settings_json: &settings_json,
                created: (&kind, &payload),
            },
        )
        .await;
        match stored {
            Ok(_) => {
                return Ok(HttpResponse::Created().json(CreatedGroup {
                    group_id: group_id.as_str().to_string(),
                    join_code,
                    name,
                    settings,
                }))
            }
            Err(err) if groups::is_unique_violation(&err) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(ApiError::internal(anyhow::anyhow!(
        "no free join code after {JOIN_CODE_ATTEMPTS} attempts"
    )))
}

/// At most `realtime.rooms_per_user_per_day` rooms per user in any 24 hours. (Counted in the
/// store, so several processes share the count; two creations racing may both pass.)
async fn enforce_room_quota(state: &AppState, user: &UserId) -> Result<(), ApiError> {
    const DAY_MS: i64 = 24 * 3600 * 1000;
    let quota = state.settings.realtime.rooms_per_user_per_day;
    let now = now_ms();
    let (rooms, oldest) = groups::created_by_since(&state.db, user, now - DAY_MS).await?;
    if rooms < i64::from(quota) {
        return Ok(());
    }
    let wait_s = (oldest.unwrap_or(now) + DAY_MS - now).max(1000) / 1000;
    Err(ApiError::new(
        ErrorCode::QuotaExceeded,
        format!("you created {rooms} rooms in the last 24 hours (at most {quota}); join one of them or try later"),
    )
    .retry_after(wait_s as u64))
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
    let code = normalize_join_code(&body.join_code).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidField,
            "join_code is six letters or digits, like \"K7P2QX\"",
        )
    })?;
    let row = groups::find_by_join_code(&state.db, &code)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::JoinCodeNotFound,
                format!("no open group has the code {code}"),
            )
        })?;
    let group_id = GroupId::parse(&row.id).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    let group = state.groups.get(&group_id).await?;
    let seq = group
        .send(Execute {
            actor: user.id.clone(),
            command: Command::Join {
                display_name: user.display_name.clone(),
            },
            client_msg_id: None,
            origin: Origin::Rest,
        })
        .await
        .map_err(mailbox)??;
    let member = group
        .send(IsMember(user.id.clone()))
        .await
        .map_err(mailbox)?;
    let (mut response, status) = if member {
        (HttpResponse::Ok(), "member")
    } else {
        (HttpResponse::Accepted(), "pending")
    };
    Ok(response.json(JoinedGroup {
        group_id: row.id,
        name: row.name,
        seq,
        status,
    }))
}

/// The group's actor, if the caller is a member.
pub async fn member_group(
    state: &AppState,
    raw_id: &str,
    user: &UserId,
) -> Result<(GroupId, Addr<GroupActor>), ApiError> {
    let id = GroupId::parse(raw_id).map_err(|e| ApiError::new(ErrorCode::InvalidId, e))?;
    let group = state.groups.get(&id).await?;
    if !group.send(IsMember(user.clone())).await.map_err(mailbox)? {
        return Err(ApiError::new(
            ErrorCode::NotAMember,
            "only members can read a group; join it with its code first",
        ));
    }
    Ok((id, group))
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
    let (_, group) = member_group(&state, &path, &user.id).await?;
    let view = group.send(GetView).await.map_err(mailbox)?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Return events with seq greater than this (default 0: from the start).
    after: Option<i64>,
    /// 1–1000, default 500.
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    events: Vec<Event>,
    /// True when more events follow the last one returned.
    has_more: bool,
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
    let (id, _) = member_group(&state, &path, &user.id).await?;
    let mut rows = groups::events_after(&state.db, id.as_str(), after, limit + 1).await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok(HttpResponse::Ok().json(EventPage {
        events: stored_events(rows),
        has_more,
    }))
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
    let (_, group) = member_group(&state, &path, &user.id).await?;
    let recommendations = group.send(GetRecommendations).await.map_err(mailbox)??;
    Ok(HttpResponse::Ok().json(&*recommendations))
}

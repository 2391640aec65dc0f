//! Guest accounts and socket tickets.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{AuthUser, JsonBody};
use crate::{
    accounts,
    domain::DisplayName,
    error::{ApiError, ErrorBody, ErrorCode},
    limits::{Decision, Quota},
    state::AppState,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create_user).service(me).service(ws_ticket);
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// 1–64 characters, shown to other group members.
    display_name: String,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedUser {
    user_id: String,
    display_name: String,
    /// Bearer token for `Authorization: Bearer <token>`. Shown once; the server keeps only a hash.
    token: String,
}

/// Creates a guest account and returns its bearer token.
#[utoipa::path(
    request_body = CreateUser,
    responses(
        (status = 201, body = CreatedUser),
        (status = 400, description = "malformed_json, unknown_field", body = ErrorBody),
        (status = 422, description = "missing_field, invalid_field", body = ErrorBody),
        (status = 429, description = "rate_limited, quota_exceeded (accounts per address per hour)", body = ErrorBody),
    ),
    tag = "accounts"
)]
#[post("/api/v1/users")]
pub async fn create_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    let name = DisplayName::parse(&body.display_name)
        .map_err(|e| ApiError::new(ErrorCode::InvalidField, e))?;
    limit_signups(&req, &state).await?;
    let account = accounts::create_guest(&state.db, &name).await?;
    tracing::info!(user_id = %account.user.id, "guest account created");
    Ok(HttpResponse::Created().json(CreatedUser {
        user_id: account.user.id.to_string(),
        display_name: account.user.display_name,
        token: account.token.expose().to_string(),
    }))
}

/// Accounts per client address: `rate_limit.signups_per_ip_per_hour` on average, up to
/// `signup_burst` at once (a store outage lets sign-ups through, like every other limit).
async fn limit_signups(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let settings = &state.settings.rate_limit;
    if !settings.enabled {
        return Ok(());
    }
    let ip = req
        .peer_addr()
        .map(|addr| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let quota = Quota {
        per_second: settings.signups_per_ip_per_hour / 3600.0,
        burst: settings.signup_burst,
    };
    match state.limiter.check(&format!("signup:{ip}"), quota).await {
        Ok(Decision::Limited { retry_after }) => {
            let seconds = retry_after.as_secs().max(1);
            Err(ApiError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "too many accounts from this address (at most {} per hour); keep using one, \
                     or retry in {seconds} s",
                    settings.signups_per_ip_per_hour
                ),
            )
            .retry_after(seconds))
        }
        Ok(Decision::Allowed) => Ok(()),
        Err(err) => {
            state.metrics.rate_limiter_errors.inc();
            tracing::debug!(
                error = format!("{err:#}"),
                "sign-up limit unavailable; allowing"
            );
            Ok(())
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    user_id: String,
    display_name: String,
    /// Milliseconds since the Unix epoch.
    created_at: i64,
}

/// The account behind the bearer token.
#[utoipa::path(
    responses((status = 200, body = Me), (status = 401, description = "missing_token, invalid_token", body = ErrorBody)),
    security(("bearer" = [])),
    tag = "accounts"
)]
#[get("/api/v1/me")]
pub async fn me(AuthUser(user): AuthUser) -> HttpResponse {
    HttpResponse::Ok().json(Me {
        user_id: user.id.to_string(),
        display_name: user.display_name,
        created_at: user.created_at,
    })
}

#[derive(Serialize, ToSchema)]
pub struct WsTicket {
    /// Pass as `GET /api/v1/ws?ticket=…`. Single use.
    ticket: String,
    expires_in_s: u64,
}

/// Issues a single-use, short-lived ticket for opening the WebSocket.
#[utoipa::path(
    responses((status = 200, body = WsTicket), (status = 401, description = "missing_token, invalid_token", body = ErrorBody)),
    security(("bearer" = [])),
    tag = "accounts"
)]
#[post("/api/v1/ws-ticket")]
pub async fn ws_ticket(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse, ApiError> {
    let ticket = accounts::issue_ticket(state.cache.as_ref(), &user.id).await?;
    Ok(HttpResponse::Ok().json(WsTicket {
        ticket,
        expires_in_s: accounts::TICKET_TTL.as_secs(),
    }))
}

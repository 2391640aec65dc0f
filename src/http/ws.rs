//! The WebSocket endpoint: redeems the ticket, upgrades, and hands the socket to a
//! [`Connection`] actor. A bad ticket is refused before the upgrade, as a JSON 401.

use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::{
    accounts,
    error::{ApiError, ErrorBody, ErrorCode},
    groups::{
        connection::Connection,
        socket_io::{self, SocketLimits},
    },
    state::AppState,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(socket);
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SocketQuery {
    /// A ticket from `POST /api/v1/ws-ticket` (single use, 30 s).
    ticket: Option<String>,
}

/// The group session socket (protocol in the README). Upgrade with a fresh ticket.
#[utoipa::path(
    params(SocketQuery),
    responses(
        (status = 101, description = "switching to the WebSocket protocol"),
        (status = 400, description = "invalid_query, upgrade_required", body = ErrorBody),
        (status = 401, description = "invalid_ticket", body = ErrorBody),
        (status = 429, description = "too_many_connections", body = ErrorBody),
    ),
    tag = "groups"
)]
#[get("/api/v1/ws")]
pub async fn socket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    query: web::Query<SocketQuery>,
) -> Result<HttpResponse, ApiError> {
    let ticket = query.into_inner().ticket;
    let user = accounts::ticket_user(state.cache.as_ref(), ticket.as_deref(), "the socket").await?;
    let realtime = &state.settings.realtime;
    let permit = state
        .sockets
        .acquire(&user, realtime.sockets_per_user)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::TooManyConnections,
                format!(
                    "you have {} sockets open; close one (another tab or device) first",
                    realtime.sockets_per_user
                ),
            )
        })?;
    let limits = SocketLimits {
        max_frame_bytes: realtime.max_frame_bytes,
        outbox_frames: realtime.outbox_frames,
        outbox_bytes: realtime.outbox_bytes,
    };
    let (response, incoming, outbox) = socket_io::upgrade(&req, body.into_inner(), limits)
        .map_err(|e| {
            ApiError::new(
                ErrorCode::UpgradeRequired,
                format!("this endpoint speaks WebSocket only: {e}"),
            )
        })?;
    Connection::start(user, state.connections.clone(), outbox, incoming, permit);
    Ok(response)
}

//! The WebSocket endpoint: redeems the ticket, upgrades, and hands the socket to a
//! [`Connection`] actor. A bad ticket is refused before the upgrade, as a JSON 401.

use std::pin::Pin;

use actix_web::{dev::Payload, get, web, FromRequest, HttpRequest, HttpResponse};
use futures_util::Stream;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::{
    accounts,
    error::{ApiError, ErrorBody, ErrorCode},
    groups::{connection::Connection, frame_guard::FrameGuard},
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
    let invalid = || {
        ApiError::new(
            ErrorCode::InvalidTicket,
            "open the socket with ?ticket= from POST /api/v1/ws-ticket; tickets work once, for 30 s",
        )
    };
    let ticket = query.into_inner().ticket.ok_or_else(invalid)?;
    let user = accounts::redeem_ticket(state.cache.as_ref(), &ticket)
        .await?
        .ok_or_else(invalid)?;
    let limit = state.settings.realtime.max_frame_bytes;
    // Oversize frames are refused from their header, before actix-ws buffers their payload.
    let guarded: Pin<Box<dyn Stream<Item = _>>> =
        Box::pin(FrameGuard::new(body.into_inner(), limit));
    let body = web::Payload::from_request(&req, &mut Payload::from(guarded))
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("taking the socket's payload: {e}")))?;
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|e| {
        ApiError::new(
            ErrorCode::UpgradeRequired,
            format!("this endpoint speaks WebSocket only: {e}"),
        )
    })?;
    let stream = stream
        .max_frame_size(limit)
        .aggregate_continuations()
        .max_continuation_size(limit);
    Connection::start(user, state.clone(), session, stream);
    Ok(response)
}

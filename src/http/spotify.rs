//! Spotify over REST: sign-in (login → Spotify's consent page → callback), the connection's
//! status, the user's devices, saving a room as a playlist, and the opt-in library import.

use actix_web::{delete, get, http::header, post, put, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{AuthUser, JsonBody};
use crate::{
    accounts,
    error::{ApiError, ErrorBody, ErrorCode},
    groups::commands::Command,
    spotify::{ConnectionStatus, DeviceView, Exported},
    state::AppState,
    taste::{actor::RecordFeedback, FeedbackKind},
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(login_redirect)
        .service(login_url)
        .service(callback)
        .service(status)
        .service(disconnect)
        .service(devices)
        .service(export)
        .service(import)
        .service(set_device);
}

/// Where the web app may ask to come back to: one of its own pages (`#/…`).
fn return_to(raw: Option<String>) -> Result<String, ApiError> {
    let value = raw.unwrap_or_else(|| "#/".into());
    if !value.starts_with("#/")
        || value.len() > 200
        || value.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "return_to must be a page of the web app (#/…, at most 200 characters)",
        ));
    }
    Ok(value)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LoginQuery {
    /// A ticket from `POST /api/v1/ws-ticket` (single use, 30 s): a browser navigating here
    /// cannot send its bearer token.
    ticket: Option<String>,
    /// The web app's page to come back to, `#/…` (default `#/`).
    return_to: Option<String>,
}

/// Starts connecting Spotify from a browser: redirects to Spotify's consent page (PKCE).
#[utoipa::path(
    params(LoginQuery),
    responses(
        (status = 302, description = "to Spotify's consent page"),
        (status = 401, description = "invalid_ticket", body = ErrorBody),
        (status = 501, description = "spotify_not_configured", body = ErrorBody),
    ),
    tag = "spotify"
)]
#[get("/api/v1/spotify/login")]
pub async fn login_redirect(
    state: web::Data<AppState>,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, ApiError> {
    let spotify = state.spotify()?;
    let query = query.into_inner();
    let to = return_to(query.return_to)?;
    let user = accounts::ticket_user(
        state.cache.as_ref(),
        query.ticket.as_deref(),
        "Spotify's sign-in",
    )
    .await?;
    let url = spotify.login_url(&user, &to).await?;
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, url))
        .finish())
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The web app's page to come back to, `#/…` (default `#/`).
    return_to: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LoginUrl {
    /// Send the browser here (Spotify's consent page); it comes back to the callback.
    authorize_url: String,
}

/// Starts connecting Spotify for an API client: the consent page's URL.
#[utoipa::path(
    request_body = LoginRequest,
    responses(
        (status = 200, body = LoginUrl),
        (status = 401, description = "missing_token, invalid_token", body = ErrorBody),
        (status = 501, description = "spotify_not_configured", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "spotify"
)]
#[post("/api/v1/spotify/login")]
pub async fn login_url(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    body: JsonBody<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let spotify = state.spotify()?;
    let to = return_to(body.into_inner().return_to)?;
    let authorize_url = spotify.login_url(&user.id, &to).await?;
    Ok(HttpResponse::Ok().json(LoginUrl { authorize_url }))
}

#[derive(Deserialize, IntoParams)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    /// Spotify's error when the user declined (`access_denied`).
    error: Option<String>,
}

/// Spotify sends the browser back here. The sign-in finishes and the browser goes on to the
/// web app: `/?spotify=connected#<return_to>`, or `/?spotify=<denied|failed>&message=…#/`.
#[utoipa::path(
    params(CallbackQuery),
    responses((status = 303, description = "to the web app, with the outcome in the query")),
    tag = "spotify"
)]
#[get("/api/v1/spotify/callback")]
pub async fn callback(
    state: web::Data<AppState>,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse, ApiError> {
    let spotify = state.spotify()?;
    let query = query.into_inner();
    let back = |outcome: &str, message: Option<&str>, to: &str| {
        let mut location = format!("/?spotify={outcome}");
        if let Some(message) = message {
            location.push_str("&message=");
            location.push_str(&crate::spotify::urlencode(message));
        }
        location.push_str(to);
        HttpResponse::SeeOther()
            .insert_header((header::LOCATION, location))
            .finish()
    };
    let (Some(code), Some(login_state)) = (query.code, query.state.clone()) else {
        // Declined on Spotify's page (or a request that is no callback at all); the pending
        // login is dropped either way.
        if let Some(login_state) = query.state {
            let _ = spotify.finish_login(&login_state, "").await;
        }
        return Ok(match query.error.as_deref() {
            Some("access_denied") => back("denied", None, "#/"),
            _ => back("failed", Some("Spotify did not send a sign-in code"), "#/"),
        });
    };
    Ok(match spotify.finish_login(&login_state, &code).await {
        Ok(to) => back("connected", None, &to),
        Err(err) => back("failed", Some(&err.message), "#/"),
    })
}

/// The caller's Spotify connection (`available` false when the server has no Spotify app).
#[utoipa::path(
    responses(
        (status = 200, body = ConnectionStatus),
        (status = 401, description = "missing_token, invalid_token", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "spotify"
)]
#[get("/api/v1/spotify")]
pub async fn status(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse, ApiError> {
    let status = match &state.spotify {
        Some(spotify) => spotify.status(&user.id).await?,
        None => ConnectionStatus {
            available: false,
            state: "disconnected",
            spotify_user_id: None,
            display_name: None,
            import_enabled: false,
        },
    };
    Ok(HttpResponse::Ok().json(status))
}

/// Forgets the caller's Spotify tokens.
#[utoipa::path(
    responses(
        (status = 204, description = "disconnected (or was not connected)"),
        (status = 401, description = "missing_token, invalid_token", body = ErrorBody),
        (status = 501, description = "spotify_not_configured", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "spotify"
)]
#[delete("/api/v1/spotify")]
pub async fn disconnect(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse, ApiError> {
    state.spotify()?.disconnect(&user.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize, ToSchema)]
pub struct Devices {
    devices: Vec<DeviceView>,
}

/// The caller's Spotify Connect devices.
#[utoipa::path(
    responses(
        (status = 200, body = Devices),
        (status = 401, description = "missing_token, invalid_token", body = ErrorBody),
        (status = 409, description = "spotify_not_connected, spotify_reconnect", body = ErrorBody),
        (status = 501, description = "spotify_not_configured", body = ErrorBody),
        (status = 503, description = "spotify_unavailable", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "spotify"
)]
#[get("/api/v1/spotify/devices")]
pub async fn devices(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse, ApiError> {
    let devices = state.spotify()?.devices(&user.id).await?;
    Ok(HttpResponse::Ok().json(Devices { devices }))
}

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportPart {
    /// Played, playing and upcoming, in that order.
    #[default]
    All,
    Played,
    Upcoming,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// `all` (default), `played` or `upcoming` (the track playing counts as both).
    include: Option<ExportPart>,
}

/// Saves the room's list as a playlist in the caller's Spotify account; a second export of the
/// same room updates that playlist.
#[utoipa::path(
    params(("id" = String, Path, description = "Group id")),
    request_body = ExportRequest,
    responses(
        (status = 200, body = Exported),
        (status = 401, description = "missing_token, invalid_token", body = ErrorBody),
        (status = 403, description = "not_a_member", body = ErrorBody),
        (status = 404, description = "group_not_found", body = ErrorBody),
        (status = 409, description = "spotify_not_connected, spotify_reconnect", body = ErrorBody),
        (status = 501, description = "spotify_not_configured", body = ErrorBody),
        (status = 503, description = "spotify_unavailable", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "spotify"
)]
#[post("/api/v1/groups/{id}/spotify/export")]
pub async fn export(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    path: web::Path<String>,
    body: JsonBody<ExportRequest>,
) -> Result<HttpResponse, ApiError> {
    let spotify = state.spotify()?;
    let room = state.groups.member_room(&path, &user.id).await?;
    let view = room.view().await?;
    let part = body.into_inner().include.unwrap_or_default();
    let playing = view
        .now_playing
        .iter()
        .map(|now| now.entry.track.id.clone());
    let played = view.history.iter().map(|p| p.track.id.clone());
    let upcoming = view.up_next.iter().filter_map(|id| {
        view.playlist
            .iter()
            .find(|e| &e.entry_id == id)
            .map(|e| e.track.id.clone())
    });
    let tracks: Vec<String> = match part {
        ExportPart::All => played.chain(playing).chain(upcoming).collect(),
        ExportPart::Played => played.chain(playing).collect(),
        ExportPart::Upcoming => playing.chain(upcoming).collect(),
    };
    let exported = spotify
        .export(&user.id, room.id().as_str(), &view.name, &tracks)
        .await?;
    Ok(HttpResponse::Ok().json(exported))
}

#[derive(Serialize, ToSchema)]
pub struct Imported {
    /// Tracks read from Spotify (top and saved, without repeats).
    pub read: usize,
    /// Of those, the ones in this catalog, now liked.
    pub liked: usize,
    /// Of those, the ones this catalog does not have.
    pub not_in_catalog: usize,
}

/// Opt-in (and only where the server allows it): the caller's Spotify top and saved tracks that
/// are in the catalog become likes.
#[utoipa::path(
    responses(
        (status = 200, body = Imported),
        (status = 401, description = "missing_token, invalid_token", body = ErrorBody),
        (status = 403, description = "import_disabled", body = ErrorBody),
        (status = 409, description = "spotify_not_connected, spotify_reconnect", body = ErrorBody),
        (status = 501, description = "spotify_not_configured", body = ErrorBody),
        (status = 503, description = "spotify_unavailable", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "spotify"
)]
#[post("/api/v1/spotify/import")]
pub async fn import(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse, ApiError> {
    let ids = state.spotify()?.library(&user.id).await?;
    let mut liked = 0;
    for id in &ids {
        let Some(item) = state.catalog.index_of(id) else {
            continue;
        };
        state
            .users
            .send(
                &user.id,
                RecordFeedback {
                    item,
                    track_id: id.clone(),
                    kind: FeedbackKind::Like,
                    request_id: None,
                    group_id: None,
                },
            )
            .await??;
        liked += 1;
    }
    tracing::info!(user = %user.id.as_str(), read = ids.len(), liked, "imported a Spotify library");
    Ok(HttpResponse::Ok().json(Imported {
        read: ids.len(),
        liked,
        not_in_catalog: ids.len() - liked,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceChoice {
    /// One of the host's devices (`GET /api/v1/spotify/devices`), or `null`: listen-along only.
    device_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceChosen {
    /// The group's seq after the change.
    seq: i64,
}

/// The host plays the room on one of their Spotify Connect devices (Premium needed), or stops
/// (`null`). The room's queue stays the truth; the device follows it, and what the host does in
/// the Spotify app comes back to the room. Members see `playback_target` and, while the device
/// does not follow, `playback_issue` (`playback_status` frames).
#[utoipa::path(
    params(("id" = String, Path, description = "Group id")),
    request_body = DeviceChoice,
    responses(
        (status = 200, body = DeviceChosen),
        (status = 401, description = "missing_token, invalid_token", body = ErrorBody),
        (status = 403, description = "not_a_member, not_allowed (host only)", body = ErrorBody),
        (status = 404, description = "group_not_found", body = ErrorBody),
        (status = 409, description = "spotify_not_connected, spotify_reconnect, spotify_no_device", body = ErrorBody),
        (status = 501, description = "spotify_not_configured", body = ErrorBody),
        (status = 503, description = "spotify_unavailable", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "spotify"
)]
#[put("/api/v1/groups/{id}/spotify/device")]
pub async fn set_device(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    path: web::Path<String>,
    body: JsonBody<DeviceChoice>,
) -> Result<HttpResponse, ApiError> {
    let spotify = state.spotify()?;
    let room = state.groups.member_room(&path, &user.id).await?;
    let device = match body.into_inner().device_id {
        None => None,
        Some(id) => {
            let mine = spotify.devices(&user.id).await?;
            let device = mine.into_iter().find(|d| d.id == id).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::SpotifyNoDevice,
                    format!(
                        "{id:?} is not one of your Spotify devices now; open Spotify on it first"
                    ),
                )
            })?;
            Some((device.id, device.name))
        }
    };
    let seq = room
        .run(user.id.clone(), Command::SetPlaybackTarget { device })
        .await?;
    Ok(HttpResponse::Ok().json(DeviceChosen { seq }))
}

//! Catalog reads: search, one track, genres. Served from the in-memory catalog.

use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    catalog::{search::MAX_QUERY_CHARS, GenreCount, Track, DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT},
    domain::TrackId,
    error::{ApiError, ErrorBody, ErrorCode},
    state::AppState,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(search_tracks)
        .service(get_track)
        .service(list_genres);
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Words from the title or artist; typos and an unfinished last word are fine. Empty: most
    /// popular tracks.
    q: Option<String>,
    /// A genre or sub-genre name (see `GET /api/v1/genres`), case-insensitive.
    genre: Option<String>,
    /// 1–100, default 20.
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct TrackList {
    items: Vec<Track>,
}

/// Searches the catalog by title and artist.
#[utoipa::path(
    params(SearchParams),
    responses((status = 200, body = TrackList), (status = 400, description = "invalid_query", body = ErrorBody)),
    tag = "catalog"
)]
#[get("/api/v1/tracks")]
pub async fn search_tracks(
    state: web::Data<AppState>,
    params: web::Query<SearchParams>,
) -> Result<HttpResponse, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_SEARCH_LIMIT);
    if !(1..=MAX_SEARCH_LIMIT).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("limit must be between 1 and {MAX_SEARCH_LIMIT}"),
        ));
    }
    let q = params.q.as_deref().unwrap_or("");
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("q must be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    let items = state
        .catalog
        .search(q, params.genre.as_deref(), limit)
        .into_iter()
        .cloned()
        .collect();
    Ok(HttpResponse::Ok().json(TrackList { items }))
}

/// One track with its genres and audio features.
#[utoipa::path(
    params(("id" = String, Path, description = "Track id")),
    responses(
        (status = 200, body = Track),
        (status = 400, description = "invalid_id", body = ErrorBody),
        (status = 404, description = "track_not_found", body = ErrorBody),
    ),
    tag = "catalog"
)]
#[get("/api/v1/tracks/{id}")]
pub async fn get_track(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = TrackId::parse(&id).map_err(|e| ApiError::new(ErrorCode::InvalidId, e))?;
    let track = state
        .catalog
        .get(id.as_str())
        .ok_or_else(|| ApiError::new(ErrorCode::TrackNotFound, format!("no track has id {id}")))?;
    Ok(HttpResponse::Ok().json(track))
}

#[derive(Serialize, ToSchema)]
pub struct GenreList {
    items: Vec<GenreCount>,
}

/// Genres and sub-genres in the catalog with their track counts, largest first.
#[utoipa::path(responses((status = 200, body = GenreList)), tag = "catalog")]
#[get("/api/v1/genres")]
pub async fn list_genres(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(GenreList {
        items: state.catalog.genres().to_vec(),
    })
}

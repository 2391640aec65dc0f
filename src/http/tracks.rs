//! Catalog reads: search, one track, genres. Served from the in-memory catalog.

use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    catalog::{search::MAX_QUERY_CHARS, GenreCount, Track, DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT},
    domain::TrackId,
    error::{ApiError, ErrorBody, ErrorCode},
    inference::{engine::SimilarJob, retrieval::RetrievalQuery},
    state::AppState,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(search_tracks)
        .service(get_track)
        .service(similar_tracks)
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SimilarParams {
    /// 1–50, default 10.
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct SimilarTrack {
    track: Track,
    /// Cosine similarity of the item vectors (collaborative for trained tracks, content-based
    /// for the others), -1–1.
    similarity: f32,
}

#[derive(Serialize, ToSchema)]
pub struct SimilarList {
    track_id: String,
    items: Vec<SimilarTrack>,
}

/// Tracks closest to this one in the item space.
#[utoipa::path(
    params(("id" = String, Path, description = "Track id"), SimilarParams),
    responses(
        (status = 200, body = SimilarList),
        (status = 400, description = "invalid_id, invalid_query", body = ErrorBody),
        (status = 404, description = "track_not_found", body = ErrorBody),
        (status = 503, description = "overloaded", body = ErrorBody),
    ),
    tag = "catalog"
)]
#[get("/api/v1/tracks/{id}/similar")]
pub async fn similar_tracks(
    state: web::Data<AppState>,
    id: web::Path<String>,
    params: web::Query<SimilarParams>,
) -> Result<HttpResponse, ApiError> {
    const MAX_SIMILAR: usize = 50;
    let limit = params.limit.unwrap_or(10);
    if !(1..=MAX_SIMILAR).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("limit must be between 1 and {MAX_SIMILAR}"),
        ));
    }
    let id = TrackId::parse(&id).map_err(|e| ApiError::new(ErrorCode::InvalidId, e))?;
    let index = state
        .catalog
        .index_of(id.as_str())
        .ok_or_else(|| ApiError::new(ErrorCode::TrackNotFound, format!("no track has id {id}")))?;
    let hits = state
        .inference
        .similar(SimilarJob {
            query: RetrievalQuery {
                vector: state.inference.space().vector(index).to_vec(),
                exclude: vec![index],
                k: limit,
            },
        })
        .await?;
    Ok(HttpResponse::Ok().json(SimilarList {
        track_id: id.to_string(),
        items: hits
            .into_iter()
            .map(|h| SimilarTrack {
                track: state.catalog.track(h.item).clone(),
                similarity: h.score,
            })
            .collect(),
    }))
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

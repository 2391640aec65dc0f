//! `POST /api/v1/classify`: genre and mood from a catalog track or from raw audio features.

use std::collections::BTreeMap;

use actix_web::{post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::JsonBody;
use crate::{
    catalog::AudioFeatures,
    error::{ApiError, ErrorBody, ErrorCode},
    inference::space::{content_inputs, content_row, ContentDefaults, CONTENT_INPUTS},
    state::AppState,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(classify);
}

/// Exactly one of `track_id` and `features`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    track_id: Option<String>,
    features: Option<TrackFeatures>,
}

/// Spotify's audio features (same names and ranges as its Web API), plus optional metadata;
/// missing metadata takes the catalog's median.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackFeatures {
    danceability: f32,
    energy: f32,
    key: i8,
    loudness: f32,
    mode: u8,
    speechiness: f32,
    acousticness: f32,
    instrumentalness: f32,
    liveness: f32,
    valence: f32,
    tempo: f32,
    /// 1900–2100.
    release_year: Option<i32>,
    /// 0–100.
    popularity: Option<u8>,
    /// 1,000–3,600,000.
    duration_ms: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct GenreScore {
    name: String,
    confidence: f32,
}

#[derive(Serialize, ToSchema)]
pub struct Mood {
    /// happy, sad, energetic, calm or focus (definitions in models/README.md).
    primary: String,
    probabilities: BTreeMap<String, f32>,
}

#[derive(Serialize, ToSchema)]
pub struct Classification {
    #[serde(skip_serializing_if = "Option::is_none")]
    track_id: Option<String>,
    /// Every genre the model knows, most likely first.
    genres: Vec<GenreScore>,
    mood: Mood,
}

/// Predicts genre and mood with `content.onnx`.
#[utoipa::path(
    request_body = ClassifyRequest,
    responses(
        (status = 200, body = Classification),
        (status = 400, description = "malformed_json, unknown_field", body = ErrorBody),
        (status = 404, description = "track_not_found", body = ErrorBody),
        (status = 422, description = "missing_field, invalid_field", body = ErrorBody),
        (status = 503, description = "overloaded", body = ErrorBody),
    ),
    tag = "catalog"
)]
#[post("/api/v1/classify")]
pub async fn classify(
    state: web::Data<AppState>,
    body: JsonBody<ClassifyRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let defaults = state.inference.space().content_defaults();
    let (track_id, row) = match (body.track_id, body.features) {
        (Some(id), None) => {
            let index = state.track_index(&id, "track_id")?;
            (
                Some(id),
                content_inputs(state.catalog.track(index), defaults),
            )
        }
        (None, Some(f)) => (None, feature_row(&f, defaults)?),
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                "send exactly one of track_id and features",
            ))
        }
    };
    let out = state.inference.classify(vec![row]).await?;
    let names = state.inference.genres();
    let mut genres: Vec<GenreScore> = names
        .iter()
        .zip(&out.genres)
        .map(|(name, &confidence)| GenreScore {
            name: name.clone(),
            confidence,
        })
        .collect();
    genres.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let moods = state.inference.moods();
    let primary = moods
        .iter()
        .zip(&out.moods)
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(name, _)| name.clone())
        .unwrap_or_default();
    Ok(HttpResponse::Ok().json(Classification {
        track_id,
        genres,
        mood: Mood {
            primary,
            probabilities: moods
                .iter()
                .cloned()
                .zip(out.moods.iter().copied())
                .collect(),
        },
    }))
}

fn feature_row(
    f: &TrackFeatures,
    defaults: ContentDefaults,
) -> Result<[f32; CONTENT_INPUTS], ApiError> {
    let invalid = |m: String| ApiError::new(ErrorCode::InvalidField, format!("features.{m}"));
    let audio = AudioFeatures {
        danceability: f.danceability,
        energy: f.energy,
        key: f.key,
        loudness: f.loudness,
        mode: f.mode,
        speechiness: f.speechiness,
        acousticness: f.acousticness,
        instrumentalness: f.instrumentalness,
        liveness: f.liveness,
        valence: f.valence,
        tempo: f.tempo,
    };
    audio.validate().map_err(invalid)?;
    if let Some(y) = f.release_year.filter(|y| !(1900..=2100).contains(y)) {
        return Err(invalid(format!(
            "release_year must be between 1900 and 2100, got {y}"
        )));
    }
    if let Some(p) = f.popularity.filter(|&p| p > 100) {
        return Err(invalid(format!(
            "popularity must be between 0 and 100, got {p}"
        )));
    }
    if let Some(d) = f.duration_ms.filter(|d| !(1_000..=3_600_000).contains(d)) {
        return Err(invalid(format!(
            "duration_ms must be between 1000 and 3600000, got {d}"
        )));
    }
    Ok(content_row(
        &audio,
        f.release_year
            .map(|y| y as f32)
            .unwrap_or(defaults.release_year),
        f.popularity.map(f32::from).unwrap_or(defaults.popularity),
        f.duration_ms
            .map(|d| d as f32 / 60_000.0)
            .unwrap_or(defaults.duration_min),
    ))
}

//! The OpenAPI document, generated from the handlers' annotations and the types they use.

use actix_web::{get, web, HttpResponse};
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

use super::{
    analytics, classify, experiments, explanations, groups, health, recommendations, spotify,
    stats, tracks, users, ws,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Chorus", description = "Real-time group sessions and music recommendations."),
    paths(
        health::health,
        health::ready,
        health::metrics,
        users::create_user,
        users::me,
        users::ws_ticket,
        tracks::search_tracks,
        tracks::get_track,
        tracks::similar_tracks,
        tracks::list_genres,
        classify::classify,
        recommendations::recommendations,
        recommendations::feedback,
        recommendations::next_comparison,
        recommendations::compare,
        recommendations::profile,
        groups::create_group,
        groups::join_group,
        groups::get_group,
        groups::group_events,
        groups::group_recommendations,
        stats::compare_proportions,
        stats::compare_means,
        analytics::bandit_report,
        analytics::bandit_history,
        experiments::create_experiment,
        experiments::list_experiments,
        experiments::stop_experiment,
        experiments::ab_report,
        explanations::explanation,
        spotify::login_redirect,
        spotify::login_url,
        spotify::callback,
        spotify::status,
        spotify::disconnect,
        spotify::devices,
        spotify::export,
        spotify::import,
        spotify::set_device,
        ws::socket,
        openapi_json,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(openapi_json);
}

/// This document.
#[utoipa::path(responses((status = 200, description = "OpenAPI 3.1 JSON")), tag = "operations")]
#[get("/api/v1/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

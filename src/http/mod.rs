//! The REST surface. Each resource module exposes `configure`; [`configure`] mounts them all.

pub mod analytics;
pub mod classify;
pub mod experiments;
pub mod explanations;
pub mod extract;
pub mod groups;
pub mod health;
pub mod middleware;
pub mod openapi;
pub mod recommendations;
pub mod spotify;
pub mod stats;
pub mod tracks;
pub mod users;
pub mod webapp;
pub mod ws;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::{ApiError, ErrorCode};

pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    openapi::configure(cfg);
    webapp::configure(cfg);
    cfg.service(
        web::scope("")
            .wrap(actix_web::middleware::from_fn(middleware::rate_limit))
            .configure(users::configure)
            .configure(recommendations::configure)
            .configure(tracks::configure)
            .configure(classify::configure)
            .configure(groups::configure)
            .configure(stats::configure)
            .configure(analytics::configure)
            .configure(experiments::configure)
            .configure(explanations::configure)
            .configure(spotify::configure)
            .configure(ws::configure),
    );
}

/// Fallback when no route takes the request: a known path with another method is a 405,
/// anything else a 404. (Route macros guard on the method, so a method mismatch lands here.)
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if req.match_pattern().is_some_and(|p| !p.is_empty()) {
        return Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("{} is not supported on {}", req.method(), req.path()),
        ));
    }
    Err(ApiError::new(
        ErrorCode::NotFound,
        format!("no endpoint at {}", req.path()),
    ))
}

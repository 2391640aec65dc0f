//! Reports for experimenters (admin token): `GET /api/v1/analytics/bandit`.

use actix_web::{get, web, HttpResponse};

use super::extract::AdminAuth;
use crate::{
    bandit::{
        actor::GetState,
        report::{self, BanditReport},
    },
    error::{ApiError, ErrorBody},
    state::AppState,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(bandit_report);
}

/// The strategy bandit: per arm pulls, rewards, posterior (alpha, beta), mean, 95% interval and
/// probability of being best; the regret estimate.
#[utoipa::path(
    responses(
        (status = 200, body = BanditReport),
        (status = 401, description = "missing_token", body = ErrorBody),
        (status = 403, description = "admin_required", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "experiments"
)]
#[get("/api/v1/analytics/bandit")]
pub async fn bandit_report(
    state: web::Data<AppState>,
    _admin: AdminAuth,
) -> Result<HttpResponse, ApiError> {
    let snapshot = state
        .bandit
        .send(GetState)
        .await
        .map_err(|_| ApiError::internal(anyhow::anyhow!("the bandit actor is gone")))?;
    // Exact probability-best is a quadrature per arm: off the async workers.
    let report = web::block(move || report::build(&snapshot))
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(report))
}

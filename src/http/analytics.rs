//! Reports for experimenters (admin token): `GET /api/v1/analytics/bandit`.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::AdminAuth;
use crate::{
    bandit::{
        actor::{BanditKind, GetState},
        report::{self, BanditReport},
    },
    error::{ApiError, ErrorBody},
    state::AppState,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(bandit_report);
}

#[derive(Serialize, ToSchema)]
pub struct BanditReports {
    /// `solo_strategy`, then `group_aggregation`.
    bandits: Vec<BanditReport>,
}

/// Both bandits (solo strategies; aggregation for groups set to `auto`): per arm pulls,
/// rewards, posterior (alpha, beta), mean, 95% interval and probability of being best; the
/// regret estimate.
#[utoipa::path(
    responses(
        (status = 200, body = BanditReports),
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
    let mut snapshots = Vec::new();
    for kind in BanditKind::ALL {
        snapshots.push(
            state
                .bandit
                .send(GetState(kind))
                .await
                .map_err(|_| ApiError::internal(anyhow::anyhow!("the bandit actor is gone")))?,
        );
    }
    // Exact probability-best is a quadrature per arm: off the async workers.
    let bandits = web::block(move || snapshots.iter().map(report::build).collect())
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(BanditReports { bandits }))
}

//! Reports for experimenters (admin token): `GET /api/v1/analytics/bandit` and its history.

use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::AdminAuth;
use crate::{
    bandit::{
        actor::GetState,
        context::{BanditKind, Context},
        report::{self, BanditHistory, BanditReport},
    },
    error::{ApiError, ErrorBody, ErrorCode},
    state::AppState,
    storage::bandit as store,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(bandit_report).service(bandit_history);
}

const DEFAULT_HISTORY: i64 = 500;
const MAX_HISTORY: i64 = 5_000;

#[derive(Serialize, ToSchema)]
pub struct BanditReports {
    /// `solo_strategy`, then `group_aggregation`.
    bandits: Vec<BanditReport>,
}

/// Both bandits (solo strategies per listener maturity; aggregation per room size for groups
/// set to `auto`): per context and arm the prior, the data (pulls, rewards, failures, pending),
/// the posterior (alpha, beta), mean, 95% interval and probability of being best; the regret
/// estimate.
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
    let pending = store::pending_counts(&state.db).await?;
    // Exact probability-best is a quadrature per arm: off the async workers.
    let bandits = web::block(move || {
        snapshots
            .iter()
            .map(|s| report::build(s, &pending))
            .collect()
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(BanditReports { bandits }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// `solo_strategy` or `group_aggregation`.
    bandit: String,
    /// `cold`, `few` or `many` (solo); `small`, `medium` or `large` (groups).
    context: String,
    /// Points after this instant (ms since the epoch; default 0).
    since: Option<i64>,
    /// The newest this many points (1–5000, default 500).
    limit: Option<i64>,
}

/// One context's posterior history as the server recorded it (every
/// `bandit.history_interval_s` for the arms that changed), oldest first.
#[utoipa::path(
    params(HistoryQuery),
    responses(
        (status = 200, body = BanditHistory),
        (status = 400, description = "invalid_query", body = ErrorBody),
        (status = 401, description = "missing_token", body = ErrorBody),
        (status = 403, description = "admin_required", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "experiments"
)]
#[get("/api/v1/analytics/bandit/history")]
pub async fn bandit_history(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let invalid = |m: String| ApiError::new(ErrorCode::InvalidQuery, m);
    let kind = BanditKind::parse(&query.bandit).ok_or_else(|| {
        invalid(format!(
            "bandit must be solo_strategy or group_aggregation, not {:?}",
            query.bandit
        ))
    })?;
    let context = Context::parse(kind, &query.context).ok_or_else(|| {
        let names: Vec<&str> = kind.contexts().iter().map(|c| c.name()).collect();
        invalid(format!(
            "context of {} must be one of {}",
            kind.name(),
            names.join(", ")
        ))
    })?;
    let limit = query.limit.unwrap_or(DEFAULT_HISTORY);
    if !(1..=MAX_HISTORY).contains(&limit) {
        return Err(invalid(format!(
            "limit must be between 1 and {MAX_HISTORY}"
        )));
    }
    let rows = store::history(
        &state.db,
        kind.name(),
        context.name(),
        query.since.unwrap_or(0),
        limit,
    )
    .await?;
    Ok(HttpResponse::Ok().json(report::history(kind.name(), context.name(), rows)))
}

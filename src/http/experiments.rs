//! A/B experiments (admin token): create, list, stop, and the report.

use std::collections::HashMap;

use actix_web::{get, post, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{AdminAuth, JsonBody};
use crate::{
    domain::now_ms,
    error::{ApiError, ErrorBody, ErrorCode},
    experiments::{
        from_row,
        report::{self, AbReport, Exposures},
        Experiment, Metric, NewExperiment,
    },
    state::AppState,
    storage::experiments::{self as store, ExperimentRow},
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create_experiment)
        .service(list_experiments)
        .service(stop_experiment)
        .service(ab_report);
}

#[derive(Serialize, ToSchema)]
pub struct ExperimentList {
    /// Newest first.
    items: Vec<Experiment>,
}

/// Starts an experiment: listeners are split between its variants by a stable hash, and each
/// variant serves its solo strategy. One experiment runs at a time.
#[utoipa::path(
    request_body = NewExperiment,
    responses(
        (status = 201, body = Experiment),
        (status = 400, description = "malformed_json, unknown_field", body = ErrorBody),
        (status = 401, description = "missing_token", body = ErrorBody),
        (status = 403, description = "admin_required", body = ErrorBody),
        (status = 409, description = "experiment_conflict (one is running, or the name is taken)", body = ErrorBody),
        (status = 422, description = "missing_field, invalid_field, too_few_variants, duplicate_variant, invalid_weights", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "experiments"
)]
#[post("/api/v1/experiments")]
pub async fn create_experiment(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    body: JsonBody<NewExperiment>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (variants, mixture_sd) = body.validate()?;
    let design = body.design()?;
    let row = ExperimentRow {
        id: format!("exp_{}", uuid::Uuid::now_v7().simple()),
        name: body.name.trim().to_string(),
        description: body.description,
        variants: serde_json::to_string(&variants).map_err(ApiError::internal)?,
        primary_metric: body.primary_metric.as_str().to_string(),
        guardrails: serde_json::to_string(&body.guardrails).map_err(ApiError::internal)?,
        mixture_sd: Some(mixture_sd),
        planned_listeners: design.map(|d| d.planned_listeners as i64),
        looks: design.map(|d| i64::from(d.looks)),
        status: "running".into(),
        created_at: now_ms(),
        stopped_at: None,
    };
    if !store::insert_experiment(&state.db, &row).await? {
        return Err(ApiError::new(
            ErrorCode::ExperimentConflict,
            "another experiment is running, or one already has this name; stop it or pick another name",
        ));
    }
    state.experiments.reload(&state.db).await?;
    let experiment = from_row(row)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("stored experiment does not parse")))?;
    Ok(HttpResponse::Created().json(experiment))
}

/// Every experiment, running and stopped.
#[utoipa::path(
    responses(
        (status = 200, body = ExperimentList),
        (status = 401, description = "missing_token", body = ErrorBody),
        (status = 403, description = "admin_required", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "experiments"
)]
#[get("/api/v1/experiments")]
pub async fn list_experiments(
    state: web::Data<AppState>,
    _admin: AdminAuth,
) -> Result<HttpResponse, ApiError> {
    let items = store::list_experiments(&state.db)
        .await?
        .into_iter()
        .filter_map(from_row)
        .collect();
    Ok(HttpResponse::Ok().json(ExperimentList { items }))
}

/// Stops a running experiment: listeners go back to the strategy bandit. Its data stays.
#[utoipa::path(
    params(("id" = String, Path, description = "experiment id")),
    responses(
        (status = 200, body = Experiment),
        (status = 401, description = "missing_token", body = ErrorBody),
        (status = 403, description = "admin_required", body = ErrorBody),
        (status = 404, description = "experiment_not_found", body = ErrorBody),
        (status = 409, description = "experiment_conflict (already stopped)", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "experiments"
)]
#[post("/api/v1/experiments/{id}/stop")]
pub async fn stop_experiment(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let experiment = find(&state, &id).await?;
    if !store::stop_experiment(&state.db, &experiment.id, now_ms()).await? {
        return Err(ApiError::new(
            ErrorCode::ExperimentConflict,
            format!("experiment {id} is already stopped"),
        ));
    }
    state.experiments.reload(&state.db).await?;
    Ok(HttpResponse::Ok().json(find(&state, &id).await?))
}

/// The experiment's report: exposures per variant and, once every variant has listeners, the
/// primary metric's statistics, the always-valid test, guardrails and the SRM check.
#[utoipa::path(
    params(("id" = String, Path, description = "experiment id")),
    responses(
        (status = 200, body = AbReport),
        (status = 401, description = "missing_token", body = ErrorBody),
        (status = 403, description = "admin_required", body = ErrorBody),
        (status = 404, description = "experiment_not_found", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "experiments"
)]
#[get("/api/v1/analytics/ab/{id}")]
pub async fn ab_report(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let experiment = find(&state, &id).await?;
    let exposures: Exposures = store::exposure_counts(&state.db, &experiment.id)
        .await?
        .into_iter()
        .map(|(variant, listeners, lists)| {
            (variant, (listeners.max(0) as u64, lists.max(0) as u64))
        })
        .collect();
    let mut conversions = HashMap::new();
    let metrics: Vec<Metric> = std::iter::once(experiment.primary_metric)
        .chain(experiment.guardrails.iter().copied())
        .collect();
    for metric in metrics {
        let converted =
            store::converted_listeners(&state.db, &experiment.id, metric.feedback().as_str())
                .await?
                .into_iter()
                .map(|(variant, listeners)| (variant, listeners.max(0) as u64))
                .collect();
        conversions.insert(metric, converted);
    }
    let timelines = match experiment.design {
        Some(_) => Some(
            store::listener_timelines(
                &state.db,
                &experiment.id,
                experiment.primary_metric.feedback().as_str(),
            )
            .await?,
        ),
        None => None,
    };
    // Quadratures per variant and the boundary recursion: off the async workers.
    let report: AbReport = web::block(move || {
        report::build(experiment, &exposures, &conversions, timelines.as_deref())
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(report))
}

async fn find(state: &AppState, id: &str) -> Result<Experiment, ApiError> {
    store::find_experiment(&state.db, id)
        .await?
        .and_then(from_row)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::ExperimentNotFound,
                format!("no experiment has id {id:?}"),
            )
        })
}

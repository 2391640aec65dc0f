//! Liveness, readiness and metrics.

use std::{collections::BTreeMap, time::Instant};

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{explain::actor::GetStatus, state::AppState};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health).service(ready).service(metrics);
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the process answers.
    status: &'static str,
    version: &'static str,
}

/// Liveness: the process is up and answering.
#[utoipa::path(responses((status = 200, body = Health)), tag = "operations")]
#[get("/health")]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Serialize, ToSchema)]
pub struct DependencyStatus {
    /// `ok`, `down`, `disabled` or (explainer only, never failing readiness) `degraded`.
    status: &'static str,
    /// Which implementation serves it (`sqlite`, `postgres`, `redis`, `in-process`).
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` when every required dependency is `ok`, else `not_ready` (HTTP 503).
    status: &'static str,
    checks: BTreeMap<&'static str, DependencyStatus>,
}

fn timed(started: Instant) -> Option<f64> {
    Some((started.elapsed().as_secs_f64() * 1e5).round() / 100.0)
}

/// Readiness: each dependency's state. 503 while the database or cache cannot be reached.
#[utoipa::path(responses((status = 200, body = Readiness), (status = 503, body = Readiness)), tag = "operations")]
#[get("/ready")]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let mut checks = BTreeMap::new();
    let started = Instant::now();
    let db = state.db.ping().await;
    checks.insert(
        "database",
        DependencyStatus {
            status: if db.is_ok() { "ok" } else { "down" },
            backend: Some(state.db.backend().name()),
            latency_ms: timed(started),
            detail: db.err().map(|e| e.to_string()),
        },
    );
    let started = Instant::now();
    let cache = state.cache.ping().await;
    checks.insert(
        "cache",
        DependencyStatus {
            status: if cache.is_ok() { "ok" } else { "down" },
            backend: Some(state.cache.backend()),
            latency_ms: timed(started),
            detail: cache.err().map(|e| format!("{e:#}")),
        },
    );
    checks.insert(
        "rate_limiter",
        DependencyStatus {
            status: if state.settings.rate_limit.enabled {
                "ok"
            } else {
                "disabled"
            },
            backend: Some(state.limiter.backend()),
            latency_ms: None,
            detail: None,
        },
    );
    checks.insert(
        "catalog",
        DependencyStatus {
            status: if state.catalog.is_empty() {
                "down"
            } else {
                "ok"
            },
            backend: None,
            latency_ms: None,
            detail: Some(format!("{} tracks", state.catalog.len())),
        },
    );
    let space = state.inference.space();
    checks.insert(
        "models",
        DependencyStatus {
            status: if state.inference.is_running() {
                "ok"
            } else {
                "down"
            },
            backend: Some(state.inference.provider()),
            latency_ms: None,
            detail: Some(format!(
                "{} item vectors; {} requests in the inference queue",
                space.len(),
                state.metrics.inference_queue_depth.get()
            )),
        },
    );
    // The explainer never fails readiness: without a model the template answers.
    let started = Instant::now();
    let explainer = state.explainer.send(GetStatus).await;
    checks.insert(
        "explainer",
        match explainer {
            Ok(explainer) => DependencyStatus {
                status: explainer.status,
                backend: Some(if explainer.status == "disabled" {
                    "template"
                } else {
                    "llm"
                }),
                latency_ms: timed(started),
                detail: Some(explainer.detail),
            },
            Err(err) => DependencyStatus {
                status: "degraded",
                backend: None,
                latency_ms: None,
                detail: Some(format!("explainer actor unreachable: {err}")),
            },
        },
    );
    let is_ready = checks.values().all(|c| c.status != "down");
    let body = Readiness {
        status: if is_ready { "ready" } else { "not_ready" },
        checks,
    };
    if is_ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus text exposition.
#[utoipa::path(responses((status = 200, description = "Prometheus text format", content_type = "text/plain")), tag = "operations")]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

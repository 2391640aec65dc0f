//! Cross-cutting request handling: metrics and access logs, and rate limits.

use std::{
    sync::LazyLock,
    time::{Duration, Instant},
};

use actix_web::{
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::header,
    middleware::Next,
    web, Error, ResponseError,
};

use crate::{
    accounts,
    domain::TokenHash,
    error::{ApiError, ErrorCode},
    limits::{Decision, Quota},
    state::AppState,
    telemetry::LogThrottle,
};

/// Records latency and status per route pattern and writes one access-log line per request.
/// Only the route pattern is logged: paths may carry ids, query strings may carry tickets.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let result = next.call(req).await;
    let status = match &result {
        Ok(res) => res.status(),
        Err(err) => err.as_response_error().status_code(),
    };
    let elapsed = started.elapsed();
    if let Some(metrics) = metrics {
        metrics
            .http_requests
            .with_label_values(&[&method, &route, status.as_str()])
            .inc();
        metrics
            .http_latency
            .with_label_values(&[&method, &route])
            .observe(elapsed.as_secs_f64());
    }
    tracing::info!(
        target: "chorus::access",
        method,
        route,
        status = status.as_u16(),
        latency_us = elapsed.as_micros() as u64,
    );
    result
}

static LIMITER_WARNINGS: LazyLock<LogThrottle> =
    LazyLock::new(|| LogThrottle::new(Duration::from_secs(10)));

/// Per-IP limit for every API request, plus a per-token limit when a bearer token is present
/// (keyed by the token's hash, so the limiter's store never holds a token).
pub async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let settings = &state.settings.rate_limit;
    if !settings.enabled {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let ip = req
        .peer_addr()
        .map(|addr| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let mut checks = vec![(
        "ip",
        format!("ip:{ip}"),
        Quota {
            per_second: settings.per_ip_per_second,
            burst: settings.per_ip_burst,
        },
    )];
    if let Some(token) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(accounts::bearer_token)
    {
        checks.push((
            "token",
            format!("token:{}", TokenHash::of(token).as_str()),
            Quota {
                per_second: settings.per_token_per_second,
                burst: settings.per_token_burst,
            },
        ));
    }
    for (scope, key, quota) in checks {
        match state.limiter.check(&key, quota).await {
            Ok(Decision::Allowed) => {}
            Ok(Decision::Limited { retry_after }) => {
                state.metrics.rate_limited.with_label_values(&[scope]).inc();
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                let error = ApiError::new(
                    ErrorCode::RateLimited,
                    format!("too many requests from this {scope}; retry in {seconds} s"),
                )
                .retry_after(seconds);
                return Ok(req
                    .into_response(error.error_response())
                    .map_into_right_body());
            }
            // A limiter outage must not take the API down with it: fail open, loudly (but one
            // line every few seconds, not one per request).
            Err(err) => {
                state.metrics.rate_limiter_errors.inc();
                if let Some(held_back) = LIMITER_WARNINGS.admit() {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        scope,
                        similar_since_last = held_back,
                        "rate limiter unavailable; allowing requests"
                    );
                }
            }
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

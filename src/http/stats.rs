//! Stateless statistics: `POST /api/v1/stats/proportions` and `POST /api/v1/stats/means`.
//! The same computations as the A/B reports, for numbers an experimenter brings along.

use actix_web::{post, web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::JsonBody;
use crate::{
    error::{ApiError, ErrorBody, ErrorCode},
    stats::{
        means::{self, MeansReport, Summary},
        proportions::{self, Counts, ProportionsReport},
        InputError,
    },
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(compare_proportions).service(compare_means);
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProportionsRequest {
    /// Name of the variant the others are compared with.
    control: String,
    /// 2 to 20 variants, the control included.
    variants: Vec<ProportionInput>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProportionInput {
    name: String,
    /// ≥ 1 (accuracy is verified up to 10^8 per variant).
    trials: u64,
    /// 0 ≤ successes ≤ trials.
    successes: u64,
    /// Intended share of traffic for the SRM check; give it for every variant or for none.
    weight: Option<f64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeansRequest {
    control: String,
    variants: Vec<MeanInput>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeanInput {
    name: String,
    /// ≥ 2.
    n: u64,
    mean: f64,
    /// Sample standard deviation (ddof = 1), ≥ 0.
    sd: f64,
}

/// Compares conversion rates: Wilson intervals, difference, pooled z-test, relative lift,
/// chance to beat control, Holm and Benjamini–Hochberg adjusted p-values, chi-square and SRM.
#[utoipa::path(
    request_body = ProportionsRequest,
    responses(
        (status = 200, body = ProportionsReport),
        (status = 400, description = "malformed_json, unknown_field", body = ErrorBody),
        (status = 422, description = "missing_field, invalid_field, too_few_variants, unknown_control, duplicate_variant, invalid_counts, invalid_weights", body = ErrorBody),
    ),
    tag = "experiments"
)]
#[post("/api/v1/stats/proportions")]
pub async fn compare_proportions(
    body: JsonBody<ProportionsRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let arms: Vec<Counts> = body
        .variants
        .into_iter()
        .map(|v| Counts {
            name: v.name,
            trials: v.trials,
            successes: v.successes,
            weight: v.weight,
        })
        .collect();
    // Quadrature for every variant: milliseconds of CPU, kept off the async workers.
    let report = web::block(move || proportions::compare(&body.control, &arms))
        .await
        .map_err(ApiError::internal)??;
    Ok(HttpResponse::Ok().json(report))
}

/// Welch's t-test of every variant's mean against the control's, from summary statistics.
#[utoipa::path(
    request_body = MeansRequest,
    responses(
        (status = 200, body = MeansReport),
        (status = 400, description = "malformed_json, unknown_field", body = ErrorBody),
        (status = 422, description = "missing_field, invalid_field, too_few_variants, unknown_control, duplicate_variant, invalid_counts, no_variance, numeric_overflow", body = ErrorBody),
    ),
    tag = "experiments"
)]
#[post("/api/v1/stats/means")]
pub async fn compare_means(body: JsonBody<MeansRequest>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let arms: Vec<Summary> = body
        .variants
        .into_iter()
        .map(|v| Summary {
            name: v.name,
            n: v.n,
            mean: v.mean,
            sd: v.sd,
        })
        .collect();
    let report = means::compare(&body.control, &arms)?;
    Ok(HttpResponse::Ok().json(report))
}

impl From<InputError> for ApiError {
    fn from(err: InputError) -> Self {
        let code = match &err {
            InputError::TooFewVariants(_) => ErrorCode::TooFewVariants,
            InputError::UnknownControl(_) => ErrorCode::UnknownControl,
            InputError::DuplicateVariant(_) => ErrorCode::DuplicateVariant,
            InputError::Name(_) => ErrorCode::InvalidField,
            InputError::Counts(_) => ErrorCode::InvalidCounts,
            InputError::Weights(_) => ErrorCode::InvalidWeights,
            InputError::NoVariance(_) => ErrorCode::NoVariance,
            InputError::Overflow(_) => ErrorCode::NumericOverflow,
        };
        ApiError::new(code, err.to_string())
    }
}

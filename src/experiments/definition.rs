//! What an experiment is, and what makes one valid.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    domain::text,
    error::{ApiError, ErrorCode},
    recommend::Strategy,
    stats::{sequential::DEFAULT_MIXTURE_SD, MAX_VARIANTS},
    taste::FeedbackKind,
};

/// A per-listener conversion: the share of exposed listeners who gave at least one such
/// feedback to a list of the experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    LikeRate,
    SkipRate,
    AddRate,
}

impl Metric {
    pub fn feedback(self) -> FeedbackKind {
        match self {
            Metric::LikeRate => FeedbackKind::Like,
            Metric::SkipRate => FeedbackKind::Skip,
            Metric::AddRate => FeedbackKind::Add,
        }
    }

    /// Whether a higher rate is the good direction (skips are bad).
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::SkipRate)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::LikeRate => "like_rate",
            Metric::SkipRate => "skip_rate",
            Metric::AddRate => "add_rate",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    /// Share of listeners (any positive scale; default equal).
    #[serde(default)]
    pub weight: Option<f64>,
    /// The solo strategy this variant serves: hybrid, ncf, content or popularity.
    pub strategy: String,
}

/// The body of `POST /api/v1/experiments`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExperiment {
    /// Unique, 1–100 characters.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// 2–20 variants; the first is the control.
    pub variants: Vec<Variant>,
    pub primary_metric: Metric,
    /// Metrics that must not get significantly worse (reported per variant).
    #[serde(default)]
    pub guardrails: Vec<Metric>,
    /// `τ` of the always-valid test (default 0.01).
    pub mixture_sd: Option<f64>,
    /// Listeners planned in all (100 to 10^9). With it, the report adds a group-sequential
    /// test that looks at `looks` equally spaced fractions of this number.
    pub planned_listeners: Option<u64>,
    /// Looks of the group-sequential test (1–50, default 10).
    pub looks: Option<u32>,
}

/// The group-sequential design of an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct SequentialDesign {
    pub planned_listeners: u64,
    pub looks: u32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Experiment {
    pub id: String,
    pub name: String,
    pub description: String,
    /// With weights filled in (normalized to sum to 1); the first is the control.
    pub variants: Vec<Variant>,
    pub primary_metric: Metric,
    pub guardrails: Vec<Metric>,
    pub mixture_sd: f64,
    /// The group-sequential design, when a size was planned.
    pub design: Option<SequentialDesign>,
    /// `running` or `stopped`.
    pub status: String,
    pub created_at: i64,
    pub stopped_at: Option<i64>,
}

impl Experiment {
    pub fn control(&self) -> &Variant {
        &self.variants[0]
    }

    pub fn is_running(&self) -> bool {
        self.status == "running"
    }

    pub fn strategy_of(&self, variant: &Variant) -> Strategy {
        Strategy::parse(&variant.strategy).unwrap_or_default()
    }
}

fn invalid(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError::new(code, message)
}

impl NewExperiment {
    /// The group-sequential design asked for, checked.
    pub fn design(&self) -> Result<Option<SequentialDesign>, ApiError> {
        match (self.planned_listeners, self.looks) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(invalid(
                ErrorCode::InvalidField,
                "looks needs planned_listeners (the size the looks are fractions of)",
            )),
            (Some(planned), looks) => {
                let looks = looks.unwrap_or(10);
                if !(100..=1_000_000_000).contains(&planned) {
                    return Err(invalid(
                        ErrorCode::InvalidField,
                        "planned_listeners must be between 100 and 1,000,000,000",
                    ));
                }
                if !(1..=50).contains(&looks) {
                    return Err(invalid(
                        ErrorCode::InvalidField,
                        "looks must be between 1 and 50",
                    ));
                }
                Ok(Some(SequentialDesign {
                    planned_listeners: planned,
                    looks,
                }))
            }
        }
    }

    /// Checks everything and returns the normalized variants.
    pub fn validate(&self) -> Result<(Vec<Variant>, f64), ApiError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(invalid(
                ErrorCode::InvalidField,
                "name must be 1 to 100 characters",
            ));
        }
        text::check_line("name", name).map_err(|e| invalid(ErrorCode::InvalidField, e))?;
        text::check_text("description", &self.description)
            .map_err(|e| invalid(ErrorCode::InvalidField, e))?;
        if self.description.chars().count() > 2_000 {
            return Err(invalid(
                ErrorCode::InvalidField,
                "description is at most 2,000 characters",
            ));
        }
        if !(2..=MAX_VARIANTS).contains(&self.variants.len()) {
            return Err(invalid(
                ErrorCode::TooFewVariants,
                format!(
                    "an experiment needs 2 to {MAX_VARIANTS} variants (the first is the control); got {}",
                    self.variants.len()
                ),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, v) in self.variants.iter().enumerate() {
            if v.name.trim().is_empty() || v.name.chars().count() > 100 {
                return Err(invalid(
                    ErrorCode::InvalidField,
                    format!("variants[{i}].name must be 1 to 100 characters"),
                ));
            }
            text::check_line(&format!("variants[{i}].name"), &v.name)
                .map_err(|e| invalid(ErrorCode::InvalidField, e))?;
            if !names.insert(v.name.as_str()) {
                return Err(invalid(
                    ErrorCode::DuplicateVariant,
                    format!("two variants are named {:?}", v.name),
                ));
            }
            if Strategy::parse(&v.strategy).is_none() {
                return Err(invalid(
                    ErrorCode::InvalidField,
                    format!(
                        "variants[{i}].strategy {:?} is not one of hybrid, ncf, content, popularity",
                        v.strategy
                    ),
                ));
            }
        }
        let given = self.variants.iter().filter(|v| v.weight.is_some()).count();
        let weights: Vec<f64> = if given == 0 {
            vec![1.0; self.variants.len()]
        } else if given == self.variants.len() {
            self.variants
                .iter()
                .map(|v| v.weight.unwrap_or_default())
                .collect()
        } else {
            return Err(invalid(
                ErrorCode::InvalidWeights,
                "give a weight for every variant or for none (none means an equal split)",
            ));
        };
        if weights.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
            return Err(invalid(
                ErrorCode::InvalidWeights,
                "weights must be positive numbers",
            ));
        }
        let total: f64 = weights.iter().sum();
        let variants = self
            .variants
            .iter()
            .zip(weights)
            .map(|(v, w)| Variant {
                name: v.name.clone(),
                weight: Some(w / total),
                strategy: v.strategy.clone(),
            })
            .collect();
        let mixture_sd = self.mixture_sd.unwrap_or(DEFAULT_MIXTURE_SD);
        if !(mixture_sd.is_finite() && mixture_sd > 0.0 && mixture_sd <= 1.0) {
            return Err(invalid(
                ErrorCode::InvalidField,
                "mixture_sd must be in (0, 1]",
            ));
        }
        if self.guardrails.contains(&self.primary_metric) {
            return Err(invalid(
                ErrorCode::InvalidField,
                "the primary metric cannot also be a guardrail",
            ));
        }
        Ok((variants, mixture_sd))
    }
}

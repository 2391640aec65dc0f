//! `GET /api/v1/analytics/ab/{id}`: the experiment's statistics, per listener (the unit that
//! was randomized, so observations are independent): trials are listeners shown at least one
//! list of the experiment, successes those who gave the metric's feedback to one of them.

use std::collections::HashMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::{Experiment, Metric};
use crate::stats::{
    proportions::{self, Counts, ProportionsReport},
    sequential::{msprt, AlwaysValid},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct AbReport {
    pub experiment: Experiment,
    /// Always `listener`: the randomization unit.
    pub unit: &'static str,
    pub variants: Vec<VariantExposure>,
    /// False until every variant has at least one listener; the statistics are null until then.
    pub ready: bool,
    /// The primary metric against the control (all of DESIGN §5's figures).
    pub primary: Option<ProportionsReport>,
    /// Always-valid mSPRT per non-control variant, safe to read at any time.
    pub sequential: Vec<SequentialRow>,
    pub guardrails: Vec<GuardrailReport>,
    /// True when the split of listeners is not the one configured (SRM p < 0.001).
    pub srm_warning: bool,
    /// Plain-language cautions (sample ratio mismatch, tiny samples).
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VariantExposure {
    pub name: String,
    pub strategy: String,
    /// Intended share of listeners.
    pub weight: f64,
    /// Listeners shown at least one list of this variant.
    pub listeners: u64,
    /// Lists shown.
    pub exposures: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SequentialRow {
    pub name: String,
    #[serde(flatten)]
    pub test: AlwaysValid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GuardrailReport {
    pub metric: Metric,
    pub report: ProportionsReport,
    /// Variants significantly worse than the control on this metric (Holm-adjusted p < 0.05).
    pub harmed: Vec<String>,
}

/// Listeners and lists per variant name.
pub type Exposures = HashMap<String, (u64, u64)>;
/// Converted listeners per variant name.
pub type Conversions = HashMap<String, u64>;

pub fn build(
    experiment: Experiment,
    exposures: &Exposures,
    conversions: &HashMap<Metric, Conversions>,
) -> AbReport {
    let variants: Vec<VariantExposure> = experiment
        .variants
        .iter()
        .map(|v| {
            let (listeners, lists) = exposures.get(&v.name).copied().unwrap_or((0, 0));
            VariantExposure {
                name: v.name.clone(),
                strategy: v.strategy.clone(),
                weight: v.weight.unwrap_or(0.0),
                listeners,
                exposures: lists,
            }
        })
        .collect();
    let ready = variants.iter().all(|v| v.listeners > 0);
    let compare = |metric: Metric| -> Option<ProportionsReport> {
        let converted = conversions.get(&metric);
        let counts: Vec<Counts> = variants
            .iter()
            .map(|v| Counts {
                name: v.name.clone(),
                trials: v.listeners,
                successes: converted
                    .and_then(|c| c.get(&v.name))
                    .copied()
                    .unwrap_or(0)
                    .min(v.listeners),
                weight: Some(v.weight),
            })
            .collect();
        proportions::compare(&experiment.control().name, &counts).ok()
    };
    let primary = if ready {
        compare(experiment.primary_metric)
    } else {
        None
    };
    let sequential = match &primary {
        Some(report) => {
            let control = report
                .variants
                .iter()
                .find(|v| v.is_control)
                .expect("a report has its control");
            report
                .variants
                .iter()
                .filter(|v| !v.is_control)
                .map(|v| SequentialRow {
                    name: v.name.clone(),
                    test: msprt(
                        (v.successes, v.trials),
                        (control.successes, control.trials),
                        experiment.mixture_sd,
                    ),
                })
                .collect()
        }
        None => Vec::new(),
    };
    let guardrails = if ready {
        experiment
            .guardrails
            .iter()
            .filter_map(|&metric| {
                let report = compare(metric)?;
                let harmed = report
                    .variants
                    .iter()
                    .filter(|v| {
                        let worse = v.diff.is_some_and(|d| {
                            if metric.higher_is_better() {
                                d < 0.0
                            } else {
                                d > 0.0
                            }
                        });
                        worse && v.holm_p_value.is_some_and(|p| p < 0.05)
                    })
                    .map(|v| v.name.clone())
                    .collect();
                Some(GuardrailReport {
                    metric,
                    report,
                    harmed,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let srm_warning = primary.as_ref().is_some_and(|p| p.srm.mismatch);
    let mut warnings = Vec::new();
    if srm_warning {
        warnings.push(
            "sample ratio mismatch: the split of listeners differs from the configured weights \
             (p < 0.001); assignment or logging is broken, do not trust the comparisons"
                .to_string(),
        );
    }
    if !ready {
        warnings.push("waiting until every variant has at least one listener".to_string());
    } else if variants.iter().any(|v| v.listeners < 100) {
        warnings.push(
            "fewer than 100 listeners in a variant: intervals are wide and the normal \
             approximations behind p-values are rough"
                .to_string(),
        );
    }
    for guardrail in &guardrails {
        for name in &guardrail.harmed {
            warnings.push(format!(
                "guardrail {}: {name} is significantly worse than the control",
                guardrail.metric.as_str()
            ));
        }
    }
    AbReport {
        experiment,
        unit: "listener",
        variants,
        ready,
        primary,
        sequential,
        guardrails,
        srm_warning,
        warnings,
    }
}

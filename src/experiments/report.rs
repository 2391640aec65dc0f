//! `GET /api/v1/analytics/ab/{id}`: the experiment's statistics, per listener (the unit that
//! was randomized, so observations are independent): trials are listeners shown at least one
//! list of the experiment, successes those who gave the metric's feedback to one of them.

use std::collections::HashMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::{Experiment, Metric, SequentialDesign};
use crate::{
    stats::{
        group_sequential,
        proportions::{self, z_statistic, Counts, ProportionsReport},
        sequential::{msprt, AlwaysValid},
    },
    storage::experiments::ListenerTimeline,
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
    /// The group-sequential test over the planned looks, when the experiment has a design.
    pub group_sequential: Option<GroupSequentialReport>,
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

/// O'Brien–Fleming alpha spending (two-sided 0.05) over looks at equal fractions of the planned
/// listeners. Each look is evaluated on the data as it stood when that many listeners had
/// arrived (reconstructed from the stored timestamps), so reading the report often adds no looks.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupSequentialReport {
    pub planned_listeners: u64,
    pub looks: Vec<LookReport>,
    pub decisions: Vec<SequentialDecision>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LookReport {
    /// 1-based.
    pub look: u32,
    /// Share of the planned listeners at this look.
    pub fraction: f64,
    pub listeners_needed: u64,
    /// Reject at this look when |z| reaches it.
    pub boundary: f64,
    /// When the look's listener arrived (ms since the epoch); null until then.
    pub reached_at: Option<i64>,
    /// Pooled two-proportion z of each variant against the control at this look (empty until
    /// reached).
    pub z: Vec<VariantZ>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VariantZ {
    pub name: String,
    pub z: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SequentialDecision {
    pub name: String,
    /// `significant` (crossed a boundary: stop, the variant differs), `not_significant` (the
    /// last look passed without crossing), or `continue`.
    pub outcome: &'static str,
    /// The look that decided, if any.
    pub look: Option<u32>,
}

/// Listeners and lists per variant name.
pub type Exposures = HashMap<String, (u64, u64)>;
/// Converted listeners per variant name.
pub type Conversions = HashMap<String, u64>;

pub fn build(
    experiment: Experiment,
    exposures: &Exposures,
    conversions: &HashMap<Metric, Conversions>,
    timelines: Option<&[ListenerTimeline]>,
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
    let group_sequential = match (experiment.design, timelines) {
        (Some(design), Some(timelines)) => {
            Some(group_sequential_report(&experiment, design, timelines))
        }
        _ => None,
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
        group_sequential,
        guardrails,
        srm_warning,
        warnings,
    }
}

fn group_sequential_report(
    experiment: &Experiment,
    design: SequentialDesign,
    timelines: &[ListenerTimeline],
) -> GroupSequentialReport {
    let fractions: Vec<f64> = (1..=design.looks)
        .map(|k| f64::from(k) / f64::from(design.looks))
        .collect();
    let boundaries = group_sequential::equally_spaced(design.looks);
    let control = &experiment.control().name;
    let looks: Vec<LookReport> = fractions
        .iter()
        .zip(&boundaries)
        .enumerate()
        .map(|(k, (&fraction, &boundary))| {
            let needed = ((fraction * design.planned_listeners as f64).ceil() as u64).max(1);
            let reached_at = timelines.get(needed as usize - 1).map(|l| l.first_seen);
            let z = match reached_at {
                Some(cutoff) => {
                    let counts = |variant: &str| {
                        let arrived = timelines
                            .iter()
                            .filter(|l| l.variant == variant && l.first_seen <= cutoff);
                        let trials = arrived.clone().count() as u64;
                        let successes = arrived
                            .filter(|l| l.converted_at.is_some_and(|at| at <= cutoff))
                            .count() as u64;
                        (successes, trials)
                    };
                    let control_counts = counts(control);
                    experiment
                        .variants
                        .iter()
                        .skip(1)
                        .map(|v| {
                            let variant_counts = counts(&v.name);
                            let z = if variant_counts.1 == 0 || control_counts.1 == 0 {
                                0.0
                            } else {
                                z_statistic(variant_counts, control_counts)
                            };
                            VariantZ {
                                name: v.name.clone(),
                                z,
                            }
                        })
                        .collect()
                }
                None => Vec::new(),
            };
            LookReport {
                look: k as u32 + 1,
                fraction,
                listeners_needed: needed,
                boundary,
                reached_at,
                z,
            }
        })
        .collect();
    let decisions = experiment
        .variants
        .iter()
        .skip(1)
        .map(|v| {
            let crossed = looks.iter().find(|look| {
                look.z
                    .iter()
                    .any(|z| z.name == v.name && z.z.abs() >= look.boundary)
            });
            let last_reached = looks.last().is_some_and(|l| l.reached_at.is_some());
            let (outcome, look) = match crossed {
                Some(look) => ("significant", Some(look.look)),
                None if last_reached => ("not_significant", looks.last().map(|l| l.look)),
                None => ("continue", None),
            };
            SequentialDecision {
                name: v.name.clone(),
                outcome,
                look,
            }
        })
        .collect();
    GroupSequentialReport {
        planned_listeners: design.planned_listeners,
        looks,
        decisions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiments::Variant;

    fn listener(variant: &str, first_seen: i64, converted_at: Option<i64>) -> ListenerTimeline {
        ListenerTimeline {
            variant: variant.into(),
            first_seen,
            converted_at,
        }
    }

    #[test]
    fn each_look_sees_the_data_as_it_stood_when_its_listener_arrived() {
        let experiment = Experiment {
            id: "exp_1".into(),
            name: "t".into(),
            description: String::new(),
            variants: ["control", "b"]
                .iter()
                .map(|n| Variant {
                    name: n.to_string(),
                    weight: Some(0.5),
                    strategy: "hybrid".into(),
                })
                .collect(),
            primary_metric: Metric::LikeRate,
            guardrails: Vec::new(),
            mixture_sd: 0.01,
            design: Some(SequentialDesign {
                planned_listeners: 100,
                looks: 2,
            }),
            status: "running".into(),
            created_at: 0,
            stopped_at: None,
        };
        let design = experiment.design.unwrap();
        // 50 listeners reach the first look; "b" converts before it, except one who converts
        // only later (not counted at look 1).
        let mut timelines = Vec::new();
        for i in 0..50 {
            let variant = if i % 2 == 0 { "control" } else { "b" };
            let converted = match (variant, i) {
                ("b", 49) => Some(10_000),
                ("b", _) => Some(i as i64 + 1),
                _ if i % 10 == 0 => Some(i as i64 + 1),
                _ => None,
            };
            timelines.push(listener(variant, i as i64, converted));
        }
        let report = group_sequential_report(&experiment, design, &timelines);
        let first = &report.looks[0];
        assert_eq!(first.reached_at, Some(49));
        // control: 25 listeners, 5 converted; b: 25 listeners, 24 converted by t = 49.
        let want = z_statistic((24, 25), (5, 25));
        assert!((first.z[0].z - want).abs() < 1e-12, "{:?}", first.z);
        assert!(report.looks[1].reached_at.is_none());
        assert_eq!(report.decisions[0].outcome, "significant");
        assert_eq!(report.decisions[0].look, Some(1));
    }
}

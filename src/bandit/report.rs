//! `GET /api/v1/analytics/bandit`'s body: per bandit and context, per arm the prior and the
//! data apart (pulls, rewards, failures, pending), the posterior, its mean, 95% interval and
//! exact probability of being best, plus an estimate of the regret so far; and the history
//! endpoint's points.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::{actor::BanditState, thompson::Arm};
use crate::storage::bandit::{ArmKey, HistoryRow};

#[derive(Debug, Serialize, ToSchema)]
pub struct BanditReport {
    pub bandit: String,
    /// Off: every solo list is `hybrid`, every `auto` room `fair`, and nothing is learned.
    pub enabled: bool,
    pub exploration_floor: f64,
    pub reward_window_s: u64,
    /// Pseudo-observations the offline prior is worth per arm (`bandit.prior_weight`).
    pub prior_weight: f64,
    /// The reward rate assumed for each context's offline best arm (`bandit.prior_rate`).
    pub prior_rate: f64,
    /// Solo: the listener's maturity (`cold` 1–2 signals, `few` 3–9, `many` 10+); groups: the
    /// room's size (`small` 1–2 members, `medium` 3–4, `large` 5+).
    pub contexts: Vec<ContextReport>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContextReport {
    pub context: String,
    pub arms: Vec<ArmReport>,
    /// Σ over resolved pulls of (best posterior mean − the pulled arm's posterior mean): the
    /// rewards lost to exploring, estimated from the posteriors.
    pub regret_estimate: f64,
    /// `regret_estimate` per resolved pull.
    pub regret_per_pull: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ArmReport {
    pub name: String,
    /// Where the arm started: Beta(alpha, beta) from the offline evaluation (Beta(1, 1) when
    /// nothing was known), and when it was set (ms).
    pub prior: Prior,
    /// Lists shown under this arm in this context.
    pub pulls: u64,
    /// Resolved pulls that earned a like or add within the window (the data, without the prior).
    pub rewards: f64,
    /// Resolved pulls that earned none.
    pub failures: f64,
    /// Pulls still inside the reward window.
    pub pending: u64,
    /// Prior plus data.
    pub posterior: Posterior,
    /// Posterior mean of the reward rate.
    pub mean: f64,
    /// Equal-tailed 95% credible interval.
    pub interval95: [f64; 2],
    /// Exact P(this arm has the highest rate) under the posteriors.
    pub probability_best: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Prior {
    pub alpha: f64,
    pub beta: f64,
    pub mean: f64,
    pub set_at: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Posterior {
    pub alpha: f64,
    pub beta: f64,
}

pub fn build(state: &BanditState, pending: &BTreeMap<ArmKey, i64>) -> BanditReport {
    let kind = state.kind.name();
    BanditReport {
        bandit: kind.to_string(),
        enabled: state.enabled,
        exploration_floor: state.contexts.first().map_or(0.0, |(_, p)| p.floor),
        reward_window_s: state.reward_window_s,
        prior_weight: state.prior_weight,
        prior_rate: state.prior_rate,
        contexts: state
            .contexts
            .iter()
            .map(|(context, policy)| {
                let best = policy.probability_best();
                let means: Vec<f64> = policy.arms.iter().map(Arm::mean).collect();
                let top = means.iter().cloned().fold(0.0, f64::max);
                let resolved = |a: &Arm| a.successes + a.failures;
                let regret: f64 = policy
                    .arms
                    .iter()
                    .zip(&means)
                    .map(|(a, mean)| resolved(a) * (top - mean))
                    .sum();
                let total: f64 = policy.arms.iter().map(resolved).sum();
                let arms = policy
                    .arms
                    .iter()
                    .zip(&means)
                    .zip(best)
                    .map(|((arm, &mean), probability_best)| {
                        let key = (
                            kind.to_string(),
                            context.name().to_string(),
                            arm.name.clone(),
                        );
                        ArmReport {
                            name: arm.name.clone(),
                            prior: Prior {
                                alpha: arm.prior_alpha,
                                beta: arm.prior_beta,
                                mean: arm.prior_alpha / (arm.prior_alpha + arm.prior_beta),
                                set_at: state
                                    .prior_set_at
                                    .get(&(*context, arm.name.clone()))
                                    .copied(),
                            },
                            pulls: arm.pulls,
                            rewards: arm.successes,
                            failures: arm.failures,
                            pending: pending.get(&key).copied().unwrap_or(0).max(0) as u64,
                            posterior: Posterior {
                                alpha: arm.alpha(),
                                beta: arm.beta(),
                            },
                            mean,
                            interval95: arm.posterior().interval95(),
                            probability_best,
                        }
                    })
                    .collect();
                ContextReport {
                    context: context.name().to_string(),
                    arms,
                    regret_estimate: regret,
                    regret_per_pull: if total > 0.0 { regret / total } else { 0.0 },
                }
            })
            .collect(),
    }
}

/// One context's posterior history.
#[derive(Debug, Serialize, ToSchema)]
pub struct BanditHistory {
    pub bandit: String,
    pub context: String,
    /// Oldest first.
    pub points: Vec<HistoryPoint>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPoint {
    /// Milliseconds since the epoch.
    pub at: i64,
    pub arm: String,
    pub alpha: f64,
    pub beta: f64,
    pub pulls: i64,
    pub mean: f64,
}

pub fn history(bandit: &str, context: &str, rows: Vec<HistoryRow>) -> BanditHistory {
    BanditHistory {
        bandit: bandit.to_string(),
        context: context.to_string(),
        points: rows
            .into_iter()
            .map(|r| HistoryPoint {
                mean: r.alpha / (r.alpha + r.beta),
                at: r.at,
                arm: r.arm,
                alpha: r.alpha,
                beta: r.beta,
                pulls: r.pulls,
            })
            .collect(),
    }
}

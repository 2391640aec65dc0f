//! `GET /api/v1/analytics/bandit`'s body: per arm pulls, rewards, posterior, mean, 95%
//! interval and exact probability of being best, plus an estimate of the regret so far.

use serde::Serialize;
use utoipa::ToSchema;

use super::actor::BanditState;

#[derive(Debug, Serialize, ToSchema)]
pub struct BanditReport {
    pub bandit: String,
    /// Off: every list is `hybrid` and nothing is learned.
    pub enabled: bool,
    pub exploration_floor: f64,
    pub reward_window_s: u64,
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
    /// Lists shown under this arm.
    pub pulls: u64,
    /// Resolved pulls that earned a like or add within the window.
    pub rewards: f64,
    /// Resolved pulls that earned none.
    pub failures: f64,
    /// Pulls still inside the reward window.
    pub pending: u64,
    pub posterior: Posterior,
    /// Posterior mean of the reward rate.
    pub mean: f64,
    /// Equal-tailed 95% credible interval.
    pub interval95: [f64; 2],
    /// Exact P(this arm has the highest rate) under the posteriors.
    pub probability_best: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Posterior {
    pub alpha: f64,
    pub beta: f64,
}

pub fn build(state: &BanditState) -> BanditReport {
    let policy = &state.policy;
    let best = policy.probability_best();
    let means: Vec<f64> = policy
        .arms
        .iter()
        .map(|a| a.alpha() / (a.alpha() + a.beta()))
        .collect();
    let top = means.iter().cloned().fold(0.0, f64::max);
    let resolved = |a: &super::thompson::Arm| a.successes + a.failures;
    let regret: f64 = policy
        .arms
        .iter()
        .zip(&means)
        .map(|(a, mean)| resolved(a) * (top - mean))
        .sum();
    let total: f64 = policy.arms.iter().map(resolved).sum();
    BanditReport {
        bandit: state.name.to_string(),
        enabled: state.enabled,
        exploration_floor: policy.floor,
        reward_window_s: state.reward_window_s,
        arms: policy
            .arms
            .iter()
            .zip(&means)
            .zip(best)
            .zip(&state.pending)
            .map(|(((arm, &mean), probability_best), &pending)| ArmReport {
                name: arm.name.clone(),
                pulls: arm.pulls,
                rewards: arm.successes,
                failures: arm.failures,
                pending,
                posterior: Posterior {
                    alpha: arm.alpha(),
                    beta: arm.beta(),
                },
                mean,
                interval95: arm.posterior().interval95(),
                probability_best,
            })
            .collect(),
        regret_estimate: regret,
        regret_per_pull: if total > 0.0 { regret / total } else { 0.0 },
    }
}

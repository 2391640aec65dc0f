//! Warm start: each (context, arm)'s prior comes from the offline evaluation of that arm in
//! that context (`chorus eval-priors`, stored in the manifest as `bandit_prior`), so a fresh
//! server starts near the offline ranking of strategies instead of exploring uniformly.
//!
//! The rule: in each context the offline best arm is assumed to earn rewards at
//! `bandit.prior_rate`, and every other arm at that rate times its offline quality relative to
//! the best (NDCG@10 ratios). The prior is that mean worth `bandit.prior_weight`
//! pseudo-observations on top of Beta(1, 1): α = 1 + w·m, β = 1 + w·(1 − m). With weight 0 every
//! arm starts at Beta(1, 1) as before. Live rewards outweigh the prior once an arm has had about
//! `prior_weight` resolved lists in that context.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::context::{BanditKind, Context};
use crate::config::BanditSettings;

/// Offline quality of each arm per context: bandit name → context name → arm name → value of
/// `metric`. Written by `chorus eval-priors --write`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfflineQuality {
    pub metric: String,
    pub command: String,
    pub measured_on: String,
    pub bandits: BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>>,
}

impl OfflineQuality {
    fn get(&self, context: Context, arm: &str) -> Option<f64> {
        self.bandits
            .get(context.kind().name())?
            .get(context.name())?
            .get(arm)
            .copied()
            .filter(|v| v.is_finite() && *v >= 0.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prior {
    pub alpha: f64,
    pub beta: f64,
}

impl Prior {
    pub const UNIFORM: Prior = Prior {
        alpha: 1.0,
        beta: 1.0,
    };

    pub fn mean(self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }
}

/// Every (context, arm)'s prior. A context the offline evaluation did not measure (or whose
/// best arm scored 0) starts uniform.
pub fn priors(
    quality: Option<&OfflineQuality>,
    settings: &BanditSettings,
) -> HashMap<(Context, &'static str), Prior> {
    let mut out = HashMap::new();
    for kind in BanditKind::ALL {
        for context in kind.contexts() {
            let measured: Vec<Option<f64>> = kind
                .arms()
                .iter()
                .map(|arm| quality.and_then(|q| q.get(context, arm)))
                .collect();
            let best = measured.iter().flatten().cloned().fold(0.0, f64::max);
            for (arm, value) in kind.arms().into_iter().zip(measured) {
                let prior = match value {
                    Some(v) if best > 0.0 && settings.prior_weight > 0.0 => {
                        let mean = settings.prior_rate * v / best;
                        Prior {
                            alpha: 1.0 + settings.prior_weight * mean,
                            beta: 1.0 + settings.prior_weight * (1.0 - mean),
                        }
                    }
                    _ => Prior::UNIFORM,
                };
                out.insert((context, arm), prior);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bandit::context::Maturity;

    fn quality() -> OfflineQuality {
        let mut many = BTreeMap::new();
        many.insert("hybrid".to_string(), 0.30);
        many.insert("popularity".to_string(), 0.06);
        let mut solo = BTreeMap::new();
        solo.insert("many".to_string(), many);
        let mut bandits = BTreeMap::new();
        bandits.insert("solo_strategy".to_string(), solo);
        OfflineQuality {
            metric: "ndcg@10".into(),
            command: "test".into(),
            measured_on: "test".into(),
            bandits,
        }
    }

    #[test]
    fn the_prior_follows_the_offline_ratio_with_the_configured_weight() {
        let settings = BanditSettings {
            prior_weight: 100.0,
            prior_rate: 0.1,
            ..BanditSettings::default()
        };
        let priors = priors(Some(&quality()), &settings);
        let many = Context::Solo(Maturity::Many);
        let hybrid = priors[&(many, "hybrid")];
        let popularity = priors[&(many, "popularity")];
        assert!((hybrid.alpha - 11.0).abs() < 1e-9 && (hybrid.beta - 91.0).abs() < 1e-9);
        assert!((popularity.alpha - 3.0).abs() < 1e-9, "{popularity:?}");
        // Unmeasured arms and contexts start uniform.
        assert_eq!(priors[&(many, "ncf")], Prior::UNIFORM);
        assert_eq!(
            priors[&(Context::Solo(Maturity::Cold), "hybrid")],
            Prior::UNIFORM
        );
        // Weight 0 is today's uniform start.
        let off = BanditSettings {
            prior_weight: 0.0,
            ..settings
        };
        assert!(super::priors(Some(&quality()), &off)
            .values()
            .all(|p| *p == Prior::UNIFORM));
    }
}

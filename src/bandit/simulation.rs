//! A seeded simulation that justifies the bandit's design: a population of cold, young and
//! mature listeners whose true best strategy differs (popularity for the cold, hybrid for the
//! rest), served by today's design and the alternatives, measured by expected regret.
//!
//! The offline evaluation the warm start reads is modelled as the true rates seen through a
//! distortion: NDCG is on another scale (×2) and it underrates popularity for cold listeners
//! (×0.6), so the prior names the wrong best arm there and live rewards have to overturn it.
//! Rewards arrive at once (the delay does not change which arm is credited).

use std::{collections::BTreeMap, fmt::Write as _};

use rand::{rngs::StdRng, RngExt, SeedableRng};

use super::{
    context::{BanditKind, Context, Maturity},
    prior::{self, OfflineQuality},
    thompson::{Arm, Thompson},
};
use crate::config::BanditSettings;

/// True like-rates per maturity, in `recommend::Strategy::ALL` order (hybrid, ncf, content,
/// popularity), and the population's shares.
const TRUTH: [(Maturity, f64, [f64; 4]); 3] = [
    (Maturity::Cold, 0.3, [0.10, 0.08, 0.07, 0.14]),
    (Maturity::Few, 0.3, [0.13, 0.10, 0.09, 0.11]),
    (Maturity::Many, 0.4, [0.18, 0.15, 0.12, 0.05]),
];

/// What the offline evaluation would say: NDCG on its own scale, popularity underrated for the
/// cold.
fn offline(maturity: Maturity, arm: usize, rate: f64) -> f64 {
    let underrated = maturity == Maturity::Cold && arm == 3;
    2.0 * rate * if underrated { 0.6 } else { 1.0 }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Policy {
    /// Before this change: one posterior for every listener, Beta(1, 1).
    Today,
    /// One posterior per maturity, Beta(1, 1).
    Contextual,
    /// One posterior for everyone, warm-started from the pooled offline evaluation.
    WarmStart { weight: f64 },
    /// One posterior per maturity, warm-started (what ships).
    WarmContextual { weight: f64 },
}

impl Policy {
    pub fn name(self) -> String {
        match self {
            Policy::Today => "today: one context, Beta(1, 1)".into(),
            Policy::Contextual => "contextual, Beta(1, 1)".into(),
            Policy::WarmStart { weight } => format!("one context, warm start (weight {weight})"),
            Policy::WarmContextual { weight } => {
                format!("contextual, warm start (weight {weight})")
            }
        }
    }
}

/// One policy's results, averaged over runs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Outcome {
    /// Expected regret (best rate in the listener's context − the chosen arm's) over the first
    /// 1,000 and 10,000 pulls.
    pub regret_1k: f64,
    pub regret_10k: f64,
    /// Share of mature listeners' lists that were `popularity`, over 10,000 pulls.
    pub popularity_for_many: f64,
}

fn offline_quality(pooled: bool) -> OfflineQuality {
    let arms = BanditKind::SoloStrategy.arms();
    let mut contexts = BTreeMap::new();
    for (maturity, _, rates) in TRUTH {
        let per_arm: BTreeMap<String, f64> = arms
            .iter()
            .enumerate()
            .map(|(i, arm)| {
                let value = if pooled {
                    TRUTH
                        .iter()
                        .map(|(m, share, r)| share * offline(*m, i, r[i]))
                        .sum()
                } else {
                    offline(maturity, i, rates[i])
                };
                (arm.to_string(), value)
            })
            .collect();
        contexts.insert(maturity.name().to_string(), per_arm);
    }
    let mut bandits = BTreeMap::new();
    bandits.insert(BanditKind::SoloStrategy.name().to_string(), contexts);
    OfflineQuality {
        metric: "simulated".into(),
        command: "simulation".into(),
        measured_on: "simulation".into(),
        bandits,
    }
}

/// The policies' bandits: one per maturity (the same one thrice when not contextual).
fn bandits(policy: Policy, floor: f64) -> (Vec<Thompson>, bool) {
    let arms = BanditKind::SoloStrategy.arms();
    let uniform = || Thompson::new(&arms, floor);
    let warm = |weight: f64, pooled: bool| {
        let settings = BanditSettings {
            prior_weight: weight,
            prior_rate: 0.1,
            ..BanditSettings::default()
        };
        let priors = prior::priors(Some(&offline_quality(pooled)), &settings);
        Maturity::ALL
            .iter()
            .map(|&m| {
                let mut t = uniform();
                for (i, arm) in arms.iter().enumerate() {
                    let p = priors[&(Context::Solo(m), *arm)];
                    t.arms[i] = Arm::with_prior(*arm, p.alpha, p.beta);
                }
                t
            })
            .collect::<Vec<_>>()
    };
    match policy {
        Policy::Today => (vec![uniform()], false),
        Policy::Contextual => (vec![uniform(), uniform(), uniform()], true),
        // Pooled: every maturity's prior is the same; keep one.
        Policy::WarmStart { weight } => (warm(weight, true).into_iter().take(1).collect(), false),
        Policy::WarmContextual { weight } => (warm(weight, false), true),
    }
}

/// Runs one policy for `pulls` listeners, `runs` times (seeds 0..runs).
pub fn simulate(policy: Policy, pulls: usize, runs: u64, floor: f64) -> Outcome {
    let mut total = Outcome::default();
    for seed in 0..runs {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut policies, contextual) = bandits(policy, floor);
        let (mut regret, mut many, mut many_popular) = (0.0, 0u64, 0u64);
        for pull in 0..pulls {
            let u: f64 = rng.random();
            let mut acc = 0.0;
            let mut who = 2;
            for (i, (_, share, _)) in TRUTH.iter().enumerate() {
                acc += share;
                if u < acc {
                    who = i;
                    break;
                }
            }
            let (maturity, _, rates) = TRUTH[who];
            let bandit = &mut policies[if contextual { who } else { 0 }];
            let arm = bandit.choose(&mut rng);
            let best = rates.iter().cloned().fold(0.0, f64::max);
            regret += best - rates[arm];
            let reward = if rng.random::<f64>() < rates[arm] {
                1.0
            } else {
                0.0
            };
            bandit.reward(arm, reward);
            if maturity == Maturity::Many {
                many += 1;
                many_popular += u64::from(arm == 3);
            }
            if pull + 1 == 1_000 {
                total.regret_1k += regret / runs as f64;
            }
        }
        total.regret_10k += regret / runs as f64;
        total.popularity_for_many += many_popular as f64 / many.max(1) as f64 / runs as f64;
    }
    total
}

/// The policies compared, in the report's order.
pub fn policies() -> Vec<Policy> {
    vec![
        Policy::Today,
        Policy::Contextual,
        Policy::WarmStart { weight: 200.0 },
        Policy::WarmContextual { weight: 50.0 },
        Policy::WarmContextual { weight: 200.0 },
        Policy::WarmContextual { weight: 1_000.0 },
    ]
}

/// The comparison as markdown (`chorus simulate-bandit`).
pub fn report(runs: u64) -> String {
    let floor = BanditSettings::default().exploration_floor;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "`chorus simulate-bandit --runs {runs}`: 10,000 listeners arrive one at a time (30% \
         cold, 30% few, 40% many signals); true like-rates (hybrid, ncf, content, popularity) \
         are cold {:?}, few {:?}, many {:?}. The warm start reads an offline evaluation that \
         ranks the arms as the truth does except that it underrates popularity for cold \
         listeners (so its prior is wrong there). Exploration floor {floor}, prior rate 0.1. \
         Expected regret = Σ (best rate for the listener − the chosen arm's rate), mean of \
         {runs} seeded runs.\n",
        TRUTH[0].2, TRUTH[1].2, TRUTH[2].2
    );
    let _ = writeln!(
        out,
        "| policy | regret, first 1,000 | regret, 10,000 | popularity's share of mature listeners' lists |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for policy in policies() {
        let o = simulate(policy, 10_000, runs, floor);
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1} | {:.2}% |",
            policy.name(),
            o.regret_1k,
            o.regret_10k,
            100.0 * o.popularity_for_many
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped design beats today's over the first 1,000 and 10,000 pulls, and gives mature
    /// listeners popularity hardly more often than the floor does (floor 2% of four arms:
    /// popularity gets 2% by the floor alone).
    #[test]
    fn the_warm_started_contextual_bandit_has_less_regret_than_today() {
        let floor = 0.02;
        let runs = 8;
        let today = simulate(Policy::Today, 10_000, runs, floor);
        let shipped = simulate(
            Policy::WarmContextual { weight: 200.0 },
            10_000,
            runs,
            floor,
        );
        assert!(
            shipped.regret_1k < 0.7 * today.regret_1k,
            "{shipped:?} vs {today:?}"
        );
        assert!(
            shipped.regret_10k < 0.7 * today.regret_10k,
            "{shipped:?} vs {today:?}"
        );
        assert!(shipped.popularity_for_many < floor + 0.01, "{shipped:?}");
        // Context matters on its own: one warm-started posterior cannot serve both kinds.
        let pooled = simulate(Policy::WarmStart { weight: 200.0 }, 10_000, runs, floor);
        assert!(
            shipped.regret_10k < pooled.regret_10k,
            "{shipped:?} vs {pooled:?}"
        );
    }
}

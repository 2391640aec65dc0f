//! Beta–Bernoulli Thompson sampling with an exploration floor: pure state and math, no I/O.
//!
//! Each arm's success rate has a Beta(prior α + successes, prior β + failures) posterior (the
//! prior is Beta(1, 1) unless warm-started from what is known offline). To choose, draw
//! one sample per arm and take the largest; except that with probability `floor × arms` an arm
//! is drawn uniformly, so every arm keeps at least `floor` of the traffic (the world changes;
//! an arm written off early must still be able to come back). Rewards may arrive late and in
//! any order: they only ever add to the counts of the arm that was shown.

use rand::{Rng, RngExt};
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};

use crate::stats::posterior::{probability_best, BetaPosterior};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    pub name: String,
    /// The prior's pseudo-counts: Beta(1, 1) when nothing is known.
    pub prior_alpha: f64,
    pub prior_beta: f64,
    /// Times the arm was chosen.
    pub pulls: u64,
    /// Resolved pulls that earned the reward (may be fractional for graded rewards).
    pub successes: f64,
    /// Resolved pulls that did not.
    pub failures: f64,
}

impl Arm {
    pub fn new(name: impl Into<String>) -> Self {
        Self::with_prior(name, 1.0, 1.0)
    }

    pub fn with_prior(name: impl Into<String>, prior_alpha: f64, prior_beta: f64) -> Self {
        Self {
            name: name.into(),
            prior_alpha,
            prior_beta,
            pulls: 0,
            successes: 0.0,
            failures: 0.0,
        }
    }

    pub fn alpha(&self) -> f64 {
        self.prior_alpha + self.successes
    }

    pub fn beta(&self) -> f64 {
        self.prior_beta + self.failures
    }

    pub fn mean(&self) -> f64 {
        self.alpha() / (self.alpha() + self.beta())
    }

    pub fn posterior(&self) -> BetaPosterior {
        BetaPosterior::new(self.alpha(), self.beta())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thompson {
    pub arms: Vec<Arm>,
    /// Minimum share of choices each arm gets, in [0, 1/arms].
    pub floor: f64,
}

impl Thompson {
    pub fn new(names: &[&str], floor: f64) -> Self {
        assert!(!names.is_empty(), "a bandit needs arms");
        Self {
            arms: names.iter().map(|name| Arm::new(*name)).collect(),
            floor: floor.clamp(0.0, 1.0 / names.len() as f64),
        }
    }

    /// Picks an arm and counts the pull.
    pub fn choose(&mut self, rng: &mut impl Rng) -> usize {
        let arm = self.sample(rng);
        self.arms[arm].pulls += 1;
        arm
    }

    /// Picks an arm without counting it.
    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let k = self.arms.len();
        if rng.random::<f64>() < self.floor * k as f64 {
            return rng.random_range(0..k);
        }
        let mut best = (0, f64::NEG_INFINITY);
        for (i, arm) in self.arms.iter().enumerate() {
            // alpha, beta > 0 (priors are checked), so the distribution exists.
            let draw = Beta::new(arm.alpha(), arm.beta())
                .map(|b| b.sample(rng))
                .unwrap_or(0.5);
            if draw > best.1 {
                best = (i, draw);
            }
        }
        best.0
    }

    /// A pull's outcome: `reward` in [0, 1] (1 success, 0 failure).
    pub fn reward(&mut self, arm: usize, reward: f64) {
        let reward = reward.clamp(0.0, 1.0);
        let arm = &mut self.arms[arm];
        arm.successes += reward;
        arm.failures += 1.0 - reward;
    }

    /// Exact P(arm is best) under the posteriors.
    pub fn probability_best(&self) -> Vec<f64> {
        let posteriors: Vec<BetaPosterior> = self.arms.iter().map(Arm::posterior).collect();
        probability_best(&posteriors)
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.arms.iter().position(|a| a.name == name)
    }
}

#[cfg(test)]
mod tests {
    use rand::{rngs::StdRng, SeedableRng};

    use super::*;

    #[test]
    fn the_floor_keeps_every_arm_alive() {
        let mut bandit = Thompson::new(&["a", "b", "c", "d"], 0.02);
        // Arm a is overwhelmingly better; the others must still get ≥ 2% each.
        bandit.arms[0].successes = 10_000.0;
        for arm in &mut bandit.arms[1..] {
            arm.failures = 10_000.0;
        }
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            counts[bandit.choose(&mut rng)] += 1;
        }
        for &c in &counts[1..] {
            assert!(c as f64 / 40_000.0 > 0.017, "{counts:?}");
        }
        assert_eq!(bandit.arms.iter().map(|a| a.pulls).sum::<u64>(), 40_000);
    }

    #[test]
    fn rewards_update_the_right_posterior() {
        let mut bandit = Thompson::new(&["x", "y"], 0.0);
        bandit.reward(1, 1.0);
        bandit.reward(1, 0.0);
        bandit.reward(0, 0.25);
        assert_eq!((bandit.arms[1].alpha(), bandit.arms[1].beta()), (2.0, 2.0));
        assert_eq!(
            (bandit.arms[0].alpha(), bandit.arms[0].beta()),
            (1.25, 1.75)
        );
    }
}

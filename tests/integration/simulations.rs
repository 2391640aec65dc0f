//! Seeded simulations of the statistics and the bandit: do the tests reject as often as they
//! claim, and does Thompson sampling find the best arm?

use chorus::{
    bandit::thompson::Thompson,
    stats::{
        group_sequential,
        means::{self, Summary},
        proportions::{z_statistic, z_test},
        sequential::{msprt, DEFAULT_MIXTURE_SD},
    },
};
use rand::{rngs::StdRng, RngExt, SeedableRng};
use rand_distr::{Binomial, Distribution, Normal};

const EXPERIMENTS: usize = 2_000;
/// The band a 5% test must land in over 2,000 A/A experiments (±2.6 binomial sd).
const CALIBRATED: std::ops::RangeInclusive<f64> = 0.037..=0.063;

/// Successes in `n` Bernoulli(p) draws.
fn successes(rng: &mut StdRng, n: u64, p: f64) -> u64 {
    Binomial::new(n, p).expect("valid binomial").sample(rng)
}

#[test]
fn a_a_proportion_tests_reject_five_percent_of_the_time() {
    let mut rng = StdRng::seed_from_u64(2026);
    let n = 2_000;
    let rejected = (0..EXPERIMENTS)
        .filter(|_| {
            let (a, b) = (successes(&mut rng, n, 0.1), successes(&mut rng, n, 0.1));
            z_test((a, n), (b, n)) < 0.05
        })
        .count();
    let rate = rejected as f64 / EXPERIMENTS as f64;
    eprintln!("A/A two-proportion z-test: false-positive rate {rate:.4}");
    assert!(CALIBRATED.contains(&rate), "A/A false-positive rate {rate}");
}

#[test]
fn a_a_welch_tests_reject_five_percent_of_the_time() {
    let mut rng = StdRng::seed_from_u64(11);
    let (control_dist, variant_dist) = (
        Normal::new(3.0, 1.0).unwrap(),
        Normal::new(3.0, 2.5).unwrap(),
    );
    let summary = |rng: &mut StdRng, name: &str, n: usize, dist: &Normal<f64>| {
        let xs: Vec<f64> = (0..n).map(|_| dist.sample(rng)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        Summary {
            name: name.into(),
            n: n as u64,
            mean,
            sd: var.sqrt(),
        }
    };
    let rejected = (0..EXPERIMENTS)
        .filter(|_| {
            // Unequal sizes and variances: where Student's t would be miscalibrated.
            let arms = [
                summary(&mut rng, "control", 40, &control_dist),
                summary(&mut rng, "v", 15, &variant_dist),
            ];
            means::compare("control", &arms).unwrap().variants[1]
                .p_value
                .unwrap()
                < 0.05
        })
        .count();
    let rate = rejected as f64 / EXPERIMENTS as f64;
    assert!(
        CALIBRATED.contains(&rate),
        "Welch A/A false-positive rate {rate}"
    );
}

/// Twenty looks at a growing A/A experiment (1,000 more per arm each time), stopping at the
/// first "significant" one: the fixed-horizon z-test's error rate balloons; the group-sequential
/// test (alpha spending over the planned looks) stays at 5%; the mSPRT stays below it (valid at
/// any stopping time, so conservative at any finite horizon).
#[test]
fn peeking_breaks_the_fixed_test_but_not_the_sequential_one() {
    let mut rng = StdRng::seed_from_u64(99);
    let (looks, step, p) = (20, 1_000_u64, 0.1);
    let fractions: Vec<f64> = (1..=looks).map(|k| k as f64 / looks as f64).collect();
    let bounds = group_sequential::boundaries(&fractions);
    let (mut fixed_peeking, mut sequential_peeking, mut sequential_once) = (0, 0, 0);
    let mut spending_peeking = 0;
    for _ in 0..EXPERIMENTS {
        let (mut a, mut b, mut n) = (0, 0, 0);
        let (mut fixed_hit, mut sequential_hit, mut spending_hit) = (false, false, false);
        for bound in &bounds {
            a += successes(&mut rng, step, p);
            b += successes(&mut rng, step, p);
            n += step;
            fixed_hit |= z_test((a, n), (b, n)) < 0.05;
            spending_hit |= z_statistic((a, n), (b, n)).abs() >= *bound;
            sequential_hit |= msprt((a, n), (b, n), DEFAULT_MIXTURE_SD).p_value < 0.05;
        }
        fixed_peeking += usize::from(fixed_hit);
        spending_peeking += usize::from(spending_hit);
        sequential_peeking += usize::from(sequential_hit);
        sequential_once += usize::from(msprt((a, n), (b, n), DEFAULT_MIXTURE_SD).p_value < 0.05);
    }
    let rate = |count: usize| count as f64 / EXPERIMENTS as f64;
    assert!(
        rate(fixed_peeking) > 0.12,
        "peeking at a fixed-horizon test should inflate it: {}",
        rate(fixed_peeking)
    );
    assert!(
        rate(sequential_peeking) <= *CALIBRATED.end(),
        "mSPRT with peeking: {}",
        rate(sequential_peeking)
    );
    assert!(
        rate(sequential_once) <= *CALIBRATED.end(),
        "mSPRT once: {}",
        rate(sequential_once)
    );
    eprintln!(
        "A/A, 20 looks: fixed z-test {:.4}, group-sequential {:.4}, mSPRT peeking {:.4}, mSPRT at the end {:.4}",
        rate(fixed_peeking),
        rate(spending_peeking),
        rate(sequential_peeking),
        rate(sequential_once)
    );
}

/// Cumulative pseudo-regret of one run: Σ (best rate − rate of the arm pulled).
fn run_bandit(
    rates: &[f64],
    pulls: usize,
    floor: f64,
    delay: usize,
    seed: u64,
) -> (Thompson, Vec<usize>, f64) {
    let names: Vec<String> = (0..rates.len()).map(|i| format!("arm{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut bandit = Thompson::new(&names, floor);
    let mut rng = StdRng::seed_from_u64(seed);
    let best = rates.iter().cloned().fold(f64::MIN, f64::max);
    let mut chosen = Vec::with_capacity(pulls);
    let mut pending: Vec<(usize, f64)> = Vec::new();
    let mut regret = 0.0;
    for _ in 0..pulls {
        let arm = bandit.choose(&mut rng);
        let reward = f64::from(u8::from(rng.random::<f64>() < rates[arm]));
        regret += best - rates[arm];
        chosen.push(arm);
        // Rewards land in batches of `delay`: the policy keeps choosing on stale posteriors.
        pending.push((arm, reward));
        if pending.len() >= delay.max(1) {
            for (arm, reward) in pending.drain(..) {
                bandit.reward(arm, reward);
            }
        }
    }
    (bandit, chosen, regret)
}

fn late_share_of_best(chosen: &[usize], best: usize) -> f64 {
    let late = &chosen[chosen.len() * 4 / 5..];
    late.iter().filter(|&&a| a == best).count() as f64 / late.len() as f64
}

#[test]
fn thompson_sampling_sends_late_traffic_to_the_best_arm() {
    let rates = [0.04, 0.05, 0.06, 0.08];
    let (bandit, chosen, _) = run_bandit(&rates, 20_000, 0.005, 1, 1);
    let share = late_share_of_best(&chosen, 3);
    eprintln!("Thompson: late share of the best arm {share:.4}");
    assert!(share >= 0.90, "late share of the best arm {share}");
    let best = bandit.probability_best();
    assert!(best[3] > 0.95, "{best:?}");
}

#[test]
fn thompson_regret_grows_sublinearly() {
    let rates = [0.04, 0.05, 0.06, 0.08];
    // Mean regret over 10 seeds at T and 8T. Linear growth would multiply it by 8; the floor is
    // off here, since a fixed floor adds floor × Σ gaps of regret per pull by design.
    let mean_regret = |pulls: usize| {
        (0..10)
            .map(|seed| run_bandit(&rates, pulls, 0.0, 1, seed).2)
            .sum::<f64>()
            / 10.0
    };
    let (short, long) = (mean_regret(2_500), mean_regret(20_000));
    eprintln!("Thompson: mean regret {short:.1} at 2,500 pulls, {long:.1} at 20,000");
    assert!(
        long < 3.0 * short,
        "regret {short:.1} at 2,500 pulls, {long:.1} at 20,000"
    );
}

#[test]
fn thompson_sampling_converges_with_batched_delayed_rewards() {
    let rates = [0.04, 0.05, 0.06, 0.08];
    // Rewards arrive 500 pulls at a time.
    let (_, chosen, _) = run_bandit(&rates, 20_000, 0.005, 500, 3);
    let share = late_share_of_best(&chosen, 3);
    assert!(
        share >= 0.90,
        "late share of the best arm with delayed rewards {share}"
    );
}

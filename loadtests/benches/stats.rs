//! `cargo bench --bench stats`: what the experiment statistics cost per call, in process: a
//! two-variant and a twenty-variant proportions report (the quadratures for chance to beat
//! control dominate), a Welch comparison, group-sequential boundaries, the bandit report's probability-best over four arms,
//! and one Thompson-sampling choice.

use std::time::Instant;

use chorus::{
    bandit::thompson::Thompson,
    stats::{
        group_sequential,
        means::{self, Summary},
        proportions::{self, Counts},
    },
};
use rand::{rngs::StdRng, SeedableRng};

fn time<T>(label: &str, rounds: u32, mut f: impl FnMut() -> T) {
    for _ in 0..rounds.div_ceil(10) {
        std::hint::black_box(f());
    }
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(f());
    }
    let each = started.elapsed() / rounds;
    println!("{label:<58} {:>10.1} µs", each.as_secs_f64() * 1e6);
}

fn arms(k: usize, trials: u64) -> Vec<Counts> {
    (0..k)
        .map(|i| Counts {
            name: format!("v{i}"),
            trials,
            successes: trials / 10 + (i as u64 * trials / 1000),
            weight: None,
        })
        .collect()
}

fn main() {
    for trials in [1_000, 100_000_000] {
        let two = arms(2, trials);
        time(
            &format!("proportions, 2 variants, {trials} trials each"),
            200,
            || proportions::compare("v0", &two).unwrap(),
        );
        let twenty = arms(20, trials);
        time(
            &format!("proportions, 20 variants, {trials} trials each"),
            20,
            || proportions::compare("v0", &twenty).unwrap(),
        );
    }
    let summaries: Vec<Summary> = (0..2)
        .map(|i| Summary {
            name: format!("v{i}"),
            n: 1_000_000,
            mean: 3.0 + i as f64 * 0.01,
            sd: 1.0,
        })
        .collect();
    time("means (Welch), 2 variants, n = 10^6", 2_000, || {
        means::compare("v0", &summaries).unwrap()
    });
    for looks in [10, 50] {
        let fractions: Vec<f64> = (1..=looks).map(|k| k as f64 / looks as f64).collect();
        time(
            &format!("group-sequential boundaries, {looks} looks"),
            5,
            || group_sequential::boundaries(&fractions),
        );
    }
    let mut bandit = Thompson::new(&["hybrid", "ncf", "content", "popularity"], 0.02);
    for (i, arm) in bandit.arms.iter_mut().enumerate() {
        arm.successes = 1_000.0 + 50.0 * i as f64;
        arm.failures = 9_000.0;
    }
    time("bandit probability_best, 4 arms", 50, || {
        bandit.probability_best()
    });
    let mut rng = StdRng::seed_from_u64(1);
    time(
        "Thompson sampling: one choice among 4 arms",
        100_000,
        || bandit.sample(&mut rng),
    );
}

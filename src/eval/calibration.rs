//! Platt scaling of the hybrid ranker's logits, and how well a probability is calibrated.
//!
//! The ranker is trained to order one listener's candidates, so its logits are large and
//! σ(logit) is ~1 for nearly every candidate: useless as "how much would this member like it"
//! when members are compared. Platt scaling fits p = σ(a·logit + b) to whether held-out
//! listeners' candidates turned out relevant, which keeps the order and gives probabilities
//! that mean what they say.

pub use crate::inference::group::Platt;

/// Maximum-likelihood logistic regression of `relevant` on `logit` (Newton's method, a tiny ridge
/// so that separable data still converges).
pub fn fit(samples: &[(f32, bool)]) -> Platt {
    let loss = |a: f64, b: f64| -> f64 {
        samples
            .iter()
            .map(|&(x, y)| {
                let z = a * x as f64 + b;
                // -log σ(±z), computed stably.
                let m = if y { -z } else { z };
                m.max(0.0) + (-m.abs()).exp().ln_1p()
            })
            .sum::<f64>()
            + 1e-6 * (a * a + b * b)
    };
    // Start from "every candidate is as likely as the base rate" (a = 0), where the
    // problem is well conditioned, and take Newton steps, halved while they do not improve.
    let positives = samples.iter().filter(|s| s.1).count() as f64;
    let rate = ((positives + 0.5) / (samples.len() as f64 + 1.0)).clamp(1e-6, 1.0 - 1e-6);
    let (mut a, mut b) = (0.0f64, (rate / (1.0 - rate)).ln());
    let mut current = loss(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (2e-6 * a, 2e-6 * b, 2e-6, 0.0, 2e-6);
        for &(x, y) in samples {
            let x = x as f64;
            let p = 1.0 / (1.0 + (-(a * x + b)).exp());
            let r = p - if y { 1.0 } else { 0.0 };
            let w = p * (1.0 - p);
            ga += r * x;
            gb += r;
            haa += w * x * x;
            hab += w * x;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-300 {
            break;
        }
        let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
        let mut step = 1.0;
        let improved = loop {
            let (na, nb) = (a - step * da, b - step * db);
            let next = loss(na, nb);
            if next <= current {
                break Some((na, nb, next));
            }
            step /= 2.0;
            if step < 1e-8 {
                break None;
            }
        };
        let Some((na, nb, next)) = improved else {
            break;
        };
        let done = (current - next).abs() < 1e-10 * current.max(1.0);
        (a, b, current) = (na, nb, next);
        if done {
            break;
        }
    }
    Platt {
        slope: a as f32,
        intercept: b as f32,
    }
}

/// One bin of a reliability table: the predictions from `lower` to `upper`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    pub mean_predicted: f64,
    pub observed: f64,
}

/// Predicted probability against the observed rate in `bins` bins of equal count (sorted by
/// prediction), and the expected calibration error: the count-weighted mean gap.
pub fn reliability(samples: &[(f32, bool)], bins: usize) -> (Vec<Bin>, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = sorted.len().max(1) as f64;
    let mut ece = 0.0;
    let mut table = Vec::with_capacity(bins);
    for b in 0..bins {
        let (start, end) = (b * sorted.len() / bins, (b + 1) * sorted.len() / bins);
        let chunk = &sorted[start..end];
        if chunk.is_empty() {
            continue;
        }
        let count = chunk.len();
        let bin = Bin {
            lower: chunk[0].0 as f64,
            upper: chunk[count - 1].0 as f64,
            count,
            mean_predicted: chunk.iter().map(|s| s.0 as f64).sum::<f64>() / count as f64,
            observed: chunk.iter().filter(|s| s.1).count() as f64 / count as f64,
        };
        ece += count as f64 / total * (bin.mean_predicted - bin.observed).abs();
        table.push(bin);
    }
    (table, ece)
}

#[cfg(test)]
mod tests {
    use rand::{rngs::StdRng, RngExt, SeedableRng};

    use super::*;

    #[test]
    fn recovers_the_parameters_that_generated_the_data() {
        let truth = Platt {
            slope: 0.4,
            intercept: -3.0,
        };
        let mut rng = StdRng::seed_from_u64(3);
        let samples: Vec<(f32, bool)> = (0..50_000)
            .map(|_| {
                let x: f32 = rng.random_range(-5.0..15.0);
                (x, rng.random::<f32>() < truth.probability(x))
            })
            .collect();
        let fitted = fit(&samples);
        assert!((fitted.slope - 0.4).abs() < 0.02, "{fitted:?}");
        assert!((fitted.intercept + 3.0).abs() < 0.1, "{fitted:?}");
        let calibrated: Vec<(f32, bool)> = samples
            .iter()
            .map(|&(x, y)| (fitted.probability(x), y))
            .collect();
        let (_, ece) = reliability(&calibrated, 10);
        assert!(ece < 0.01, "{ece}");
        let saturated: Vec<(f32, bool)> = samples
            .iter()
            .map(|&(x, y)| (1.0 / (1.0 + (-x).exp()), y))
            .collect();
        let (_, raw_ece) = reliability(&saturated, 10);
        assert!(raw_ece > 0.3, "{raw_ece}");
    }
}

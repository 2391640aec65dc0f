//! Exact probabilities under independent Beta posteriors: `P(X_v > X_c)` (chance to beat
//! control) and `P(arm i is best)`, by Gauss–Legendre quadrature of `f_i(x) · Π_j F_j(x)`.
//!
//! Each posterior lives on a window of ±40 standard deviations around its mean (clipped to
//! [0, 1]; the mass outside is below 1e-30), cut into equal panels. Densities are evaluated in
//! log space relative to the mean, `(a−1)·ln1p((x−m)/m) + (b−1)·ln1p((m−x)/(1−m))`, so nothing
//! large cancels even at 10^8 trials, and each density is normalized by its own quadrature sum
//! (no log-beta function of huge arguments). CDFs are the panel masses summed, plus a
//! quadrature over the partial panel.

use super::quadrature::{gauss_legendre, integrate, partial_weights, NODES};

const PANELS: usize = 48;
const WINDOW_SDS: f64 = 40.0;

/// Beta(alpha, beta) with alpha, beta ≥ 1 (the posteriors of Beta(1, 1) priors).
#[derive(Clone)]
pub struct BetaPosterior {
    alpha: f64,
    beta: f64,
    mean: f64,
    lo: f64,
    width: f64,
    /// Normalized mass before each panel (`PANELS + 1` entries, the last is 1).
    mass_before: Vec<f64>,
    normalizer: f64,
}

impl BetaPosterior {
    pub fn new(alpha: f64, beta: f64) -> Self {
        debug_assert!(alpha >= 1.0 && beta >= 1.0);
        let total = alpha + beta;
        let mean = alpha / total;
        let sd = (alpha * beta / (total * total * (total + 1.0))).sqrt();
        let lo = (mean - WINDOW_SDS * sd).max(0.0);
        let hi = (mean + WINDOW_SDS * sd).min(1.0);
        let mut posterior = Self {
            alpha,
            beta,
            mean,
            lo,
            width: (hi - lo) / PANELS as f64,
            mass_before: Vec::with_capacity(PANELS + 1),
            normalizer: 1.0,
        };
        let mut cumulative = 0.0;
        let mut before = vec![0.0];
        for k in 0..PANELS {
            let start = posterior.panel_start(k);
            cumulative += posterior.integral(start, start + posterior.width);
            before.push(cumulative);
        }
        posterior.normalizer = cumulative;
        posterior.mass_before = before.into_iter().map(|m| m / cumulative).collect();
        posterior
    }

    /// From successes and failures under a uniform prior.
    pub fn from_counts(successes: f64, failures: f64) -> Self {
        Self::new(1.0 + successes, 1.0 + failures)
    }

    fn hi(&self) -> f64 {
        self.lo + self.width * PANELS as f64
    }

    fn panel_start(&self, k: usize) -> f64 {
        self.lo + self.width * k as f64
    }

    /// The density up to the constant factor `normalizer`.
    fn unnormalized(&self, x: f64) -> f64 {
        let part = |exponent: f64, ln1p_arg: f64| {
            if exponent == 0.0 {
                0.0
            } else {
                exponent * ln1p_arg.ln_1p()
            }
        };
        let m = self.mean;
        (part(self.alpha - 1.0, (x - m) / m) + part(self.beta - 1.0, (m - x) / (1.0 - m))).exp()
    }

    fn integral(&self, start: f64, end: f64) -> f64 {
        integrate(start, end, |x| self.unnormalized(x))
    }

    /// The distribution of 1 − X.
    fn reflected(&self) -> Self {
        Self::new(self.beta, self.alpha)
    }

    pub fn cdf(&self, x: f64) -> f64 {
        if x <= self.lo {
            return 0.0;
        }
        if x >= self.hi() {
            return 1.0;
        }
        let k = (((x - self.lo) / self.width) as usize).min(PANELS - 1);
        let start = self.panel_start(k);
        (self.mass_before[k] + self.integral(start, x) / self.normalizer).min(1.0)
    }

    /// `∫ f(x) · Π_j h(F_j(x)) dx` over this posterior's window, `F_j` the CDFs of `others`.
    ///
    /// The window is cut at every panel edge of every other posterior inside it, so each
    /// segment lies within one panel of each (where its CDF is smooth) or outside its window
    /// (where the CDF is 0 or 1). Walking the segments in order, each CDF is carried from the
    /// segment's start and continued to every node with [`partial_weights`]: one set of
    /// density values per segment and posterior.
    fn expect(&self, others: &[&BetaPosterior], h: impl Fn(f64) -> f64) -> f64 {
        let (lo, hi) = (self.lo, self.hi());
        let mut edges: Vec<f64> = (0..=PANELS).map(|k| self.panel_start(k)).collect();
        for other in others {
            edges.extend(
                (0..=PANELS)
                    .map(|k| other.panel_start(k))
                    .filter(|&x| x > lo && x < hi),
            );
        }
        edges.sort_by(f64::total_cmp);
        edges.dedup();
        let rule = gauss_legendre();
        let partial = partial_weights();
        let mut cdf_at_start: Vec<f64> = others.iter().map(|o| o.cdf(edges[0])).collect();
        let mut total = 0.0;
        for pair in edges.windows(2) {
            let (start, end) = (pair[0], pair[1]);
            let (half, mid) = (0.5 * (end - start), 0.5 * (end + start));
            let mut product = [1.0; NODES];
            for (other, cdf_start) in others.iter().zip(cdf_at_start.iter_mut()) {
                if end <= other.lo {
                    *cdf_start = 0.0;
                    product.iter_mut().for_each(|p| *p *= h(0.0));
                    continue;
                }
                if start >= other.hi() {
                    *cdf_start = 1.0;
                    product.iter_mut().for_each(|p| *p *= h(1.0));
                    continue;
                }
                let density: Vec<f64> = rule
                    .iter()
                    .map(|(t, _)| other.unnormalized(mid + half * t) / other.normalizer)
                    .collect();
                for (p, row) in product.iter_mut().zip(partial) {
                    let within: f64 = row.iter().zip(&density).map(|(w, d)| w * d).sum();
                    *p *= h((*cdf_start + half * within).clamp(0.0, 1.0));
                }
                *cdf_start += half
                    * rule
                        .iter()
                        .zip(&density)
                        .map(|((_, w), d)| w * d)
                        .sum::<f64>();
            }
            total += half
                * rule
                    .iter()
                    .zip(product)
                    .map(|((t, w), p)| w * self.unnormalized(mid + half * t) * p)
                    .sum::<f64>();
        }
        total / self.normalizer
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Equal-tailed 95% credible interval, by bisection on the CDF.
    pub fn interval95(&self) -> [f64; 2] {
        [self.quantile(0.025), self.quantile(0.975)]
    }

    fn quantile(&self, q: f64) -> f64 {
        let (mut lo, mut hi) = (self.lo, self.hi());
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            if self.cdf(mid) < q {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }
}

/// `P(X_variant > X_control)`.
pub fn chance_to_beat(variant: &BetaPosterior, control: &BetaPosterior) -> f64 {
    probability_best_of(&[variant, control], 0)
}

/// `P(arm i has the largest rate)` for every arm.
pub fn probability_best(arms: &[BetaPosterior]) -> Vec<f64> {
    let refs: Vec<&BetaPosterior> = arms.iter().collect();
    (0..arms.len())
        .map(|i| probability_best_of(&refs, i))
        .collect()
}

/// `P(arms[i] has the largest rate)`.
///
/// Rates near 1 are worked on as 1 − X (is the smallest), since doubles near 1 are too coarse
/// for a posterior whose width is 1e-8.
fn probability_best_of(arms: &[&BetaPosterior], i: usize) -> f64 {
    let mean_rate = arms.iter().map(|a| a.mean).sum::<f64>() / arms.len() as f64;
    let p = if mean_rate <= 0.5 {
        arms[i].expect(&all_but(arms, i), |cdf| cdf)
    } else {
        let reflected: Vec<BetaPosterior> = arms.iter().map(|a| a.reflected()).collect();
        let refs: Vec<&BetaPosterior> = reflected.iter().collect();
        refs[i].expect(&all_but(&refs, i), |cdf| 1.0 - cdf)
    };
    p.clamp(0.0, 1.0)
}

fn all_but<'a>(arms: &[&'a BetaPosterior], i: usize) -> Vec<&'a BetaPosterior> {
    arms.iter()
        .enumerate()
        .filter(|&(j, _)| j != i)
        .map(|(_, a)| *a)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_matches_closed_forms() {
        // Beta(1, b): F(x) = 1 − (1 − x)^b.
        let p = BetaPosterior::new(1.0, 11.0);
        for x in [0.01, 0.1, 0.3] {
            let exact = 1.0 - (1.0_f64 - x).powi(11);
            assert!((p.cdf(x) - exact).abs() < 1e-14, "{x}");
        }
        // Beta(2, 2): F(x) = 3x² − 2x³.
        let p = BetaPosterior::new(2.0, 2.0);
        assert!((p.cdf(0.3) - (0.27 - 0.054)).abs() < 1e-14);
    }

    #[test]
    fn identical_posteriors_are_a_coin_flip() {
        let a = BetaPosterior::from_counts(30_000_000.0, 70_000_000.0);
        let b = BetaPosterior::from_counts(30_000_000.0, 70_000_000.0);
        assert!((chance_to_beat(&a, &b) - 0.5).abs() < 1e-12);
        let best = probability_best(&[a, b, BetaPosterior::from_counts(1.0, 1.0)]);
        assert!((best.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{best:?}");
    }

    #[test]
    fn far_apart_posteriors_are_certain() {
        let low = BetaPosterior::from_counts(10_000.0, 90_000.0);
        let high = BetaPosterior::from_counts(20_000.0, 80_000.0);
        assert_eq!(chance_to_beat(&high, &low), 1.0);
        assert_eq!(chance_to_beat(&low, &high), 0.0);
    }
}

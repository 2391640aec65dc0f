//! Gauss–Legendre quadrature, the one integration rule the statistics use.

use std::sync::OnceLock;

const NODES: usize = 20;

/// Nodes and weights of the `NODES`-point Gauss–Legendre rule on [−1, 1] (Newton's method on
/// the Legendre polynomial, computed once).
pub fn gauss_legendre() -> &'static [(f64, f64)] {
    static RULE: OnceLock<Vec<(f64, f64)>> = OnceLock::new();
    RULE.get_or_init(|| {
        let n = NODES;
        (0..n)
            .map(|i| {
                let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
                let mut derivative = 0.0;
                for _ in 0..100 {
                    let (mut p0, mut p1) = (1.0, x);
                    for k in 2..=n {
                        let k = k as f64;
                        let p2 = ((2.0 * k - 1.0) * x * p1 - (k - 1.0) * p0) / k;
                        p0 = p1;
                        p1 = p2;
                    }
                    derivative = n as f64 * (x * p1 - p0) / (x * x - 1.0);
                    let step = p1 / derivative;
                    x -= step;
                    if step.abs() < 1e-16 {
                        break;
                    }
                }
                (x, 2.0 / ((1.0 - x * x) * derivative * derivative))
            })
            .collect()
    })
}

/// `∫ f` over `[start, end]` with one application of the rule.
pub fn integrate(start: f64, end: f64, f: impl Fn(f64) -> f64) -> f64 {
    let (half, mid) = (0.5 * (end - start), 0.5 * (end + start));
    gauss_legendre()
        .iter()
        .map(|&(node, weight)| weight * f(mid + half * node))
        .sum::<f64>()
        * half
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_integrates_polynomials_exactly() {
        let rule = gauss_legendre();
        let weights: f64 = rule.iter().map(|(_, w)| w).sum();
        assert!((weights - 2.0).abs() < 1e-14);
        let x38: f64 = rule.iter().map(|(x, w)| w * x.powi(38)).sum();
        assert!((x38 - 2.0 / 39.0).abs() < 1e-14);
    }
}

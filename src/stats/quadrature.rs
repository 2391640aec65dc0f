//! Gauss–Legendre quadrature, the one integration rule the statistics use.

use std::sync::OnceLock;

pub const NODES: usize = 20;

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

/// `W[k][m] = ∫_{−1}^{x_k} L_m(t) dt`, with `L_m` the Lagrange basis on the rule's nodes: given
/// `f` at the nodes of a segment, `half · Σ_m W[k][m] f(x_m)` is `∫` from the segment's start to
/// its k-th node, exact for polynomials of degree < `NODES` (one set of density values then
/// serves a running CDF at every node).
pub fn partial_weights() -> &'static [[f64; NODES]; NODES] {
    static WEIGHTS: OnceLock<[[f64; NODES]; NODES]> = OnceLock::new();
    WEIGHTS.get_or_init(|| {
        let rule = gauss_legendre();
        let nodes: Vec<f64> = rule.iter().map(|(x, _)| *x).collect();
        // Barycentric weights of the nodes.
        let lambda: Vec<f64> = (0..NODES)
            .map(|m| {
                1.0 / (0..NODES)
                    .filter(|&j| j != m)
                    .map(|j| nodes[m] - nodes[j])
                    .product::<f64>()
            })
            .collect();
        let lagrange = |m: usize, t: f64| -> f64 {
            if let Some(j) = nodes.iter().position(|&x| x == t) {
                return f64::from(u8::from(j == m));
            }
            let terms: Vec<f64> = (0..NODES).map(|j| lambda[j] / (t - nodes[j])).collect();
            terms[m] / terms.iter().sum::<f64>()
        };
        let mut weights = [[0.0; NODES]; NODES];
        for (k, row) in weights.iter_mut().enumerate() {
            let scale = 0.5 * (nodes[k] + 1.0);
            for (m, w) in row.iter_mut().enumerate() {
                // The rule itself is exact for these degree-19 integrands.
                *w = scale
                    * rule
                        .iter()
                        .map(|&(t, wq)| wq * lagrange(m, -1.0 + scale * (t + 1.0)))
                        .sum::<f64>();
            }
        }
        weights
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
    fn partial_weights_integrate_from_the_start_to_each_node() {
        let rule = gauss_legendre();
        let values: Vec<f64> = rule.iter().map(|(x, _)| x.powi(7) + 2.0 * x).collect();
        for (k, row) in partial_weights().iter().enumerate() {
            let x: f64 = rule[k].0;
            let exact = (x.powi(8) - 1.0) / 8.0 + (x * x - 1.0);
            let got: f64 = row.iter().zip(&values).map(|(w, v)| w * v).sum();
            assert!((got - exact).abs() < 1e-13, "{k}: {got} vs {exact}");
        }
    }

    #[test]
    fn the_rule_integrates_polynomials_exactly() {
        let rule = gauss_legendre();
        let weights: f64 = rule.iter().map(|(_, w)| w).sum();
        assert!((weights - 2.0).abs() < 1e-14);
        let x38: f64 = rule.iter().map(|(x, w)| w * x.powi(38)).sum();
        assert!((x38 - 2.0 / 39.0).abs() < 1e-14);
    }
}

//! Group-sequential testing with Lan–DeMets O'Brien–Fleming alpha spending: an experiment with a
//! planned number of listeners is tested at pre-set fractions of it (its *looks*), and the
//! boundaries are set so the chance of a false positive over all looks together is exactly α.
//! Unlike the mSPRT, which is valid at any stopping time but conservative at every finite one,
//! this spends all of α over the planned looks; reading the report more often adds no looks.
//!
//! Boundaries come from the Armitage–McPherson–Rowe recursion on the score scale
//! `B_k = Z_k √t_k` (independent normal increments of variance `t_k − t_{k−1}`): the density of
//! paths that have not crossed yet is carried from look to look by Gauss–Legendre quadrature,
//! and each boundary is found by bisection so the crossing probability at that look equals the
//! alpha spent there.

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock},
};

use statrs::function::erf::erfc;

use super::{quadrature::gauss_legendre, special::normal_two_sided};

/// Panels per continuation region; with 20 nodes each, 640 nodes carry the density.
const PANELS: usize = 32;

/// `Φ⁻¹(1 − 0.0125)`: the O'Brien–Fleming spending quantile for α/2 = 0.025 per side.
const Z_98750: f64 = 2.241_402_727_604_947;

/// Two-sided α spent by information fraction `t`: O'Brien–Fleming-type spending of 0.025 per
/// side, `2 · (2 − 2Φ(z_{0.0125} / √t))` (the convention of R's ldbounds and gsDesign, so
/// boundaries can be checked against them). Spends 0.05 in all at t = 1.
pub fn spent(t: f64) -> f64 {
    2.0 * normal_two_sided(Z_98750 / t.sqrt())
}

/// Upper normal tail `P(Z > x)`.
fn upper(x: f64) -> f64 {
    0.5 * erfc(x / std::f64::consts::SQRT_2)
}

fn normal_density(x: f64, variance: f64) -> f64 {
    (-x * x / (2.0 * variance)).exp() / (2.0 * std::f64::consts::PI * variance).sqrt()
}

/// Two-sided z boundaries at the information fractions `fractions` (strictly increasing, in
/// (0, 1]), for an overall α of 0.05: reject at look k when |Z_k| ≥ the k-th boundary.
pub fn boundaries(fractions: &[f64]) -> Vec<f64> {
    assert!(
        fractions.windows(2).all(|w| w[0] < w[1]) && fractions.iter().all(|&t| t > 0.0 && t <= 1.0),
        "fractions must increase within (0, 1]"
    );
    let rule = gauss_legendre();
    let mut out = Vec::with_capacity(fractions.len());
    // The not-yet-crossed density at the previous look, on its nodes: (x, weight × density).
    let mut carried: Vec<(f64, f64)> = Vec::new();
    let (mut previous_t, mut previous_spent) = (0.0, 0.0);
    for &t in fractions {
        let step = t - previous_t;
        let target = spent(t) - previous_spent;
        // Crossing probability at this look for a score boundary b.
        let crossing = |b: f64| -> f64 {
            if carried.is_empty() {
                2.0 * upper(b / step.sqrt())
            } else {
                carried
                    .iter()
                    .map(|&(y, mass)| {
                        mass * (upper((b - y) / step.sqrt()) + upper((b + y) / step.sqrt()))
                    })
                    .sum()
            }
        };
        let (mut lo, mut hi) = (0.0, 40.0 * t.sqrt());
        for _ in 0..64 {
            let mid = 0.5 * (lo + hi);
            if crossing(mid) > target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let b = 0.5 * (lo + hi);
        out.push(b / t.sqrt());
        // Carry the density of paths still inside (−b, b) to this look's nodes.
        let width = 2.0 * b / PANELS as f64;
        let mut next = Vec::with_capacity(PANELS * rule.len());
        for panel in 0..PANELS {
            let (start, half) = (-b + width * panel as f64, 0.5 * width);
            for &(node, weight) in rule {
                let x = start + half * (node + 1.0);
                let density = if carried.is_empty() {
                    normal_density(x, step)
                } else {
                    carried
                        .iter()
                        .map(|&(y, mass)| mass * normal_density(x - y, step))
                        .sum()
                };
                next.push((x, weight * half * density));
            }
        }
        carried = next;
        previous_t = t;
        previous_spent = spent(t);
    }
    out
}

/// Boundaries for `looks` equally spaced looks, computed once per count (tens of milliseconds
/// each) and kept: every experiment with the same number of looks shares them.
pub fn equally_spaced(looks: u32) -> Vec<f64> {
    static CACHE: OnceLock<Mutex<HashMap<u32, Vec<f64>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(found) = cache.lock().expect("boundary cache").get(&looks) {
        return found.clone();
    }
    let fractions: Vec<f64> = (1..=looks)
        .map(|k| f64::from(k) / f64::from(looks))
        .collect();
    let computed = boundaries(&fractions);
    cache
        .lock()
        .expect("boundary cache")
        .insert(looks, computed.clone());
    computed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::special::Z_975;

    #[test]
    fn one_look_at_the_end_is_the_fixed_test() {
        let b = boundaries(&[1.0]);
        assert!((b[0] - Z_975).abs() < 1e-9, "{b:?}");
    }

    #[test]
    fn boundaries_match_published_obrien_fleming_spending_values() {
        // Lan–DeMets O'Brien–Fleming spending, 5 equally spaced looks, two-sided α = 0.05:
        // 4.877, 3.357, 2.680, 2.290, 2.031 (as tabulated by R's gsDesign/ldbounds).
        let b = boundaries(&[0.2, 0.4, 0.6, 0.8, 1.0]);
        for (got, want) in b.iter().zip([4.877, 3.357, 2.680, 2.290, 2.031]) {
            assert!((got - want).abs() < 6e-4, "{b:?}");
        }
    }
}

//! Always-valid inference for peeking: the mixture sequential probability ratio test (mSPRT,
//! Johari, Pekelis & Walsh, "Always Valid Inference", 2017) for a difference of two rates.
//!
//! With `θ̂` the observed difference, `V` its (unpooled) variance and a normal mixture of
//! standard deviation `τ` over the true difference, the likelihood ratio against θ = θ0 is
//! `Λ = √(V / (V + τ²)) · exp(τ² (θ̂ − θ0)² / (2 V (V + τ²)))`. `Λ` is a martingale under the null,
//! so by Ville's inequality `P(Λ ever ≥ 1/α) ≤ α`: the p-value `min(1, 1/Λ)` and the
//! confidence sequence `θ̂ ± √(V (V + τ²) / τ² · (2 ln(1/α) + ln((V + τ²) / V)))` stay valid
//! however often the report is read and whenever the experiment is stopped. The price is
//! width: at a fixed sample size they are wider than the fixed-horizon z-test and interval.

use serde::Serialize;
use utoipa::ToSchema;

/// Default `τ`, the spread of rate differences the test is tuned to find (one point of rate).
pub const DEFAULT_MIXTURE_SD: f64 = 0.01;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct AlwaysValid {
    /// Valid at any stopping time: reject at level α as soon as it is ≤ α.
    pub p_value: f64,
    /// 95% confidence sequence for the difference (variant − control).
    pub diff_cs95: [f64; 2],
    /// The mixture standard deviation `τ` used.
    pub mixture_sd: f64,
}

/// mSPRT for `rate_variant − rate_control` from counts.
pub fn msprt(
    (variant_successes, variant_trials): (u64, u64),
    (control_successes, control_trials): (u64, u64),
    mixture_sd: f64,
) -> AlwaysValid {
    let rate = |s: u64, n: u64| s as f64 / n as f64;
    let (pv, pc) = (
        rate(variant_successes, variant_trials),
        rate(control_successes, control_trials),
    );
    let variance =
        pv * (1.0 - pv) / variant_trials as f64 + pc * (1.0 - pc) / control_trials as f64;
    let diff = pv - pc;
    let tau2 = mixture_sd * mixture_sd;
    if variance == 0.0 {
        // Every observation identical in both arms so far: no evidence either way.
        return AlwaysValid {
            p_value: 1.0,
            diff_cs95: [-1.0, 1.0],
            mixture_sd,
        };
    }
    let ln_ratio = 0.5 * (variance / (variance + tau2)).ln()
        + tau2 * diff * diff / (2.0 * variance * (variance + tau2));
    let radius = (variance * (variance + tau2) / tau2
        * (2.0 * (1.0 / 0.05_f64).ln() + ((variance + tau2) / variance).ln()))
    .sqrt();
    AlwaysValid {
        p_value: (-ln_ratio).exp().min(1.0),
        diff_cs95: [(diff - radius).max(-1.0), (diff + radius).min(1.0)],
        mixture_sd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_difference_is_no_evidence() {
        let result = msprt((500, 5000), (500, 5000), DEFAULT_MIXTURE_SD);
        assert_eq!(result.p_value, 1.0);
        assert!(result.diff_cs95[0] < 0.0 && result.diff_cs95[1] > 0.0);
    }

    #[test]
    fn the_sequence_excludes_zero_exactly_when_p_is_below_five_percent() {
        for (s, n) in [(560, 5000), (600, 5000), (700, 5000), (540, 5000)] {
            let result = msprt((s, n), (500, 5000), DEFAULT_MIXTURE_SD);
            assert_eq!(
                result.diff_cs95[0] > 0.0,
                result.p_value < 0.05,
                "{result:?}"
            );
        }
    }
}

//! Conversion-rate comparisons, each variant against the control (DESIGN §5): Wilson intervals,
//! unpooled Wald interval and pooled z-test for the difference, delta-method relative lift with
//! Welch degrees of freedom, exact chance to beat control, Holm and Benjamini–Hochberg
//! adjustments, Pearson's chi-square over all variants and a sample-ratio-mismatch check.

use serde::Serialize;
use utoipa::ToSchema;

use super::{
    adjust::adjust_rows,
    posterior::{chance_to_beat, BetaPosterior},
    special::{chi2_sf, normal_two_sided, t_quantile, Z_975},
    validate_arms, InputError,
};

/// Below this SRM p-value the observed split is reported as a mismatch.
pub const SRM_ALPHA: f64 = 0.001;

/// Observed trials and successes of one variant.
#[derive(Debug, Clone)]
pub struct Counts {
    pub name: String,
    pub trials: u64,
    pub successes: u64,
    /// Intended share of traffic (any positive scale; default equal).
    pub weight: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProportionsReport {
    /// Name of the control variant.
    pub control: String,
    /// Every variant in request order, the control included (its comparison fields are null).
    pub variants: Vec<VariantRow>,
    pub chi_square: ChiSquare,
    pub srm: SampleRatio,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VariantRow {
    pub name: String,
    pub trials: u64,
    pub successes: u64,
    pub is_control: bool,
    /// successes / trials.
    pub rate: f64,
    /// Wilson score interval.
    pub rate_ci95: [f64; 2],
    /// rate − control rate.
    pub diff: Option<f64>,
    /// Unpooled Wald interval of `diff`.
    pub diff_ci95: Option<[f64; 2]>,
    /// Two-sided two-proportion z-test, pooled standard error (1 when nobody or everybody
    /// converted in both: there is nothing to test).
    pub p_value: Option<f64>,
    /// diff / control rate; null when the control rate is 0.
    pub relative_lift: Option<f64>,
    /// Delta-method interval with Welch–Satterthwaite degrees of freedom.
    pub relative_lift_ci95: Option<[f64; 2]>,
    /// P(variant rate > control rate) under Beta(1 + successes, 1 + failures) posteriors.
    pub chance_to_beat_control: Option<f64>,
    /// `p_value` adjusted across the variants by Holm's method.
    pub holm_p_value: Option<f64>,
    /// `p_value` adjusted across the variants by Benjamini–Hochberg.
    pub bh_p_value: Option<f64>,
}

/// Pearson's chi-square test of independence over the variants × (success, failure) table.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChiSquare {
    pub statistic: f64,
    pub dof: u32,
    pub p_value: f64,
}

/// Chi-square goodness of fit of the observed trials against the intended weights.
#[derive(Debug, Serialize, ToSchema)]
pub struct SampleRatio {
    pub statistic: f64,
    pub dof: u32,
    pub p_value: f64,
    /// `p_value < 0.001`: the split is not what was intended; distrust the comparisons.
    pub mismatch: bool,
    /// Intended share of each variant, in request order.
    pub expected_shares: Vec<f64>,
}

pub fn compare(control: &str, arms: &[Counts]) -> Result<ProportionsReport, InputError> {
    let control_index = validate_arms(control, arms.iter().map(|a| a.name.as_str()))?;
    for arm in arms {
        if arm.trials == 0 {
            return Err(InputError::Counts(format!(
                "variant {:?} has 0 trials; every variant needs at least one",
                arm.name
            )));
        }
        if arm.successes > arm.trials {
            return Err(InputError::Counts(format!(
                "variant {:?} has more successes ({}) than trials ({})",
                arm.name, arm.successes, arm.trials
            )));
        }
    }
    let shares = expected_shares(arms)?;
    let control_arm = &arms[control_index];
    let control_posterior = posterior(control_arm);

    let mut rows: Vec<VariantRow> = arms
        .iter()
        .enumerate()
        .map(|(i, arm)| {
            let mut row = VariantRow {
                name: arm.name.clone(),
                trials: arm.trials,
                successes: arm.successes,
                is_control: i == control_index,
                rate: rate(arm),
                rate_ci95: wilson(arm.successes as f64, arm.trials as f64),
                diff: None,
                diff_ci95: None,
                p_value: None,
                relative_lift: None,
                relative_lift_ci95: None,
                chance_to_beat_control: None,
                holm_p_value: None,
                bh_p_value: None,
            };
            if i != control_index {
                let diff = rate(arm) - rate(control_arm);
                let half = Z_975 * (variance(arm) + variance(control_arm)).sqrt();
                row.diff = Some(diff);
                row.diff_ci95 = Some([diff - half, diff + half]);
                row.p_value = Some(pooled_z_test(arm, control_arm));
                if let Some((lift, interval)) = relative_lift(arm, control_arm) {
                    row.relative_lift = Some(lift);
                    row.relative_lift_ci95 = Some(interval);
                }
                row.chance_to_beat_control =
                    Some(chance_to_beat(&posterior(arm), &control_posterior));
            }
            row
        })
        .collect();

    adjust_rows(
        &mut rows,
        |row| row.p_value,
        |row, holm, bh| {
            row.holm_p_value = Some(holm);
            row.bh_p_value = Some(bh);
        },
    );

    Ok(ProportionsReport {
        control: control_arm.name.clone(),
        variants: rows,
        chi_square: independence(arms),
        srm: sample_ratio(arms, shares),
    })
}

fn rate(arm: &Counts) -> f64 {
    arm.successes as f64 / arm.trials as f64
}

/// Variance of the rate estimate, p(1 − p)/n.
fn variance(arm: &Counts) -> f64 {
    let p = rate(arm);
    p * (1.0 - p) / arm.trials as f64
}

fn posterior(arm: &Counts) -> BetaPosterior {
    BetaPosterior::from_counts(arm.successes as f64, (arm.trials - arm.successes) as f64)
}

pub fn wilson(successes: f64, trials: f64) -> [f64; 2] {
    let p = successes / trials;
    let z2 = Z_975 * Z_975;
    let denominator = 1.0 + z2 / trials;
    let center = (p + z2 / (2.0 * trials)) / denominator;
    let half = Z_975 / denominator * (p * (1.0 - p) / trials + z2 / (4.0 * trials * trials)).sqrt();
    [(center - half).max(0.0), (center + half).min(1.0)]
}

fn pooled_z_test(variant: &Counts, control: &Counts) -> f64 {
    z_test(
        (variant.successes, variant.trials),
        (control.successes, control.trials),
    )
}

/// Two-sided two-proportion z-test with pooled standard error, from (successes, trials)
/// pairs with trials ≥ 1; 1 when there is no variation at all.
pub fn z_test(variant: (u64, u64), control: (u64, u64)) -> f64 {
    normal_two_sided(z_statistic(variant, control))
}

/// The pooled two-proportion z statistic (variant − control); 0 when there is no variation.
pub fn z_statistic((sv, nv): (u64, u64), (sc, nc): (u64, u64)) -> f64 {
    let (nv, nc) = (nv as f64, nc as f64);
    let pooled = (sv + sc) as f64 / (nv + nc);
    let se = (pooled * (1.0 - pooled) * (1.0 / nv + 1.0 / nc)).sqrt();
    if se == 0.0 {
        return 0.0;
    }
    (sv as f64 / nv - sc as f64 / nc) / se
}

/// Relative lift and its delta-method interval; `None` when the control rate is 0.
fn relative_lift(variant: &Counts, control: &Counts) -> Option<(f64, [f64; 2])> {
    let (pv, pc) = (rate(variant), rate(control));
    if pc == 0.0 {
        return None;
    }
    let lift = (pv - pc) / pc;
    let from_variant = variance(variant) / (pc * pc);
    let from_control = pv * pv * variance(control) / pc.powi(4);
    let total = from_variant + from_control;
    if total == 0.0 {
        return Some((lift, [lift, lift]));
    }
    // A term with n − 1 = 0 always has zero variance, so it adds nothing.
    let share = |term: f64, n: u64| {
        if term > 0.0 {
            term * term / (n - 1) as f64
        } else {
            0.0
        }
    };
    let dof =
        total * total / (share(from_variant, variant.trials) + share(from_control, control.trials));
    let half = t_quantile(0.975, dof) * total.sqrt();
    Some((lift, [lift - half, lift + half]))
}

fn independence(arms: &[Counts]) -> ChiSquare {
    let dof = (arms.len() - 1) as u32;
    let total: f64 = arms.iter().map(|a| a.trials as f64).sum();
    let successes: f64 = arms.iter().map(|a| a.successes as f64).sum();
    let failures = total - successes;
    if successes == 0.0 || failures == 0.0 {
        // One outcome only: no variation to relate to the variant.
        return ChiSquare {
            statistic: 0.0,
            dof,
            p_value: 1.0,
        };
    }
    let statistic = arms
        .iter()
        .map(|arm| {
            let n = arm.trials as f64;
            let (expected_s, expected_f) = (n * successes / total, n * failures / total);
            let s = arm.successes as f64;
            let f = n - s;
            (s - expected_s).powi(2) / expected_s + (f - expected_f).powi(2) / expected_f
        })
        .sum();
    ChiSquare {
        statistic,
        dof,
        p_value: chi2_sf(statistic, dof),
    }
}

fn expected_shares(arms: &[Counts]) -> Result<Vec<f64>, InputError> {
    let given = arms.iter().filter(|a| a.weight.is_some()).count();
    if given == 0 {
        return Ok(vec![1.0 / arms.len() as f64; arms.len()]);
    }
    if given != arms.len() {
        return Err(InputError::Weights(
            "give a weight for every variant or for none (none means an equal split)".into(),
        ));
    }
    let weights: Vec<f64> = arms.iter().map(|a| a.weight.unwrap_or_default()).collect();
    if weights.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
        return Err(InputError::Weights(
            "weights must be positive, finite numbers".into(),
        ));
    }
    let sum: f64 = weights.iter().sum();
    Ok(weights.into_iter().map(|w| w / sum).collect())
}

fn sample_ratio(arms: &[Counts], shares: Vec<f64>) -> SampleRatio {
    let total: f64 = arms.iter().map(|a| a.trials as f64).sum();
    let statistic = arms
        .iter()
        .zip(&shares)
        .map(|(arm, share)| {
            let expected = total * share;
            (arm.trials as f64 - expected).powi(2) / expected
        })
        .sum();
    let dof = (arms.len() - 1) as u32;
    let p_value = chi2_sf(statistic, dof);
    SampleRatio {
        statistic,
        dof,
        p_value,
        mismatch: p_value < SRM_ALPHA,
        expected_shares: shares,
    }
}

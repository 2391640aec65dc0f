//! Welch's t-test of each variant's mean against the control's, from summary statistics
//! (as `scipy.stats.ttest_ind_from_stats(..., equal_var=False)`).

use serde::Serialize;
use utoipa::ToSchema;

use super::{
    adjust::adjust_rows,
    special::{t_quantile, t_two_sided},
    validate_arms, InputError,
};

/// One variant's sample size, mean and standard deviation (ddof = 1).
#[derive(Debug, Clone)]
pub struct Summary {
    pub name: String,
    pub n: u64,
    pub mean: f64,
    pub sd: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeansReport {
    pub control: String,
    /// Every variant in request order, the control included (its test fields are null).
    pub variants: Vec<MeanRow>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeanRow {
    pub name: String,
    pub n: u64,
    pub mean: f64,
    pub sd: f64,
    pub is_control: bool,
    /// mean − control mean.
    pub diff: Option<f64>,
    /// Welch interval: diff ± t(0.975, dof) · se.
    pub diff_ci95: Option<[f64; 2]>,
    /// Welch–Satterthwaite degrees of freedom.
    pub dof: Option<f64>,
    pub t: Option<f64>,
    /// Two-sided.
    pub p_value: Option<f64>,
    pub holm_p_value: Option<f64>,
    pub bh_p_value: Option<f64>,
}

pub fn compare(control: &str, arms: &[Summary]) -> Result<MeansReport, InputError> {
    let control_index = validate_arms(control, arms.iter().map(|a| a.name.as_str()))?;
    for arm in arms {
        if arm.n < 2 {
            return Err(InputError::Counts(format!(
                "variant {:?} has n = {}; a standard deviation needs at least 2 observations",
                arm.name, arm.n
            )));
        }
        if !arm.mean.is_finite() || !arm.sd.is_finite() || arm.sd < 0.0 {
            return Err(InputError::Counts(format!(
                "variant {:?} needs a finite mean and a finite, non-negative sd",
                arm.name
            )));
        }
    }
    let control_arm = &arms[control_index];
    let mut rows = Vec::with_capacity(arms.len());
    for (i, arm) in arms.iter().enumerate() {
        let mut row = MeanRow {
            name: arm.name.clone(),
            n: arm.n,
            mean: arm.mean,
            sd: arm.sd,
            is_control: i == control_index,
            diff: None,
            diff_ci95: None,
            dof: None,
            t: None,
            p_value: None,
            holm_p_value: None,
            bh_p_value: None,
        };
        if i != control_index {
            let (a, b) = (squared_se(arm), squared_se(control_arm));
            if a + b == 0.0 {
                return Err(InputError::NoVariance(format!(
                    "variant {:?} and the control both have sd 0; a t-test needs spread",
                    arm.name
                )));
            }
            let diff = arm.mean - control_arm.mean;
            let se = (a + b).sqrt();
            // Welch–Satterthwaite, (a+b)² / (a²/(n−1) + b²/(m−1)), written in shares of a+b
            // so that large variances do not overflow the squares.
            let (share_a, share_b) = (a / (a + b), b / (a + b));
            let dof = 1.0
                / (share_a * share_a / (arm.n - 1) as f64
                    + share_b * share_b / (control_arm.n - 1) as f64);
            let t = diff / se;
            if ![diff, se, dof, t].iter().all(|v| v.is_finite()) {
                return Err(InputError::Overflow(format!(
                    "variant {:?} against the control overflows double precision (a mean \
                     difference or squared standard error beyond ±1.8e308); rescale the data",
                    arm.name
                )));
            }
            let half = t_quantile(0.975, dof) * se;
            row.diff = Some(diff);
            row.diff_ci95 = Some([diff - half, diff + half]);
            row.dof = Some(dof);
            row.t = Some(t);
            row.p_value = Some(t_two_sided(t, dof));
        }
        rows.push(row);
    }
    adjust_rows(
        &mut rows,
        |row| row.p_value,
        |row, holm, bh| {
            row.holm_p_value = Some(holm);
            row.bh_p_value = Some(bh);
        },
    );
    Ok(MeansReport {
        control: control_arm.name.clone(),
        variants: rows,
    })
}

/// sd² / n, the squared standard error of the mean.
fn squared_se(arm: &Summary) -> f64 {
    arm.sd * arm.sd / arm.n as f64
}

#[cfg(test)]
mod overflow_tests {
    use super::*;

    fn arm(name: &str, mean: f64, sd: f64) -> Summary {
        Summary {
            name: name.into(),
            n: 50,
            mean,
            sd,
        }
    }

    #[test]
    fn inputs_that_overflow_are_refused_not_reported_significant() {
        for (control, variant) in [
            (arm("a", -1e308, 1.0), arm("b", 1e308, 1.0)),
            (arm("a", 0.0, 1e200), arm("b", 1.0, 1.0)),
        ] {
            let err = compare("a", &[control, variant]).unwrap_err();
            assert!(matches!(err, InputError::Overflow(_)), "{err}");
        }
        // Large but representable inputs still get an answer.
        let report = compare("a", &[arm("a", -1e150, 1e140), arm("b", 1e150, 1e140)]).unwrap();
        assert!(report.variants[1].p_value.unwrap() < 1e-10);
    }
}

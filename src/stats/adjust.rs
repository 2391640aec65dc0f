//! p-values adjusted for testing several variants against one control (as statsmodels'
//! `multipletests(method="holm" | "fdr_bh")`).

/// Holm's step-down adjustment (controls the family-wise error rate).
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let order = ascending(p_values);
    let mut adjusted = vec![0.0; m];
    let mut running_max: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running_max = running_max.max(((m - rank) as f64 * p_values[i]).min(1.0));
        adjusted[i] = running_max;
    }
    adjusted
}

/// Benjamini–Hochberg's step-up adjustment (controls the false discovery rate).
pub fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let order = ascending(p_values);
    let mut adjusted = vec![0.0; m];
    let mut running_min: f64 = 1.0;
    for (rank, &i) in order.iter().enumerate().rev() {
        running_min = running_min.min(m as f64 / (rank + 1) as f64 * p_values[i]);
        adjusted[i] = running_min;
    }
    adjusted
}

/// Adjusts the p-values that `rows` carry (rows without one, such as the control, are left
/// out) and hands each row its Holm and Benjamini–Hochberg values.
pub fn adjust_rows<R>(
    rows: &mut [R],
    p_value: impl Fn(&R) -> Option<f64>,
    mut set: impl FnMut(&mut R, f64, f64),
) {
    let tested: Vec<(usize, f64)> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, row)| p_value(row).map(|p| (i, p)))
        .collect();
    let p_values: Vec<f64> = tested.iter().map(|&(_, p)| p).collect();
    for ((&(i, _), holm), bh) in tested
        .iter()
        .zip(holm(&p_values))
        .zip(benjamini_hochberg(&p_values))
    {
        set(&mut rows[i], holm, bh);
    }
}

fn ascending(p_values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..p_values.len()).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_statsmodels_on_a_textbook_example() {
        // multipletests([0.01, 0.04, 0.03, 0.005], method=...)[1]
        let p = [0.01, 0.04, 0.03, 0.005];
        assert_eq!(holm(&p), vec![0.03, 0.06, 0.06, 0.02]);
        let bh = benjamini_hochberg(&p);
        for (got, want) in bh.iter().zip([0.02, 0.04, 0.04, 0.02]) {
            assert!((got - want).abs() < 1e-15, "{bh:?}");
        }
    }

    #[test]
    fn one_test_is_left_alone() {
        assert_eq!(holm(&[0.2]), vec![0.2]);
        assert_eq!(benjamini_hochberg(&[0.2]), vec![0.2]);
    }
}

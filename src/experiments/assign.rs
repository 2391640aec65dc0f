//! Stable assignment: a listener's variant is a pure function of the experiment and user ids
//! (SHA-256 of both, read as a number in [0, 1), against the cumulative weights), so every
//! process agrees without storing or sharing anything, and a listener never switches variant.

use sha2::{Digest, Sha256};

use super::Variant;

/// Where `user_id` falls in [0, 1) for `experiment_id`.
pub fn bucket(experiment_id: &str, user_id: &str) -> f64 {
    let digest = Sha256::digest(format!("{experiment_id}:{user_id}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 53 bits: every value is exactly representable and < 1.
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

/// The variant whose cumulative weight range holds the bucket (weights sum to 1).
pub fn variant_for<'a>(variants: &'a [Variant], experiment_id: &str, user_id: &str) -> &'a Variant {
    let point = bucket(experiment_id, user_id);
    let mut edge = 0.0;
    for variant in variants {
        edge += variant.weight.unwrap_or(0.0);
        if point < edge {
            return variant;
        }
    }
    variants.last().expect("experiments have variants")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variants(weights: &[f64]) -> Vec<Variant> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Variant {
                name: format!("v{i}"),
                weight: Some(w),
                strategy: "hybrid".into(),
            })
            .collect()
    }

    #[test]
    fn assignment_is_stable_and_follows_the_weights() {
        let vs = variants(&[0.5, 0.3, 0.2]);
        let mut counts = [0usize; 3];
        for u in 0..30_000 {
            let user = format!("u_{u}");
            let v = variant_for(&vs, "exp_1", &user);
            assert_eq!(v, variant_for(&vs, "exp_1", &user), "stable");
            counts[v.name[1..].parse::<usize>().unwrap()] += 1;
        }
        for (count, share) in counts.iter().zip([0.5, 0.3, 0.2]) {
            let observed = *count as f64 / 30_000.0;
            assert!((observed - share).abs() < 0.015, "{counts:?}");
        }
    }

    #[test]
    fn experiments_assign_independently() {
        let vs = variants(&[0.5, 0.5]);
        let same = (0..2_000)
            .filter(|u| {
                let user = format!("u_{u}");
                variant_for(&vs, "a", &user).name == variant_for(&vs, "b", &user).name
            })
            .count();
        assert!((900..1_100).contains(&same), "{same}");
    }
}

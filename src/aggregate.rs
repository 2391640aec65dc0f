//! Group aggregation: turning every member's predicted liking of each candidate into one list
//! for the group, and measuring how well that list serves each member.
//!
//! `utilities[m][i]` is member m's predicted probability of liking candidate i (0–1). A member's
//! *satisfaction* with a list L of k tracks is Σ_{i∈L} u_m(i) divided by the same sum over the k
//! candidates that member would have picked alone, so 1 means "as good as my own list". The
//! group's *harmony* is the least and the average member satisfaction.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Highest mean utility.
    Average,
    /// Highest utility of the least happy member: nobody is made miserable.
    LeastMisery,
    /// Highest utility of the happiest member.
    MostPleasure,
    /// Greedy proportional fairness: each pick maximises Σ_m ln(ε + satisfaction_m), so a track
    /// for a member who has had little counts more than another one for a member who has had a
    /// lot.
    Fair,
}

impl Strategy {
    pub const ALL: [Strategy; 4] = [
        Strategy::Average,
        Strategy::LeastMisery,
        Strategy::MostPleasure,
        Strategy::Fair,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Average => "average",
            Strategy::LeastMisery => "least_misery",
            Strategy::MostPleasure => "most_pleasure",
            Strategy::Fair => "fair",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Keeps ln(ε + s) finite for a member with nothing yet; small enough that giving such a member
/// anything dominates.
const FAIRNESS_EPSILON: f64 = 1e-3;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct Harmony {
    /// Satisfaction (0–1) of the member the list serves worst.
    pub least: f64,
    /// Mean satisfaction (0–1) over the members scored.
    pub average: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Candidate indices in the order picked.
    pub picks: Vec<usize>,
    /// Each member's satisfaction with the picked list.
    pub satisfaction: Vec<f64>,
    pub harmony: Harmony,
}

/// Picks `k` candidates for the members whose utilities are given (members × candidates, every
/// row the same length). Ties go to the lower candidate index, so the result is deterministic.
pub fn select(strategy: Strategy, utilities: &[Vec<f32>], k: usize) -> Selection {
    select_after(strategy, utilities, k, &[])
}

/// [`select`] for a session in progress: `served[m]` (0–1) is how much the session has already
/// given member m, as a satisfaction `fair` starts them with (so the least served are
/// favoured). The other strategies ignore it, and the reported satisfaction is the list's alone.
pub fn select_after(
    strategy: Strategy,
    utilities: &[Vec<f32>],
    k: usize,
    served: &[f64],
) -> Selection {
    let candidates = utilities.first().map_or(0, Vec::len);
    let k = k.min(candidates);
    let ideal: Vec<f64> = utilities.iter().map(|u| best_sum(u, k)).collect();
    let picks = match strategy {
        Strategy::Average => top_by(candidates, k, |i| {
            utilities.iter().map(|u| u[i] as f64).sum::<f64>() / utilities.len().max(1) as f64
        }),
        Strategy::LeastMisery => top_by(candidates, k, |i| {
            utilities
                .iter()
                .map(|u| u[i] as f64)
                .fold(f64::INFINITY, f64::min)
        }),
        Strategy::MostPleasure => top_by(candidates, k, |i| {
            utilities
                .iter()
                .map(|u| u[i] as f64)
                .fold(f64::NEG_INFINITY, f64::max)
        }),
        Strategy::Fair => proportionally_fair(utilities, &ideal, k, served),
    };
    let satisfaction: Vec<f64> = utilities
        .iter()
        .zip(&ideal)
        .map(|(u, &best)| ratio(picks.iter().map(|&i| u[i] as f64).sum(), best))
        .collect();
    let harmony = harmony(&satisfaction);
    Selection {
        picks,
        satisfaction,
        harmony,
    }
}

pub fn harmony(satisfaction: &[f64]) -> Harmony {
    if satisfaction.is_empty() {
        return Harmony {
            least: 0.0,
            average: 0.0,
        };
    }
    Harmony {
        least: satisfaction.iter().copied().fold(f64::INFINITY, f64::min),
        average: satisfaction.iter().sum::<f64>() / satisfaction.len() as f64,
    }
}

fn ratio(got: f64, best: f64) -> f64 {
    if best > 0.0 {
        (got / best).clamp(0.0, 1.0)
    } else {
        1.0
    }
}

/// Sum of the `k` largest utilities in one member's row.
fn best_sum(row: &[f32], k: usize) -> f64 {
    let mut best: Vec<f64> = row.iter().map(|&u| u as f64).collect();
    let k = k.min(best.len());
    if k == 0 {
        return 0.0;
    }
    // Only the k largest need an order (summed largest first, as a full sort would).
    if k < best.len() {
        best.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        best.truncate(k);
    }
    best.sort_unstable_by(|a, b| b.total_cmp(a));
    best.iter().sum()
}

fn top_by(candidates: usize, k: usize, score: impl Fn(usize) -> f64) -> Vec<usize> {
    let scores: Vec<f64> = (0..candidates).map(&score).collect();
    let mut order: Vec<usize> = (0..candidates).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

fn proportionally_fair(
    utilities: &[Vec<f32>],
    ideal: &[f64],
    k: usize,
    served: &[f64],
) -> Vec<usize> {
    let candidates = utilities.first().map_or(0, Vec::len);
    // What the session already gave each member, in the units of this list.
    let mut got: Vec<f64> = ideal
        .iter()
        .enumerate()
        .map(|(m, &best)| served.get(m).copied().unwrap_or(0.0).clamp(0.0, 1.0) * best)
        .collect();
    // Σ ln(factor) is compared as Π factor where a product cannot underflow (ln is increasing,
    // so the order is the same): no logarithm at all for rooms of up to FACTORS_PER_LOG
    // members. The logarithms were most of a refresh's aggregation time.
    let by_product = utilities.len() <= FACTORS_PER_LOG;
    let mut taken = vec![false; candidates];
    let mut picks = Vec::with_capacity(k);
    for _ in 0..k {
        let mut best: Option<(usize, f64)> = None;
        for i in (0..candidates).filter(|&i| !taken[i]) {
            let factors = utilities
                .iter()
                .zip(&got)
                .zip(ideal)
                .map(|((u, &g), &best)| FAIRNESS_EPSILON + ratio(g + u[i] as f64, best));
            let welfare = if by_product {
                factors.product()
            } else {
                log_welfare(factors)
            };
            if best.map_or(true, |(_, w)| welfare > w) {
                best = Some((i, welfare));
            }
        }
        let Some((i, _)) = best else { break };
        taken[i] = true;
        for (g, u) in got.iter_mut().zip(utilities) {
            *g += u[i] as f64;
        }
        picks.push(i);
    }
    picks
}

/// Factors multiplied before one logarithm is taken: each is at least `FAIRNESS_EPSILON`
/// (1e-3) and at most 1 + ε, so a run of this many stays within 1e-96..1.04, far from underflow.
const FACTORS_PER_LOG: usize = 32;

/// Σ ln(x) over the members' factors, as the logarithms of products of up to
/// `FACTORS_PER_LOG` factors: the same order of candidates for a fraction of the logarithms
/// (they were most of a refresh's aggregation time).
fn log_welfare(factors: impl Iterator<Item = f64>) -> f64 {
    let mut sum = 0.0;
    let mut product = 1.0;
    for (n, x) in factors.enumerate() {
        if n > 0 && n % FACTORS_PER_LOG == 0 {
            sum += f64::ln(product);
            product = 1.0;
        }
        product *= x;
    }
    sum + f64::ln(product)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opposed() -> Vec<Vec<f32>> {
        vec![vec![0.9, 0.5, 0.1, 0.2], vec![0.1, 0.5, 0.9, 0.2]]
    }

    #[test]
    fn strategies_differ_where_members_disagree() {
        let u = vec![vec![0.9, 0.5, 0.1, 0.2], vec![0.3, 0.5, 0.9, 0.2]];
        assert_eq!(select(Strategy::Average, &u, 1).picks, vec![0]);
        assert_eq!(select(Strategy::LeastMisery, &u, 1).picks, vec![1]);
        assert_eq!(select(Strategy::MostPleasure, &u, 1).picks, vec![0]);
        // Fair serves member 0's favourite, then member 1's, then the compromise.
        assert_eq!(select(Strategy::Fair, &u, 3).picks, vec![0, 2, 1]);
        // With symmetric tastes it starts with the compromise.
        assert_eq!(select(Strategy::Fair, &opposed(), 3).picks, vec![1, 0, 2]);
    }

    #[test]
    fn satisfaction_is_relative_to_each_members_own_list() {
        let u = opposed();
        let s = select(Strategy::MostPleasure, &u, 2);
        assert_eq!(s.picks, vec![0, 2]);
        // Member 0 would have picked 0.9 + 0.5 alone and got 0.9 + 0.1.
        assert!((s.satisfaction[0] - 1.0 / 1.4).abs() < 1e-6);
        assert!((s.satisfaction[1] - 1.0 / 1.4).abs() < 1e-6);
        assert!(s.harmony.least <= s.harmony.average);
    }

    #[test]
    fn fairness_lifts_the_least_satisfied_member() {
        // Member 0 agrees with the majority; member 2 is the odd one out.
        let u = vec![
            vec![0.9, 0.85, 0.8, 0.2, 0.1],
            vec![0.88, 0.86, 0.79, 0.25, 0.1],
            vec![0.1, 0.1, 0.15, 0.9, 0.8],
        ];
        let average = select(Strategy::Average, &u, 3);
        let fair = select(Strategy::Fair, &u, 3);
        assert!(fair.harmony.least > average.harmony.least + 0.2);
    }

    #[test]
    fn fair_over_the_session_favours_the_member_served_least_so_far() {
        let u = opposed();
        // On its own the list starts with the compromise…
        assert_eq!(select(Strategy::Fair, &u, 1).picks, vec![1]);
        // …but after a session that gave member 0 everything, member 1's favourite comes first.
        assert_eq!(
            select_after(Strategy::Fair, &u, 1, &[1.0, 0.0]).picks,
            vec![2]
        );
        assert_eq!(
            select_after(Strategy::Fair, &u, 1, &[0.0, 1.0]).picks,
            vec![0]
        );
        // The other strategies and the reported satisfaction ignore the session.
        let average = select_after(Strategy::Average, &u, 2, &[1.0, 0.0]);
        assert_eq!(average, select(Strategy::Average, &u, 2));
    }

    #[test]
    fn a_single_member_gets_their_own_top_list() {
        let u = vec![vec![0.2, 0.7, 0.4, 0.9]];
        for strategy in Strategy::ALL {
            let s = select(strategy, &u, 2);
            assert_eq!(s.picks, vec![3, 1], "{strategy:?}");
            assert!((s.harmony.least - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        assert!(select(Strategy::Fair, &[], 5).picks.is_empty());
        let s = select(Strategy::Fair, &[vec![0.0, 0.0]], 5);
        assert_eq!(s.picks.len(), 2);
        assert_eq!(s.harmony.least, 1.0);
    }

    /// Fair's greedy rule spelled out: each pick maximises Σ_m ln(ε + satisfaction_m), one
    /// logarithm per factor.
    fn fair_by_logarithms(utilities: &[Vec<f32>], k: usize) -> Vec<usize> {
        let n = utilities[0].len();
        let ideal: Vec<f64> = utilities.iter().map(|u| best_sum(u, k)).collect();
        let mut got = vec![0.0; utilities.len()];
        let mut picks = Vec::new();
        for _ in 0..k.min(n) {
            let welfare = |i: usize| -> f64 {
                utilities
                    .iter()
                    .zip(&got)
                    .zip(&ideal)
                    .map(|((u, g), best)| (FAIRNESS_EPSILON + ratio(g + u[i] as f64, *best)).ln())
                    .sum()
            };
            let pick = (0..n)
                .filter(|i| !picks.contains(i))
                .fold(None, |best: Option<(usize, f64)>, i| {
                    let w = welfare(i);
                    match best {
                        Some((_, b)) if b >= w => best,
                        _ => Some((i, w)),
                    }
                })
                .map(|(i, _)| i)
                .unwrap();
            for (g, u) in got.iter_mut().zip(utilities) {
                *g += u[pick] as f64;
            }
            picks.push(pick);
        }
        picks
    }

    #[test]
    fn fair_picks_what_the_sum_of_logarithms_picks_for_small_and_large_rooms() {
        // A fixed pseudo-random stream (64-bit LCG): varied utilities, the same every run.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        // Small rooms compare products, the largest take logarithms of chunks.
        for members in [1, 2, 5, 8, FACTORS_PER_LOG, FACTORS_PER_LOG + 1, 70] {
            for _ in 0..5 {
                let utilities: Vec<Vec<f32>> = (0..members)
                    .map(|_| (0..60).map(|_| next()).collect())
                    .collect();
                assert_eq!(
                    select(Strategy::Fair, &utilities, 10).picks,
                    fair_by_logarithms(&utilities, 10),
                    "{members} members"
                );
            }
        }
    }

    #[test]
    fn a_members_ideal_is_the_sum_of_their_best_k() {
        let row = [0.2, 0.9, 0.4, 0.9, 0.1];
        assert_eq!(best_sum(&row, 2), 0.9f32 as f64 + 0.9f32 as f64);
        assert_eq!(
            best_sum(&row, 3),
            0.9f32 as f64 + 0.9f32 as f64 + 0.4f32 as f64
        );
        let all = [0.9f32, 0.9, 0.4, 0.2, 0.1]
            .iter()
            .map(|&u| u as f64)
            .sum::<f64>();
        assert_eq!(best_sum(&row, 9), all);
        assert_eq!(best_sum(&row, 0), 0.0);
        assert_eq!(best_sum(&[], 3), 0.0);
    }

    #[test]
    fn log_welfare_is_the_sum_of_logarithms_even_for_the_largest_rooms() {
        let factors: Vec<f64> = (0..500).map(|m| 1e-3 + (m % 7) as f64 / 7.0).collect();
        let sum: f64 = factors.iter().map(|x| x.ln()).sum();
        let welfare = log_welfare(factors.iter().copied());
        assert!(
            welfare.is_finite(),
            "500 members' product must not underflow"
        );
        assert!(
            (welfare - sum).abs() < 1e-9 * sum.abs(),
            "{welfare} vs {sum}"
        );
        // Every member at ε: the smallest factors there are.
        let floor = log_welfare(std::iter::repeat_n(FAIRNESS_EPSILON, 500));
        assert!((floor - 500.0 * FAIRNESS_EPSILON.ln()).abs() < 1e-9);
        assert_eq!(log_welfare([0.5].into_iter()), 0.5f64.ln());
    }
}

//! The offline quality of every bandit arm in every context, which the bandits' warm start
//! turns into priors (`src/bandit/prior.rs`): served code, held-out spotify-songs playlists.
//!
//! Solo (per listener maturity): each held-out playlist becomes a listener who liked its first
//! `Maturity::typical_signals` tracks (2, 5 or 15; playlists too short for that are left out);
//! each strategy's top 10 is scored by NDCG@10 on the rest of the playlist. `popularity` is the
//! served popular start (the spread-out popular tracks, minus the likes).
//!
//! Groups (per room size): random groups of `RoomSize::typical_members` held-out playlists,
//! each member's likes the first half of their playlist; every aggregation strategy's served top
//! 10 is scored by NDCG@10 on each member's other half, averaged over members.

use std::{collections::HashSet, fmt::Write as _, sync::Arc};

use super::groups::{self, ndcg_at, Bench, GroupKind, Member, Method};
use crate::{
    aggregate,
    bandit::{
        context::{BanditKind, Context, Maturity, RoomSize},
        prior::OfflineQuality,
    },
    inference::{
        engine::{Engine, RankBy, RankJob},
        group::Utility,
        space::ItemSpace,
    },
    recommend::Strategy,
    taste::{FeedbackKind, Taste},
};

/// Rank cut-off of the metric.
const K: usize = 10;

/// One context's measurement.
#[derive(Debug, Clone)]
pub struct Cell {
    pub context: Context,
    /// Listeners or groups measured.
    pub n: usize,
    /// Per arm, in `BanditKind::arms` order: mean NDCG@10.
    pub ndcg10: Vec<(&'static str, f64)>,
}

/// Solo strategies per maturity.
pub fn solo(
    engine: &mut Engine,
    space: &ItemSpace,
    members: &[Member],
    candidates: usize,
) -> anyhow::Result<Vec<Cell>> {
    let mut out = Vec::new();
    for maturity in Maturity::ALL {
        let likes = maturity.typical_signals();
        let mut sums = [0.0f64; 4];
        let mut n = 0;
        for m in members {
            // The whole playlist but the likes is what the listener would also like.
            let playlist = all_in_order(m);
            if playlist.len() < likes + 2 {
                continue;
            }
            let (seeds, rest) = playlist.split_at(likes);
            let relevant: HashSet<u32> = rest.iter().copied().collect();
            let mut taste = Taste::default();
            for &item in seeds {
                taste.record(item, FeedbackKind::Like);
            }
            taste.refresh(space);
            let Some(listener) = taste.listener(space) else {
                continue;
            };
            let listener = Arc::new(listener);
            let mut exclude = seeds.to_vec();
            exclude.sort_unstable();
            for (i, strategy) in Strategy::ALL.into_iter().enumerate() {
                let list: Vec<u32> = match strategy {
                    Strategy::Popularity => space
                        .starters()
                        .iter()
                        .copied()
                        .filter(|t| exclude.binary_search(t).is_err())
                        .take(K)
                        .collect(),
                    ranked => {
                        let order = match ranked {
                            Strategy::Ncf => RankBy::Ncf,
                            Strategy::Content => RankBy::Content,
                            _ => RankBy::Hybrid,
                        };
                        engine
                            .rank(&[RankJob {
                                listener: Arc::clone(&listener),
                                exclude: exclude.clone(),
                                candidates,
                                top: K,
                                order,
                                focus: None,
                            }])
                            .map_err(|e| anyhow::anyhow!(e))?[0]
                            .items
                            .iter()
                            .map(|r| r.item)
                            .collect()
                    }
                };
                sums[i] += ndcg_at(&list, &relevant, K);
            }
            n += 1;
        }
        out.push(Cell {
            context: Context::Solo(maturity),
            n,
            ndcg10: Strategy::ALL
                .iter()
                .zip(sums)
                .map(|(s, sum)| (s.as_str(), sum / n.max(1) as f64))
                .collect(),
        });
        eprintln!("  solo, {}: {n} listeners", maturity.name());
    }
    Ok(out)
}

/// A member's playlist in its original order (seeds first, then the targets in catalog order:
/// the split keeps seeds as the playlist's first half).
fn all_in_order(m: &Member) -> Vec<u32> {
    let mut targets: Vec<u32> = m.targets.iter().copied().collect();
    targets.sort_unstable();
    m.seeds.iter().copied().chain(targets).collect()
}

/// Aggregation strategies per room size.
pub fn group(
    bench: &mut Bench<'_>,
    utility: Utility,
    per_size: usize,
    seed: u64,
) -> anyhow::Result<Vec<Cell>> {
    let mut out = Vec::new();
    for size in RoomSize::ALL {
        let members = size.typical_members();
        let cell = groups::groups(
            bench.members,
            GroupKind::Random,
            members,
            per_size,
            seed ^ (members as u64) << 8,
        );
        let mut ndcg10 = Vec::new();
        for strategy in aggregate::Strategy::ALL {
            let mut sum = 0.0;
            for g in &cell {
                let list = bench.list(
                    Method::Served {
                        strategy,
                        utility,
                        own_candidates: true,
                    },
                    g,
                )?;
                let list = &list[..list.len().min(K)];
                sum += g.iter().map(|&m| bench.score(m, list).ndcg10).sum::<f64>() / g.len() as f64;
            }
            ndcg10.push((strategy.name(), sum / cell.len().max(1) as f64));
        }
        out.push(Cell {
            context: Context::Group(size),
            n: cell.len(),
            ndcg10,
        });
        eprintln!(
            "  groups, {}: {} groups of {members}",
            size.name(),
            cell.len()
        );
    }
    Ok(out)
}

/// The manifest's `bandit_prior`.
pub fn quality(cells: &[Cell], measured_on: String) -> OfflineQuality {
    let mut bandits = std::collections::BTreeMap::new();
    for cell in cells {
        let per_arm = cell
            .ndcg10
            .iter()
            .map(|&(arm, v)| (arm.to_string(), (v * 1e6).round() / 1e6))
            .collect();
        bandits
            .entry(cell.context.kind().name().to_string())
            .or_insert_with(std::collections::BTreeMap::new)
            .insert(cell.context.name().to_string(), per_arm);
    }
    OfflineQuality {
        metric: "ndcg@10".into(),
        command: "chorus eval-priors --write".into(),
        measured_on,
        bandits,
    }
}

/// The measurements as markdown, with the priors they give under `settings`.
pub fn table(cells: &[Cell], settings: &crate::config::BanditSettings) -> String {
    let quality = quality(cells, String::new());
    let priors = crate::bandit::prior::priors(Some(&quality), settings);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| bandit | context | measured on | arm | NDCG@10 | prior Beta(α, β) | prior mean |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |");
    for cell in cells {
        let unit = match cell.context.kind() {
            BanditKind::SoloStrategy => "listeners",
            BanditKind::GroupAggregation => "groups",
        };
        for &(arm, v) in &cell.ndcg10 {
            let p = priors[&(cell.context, arm)];
            let _ = writeln!(
                out,
                "| {} | {} | {} {unit} | {arm} | {v:.4} | ({:.1}, {:.1}) | {:.4} |",
                cell.context.kind().name(),
                cell.context.name(),
                cell.n,
                p.alpha,
                p.beta,
                p.mean()
            );
        }
    }
    out
}

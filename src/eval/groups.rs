//! The offline group benchmark: synthetic groups of held-out spotify-songs playlists, each
//! playlist one member, as in the group-recommendation literature. Each member "likes" the first
//! half of their playlist (its seeds) and the rest are the tracks a good group list would also
//! hold for them (its targets). Groups are random, similar (one playlist genre) or divergent (a
//! different genre per member), of 2 to 8 members. Every method gets the same groups, and is
//! scored per member: NDCG@10 and Recall@20 on the member's targets, the share of the list that
//! is their own genre; then the mean over members and the least-served member's figure.
//!
//! The group methods run the served code (`Engine::rank_groups`, the same the rooms use); the
//! baselines are popularity, a round-robin merge of the members' own solo lists (served
//! `Engine::rank`), and the average of the members' raw probabilities.

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    io::Read,
    sync::Arc,
};

use anyhow::Context;
use rand::{rngs::StdRng, seq::SliceRandom, RngExt, SeedableRng};

use crate::{
    aggregate::Strategy,
    catalog::{demo, Catalog},
    inference::{
        engine::{Engine, RankBy, RankJob},
        features::Listener,
        group::{GroupRankJob, Utility},
        space::ItemSpace,
    },
    models::Manifest,
    taste::{FeedbackKind, Taste},
};

/// A held-out playlist as a group member.
#[derive(Debug, Clone)]
pub struct Member {
    pub genre: String,
    pub seeds: Vec<u32>,
    pub targets: HashSet<u32>,
}

/// The held-out playlists (ids from `models/manifest.json`) read from the spotify-songs CSV, in
/// row order, as members: seeds are the first half (at least one track), targets the rest.
pub fn members(
    csv: impl Read,
    heldout: &HashSet<String>,
    catalog: &Catalog,
) -> anyhow::Result<Vec<Member>> {
    let mut reader = csv::Reader::from_reader(csv);
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("the CSV has no {name} column"))
    };
    let (track, playlist, genre) = (
        column("track_id")?,
        column("playlist_id")?,
        column("playlist_genre")?,
    );
    let mut order: Vec<String> = Vec::new();
    let mut playlists: HashMap<String, (String, Vec<u32>)> = HashMap::new();
    for row in reader.records() {
        let row = row?;
        let id = &row[playlist];
        if !heldout.contains(id) {
            continue;
        }
        let Some(item) = catalog.index_of(&row[track]) else {
            continue;
        };
        let entry = playlists.entry(id.to_string()).or_insert_with(|| {
            order.push(id.to_string());
            (row[genre].to_lowercase(), Vec::new())
        });
        if !entry.1.contains(&item) {
            entry.1.push(item);
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|id| {
            let (genre, tracks) = playlists.remove(&id)?;
            if tracks.len() < 4 {
                return None;
            }
            let n_seed = tracks.len() / 2;
            Some(Member {
                genre,
                seeds: tracks[..n_seed].to_vec(),
                targets: tracks[n_seed..].iter().copied().collect(),
            })
        })
        .collect())
}

/// The held-out playlists the manifest names (`split.heldout_playlists`), read from the embedded
/// demo catalog's CSV, as members (see [`members`]).
pub fn heldout_members(manifest: &Manifest, catalog: &Catalog) -> anyhow::Result<Vec<Member>> {
    let heldout: HashSet<String> = manifest.split["heldout_playlists"]
        .as_array()
        .context("models/manifest.json has no split.heldout_playlists")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    members(demo::csv()?.as_slice(), &heldout, catalog)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupKind {
    Random,
    Similar,
    Divergent,
}

impl GroupKind {
    pub const ALL: [GroupKind; 3] = [GroupKind::Random, GroupKind::Similar, GroupKind::Divergent];

    pub fn name(self) -> &'static str {
        match self {
            GroupKind::Random => "random",
            GroupKind::Similar => "similar",
            GroupKind::Divergent => "divergent",
        }
    }
}

/// `count` groups of `size` members of the given kind (indices into `members`), seeded. A
/// divergent group needs as many genres as members, so its size is capped by the genres there
/// are.
pub fn groups(
    members: &[Member],
    kind: GroupKind,
    size: usize,
    count: usize,
    seed: u64,
) -> Vec<Vec<usize>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut by_genre: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, m) in members.iter().enumerate() {
        by_genre.entry(m.genre.as_str()).or_default().push(i);
    }
    let mut genres: Vec<&str> = by_genre.keys().copied().collect();
    genres.sort_unstable();
    let mut out = Vec::with_capacity(count);
    for _ in 0..count * 20 {
        if out.len() == count {
            break;
        }
        let group: Vec<usize> = match kind {
            GroupKind::Random => {
                let mut all: Vec<usize> = (0..members.len()).collect();
                all.shuffle(&mut rng);
                all.truncate(size);
                all
            }
            GroupKind::Similar => {
                let genre = genres[rng.random_range(0..genres.len())];
                let mut pool = by_genre[genre].clone();
                if pool.len() < size {
                    continue;
                }
                pool.shuffle(&mut rng);
                pool.truncate(size);
                pool
            }
            GroupKind::Divergent => {
                if genres.len() < size {
                    return out;
                }
                let mut chosen = genres.clone();
                chosen.shuffle(&mut rng);
                chosen
                    .iter()
                    .take(size)
                    .map(|g| {
                        let pool = &by_genre[g];
                        pool[rng.random_range(0..pool.len())]
                    })
                    .collect()
            }
        };
        if group.len() == size {
            out.push(group);
        }
    }
    out
}

/// How a group's list is made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// The served ranking with this aggregation strategy, utility scale and candidate pool.
    Served {
        strategy: Strategy,
        utility: Utility,
        own_candidates: bool,
    },
    /// Most popular tracks nobody has.
    Popularity,
    /// The members' own solo lists, interleaved (one each in turn, skipping repeats).
    RoundRobin,
}

impl Method {
    pub fn name(self) -> String {
        match self {
            Method::Served {
                strategy,
                utility,
                own_candidates,
            } => {
                let mut name = strategy.name().to_string();
                let scale = match utility {
                    // What the rooms serve: no suffix.
                    Utility::Platt(_) => None,
                    Utility::Sigmoid => Some("σ(logit)"),
                    Utility::Catalog => Some("catalog percentile"),
                    Utility::Pool => Some("pool percentile"),
                    Utility::Blend => Some("percentile blend"),
                };
                match (scale, own_candidates) {
                    (None, true) => {}
                    (scale, own) => {
                        let pool = if own {
                            "every member's candidates"
                        } else {
                            "pooled list"
                        };
                        name += &format!(" ({}, {pool})", scale.unwrap_or("Platt"));
                    }
                }
                name
            }
            Method::Popularity => "popularity".into(),
            Method::RoundRobin => "round_robin".into(),
        }
    }
}

/// The figures of one member for one list.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MemberScore {
    pub ndcg10: f64,
    pub recall20: f64,
    /// Share of the top 10 whose genres include the member's playlist genre.
    pub own_genre: f64,
}

pub fn ndcg_at(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, item)| relevant.contains(item))
        .map(|(pos, _)| 1.0 / ((pos + 2) as f64).log2())
        .sum();
    let ideal: f64 = (0..k.min(relevant.len()))
        .map(|pos| 1.0 / ((pos + 2) as f64).log2())
        .sum();
    dcg / ideal
}

pub fn recall_at(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    let hits = ranked
        .iter()
        .take(k)
        .filter(|i| relevant.contains(i))
        .count();
    hits as f64 / k.min(relevant.len()) as f64
}

/// The benchmark's runner: the served engine over the item space, with listeners built from
/// each member's seeds exactly as the server builds them from likes.
pub struct Bench<'a> {
    pub engine: &'a mut Engine,
    pub space: &'a ItemSpace,
    pub catalog: &'a Catalog,
    pub members: &'a [Member],
    pub candidates: usize,
    listeners: Vec<Arc<Listener>>,
    solo: HashMap<usize, Vec<u32>>,
}

/// List length the metrics need (Recall@20).
const LIST: usize = 20;

impl<'a> Bench<'a> {
    pub fn new(
        engine: &'a mut Engine,
        space: &'a ItemSpace,
        catalog: &'a Catalog,
        members: &'a [Member],
        candidates: usize,
    ) -> Self {
        let listeners = members
            .iter()
            .map(|m| {
                let mut taste = Taste::default();
                for &item in &m.seeds {
                    taste.record(item, FeedbackKind::Like);
                }
                taste.refresh(space);
                Arc::new(
                    taste
                        .listener(space)
                        .expect("a member with seeds has a taste"),
                )
            })
            .collect();
        Self {
            engine,
            space,
            catalog,
            members,
            candidates,
            listeners,
            solo: HashMap::new(),
        }
    }

    fn exclude(&self, group: &[usize]) -> Vec<u32> {
        let mut exclude: Vec<u32> = group
            .iter()
            .flat_map(|&m| self.members[m].seeds.iter().copied())
            .collect();
        exclude.sort_unstable();
        exclude.dedup();
        exclude
    }

    fn solo_list(&mut self, member: usize) -> anyhow::Result<Vec<u32>> {
        if let Some(list) = self.solo.get(&member) {
            return Ok(list.clone());
        }
        let mut exclude = self.members[member].seeds.clone();
        exclude.sort_unstable();
        let ranked = self
            .engine
            .rank(&[RankJob {
                listener: Arc::clone(&self.listeners[member]),
                exclude,
                candidates: 200,
                top: LIST * 2,
                order: RankBy::Hybrid,
                focus: None,
            }])
            .map_err(|e| anyhow::anyhow!(e))?;
        let list: Vec<u32> = ranked[0].items.iter().map(|i| i.item).collect();
        self.solo.insert(member, list.clone());
        Ok(list)
    }

    /// Every member's solo candidates as `(hybrid logit, relevant)`: the data Platt scaling is
    /// fitted to (relevant: one of the member's held-out tracks). `members` picks whose.
    pub fn logits(
        &mut self,
        members: impl Iterator<Item = usize>,
    ) -> anyhow::Result<Vec<(f32, bool)>> {
        let mut out = Vec::new();
        for m in members {
            let mut exclude = self.members[m].seeds.clone();
            exclude.sort_unstable();
            let ranked = self
                .engine
                .rank(&[RankJob {
                    listener: Arc::clone(&self.listeners[m]),
                    exclude,
                    candidates: 200,
                    top: 200,
                    order: RankBy::Hybrid,
                    focus: None,
                }])
                .map_err(|e| anyhow::anyhow!(e))?;
            let targets = &self.members[m].targets;
            out.extend(
                ranked[0]
                    .items
                    .iter()
                    .map(|i| (i.score, targets.contains(&i.item))),
            );
        }
        Ok(out)
    }

    /// The group's list under `method`.
    pub fn list(&mut self, method: Method, group: &[usize]) -> anyhow::Result<Vec<u32>> {
        let exclude = self.exclude(group);
        match method {
            Method::Served {
                strategy,
                utility,
                own_candidates,
            } => {
                let ranked = self
                    .engine
                    .rank_groups(&[GroupRankJob {
                        members: group
                            .iter()
                            .map(|&m| Arc::clone(&self.listeners[m]))
                            .collect(),
                        exclude,
                        candidates: self.candidates,
                        strategy,
                        top: LIST,
                        utility,
                        served: Vec::new(),
                        own_candidates,
                        kept: None,
                    }])
                    .map_err(|e| anyhow::anyhow!(e))?;
                Ok(ranked[0].items.iter().map(|i| i.item).collect())
            }
            Method::Popularity => Ok(self
                .catalog
                .by_popularity()
                .iter()
                .copied()
                .filter(|t| exclude.binary_search(t).is_err())
                .take(LIST)
                .collect()),
            Method::RoundRobin => {
                let lists: Vec<Vec<u32>> = group
                    .iter()
                    .map(|&m| self.solo_list(m))
                    .collect::<anyhow::Result<_>>()?;
                let mut out = Vec::with_capacity(LIST);
                let mut seen = HashSet::new();
                for rank in 0..LIST * 2 {
                    for list in &lists {
                        if out.len() < LIST {
                            if let Some(&item) = list.get(rank) {
                                if seen.insert(item) {
                                    out.push(item);
                                }
                            }
                        }
                    }
                }
                Ok(out)
            }
        }
    }

    pub fn score(&self, member: usize, list: &[u32]) -> MemberScore {
        let m = &self.members[member];
        let own = list
            .iter()
            .take(10)
            .filter(|&&t| self.catalog.track(t).genres.iter().any(|g| g == &m.genre))
            .count();
        MemberScore {
            ndcg10: ndcg_at(list, &m.targets, 10),
            recall20: recall_at(list, &m.targets, 20),
            own_genre: own as f64 / list.len().clamp(1, 10) as f64,
        }
    }
}

/// Mean and least-served member figures over groups, for one method.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub mean_ndcg10: f64,
    pub least_ndcg10: f64,
    pub mean_recall20: f64,
    pub least_recall20: f64,
    /// Smallest share of the top 10 that is any one member's own genre.
    pub least_own_genre: f64,
    pub groups: usize,
}

pub fn summarise(per_group: &[Vec<MemberScore>]) -> Summary {
    let n = per_group.len().max(1) as f64;
    let mut s = Summary {
        groups: per_group.len(),
        ..Summary::default()
    };
    for scores in per_group {
        let k = scores.len().max(1) as f64;
        s.mean_ndcg10 += scores.iter().map(|m| m.ndcg10).sum::<f64>() / k / n;
        s.mean_recall20 += scores.iter().map(|m| m.recall20).sum::<f64>() / k / n;
        s.least_ndcg10 += scores
            .iter()
            .map(|m| m.ndcg10)
            .fold(f64::INFINITY, f64::min)
            / n;
        s.least_recall20 += scores
            .iter()
            .map(|m| m.recall20)
            .fold(f64::INFINITY, f64::min)
            / n;
        s.least_own_genre += scores
            .iter()
            .map(|m| m.own_genre)
            .fold(f64::INFINITY, f64::min)
            / n;
    }
    s
}

/// The benchmark over every kind and size, as a markdown section.
pub fn run(
    bench: &mut Bench<'_>,
    methods: &[Method],
    sizes: &[usize],
    per_cell: usize,
    seed: u64,
) -> anyhow::Result<String> {
    let mut out = String::new();
    writeln!(
        out,
        "| groups | size | method | mean NDCG@10 | least-served NDCG@10 | mean Recall@20 | least-served Recall@20 | least own-genre share of top 10 |"
    )?;
    writeln!(out, "| --- | --- | --- | --- | --- | --- | --- | --- |")?;
    for kind in GroupKind::ALL {
        for &size in sizes {
            let cell = groups(
                bench.members,
                kind,
                size,
                per_cell,
                seed ^ (size as u64) << 8 ^ kind as u64,
            );
            if cell.is_empty() {
                continue;
            }
            for &method in methods {
                let mut per_group = Vec::with_capacity(cell.len());
                for group in &cell {
                    let list = bench.list(method, group)?;
                    per_group.push(
                        group
                            .iter()
                            .map(|&m| bench.score(m, &list))
                            .collect::<Vec<_>>(),
                    );
                }
                let s = summarise(&per_group);
                writeln!(
                    out,
                    "| {} | {size} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.2} |",
                    kind.name(),
                    method.name(),
                    s.mean_ndcg10,
                    s.least_ndcg10,
                    s.mean_recall20,
                    s.least_recall20,
                    s.least_own_genre
                )?;
            }
            eprintln!("  {} groups of {size}: {} groups", kind.name(), cell.len());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_match_the_training_pipeline() {
        let relevant: HashSet<u32> = [1, 5, 9].into_iter().collect();
        let ranked = [1, 2, 3, 4, 5];
        let dcg = 1.0 + 1.0 / 6f64.log2();
        let ideal = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!((ndcg_at(&ranked, &relevant, 10) - dcg / ideal).abs() < 1e-12);
        assert!((recall_at(&ranked, &relevant, 20) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(recall_at(&ranked, &HashSet::new(), 20), 0.0);
    }

    #[test]
    fn divergent_groups_have_one_member_per_genre_and_similar_ones_share_it() {
        let member = |genre: &str| Member {
            genre: genre.into(),
            seeds: vec![0],
            targets: HashSet::new(),
        };
        let members: Vec<Member> = ["rock", "rock", "rock", "pop", "pop", "latin", "edm"]
            .iter()
            .map(|g| member(g))
            .collect();
        for group in groups(&members, GroupKind::Divergent, 3, 20, 7) {
            let genres: HashSet<&str> = group.iter().map(|&m| members[m].genre.as_str()).collect();
            assert_eq!(genres.len(), 3);
        }
        for group in groups(&members, GroupKind::Similar, 2, 20, 7) {
            assert_eq!(members[group[0]].genre, members[group[1]].genre);
        }
        assert!(
            groups(&members, GroupKind::Divergent, 5, 3, 7).is_empty(),
            "only 4 genres"
        );
    }
}

//! Ranking for a group: one pool of candidates that every member contributes to (each member's
//! own best by item-item and dot product, a guaranteed share each, then the group vector's and
//! the members' pooled item-item scores), every member's scores for the pool in one NCF + hybrid
//! pass, each member's utility for each candidate on a common 0–1 scale ([`Utility`]), the
//! group's aggregation strategy, and reasons for the picks averaged over the members.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    candidates,
    engine::{Engine, ScoreRow},
    features::{Candidate, FeatureRow, Listener, FEATURES, GROUP_AGREEMENT},
    retrieval::{self, Metric, RetrievalQuery},
    space::{dot, DIM},
};
use crate::aggregate::{self, Harmony, Strategy};

#[derive(Debug, Clone)]
pub struct GroupRankJob {
    /// The members with a taste (at least one).
    pub members: Vec<Arc<Listener>>,
    /// Item rows never recommended, sorted.
    pub exclude: Vec<u32>,
    pub candidates: usize,
    pub strategy: Strategy,
    pub top: usize,
    pub utility: Utility,
    /// Per member, in `members` order: how much the session has already served them (0–1),
    /// which `fair` takes into account; empty: nothing yet.
    pub served: Vec<f64>,
    /// Whether every member contributes their own best candidates (else the pool is only the
    /// group vector's and the pooled item-item scores: the earlier design, kept to compare).
    pub own_candidates: bool,
    /// What the room's previous ranking left (see [`KeptPool`]); `None`: build the pool.
    pub kept: Option<Arc<KeptPool>>,
}

/// `p = σ(slope · logit + intercept)`: the hybrid ranker's logit as a calibrated probability
/// (fitted by `chorus eval-groups`, see `crate::eval::calibration`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Platt {
    pub slope: f32,
    pub intercept: f32,
}

impl Platt {
    pub fn probability(self, logit: f32) -> f32 {
        sigmoid(self.slope * logit + self.intercept)
    }
}

/// How a member's liking of a candidate is put on the 0–1 scale the strategies compare.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Utility {
    /// σ(the hybrid ranker's logit). Saturates near 1 for almost every candidate, so members
    /// look alike (the earlier design, kept to compare).
    Sigmoid,
    /// Where the track falls in the whole catalog for this member (the percentile of its dot
    /// product among an even sample of the catalog): "would pick it over a random track".
    Catalog,
    /// Where the member's hybrid score for the track falls among the member's scores for the
    /// whole pool.
    Pool,
    /// The mean of `Catalog` and `Pool`: the catalog scale keeps absolute distance (a metal fan
    /// is cold on reggaeton), the pool scale brings in the ranker's finer order.
    #[default]
    Blend,
    /// The hybrid logit through Platt scaling: a probability of liking the track.
    Platt(Platt),
}

/// Candidates each member contributes at least (when the pool has room).
const MIN_OWN_SHARE: usize = 8;

/// Whether a member's own candidates come from their item-item neighbours alone: when those
/// offer at least twice the member's share.
fn own_from_neighbours(own: &std::collections::HashMap<u32, f32>, share: usize) -> bool {
    own.values().filter(|&&s| s > 0.0).count() >= 2 * share
}

/// Members' own best tracks by dot product, per taste: needed only for members with few
/// item-item neighbours (new listeners; see `own_from_neighbours`). A taste is one `Listener`
/// value (a member's feedback makes a new one), so the hits stay valid while its `Arc` is alive:
/// in a busy room one member's taste changes per operation and the others' hits are reused,
/// which keeps a refresh at most one retrieval query more than a single group query. Hits are kept
/// unfiltered, twice as many as a share needs, and filtered by each room's exclusions at use.
/// One cache serves every inference thread (a room's refreshes go to whichever is free; with a
/// cache per thread, half the members missed on two threads).
#[derive(Default)]
pub struct OwnHits {
    /// Keyed by the taste's address; the `Weak` confirms it is still that taste, and the
    /// number is how many hits were asked for.
    entries: std::sync::Mutex<std::collections::HashMap<usize, OwnEntry>>,
}

/// A taste (weakly), how many hits were asked for, and the hits.
type OwnEntry = (std::sync::Weak<Listener>, usize, Vec<super::retrieval::Hit>);

/// Tastes whose hits are kept at most (then the cache starts over).
const OWN_HITS_KEPT: usize = 20_000;

impl OwnHits {
    fn get(&self, member: &Arc<Listener>, k: usize) -> Option<Vec<super::retrieval::Hit>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (weak, asked, hits) = entries.get(&(Arc::as_ptr(member) as usize))?;
        (*asked >= k && weak.upgrade().is_some_and(|m| Arc::ptr_eq(&m, member)))
            .then(|| hits.clone())
    }

    fn has(&self, member: &Arc<Listener>, k: usize) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(&(Arc::as_ptr(member) as usize))
            .is_some_and(|(weak, asked, _)| {
                *asked >= k && weak.upgrade().is_some_and(|m| Arc::ptr_eq(&m, member))
            })
    }

    fn insert(&self, member: &Arc<Listener>, asked: usize, hits: Vec<super::retrieval::Hit>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= OWN_HITS_KEPT {
            entries.retain(|_, (weak, _, _)| weak.strong_count() > 0);
            if entries.len() >= OWN_HITS_KEPT {
                entries.clear();
            }
        }
        entries.insert(
            Arc::as_ptr(member) as usize,
            (Arc::downgrade(member), asked, hits),
        );
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupRankedItem {
    pub item: u32,
    /// Each member's predicted probability of liking the track, in `members` order.
    pub utilities: Vec<f32>,
    /// Features and contributions averaged over the members.
    pub features: FeatureRow,
    pub contributions: FeatureRow,
}

#[derive(Debug, Clone)]
pub struct GroupRanked {
    pub items: Vec<GroupRankedItem>,
    /// Each member's satisfaction with the list (see [`crate::aggregate`]).
    pub satisfaction: Vec<f64>,
    pub harmony: Harmony,
    pub considered: usize,
    /// For the room's next ranking.
    pub kept: Arc<KeptPool>,
    /// Whether the pool was built for this ranking (else the kept one was used).
    pub pool_built: bool,
    /// Members whose features and NCF scores were computed (the others' were kept).
    pub members_scored: usize,
}

/// A room's pool is built again after this long, however little its members changed.
pub const POOL_MAX_AGE: Duration = Duration::from_secs(20);
/// ... or once a member's taste has moved this far from the one it was built for (the cosine
/// of the two vectors; one like moves a listener with a dozen likes about 0.99) ...
const POOL_DRIFT_COSINE: f32 = 0.95;
/// ... or once the room's playlist has taken more than this share of it.
const POOL_USED_UP: f32 = 0.25;

/// What one ranking of a room leaves for its next: the candidate pool and every member's
/// features over it (NCF score included), which depend on that member's taste alone. An
/// operation changes one member's taste, so the next ranking scores only that member again,
/// rewrites every row's group agreement (the group vector moved) and reruns the ranker over
/// all rows: the same numbers a full scoring of the pool gives, for a fifth of the NCF work and
/// no catalog scan. The pool itself is built again when it is old, a member's taste drifted
/// from it, or the playlist used it up (the constants above).
#[derive(Debug)]
pub struct KeptPool {
    pool: Vec<u32>,
    /// Candidates when built (the playlist takes some away).
    built_len: usize,
    built_at: Instant,
    candidates: usize,
    own_candidates: bool,
    members: Vec<KeptMember>,
}

#[derive(Debug)]
struct KeptMember {
    taste: Arc<Listener>,
    /// The member's vector when the pool was built: drift is measured from it.
    built_for: Vec<f32>,
    /// Over `pool`; `None`: to be scored.
    features: Option<Vec<FeatureRow>>,
}

impl KeptPool {
    pub fn pool(&self) -> &[u32] {
        &self.pool
    }

    /// The same pool with no member's scores kept: the next ranking scores every member over
    /// it, as a full refresh of this pool would (benchmarks and tests compare the two).
    pub fn unscored(&self) -> KeptPool {
        KeptPool {
            pool: self.pool.clone(),
            members: self
                .members
                .iter()
                .map(|m| KeptMember {
                    taste: Arc::clone(&m.taste),
                    built_for: m.built_for.clone(),
                    features: None,
                })
                .collect(),
            ..*self
        }
    }

    /// Where this pool's candidates still allowed by `job` are, or `None` when the job needs
    /// a new pool.
    fn reuse(&self, job: &GroupRankJob, now: Instant) -> Option<Vec<usize>> {
        if self.candidates != job.candidates
            || self.own_candidates != job.own_candidates
            || self.members.len() != job.members.len()
            || now.saturating_duration_since(self.built_at) >= POOL_MAX_AGE
        {
            return None;
        }
        let drifted = self.members.iter().zip(&job.members).any(|(kept, taste)| {
            !Arc::ptr_eq(&kept.taste, taste)
                && cosine(&kept.built_for, &taste.vector[..DIM]) < POOL_DRIFT_COSINE
        });
        if drifted {
            return None;
        }
        let positions: Vec<usize> = (0..self.pool.len())
            .filter(|&j| job.exclude.binary_search(&self.pool[j]).is_err())
            .collect();
        let used = 1.0 - positions.len() as f32 / self.built_len.max(1) as f32;
        (used <= POOL_USED_UP).then_some(positions)
    }

    /// The member's kept features over the whole pool, when their taste is the one they were
    /// computed for.
    fn scored(&self, member: usize, taste: &Arc<Listener>) -> Option<&[FeatureRow]> {
        let kept = self.members.get(member)?;
        kept.features
            .as_deref()
            .filter(|_| Arc::ptr_eq(&kept.taste, taste))
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt() + 1e-9)
}

/// Unit-length mean of the members' unit vectors: every member pulls equally, however long
/// their history.
pub fn group_vector(members: &[Arc<Listener>]) -> Vec<f32> {
    let mut sum = vec![0f32; DIM];
    for member in members {
        let v = &member.vector[..DIM];
        let norm = dot(v, v).sqrt();
        if norm > 0.0 {
            for (s, x) in sum.iter_mut().zip(v) {
                *s += x / norm;
            }
        }
    }
    let norm = dot(&sum, &sum).sqrt();
    if norm > 0.0 {
        sum.iter_mut().for_each(|s| *s /= norm);
    }
    sum
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// A member's utility (0–1) for each candidate of the pool, from the member's hybrid logits.
fn utilities(
    space: &super::space::ItemSpace,
    member: &Listener,
    pool: &[u32],
    logits: &[f32],
    utility: Utility,
) -> Vec<f32> {
    let catalog = || {
        let scale = space.percentiles(&member.vector[..DIM]);
        pool.iter()
            .map(|&i| scale.of(dot(&member.vector[..DIM], space.vector_slice(i))))
            .collect::<Vec<f32>>()
    };
    let within_pool = || {
        let mut sorted = logits.to_vec();
        sorted.sort_unstable_by(f32::total_cmp);
        let n = sorted.len().max(1) as f32;
        logits
            .iter()
            .map(|&x| {
                let below = sorted.partition_point(|&s| s < x);
                let not_above = sorted.partition_point(|&s| s <= x);
                (below + not_above) as f32 / (2.0 * n)
            })
            .collect::<Vec<f32>>()
    };
    match utility {
        Utility::Sigmoid => logits.iter().map(|&x| sigmoid(x)).collect(),
        Utility::Platt(platt) => logits.iter().map(|&x| platt.probability(x)).collect(),
        Utility::Catalog => catalog(),
        Utility::Pool => within_pool(),
        Utility::Blend => catalog()
            .into_iter()
            .zip(within_pool())
            .map(|(c, p)| 0.5 * (c + p))
            .collect(),
    }
}

/// A job's pool and where it came from.
struct Planned {
    pool: Vec<u32>,
    /// `Some`: the kept pool's positions this pool takes; `None`: built now.
    kept_positions: Option<Vec<usize>>,
    /// The members' item-item scores (only computed for the members to score).
    member_scores: Vec<Option<HashMap<u32, f32>>>,
}

impl Engine {
    pub fn rank_groups(&mut self, jobs: &[GroupRankJob]) -> Result<Vec<GroupRanked>, String> {
        let clock = Instant::now();
        let space = Arc::clone(&self.space);
        let vectors: Vec<Vec<f32>> = jobs.iter().map(|j| group_vector(&j.members)).collect();
        let reuse: Vec<Option<Vec<usize>>> = jobs
            .iter()
            .map(|job| job.kept.as_ref().and_then(|kept| kept.reuse(job, clock)))
            .collect();
        let to_build: Vec<usize> = (0..jobs.len()).filter(|&i| reuse[i].is_none()).collect();
        let mut built = self.build_pools(
            &to_build.iter().map(|&i| &jobs[i]).collect::<Vec<_>>(),
            &to_build
                .iter()
                .map(|&i| &vectors[i][..])
                .collect::<Vec<_>>(),
        );
        built.reverse();
        let plans: Vec<Planned> = jobs
            .iter()
            .zip(reuse)
            .map(|(job, positions)| match positions {
                None => built.pop().expect("one built pool per job to build"),
                Some(positions) => {
                    let kept = job.kept.as_deref().expect("reused pools are kept");
                    Planned {
                        pool: positions.iter().map(|&j| kept.pool[j]).collect(),
                        member_scores: job
                            .members
                            .iter()
                            .enumerate()
                            .map(|(m, taste)| {
                                kept.scored(m, taste)
                                    .is_none()
                                    .then(|| space.neighbours().scores(&taste.seeds))
                            })
                            .collect(),
                        kept_positions: Some(positions),
                    }
                }
            })
            .collect();
        self.phases.retrieval += clock.elapsed();
        // Rows to score: every member of a new pool, the members of a kept pool whose taste
        // changed. Each member scores the pool with their own dot product and item-item scores.
        let mut rows = Vec::new();
        for (job, plan) in jobs.iter().zip(&plans) {
            for (member, own) in job.members.iter().zip(&plan.member_scores) {
                if let Some(own) = own {
                    rows.push(ScoreRow {
                        listener: member,
                        candidates: plan
                            .pool
                            .iter()
                            .map(|&item| Candidate {
                                item,
                                retrieval: dot(&member.vector[..DIM], space.vector_slice(item)),
                                item_item: candidates::item_item_score(own, item),
                            })
                            .collect(),
                    });
                }
            }
        }
        let members_scored: Vec<usize> = plans
            .iter()
            .map(|p| p.member_scores.iter().filter(|s| s.is_some()).count())
            .collect();
        let mut fresh = self.featurize(&rows)?.into_iter();
        drop(rows);
        // Every row in job and member order; "group agreement" is each candidate's cosine
        // with the group vector, the same for every member of a room.
        let mut features = Vec::with_capacity(jobs.iter().map(|j| j.members.len()).sum());
        for ((job, plan), vector) in jobs.iter().zip(&plans).zip(&vectors) {
            let agreement: Vec<f32> = plan
                .pool
                .iter()
                .map(|&i| dot(vector, space.vector_slice(i)) / (space.norms()[i as usize] + 1e-9))
                .collect();
            for (m, (member, own)) in job.members.iter().zip(&plan.member_scores).enumerate() {
                let mut rows = match (own, &job.kept, &plan.kept_positions) {
                    (None, Some(kept), Some(positions)) => {
                        let kept = kept.scored(m, member).expect("kept features");
                        positions.iter().map(|&j| kept[j]).collect()
                    }
                    _ => fresh.next().expect("one scored row per member to score"),
                };
                for (row, &a) in rows.iter_mut().zip(&agreement) {
                    row[GROUP_AGREEMENT] = a;
                }
                features.push(rows);
            }
        }
        let scored = self.score_features(features)?;
        let mut selections = Vec::with_capacity(jobs.len());
        let mut picks_per_row: Vec<Vec<usize>> = Vec::with_capacity(scored.features.len());
        let mut first_row = 0;
        for (job, plan) in jobs.iter().zip(&plans) {
            let pool = &plan.pool;
            let member_rows = first_row..first_row + job.members.len();
            let utilities: Vec<Vec<f32>> = member_rows
                .clone()
                .zip(&job.members)
                .map(|(r, member)| {
                    let logits: Vec<f32> = (0..pool.len()).map(|j| scored.score(r, j)).collect();
                    utilities(&space, member, pool, &logits, job.utility)
                })
                .collect();
            let selection = aggregate::select_after(job.strategy, &utilities, job.top, &job.served);
            for _ in member_rows {
                picks_per_row.push(selection.picks.clone());
            }
            selections.push((selection, utilities));
            first_row += job.members.len();
        }
        let contributions = self.occlude(&scored, &picks_per_row)?;
        let mut first_row = 0;
        let mut out = Vec::with_capacity(jobs.len());
        for (((job, plan), (selection, utilities)), scored_members) in
            jobs.iter().zip(plans).zip(selections).zip(members_scored)
        {
            let n = job.members.len() as f32;
            let member_rows = first_row..first_row + job.members.len();
            let items = selection
                .picks
                .iter()
                .enumerate()
                .map(|(rank, &j)| {
                    let mut features = [0f32; FEATURES];
                    let mut mean_contributions = [0f32; FEATURES];
                    for (row, row_contributions) in scored.features[member_rows.clone()]
                        .iter()
                        .zip(&contributions[member_rows.clone()])
                    {
                        for f in 0..FEATURES {
                            features[f] += row[j][f] / n;
                            mean_contributions[f] += row_contributions[rank][f] / n;
                        }
                    }
                    GroupRankedItem {
                        item: plan.pool[j],
                        utilities: utilities.iter().map(|u| u[j]).collect(),
                        features,
                        contributions: mean_contributions,
                    }
                })
                .collect();
            let considered = plan.pool.len();
            let kept = match (&job.kept, plan.kept_positions.is_some()) {
                (Some(kept), true) => KeptPool {
                    pool: plan.pool,
                    built_len: kept.built_len,
                    built_at: kept.built_at,
                    candidates: kept.candidates,
                    own_candidates: kept.own_candidates,
                    members: job
                        .members
                        .iter()
                        .zip(&kept.members)
                        .zip(&scored.features[member_rows.clone()])
                        .map(|((taste, before), features)| KeptMember {
                            taste: Arc::clone(taste),
                            built_for: before.built_for.clone(),
                            features: Some(features.clone()),
                        })
                        .collect(),
                },
                _ => KeptPool {
                    pool: plan.pool,
                    built_len: considered,
                    built_at: clock,
                    candidates: job.candidates,
                    own_candidates: job.own_candidates,
                    members: job
                        .members
                        .iter()
                        .zip(&scored.features[member_rows.clone()])
                        .map(|(taste, features)| KeptMember {
                            taste: Arc::clone(taste),
                            built_for: taste.vector[..DIM].to_vec(),
                            features: Some(features.clone()),
                        })
                        .collect(),
                },
            };
            out.push(GroupRanked {
                items,
                satisfaction: selection.satisfaction,
                harmony: selection.harmony,
                considered,
                pool_built: plan.kept_positions.is_none(),
                members_scored: scored_members,
                kept: Arc::new(kept),
            });
            first_row += job.members.len();
        }
        Ok(out)
    }

    /// A new pool for each job (with its members' item-item scores): every member's own best
    /// candidates, then the group vector's and the pooled item-item scores. One retrieval pass
    /// for every query: each group's vector, then the members' own where needed.
    fn build_pools(&mut self, jobs: &[&GroupRankJob], vectors: &[&[f32]]) -> Vec<Planned> {
        if jobs.is_empty() {
            return Vec::new();
        }
        let space = Arc::clone(&self.space);
        let shares: Vec<usize> = jobs
            .iter()
            .map(|job| {
                if job.own_candidates {
                    (job.candidates / (job.members.len() + 1)).max(MIN_OWN_SHARE)
                } else {
                    0
                }
            })
            .collect();
        let mut queries: Vec<RetrievalQuery> = jobs
            .iter()
            .zip(vectors)
            .map(|(job, vector)| RetrievalQuery {
                vector: vector.to_vec(),
                exclude: job.exclude.clone(),
                k: job.candidates,
            })
            .collect();
        // Each member's item-item scores.
        let member_scores: Vec<Vec<HashMap<u32, f32>>> = jobs
            .iter()
            .map(|job| {
                job.members
                    .iter()
                    .map(|m| space.neighbours().scores(&m.seeds))
                    .collect()
            })
            .collect();
        // Members whose own hits are not cached yet (each taste once, however many rooms, for
        // the largest share any of its rooms needs). A member whose liked tracks have at least
        // twice a share of item-item neighbours needs none: their own candidates come from
        // those neighbours, which cost no scan of the catalog.
        let mut missing: Vec<(Arc<Listener>, usize)> = Vec::new();
        for ((job, &share), scores) in jobs.iter().zip(&shares).zip(&member_scores) {
            for (member, own) in job.members.iter().zip(scores).filter(|_| share > 0) {
                if own_from_neighbours(own, share) || self.own_hits.has(member, 2 * share) {
                    continue;
                }
                match missing.iter_mut().find(|(m, _)| Arc::ptr_eq(m, member)) {
                    Some((_, asked)) => *asked = (*asked).max(2 * share),
                    None => missing.push((Arc::clone(member), 2 * share)),
                }
            }
        }
        queries.extend(missing.iter().map(|(member, asked)| RetrievalQuery {
            vector: member.vector[..DIM].to_vec(),
            exclude: Vec::new(),
            k: *asked,
        }));
        let mut hits = retrieval::top_k(space.vectors(), space.norms(), Metric::Dot, &queries);
        for ((member, asked), own) in missing.iter().zip(hits.split_off(jobs.len())) {
            self.own_hits.insert(member, *asked, own);
        }
        jobs.iter()
            .zip(&hits)
            .zip(vectors)
            .zip(member_scores)
            .zip(&shares)
            .map(|((((job, hits), vector), scores), &share)| {
                let mut pool = Vec::with_capacity(job.candidates);
                let mut taken = HashSet::new();
                if share > 0 {
                    for (member, own) in job.members.iter().zip(&scores) {
                        if own_from_neighbours(own, share) {
                            pool.extend(
                                super::neighbours::best(own, &job.exclude, share)
                                    .into_iter()
                                    .map(|(item, _)| item)
                                    .filter(|&i| taken.insert(i)),
                            );
                            continue;
                        }
                        let own_hits: Vec<_> = self
                            .own_hits
                            .get(member, 2 * share)
                            .unwrap_or_default()
                            .iter()
                            .filter(|h| job.exclude.binary_search(&h.item).is_err())
                            .copied()
                            .collect();
                        let own_list = candidates::merge(
                            &space,
                            &member.vector[..DIM],
                            own,
                            &job.exclude,
                            &own_hits,
                            share,
                        );
                        pool.extend(own_list.iter().map(|c| c.item).filter(|&i| taken.insert(i)));
                    }
                }
                let pooled = candidates::group_scores(&scores);
                let group_list =
                    candidates::merge(&space, vector, &pooled, &job.exclude, hits, job.candidates);
                for c in group_list {
                    if pool.len() >= job.candidates.max(share * job.members.len()) {
                        break;
                    }
                    if taken.insert(c.item) {
                        pool.push(c.item);
                    }
                }
                Planned {
                    pool,
                    kept_positions: None,
                    member_scores: scores.into_iter().map(Some).collect(),
                }
            })
            .collect()
    }
}

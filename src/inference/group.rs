//! Ranking for a group: one pool of candidates that every member contributes to (each member's
//! own best by item-item and dot product, a guaranteed share each, then the group vector's and
//! the members' pooled item-item scores), every member's scores for the pool in one NCF + hybrid
//! pass, each member's utility for each candidate on a common 0–1 scale ([`Utility`]), the
//! group's aggregation strategy, and reasons for the picks averaged over the members.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use rustc_hash::{FxHashMap, FxHashSet};

use super::{
    candidates,
    engine::{Engine, ScoreRow},
    features::{Candidate, FeatureRow, Listener, FEATURES, GROUP_AGREEMENT},
    neighbours::ItemScores,
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
fn own_from_neighbours(own: &ItemScores, share: usize) -> bool {
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
    /// Whether the group's part of the pool was kept or retrieved for this ranking, and why.
    pub pool: GroupPart,
    /// Member × candidate rows featurised and scored by NCF for this ranking (the others were
    /// kept from the room's previous ranking).
    pub rows_scored: usize,
    /// Members whose own best tracks were found for this ranking by a scan of the whole
    /// catalog (a taste with too few item-item neighbours, not seen before; a taste shared by
    /// rooms of one batch is scanned once, counted for the first).
    pub own_scans: usize,
}

/// Where a ranking's group candidates came from: the room's kept pool, or retrieved for it
/// (each reason its own, so the metrics tell which of the constants below makes rooms scan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupPart {
    Kept,
    /// Nothing to build on: the room's first ranking, or its settings changed.
    New,
    /// Kept for [`POOL_MAX_AGE`].
    Aged,
    /// The group vector moved past [`POOL_DRIFT_COSINE`].
    Drifted,
    /// The playlist took more than [`POOL_USED_UP`] of it.
    UsedUp,
}

impl GroupPart {
    pub fn retrieved(self) -> bool {
        self != GroupPart::Kept
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            GroupPart::Kept => "kept",
            GroupPart::New => "new",
            GroupPart::Aged => "aged",
            GroupPart::Drifted => "drifted",
            GroupPart::UsedUp => "used_up",
        }
    }
}

/// The group's part of a room's pool is retrieved again after this long ...
const POOL_MAX_AGE: Duration = Duration::from_secs(20);
/// ... or once the group vector has moved this far from the one it was retrieved for (the
/// cosine of the two) ...
const POOL_DRIFT_COSINE: f32 = 0.95;
/// ... or once the room's playlist has taken more than this share of it.
const POOL_USED_UP: f32 = 0.25;

/// What one ranking of a room leaves for its next. The pool is each member's own best
/// candidates, then the group's (its vector's and the pooled item-item scores); every
/// member's features over it (NCF score included) depend on that member's taste alone. An
/// operation changes one member's taste, so the next ranking finds that member's own
/// candidates again (item-item neighbours, or one dot-product query), keeps the others' and
/// the group's, scores that member over the pool and the others over the candidates new to
/// them, rewrites every row's group agreement (the group vector moved) and reruns the ranker
/// over all rows: the same numbers a full scoring of that pool gives, for a fraction of the
/// NCF work and no scan for the group. The group's part is retrieved again when old, drifted
/// or used up (the constants above). Members are matched by their taste, not their place: one
/// who joins is scored over the whole pool like one whose taste changed, and those who stay
/// keep their features (their own candidates are found again: each one's share changed).
#[derive(Debug)]
pub struct KeptPool {
    pool: Vec<u32>,
    candidates: usize,
    own_candidates: bool,
    /// The group's candidates, best first, and what they were retrieved for.
    group: Vec<u32>,
    group_len: usize,
    group_vector: Vec<f32>,
    group_at: Instant,
    members: Vec<KeptMember>,
}

#[derive(Debug)]
struct KeptMember {
    taste: Arc<Listener>,
    /// The member's own best candidates (for their share of the pool).
    own: Vec<u32>,
    /// Over `pool`; `None`: to be scored again.
    features: Option<Vec<FeatureRow>>,
}

impl KeptPool {
    pub fn pool(&self) -> &[u32] {
        &self.pool
    }

    /// The same pool with no member's features kept: the next ranking scores every member over
    /// it, as a full refresh of this pool would (benchmarks and tests compare the two).
    pub fn unscored(&self) -> KeptPool {
        KeptPool {
            pool: self.pool.clone(),
            group: self.group.clone(),
            group_vector: self.group_vector.clone(),
            members: self
                .members
                .iter()
                .map(|m| KeptMember {
                    taste: Arc::clone(&m.taste),
                    own: m.own.clone(),
                    features: None,
                })
                .collect(),
            ..*self
        }
    }

    /// Whether `job` can build on this: the same settings. Members may have come or gone: those
    /// still there are found by their taste (see [`KeptPool::member`]).
    fn fits(&self, job: &GroupRankJob) -> bool {
        self.candidates == job.candidates && self.own_candidates == job.own_candidates
    }

    /// What was kept for this very taste, if a member had it (a taste is shared, never changed
    /// in place: a member whose taste changed has a new one, and one who joined is not here).
    fn member(&self, taste: &Arc<Listener>) -> Option<&KeptMember> {
        self.members.iter().find(|k| Arc::ptr_eq(&k.taste, taste))
    }

    /// The group's kept candidates still allowed, or why they are to be retrieved again.
    fn group_list(
        &self,
        job: &GroupRankJob,
        vector: &[f32],
        now: Instant,
    ) -> Result<Vec<u32>, GroupPart> {
        if now.saturating_duration_since(self.group_at) >= POOL_MAX_AGE {
            return Err(GroupPart::Aged);
        }
        if cosine(&self.group_vector, vector) < POOL_DRIFT_COSINE {
            return Err(GroupPart::Drifted);
        }
        let left = allowed(&self.group, &job.exclude);
        let used = 1.0 - left.len() as f32 / self.group_len.max(1) as f32;
        if used > POOL_USED_UP {
            return Err(GroupPart::UsedUp);
        }
        Ok(left)
    }

    /// The member's kept own candidates still allowed, if their taste is unchanged and their
    /// share of the pool is too (it depends on how many members there are).
    fn own_list(&self, taste: &Arc<Listener>, job: &GroupRankJob) -> Option<Vec<u32>> {
        if self.members.len() != job.members.len() {
            return None;
        }
        self.member(taste)
            .map(|kept| allowed(&kept.own, &job.exclude))
    }

    /// The member's kept features (over [`KeptPool::pool`]), if their taste is unchanged.
    fn features(&self, taste: &Arc<Listener>) -> Option<&[FeatureRow]> {
        self.member(taste)?.features.as_deref()
    }

    /// Each kept candidate's place in the pool, to find kept features by item (one map per
    /// ranking, shared by the members).
    fn places(&self) -> FxHashMap<u32, usize> {
        self.pool
            .iter()
            .enumerate()
            .map(|(j, &item)| (item, j))
            .collect()
    }
}

fn allowed(items: &[u32], exclude: &[u32]) -> Vec<u32> {
    items
        .iter()
        .copied()
        .filter(|i| exclude.binary_search(i).is_err())
        .collect()
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

/// A member's kept features for a ranking: where each candidate of the new pool sits in the
/// kept rows (`None`: to be scored).
struct KeptRows<'a> {
    rows: &'a [FeatureRow],
    at: Vec<Option<usize>>,
}

/// One job's pool as it is being put together.
struct Planned<'a> {
    /// Each member's item-item scores, where needed (own candidates to find, the group's to
    /// retrieve, or rows to score).
    item_item: Vec<Option<ItemScores>>,
    /// Each member's own candidates: kept, or `None` to find.
    own: Vec<Option<Vec<u32>>>,
    /// The group's candidates: kept, or `None` to retrieve.
    group: Option<Vec<u32>>,
    /// Where they come from.
    group_part: GroupPart,
    /// The room's kept pool, when the job can build on it (else every part is new).
    kept: Option<&'a KeptPool>,
}

impl Engine {
    pub fn rank_groups(&mut self, jobs: &[GroupRankJob]) -> Result<Vec<GroupRanked>, String> {
        let clock = Instant::now();
        let space = Arc::clone(&self.space);
        let vectors: Vec<Vec<f32>> = jobs.iter().map(|j| group_vector(&j.members)).collect();
        let mut plans: Vec<Planned> = jobs
            .iter()
            .zip(&vectors)
            .map(|(job, vector)| {
                let kept = job.kept.as_deref().filter(|k| k.fits(job));
                let own: Vec<Option<Vec<u32>>> = job
                    .members
                    .iter()
                    .map(|taste| kept.and_then(|k| k.own_list(taste, job)))
                    .collect();
                let (group, group_part) = match kept.map(|k| k.group_list(job, vector, clock)) {
                    Some(Ok(list)) => (Some(list), GroupPart::Kept),
                    Some(Err(why)) => (None, why),
                    None => (None, GroupPart::New),
                };
                let item_item = job
                    .members
                    .iter()
                    .zip(&own)
                    .map(|(taste, own)| {
                        (own.is_none() || group.is_none())
                            .then(|| space.neighbours().scores(&taste.seeds))
                    })
                    .collect();
                Planned {
                    item_item,
                    own,
                    group,
                    group_part,
                    kept,
                }
            })
            .collect();
        let (pools, own_scans) = self.fill_pools(jobs, &vectors, &mut plans);
        self.phases.retrieval += clock.elapsed();

        // Rows to score: each member over the candidates they have no kept features for (all of
        // them when their taste changed). Each member scores with their own dot product and
        // item-item scores. A kept row is found by the candidate's place in the kept pool.
        let mut kept_features: Vec<Vec<KeptRows>> = Vec::with_capacity(jobs.len());
        let mut wanted: Vec<Vec<Vec<u32>>> = Vec::with_capacity(jobs.len());
        for ((job, plan), pool) in jobs.iter().zip(&mut plans).zip(&pools) {
            let places = plan.kept.map(KeptPool::places).unwrap_or_default();
            let mut job_kept = Vec::with_capacity(job.members.len());
            let mut job_wanted = Vec::with_capacity(job.members.len());
            for (m, member) in job.members.iter().enumerate() {
                let rows = plan.kept.and_then(|k| k.features(member));
                let at: Vec<Option<usize>> = pool
                    .iter()
                    .map(|item| rows.and_then(|_| places.get(item).copied()))
                    .collect();
                let missing: Vec<u32> = pool
                    .iter()
                    .zip(&at)
                    .filter(|(_, at)| at.is_none())
                    .map(|(&item, _)| item)
                    .collect();
                if !missing.is_empty() && plan.item_item[m].is_none() {
                    plan.item_item[m] = Some(space.neighbours().scores(&member.seeds));
                }
                job_kept.push(KeptRows {
                    rows: rows.unwrap_or_default(),
                    at,
                });
                job_wanted.push(missing);
            }
            kept_features.push(job_kept);
            wanted.push(job_wanted);
        }
        let mut rows = Vec::new();
        for ((job, plan), job_wanted) in jobs.iter().zip(&plans).zip(&wanted) {
            for ((member, own), missing) in job.members.iter().zip(&plan.item_item).zip(job_wanted)
            {
                if missing.is_empty() {
                    continue;
                }
                let own = own.as_ref().expect("item-item scores for rows to score");
                rows.push(ScoreRow {
                    listener: member,
                    candidates: missing
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
        let rows_scored: Vec<usize> = wanted
            .iter()
            .map(|w| w.iter().map(Vec::len).sum())
            .collect();
        let mut fresh = self.featurize(&rows)?.into_iter();
        drop(rows);
        // Every row in job and member order, over the job's pool; "group agreement" is each
        // candidate's cosine with the group vector, the same for every member of a room.
        let mut features = Vec::with_capacity(jobs.iter().map(|j| j.members.len()).sum());
        for (((pool, vector), job_kept), job_wanted) in
            pools.iter().zip(&vectors).zip(kept_features).zip(&wanted)
        {
            let agreement: Vec<f32> = pool
                .iter()
                .map(|&i| dot(vector, space.vector_slice(i)) / (space.norms()[i as usize] + 1e-9))
                .collect();
            for (kept, missing) in job_kept.into_iter().zip(job_wanted) {
                // The scored rows come in the order of `missing`: the pool's, skipping kept ones.
                let mut computed = if missing.is_empty() {
                    Vec::new()
                } else {
                    fresh.next().expect("one scored row per member to score")
                }
                .into_iter();
                let row: Vec<FeatureRow> = kept
                    .at
                    .iter()
                    .zip(&agreement)
                    .map(|(at, &a)| {
                        let mut f = match at {
                            Some(j) => kept.rows[*j],
                            None => computed.next().expect("a scored row per missing candidate"),
                        };
                        f[GROUP_AGREEMENT] = a;
                        f
                    })
                    .collect();
                features.push(row);
            }
        }
        let scored = self.score_features(features)?;
        let mut selections = Vec::with_capacity(jobs.len());
        let mut picks_per_row: Vec<Vec<usize>> = Vec::with_capacity(scored.features.len());
        let mut first_row = 0;
        for (job, pool) in jobs.iter().zip(&pools) {
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
        for (((((job, plan), pool), vector), ((selection, utilities), rows_scored)), own_scans) in
            jobs.iter()
                .zip(plans)
                .zip(pools)
                .zip(vectors)
                .zip(selections.into_iter().zip(rows_scored))
                .zip(own_scans)
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
                        item: pool[j],
                        utilities: utilities.iter().map(|u| u[j]).collect(),
                        features,
                        contributions: mean_contributions,
                    }
                })
                .collect();
            let considered = pool.len();
            let group = plan.group.expect("every group part filled");
            let previous = plan.kept.filter(|_| !plan.group_part.retrieved());
            let kept = KeptPool {
                candidates: job.candidates,
                own_candidates: job.own_candidates,
                group_len: previous.map_or(group.len(), |k| k.group_len),
                group_vector: previous.map_or(vector, |k| k.group_vector.clone()),
                group_at: previous.map_or(clock, |k| k.group_at),
                group,
                members: job
                    .members
                    .iter()
                    .zip(plan.own)
                    .zip(&scored.features[member_rows.clone()])
                    .map(|((taste, own), features)| KeptMember {
                        taste: Arc::clone(taste),
                        own: own.expect("every own part filled"),
                        features: Some(features.clone()),
                    })
                    .collect(),
                pool,
            };
            out.push(GroupRanked {
                items,
                satisfaction: selection.satisfaction,
                harmony: selection.harmony,
                considered,
                pool: plan.group_part,
                rows_scored,
                own_scans,
                kept: Arc::new(kept),
            });
            first_row += job.members.len();
        }
        Ok(out)
    }

    /// Finds what the plans lack (members' own candidates, the group's) with one retrieval
    /// pass for every query (each group vector to retrieve, then members' own where their
    /// item-item neighbours are too few), and puts each pool together: every member's own share
    /// in member order, then the group's best until the pool is full. Also returns, per job,
    /// how many members' own hits it had the catalog scanned for.
    fn fill_pools(
        &mut self,
        jobs: &[GroupRankJob],
        vectors: &[Vec<f32>],
        plans: &mut [Planned<'_>],
    ) -> (Vec<Vec<u32>>, Vec<usize>) {
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
        let to_retrieve: Vec<usize> = (0..jobs.len())
            .filter(|&i| plans[i].group.is_none())
            .collect();
        let mut queries: Vec<RetrievalQuery> = to_retrieve
            .iter()
            .map(|&i| RetrievalQuery {
                vector: vectors[i].clone(),
                exclude: jobs[i].exclude.clone(),
                k: jobs[i].candidates,
            })
            .collect();
        // Members whose own hits are not cached yet (each taste once, however many rooms, for
        // the largest share any of its rooms needs). A member whose liked tracks have at least
        // twice a share of item-item neighbours needs none: their own candidates come from
        // those neighbours, which cost no scan of the catalog.
        let mut missing: Vec<(Arc<Listener>, usize)> = Vec::new();
        let mut own_scans = vec![0; jobs.len()];
        for (((job, plan), &share), scans) in jobs
            .iter()
            .zip(plans.iter())
            .zip(&shares)
            .zip(&mut own_scans)
        {
            for ((member, own), scores) in job.members.iter().zip(&plan.own).zip(&plan.item_item) {
                let Some(scores) = scores.as_ref().filter(|_| own.is_none() && share > 0) else {
                    continue;
                };
                if own_from_neighbours(scores, share) || self.own_hits.has(member, 2 * share) {
                    continue;
                }
                match missing.iter_mut().find(|(m, _)| Arc::ptr_eq(m, member)) {
                    Some((_, asked)) => *asked = (*asked).max(2 * share),
                    None => {
                        missing.push((Arc::clone(member), 2 * share));
                        *scans += 1;
                    }
                }
            }
        }
        queries.extend(missing.iter().map(|(member, asked)| RetrievalQuery {
            vector: member.vector[..DIM].to_vec(),
            exclude: Vec::new(),
            k: *asked,
        }));
        let mut hits = if queries.is_empty() {
            Vec::new()
        } else {
            retrieval::top_k(space.items(), Metric::Dot, &queries)
        };
        for ((member, asked), own) in missing.iter().zip(hits.split_off(to_retrieve.len())) {
            self.own_hits.insert(member, *asked, own);
        }
        let mut group_hits: HashMap<usize, Vec<retrieval::Hit>> =
            to_retrieve.into_iter().zip(hits).collect();
        for (i, ((job, plan), &share)) in jobs.iter().zip(plans.iter_mut()).zip(&shares).enumerate()
        {
            for (m, member) in job.members.iter().enumerate() {
                if plan.own[m].is_some() {
                    continue;
                }
                let scores = plan.item_item[m]
                    .as_ref()
                    .expect("item-item scores for own candidates to find");
                let own = if share == 0 {
                    Vec::new()
                } else if own_from_neighbours(scores, share) {
                    super::neighbours::best(scores, &job.exclude, share)
                        .into_iter()
                        .map(|(item, _)| item)
                        .collect()
                } else {
                    let own_hits: Vec<_> = self
                        .own_hits
                        .get(member, 2 * share)
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|h| job.exclude.binary_search(&h.item).is_err())
                        .collect();
                    candidates::merge(
                        &space,
                        &member.vector[..DIM],
                        scores,
                        &job.exclude,
                        &own_hits,
                        share,
                    )
                    .iter()
                    .map(|c| c.item)
                    .collect()
                };
                plan.own[m] = Some(own);
            }
            if let Some(hits) = group_hits.remove(&i) {
                let pooled = candidates::group_scores(
                    plan.item_item
                        .iter()
                        .map(|s| s.as_ref().expect("every member's item-item scores")),
                );
                let list = candidates::merge(
                    &space,
                    &vectors[i],
                    &pooled,
                    &job.exclude,
                    &hits,
                    job.candidates,
                );
                plan.group = Some(list.iter().map(|c| c.item).collect());
            }
        }
        let pools = jobs
            .iter()
            .zip(plans.iter())
            .zip(&shares)
            .map(|((job, plan), &share)| {
                let mut pool = Vec::with_capacity(job.candidates);
                let mut taken = FxHashSet::default();
                for own in plan.own.iter().flatten() {
                    pool.extend(own.iter().copied().filter(|&i| taken.insert(i)));
                }
                for &item in plan.group.iter().flatten() {
                    if pool.len() >= job.candidates.max(share * job.members.len()) {
                        break;
                    }
                    if taken.insert(item) {
                        pool.push(item);
                    }
                }
                pool
            })
            .collect();
        (pools, own_scans)
    }
}

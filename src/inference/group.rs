//! Ranking for a group: one candidate list (the group vector's dot product and the members'
//! pooled item-item scores), every member's scores for the same candidates in one NCF + hybrid
//! pass, the group's aggregation strategy, and reasons for the picks averaged over the members.

use std::{sync::Arc, time::Instant};

use super::{
    candidates,
    engine::{Engine, ScoreRow},
    features::{Candidate, FeatureRow, Listener, FEATURES},
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

#[derive(Debug, Clone, PartialEq)]
pub struct GroupRanked {
    pub items: Vec<GroupRankedItem>,
    /// Each member's satisfaction with the list (see [`crate::aggregate`]).
    pub satisfaction: Vec<f64>,
    pub harmony: Harmony,
    pub considered: usize,
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

impl Engine {
    pub fn rank_groups(&mut self, jobs: &[GroupRankJob]) -> Result<Vec<GroupRanked>, String> {
        let clock = Instant::now();
        let space = Arc::clone(&self.space);
        let vectors: Vec<Vec<f32>> = jobs.iter().map(|j| group_vector(&j.members)).collect();
        let queries: Vec<RetrievalQuery> = jobs
            .iter()
            .zip(&vectors)
            .map(|(job, vector)| RetrievalQuery {
                vector: vector.clone(),
                exclude: job.exclude.clone(),
                k: job.candidates,
            })
            .collect();
        let hits = retrieval::top_k(space.vectors(), space.norms(), Metric::Dot, &queries);
        // Each member's item-item scores, and the group's list built from the pooled scores.
        let member_scores: Vec<Vec<_>> = jobs
            .iter()
            .map(|job| {
                job.members
                    .iter()
                    .map(|m| space.neighbours().scores(&m.seeds))
                    .collect()
            })
            .collect();
        let lists: Vec<Vec<Candidate>> = jobs
            .iter()
            .zip(&hits)
            .zip(&vectors)
            .zip(&member_scores)
            .map(|(((job, hits), vector), scores)| {
                let pooled = candidates::group_scores(scores);
                candidates::merge(&space, vector, &pooled, &job.exclude, hits, job.candidates)
            })
            .collect();
        self.phases.retrieval += clock.elapsed();
        // Every member row gets the group's candidates with the member's own item-item scores;
        // "group agreement" is each candidate's cosine with the group vector (unit length, so
        // the retrieval score over the item norm).
        let members: Vec<Listener> = jobs
            .iter()
            .zip(&lists)
            .flat_map(|(job, list)| {
                let agreement: Vec<f32> = list
                    .iter()
                    .map(|c| c.retrieval / (space.norms()[c.item as usize] + 1e-9))
                    .collect();
                job.members.iter().map(move |m| Listener {
                    agreement: Some(agreement.clone()),
                    ..(**m).clone()
                })
            })
            .collect();
        let mut rows = Vec::with_capacity(members.len());
        let mut listeners = members.iter();
        for (list, scores) in lists.iter().zip(&member_scores) {
            for own in scores {
                rows.push(ScoreRow {
                    listener: listeners.next().expect("one listener per member"),
                    candidates: list
                        .iter()
                        .map(|c| Candidate {
                            item_item: candidates::item_item_score(own, c.item),
                            ..*c
                        })
                        .collect(),
                });
            }
        }
        let scored = self.score_rows(&rows)?;
        let mut selections = Vec::with_capacity(jobs.len());
        let mut picks_per_row: Vec<Vec<usize>> = Vec::with_capacity(rows.len());
        let mut first_row = 0;
        for (job, list) in jobs.iter().zip(&lists) {
            let member_rows = first_row..first_row + job.members.len();
            let utilities: Vec<Vec<f32>> = member_rows
                .clone()
                .map(|r| {
                    (0..list.len())
                        .map(|j| sigmoid(scored.score(r, j)))
                        .collect()
                })
                .collect();
            let selection = aggregate::select(job.strategy, &utilities, job.top);
            for _ in member_rows {
                picks_per_row.push(selection.picks.clone());
            }
            selections.push((selection, utilities));
            first_row += job.members.len();
        }
        let contributions = self.occlude(&scored, &picks_per_row)?;
        let mut first_row = 0;
        let mut out = Vec::with_capacity(jobs.len());
        for ((job, list), (selection, utilities)) in jobs.iter().zip(&lists).zip(selections) {
            let n = job.members.len() as f32;
            let items = selection
                .picks
                .iter()
                .enumerate()
                .map(|(rank, &j)| {
                    let mut features = [0f32; FEATURES];
                    let mut mean_contributions = [0f32; FEATURES];
                    let member_rows = first_row..first_row + job.members.len();
                    for (row, row_contributions) in scored.features[member_rows.clone()]
                        .iter()
                        .zip(&contributions[member_rows])
                    {
                        for f in 0..FEATURES {
                            features[f] += row[j][f] / n;
                            mean_contributions[f] += row_contributions[rank][f] / n;
                        }
                    }
                    GroupRankedItem {
                        item: list[j].item,
                        utilities: utilities.iter().map(|u| u[j]).collect(),
                        features,
                        contributions: mean_contributions,
                    }
                })
                .collect();
            out.push(GroupRanked {
                items,
                satisfaction: selection.satisfaction,
                harmony: selection.harmony,
                considered: list.len(),
            });
            first_row += job.members.len();
        }
        Ok(out)
    }
}

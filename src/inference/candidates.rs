//! Candidate lists from two sources, built exactly as the training pipeline builds them
//! (`union_candidates` in models/train/chorus_train/item_item.py): first the best positive
//! item-item scores, up to the manifest's share of the list, then the best dot-product hits not
//! already taken, until the list is full.

use rustc_hash::FxHashSet;

use super::{
    features::Candidate,
    neighbours::{self, ItemScores},
    retrieval::Hit,
    space::{dot, ItemSpace},
};

/// `total` candidates (fewer only when the catalog runs out) for a listener with item vector
/// `vector` and item-item scores `item_item`; `hits` are the dot product's best, already without
/// `exclude` (sorted).
pub fn merge(
    space: &ItemSpace,
    vector: &[f32],
    item_item: &ItemScores,
    exclude: &[u32],
    hits: &[Hit],
    total: usize,
) -> Vec<Candidate> {
    let chosen = neighbours::best(item_item, exclude, space.item_item_candidates(total));
    let taken: FxHashSet<u32> = chosen.iter().map(|&(item, _)| item).collect();
    let mut out: Vec<Candidate> = chosen
        .into_iter()
        .map(|(item, score)| Candidate {
            item,
            retrieval: dot(vector, space.vector_slice(item)),
            item_item: score,
        })
        .collect();
    for hit in hits {
        if out.len() >= total {
            break;
        }
        if !taken.contains(&hit.item) {
            out.push(Candidate {
                item: hit.item,
                retrieval: hit.score,
                item_item: item_item_score(item_item, hit.item),
            });
        }
    }
    out
}

/// A track's item-item score as the ranker sees it (never negative).
pub fn item_item_score(scores: &ItemScores, item: u32) -> f32 {
    scores.get(&item).copied().unwrap_or(0.0).max(0.0)
}

/// Item-item scores for a group: each member's scores over their own best, summed, so every
/// member pulls equally however long their history.
pub fn group_scores<'a>(members: impl IntoIterator<Item = &'a ItemScores>) -> ItemScores {
    let mut out = ItemScores::default();
    for scores in members {
        let top = scores.values().copied().fold(0f32, f32::max);
        if top > 0.0 {
            for (&item, &s) in scores {
                *out.entry(item).or_default() += s / top;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use ndarray::Array2;

    use super::*;
    use crate::{
        catalog::{tests::track, Catalog},
        inference::{neighbours::Neighbours, space::DIM},
    };

    /// Six tracks with vectors along their own axis (length = row + 1); item-item share 0.5.
    fn space() -> ItemSpace {
        let ids = ["a", "b", "c", "d", "e", "f"];
        let catalog = Catalog::new(ids.iter().map(|id| track(id, id, "X", "pop", 50)).collect());
        let shipped: HashMap<String, usize> = ids
            .iter()
            .enumerate()
            .map(|(r, id)| (id.to_string(), r))
            .collect();
        let mut vectors = vec![0f32; ids.len() * DIM];
        for r in 0..ids.len() {
            vectors[r * DIM + r] = (r + 1) as f32;
        }
        let content = Array2::<f32>::zeros((ids.len(), DIM));
        let none = Neighbours::empty(ids.len());
        ItemSpace::build(&catalog, &shipped, &vectors, &none, 0.5, content)
    }

    fn hit(item: u32, score: f32) -> Hit {
        Hit { item, score }
    }

    #[test]
    fn item_item_picks_come_first_then_the_dot_product_fills_the_list() {
        let space = space();
        let mut vector = vec![0f32; DIM];
        vector[1] = 1.0;
        vector[5] = 1.0;
        let item_item: ItemScores = [(3, 0.2), (4, 0.9), (0, 0.5), (2, -0.3)]
            .into_iter()
            .collect();
        // Track 0 is excluded (the listener's own); 4 tracks wanted, at most 2 from item-item.
        let hits = [hit(5, 6.0), hit(1, 2.0), hit(4, 0.0), hit(3, 0.0)];
        let list = merge(&space, &vector, &item_item, &[0], &hits, 4);
        let items: Vec<u32> = list.iter().map(|c| c.item).collect();
        assert_eq!(items, vec![4, 3, 5, 1]);
        // Item-item picks carry their dot product; dot-product picks their item-item score.
        assert_eq!(list[0].retrieval, 0.0);
        assert_eq!(list[0].item_item, 0.9);
        assert_eq!(list[2].retrieval, 6.0);
        assert_eq!(list[2].item_item, 0.0);
    }

    #[test]
    fn without_item_item_scores_the_list_is_the_dot_product() {
        let space = space();
        let vector = vec![1f32; DIM];
        let hits = [hit(5, 6.0), hit(4, 5.0), hit(3, 4.0)];
        let list = merge(&space, &vector, &ItemScores::default(), &[], &hits, 3);
        assert_eq!(
            list.iter().map(|c| c.item).collect::<Vec<_>>(),
            vec![5, 4, 3]
        );
        // A short catalog gives a short list rather than a panic.
        assert_eq!(
            merge(&space, &vector, &ItemScores::default(), &[], &hits, 10).len(),
            3
        );
    }

    #[test]
    fn group_scores_weigh_every_member_alike() {
        let heavy: ItemScores = [(1, 10.0), (2, 5.0)].into_iter().collect();
        let light: ItemScores = [(2, 0.1), (3, 0.05)].into_iter().collect();
        let pooled = group_scores(&[heavy, light, ItemScores::default()]);
        assert_eq!(pooled[&1], 1.0);
        assert_eq!(pooled[&2], 1.5);
        assert_eq!(pooled[&3], 0.5);
    }
}

//! Item-item neighbours: each track's strongest positive EASE weights (`item_neighbours.bin`,
//! written by `models/train/chorus_train/item_item.py`), the second candidate source beside the
//! 64-d dot product. A listener with liked tracks h (weights x_h) scores track j as
//! Σ_h x_h · B[h, j] over the stored neighbours of each h; tracks nobody's history points to
//! score nothing and are left to the dot product.

use std::{collections::HashMap, path::Path};

use crate::models::{Manifest, ModelError};

/// Item-item scores by item row. Rankings build several per request, so they hash with Fx, not
/// SipHash: the keys are catalog rows reached through the model's neighbour lists, a bounded
/// set no listener can fill with colliding keys.
pub type ItemScores = HashMap<u32, f32, rustc_hash::FxBuildHasher>;

/// Sparse rows of B in compressed-row form, each row strongest first.
#[derive(Debug, Clone, Default)]
pub struct Neighbours {
    indptr: Vec<u32>,
    indices: Vec<u32>,
    weights: Vec<f32>,
}

impl Neighbours {
    /// No neighbours for `count` items (a catalog the models never saw).
    pub fn empty(count: usize) -> Self {
        Self {
            indptr: vec![0; count + 1],
            indices: Vec::new(),
            weights: Vec::new(),
        }
    }

    /// Parses the shipped layout: `indptr` u32[count + 1], `indices` u32[nnz], `weights`
    /// f32[nnz], little-endian, nnz = indptr[count].
    pub fn from_bytes(bytes: &[u8], count: usize) -> Result<Self, String> {
        let words = |range: std::ops::Range<usize>| -> Vec<[u8; 4]> {
            bytes[range]
                .chunks_exact(4)
                .map(|b| [b[0], b[1], b[2], b[3]])
                .collect()
        };
        let head = 4 * (count + 1);
        if bytes.len() < head {
            return Err(format!(
                "{} bytes cannot hold the row offsets of {count} items",
                bytes.len()
            ));
        }
        let indptr: Vec<u32> = words(0..head).into_iter().map(u32::from_le_bytes).collect();
        let nnz = indptr[count] as usize;
        if bytes.len() != head + 8 * nnz {
            return Err(format!(
                "{} bytes, expected {} for {count} items and {nnz} neighbours",
                bytes.len(),
                head + 8 * nnz
            ));
        }
        if indptr[0] != 0 || indptr.windows(2).any(|w| w[0] > w[1]) {
            return Err("row offsets are not increasing from 0".into());
        }
        let indices: Vec<u32> = words(head..head + 4 * nnz)
            .into_iter()
            .map(u32::from_le_bytes)
            .collect();
        if let Some(bad) = indices.iter().find(|&&i| i as usize >= count) {
            return Err(format!("neighbour {bad} is not one of the {count} items"));
        }
        let weights = words(head + 4 * nnz..bytes.len())
            .into_iter()
            .map(f32::from_le_bytes)
            .collect();
        Ok(Self {
            indptr,
            indices,
            weights,
        })
    }

    /// The same neighbours over catalog rows: `shipped_row_of[c]` is catalog row c's row in the
    /// shipped file, if the models saw the track. Neighbours outside the catalog are dropped.
    pub fn remap(&self, shipped_row_of: &[Option<usize>]) -> Self {
        let mut catalog_row_of = vec![u32::MAX; self.len()];
        for (c, r) in shipped_row_of.iter().enumerate() {
            if let Some(r) = r {
                catalog_row_of[*r] = c as u32;
            }
        }
        let mut out = Self::empty(0);
        for r in shipped_row_of {
            if let Some(r) = r {
                for (j, w) in self.row(*r as u32) {
                    let c = catalog_row_of[j as usize];
                    if c != u32::MAX {
                        out.indices.push(c);
                        out.weights.push(w);
                    }
                }
            }
            out.indptr.push(out.indices.len() as u32);
        }
        out
    }

    /// Items covered (rows).
    pub fn len(&self) -> usize {
        self.indptr.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stored neighbour weights in all.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Item `h`'s neighbours and weights, strongest first.
    pub fn row(&self, h: u32) -> impl Iterator<Item = (u32, f32)> + '_ {
        let (start, end) = (
            self.indptr[h as usize] as usize,
            self.indptr[h as usize + 1] as usize,
        );
        self.indices[start..end]
            .iter()
            .copied()
            .zip(self.weights[start..end].iter().copied())
    }

    /// Item-item scores of everything the seeds point to.
    pub fn scores(&self, seeds: &[(u32, f32)]) -> ItemScores {
        // Sized for every neighbour once (rows overlap, so this is an upper bound): growing the
        // map step by step rehashed it several times per ranking.
        let most: usize = seeds
            .iter()
            .filter(|&&(h, _)| (h as usize) < self.len())
            .map(|&(h, _)| (self.indptr[h as usize + 1] - self.indptr[h as usize]) as usize)
            .sum();
        let mut out = ItemScores::with_capacity_and_hasher(most, Default::default());
        for &(h, x) in seeds {
            if (h as usize) < self.len() {
                for (j, w) in self.row(h) {
                    *out.entry(j).or_default() += x * w;
                }
            }
        }
        out
    }
}

/// The shipped neighbours (in shipped item order), checked against the manifest.
pub fn load(manifest: &Manifest, dir: &Path) -> Result<Neighbours, ModelError> {
    let spec = &manifest.items.neighbours;
    let path = dir.join(&spec.file);
    let bytes = std::fs::read(&path).map_err(|_| ModelError::MissingFile { path })?;
    let neighbours = Neighbours::from_bytes(&bytes, manifest.items.count)
        .map_err(|e| ModelError::Manifest(format!("{}: {e}", spec.file)))?;
    if neighbours.nnz() != spec.nnz {
        return Err(ModelError::Manifest(format!(
            "{} holds {} neighbours, the manifest says {}",
            spec.file,
            neighbours.nnz(),
            spec.nnz
        )));
    }
    Ok(neighbours)
}

/// The `k` best positive scores outside `exclude` (sorted), best first; ties by item row.
pub fn best(scores: &ItemScores, exclude: &[u32], k: usize) -> Vec<(u32, f32)> {
    let mut all: Vec<(u32, f32)> = scores
        .iter()
        .filter(|&(item, &s)| s > 0.0 && exclude.binary_search(item).is_err())
        .map(|(&item, &s)| (item, s))
        .collect();
    let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    // Items are unique, so the order is total: the k best found first, then only they sorted.
    if k == 0 {
        return Vec::new();
    }
    if k < all.len() {
        all.select_nth_unstable_by(k - 1, order);
        all.truncate(k);
    }
    all.sort_unstable_by(order);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three items: 0 → {1: 0.5, 2: 0.25}, 1 → {0: 1.0}, 2 → {}.
    fn bytes() -> Vec<u8> {
        let mut b = Vec::new();
        for w in [0u32, 2, 3, 3] {
            b.extend(w.to_le_bytes());
        }
        for i in [1u32, 2, 0] {
            b.extend(i.to_le_bytes());
        }
        for w in [0.5f32, 0.25, 1.0] {
            b.extend(w.to_le_bytes());
        }
        b
    }

    #[test]
    fn parses_the_shipped_layout_and_scores_weighted_histories() {
        let n = Neighbours::from_bytes(&bytes(), 3).unwrap();
        assert_eq!((n.len(), n.nnz()), (3, 3));
        assert_eq!(n.row(0).collect::<Vec<_>>(), vec![(1, 0.5), (2, 0.25)]);
        let s = n.scores(&[(0, 2.0), (1, 1.0)]);
        assert_eq!(s[&1], 1.0);
        assert_eq!(s[&2], 0.5);
        assert_eq!(s[&0], 1.0);
        // Seeds outside the table are ignored, not a panic.
        assert!(n.scores(&[(7, 1.0)]).is_empty());
    }

    #[test]
    fn rejects_truncated_or_inconsistent_files() {
        let b = bytes();
        assert!(Neighbours::from_bytes(&b[..b.len() - 1], 3).is_err());
        assert!(Neighbours::from_bytes(&b[..8], 3).is_err());
        let mut bad = b.clone();
        bad[16..20].copy_from_slice(&9u32.to_le_bytes()); // first neighbour index out of range
        assert!(Neighbours::from_bytes(&bad, 3).is_err());
        assert!(Neighbours::from_bytes(&b, 4).is_err());
    }

    #[test]
    fn remap_follows_catalog_rows_and_drops_tracks_outside_the_catalog() {
        let n = Neighbours::from_bytes(&bytes(), 3).unwrap();
        // Catalog: row 0 is shipped item 1, row 1 an unknown track, row 2 shipped item 0.
        let m = n.remap(&[Some(1), None, Some(0)]);
        assert_eq!(m.len(), 3);
        assert_eq!(m.row(0).collect::<Vec<_>>(), vec![(2, 1.0)]);
        assert_eq!(m.row(1).count(), 0);
        // Shipped item 0's neighbour 2 is not in the catalog.
        assert_eq!(m.row(2).collect::<Vec<_>>(), vec![(0, 0.5)]);
    }

    #[test]
    fn best_skips_excluded_and_non_positive_scores() {
        let scores: ItemScores = [(1, 0.5), (2, 0.9), (3, -1.0), (4, 0.9), (5, 0.0)]
            .into_iter()
            .collect();
        assert_eq!(best(&scores, &[2], 10), vec![(4, 0.9), (1, 0.5)]);
        assert_eq!(best(&scores, &[], 2), vec![(2, 0.9), (4, 0.9)]);
        assert_eq!(best(&scores, &[], 1), vec![(2, 0.9)]);
        assert!(best(&scores, &[], 0).is_empty());
    }

    #[test]
    fn best_is_the_head_of_the_whole_order() {
        // Many scores with ties (a tenth of a step apart at most): the k best, ties by item row,
        // equal the first k of the whole list sorted.
        let scores: ItemScores = (0..500u32)
            .map(|i| (i * 7 % 503, ((i * 37) % 50) as f32 / 10.0 - 1.0))
            .collect();
        let mut all: Vec<(u32, f32)> = scores
            .iter()
            .filter(|&(_, &s)| s > 0.0)
            .map(|(&i, &s)| (i, s))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for k in [1, 2, 16, 100, all.len(), all.len() + 5] {
            assert_eq!(best(&scores, &[], k), all[..k.min(all.len())], "k = {k}");
        }
    }
}

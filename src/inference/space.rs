//! The item space: one vector per catalog track, in catalog order, plus the per-track values the
//! ranker's features need. Built once at startup and shared read-only by the inference threads.
//!
//! A track the models were trained with keeps its shipped CF vector; any other track (a later
//! import, a synthetic catalog) gets its `content.onnx` embedding, rescaled to the CF vectors'
//! typical length — the same rule the training pipeline used for its cold-start tracks.

use std::{collections::HashMap, sync::Arc};

use ndarray::{Array2, ArrayView1};

use super::{neighbours::Neighbours, retrieval::ItemMatrix};
use crate::catalog::{AudioFeatures, Catalog, Track};

/// Width of every item and user vector (`embedding_dim` in the manifest).
pub const DIM: usize = 64;
/// Inputs of `content.onnx`, in order: 11 audio features, release year, popularity, minutes.
pub const CONTENT_INPUTS: usize = 14;
/// How many tracks the popular-and-diverse starter list holds.
const STARTER_LEN: usize = 200;
/// How many of the most popular tracks the starter list is chosen from.
const STARTER_POOL: usize = 2_000;

/// Fallbacks for the content inputs a track or a classify request may lack: catalog medians.
#[derive(Debug, Clone, Copy)]
pub struct ContentDefaults {
    pub release_year: f32,
    pub popularity: f32,
    pub duration_min: f32,
}

pub struct ItemSpace {
    items: ItemMatrix,
    content_unit: Array2<f32>,
    popularity: Vec<f32>,
    freshness: Vec<f32>,
    from_content: Vec<bool>,
    starters: Vec<u32>,
    defaults: ContentDefaults,
    neighbours: Neighbours,
    item_item_share: f32,
    /// An even sample of catalog rows that a listener's scores are ranked against
    /// ([`ItemSpace::percentiles`]).
    reference: Vec<u32>,
}

/// Catalog rows in the percentile reference at most.
const REFERENCE_ROWS: usize = 1_000;

/// A listener's dot-product scores over the reference sample, sorted: where a track's score
/// falls among them is its catalog percentile for that listener.
#[derive(Debug, Clone)]
pub struct Percentiles {
    sorted: Vec<f32>,
}

impl Percentiles {
    /// The share (0–1) of the catalog this score beats (ties count half).
    pub fn of(&self, score: f32) -> f32 {
        if self.sorted.is_empty() {
            return 0.5;
        }
        let below = self.sorted.partition_point(|&s| s < score);
        let not_above = self.sorted.partition_point(|&s| s <= score);
        (below + not_above) as f32 / (2 * self.sorted.len()) as f32
    }
}

impl ItemSpace {
    /// `shipped` maps trained track ids to their rows of `shipped_vectors` (`[n, DIM]`) and of
    /// `shipped_neighbours`; `content_embeddings` holds `content.onnx`'s embedding of every
    /// catalog track, in order; `item_item_share` is the share of each candidate list the
    /// neighbours may fill.
    pub fn build(
        catalog: &Catalog,
        shipped: &HashMap<String, usize>,
        shipped_vectors: &[f32],
        shipped_neighbours: &Neighbours,
        item_item_share: f32,
        content_embeddings: Array2<f32>,
    ) -> Self {
        let n = catalog.len();
        assert_eq!(content_embeddings.nrows(), n, "one embedding per track");
        let row = |r: usize| &shipped_vectors[r * DIM..(r + 1) * DIM];
        let shipped_rows: Vec<Option<usize>> = catalog
            .tracks()
            .iter()
            .map(|t| shipped.get(t.id.as_str()).copied())
            .collect();
        let scale = cold_start_scale(&shipped_rows, row, &content_embeddings);
        let mut vectors = Array2::<f32>::zeros((n, DIM));
        let mut from_content = vec![false; n];
        for (i, shipped_row) in shipped_rows.iter().enumerate() {
            match shipped_row {
                Some(r) => vectors.row_mut(i).assign(&ArrayView1::from(row(*r))),
                None => {
                    vectors
                        .row_mut(i)
                        .assign(&content_embeddings.row(i).mapv(|x| x * scale));
                    from_content[i] = true;
                }
            }
        }
        let mut content_unit = content_embeddings;
        for mut r in content_unit.rows_mut() {
            let n = norm(&r.view()) + 1e-9;
            r.mapv_inplace(|x| x / n);
        }
        let tracks = catalog.tracks();
        let popularity = tracks
            .iter()
            .map(|t| f32::from(t.popularity) / 100.0)
            .collect();
        let freshness = tracks.iter().map(|t| freshness(t)).collect();
        let mut space = Self {
            items: ItemMatrix::new(vectors),
            content_unit,
            popularity,
            freshness,
            from_content,
            starters: Vec::new(),
            defaults: content_defaults(tracks),
            neighbours: shipped_neighbours.remap(&shipped_rows),
            item_item_share: item_item_share.clamp(0.0, 1.0),
            reference: (0..n as u32).step_by((n / REFERENCE_ROWS).max(1)).collect(),
        };
        space.starters = space.choose_starters(catalog.by_popularity());
        space
    }

    /// Where tracks fall in the catalog for a listener with this item vector: the percentile
    /// scale of its dot-product scores.
    pub fn percentiles(&self, vector: &[f32]) -> Percentiles {
        let mut sorted: Vec<f32> = self
            .reference
            .iter()
            .map(|&i| dot(vector, self.vector_slice(i)))
            .collect();
        sorted.sort_unstable_by(f32::total_cmp);
        Percentiles { sorted }
    }

    /// Item-item neighbours over catalog rows (empty rows for tracks the models never saw).
    pub fn neighbours(&self) -> &Neighbours {
        &self.neighbours
    }

    /// How many of `candidates` may come from the item-item neighbours.
    pub fn item_item_candidates(&self, candidates: usize) -> usize {
        (candidates as f32 * self.item_item_share).round() as usize
    }

    pub fn len(&self) -> usize {
        self.vectors().nrows()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The item vectors, for retrieval.
    pub fn items(&self) -> &ItemMatrix {
        &self.items
    }

    pub fn vectors(&self) -> &Array2<f32> {
        self.items.rows()
    }

    pub fn vector(&self, i: u32) -> ArrayView1<'_, f32> {
        self.vectors().row(i as usize)
    }

    /// The item vector as a slice (rows are contiguous).
    pub fn vector_slice(&self, i: u32) -> &[f32] {
        let i = i as usize;
        &self.vectors().as_slice().expect("standard layout")[i * DIM..(i + 1) * DIM]
    }

    /// The unit content embedding as a slice.
    pub fn content_slice(&self, i: u32) -> &[f32] {
        let i = i as usize;
        &self.content_unit.as_slice().expect("standard layout")[i * DIM..(i + 1) * DIM]
    }

    pub fn norms(&self) -> &[f32] {
        self.items.norms()
    }

    pub fn content_unit(&self, i: u32) -> ArrayView1<'_, f32> {
        self.content_unit.row(i as usize)
    }

    pub fn popularity(&self, i: u32) -> f32 {
        self.popularity[i as usize]
    }

    pub fn freshness(&self, i: u32) -> f32 {
        self.freshness[i as usize]
    }

    /// Whether the track's vector comes from the content model (it was not in the training data).
    pub fn from_content(&self, i: u32) -> bool {
        self.from_content[i as usize]
    }

    /// Cosine similarity of two tracks' item vectors.
    pub fn cosine(&self, a: u32, b: u32) -> f32 {
        self.vector(a).dot(&self.vector(b))
            / (self.norms()[a as usize] * self.norms()[b as usize] + 1e-9)
    }

    /// Popular tracks in an order that spreads across the item space: what a listener with no
    /// history is offered first.
    pub fn starters(&self) -> &[u32] {
        &self.starters
    }

    pub fn content_defaults(&self) -> ContentDefaults {
        self.defaults
    }

    /// Greedy maximal-marginal-relevance over the most popular tracks: each pick maximises
    /// popularity minus its highest similarity to the tracks already picked.
    fn choose_starters(&self, by_popularity: &[u32]) -> Vec<u32> {
        let mut pool: Vec<u32> = by_popularity.iter().take(STARTER_POOL).copied().collect();
        let mut max_similarity = vec![0f32; pool.len()];
        let mut chosen = Vec::with_capacity(STARTER_LEN.min(pool.len()));
        while chosen.len() < STARTER_LEN && !pool.is_empty() {
            let (best, _) = pool
                .iter()
                .zip(&max_similarity)
                .map(|(&t, &sim)| self.popularity(t) - 0.5 * sim.max(0.0))
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |acc, (j, v)| if v > acc.1 { (j, v) } else { acc },
                );
            let pick = pool.swap_remove(best);
            max_similarity.swap_remove(best);
            for (t, sim) in pool.iter().zip(max_similarity.iter_mut()) {
                *sim = sim.max(self.cosine(*t, pick));
            }
            chosen.push(pick);
        }
        chosen
    }
}

/// `content.onnx` inputs for a catalog track.
pub fn content_inputs(track: &Track, defaults: ContentDefaults) -> [f32; CONTENT_INPUTS] {
    content_row(
        &track.audio_features,
        track
            .release_year
            .map(|y| y as f32)
            .unwrap_or(defaults.release_year),
        f32::from(track.popularity),
        track.duration_ms as f32 / 60_000.0,
    )
}

/// `content.onnx` inputs in the model's order.
pub fn content_row(
    a: &AudioFeatures,
    release_year: f32,
    popularity: f32,
    duration_min: f32,
) -> [f32; CONTENT_INPUTS] {
    [
        a.danceability,
        a.energy,
        f32::from(a.key),
        a.loudness,
        f32::from(a.mode),
        a.speechiness,
        a.acousticness,
        a.instrumentalness,
        a.liveness,
        a.valence,
        a.tempo,
        release_year,
        popularity,
        duration_min,
    ]
}

/// The medians of the catalog's years, popularity and durations (fixed fallbacks when empty).
pub fn content_defaults(tracks: &[Arc<Track>]) -> ContentDefaults {
    fn median(mut values: Vec<f32>, fallback: f32) -> f32 {
        if values.is_empty() {
            return fallback;
        }
        values.sort_by(f32::total_cmp);
        values[values.len() / 2]
    }
    ContentDefaults {
        release_year: median(
            tracks
                .iter()
                .filter_map(|t| t.release_year)
                .map(|y| y as f32)
                .collect(),
            2015.0,
        ),
        popularity: median(
            tracks.iter().map(|t| f32::from(t.popularity)).collect(),
            40.0,
        ),
        duration_min: median(
            tracks
                .iter()
                .map(|t| t.duration_ms as f32 / 60_000.0)
                .collect(),
            3.5,
        ),
    }
}

/// Newer is fresher: 0 at 1950 or earlier, 1 at 2020, capped at 1.2 (the training definition).
fn freshness(track: &Track) -> f32 {
    let year = track.release_year.unwrap_or(0) as f32;
    ((year - 1950.0) / 70.0).clamp(0.0, 1.2)
}

/// Mean shipped-vector length over mean content-embedding length, for the tracks that have both.
fn cold_start_scale<'a>(
    shipped_rows: &[Option<usize>],
    row: impl Fn(usize) -> &'a [f32],
    content: &Array2<f32>,
) -> f32 {
    let (mut cf, mut emb, mut n) = (0f64, 0f64, 0usize);
    for (i, r) in shipped_rows.iter().enumerate() {
        if let Some(r) = r {
            cf += f64::from(norm(&ArrayView1::from(row(*r))));
            emb += f64::from(norm(&content.row(i)));
            n += 1;
        }
    }
    if n == 0 || emb == 0.0 {
        1.0
    } else {
        (cf / emb) as f32
    }
}

pub fn norm(v: &ArrayView1<f32>) -> f32 {
    v.dot(v).sqrt()
}

/// Dot product of two equally long slices with eight independent accumulators, which lets the
/// compiler keep it in SIMD registers (a plain fold is a serial dependency chain).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; 8];
    let (xs, ys) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = xs
        .remainder()
        .iter()
        .zip(ys.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in xs.zip(ys) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tests::track;

    fn space(shipped_ids: &[&str]) -> ItemSpace {
        let catalog = Catalog::new(vec![
            track("a", "A", "X", "pop", 90),
            track("b", "B", "Y", "rock", 80),
            track("c", "C", "Z", "rap", 10),
        ]);
        let shipped: HashMap<String, usize> = shipped_ids
            .iter()
            .enumerate()
            .map(|(r, id)| (id.to_string(), r))
            .collect();
        let mut vectors = vec![0f32; shipped_ids.len() * DIM];
        for r in 0..shipped_ids.len() {
            vectors[r * DIM + r] = 2.0;
        }
        let mut content = Array2::<f32>::zeros((3, DIM));
        for i in 0..3 {
            content[[i, 10 + i]] = 0.5;
        }
        let none = Neighbours::empty(shipped_ids.len());
        ItemSpace::build(&catalog, &shipped, &vectors, &none, 0.0, content)
    }

    #[test]
    fn shipped_tracks_keep_their_vectors_and_others_get_rescaled_content_vectors() {
        let s = space(&["b", "a"]);
        let a = s.vector(0);
        assert_eq!(a[1], 2.0);
        assert!(!s.from_content(0));
        assert_eq!(s.vector(1)[0], 2.0);
        // "c" is unknown to the models: its content embedding scaled to length 2.
        assert!(s.from_content(2));
        assert!((s.vector(2)[12] - 2.0).abs() < 1e-6);
        assert!((s.content_unit(2)[12] - 1.0).abs() < 1e-6);
        assert!((s.popularity(0) - 0.9).abs() < 1e-6);
    }

    #[test]
    fn starters_begin_with_the_most_popular_track_and_cover_everything() {
        let s = space(&[]);
        assert_eq!(s.starters()[0], 0);
        let mut all = s.starters().to_vec();
        all.sort();
        assert_eq!(all, vec![0, 1, 2]);
    }

    #[test]
    fn freshness_follows_the_training_definition() {
        let mut t = track("a", "A", "X", "pop", 1);
        t.release_year = Some(2020);
        assert!((freshness(&t) - 1.0).abs() < 1e-6);
        t.release_year = Some(1900);
        assert_eq!(freshness(&t), 0.0);
        t.release_year = None;
        assert_eq!(freshness(&t), 0.0);
    }
}

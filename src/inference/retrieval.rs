//! Exact top-k retrieval by dot product (or cosine) over every item vector, for many queries at
//! once. Batches of up to 64 queries are scored over a second copy of the items, transposed in
//! panels of eight, with a kernel compiled for AVX2 as well as the baseline and chosen at run
//! time: eight items per instruction, no horizontal sums, and a block of panels read once for
//! all the batch's queries. Larger batches use one matrix product per block of rows.

use std::cmp::Ordering;

use multiversion::multiversion;
use ndarray::{linalg::general_mat_mul, s, Array2, ArrayView2};

/// Item rows multiplied per step: small enough that the scores of a 64-query batch stay in cache.
const BLOCK: usize = 4_096;
/// Batches up to this size are scored over the panels: as fast as the matrix product or faster
/// at every size measured, 1 to 64 (`cargo bench --bench inference`, "retrieval alone").
const PANEL_MAX: usize = 64;
/// Items per panel: eight `f32` lanes, one AVX register.
const LANES: usize = 8;
/// Panels scored per step: 512 items (128 KiB at 64 dimensions) stay in the core's cache while
/// each of a few queries reads them.
const PANEL_BLOCK: usize = 64;

/// The item vectors twice: as rows (for the matrix product and for callers reading one item)
/// and as panels of [`LANES`] items stored dimension by dimension, so that one vector
/// instruction multiplies a query's coordinate with eight items and no horizontal sums remain.
pub struct ItemMatrix {
    rows: Array2<f32>,
    norms: Vec<f32>,
    panels: Vec<f32>,
}

impl ItemMatrix {
    pub fn new(rows: Array2<f32>) -> Self {
        let rows = rows.as_standard_layout().into_owned();
        let (n, dim) = rows.dim();
        let norms = rows.rows().into_iter().map(|r| r.dot(&r).sqrt()).collect();
        // The last panel is padded with zero items, scored and never considered.
        let mut panels = vec![0f32; n.div_ceil(LANES) * LANES * dim];
        for (i, row) in rows.rows().into_iter().enumerate() {
            let (panel, lane) = (i / LANES, i % LANES);
            for (d, &x) in row.iter().enumerate() {
                panels[(panel * dim + d) * LANES + lane] = x;
            }
        }
        Self {
            rows,
            norms,
            panels,
        }
    }

    /// One row per item, contiguous.
    pub fn rows(&self) -> &Array2<f32> {
        &self.rows
    }

    /// Each item's Euclidean length.
    pub fn norms(&self) -> &[f32] {
        &self.norms
    }
}

#[derive(Debug, Clone)]
pub struct RetrievalQuery {
    pub vector: Vec<f32>,
    /// Item rows never returned, sorted ascending.
    pub exclude: Vec<u32>,
    pub k: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub item: u32,
    pub score: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Dot,
    /// Cosine similarity: queries are normalised here, scores divided by the item's norm.
    Cosine,
}

/// The `k` best items for every query, best first; ties go to the lower item row.
pub fn top_k(items: &ItemMatrix, metric: Metric, queries: &[RetrievalQuery]) -> Vec<Vec<Hit>> {
    let ItemMatrix {
        rows: items,
        norms,
        panels,
    } = items;
    let dim = items.ncols();
    let mut q = Array2::<f32>::zeros((queries.len(), dim));
    for (mut row, query) in q.rows_mut().into_iter().zip(queries) {
        row.assign(&ndarray::ArrayView1::from(&query.vector[..dim]));
        if metric == Metric::Cosine {
            let norm = row.dot(&row).sqrt() + 1e-9;
            row.mapv_inplace(|x| x / norm);
        }
    }
    let mut heaps: Vec<TopK> = queries.iter().map(|q| TopK::new(q.k)).collect();
    let norms = (metric == Metric::Cosine).then_some(&norms[..]);
    if queries.len() <= PANEL_MAX && dim > 0 {
        // Each coordinate repeated once per lane: the kernel then multiplies lane by lane.
        let spread: Vec<Vec<[f32; LANES]>> = q
            .rows()
            .into_iter()
            .map(|row| row.iter().map(|&x| [x; LANES]).collect())
            .collect();
        let mut raw = vec![0f32; PANEL_BLOCK * LANES];
        for (b, block) in panels.chunks(PANEL_BLOCK * LANES * dim).enumerate() {
            let start = b * PANEL_BLOCK * LANES;
            let real = (items.nrows() - start).min(PANEL_BLOCK * LANES);
            let raw = &mut raw[..block.len() / dim];
            for ((heap, query), vector) in heaps.iter_mut().zip(queries).zip(&spread) {
                score_panels(block, vector, raw);
                offer(heap, &query.exclude, start, &mut raw[..real], norms);
            }
        }
        return heaps.into_iter().map(TopK::into_sorted).collect();
    }
    let mut scores = Array2::<f32>::zeros((queries.len(), BLOCK.min(items.nrows().max(1))));
    let mut start = 0;
    while start < items.nrows() {
        let end = (start + BLOCK).min(items.nrows());
        let block: ArrayView2<f32> = items.slice(s![start..end, ..]);
        let mut out = scores.slice_mut(s![.., ..end - start]);
        general_mat_mul(1.0, &q, &block.t(), 0.0, &mut out);
        for (row, (heap, query)) in out
            .rows_mut()
            .into_iter()
            .zip(heaps.iter_mut().zip(queries))
        {
            let raw = row
                .into_slice()
                .expect("rows of a standard-layout array are contiguous");
            offer(heap, &query.exclude, start, raw, norms);
        }
        start = end;
    }
    heaps.into_iter().map(TopK::into_sorted).collect()
}

/// Offers one query's raw scores of the items from row `start` on to its top-k; with `norms`
/// (cosine) each is divided by its item's length first.
fn offer(heap: &mut TopK, exclude: &[u32], start: usize, raw: &mut [f32], norms: Option<&[f32]>) {
    if let Some(norms) = norms {
        for (score, norm) in raw.iter_mut().zip(&norms[start..]) {
            *score /= norm + 1e-9;
        }
    }
    for (j, &score) in raw.iter().enumerate() {
        if heap.admits(score) {
            let item = (start + j) as u32;
            if exclude.binary_search(&item).is_err() {
                heap.push(Hit { item, score });
            }
        }
    }
}

/// The dot products of `query` (each coordinate repeated in every lane) with every item of
/// whole `panels` (`query.len() × LANES` values each), [`LANES`] per panel into `out`. Each lane adds its products in the order
/// [`super::space::dot`] does (eight running sums over the dimensions d ≡ l mod 8, summed in
/// order, then the remainder), so the scores are the row-wise ones bit for bit on every target.
/// Compiled for AVX2 as well as the baseline and chosen at run time: the baseline x86-64 target
/// has only 4-lane SSE2.
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn score_panels(panels: &[f32], query: &[[f32; LANES]], out: &mut [f32]) {
    let dim = query.len();
    let whole = dim - dim % 8;
    for (panel, out) in panels
        .chunks_exact(dim * LANES)
        .zip(out.chunks_exact_mut(LANES))
    {
        let (head, rest) = panel.split_at(whole * LANES);
        let mut acc = [[0f32; LANES]; 8];
        for (q, columns) in query[..whole]
            .chunks_exact(8)
            .zip(head.chunks_exact(8 * LANES))
        {
            for ((acc, q), column) in acc.iter_mut().zip(q).zip(columns.chunks_exact(LANES)) {
                for ((a, &q), &x) in acc.iter_mut().zip(q).zip(column) {
                    *a += q * x;
                }
            }
        }
        let mut tail = [-0.0f32; LANES];
        for (q, column) in query[whole..].iter().zip(rest.chunks_exact(LANES)) {
            for ((t, &q), &x) in tail.iter_mut().zip(q).zip(column) {
                *t += q * x;
            }
        }
        for (lane, out) in out.iter_mut().enumerate() {
            let sum = acc[1..].iter().fold(acc[0][lane], |sum, a| sum + a[lane]);
            *out = sum + tail[lane];
        }
    }
}

/// Keeps the `k` highest scores seen. Scores above a running threshold are appended to a
/// buffer; when it reaches twice `k` it is cut back to the best `k` (a linear-time selection)
/// and the threshold rises to the k-th best. Amortised O(1) per score, where a binary heap
/// pays a logarithmic sift for each of the ~k·ln(n/k) scores that enter it.
struct TopK {
    k: usize,
    buffer: Vec<Hit>,
    threshold: f32,
}

/// Best first: higher score, then lower row.
fn best_first(a: &Hit, b: &Hit) -> Ordering {
    b.score.total_cmp(&a.score).then(a.item.cmp(&b.item))
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            buffer: Vec::with_capacity(2 * k),
            threshold: f32::NEG_INFINITY,
        }
    }

    fn admits(&self, score: f32) -> bool {
        self.k > 0 && score > self.threshold
    }

    fn push(&mut self, hit: Hit) {
        self.buffer.push(hit);
        if self.buffer.len() >= 2 * self.k {
            self.shrink();
        }
    }

    fn shrink(&mut self) {
        if self.buffer.len() > self.k {
            self.buffer.select_nth_unstable_by(self.k - 1, best_first);
            self.buffer.truncate(self.k);
            self.threshold = self.buffer[self.k - 1].score;
        }
    }

    fn into_sorted(mut self) -> Vec<Hit> {
        self.buffer.sort_unstable_by(best_first);
        self.buffer.truncate(self.k);
        self.buffer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, RngExt, SeedableRng};

    fn random_items(n: usize, dim: usize, seed: u64) -> Array2<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        Array2::from_shape_fn((n, dim), |_| rng.random_range(-1.0..1.0))
    }

    fn brute_force(items: &Array2<f32>, q: &RetrievalQuery) -> Vec<Hit> {
        let v = ndarray::ArrayView1::from(&q.vector[..]);
        let mut all: Vec<Hit> = (0..items.nrows() as u32)
            .filter(|i| !q.exclude.contains(i))
            .map(|i| Hit {
                item: i,
                score: items.row(i as usize).dot(&v),
            })
            .collect();
        all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
        all.truncate(q.k);
        all
    }

    #[test]
    fn matches_brute_force_across_blocks_with_exclusions() {
        let items = random_items(BLOCK * 2 + 123, 16, 1);
        let mut rng = StdRng::seed_from_u64(2);
        let queries: Vec<RetrievalQuery> = (0..5)
            .map(|i| {
                let mut exclude: Vec<u32> = (0..50)
                    .map(|_| rng.random_range(0..items.nrows() as u32))
                    .collect();
                exclude.sort();
                exclude.dedup();
                RetrievalQuery {
                    vector: (0..16).map(|_| rng.random_range(-1.0..1.0)).collect(),
                    exclude,
                    k: 10 + i * 20,
                }
            })
            .collect();
        let matrix = ItemMatrix::new(items.clone());
        let batched = top_k(&matrix, Metric::Dot, &queries);
        for (q, got) in queries.iter().zip(&batched) {
            let want = brute_force(&items, q);
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.item, w.item);
                assert!((g.score - w.score).abs() < 1e-4);
            }
            assert!(got
                .iter()
                .all(|h| q.exclude.binary_search(&h.item).is_err()));
        }
        // One query alone gives the same answer as inside the batch.
        let single = top_k(&matrix, Metric::Dot, &queries[2..3]);
        assert_eq!(
            single[0].iter().map(|h| h.item).collect::<Vec<_>>(),
            batched[2].iter().map(|h| h.item).collect::<Vec<_>>()
        );
    }

    #[test]
    fn cosine_divides_by_item_norms_and_k_larger_than_catalog_is_fine() {
        let items =
            Array2::<f32>::from_shape_vec((3, 2), vec![10.0, 0.0, 0.0, 1.0, 1.0, 1.0]).unwrap();
        let items = ItemMatrix::new(items);
        let q = RetrievalQuery {
            vector: vec![0.6, 0.8],
            exclude: vec![],
            k: 10,
        };
        let dot = top_k(&items, Metric::Dot, std::slice::from_ref(&q));
        assert_eq!(
            dot[0].iter().map(|h| h.item).collect::<Vec<_>>(),
            vec![0, 2, 1]
        );
        let scaled = RetrievalQuery {
            vector: vec![3.0, 4.0],
            ..q.clone()
        };
        let cos = top_k(&items, Metric::Cosine, &[q]);
        assert_eq!(
            cos[0].iter().map(|h| h.item).collect::<Vec<_>>(),
            vec![2, 1, 0]
        );
        // The query's length does not matter: cosine normalises it.
        let cos_scaled = top_k(&items, Metric::Cosine, &[scaled]);
        for (a, b) in cos[0].iter().zip(&cos_scaled[0]) {
            assert_eq!(a.item, b.item);
            assert!((a.score - b.score).abs() < 1e-6);
        }
    }

    #[test]
    fn a_few_queries_scored_over_the_panels_match_the_matrix_product() {
        let items = ItemMatrix::new(random_items(BLOCK + 77, 20, 4));
        let mut rng = StdRng::seed_from_u64(5);
        let queries: Vec<RetrievalQuery> = (0..PANEL_MAX + 3)
            .map(|i| RetrievalQuery {
                vector: (0..20).map(|_| rng.random_range(-1.0..1.0)).collect(),
                exclude: vec![3, 10, 400],
                k: 5 + i,
            })
            .collect();
        for metric in [Metric::Dot, Metric::Cosine] {
            // The first PANEL_MAX queries alone go over the panels, inside the larger batch
            // through the matrix product.
            let panels = top_k(&items, metric, &queries[..PANEL_MAX]);
            let product = top_k(&items, metric, &queries);
            for (a, b) in panels.iter().zip(&product) {
                assert_eq!(
                    a.iter().map(|h| h.item).collect::<Vec<_>>(),
                    b.iter().map(|h| h.item).collect::<Vec<_>>()
                );
                for (x, y) in a.iter().zip(b) {
                    assert!((x.score - y.score).abs() < 1e-4);
                }
            }
        }
    }

    #[test]
    fn panels_score_bit_for_bit_as_the_row_wise_dot_product() {
        // Widths with and without a remainder past the eight running sums; item counts that
        // leave the last panel part empty.
        for (n, dim) in [(8 * 5 + 3, 64), (13, 20), (9, 3), (1, 8)] {
            let items = random_items(n, dim, n as u64);
            let matrix = ItemMatrix::new(items.clone());
            let mut rng = StdRng::seed_from_u64(dim as u64);
            let query: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut out = vec![f32::NAN; n.div_ceil(LANES) * LANES];
            let spread: Vec<[f32; LANES]> = query.iter().map(|&x| [x; LANES]).collect();
            score_panels(&matrix.panels, &spread, &mut out);
            for (i, row) in items.rows().into_iter().enumerate() {
                let want = crate::inference::space::dot(row.as_slice().unwrap(), &query);
                assert_eq!(
                    out[i].to_bits(),
                    want.to_bits(),
                    "item {i} of {n}, {dim} wide"
                );
            }
            assert!(out[n..].iter().all(|&x| x == 0.0), "padding scores zero");
        }
    }

    #[test]
    fn empty_catalog_and_zero_k_return_nothing() {
        let items = Array2::<f32>::zeros((0, 4));
        let q = RetrievalQuery {
            vector: vec![1.0; 4],
            exclude: vec![],
            k: 5,
        };
        let items = ItemMatrix::new(items);
        assert!(top_k(&items, Metric::Dot, std::slice::from_ref(&q))[0].is_empty());
        let items = ItemMatrix::new(random_items(10, 4, 3));
        let q = RetrievalQuery { k: 0, ..q };
        assert!(top_k(&items, Metric::Dot, &[q])[0].is_empty());
    }
}

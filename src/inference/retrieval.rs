//! Exact top-k retrieval by dot product (or cosine) over every item vector, for many queries at
//! once. Batches of up to 64 queries are scored over a compact copy of the items: transposed in
//! panels of eight and rounded to bfloat16, so a scan streams half the bytes (at one query a
//! scan waits on memory, not on arithmetic). The kernel is compiled for AVX2 with FMA as well as
//! the baseline and chosen at run time: eight items per instruction, eight panels at a time so
//! that one broadcast of a query coordinate feeds eight multiply-adds, and a block of panels is
//! read once for all the batch's queries. Larger batches use one matrix product per block of rows.
//!
//! Rounded scores are off by at most `|query| · error` (Cauchy–Schwarz, `error` the largest
//! distance between an item and its rounded copy), so the scan keeps every item within twice
//! that of its k-th best, scores those again row by row ([`super::space::dot`]) and returns the
//! best k of them: the same hits, bit for bit, as scoring every row that way.

use std::cmp::Ordering;

use multiversion::{multiversion, target::target_cfg_f};
use ndarray::{linalg::general_mat_mul, s, Array2, ArrayView2};

/// Item rows multiplied per step: small enough that the scores of a 64-query batch stay in cache.
const BLOCK: usize = 4_096;
/// Batches up to this size are scored over the panels: as fast as the matrix product or faster
/// at every size measured, 1 to 64 (`cargo bench --bench inference`, "retrieval alone").
const PANEL_MAX: usize = 64;
/// Items per panel: eight `f32` lanes, one AVX register.
const LANES: usize = 8;
/// Panels scored per step: 512 items (64 KiB at 64 dimensions) stay in the core's cache while
/// each of a few queries reads them.
const PANEL_BLOCK: usize = 64;
/// Panels the kernel scores together: eight running sums in eight registers, enough independent
/// multiply-adds to hide their latency, with one broadcast of the query's coordinate for all.
const PANEL_GROUP: usize = 8;

/// The item vectors twice: as rows (exact; for the matrix product, for scoring hits again and for
/// callers reading one item) and as panels of [`LANES`] items stored dimension by dimension in
/// bfloat16, so that one vector instruction multiplies a query's coordinate with eight items and
/// no horizontal sums remain.
pub struct ItemMatrix {
    rows: Array2<f32>,
    norms: Vec<f32>,
    panels: Vec<u16>,
    /// The largest Euclidean distance between an item and its rounded copy in the panels ...
    error: f32,
    /// ... and the largest such distance over the item's length (for cosine scores).
    relative_error: f32,
    /// The longest item's length.
    max_norm: f32,
}

/// An `f32` rounded to the nearest bfloat16 (its upper 16 bits), ties to even; NaN stays NaN
/// (its score is never admitted, as an exact NaN score would not be).
fn to_bf16(x: f32) -> u16 {
    if x.is_nan() {
        return 0x7fc0;
    }
    let bits = x.to_bits();
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

fn from_bf16(x: u16) -> f32 {
    f32::from_bits(u32::from(x) << 16)
}

impl ItemMatrix {
    pub fn new(rows: Array2<f32>) -> Self {
        let rows = rows.as_standard_layout().into_owned();
        let (n, dim) = rows.dim();
        let norms: Vec<f32> = rows.rows().into_iter().map(|r| r.dot(&r).sqrt()).collect();
        // The last panel is padded with zero items, scored and never considered.
        let mut panels = vec![0u16; n.div_ceil(LANES) * LANES * dim];
        let (mut error, mut relative_error) = (0f64, 0f64);
        for (i, row) in rows.rows().into_iter().enumerate() {
            let (panel, lane) = (i / LANES, i % LANES);
            let mut squared = 0f64;
            for (d, &x) in row.iter().enumerate() {
                let rounded = to_bf16(x);
                panels[(panel * dim + d) * LANES + lane] = rounded;
                squared += (f64::from(x) - f64::from(from_bf16(rounded))).powi(2);
            }
            error = error.max(squared.sqrt());
            if norms[i] > 0.0 {
                relative_error = relative_error.max(squared.sqrt() / f64::from(norms[i]));
            }
        }
        // Rounded up, so the bounds hold for the f32 values kept.
        let up = |x: f64| (x * (1.0 + 1e-6)) as f32;
        let max_norm = norms.iter().copied().fold(0.0, f32::max);
        Self {
            rows,
            norms,
            panels,
            error: up(error),
            relative_error: up(relative_error),
            max_norm,
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

    /// How far a score computed by `from_panels` or by the matrix product can be from the
    /// row-wise one, for a query of length `length`: the rounded copy's error, plus the two
    /// sums' own rounding (each within `dim · ε/2` of the sum of absolute products).
    fn slack(&self, metric: Metric, length: f32, from_panels: bool) -> f32 {
        let sums = (self.rows.ncols() + 2) as f32 * f32::EPSILON;
        let bound = match (metric, from_panels) {
            (Metric::Dot, true) => self.error + sums * self.max_norm,
            (Metric::Dot, false) => sums * self.max_norm,
            (Metric::Cosine, true) => self.relative_error + sums,
            (Metric::Cosine, false) => sums,
        };
        length * bound * (1.0 + 1e-3)
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

/// The `k` best items for every query, best first; ties go to the lower item row. Scores are
/// the row-wise ones ([`super::space::dot`], divided by the item's length for cosine).
pub fn top_k(matrix: &ItemMatrix, metric: Metric, queries: &[RetrievalQuery]) -> Vec<Vec<Hit>> {
    let ItemMatrix {
        rows: items,
        norms,
        panels,
        ..
    } = matrix;
    let dim = items.ncols();
    let mut q = Array2::<f32>::zeros((queries.len(), dim));
    for (mut row, query) in q.rows_mut().into_iter().zip(queries) {
        row.assign(&ndarray::ArrayView1::from(&query.vector[..dim]));
        if metric == Metric::Cosine {
            let norm = row.dot(&row).sqrt() + 1e-9;
            row.mapv_inplace(|x| x / norm);
        }
    }
    let from_panels = queries.len() <= PANEL_MAX && dim > 0;
    let mut heaps: Vec<TopK> = queries
        .iter()
        .zip(q.rows())
        .map(|(query, row)| {
            // Twice the slack: the k-th best and any other item may each be that far off.
            let slack = matrix.slack(metric, row.dot(&row).sqrt(), from_panels);
            TopK::new(query.k, 2.0 * slack)
        })
        .collect();
    let norms = (metric == Metric::Cosine).then_some(&norms[..]);
    if from_panels {
        let mut raw = vec![0f32; PANEL_BLOCK * LANES];
        for (b, block) in panels.chunks(PANEL_BLOCK * LANES * dim).enumerate() {
            let start = b * PANEL_BLOCK * LANES;
            let real = (items.nrows() - start).min(PANEL_BLOCK * LANES);
            let raw = &mut raw[..block.len() / dim];
            for ((heap, query), vector) in heaps.iter_mut().zip(queries).zip(q.rows()) {
                let vector = vector.as_slice().expect("rows of a standard-layout array");
                score_panels(block, vector, raw);
                offer(heap, &query.exclude, start, &mut raw[..real], norms);
            }
        }
    } else {
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
    }
    heaps
        .into_iter()
        .zip(q.rows())
        .map(|(heap, query)| {
            let query = query.as_slice().expect("rows of a standard-layout array");
            heap.into_exact(|item| {
                let row = items.row(item as usize);
                let score =
                    super::space::dot(row.as_slice().expect("a standard-layout row"), query);
                match norms {
                    Some(norms) => score / (norms[item as usize] + 1e-9),
                    None => score,
                }
            })
        })
        .collect()
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

/// The dot products of `query` with every item of whole `panels` (`query.len() × LANES`
/// bfloat16 values each), [`LANES`] per panel into `out`. [`PANEL_GROUP`] panels at a time:
/// each coordinate of the query is read once and multiplied into eight panels' running sums,
/// fused where the CPU has FMA. Compiled for AVX2 with FMA as well as the baseline and chosen
/// at run time: the baseline x86-64 target has only 4-lane SSE2 and no fused multiply-add.
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn score_panels(panels: &[u16], query: &[f32], out: &mut [f32]) {
    let fused = target_cfg_f!(target_feature = "fma");
    let dim = query.len();
    let add = |sum: f32, q: f32, x: u16| {
        let x = from_bf16(x);
        if fused {
            q.mul_add(x, sum)
        } else {
            sum + q * x
        }
    };
    let mut groups = panels.chunks_exact(PANEL_GROUP * dim * LANES);
    let mut outs = out.chunks_exact_mut(PANEL_GROUP * LANES);
    for (group, out) in (&mut groups).zip(&mut outs) {
        let panels: [&[u16]; PANEL_GROUP] =
            std::array::from_fn(|g| &group[g * dim * LANES..(g + 1) * dim * LANES]);
        let mut sums = [[0f32; LANES]; PANEL_GROUP];
        for (d, &q) in query.iter().enumerate() {
            for (sum, panel) in sums.iter_mut().zip(&panels) {
                let column: &[u16; LANES] = panel[d * LANES..(d + 1) * LANES]
                    .try_into()
                    .expect("a column is LANES wide");
                for (s, &x) in sum.iter_mut().zip(column) {
                    *s = add(*s, q, x);
                }
            }
        }
        out.copy_from_slice(sums.as_flattened());
    }
    for (panel, out) in groups
        .remainder()
        .chunks_exact(dim * LANES)
        .zip(outs.into_remainder().chunks_exact_mut(LANES))
    {
        let mut sum = [0f32; LANES];
        for (&q, column) in query.iter().zip(panel.chunks_exact(LANES)) {
            for (s, &x) in sum.iter_mut().zip(column) {
                *s = add(*s, q, x);
            }
        }
        out.copy_from_slice(&sum);
    }
}

/// Keeps every item that may be among the `k` best, from scores within `slack / 2` of the exact
/// ones: those within `slack` of the k-th best seen so far. Such scores are appended to a buffer;
/// when it doubles it is cut back (a linear-time selection of the k-th best, then the floor
/// rises to it minus `slack`). Amortised O(1) per score, where a binary heap pays a logarithmic
/// sift for each of the ~k·ln(n/k) scores that enter it.
struct TopK {
    k: usize,
    slack: f32,
    buffer: Vec<Hit>,
    /// Scores below this cannot be among the k best.
    floor: f32,
    /// The buffer's length at which it is cut back next.
    limit: usize,
}

/// Best first: higher score, then lower row.
fn best_first(a: &Hit, b: &Hit) -> Ordering {
    b.score.total_cmp(&a.score).then(a.item.cmp(&b.item))
}

impl TopK {
    fn new(k: usize, slack: f32) -> Self {
        Self {
            k,
            slack,
            buffer: Vec::with_capacity(2 * k),
            floor: f32::NEG_INFINITY,
            limit: 2 * k,
        }
    }

    fn admits(&self, score: f32) -> bool {
        self.k > 0 && score >= self.floor
    }

    fn push(&mut self, hit: Hit) {
        self.buffer.push(hit);
        if self.buffer.len() >= self.limit {
            self.cut();
        }
    }

    fn cut(&mut self) {
        if self.buffer.len() > self.k {
            self.buffer.select_nth_unstable_by(self.k - 1, best_first);
            self.floor = self.buffer[self.k - 1].score - self.slack;
            let floor = self.floor;
            self.buffer.retain(|hit| hit.score >= floor);
        }
        // Many scores within the slack of the k-th would otherwise cut at every push.
        self.limit = (2 * self.buffer.len()).max(2 * self.k);
    }

    /// The k best by `exact` scores, of the items kept.
    fn into_exact(mut self, exact: impl Fn(u32) -> f32) -> Vec<Hit> {
        self.cut();
        for hit in &mut self.buffer {
            hit.score = exact(hit.item);
        }
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

    /// Every item scored row by row, as `top_k` promises to return them.
    fn brute_force(items: &Array2<f32>, q: &RetrievalQuery) -> Vec<Hit> {
        let mut all: Vec<Hit> = (0..items.nrows() as u32)
            .filter(|i| !q.exclude.contains(i))
            .map(|i| Hit {
                item: i,
                score: crate::inference::space::dot(
                    items.row(i as usize).as_slice().unwrap(),
                    &q.vector,
                ),
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
            assert_eq!(got, &brute_force(&items, q));
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
    fn the_panel_kernel_scores_every_item_within_the_slack() {
        // Item counts that fill whole groups of panels and leave single panels, a last panel
        // part empty; widths with and without a remainder past eight.
        for (n, dim) in [
            (8 * PANEL_GROUP * 3 + 8 * 5 + 3, 64),
            (13, 20),
            (9, 3),
            (1, 8),
        ] {
            let items = random_items(n, dim, n as u64);
            let matrix = ItemMatrix::new(items.clone());
            let mut rng = StdRng::seed_from_u64(dim as u64);
            let query: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut out = vec![f32::NAN; n.div_ceil(LANES) * LANES];
            score_panels(&matrix.panels, &query, &mut out);
            let length = crate::inference::space::dot(&query, &query).sqrt();
            let slack = matrix.slack(Metric::Dot, length, true);
            for (i, row) in items.rows().into_iter().enumerate() {
                let want = crate::inference::space::dot(row.as_slice().unwrap(), &query);
                assert!(
                    (out[i] - want).abs() <= slack,
                    "item {i} of {n}, {dim} wide: {} against {want}",
                    out[i]
                );
            }
            assert!(out[n..].iter().all(|&x| x == 0.0), "padding scores zero");
        }
    }

    #[test]
    fn hits_carry_the_row_wise_dot_product_bit_for_bit_on_every_path() {
        let items = random_items(BLOCK + 8 * PANEL_GROUP * 2 + 5, 64, 8);
        let matrix = ItemMatrix::new(items.clone());
        let mut rng = StdRng::seed_from_u64(9);
        let queries: Vec<RetrievalQuery> = (0..PANEL_MAX + 1)
            .map(|_| RetrievalQuery {
                vector: (0..64).map(|_| rng.random_range(-1.0..1.0)).collect(),
                exclude: vec![],
                k: 40,
            })
            .collect();
        // The first call goes over the panels, the second (one query more) through the
        // matrix product.
        for batch in [&queries[..PANEL_MAX], &queries[..]] {
            for metric in [Metric::Dot, Metric::Cosine] {
                for (query, hits) in batch.iter().zip(top_k(&matrix, metric, batch)) {
                    let mut vector = query.vector.clone();
                    if metric == Metric::Cosine {
                        // As `top_k` normalises the query.
                        let v = ndarray::ArrayView1::from(&vector);
                        let norm = v.dot(&v).sqrt() + 1e-9;
                        vector.iter_mut().for_each(|x| *x /= norm);
                    }
                    assert_eq!(hits.len(), 40);
                    for hit in &hits {
                        let row = items.row(hit.item as usize);
                        let mut want =
                            crate::inference::space::dot(row.as_slice().unwrap(), &vector);
                        if metric == Metric::Cosine {
                            want /= matrix.norms()[hit.item as usize] + 1e-9;
                        }
                        assert_eq!(hit.score.to_bits(), want.to_bits());
                    }
                    assert!(hits.windows(2).all(|w| best_first(&w[0], &w[1]).is_lt()));
                }
            }
        }
    }

    #[test]
    fn items_closer_than_the_rounding_are_told_apart_exactly() {
        // Sixty copies of one item, each moved by about one step of bfloat16 (~4e-3 here), among
        // random items: the rounded scan orders the copies differently from their exact scores,
        // and the hits must still be the row-wise best ten, in the row-wise order.
        let mut rng = StdRng::seed_from_u64(11);
        let mut items = random_items(2_000, 64, 10);
        let base: Vec<f32> = (0..64).map(|_| rng.random_range(0.5..1.0)).collect();
        for i in 0..60 {
            for (d, &x) in base.iter().enumerate() {
                items[[i * 30, d]] = x + rng.random_range(-3e-3..3e-3);
            }
        }
        let matrix = ItemMatrix::new(items.clone());
        let query = RetrievalQuery {
            vector: base.clone(),
            exclude: vec![30, 300],
            k: 10,
        };
        let hits = top_k(&matrix, Metric::Dot, std::slice::from_ref(&query));
        assert_eq!(hits[0], brute_force(&items, &query));
        assert!(hits[0].iter().all(|h| h.item % 30 == 0 && h.item < 1_800));
    }

    #[test]
    fn bfloat16_rounds_to_nearest_ties_to_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // Halfway between 0x3f80 and 0x3f81: to the even one; past halfway: up.
        assert_eq!(to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(to_bf16(-2.5), 0xc020);
        assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
        // A NaN whose payload is in the low half stays NaN, not infinity.
        assert!(from_bf16(to_bf16(f32::from_bits(0x7f80_0001))).is_nan());
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

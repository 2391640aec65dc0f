//! Exact top-k retrieval by dot product (or cosine) over every item vector, for many queries at
//! once. The item matrix is walked in blocks and each block is multiplied with all queries in one
//! matrix product, so a batch of 64 queries reads the item vectors once instead of 64 times —
//! the reason batching pays off even before the ONNX models run. A few queries (a room's member
//! whose taste just changed) are scored row by row instead: the matrix product copies every
//! block into its packed layout first, which costs more than the few dot products it serves.

use std::cmp::Ordering;

use ndarray::{linalg::general_mat_mul, s, Array2, ArrayView2};

use super::space::dot;

/// Item rows multiplied per step: small enough that the scores of a 64-query batch stay in cache.
const BLOCK: usize = 4_096;
/// Batches up to this size are scored row by row (see the module docs; measured with `cargo
/// bench --bench inference`, "retrieval alone").
const ROW_WISE_MAX: usize = 4;

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
pub fn top_k(
    items: &Array2<f32>,
    norms: &[f32],
    metric: Metric,
    queries: &[RetrievalQuery],
) -> Vec<Vec<Hit>> {
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
    let consider = |heap: &mut TopK, query: &RetrievalQuery, item: u32, raw: f32| {
        let score = match metric {
            Metric::Dot => raw,
            Metric::Cosine => raw / (norms[item as usize] + 1e-9),
        };
        if heap.admits(score) && query.exclude.binary_search(&item).is_err() {
            heap.push(Hit { item, score });
        }
    };
    if queries.len() <= ROW_WISE_MAX && dim > 0 {
        // Rows as contiguous slices; a matrix in another layout takes the product below.
        if let (Some(rows), Some(q)) = (items.as_slice(), q.as_slice()) {
            for (item, row) in rows.chunks_exact(dim).enumerate() {
                for ((heap, query), vector) in
                    heaps.iter_mut().zip(queries).zip(q.chunks_exact(dim))
                {
                    consider(heap, query, item as u32, dot(row, vector));
                }
            }
            return heaps.into_iter().map(TopK::into_sorted).collect();
        }
    }
    let mut scores = Array2::<f32>::zeros((queries.len(), BLOCK.min(items.nrows().max(1))));
    let mut start = 0;
    while start < items.nrows() {
        let end = (start + BLOCK).min(items.nrows());
        let block: ArrayView2<f32> = items.slice(s![start..end, ..]);
        let mut out = scores.slice_mut(s![.., ..end - start]);
        general_mat_mul(1.0, &q, &block.t(), 0.0, &mut out);
        for (r, (heap, query)) in heaps.iter_mut().zip(queries).enumerate() {
            let row = out.row(r);
            for (j, &raw) in row.iter().enumerate() {
                consider(heap, query, (start + j) as u32, raw);
            }
        }
        start = end;
    }
    heaps.into_iter().map(TopK::into_sorted).collect()
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
        let norms = vec![1.0; items.nrows()];
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
        let batched = top_k(&items, &norms, Metric::Dot, &queries);
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
        let single = top_k(&items, &norms, Metric::Dot, &queries[2..3]);
        assert_eq!(
            single[0].iter().map(|h| h.item).collect::<Vec<_>>(),
            batched[2].iter().map(|h| h.item).collect::<Vec<_>>()
        );
    }

    #[test]
    fn cosine_divides_by_item_norms_and_k_larger_than_catalog_is_fine() {
        let items =
            Array2::<f32>::from_shape_vec((3, 2), vec![10.0, 0.0, 0.0, 1.0, 1.0, 1.0]).unwrap();
        let norms: Vec<f32> = items.rows().into_iter().map(|r| r.dot(&r).sqrt()).collect();
        let q = RetrievalQuery {
            vector: vec![0.6, 0.8],
            exclude: vec![],
            k: 10,
        };
        let dot = top_k(&items, &norms, Metric::Dot, std::slice::from_ref(&q));
        assert_eq!(
            dot[0].iter().map(|h| h.item).collect::<Vec<_>>(),
            vec![0, 2, 1]
        );
        let scaled = RetrievalQuery {
            vector: vec![3.0, 4.0],
            ..q.clone()
        };
        let cos = top_k(&items, &norms, Metric::Cosine, &[q]);
        assert_eq!(
            cos[0].iter().map(|h| h.item).collect::<Vec<_>>(),
            vec![2, 1, 0]
        );
        // The query's length does not matter: cosine normalises it.
        let cos_scaled = top_k(&items, &norms, Metric::Cosine, &[scaled]);
        for (a, b) in cos[0].iter().zip(&cos_scaled[0]) {
            assert_eq!(a.item, b.item);
            assert!((a.score - b.score).abs() < 1e-6);
        }
    }

    #[test]
    fn a_few_queries_scored_row_by_row_match_the_matrix_product() {
        let items = random_items(BLOCK + 77, 20, 4);
        let norms: Vec<f32> = items.rows().into_iter().map(|r| r.dot(&r).sqrt()).collect();
        let mut rng = StdRng::seed_from_u64(5);
        let queries: Vec<RetrievalQuery> = (0..ROW_WISE_MAX + 3)
            .map(|i| RetrievalQuery {
                vector: (0..20).map(|_| rng.random_range(-1.0..1.0)).collect(),
                exclude: vec![3, 10, 400],
                k: 5 + i,
            })
            .collect();
        for metric in [Metric::Dot, Metric::Cosine] {
            // The first ROW_WISE_MAX queries alone go row by row, inside the larger batch
            // through the matrix product.
            let row_wise = top_k(&items, &norms, metric, &queries[..ROW_WISE_MAX]);
            let product = top_k(&items, &norms, metric, &queries);
            for (a, b) in row_wise.iter().zip(&product) {
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
    fn empty_catalog_and_zero_k_return_nothing() {
        let items = Array2::<f32>::zeros((0, 4));
        let q = RetrievalQuery {
            vector: vec![1.0; 4],
            exclude: vec![],
            k: 5,
        };
        assert!(top_k(&items, &[], Metric::Dot, std::slice::from_ref(&q))[0].is_empty());
        let items = random_items(10, 4, 3);
        let q = RetrievalQuery { k: 0, ..q };
        assert!(top_k(&items, &[1.0; 10], Metric::Dot, &[q])[0].is_empty());
    }
}

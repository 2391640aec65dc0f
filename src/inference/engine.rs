//! What one inference thread does with a batch: the ONNX Runtime sessions (each thread owns its
//! own, since running a session needs exclusive access) and the batched pipeline steps.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use ndarray::Array2;
use ort::{
    environment::Environment,
    session::{Session, SessionInputValue},
    value::{Tensor, TensorRef},
};

use super::{
    candidates,
    features::{
        candidate_features, Candidate, FeatureRow, Listener, CONTENT_SIMILARITY, FEATURES,
        NCF_SCORE,
    },
    retrieval::{self, Hit, Metric, RetrievalQuery},
    space::{ItemSpace, CONTENT_INPUTS, DIM},
};
use crate::models::{open_session, Manifest, ModelError, Perceptron, SessionOptions};

pub const GENRE_OUTPUT: &str = "genre_probabilities";
pub const MOOD_OUTPUT: &str = "mood_probabilities";

/// The three shipped models, opened for one thread.
pub struct Models {
    ncf: Session,
    content: Session,
    hybrid: Hybrid,
}

/// The hybrid ranker, in process when its graph is a one-hidden-layer perceptron (the shipped
/// one is: ONNX Runtime's cost per call was most of its time), else through ONNX Runtime.
enum Hybrid {
    InProcess(Perceptron),
    Session(Session),
}

impl Models {
    pub fn open(
        env: &Environment,
        dir: &Path,
        manifest: &Manifest,
        options: SessionOptions,
    ) -> Result<Self, ModelError> {
        let open = |name: &str| open_session(env, dir, name, &manifest.models[name], options);
        // The session is opened either way: that checks the file against the manifest.
        let session = open("hybrid")?;
        let hybrid = match Perceptron::read(&dir.join(&manifest.models["hybrid"].file)) {
            Ok(perceptron) if perceptron.inputs() == FEATURES => Hybrid::InProcess(perceptron),
            Ok(perceptron) => {
                tracing::warn!(inputs = perceptron.inputs(), "hybrid.onnx takes {} features, not {FEATURES}: running it through ONNX Runtime", perceptron.inputs());
                Hybrid::Session(session)
            }
            Err(reason) => {
                tracing::info!(%reason, "hybrid.onnx is not a one-hidden-layer perceptron: running it through ONNX Runtime");
                Hybrid::Session(session)
            }
        };
        Ok(Self {
            ncf: open("ncf")?,
            content: open("content")?,
            hybrid,
        })
    }

    /// `ncf.onnx`: users `[b, DIM]`, items `[b, c, DIM]` → logits `[b, c]`.
    pub fn ncf(
        &mut self,
        users: &[f32],
        items: &[f32],
        b: usize,
        c: usize,
    ) -> Result<Vec<f32>, String> {
        run(
            &mut self.ncf,
            vec![
                ("user", vec![b, DIM], users),
                ("items", vec![b, c, DIM], items),
            ],
            "score",
        )
    }

    /// `hybrid.onnx`: features `[b, c, FEATURES]` → scores `[b, c]`.
    pub fn hybrid(&mut self, features: &[f32], b: usize, c: usize) -> Result<Vec<f32>, String> {
        match &mut self.hybrid {
            Hybrid::InProcess(perceptron) => Ok(perceptron.score(features)),
            Hybrid::Session(session) => run(
                session,
                vec![("features", vec![b, c, FEATURES], features)],
                "score",
            ),
        }
    }

    /// `content.onnx` on rows of raw track features.
    pub fn content(&mut self, rows: &[[f32; CONTENT_INPUTS]]) -> Result<ContentOutputs, String> {
        let n = rows.len();
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let input =
            Tensor::from_array((vec![n, CONTENT_INPUTS], flat)).map_err(|e| e.to_string())?;
        let outputs = self
            .content
            .run(vec![("features", SessionInputValue::from(input))])
            .map_err(|e| e.to_string())?;
        let take = |name: &str| -> Result<Vec<f32>, String> {
            let (_, data) = outputs[name]
                .try_extract_tensor::<f32>()
                .map_err(|e| e.to_string())?;
            Ok(data.to_vec())
        };
        Ok(ContentOutputs {
            rows: n,
            embedding: take("embedding")?,
            genres: take(GENRE_OUTPUT)?,
            moods: take(MOOD_OUTPUT)?,
        })
    }
}

/// Runs `session` on borrowed inputs (the engine's reused buffers; ONNX Runtime reads them in
/// place).
fn run(
    session: &mut Session,
    inputs: Vec<(&'static str, Vec<usize>, &[f32])>,
    output: &str,
) -> Result<Vec<f32>, String> {
    let mut values: Vec<(&str, SessionInputValue<'_>)> = Vec::with_capacity(inputs.len());
    for (name, shape, data) in inputs {
        let tensor = TensorRef::from_array_view((shape, data)).map_err(|e| e.to_string())?;
        values.push((name, tensor.into()));
    }
    let outputs = session.run(values).map_err(|e| e.to_string())?;
    let (_, data) = outputs[output]
        .try_extract_tensor::<f32>()
        .map_err(|e| e.to_string())?;
    Ok(data.to_vec())
}

/// Indices of the non-empty lengths, longest first, in runs where none is shorter than half
/// the run's first: padding to the longest wastes at most half of a run's tensor.
fn similar_lengths(lengths: &[usize]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).filter(|&r| lengths[r] > 0).collect();
    order.sort_by_key(|&r| std::cmp::Reverse(lengths[r]));
    let mut runs: Vec<Vec<usize>> = Vec::new();
    for r in order {
        match runs.last_mut() {
            Some(run) if 2 * lengths[r] >= lengths[run[0]] => run.push(r),
            _ => runs.push(vec![r]),
        }
    }
    runs
}

/// `content.onnx`'s outputs for a batch, row-major.
#[derive(Debug, Clone)]
pub struct ContentOutputs {
    pub rows: usize,
    pub embedding: Vec<f32>,
    pub genres: Vec<f32>,
    pub moods: Vec<f32>,
}

impl ContentOutputs {
    pub fn embeddings(self) -> Array2<f32> {
        Array2::from_shape_vec((self.rows, DIM), self.embedding).expect("[rows, DIM]")
    }
}

/// Recommend for one listener: gather candidates (item-item neighbours and the dot product),
/// featurise, score with NCF and the hybrid ranker.
#[derive(Debug, Clone)]
pub struct RankJob {
    pub listener: Arc<Listener>,
    /// Item rows never recommended, sorted.
    pub exclude: Vec<u32>,
    pub candidates: usize,
    /// How many of the best to return, with each feature's contribution.
    pub top: usize,
    /// What "best" means.
    pub order: RankBy,
    /// Explain this one item instead: it joins the candidates if neither source brought it,
    /// and it alone is returned, with its contributions (`top` is ignored).
    pub focus: Option<u32>,
}

/// The ranking a strategy uses over the same retrieved candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RankBy {
    /// The hybrid ranker's score (NCF, content, popularity, freshness, diversity together).
    #[default]
    Hybrid,
    /// The NCF model's score alone.
    Ncf,
    /// Content similarity to the listener's liked tracks alone.
    Content,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RankedItem {
    pub item: u32,
    /// The hybrid ranker's score (a logit; only the order within one answer is meaningful).
    pub score: f32,
    /// The NCF model's logit for this listener and track.
    pub ncf: f32,
    pub features: FeatureRow,
    /// How much each feature moved the score: the score minus the score with that feature set
    /// to its mean over this request's candidates.
    pub contributions: FeatureRow,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ranked {
    pub items: Vec<RankedItem>,
    /// Candidates the two sources produced (and the rankers scored).
    pub considered: usize,
}

/// Nearest tracks to a query vector by cosine.
#[derive(Debug, Clone)]
pub struct SimilarJob {
    pub query: RetrievalQuery,
}

/// Time spent in each step of ranking, summed over every batch this engine ran.
#[derive(Debug, Clone, Copy, Default)]
pub struct PhaseTimes {
    pub retrieval: Duration,
    pub features: Duration,
    pub ncf: Duration,
    pub hybrid: Duration,
    pub explain: Duration,
}

impl PhaseTimes {
    pub fn named(&self) -> [(&'static str, Duration); 5] {
        [
            ("retrieval", self.retrieval),
            ("features", self.features),
            ("ncf", self.ncf),
            ("hybrid", self.hybrid),
            ("explain", self.explain),
        ]
    }
}

/// One listener's candidates to score.
pub(super) struct ScoreRow<'a> {
    pub listener: &'a Listener,
    pub candidates: Vec<Candidate>,
}

/// Hybrid scores for rows of candidates: `scores[r * width + j]`.
pub(super) struct Scored {
    pub features: Vec<Vec<FeatureRow>>,
    pub scores: Vec<f32>,
    pub width: usize,
}

impl Scored {
    pub fn score(&self, row: usize, candidate: usize) -> f32 {
        self.scores[row * self.width + candidate]
    }
}

/// One inference thread's state.
pub struct Engine {
    pub models: Models,
    pub space: Arc<ItemSpace>,
    pub phases: PhaseTimes,
    /// Group members' own best tracks by dot product, kept while their taste is unchanged
    /// (see `super::group`).
    /// Shared by every engine of a process (see `OwnHits`).
    pub(super) own_hits: Arc<super::group::OwnHits>,
    /// The models' input tensors, kept from batch to batch: a fresh tensor per batch was a
    /// zero-filled allocation, often of pages new to the process (docs/BENCHMARKS.md).
    inputs: Inputs,
}

#[derive(Default)]
struct Inputs {
    users: Vec<f32>,
    items: Vec<f32>,
    features: Vec<f32>,
}

impl Engine {
    pub fn new(models: Models, space: Arc<ItemSpace>) -> Self {
        Self {
            models,
            space,
            phases: PhaseTimes::default(),
            own_hits: Default::default(),
            inputs: Inputs::default(),
        }
    }
}

impl Engine {
    pub fn rank(&mut self, jobs: &[RankJob]) -> Result<Vec<Ranked>, String> {
        let clock = Instant::now();
        let queries: Vec<RetrievalQuery> = jobs
            .iter()
            .map(|j| RetrievalQuery {
                vector: j.listener.vector.clone(),
                exclude: j.exclude.clone(),
                k: j.candidates,
            })
            .collect();
        let space = Arc::clone(&self.space);
        let hits = retrieval::top_k(space.items(), Metric::Dot, &queries);
        let lists: Vec<Vec<Candidate>> = jobs
            .iter()
            .zip(&hits)
            .map(|(job, hits)| {
                let vector = &job.listener.vector;
                let item_item = space.neighbours().scores(&job.listener.seeds);
                let mut list = candidates::merge(
                    &space,
                    vector,
                    &item_item,
                    &job.exclude,
                    hits,
                    job.candidates,
                );
                if let Some(item) = job.focus.filter(|i| list.iter().all(|c| c.item != *i)) {
                    list.push(Candidate {
                        item,
                        retrieval: super::space::dot(vector, space.vector_slice(item)),
                        item_item: candidates::item_item_score(&item_item, item),
                    });
                }
                list
            })
            .collect();
        self.phases.retrieval += clock.elapsed();
        let rows: Vec<ScoreRow<'_>> = jobs
            .iter()
            .zip(lists)
            .map(|(job, candidates)| ScoreRow {
                listener: &job.listener,
                candidates,
            })
            .collect();
        let scored = self.score_rows(&rows)?;
        // Per request: order by score, keep the top, and explain them by occlusion.
        let order: Vec<Vec<usize>> = jobs
            .iter()
            .enumerate()
            .map(|(r, job)| {
                let mut idx: Vec<usize> = (0..scored.features[r].len()).collect();
                let key = |j: usize| match job.order {
                    RankBy::Hybrid => scored.score(r, j),
                    RankBy::Ncf => scored.features[r][j][NCF_SCORE],
                    RankBy::Content => scored.features[r][j][CONTENT_SIMILARITY],
                };
                if let Some(item) = job.focus {
                    return idx
                        .into_iter()
                        .filter(|&j| rows[r].candidates[j].item == item)
                        .collect();
                }
                idx.sort_by(|&x, &y| key(y).total_cmp(&key(x)).then(x.cmp(&y)));
                idx.truncate(job.top);
                idx
            })
            .collect();
        let contributions = self.occlude(&scored, &order)?;
        Ok(order
            .into_iter()
            .zip(contributions)
            .enumerate()
            .map(|(r, (idx, contributions))| Ranked {
                considered: rows[r].candidates.len(),
                items: idx
                    .iter()
                    .zip(contributions)
                    .map(|(&j, contributions)| RankedItem {
                        item: rows[r].candidates[j].item,
                        score: scored.score(r, j),
                        ncf: scored.features[r][j][NCF_SCORE],
                        features: scored.features[r][j],
                        contributions,
                    })
                    .collect(),
            })
            .collect())
    }

    /// Features, NCF and the hybrid ranker for each row's candidates, all rows in one tensor.
    pub(super) fn score_rows(&mut self, rows: &[ScoreRow<'_>]) -> Result<Scored, String> {
        let features = self.featurize(rows)?;
        self.score_features(features)
    }

    /// Each row's features with the NCF model's logit filled in: everything about a candidate
    /// that depends on the listener alone (a group's ranking then sets the group agreement).
    pub(super) fn featurize(
        &mut self,
        rows: &[ScoreRow<'_>],
    ) -> Result<Vec<Vec<FeatureRow>>, String> {
        let mut clock = Instant::now();
        let mut lap = |slot: &mut Duration| {
            let now = Instant::now();
            *slot += now - clock;
            clock = now;
        };
        let space = Arc::clone(&self.space);
        let mut features: Vec<Vec<FeatureRow>> = rows
            .iter()
            .map(|row| candidate_features(&space, row.listener, &row.candidates))
            .collect();
        lap(&mut self.phases.features);
        // NCF over [b, c] tensors, short candidate lists padded with zero vectors (their scores
        // dropped). A group refresh scores one member over the whole pool and the others over a
        // few new candidates each, so rows of similar length go together: one tensor for all
        // would be mostly padding.
        let lengths: Vec<usize> = rows.iter().map(|row| row.candidates.len()).collect();
        for run in similar_lengths(&lengths) {
            let b = run.len();
            let c = rows[run[0]].candidates.len();
            let Inputs { users, items, .. } = &mut self.inputs;
            users.clear();
            items.clear();
            for &row in &run {
                users.extend_from_slice(&rows[row].listener.vector[..DIM]);
                let candidates = &rows[row].candidates;
                for candidate in candidates {
                    items.extend_from_slice(space.vector_slice(candidate.item));
                }
                items.resize(items.len() + (c - candidates.len()) * DIM, 0.0);
            }
            lap(&mut self.phases.features);
            let ncf = self.models.ncf(users, items, b, c)?;
            lap(&mut self.phases.ncf);
            for (r, &row) in run.iter().enumerate() {
                for (j, f) in features[row].iter_mut().enumerate() {
                    f[NCF_SCORE] = ncf[r * c + j];
                }
            }
        }
        Ok(features)
    }

    /// The hybrid ranker over complete feature rows.
    pub(super) fn score_features(
        &mut self,
        features: Vec<Vec<FeatureRow>>,
    ) -> Result<Scored, String> {
        let clock = Instant::now();
        let c = features.iter().map(Vec::len).max().unwrap_or(0);
        if c == 0 {
            return Ok(Scored {
                features,
                scores: Vec::new(),
                width: 0,
            });
        }
        flatten(&features, c, &mut self.inputs.features);
        let scores = self
            .models
            .hybrid(&self.inputs.features, features.len(), c)?;
        self.phases.hybrid += clock.elapsed();
        Ok(Scored {
            features,
            scores,
            width: c,
        })
    }

    /// Each picked candidate's feature contributions: its score minus its score with that
    /// feature set to the row's candidate mean. `picks[r]` indexes row r's candidates.
    pub(super) fn occlude(
        &mut self,
        scored: &Scored,
        picks: &[Vec<usize>],
    ) -> Result<Vec<Vec<FeatureRow>>, String> {
        let clock = Instant::now();
        let occluded: Vec<Vec<FeatureRow>> = scored
            .features
            .iter()
            .zip(picks)
            .map(|(rows, picks)| {
                let baseline = mean(rows);
                let mut variants = Vec::with_capacity(picks.len() * FEATURES);
                for &j in picks {
                    for f in 0..FEATURES {
                        let mut v = rows[j];
                        v[f] = baseline[f];
                        variants.push(v);
                    }
                }
                variants
            })
            .collect();
        let t = occluded.iter().map(Vec::len).max().unwrap_or(0);
        let without = if t > 0 {
            flatten(&occluded, t, &mut self.inputs.features);
            self.models
                .hybrid(&self.inputs.features, occluded.len(), t)?
        } else {
            Vec::new()
        };
        self.phases.explain += clock.elapsed();
        Ok(picks
            .iter()
            .enumerate()
            .map(|(r, picks)| {
                picks
                    .iter()
                    .enumerate()
                    .map(|(rank, &j)| {
                        let score = scored.score(r, j);
                        let mut contributions = [0f32; FEATURES];
                        for (f, slot) in contributions.iter_mut().enumerate() {
                            *slot = score - without[r * t + rank * FEATURES + f];
                        }
                        contributions
                    })
                    .collect()
            })
            .collect())
    }

    pub fn similar(&self, jobs: &[SimilarJob]) -> Vec<Vec<Hit>> {
        let queries: Vec<RetrievalQuery> = jobs.iter().map(|j| j.query.clone()).collect();
        retrieval::top_k(self.space.items(), Metric::Cosine, &queries)
    }

    pub fn classify(&mut self, rows: &[[f32; CONTENT_INPUTS]]) -> Result<ContentOutputs, String> {
        self.models.content(rows)
    }
}

/// `[b, width, FEATURES]` row-major, short rows padded with zeros.
/// The rows as one `[rows, width, FEATURES]` tensor in `out`, short rows padded with zeros.
fn flatten(rows: &[Vec<FeatureRow>], width: usize, out: &mut Vec<f32>) {
    out.clear();
    for row in rows {
        out.extend(row.iter().flatten());
        out.resize(out.len() + (width - row.len()) * FEATURES, 0.0);
    }
}

fn mean(rows: &[FeatureRow]) -> FeatureRow {
    let mut m = [0f32; FEATURES];
    for row in rows {
        for (a, x) in m.iter_mut().zip(row) {
            *a += x;
        }
    }
    for a in &mut m {
        *a /= rows.len().max(1) as f32;
    }
    m
}

/// Content-model embeddings of every catalog track, computed in chunks with progress logs.
pub fn embed_catalog(
    models: &mut Models,
    rows: &[[f32; CONTENT_INPUTS]],
) -> Result<Array2<f32>, String> {
    const CHUNK: usize = 8_192;
    let mut out = Array2::<f32>::zeros((rows.len(), DIM));
    for (n, chunk) in rows.chunks(CHUNK).enumerate() {
        let embedding = models.content(chunk)?.embeddings();
        let start = n * CHUNK;
        out.slice_mut(ndarray::s![start..start + chunk.len(), ..])
            .assign(&embedding);
        let done = start + chunk.len();
        if rows.len() > 100_000 && (done % 100_000 < CHUNK || done == rows.len()) {
            tracing::info!(
                done,
                total = rows.len(),
                "embedding catalog tracks with content.onnx"
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{flatten, similar_lengths, FEATURES};

    #[test]
    fn flattened_rows_are_padded_to_the_width_whatever_the_buffer_held() {
        let row = |x: f32| [x; FEATURES];
        let mut out = vec![7.0; 3 * FEATURES * 5];
        flatten(&[vec![row(1.0), row(2.0)], vec![row(3.0)]], 2, &mut out);
        let expected: Vec<f32> = [1.0, 2.0, 3.0, 0.0]
            .iter()
            .flat_map(|&x| [x; FEATURES])
            .collect();
        assert_eq!(out, expected);
        flatten(&[vec![row(4.0)]], 1, &mut out);
        assert_eq!(out, vec![4.0; FEATURES]);
    }

    #[test]
    fn rows_of_similar_length_share_a_tensor_and_empty_rows_none() {
        // One member over the whole pool, the others over a few new candidates each.
        assert_eq!(
            similar_lengths(&[3, 100, 0, 4, 60, 2]),
            vec![vec![1, 4], vec![3, 0, 5]]
        );
        assert_eq!(similar_lengths(&[5, 5, 5]), vec![vec![0, 1, 2]]);
        assert!(similar_lengths(&[0, 0]).is_empty());
        assert!(similar_lengths(&[]).is_empty());
    }
}

//! Model inference: the only place ONNX Runtime runs.
//!
//! [`Inference::start`] verifies the shipped artifacts against the manifest (the server refuses to
//! start otherwise), opens the models on the chosen execution provider, embeds every catalog
//! track with `content.onnx`, builds the [`ItemSpace`], and starts the [`actor::InferenceActor`]
//! with its dedicated threads. Callers use the async methods on [`Inference`].

pub mod actor;
pub mod candidates;
pub mod engine;
pub mod features;
pub mod group;
pub mod neighbours;
mod priority;
pub mod retrieval;
pub mod space;

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Instant};

use actix::{Actor, Addr};
use anyhow::Context as _;

use self::{
    actor::{Classify, InferenceActor, Rank, RankGroup, Similar},
    engine::{embed_catalog, ContentOutputs, Engine, Models, RankJob, Ranked, SimilarJob},
    group::{GroupRankJob, GroupRanked},
    retrieval::Hit,
    space::{content_defaults, content_inputs, ItemSpace, CONTENT_INPUTS},
};
use crate::{
    catalog::Catalog,
    config::{ExecutionProvider, InferenceSettings, ModelSettings},
    error::{ApiError, ErrorCode},
    metrics::Metrics,
    models::{environment, Manifest, SessionOptions, CUDA_COMPILED, DEFAULT_ORT_DYLIB},
};

#[derive(Debug, Clone, thiserror::Error)]
pub enum InferenceError {
    #[error("the inference queue is full")]
    Overloaded,
    #[error("inference is not running")]
    Unavailable,
    #[error("inference failed: {0}")]
    Failed(String),
}

impl From<InferenceError> for ApiError {
    fn from(err: InferenceError) -> Self {
        match err {
            InferenceError::Overloaded => ApiError::new(
                ErrorCode::Overloaded,
                "too many recommendation requests are in flight; retry shortly",
            )
            .retry_after(1),
            other => ApiError::internal(other),
        }
    }
}

/// A cloneable handle to the running inference actor and what it was built from.
#[derive(Clone)]
pub struct Inference {
    addr: Addr<InferenceActor>,
    load: actor::QueueLoad,
    space: Arc<ItemSpace>,
    calibration: group::Platt,
    genres: Arc<Vec<String>>,
    moods: Arc<Vec<String>>,
    provider: &'static str,
}

impl Inference {
    pub async fn start(
        models: &ModelSettings,
        settings: &InferenceSettings,
        catalog: Arc<Catalog>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let started = Instant::now();
        let models = models.clone();
        let models_dir = models.dir.clone();
        let threads = settings.threads;
        let intra_threads = settings.intra_threads;
        let loaded =
            tokio::task::spawn_blocking(move || load(&models, threads, intra_threads, &catalog))
                .await
                .context("loading the models")??;
        tracing::info!(
            provider = loaded.provider,
            threads,
            items = loaded.space.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "models loaded"
        );
        let space = Arc::clone(&loaded.space);
        let calibration = loaded.calibration.ok_or_else(|| {
            anyhow::anyhow!(
                "{}/manifest.json: models.hybrid.calibration is missing; fit it with \
                 `chorus eval-groups --write-calibration` (scripts/models.sh runs it)",
                models_dir.display()
            )
        })?;
        let genres = Arc::new(loaded.genres.clone());
        let moods = Arc::new(loaded.moods.clone());
        let provider = loaded.provider;
        let actor = InferenceActor::new(settings, loaded.into_engines(), metrics);
        let load = actor.load();
        let addr = actor.start();
        Ok(Self {
            addr,
            load,
            space,
            calibration,
            genres,
            moods,
            provider,
        })
    }

    pub fn space(&self) -> &Arc<ItemSpace> {
        &self.space
    }

    /// The hybrid ranker's logit as a calibrated probability of liking the track.
    pub fn calibration(&self) -> group::Platt {
        self.calibration
    }

    pub fn genres(&self) -> &[String] {
        &self.genres
    }

    pub fn moods(&self) -> &[String] {
        &self.moods
    }

    /// How full the inference queue is (0–1 of `inference.queue_capacity`): rooms stretch the
    /// wait before their next refresh as it fills.
    pub fn busy(&self) -> f64 {
        self.load.share()
    }

    pub fn is_running(&self) -> bool {
        self.addr.connected()
    }

    /// `"cpu"` or `"cuda"`.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    pub async fn rank(&self, job: RankJob) -> Result<Ranked, InferenceError> {
        wait(self.addr.send(Rank(job)).await).await
    }

    pub async fn rank_group(&self, job: GroupRankJob) -> Result<GroupRanked, InferenceError> {
        wait(self.addr.send(RankGroup(job)).await).await
    }

    pub async fn similar(&self, job: SimilarJob) -> Result<Vec<Hit>, InferenceError> {
        wait(self.addr.send(Similar(job)).await).await
    }

    pub async fn classify(
        &self,
        rows: Vec<[f32; CONTENT_INPUTS]>,
    ) -> Result<ContentOutputs, InferenceError> {
        wait(self.addr.send(Classify(rows)).await).await
    }
}

async fn wait<R>(
    sent: Result<actor::Admission<R>, actix::MailboxError>,
) -> Result<R, InferenceError> {
    let receiver = sent.map_err(|_| InferenceError::Unavailable)??;
    receiver.await.map_err(|_| InferenceError::Unavailable)?
}

/// Verified models, one set per inference thread, and the item space built with them.
pub struct Loaded {
    pub models: Vec<Models>,
    pub space: Arc<ItemSpace>,
    /// From the manifest; `None` until `chorus eval-groups --write-calibration` has fitted it.
    pub calibration: Option<group::Platt>,
    pub genres: Vec<String>,
    pub moods: Vec<String>,
    pub provider: &'static str,
}

impl Loaded {
    pub fn into_engines(self) -> Vec<Engine> {
        let space = self.space;
        let own_hits: Arc<group::OwnHits> = Arc::default();
        self.models
            .into_iter()
            .map(|models| {
                let mut engine = Engine::new(models, Arc::clone(&space));
                engine.own_hits = Arc::clone(&own_hits);
                engine
            })
            .collect()
    }
}

/// Blocking: verify artifacts, open one model set per thread, embed the catalog.
pub fn load(
    settings: &ModelSettings,
    threads: usize,
    intra_threads: usize,
    catalog: &Catalog,
) -> anyhow::Result<Loaded> {
    let dir = &settings.dir;
    let manifest = Manifest::load(dir)?;
    manifest.verify_files(dir)?;
    let dylib = settings
        .ort_dylib_path
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ORT_DYLIB));
    let env = environment(&dylib)?;
    let mut options = SessionOptions {
        intra_threads,
        cuda: false,
    };
    let first = match settings.execution_provider {
        ExecutionProvider::Cpu => Models::open(env, dir, &manifest, options)?,
        ExecutionProvider::Cuda => {
            options.cuda = true;
            Models::open(env, dir, &manifest, options)
                .context("CHORUS_EXECUTION_PROVIDER=cuda but CUDA cannot be used")?
        }
        ExecutionProvider::Auto if !CUDA_COMPILED => {
            tracing::info!("execution provider auto: this build has no CUDA support, using CPU");
            Models::open(env, dir, &manifest, options)?
        }
        ExecutionProvider::Auto => {
            match Models::open(
                env,
                dir,
                &manifest,
                SessionOptions {
                    cuda: true,
                    ..options
                },
            ) {
                Ok(models) => {
                    options.cuda = true;
                    models
                }
                Err(e) => {
                    tracing::warn!(error = %e, "execution provider auto: CUDA unavailable, falling back to CPU");
                    Models::open(env, dir, &manifest, options)?
                }
            }
        }
    };
    let mut models = vec![first];
    for _ in 1..threads {
        models.push(Models::open(env, dir, &manifest, options)?);
    }
    let (ids, vectors) = manifest.load_items(dir)?;
    if manifest.embedding_dim != space::DIM {
        anyhow::bail!(
            "models/manifest.json: embedding_dim is {}, this server is built for {}",
            manifest.embedding_dim,
            space::DIM
        );
    }
    let shipped: HashMap<String, usize> =
        ids.into_iter().enumerate().map(|(i, id)| (id, i)).collect();
    let defaults = content_defaults(catalog.tracks());
    let rows: Vec<[f32; CONTENT_INPUTS]> = catalog
        .tracks()
        .iter()
        .map(|t| content_inputs(t, defaults))
        .collect();
    let embeddings = embed_catalog(&mut models[0], &rows).map_err(|e| anyhow::anyhow!(e))?;
    let neighbours = neighbours::load(&manifest, dir)?;
    let space = ItemSpace::build(
        catalog,
        &shipped,
        &vectors,
        &neighbours,
        manifest.items.neighbours.candidate_share,
        embeddings,
    );
    let content = &manifest.models["content"];
    let calibration = manifest.models["hybrid"]
        .calibration
        .as_ref()
        .map(|c| group::Platt {
            slope: c.slope,
            intercept: c.intercept,
        });
    Ok(Loaded {
        models,
        space: Arc::new(space),
        calibration,
        genres: content.genres.clone(),
        moods: content.moods.clone(),
        provider: if options.cuda { "cuda" } else { "cpu" },
    })
}

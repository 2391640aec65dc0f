//! The ExplainerActor: one per process, shared by every request and socket. It turns [`Facts`]
//! into an explanation, from the cache, the language model or the template, always within the
//! deadline. Each request runs as its own future (the actor never waits on one), language-model
//! calls are bounded by a semaphore, and the actor keeps the health that `/ready` reports.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, Semaphore};

use super::{
    check,
    facts::Facts,
    llm::{LlmClient, LlmError},
    prompt::{self, PROMPT_VERSION},
    template,
};
use crate::{cache::Cache, config::ExplainerSettings, error::ApiError, metrics::Metrics};

/// Time kept back from the deadline for rendering the template and answering.
const ANSWER_MARGIN: Duration = Duration::from_millis(25);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Llm,
    Template,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Llm => "llm",
            Source::Template => "template",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Explanation {
    pub text: String,
    pub source: Source,
    /// The model that wrote it (for `llm`).
    pub model: Option<String>,
    pub cached: bool,
    /// Why the template answered although a model is configured.
    pub fallback: Option<String>,
    pub latency_ms: u64,
}

/// Explain a track. With `deltas`, language-model text is streamed there as it arrives; the
/// returned explanation is the whole, authoritative text (it replaces the deltas when the
/// model's answer was rejected or cut off by the deadline).
pub struct Explain {
    pub facts: Facts,
    pub deltas: Option<mpsc::UnboundedSender<String>>,
}

impl Message for Explain {
    type Result = Explanation;
}

/// The explainer's state for `/ready`.
pub struct GetStatus;

#[derive(Debug, Clone)]
pub struct ExplainerStatus {
    /// `disabled` (template only), `ok`, or `degraded` (the last model call fell back).
    pub status: &'static str,
    pub detail: String,
}

impl Message for GetStatus {
    type Result = ExplainerStatus;
}

#[derive(Serialize, Deserialize)]
struct Cached {
    text: String,
    model: String,
}

#[derive(Default)]
struct Health {
    calls: u64,
    consecutive_failures: u64,
    last_failure: Option<String>,
    last_latency_ms: Option<u64>,
}

pub struct ExplainerActor {
    llm: Option<Arc<LlmClient>>,
    cache: Arc<dyn Cache>,
    permits: Arc<Semaphore>,
    settings: ExplainerSettings,
    metrics: Arc<Metrics>,
    /// Every genre the catalog knows, for the invented-genre check.
    genres: Arc<Vec<String>>,
    health: Health,
}

impl ExplainerActor {
    pub fn new(
        settings: ExplainerSettings,
        cache: Arc<dyn Cache>,
        metrics: Arc<Metrics>,
        genres: Vec<String>,
    ) -> Self {
        let llm = match (&settings.base_url, &settings.model) {
            (Some(url), Some(model)) => Some(Arc::new(LlmClient::new(
                url,
                model,
                settings.api_key.as_ref().map(|k| k.expose()),
                settings.max_tokens,
                settings.max_retries,
            ))),
            _ => None,
        };
        Self {
            llm,
            cache,
            permits: Arc::new(Semaphore::new(settings.max_concurrency)),
            settings,
            metrics,
            genres: Arc::new(genres),
            health: Health::default(),
        }
    }
}

impl Actor for ExplainerActor {
    type Context = Context<Self>;
}

impl Handler<Explain> for ExplainerActor {
    type Result = ResponseActFuture<Self, Explanation>;

    fn handle(&mut self, msg: Explain, _ctx: &mut Self::Context) -> Self::Result {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(self.settings.deadline_ms);
        let job = Job {
            llm: self.llm.clone(),
            cache: Arc::clone(&self.cache),
            permits: Arc::clone(&self.permits),
            metrics: Arc::clone(&self.metrics),
            genres: Arc::clone(&self.genres),
            cache_ttl: Duration::from_secs(self.settings.cache_ttl_s),
            deadline: deadline - ANSWER_MARGIN,
        };
        Box::pin(job.run(msg).into_actor(self).map(move |result, actor, _| {
            let (mut explanation, called) = result;
            explanation.latency_ms = started.elapsed().as_millis() as u64;
            if let Some(outcome) = called {
                actor.health.record(outcome, &explanation);
            }
            actor
                .metrics
                .explanations
                .with_label_values(&[explanation.source.as_str()])
                .inc();
            explanation
        }))
    }
}

impl Handler<GetStatus> for ExplainerActor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _ctx: &mut Self::Context) -> Self::Result {
        let Some(llm) = &self.llm else {
            return MessageResult(ExplainerStatus {
                status: "disabled",
                detail: "template explanations only (EXPLAINER_BASE_URL is unset)".into(),
            });
        };
        let health = &self.health;
        let status = if health.consecutive_failures > 0 {
            "degraded"
        } else {
            "ok"
        };
        let detail = match (&health.last_failure, health.last_latency_ms) {
            _ if health.calls == 0 => format!("model {}; no calls yet", llm.model()),
            (Some(reason), _) if health.consecutive_failures > 0 => format!(
                "model {}; the last {} call(s) fell back to the template ({reason})",
                llm.model(),
                health.consecutive_failures
            ),
            (_, Some(ms)) => format!("model {}; last call answered in {ms} ms", llm.model()),
            _ => format!("model {}", llm.model()),
        };
        MessageResult(ExplainerStatus { status, detail })
    }
}

impl Health {
    fn record(&mut self, outcome: Result<(), String>, explanation: &Explanation) {
        self.calls += 1;
        match outcome {
            Ok(()) => {
                self.consecutive_failures = 0;
                self.last_latency_ms = Some(explanation.latency_ms);
            }
            Err(reason) => {
                self.consecutive_failures += 1;
                self.last_failure = Some(reason);
            }
        }
    }
}

/// One request's work, owned by its future.
struct Job {
    llm: Option<Arc<LlmClient>>,
    cache: Arc<dyn Cache>,
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    genres: Arc<Vec<String>>,
    cache_ttl: Duration,
    deadline: Instant,
}

/// Why the language model's answer was not used.
enum Miss {
    Timeout,
    Busy,
    Failed(LlmError),
    Junk(String),
}

impl Miss {
    fn reason(&self) -> &'static str {
        match self {
            Miss::Timeout => "timeout",
            Miss::Busy => "busy",
            Miss::Failed(e) => e.kind(),
            Miss::Junk(_) => "junk",
        }
    }

    fn describe(&self) -> String {
        match self {
            Miss::Timeout => "the deadline passed".into(),
            Miss::Busy => "every model slot was busy until the deadline".into(),
            Miss::Failed(e) => e.to_string(),
            Miss::Junk(why) => format!("the answer was rejected: {why}"),
        }
    }
}

impl Job {
    /// The explanation, and the outcome of a model call when one was made (for health).
    async fn run(self, msg: Explain) -> (Explanation, Option<Result<(), String>>) {
        let Explain { facts, deltas } = msg;
        let Some(llm) = self.llm.clone() else {
            return (template_answer(&facts, None), None);
        };
        let key = cache_key(&facts, llm.model());
        if let Some(hit) = self.cached(&key).await {
            self.metrics.explainer_cache_hits.inc();
            if let Some(deltas) = &deltas {
                let _ = deltas.send(hit.text.clone());
            }
            let answer = Explanation {
                text: hit.text,
                source: Source::Llm,
                model: Some(hit.model),
                cached: true,
                fallback: None,
                latency_ms: 0,
            };
            return (answer, None);
        }
        match self.ask(&llm, &facts, deltas.as_ref()).await {
            Ok(text) => {
                self.remember(key, &text, llm.model());
                let answer = Explanation {
                    text,
                    source: Source::Llm,
                    model: Some(llm.model().to_string()),
                    cached: false,
                    fallback: None,
                    latency_ms: 0,
                };
                (answer, Some(Ok(())))
            }
            Err(miss) => {
                self.metrics
                    .explainer_fallbacks
                    .with_label_values(&[miss.reason()])
                    .inc();
                tracing::warn!(reason = miss.reason(), detail = %miss.describe(), "explanation fell back to the template");
                let answer = template_answer(&facts, Some(miss.describe()));
                (answer, Some(Err(miss.reason().to_string())))
            }
        }
    }

    async fn cached(&self, key: &str) -> Option<Cached> {
        match tokio::time::timeout_at(self.deadline.into(), self.cache.get(key)).await {
            Ok(Ok(Some(bytes))) => serde_json::from_slice(&bytes).ok(),
            Ok(Err(err)) => {
                tracing::warn!(error = %format!("{err:#}"), "explanation cache unreadable");
                None
            }
            _ => None,
        }
    }

    /// Stores an accepted explanation without holding up the answer.
    fn remember(&self, key: String, text: &str, model: &str) {
        let value = serde_json::to_vec(&Cached {
            text: text.to_string(),
            model: model.to_string(),
        })
        .expect("plain strings serialise");
        let cache = Arc::clone(&self.cache);
        let ttl = self.cache_ttl;
        actix::spawn(async move {
            if let Err(err) = cache.set(&key, &value, ttl).await {
                tracing::warn!(error = %format!("{err:#}"), "explanation not cached");
            }
        });
    }

    /// Asks the model (streaming when `deltas` is given) and checks the answer, all before
    /// the deadline.
    async fn ask(
        &self,
        llm: &LlmClient,
        facts: &Facts,
        deltas: Option<&mpsc::UnboundedSender<String>>,
    ) -> Result<String, Miss> {
        let deadline = tokio::time::Instant::from_std(self.deadline);
        let _permit = tokio::time::timeout_at(deadline, Arc::clone(&self.permits).acquire_owned())
            .await
            .map_err(|_| Miss::Busy)?
            .expect("the semaphore is never closed");
        let prompt = prompt::build(facts);
        let call = async {
            match deltas {
                Some(tx) => {
                    llm.stream(&prompt, |piece| {
                        let _ = tx.send(piece.to_string());
                    })
                    .await
                }
                None => llm.complete(&prompt).await,
            }
        };
        self.metrics.explainer_in_flight.inc();
        let started = Instant::now();
        let result = tokio::time::timeout_at(deadline, call).await;
        self.metrics.explainer_in_flight.dec();
        let outcome = if matches!(result, Ok(Ok(_))) {
            "ok"
        } else {
            "error"
        };
        self.metrics
            .explainer_llm_duration
            .with_label_values(&[outcome])
            .observe(started.elapsed().as_secs_f64());
        match result {
            Err(_) => Err(Miss::Timeout),
            Ok(Err(err)) => Err(Miss::Failed(err)),
            Ok(Ok(text)) => check::accept(&text, facts, &self.genres).map_err(Miss::Junk),
        }
    }
}

/// The explainer actor stopped while a request waited on it: an internal error.
pub fn explainer_gone(err: MailboxError) -> ApiError {
    ApiError::internal(anyhow::anyhow!("explainer unreachable: {err}"))
}

fn template_answer(facts: &Facts, fallback: Option<String>) -> Explanation {
    Explanation {
        text: template::render(facts),
        source: Source::Template,
        model: None,
        cached: false,
        fallback,
        latency_ms: 0,
    }
}

/// Track + taste fingerprint: the same facts, model and prompt wording give the same key.
fn cache_key(facts: &Facts, model: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(PROMPT_VERSION.to_le_bytes());
    hash.update(model.as_bytes());
    hash.update([0]);
    hash.update(serde_json::to_vec(facts).expect("facts serialise"));
    let digest = hash.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("explain:{}:{hex}", facts.track.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::facts::{Audience, Signal, TrackFacts};

    fn facts(leaning: &str) -> Facts {
        Facts {
            track: TrackFacts {
                id: "t1".into(),
                title: "Song".into(),
                artist: "Band".into(),
                genres: vec!["rock".into()],
                traits: vec![],
                tempo_bpm: 100,
            },
            audience: Audience {
                kind: "listener",
                size: 1,
                top_genres: vec!["rock".into()],
                leanings: vec![leaning.into()],
            },
            signals: vec![Signal {
                label: "popular".into(),
                contribution: 0.1,
            }],
            strategy: None,
        }
    }

    #[test]
    fn the_cache_key_follows_track_taste_and_model() {
        let a = cache_key(&facts("calmer than most music"), "m1");
        assert!(a.starts_with("explain:t1:"), "{a}");
        assert_eq!(a, cache_key(&facts("calmer than most music"), "m1"));
        assert_ne!(a, cache_key(&facts("more upbeat than most music"), "m1"));
        assert_ne!(a, cache_key(&facts("calmer than most music"), "m2"));
    }
}

//! The InferenceActor: a dynamic batcher in front of dedicated inference threads.
//!
//! Each kind of request (rank, group, similar, classify) has its own pending batch. A batch is handed to
//! the threads when it reaches `max_batch` requests or when its first request has waited
//! `max_delay` — Triton's dynamic-batching rule. The threads run batches and answer every caller
//! through its own channel; the actor never computes anything, so its mailbox stays short.
//! Requests accepted but not yet answered are counted; past `queue_capacity` new ones are refused
//! with [`InferenceError::Overloaded`] at once instead of waiting without bound.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc, Arc, Mutex,
    },
    time::{Duration, Instant},
};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::{
    engine::{ContentOutputs, Engine, RankJob, Ranked, SimilarJob},
    group::{GroupRankJob, GroupRanked},
    priority,
    retrieval::Hit,
    space::CONTENT_INPUTS,
    InferenceError,
};
use crate::{config::InferenceSettings, metrics::Metrics};

type Reply<R> = oneshot::Sender<Result<R, InferenceError>>;
pub type Admission<R> = Result<oneshot::Receiver<Result<R, InferenceError>>, InferenceError>;

#[derive(Message)]
#[rtype(result = "Admission<Ranked>")]
pub struct Rank(pub RankJob);

#[derive(Message)]
#[rtype(result = "Admission<GroupRanked>")]
pub struct RankGroup(pub GroupRankJob);

#[derive(Message)]
#[rtype(result = "Admission<Vec<Hit>>")]
pub struct Similar(pub SimilarJob);

#[derive(Message)]
#[rtype(result = "Admission<ContentOutputs>")]
pub struct Classify(pub Vec<[f32; CONTENT_INPUTS]>);

/// A batch on its way to an inference thread.
pub enum Batch {
    Rank(Vec<(RankJob, Reply<Ranked>)>),
    Group(Vec<(GroupRankJob, Reply<GroupRanked>)>),
    Similar(Vec<(SimilarJob, Reply<Vec<Hit>>)>),
    Classify(Vec<(Vec<[f32; CONTENT_INPUTS]>, Reply<ContentOutputs>)>),
}

impl Batch {
    fn kind(&self) -> Kind {
        match self {
            Batch::Rank(_) => Kind::Rank,
            Batch::Group(_) => Kind::Group,
            Batch::Similar(_) => Kind::Similar,
            Batch::Classify(_) => Kind::Classify,
        }
    }

    fn len(&self) -> usize {
        match self {
            Batch::Rank(v) => v.len(),
            Batch::Group(v) => v.len(),
            Batch::Similar(v) => v.len(),
            Batch::Classify(v) => v.len(),
        }
    }

    /// Appends `other` if it is the same kind; gives it back otherwise.
    fn absorb(&mut self, other: Batch) -> Option<Batch> {
        match (self, other) {
            (Batch::Rank(a), Batch::Rank(b)) => a.extend(b),
            (Batch::Group(a), Batch::Group(b)) => a.extend(b),
            (Batch::Similar(a), Batch::Similar(b)) => a.extend(b),
            (Batch::Classify(a), Batch::Classify(b)) => a.extend(b),
            (_, other) => return Some(other),
        }
        None
    }

    /// Answers every caller with the same error (a failed or panicked run).
    fn fail(self, error: InferenceError) {
        match self {
            Batch::Rank(v) => v
                .into_iter()
                .for_each(|(_, r)| drop(r.send(Err(error.clone())))),
            Batch::Group(v) => v
                .into_iter()
                .for_each(|(_, r)| drop(r.send(Err(error.clone())))),
            Batch::Similar(v) => v
                .into_iter()
                .for_each(|(_, r)| drop(r.send(Err(error.clone())))),
            Batch::Classify(v) => v
                .into_iter()
                .for_each(|(_, r)| drop(r.send(Err(error.clone())))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rank,
    Group,
    Similar,
    Classify,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Rank => "rank",
            Kind::Group => "group",
            Kind::Similar => "similar",
            Kind::Classify => "classify",
        }
    }
}

struct Pending<J, R> {
    entries: Vec<(J, Reply<R>)>,
    /// Bumped on every flush, so a timer set for an earlier batch leaves a newer one alone.
    generation: u64,
}

impl<J, R> Default for Pending<J, R> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            generation: 0,
        }
    }
}

impl<J, R> Pending<J, R> {
    fn push(&mut self, job: J) -> (oneshot::Receiver<Result<R, InferenceError>>, usize) {
        let (tx, rx) = oneshot::channel();
        self.entries.push((job, tx));
        (rx, self.entries.len())
    }

    fn take(&mut self) -> Vec<(J, Reply<R>)> {
        self.generation += 1;
        std::mem::take(&mut self.entries)
    }
}

/// How full the inference queue is, readable from anywhere without asking the actor: callers
/// that can wait (a room's next refresh) slow down as it fills, before it has to refuse.
#[derive(Debug, Clone)]
pub struct QueueLoad {
    outstanding: Arc<AtomicUsize>,
    capacity: usize,
}

impl QueueLoad {
    /// Requests accepted and not yet answered, as a share (0–1) of `queue_capacity`.
    pub fn share(&self) -> f64 {
        let outstanding = self.outstanding.load(Ordering::Relaxed);
        (outstanding as f64 / self.capacity.max(1) as f64).min(1.0)
    }
}

pub struct InferenceActor {
    max_batch: usize,
    max_delay: Duration,
    queue_capacity: usize,
    rank: Pending<RankJob, Ranked>,
    group: Pending<GroupRankJob, GroupRanked>,
    similar: Pending<SimilarJob, Vec<Hit>>,
    classify: Pending<Vec<[f32; CONTENT_INPUTS]>, ContentOutputs>,
    batches: mpsc::Sender<Batch>,
    outstanding: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl InferenceActor {
    /// Starts one thread per engine; they share the batch channel.
    pub fn new(settings: &InferenceSettings, engines: Vec<Engine>, metrics: Arc<Metrics>) -> Self {
        let (batches, receiver) = mpsc::channel::<Batch>();
        let receiver = Arc::new(Mutex::new(receiver));
        let outstanding = Arc::new(AtomicUsize::new(0));
        let max_batch = settings.max_batch;
        let nice = settings.nice;
        for (n, engine) in engines.into_iter().enumerate() {
            let receiver = Arc::clone(&receiver);
            let outstanding = Arc::clone(&outstanding);
            let metrics = Arc::clone(&metrics);
            std::thread::Builder::new()
                .name(format!("inference-{n}"))
                .spawn(move || {
                    priority::lower_this_thread(nice);
                    run_batches(engine, &receiver, max_batch, &outstanding, &metrics)
                })
                .expect("spawning an inference thread");
        }
        Self {
            max_batch: settings.max_batch,
            max_delay: Duration::from_micros(settings.max_delay_us),
            queue_capacity: settings.queue_capacity,
            rank: Pending::default(),
            group: Pending::default(),
            similar: Pending::default(),
            classify: Pending::default(),
            batches,
            outstanding,
            metrics,
        }
    }

    /// The queue's fill, for callers that pace themselves (see [`QueueLoad`]).
    pub fn load(&self) -> QueueLoad {
        QueueLoad {
            outstanding: Arc::clone(&self.outstanding),
            capacity: self.queue_capacity,
        }
    }

    fn admit(&self) -> Result<(), InferenceError> {
        let depth = self.outstanding.load(Ordering::Acquire);
        if depth >= self.queue_capacity {
            self.metrics.inference_rejected.inc();
            return Err(InferenceError::Overloaded);
        }
        self.outstanding.fetch_add(1, Ordering::AcqRel);
        self.metrics.inference_queue_depth.set(depth as i64 + 1);
        Ok(())
    }

    fn after_push(&mut self, ctx: &mut Context<Self>, kind: Kind, pending: usize) {
        if pending >= self.max_batch || self.max_delay.is_zero() {
            self.flush(kind);
        } else if pending == 1 {
            let generation = self.generation(kind);
            ctx.run_later(self.max_delay, move |actor, _| {
                if actor.generation(kind) == generation {
                    actor.flush(kind);
                }
            });
        }
    }

    fn generation(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Rank => self.rank.generation,
            Kind::Group => self.group.generation,
            Kind::Similar => self.similar.generation,
            Kind::Classify => self.classify.generation,
        }
    }

    fn flush(&mut self, kind: Kind) {
        let batch = match kind {
            Kind::Rank => Batch::Rank(self.rank.take()),
            Kind::Group => Batch::Group(self.group.take()),
            Kind::Similar => Batch::Similar(self.similar.take()),
            Kind::Classify => Batch::Classify(self.classify.take()),
        };
        if batch.len() == 0 {
            return;
        }
        if let Err(mpsc::SendError(batch)) = self.batches.send(batch) {
            let n = batch.len();
            batch.fail(InferenceError::Unavailable);
            self.outstanding.fetch_sub(n, Ordering::AcqRel);
        }
    }
}

impl Actor for InferenceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Admission control is the queue bound; the mailbox only needs to absorb bursts.
        ctx.set_mailbox_capacity(self.queue_capacity);
    }
}

impl Handler<Rank> for InferenceActor {
    type Result = Admission<Ranked>;

    fn handle(&mut self, msg: Rank, ctx: &mut Self::Context) -> Self::Result {
        self.admit()?;
        let (rx, pending) = self.rank.push(msg.0);
        self.after_push(ctx, Kind::Rank, pending);
        Ok(rx)
    }
}

impl Handler<RankGroup> for InferenceActor {
    type Result = Admission<GroupRanked>;

    fn handle(&mut self, msg: RankGroup, ctx: &mut Self::Context) -> Self::Result {
        self.admit()?;
        let (rx, pending) = self.group.push(msg.0);
        self.after_push(ctx, Kind::Group, pending);
        Ok(rx)
    }
}

impl Handler<Similar> for InferenceActor {
    type Result = Admission<Vec<Hit>>;

    fn handle(&mut self, msg: Similar, ctx: &mut Self::Context) -> Self::Result {
        self.admit()?;
        let (rx, pending) = self.similar.push(msg.0);
        self.after_push(ctx, Kind::Similar, pending);
        Ok(rx)
    }
}

impl Handler<Classify> for InferenceActor {
    type Result = Admission<ContentOutputs>;

    fn handle(&mut self, msg: Classify, ctx: &mut Self::Context) -> Self::Result {
        self.admit()?;
        let (rx, pending) = self.classify.push(msg.0);
        self.after_push(ctx, Kind::Classify, pending);
        Ok(rx)
    }
}

/// An inference thread: takes batches until the actor (the only sender) is gone. Batches that
/// queued up while the thread was busy are merged (up to `max_batch`), so under load batches
/// grow by themselves instead of waiting in line one timer's worth at a time.
fn run_batches(
    mut engine: Engine,
    receiver: &Mutex<mpsc::Receiver<Batch>>,
    max_batch: usize,
    outstanding: &AtomicUsize,
    metrics: &Metrics,
) {
    let mut held: Option<Batch> = None;
    loop {
        let mut batch = match held.take() {
            Some(batch) => batch,
            None => {
                let Ok(receiver) = receiver.lock() else {
                    return;
                };
                match receiver.recv() {
                    Ok(batch) => batch,
                    Err(_) => return,
                }
            }
        };
        // `try_lock`: a thread holding the lock is either merging too or blocked in `recv` on
        // an empty queue; waiting for it could leave this batch stranded until more work came.
        if let Ok(receiver) = receiver.try_lock() {
            while batch.len() < max_batch {
                match receiver.try_recv() {
                    Ok(next) if batch.len() + next.len() <= max_batch => {
                        held = batch.absorb(next);
                        if held.is_some() {
                            break;
                        }
                    }
                    Ok(next) => {
                        held = Some(next);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        let kind = batch.kind();
        let n = batch.len();
        let started = Instant::now();
        metrics
            .inference_batch_size
            .with_label_values(&[kind.label()])
            .observe(n as f64);
        let phases_before = engine.phases;
        // The batch leaves the queue before its callers hear back, so a caller that was
        // answered and asks again at once finds the room it left.
        let leave_queue = || {
            let left = outstanding.fetch_sub(n, Ordering::AcqRel) - n;
            metrics.inference_queue_depth.set(left as i64);
        };
        execute(&mut engine, batch, leave_queue);
        for ((phase, after), (_, before)) in
            engine.phases.named().into_iter().zip(phases_before.named())
        {
            metrics
                .inference_phase_seconds
                .with_label_values(&[phase])
                .inc_by((after - before).as_secs_f64());
        }
        metrics
            .inference_duration
            .with_label_values(&[kind.label()])
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Runs one batch, calls `computed`, then answers its callers; a failure or panic answers them
/// all with an error.
fn execute(engine: &mut Engine, batch: Batch, computed: impl FnOnce()) {
    match batch {
        Batch::Rank(entries) => {
            let (jobs, replies): (Vec<RankJob>, Vec<Reply<Ranked>>) = entries.into_iter().unzip();
            answer(
                replies,
                std::panic::catch_unwind(AssertUnwindSafe(|| engine.rank(&jobs))),
                computed,
            );
        }
        Batch::Group(entries) => {
            let (jobs, replies): (Vec<GroupRankJob>, Vec<Reply<GroupRanked>>) =
                entries.into_iter().unzip();
            answer(
                replies,
                std::panic::catch_unwind(AssertUnwindSafe(|| engine.rank_groups(&jobs))),
                computed,
            );
        }
        Batch::Similar(entries) => {
            let (jobs, replies): (Vec<SimilarJob>, Vec<Reply<Vec<Hit>>>) =
                entries.into_iter().unzip();
            answer(
                replies,
                std::panic::catch_unwind(AssertUnwindSafe(|| Ok(engine.similar(&jobs)))),
                computed,
            );
        }
        Batch::Classify(entries) => {
            // Requests may carry several rows: run them as one tensor, then split per caller.
            let (jobs, replies): (Vec<Vec<[f32; CONTENT_INPUTS]>>, Vec<Reply<ContentOutputs>>) =
                entries.into_iter().unzip();
            let rows: Vec<[f32; CONTENT_INPUTS]> = jobs.iter().flatten().copied().collect();
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| engine.classify(&rows)))
                .map(|r| r.map(|outputs| split_outputs(outputs, jobs.iter().map(Vec::len))));
            answer(replies, result, computed);
        }
    }
}

fn answer<R>(
    replies: Vec<Reply<R>>,
    result: std::thread::Result<Result<Vec<R>, String>>,
    computed: impl FnOnce(),
) {
    computed();
    match result {
        Ok(Ok(results)) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok(result));
            }
        }
        Ok(Err(message)) => {
            tracing::error!(error = %message, "inference batch failed");
            for reply in replies {
                let _ = reply.send(Err(InferenceError::Failed(message.clone())));
            }
        }
        Err(_) => {
            tracing::error!("inference batch panicked");
            for reply in replies {
                let _ = reply.send(Err(InferenceError::Failed("inference panicked".into())));
            }
        }
    }
}

fn split_outputs(
    outputs: ContentOutputs,
    sizes: impl Iterator<Item = usize>,
) -> Vec<ContentOutputs> {
    let width = |v: &Vec<f32>| v.len() / outputs.rows.max(1);
    let (we, wg, wm) = (
        width(&outputs.embedding),
        width(&outputs.genres),
        width(&outputs.moods),
    );
    let mut start = 0;
    sizes
        .map(|n| {
            let part = ContentOutputs {
                rows: n,
                embedding: outputs.embedding[start * we..(start + n) * we].to_vec(),
                genres: outputs.genres[start * wg..(start + n) * wg].to_vec(),
                moods: outputs.moods[start * wm..(start + n) * wm].to_vec(),
            };
            start += n;
            part
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_load_is_the_share_of_its_capacity_in_use() {
        let load = QueueLoad {
            outstanding: Arc::new(AtomicUsize::new(0)),
            capacity: 1_024,
        };
        assert_eq!(load.share(), 0.0);
        load.outstanding.store(256, Ordering::Relaxed);
        assert_eq!(load.share(), 0.25);
        // Past capacity for a moment (admission counts before it refuses): still full, not more.
        load.outstanding.store(1_100, Ordering::Relaxed);
        assert_eq!(load.share(), 1.0);
    }
}

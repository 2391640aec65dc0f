//! `cargo bench --bench inference`: the ranking pipeline in process, without HTTP or the actor:
//! per-request cost of `Engine::rank` at batch sizes 1–64 on the demo catalog (28,356 tracks,
//! 300 candidates, top 10 explained), with the time split by phase, and retrieval's matrix
//! product timed apart from its top-k scan. One inference thread, one ONNX Runtime intra-op
//! thread (the server's defaults). The models are loaded as the server would load them, so
//! `CHORUS_EXECUTION_PROVIDER=cuda` (with a `--features cuda` build and `ORT_DYLIB_PATH` naming
//! ONNX Runtime's GPU build) times the CUDA execution provider; `CHORUS_BENCH_BATCHES` (e.g.
//! `1,8,64,256`) picks the batch sizes. Then the cost of a group refresh (5 members), as rooms
//! rank now and as they ranked before issues 17 and 21.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chorus::{
    aggregate::Strategy,
    catalog::{demo, Catalog},
    config::Settings,
    inference::{
        engine::{PhaseTimes, RankBy, RankJob},
        features::Listener,
        group::{GroupRankJob, Utility},
        load,
        retrieval::{top_k, Metric, RetrievalQuery},
    },
};
use rand::{rngs::StdRng, RngExt, SeedableRng};

const REQUESTS: usize = 1_024;

fn main() {
    let catalog = Arc::new(Catalog::new(demo::parse().expect("demo catalog").tracks));
    let started = Instant::now();
    let settings = Settings::load().expect("settings from the environment");
    let loaded = load(&settings.models, 1, 1, &catalog).expect("models");
    println!(
        "loaded models ({} execution provider) and embedded {} tracks in {:.2} s",
        loaded.provider,
        catalog.len(),
        started.elapsed().as_secs_f64()
    );
    let batches = batch_sizes();
    let space = Arc::clone(&loaded.space);
    let calibration = loaded.calibration;
    let mut engine = loaded.into_engines().remove(0);
    let mut rng = StdRng::seed_from_u64(1);
    let jobs: Vec<RankJob> = (0..REQUESTS)
        .map(|_| {
            let n = rng.random_range(3..=8);
            let history: Vec<u32> = (0..n)
                .map(|_| rng.random_range(0..space.len() as u32))
                .collect();
            let mut exclude = history.clone();
            exclude.sort_unstable();
            exclude.dedup();
            RankJob {
                listener: Arc::new(Listener::from_history(&space, &history, &vec![1.0; n])),
                exclude,
                candidates: 300,
                top: 10,
                order: RankBy::Hybrid,
                focus: None,
            }
        })
        .collect();
    engine.rank(&jobs[..64]).expect("warm-up");

    println!("\n| batch | µs per request | retrieval | features | ncf | hybrid | explain |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for &batch in &batches {
        engine.phases = PhaseTimes::default();
        let started = Instant::now();
        for chunk in jobs.chunks(batch) {
            engine.rank(chunk).expect("rank");
        }
        let per = |d: Duration| d.as_secs_f64() * 1e6 / REQUESTS as f64;
        let p = engine.phases;
        println!(
            "| {batch} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            per(started.elapsed()),
            per(p.retrieval),
            per(p.features),
            per(p.ncf),
            per(p.hybrid),
            per(p.explain)
        );
    }

    // Group refreshes: 5 members, 100 candidates, top 10, the way rooms rank (issue 17's pool
    // and calibrated utilities) against the earlier pooled list with σ(logit), in one run.
    let calibration = calibration.expect("models/manifest.json has the ranker's calibration");
    let groups: Vec<Vec<Arc<Listener>>> = jobs
        .chunks(5)
        .take(REQUESTS / 5)
        .map(|members| members.iter().map(|j| Arc::clone(&j.listener)).collect())
        .collect();
    println!("\n| group refresh (5 members, 100 candidates) | batch | µs per refresh | retrieval | features | ncf | hybrid | explain |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (design, utility, own_candidates, pool) in [
        (
            "earlier: pooled list, σ(logit)",
            Utility::Sigmoid,
            false,
            Pool::Built,
        ),
        (
            "issue 17: every member's own candidates, Platt",
            Utility::Platt(calibration),
            true,
            Pool::Built,
        ),
        (
            "issue 21: the room's kept pool, every member scored",
            Utility::Platt(calibration),
            true,
            Pool::KeptUnscored,
        ),
        (
            "issue 21: the room's kept pool, the changed member scored",
            Utility::Platt(calibration),
            true,
            Pool::Kept,
        ),
    ] {
        for &batch in &[1usize, 16] {
            // As in a busy room: one member's taste is new at each refresh (a fresh `Listener`,
            // as feedback makes), the others' are the ones seen before.
            let mut group_jobs: Vec<GroupRankJob> = groups
                .iter()
                .map(|members| {
                    let mut members = members.clone();
                    members[0] = Arc::new((*members[0]).clone());
                    let mut exclude: Vec<u32> =
                        members.iter().flat_map(|m| m.history.clone()).collect();
                    exclude.sort_unstable();
                    exclude.dedup();
                    GroupRankJob {
                        members,
                        exclude,
                        candidates: 100,
                        strategy: Strategy::Fair,
                        top: 10,
                        utility,
                        served: Vec::new(),
                        own_candidates,
                        kept: None,
                    }
                })
                .collect();
            // Warm-up: every member's taste as it was before this round's change (which also
            // leaves each room's kept pool).
            let before: Vec<GroupRankJob> = groups
                .iter()
                .zip(&group_jobs)
                .map(|(members, job)| GroupRankJob {
                    members: members.clone(),
                    ..job.clone()
                })
                .collect();
            let mut kept = Vec::with_capacity(before.len());
            for chunk in before.chunks(batch) {
                kept.extend(
                    engine
                        .rank_groups(chunk)
                        .expect("warm-up")
                        .into_iter()
                        .map(|ranked| ranked.kept),
                );
            }
            for (job, kept) in group_jobs.iter_mut().zip(kept) {
                job.kept = match pool {
                    Pool::Built => None,
                    Pool::KeptUnscored => Some(Arc::new(kept.unscored())),
                    Pool::Kept => Some(kept),
                };
            }
            engine.phases = PhaseTimes::default();
            let started = Instant::now();
            for chunk in group_jobs.chunks(batch) {
                engine.rank_groups(chunk).expect("rank groups");
            }
            let per = |d: Duration| d.as_secs_f64() * 1e6 / group_jobs.len() as f64;
            let p = engine.phases;
            println!(
                "| {design} | {batch} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
                per(started.elapsed()),
                per(p.retrieval),
                per(p.features),
                per(p.ncf),
                per(p.hybrid),
                per(p.explain)
            );
        }
    }

    println!("\nretrieval alone (300 of {} items):", space.len());
    println!("| batch | µs per query: scoring + top-k scan | of which top-k scan |");
    println!("| --- | --- | --- |");
    for &batch in &batches {
        let queries: Vec<RetrievalQuery> = jobs
            .iter()
            .map(|j| RetrievalQuery {
                vector: j.listener.vector.clone(),
                exclude: j.exclude.clone(),
                k: 300,
            })
            .collect();
        let started = Instant::now();
        for chunk in queries.chunks(batch) {
            top_k(space.items(), Metric::Dot, chunk);
        }
        let total = started.elapsed();
        // The same work with k = 0 skips the scan's heap entirely.
        let zero: Vec<RetrievalQuery> = queries
            .iter()
            .map(|q| RetrievalQuery { k: 0, ..q.clone() })
            .collect();
        let started = Instant::now();
        for chunk in zero.chunks(batch) {
            top_k(space.items(), Metric::Dot, chunk);
        }
        let product = started.elapsed();
        let per = |d: Duration| d.as_secs_f64() * 1e6 / REQUESTS as f64;
        println!(
            "| {batch} | {:.0} | {:.0} |",
            per(total),
            per(total.saturating_sub(product))
        );
    }
}

/// Where a group refresh's candidate pool comes from.
#[derive(Clone, Copy)]
enum Pool {
    /// Built for the refresh (retrieval, then every member scored).
    Built,
    /// The room's previous pool, every member scored again over it.
    KeptUnscored,
    /// The room's previous pool and its unchanged members' scores.
    Kept,
}

/// Batch sizes from `CHORUS_BENCH_BATCHES` (comma-separated), else 1, 8, 32 and 64.
fn batch_sizes() -> Vec<usize> {
    match std::env::var("CHORUS_BENCH_BATCHES") {
        Ok(list) => list
            .split(',')
            .map(|b| match b.trim().parse::<usize>() {
                Ok(n) if (1..=REQUESTS).contains(&n) => n,
                _ => panic!("CHORUS_BENCH_BATCHES: {b:?} is not a batch size in 1..={REQUESTS}"),
            })
            .collect(),
        Err(_) => vec![1, 8, 32, 64],
    }
}

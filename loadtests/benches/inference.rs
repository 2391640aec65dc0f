//! `cargo bench --bench inference`: the ranking pipeline in process, without HTTP or the actor:
//! per-request cost of `Engine::rank` at batch sizes 1–64 on the demo catalog (28,356 tracks,
//! 300 candidates, top 10 explained), with the time split by phase, and retrieval's matrix
//! product timed apart from its top-k scan. One inference thread, one ONNX Runtime intra-op
//! thread (the server's defaults).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chorus::{
    catalog::{demo, Catalog},
    config::ModelSettings,
    inference::{
        engine::{PhaseTimes, RankBy, RankJob},
        features::Listener,
        load,
        retrieval::{top_k, Metric, RetrievalQuery},
    },
};
use rand::{rngs::StdRng, Rng, SeedableRng};

const REQUESTS: usize = 1_024;

fn main() {
    let catalog = Arc::new(Catalog::new(demo::parse().expect("demo catalog").tracks));
    let started = Instant::now();
    let loaded = load(&ModelSettings::default(), 1, 1, &catalog).expect("models");
    println!(
        "loaded models and embedded {} tracks in {:.2} s",
        catalog.len(),
        started.elapsed().as_secs_f64()
    );
    let space = Arc::clone(&loaded.space);
    let mut engine = loaded.into_engines().remove(0);
    let mut rng = StdRng::seed_from_u64(1);
    let jobs: Vec<RankJob> = (0..REQUESTS)
        .map(|_| {
            let n = rng.gen_range(3..=8);
            let history: Vec<u32> = (0..n)
                .map(|_| rng.gen_range(0..space.len() as u32))
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
    for batch in [1usize, 8, 32, 64] {
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

    println!("\nretrieval alone (300 of {} items):", space.len());
    println!("| batch | µs per query: matrix product + top-k scan | of which top-k scan |");
    println!("| --- | --- | --- |");
    for batch in [1usize, 8, 32, 64] {
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
            top_k(space.vectors(), space.norms(), Metric::Dot, chunk);
        }
        let total = started.elapsed();
        // The same work with k = 0 skips the scan's heap entirely.
        let zero: Vec<RetrievalQuery> = queries
            .iter()
            .map(|q| RetrievalQuery { k: 0, ..q.clone() })
            .collect();
        let started = Instant::now();
        for chunk in zero.chunks(batch) {
            top_k(space.vectors(), space.norms(), Metric::Dot, chunk);
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

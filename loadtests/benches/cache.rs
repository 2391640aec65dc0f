//! `cargo bench --bench cache`: the in-process cache behind socket tickets and cached
//! explanations (`MemoryCache`), as two threads use it: operations per second for `set`, `get`
//! (hits) and `take`, and what a full cache keeps: after 3× its capacity of fresh entries, how
//! many of the latest 10,000 can still be read.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chorus::cache::{Cache, MemoryCache};

const THREADS: usize = 2;
const OPS_PER_THREAD: usize = 400_000;
const KEYS: usize = 50_000;
const TTL: Duration = Duration::from_secs(60);

type Op = fn(&MemoryCache, usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>;

fn run(cache: &Arc<MemoryCache>, op: Op) -> f64 {
    let started = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let cache = Arc::clone(cache);
            std::thread::spawn(move || {
                block(async {
                    for i in 0..OPS_PER_THREAD {
                        op(&cache, (i * 7919 + t * 104_729) % KEYS).await;
                    }
                })
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    (THREADS * OPS_PER_THREAD) as f64 / started.elapsed().as_secs_f64()
}

fn block<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

fn main() {
    let cache = Arc::new(MemoryCache::default());
    let set = run(&cache, |c, k| {
        Box::pin(async move {
            c.set(&format!("k{k}"), b"0123456789abcdef", TTL)
                .await
                .unwrap();
        })
    });
    let get = run(&cache, |c, k| {
        Box::pin(async move {
            std::hint::black_box(c.get(&format!("k{k}")).await.unwrap());
        })
    });
    let take = run(&cache, |c, k| {
        Box::pin(async move {
            std::hint::black_box(c.take(&format!("k{k}")).await.unwrap());
        })
    });
    println!("set  {:>10.0} ops/s", set);
    println!("get  {:>10.0} ops/s", get);
    println!("take {:>10.0} ops/s", take);

    let full = MemoryCache::default();
    let capacity = MemoryCache::CAPACITY;
    let latest = 10_000;
    let (kept, held) = block(async {
        for i in 0..3 * capacity {
            full.set(&format!("f{i}"), b"x", TTL).await.unwrap();
        }
        let mut kept = 0;
        for i in 3 * capacity - latest..3 * capacity {
            kept += usize::from(full.get(&format!("f{i}")).await.unwrap().is_some());
        }
        (kept, full.entries())
    });
    println!(
        "after {} entries into a cache of {capacity}: {kept} of the latest {latest} readable, {held} held",
        3 * capacity
    );
}

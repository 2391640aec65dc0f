//! `cargo bench --bench search`: in-process latency of catalog search on the demo catalog
//! (28,356 tracks), without HTTP. Queries are what search-as-you-type sends: every prefix of the
//! 600 most popular titles from one character on, and a one-typo copy of each full title.
//! Prints percentiles overall and for the costliest case, one- and two-character prefixes.

use std::time::Instant;

use chorus::catalog::{demo, Catalog};
use hdrhistogram::Histogram;

fn main() {
    let started = Instant::now();
    let catalog = Catalog::new(demo::parse().expect("demo catalog").tracks);
    println!(
        "indexed {} tracks in {:.2} s",
        catalog.len(),
        started.elapsed().as_secs_f64()
    );

    let titles: Vec<String> = catalog
        .search("", None, 600)
        .iter()
        .map(|t| t.title.clone())
        .collect();
    let mut queries: Vec<String> = Vec::new();
    for title in &titles {
        let chars: Vec<char> = title.chars().take(40).collect();
        for end in 1..=chars.len() {
            queries.push(chars[..end].iter().collect());
        }
        let mut typo = chars.clone();
        if typo.len() >= 5 {
            typo.swap(2, 3);
            queries.push(typo.into_iter().collect());
        }
    }

    let mut all = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
    let mut short = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
    let mut genre = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
    for round in 0..3 {
        for q in &queries {
            let t = Instant::now();
            let hits = catalog.search(q, None, 10);
            let ns = t.elapsed().as_nanos() as u64;
            std::hint::black_box(hits);
            if round > 0 {
                all.record(ns).unwrap();
                if q.chars().count() <= 2 {
                    short.record(ns).unwrap();
                }
            }
            let t = Instant::now();
            std::hint::black_box(catalog.search(q, Some("rock"), 10));
            genre.record(t.elapsed().as_nanos() as u64).unwrap();
        }
    }
    let row = |name: &str, h: &Histogram<u64>| {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e6;
        println!(
            "| {name} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
            h.len(),
            ms(0.5),
            ms(0.99),
            ms(0.999),
            h.max() as f64 / 1e6
        );
    };
    println!("| queries | n | p50 ms | p99 ms | p99.9 ms | max ms |");
    println!("| --- | --- | --- | --- | --- | --- |");
    row("all (1+ chars, typos)", &all);
    row("1-2 character prefixes", &short);
    row("with genre=rock", &genre);
}

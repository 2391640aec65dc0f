//! `rest-recommend`: listeners asking for their next tracks. Setup creates `users` guest
//! accounts; each likes 3–8 popular tracks of one or two genres (seeded), so every request runs
//! the full two-stage pipeline (retrieval, NCF, hybrid ranker, reasons). The measured load is
//! `POST /api/v1/recommendations` with `limit`, each connection cycling through the listeners.

use std::sync::Arc;

use anyhow::Context;
use rand::{rngs::StdRng, seq::IndexedRandom, RngExt, SeedableRng};
use serde_json::{json, Value};

use crate::{
    catalog::popular_by_genre,
    report::Report,
    runner::{drive, status_of, RunOptions},
};

pub struct Options {
    pub users: usize,
    pub limit: usize,
}

pub async fn run(url: &str, options: &RunOptions, scenario: &Options) -> anyhow::Result<Report> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .build()?;
    let tokens = Arc::new(create_listeners(&client, url, scenario.users).await?);
    eprintln!(
        "rest-recommend: {} listeners, limit {}, {} connections, {} s (+{} s warm-up)",
        tokens.len(),
        scenario.limit,
        options.concurrency,
        options.duration.as_secs(),
        options.warmup.as_secs()
    );
    let endpoint = format!("{url}/api/v1/recommendations");
    let body = Arc::new(json!({ "limit": scenario.limit }));
    let request_tokens = tokens.clone();
    let (tally, measured) = drive(options, move |connection, i| {
        let client = client.clone();
        let tokens = request_tokens.clone();
        let endpoint = endpoint.clone();
        let body = body.clone();
        async move {
            let token = &tokens[(connection * 7919 + i as usize) % tokens.len()];
            status_of(client.post(&endpoint).bearer_auth(token).json(&*body)).await
        }
    })
    .await;
    let mut report = Report::new("rest-recommend", url, options, &tally, measured);
    report.notes.push(format!(
        "{} listeners with 3-8 liked tracks each; POST /api/v1/recommendations limit={}.",
        tokens.len(),
        scenario.limit
    ));
    Ok(report)
}

/// Creates the listeners and their likes; returns their bearer tokens.
async fn create_listeners(
    client: &reqwest::Client,
    url: &str,
    users: usize,
) -> anyhow::Result<Vec<String>> {
    let pools: Vec<Vec<String>> = popular_by_genre(client, url, 100)
        .await?
        .iter()
        .map(|tracks| {
            tracks
                .iter()
                .filter_map(|t| t["id"].as_str().map(str::to_string))
                .collect()
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(7);
    let mut tokens = Vec::with_capacity(users);
    for n in 0..users {
        let created: Value = client
            .post(format!("{url}/api/v1/users"))
            .json(&json!({ "display_name": format!("load-{n}") }))
            .send()
            .await?
            .error_for_status()
            .context("creating a listener (is the rate limit off? CHORUS_RATE_LIMIT=false)")?
            .json()
            .await?;
        let token = created["token"]
            .as_str()
            .context("token in the answer")?
            .to_string();
        let genres: Vec<&Vec<String>> = pools.sample(&mut rng, 2).collect();
        let likes = rng.random_range(3..=8);
        for k in 0..likes {
            let pool = genres[k % genres.len()];
            let track = pool.choose(&mut rng).expect("non-empty pool");
            client
                .post(format!("{url}/api/v1/feedback"))
                .bearer_auth(&token)
                .json(&json!({ "track_id": track, "kind": "like" }))
                .send()
                .await?
                .error_for_status()
                .context("recording a like")?;
        }
        tokens.push(token);
    }
    Ok(tokens)
}

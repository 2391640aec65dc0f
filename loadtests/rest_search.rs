//! `rest-search`: what a person typing into the search box sends. Titles come from the server's
//! own catalog (the most popular tracks of each genre); each becomes queries for every prefix
//! from three characters on, plus a copy of the full title with two letters swapped in its
//! longest word (a typo).

use std::sync::Arc;

use crate::{
    catalog::popular_by_genre,
    report::Report,
    runner::{drive, status_of, RunOptions},
};

pub async fn run(url: &str, options: &RunOptions) -> anyhow::Result<Report> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .build()?;
    let queries = Arc::new(build_queries(&client, url).await?);
    eprintln!(
        "rest-search: {} queries, {} connections, {} s (+{} s warm-up)",
        queries.len(),
        options.concurrency,
        options.duration.as_secs(),
        options.warmup.as_secs()
    );
    let base = format!("{url}/api/v1/tracks");
    let request_queries = queries.clone();
    let (tally, measured) = drive(options, move |connection, i| {
        let client = client.clone();
        let queries = request_queries.clone();
        let base = base.clone();
        async move {
            let q = &queries[(connection * 7919 + i as usize) % queries.len()];
            status_of(
                client
                    .get(&base)
                    .query(&[("q", q.as_str()), ("limit", "10")]),
            )
            .await
        }
    })
    .await;
    let mut report = Report::new("rest-search", url, options, &tally, measured);
    report.notes.push(format!(
        "{} distinct queries (prefixes of real titles and one-typo variants), limit=10.",
        queries.len()
    ));
    Ok(report)
}

async fn build_queries(client: &reqwest::Client, url: &str) -> anyhow::Result<Vec<String>> {
    let titles: Vec<String> = popular_by_genre(client, url, 50)
        .await?
        .iter()
        .flatten()
        .filter_map(|track| track["title"].as_str().map(str::to_string))
        .collect();
    let mut queries = Vec::new();
    for title in &titles {
        let chars: Vec<char> = title.chars().take(40).collect();
        for end in 3..=chars.len() {
            queries.push(chars[..end].iter().collect());
        }
        if let Some(typo) = with_typo(title) {
            queries.push(typo);
        }
    }
    Ok(queries)
}

/// The title with two adjacent letters of its longest word swapped.
fn with_typo(title: &str) -> Option<String> {
    let longest = title.split_whitespace().max_by_key(|w| w.chars().count())?;
    let chars: Vec<char> = longest.chars().collect();
    if chars.len() < 5 {
        return None;
    }
    let mut swapped = chars.clone();
    swapped.swap(2, 3);
    Some(title.replacen(longest, &swapped.into_iter().collect::<String>(), 1))
}

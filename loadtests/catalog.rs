//! What scenarios learn from the server's catalog before they start.

use anyhow::{bail, Context};
use serde_json::Value;

/// The `limit` most popular tracks of every top-level genre, one list per genre that has any.
/// Fails when the catalog is empty or the server does not answer.
pub async fn popular_by_genre(
    client: &reqwest::Client,
    url: &str,
    limit: usize,
) -> anyhow::Result<Vec<Vec<Value>>> {
    let genres: Value = client
        .get(format!("{url}/api/v1/genres"))
        .send()
        .await
        .context("is the server running?")?
        .json()
        .await?;
    let mut lists = Vec::new();
    for genre in genres["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["level"] == "genre")
    {
        let page: Value = client
            .get(format!("{url}/api/v1/tracks"))
            .query(&[
                ("genre", genre["name"].as_str().unwrap_or_default()),
                ("limit", &limit.to_string()),
            ])
            .send()
            .await?
            .json()
            .await?;
        let tracks = page["items"].as_array().cloned().unwrap_or_default();
        if !tracks.is_empty() {
            lists.push(tracks);
        }
    }
    if lists.is_empty() {
        bail!("the server's catalog is empty");
    }
    Ok(lists)
}

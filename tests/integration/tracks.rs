use chorus::catalog::AUDIO_FEATURE_NAMES;
use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with, spawn_demo_app, AppOptions, FIXTURE_TRACKS};

async fn titles(app: &crate::helpers::TestApp, path: &str) -> Vec<(String, String)> {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    let body: Value = response.json().await.unwrap();
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["title"].as_str().unwrap().to_string(),
                t["artist"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[actix_web::test]
async fn search_is_case_insensitive_typo_tolerant_and_prefix_aware() {
    let app = spawn_app().await;
    for query in [
        "bohemian%20rhapsody",
        "BOHEMIAN",
        "bohemain%20rapsody",
        "bohem",
        "queen%20bohemian",
    ] {
        let found = titles(&app, &format!("/api/v1/tracks?q={query}&limit=5")).await;
        assert!(!found.is_empty(), "{query}");
        assert!(
            found[0].0.starts_with("Bohemian Rhapsody"),
            "{query}: {found:?}"
        );
    }
    let found = titles(&app, "/api/v1/tracks?q=beyonse").await;
    assert!(
        !found.is_empty(),
        "a one-letter typo still finds the artist"
    );
    assert_eq!(found[0].1, "Beyoncé");
    assert!(
        found
            .iter()
            .all(|(title, artist)| artist == "Beyoncé" || title.contains("Beyoncé")),
        "{found:?}"
    );
    assert!(titles(&app, "/api/v1/tracks?q=zzqqxx").await.is_empty());
}

#[actix_web::test]
async fn search_filters_by_genre_and_respects_limit() {
    let app = spawn_app().await;
    let body: Value = app
        .get("/api/v1/tracks?genre=ROCK&limit=7")
        .await
        .json()
        .await
        .unwrap();
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 7);
    assert!(items
        .iter()
        .all(|t| t["genres"].as_array().unwrap().iter().any(|g| g == "rock")));
    let popularity: Vec<u64> = items
        .iter()
        .map(|t| t["popularity"].as_u64().unwrap())
        .collect();
    assert!(
        popularity.windows(2).all(|w| w[0] >= w[1]),
        "{popularity:?}"
    );
    let body: Value = app
        .get("/api/v1/tracks?q=queen&genre=album%20rock")
        .await
        .json()
        .await
        .unwrap();
    assert!(body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["subgenres"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "album rock")));
    assert!(titles(&app, "/api/v1/tracks?genre=polka").await.is_empty());
    assert_eq!(titles(&app, "/api/v1/tracks").await.len(), 20);
}

#[actix_web::test]
async fn a_track_has_its_genres_and_audio_features() {
    let app = spawn_app().await;
    let body: Value = app
        .get("/api/v1/tracks?q=bohemian%20rhapsody&limit=1")
        .await
        .json()
        .await
        .unwrap();
    let id = body["items"][0]["id"].as_str().unwrap().to_string();
    let track: Value = app
        .get(&format!("/api/v1/tracks/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(track["id"], id.as_str());
    assert_eq!(track["artist"], "Queen");
    assert!(track["genres"]
        .as_array()
        .unwrap()
        .contains(&Value::from("rock")));
    let features = &track["audio_features"];
    // The API's feature names are the catalog's, which are Spotify's.
    assert_eq!(
        features.as_object().unwrap().len(),
        AUDIO_FEATURE_NAMES.len()
    );
    for key in AUDIO_FEATURE_NAMES {
        assert!(features[key].is_number(), "{key}");
    }
    assert!(track["duration_ms"].as_u64().unwrap() > 60_000);
}

#[actix_web::test]
async fn genres_list_counts() {
    let app = spawn_app().await;
    let body: Value = app.get("/api/v1/genres").await.json().await.unwrap();
    let items = body["items"].as_array().unwrap();
    let top: Vec<&str> = items
        .iter()
        .filter(|g| g["level"] == "genre")
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(top.len(), 6, "{top:?}");
    assert_eq!(
        items.iter().filter(|g| g["level"] == "subgenre").count(),
        24
    );
}

#[actix_web::test]
async fn first_start_loads_the_demo_catalog_once() {
    let app = spawn_demo_app().await;
    assert_eq!(app.state.catalog.len(), 28_356);
    let body: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(body["checks"]["catalog"]["detail"], "28356 tracks");
    let found = titles(&app, "/api/v1/tracks?q=dont%20start%20now&limit=3").await;
    assert!(
        found
            .iter()
            .any(|(t, a)| t == "Don't Start Now" && a == "Dua Lipa"),
        "{found:?}"
    );
}

#[actix_web::test]
async fn an_existing_catalog_is_not_replaced_by_the_demo() {
    let app = spawn_app_with(AppOptions {
        load_demo: true,
        ..AppOptions::default()
    })
    .await;
    assert_eq!(app.state.catalog.len(), FIXTURE_TRACKS);
}

//! Solo recommendations end to end: the two-stage pipeline over the fixture catalog, real-time
//! learning from feedback and comparisons, persistence across restarts, and precise errors.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::helpers::{
    assert_error, spawn_app, spawn_app_with, track_genres, track_ids, AppOptions, Store, TestApp,
};

async fn recommend(app: &TestApp, token: &str, body: Value) -> Value {
    let response = app
        .post_json_as("/api/v1/recommendations", &body, token)
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The `n` most popular tracks of a genre.
async fn popular_in(app: &TestApp, genre: &str, n: usize) -> Vec<String> {
    let body = app
        .get_json(&format!("/api/v1/tracks?genre={genre}&limit={n}"))
        .await;
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

async fn give(app: &TestApp, token: &str, track: &str, kind: &str) {
    let response = app
        .post_json_as(
            "/api/v1/feedback",
            &json!({ "track_id": track, "kind": kind }),
            token,
        )
        .await;
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
}

#[actix_web::test]
async fn a_new_listener_gets_a_popular_and_diverse_start() {
    let app = spawn_app().await;
    let (_, token) = app.create_user("New").await;
    let list = recommend(&app, &token, json!({})).await;
    assert_eq!(list["strategy"], "popular_diverse");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 10);
    let mut genres: Vec<String> = items.iter().flat_map(track_genres).collect();
    genres.sort();
    genres.dedup();
    assert!(genres.len() >= 3, "diverse start, got genres {genres:?}");
    assert!(uuid::Uuid::parse_str(list["request_id"].as_str().unwrap()).is_ok());
    let profile = app.get_json_as("/api/v1/me/profile", &token).await;
    assert_eq!(profile["cold_start"], true);
    assert_eq!(profile["confidence"], 0.0);
}

#[actix_web::test]
async fn liking_one_genre_makes_it_dominate_and_explains_why() {
    let app = spawn_app().await;
    let (_, token) = app.create_user("Rocker").await;
    let liked = popular_in(&app, "rock", 6).await;
    for id in &liked {
        give(&app, &token, id, "like").await;
    }
    let list = recommend(&app, &token, json!({ "limit": 10 })).await;
    assert_eq!(list["strategy"], "hybrid");
    assert!(list["candidates_considered"].as_u64().unwrap() >= 10);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 10);
    let rock = items
        .iter()
        .filter(|i| track_genres(i).contains(&"rock".to_string()))
        .count();
    assert!(
        rock >= 7,
        "{rock} of 10 are rock: {:?}",
        items.iter().map(track_genres).collect::<Vec<_>>()
    );
    for item in items {
        let id = item["track"]["id"].as_str().unwrap();
        assert!(
            !liked.contains(&id.to_string()),
            "liked tracks are not recommended back"
        );
        let confidence = item["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&confidence));
        let reasons = item["reasons"].as_array().unwrap();
        assert_eq!(reasons.len(), 8);
        let contributions: Vec<f64> = reasons
            .iter()
            .map(|r| r["contribution"].as_f64().unwrap())
            .collect();
        assert!(
            contributions.windows(2).all(|w| w[0] >= w[1]),
            "largest first"
        );
        let because = item["because_you_liked"]["id"].as_str().unwrap();
        assert!(liked.contains(&because.to_string()));
    }
    let scores: Vec<f64> = items.iter().map(|i| i["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "ordered by score");

    let profile = app.get_json_as("/api/v1/me/profile", &token).await;
    assert_eq!(profile["counts"]["like"], 6);
    assert_eq!(profile["cold_start"], false);
    assert_eq!(profile["top_genres"][0]["name"], "rock");
    assert!(profile["confidence"].as_f64().unwrap() > 0.4);
    let energy = profile["audio_features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "energy")
        .unwrap();
    assert!(energy["yours"].as_f64().unwrap() > 0.0 && energy["catalog"].as_f64().unwrap() > 0.0);
}

/// Mean position of `tracks` in `list` (absent counts as one past the end).
fn mean_rank(list: &[String], tracks: &[String]) -> f64 {
    tracks
        .iter()
        .map(|t| list.iter().position(|x| x == t).unwrap_or(list.len()) as f64)
        .sum::<f64>()
        / tracks.len() as f64
}

#[actix_web::test]
async fn a_dislike_removes_the_track_and_similar_ones_sink() {
    let app = spawn_app().await;
    let (_, token) = app.create_user("Picky").await;
    for id in popular_in(&app, "pop", 3)
        .await
        .iter()
        .chain(&popular_in(&app, "edm", 3).await)
    {
        give(&app, &token, id, "like").await;
    }
    let before = track_ids(&recommend(&app, &token, json!({ "limit": 100 })).await);
    let disliked = before[0].clone();
    let similar = app
        .get_json(&format!("/api/v1/tracks/{disliked}/similar?limit=10"))
        .await;
    let neighbours: Vec<String> = similar["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["track"]["id"].as_str().unwrap().to_string())
        .filter(|id| before.contains(id))
        .collect();
    assert!(
        !neighbours.is_empty(),
        "the top track has neighbours in the list"
    );
    give(&app, &token, &disliked, "dislike").await;
    let after = track_ids(&recommend(&app, &token, json!({ "limit": 100 })).await);
    assert!(
        !after.contains(&disliked),
        "a disliked track is never recommended"
    );
    assert!(
        mean_rank(&after, &neighbours) > mean_rank(&before, &neighbours),
        "tracks like the disliked one sink: {} -> {}",
        mean_rank(&before, &neighbours),
        mean_rank(&after, &neighbours)
    );
    let profile = app.get_json_as("/api/v1/me/profile", &token).await;
    assert_eq!(profile["counts"]["dislike"], 1);
}

#[actix_web::test]
async fn comparisons_change_the_order_and_pairs_are_chosen_not_random() {
    let app = spawn_app().await;
    let (_, token) = app.create_user("Chooser").await;
    // Before any feedback: a deterministic pair from the popular start.
    let first = app.get_json_as("/api/v1/comparisons/next", &token).await;
    let again = app.get_json_as("/api/v1/comparisons/next", &token).await;
    assert_eq!(first["a"]["id"], again["a"]["id"]);
    assert_eq!(first["b"]["id"], again["b"]["id"]);
    assert_ne!(first["a"]["id"], first["b"]["id"]);
    assert!(first["information"].as_f64().unwrap() > 0.0);

    for id in popular_in(&app, "latin", 4).await {
        give(&app, &token, &id, "like").await;
    }
    let before = track_ids(&recommend(&app, &token, json!({ "limit": 20 })).await);
    let (top, low) = (before[0].clone(), before[12].clone());
    for _ in 0..3 {
        let response = app
            .post_json_as(
                "/api/v1/comparisons",
                &json!({ "a": top, "b": low, "winner": low }),
                &token,
            )
            .await;
        assert_eq!(response.status(), 202);
    }
    let after = track_ids(&recommend(&app, &token, json!({ "limit": 20 })).await);
    let position =
        |list: &[String], t: &str| list.iter().position(|x| x == t).unwrap_or(list.len());
    assert!(
        position(&after, &low) < position(&after, &top),
        "the preferred track now ranks above the other: {:?}",
        (position(&after, &low), position(&after, &top))
    );

    // With a taste, the pair comes from the listener's neighbourhood, never one already asked.
    let pair = app.get_json_as("/api/v1/comparisons/next", &token).await;
    let p = pair["p_a"].as_f64().unwrap();
    assert!(p > 0.0 && p < 1.0);
    let asked = [
        pair["a"]["id"].as_str().unwrap(),
        pair["b"]["id"].as_str().unwrap(),
    ];
    assert!(!(asked.contains(&top.as_str()) && asked.contains(&low.as_str())));
    let profile = app.get_json_as("/api/v1/me/profile", &token).await;
    assert_eq!(profile["counts"]["comparisons"], 3);
}

#[actix_web::test]
async fn taste_survives_a_restart_on_sqlite() {
    taste_survives_a_restart(Store::Sqlite).await;
}

#[actix_web::test]
async fn taste_survives_a_restart_on_postgres() {
    taste_survives_a_restart(Store::Postgres).await;
}

async fn taste_survives_a_restart(store: Store) {
    let app = spawn_app_with(AppOptions {
        store,
        ..AppOptions::default()
    })
    .await;
    let (_, token) = app.create_user("Loyal").await;
    for id in popular_in(&app, "rap", 3).await {
        give(&app, &token, &id, "like").await;
    }
    give(&app, &token, &popular_in(&app, "rap", 4).await[3], "skip").await;
    let before = recommend(&app, &token, json!({ "limit": 15 })).await;

    // A comparison too: the Bradley-Terry offset is rebuilt from the stored answers.
    let list = track_ids(&before);
    let response = app
        .post_json_as(
            "/api/v1/comparisons",
            &json!({ "a": list[0], "b": list[5], "winner": list[5] }),
            &token,
        )
        .await;
    assert_eq!(response.status(), 202);
    let before = recommend(&app, &token, json!({ "limit": 15 })).await;
    let profile_before = app.get_json_as("/api/v1/me/profile", &token).await;
    app.handle.stop(true).await;

    let restarted = spawn_app_with(AppOptions {
        store,
        database: Some(Arc::clone(&app.db)),
        ..AppOptions::default()
    })
    .await;
    let after = recommend(&restarted, &token, json!({ "limit": 15 })).await;
    assert_eq!(track_ids(&before), track_ids(&after));
    let profile_after = restarted.get_json_as("/api/v1/me/profile", &token).await;
    assert_eq!(profile_before, profile_after);
}

#[actix_web::test]
async fn feedback_and_comparison_errors_are_precise() {
    let app = spawn_app().await;
    let (_, token) = app.create_user("Careless").await;
    let track = popular_in(&app, "rock", 1).await.remove(0);
    let other = popular_in(&app, "pop", 1).await.remove(0);
    let cases = [
        (
            "/api/v1/feedback",
            json!({ "track_id": "nope123", "kind": "like" }),
            404,
            "track_not_found",
        ),
        (
            "/api/v1/feedback",
            json!({ "track_id": track, "kind": "love" }),
            422,
            "invalid_field",
        ),
        (
            "/api/v1/feedback",
            json!({ "kind": "like" }),
            422,
            "missing_field",
        ),
        (
            "/api/v1/feedback",
            json!({ "track_id": track, "kind": "like", "mood": 1 }),
            400,
            "unknown_field",
        ),
        (
            "/api/v1/feedback",
            json!({ "track_id": track, "kind": "like", "request_id": "x" }),
            422,
            "invalid_field",
        ),
        (
            "/api/v1/feedback",
            json!({ "track_id": "bad id!", "kind": "like" }),
            422,
            "invalid_field",
        ),
        (
            "/api/v1/comparisons",
            json!({ "a": track, "b": track, "winner": track }),
            422,
            "invalid_field",
        ),
        (
            "/api/v1/comparisons",
            json!({ "a": track, "b": other, "winner": "zzz" }),
            422,
            "invalid_field",
        ),
        (
            "/api/v1/comparisons",
            json!({ "a": track, "b": "nope123", "winner": track }),
            404,
            "track_not_found",
        ),
        (
            "/api/v1/recommendations",
            json!({ "limit": 0 }),
            422,
            "invalid_field",
        ),
        (
            "/api/v1/recommendations",
            json!({ "limit": "ten" }),
            422,
            "invalid_field",
        ),
        (
            "/api/v1/recommendations",
            json!({ "exclude": ["nope123"] }),
            404,
            "track_not_found",
        ),
        (
            "/api/v1/recommendations",
            json!({ "context": { "genre": "polka" } }),
            422,
            "invalid_field",
        ),
        (
            "/api/v1/recommendations",
            json!({ "context": { "weather": "rain" } }),
            400,
            "unknown_field",
        ),
    ];
    for (path, body, status, code) in cases {
        let error = assert_error(app.post_json_as(path, &body, &token).await, status, code).await;
        if body["kind"] == "love" {
            assert!(error["error"]["message"].as_str().unwrap().contains("love"));
        }
    }
    let malformed = app
        .client
        .post(app.url("/api/v1/feedback"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"track_id\": ")
        .send()
        .await
        .unwrap();
    assert_error(malformed, 400, "malformed_json").await;
    let anonymous = app
        .post_json(
            "/api/v1/feedback",
            &json!({ "track_id": track, "kind": "like" }),
        )
        .await;
    assert_error(anonymous, 401, "missing_token").await;

    // Nothing was stored by the failed calls.
    let profile = app.get_json_as("/api/v1/me/profile", &token).await;
    assert_eq!(profile["counts"]["like"], 0);
    assert_eq!(profile["counts"]["comparisons"], 0);
}

#[actix_web::test]
async fn exclude_and_genre_context_shape_the_list() {
    let app = spawn_app().await;
    let (_, token) = app.create_user("Shaper").await;
    for id in popular_in(&app, "pop", 4).await {
        give(&app, &token, &id, "like").await;
    }
    let first = track_ids(&recommend(&app, &token, json!({ "limit": 5 })).await);
    let next = track_ids(&recommend(&app, &token, json!({ "limit": 5, "exclude": first })).await);
    assert!(next.iter().all(|id| !first.contains(id)));
    let edm = recommend(
        &app,
        &token,
        json!({ "limit": 5, "context": { "genre": "EDM" } }),
    )
    .await;
    assert!(!edm["items"].as_array().unwrap().is_empty());
    for item in edm["items"].as_array().unwrap() {
        assert!(track_genres(item).contains(&"edm".to_string()));
    }
}

/// An idle listener's actor stops and leaves the directory; the next message starts a fresh one
/// that rebuilds the same taste from the store.
#[actix_web::test]
async fn idle_user_actors_stop_and_come_back_with_their_taste() {
    use chorus::taste::{
        actor::{GetSnapshot, RecordFeedback},
        directory::UserDirectory,
        FeedbackKind,
    };
    let app = spawn_app().await;
    let (user_id, _) = app.create_user("Sleepy").await;
    let user = chorus::domain::UserId::parse(&user_id).unwrap();
    let directory = UserDirectory::new(
        app.state.db.clone(),
        Arc::clone(&app.state.catalog),
        Arc::clone(app.state.inference.space()),
        Arc::clone(&app.state.metrics),
        std::time::Duration::from_millis(200),
    );
    let track = popular_in(&app, "pop", 1).await.remove(0);
    directory
        .send(
            &user,
            RecordFeedback {
                item: app.state.catalog.index_of(&track).unwrap(),
                track_id: track.clone(),
                kind: FeedbackKind::Like,
                request_id: None,
                group_id: None,
            },
        )
        .await
        .unwrap()
        .unwrap();
    let before = directory.send(&user, GetSnapshot).await.unwrap();
    assert_eq!(directory.active(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(
        directory.active(),
        0,
        "the idle actor stopped and left the directory"
    );
    let after = directory.send(&user, GetSnapshot).await.unwrap();
    assert_eq!(directory.active(), 1);
    assert_eq!(after.reacted, before.reacted);
    assert_eq!(
        after.listener.as_ref().unwrap().vector,
        before.listener.as_ref().unwrap().vector
    );
}

/// Feedback a live room implies is stored with the room's events and only folded by the
/// member's actor: counted once whether the actor was running when the room stored it, or
/// started (and loaded the row itself) to take the fold.
#[actix_web::test]
async fn feedback_a_room_stored_is_counted_once_whether_folded_or_loaded() {
    use chorus::{
        storage::feedback::{self, NewInteraction},
        taste::{
            actor::{FoldStored, GetProfile, GetSnapshot},
            directory::UserDirectory,
            FeedbackKind,
        },
    };
    let app = spawn_app().await;
    let directory = UserDirectory::new(
        app.state.db.clone(),
        Arc::clone(&app.state.catalog),
        Arc::clone(app.state.inference.space()),
        Arc::clone(&app.state.metrics),
        std::time::Duration::from_secs(60),
    );
    let track = popular_in(&app, "rock", 1).await.remove(0);
    let item = app.state.catalog.index_of(&track).unwrap();
    let store = |user: chorus::domain::UserId, id: &'static str| {
        let (db, track) = (app.state.db.clone(), track.clone());
        async move {
            feedback::insert_interaction(
                &db,
                &NewInteraction {
                    id,
                    user_id: &user,
                    track_id: &track,
                    kind: "add",
                    weight: 1.0,
                    request_id: None,
                    group_id: Some("g_room"),
                    created_at: chorus::domain::now_ms(),
                },
            )
            .await
            .unwrap()
        }
    };
    let fold = |id: &str| FoldStored {
        id: id.to_string(),
        item,
        kind: FeedbackKind::Add,
    };
    // Running before the room stored it: the fold counts it.
    let (running, _) = app.create_user("Running").await;
    let running = chorus::domain::UserId::parse(&running).unwrap();
    assert!(directory
        .send(&running, GetSnapshot)
        .await
        .unwrap()
        .listener
        .is_none());
    store(running.clone(), "i_running").await;
    directory.send(&running, fold("i_running")).await.unwrap();
    // Started by the fold: its load reads the row, and the fold is not counted again.
    let (started, _) = app.create_user("Started").await;
    let started = chorus::domain::UserId::parse(&started).unwrap();
    store(started.clone(), "i_started").await;
    directory.send(&started, fold("i_started")).await.unwrap();
    for user in [&running, &started] {
        let profile = directory.send(user, GetProfile).await.unwrap();
        assert_eq!(profile.counts.add, 1, "one add for {user}");
        let snapshot = directory.send(user, GetSnapshot).await.unwrap();
        assert_eq!(snapshot.reacted, vec![item]);
    }
}

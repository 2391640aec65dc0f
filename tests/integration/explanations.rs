//! Explanations: grounded in the track's real features and the audience's taste, for a
//! listener or a group (members only, aggregate taste only), with precise errors.

use serde_json::{json, Value};

use crate::{
    groups::{group_of, Member},
    helpers::{assert_error, spawn_app, TestApp},
};

pub async fn like_genre(app: &TestApp, token: &str, genre: &str, n: usize) {
    let catalog = &app.state.catalog;
    let tracks: Vec<String> = (0..catalog.len() as u32)
        .map(|i| catalog.track(i))
        .filter(|t| t.has_genre(genre))
        .take(n)
        .map(|t| t.id.as_str().to_string())
        .collect();
    for track in tracks {
        let body = json!({"track_id": track, "kind": "like"});
        assert_eq!(
            app.post_json_as("/api/v1/feedback", &body, token)
                .await
                .status(),
            202
        );
    }
}

fn track_of(list: &Value) -> &Value {
    &list["items"][0]["track"]
}

#[actix_web::test]
async fn a_listener_hears_why_in_terms_of_real_features_and_signals() {
    let app = spawn_app().await;
    let (_, token) = app.create_user("Rocker").await;
    like_genre(&app, &token, "rock", 6).await;
    let list = app.recommend(&token, 3).await;
    let track = track_of(&list);
    let id = track["id"].as_str().unwrap();
    let explained = app
        .get_json_as(&format!("/api/v1/tracks/{id}/explanation"), &token)
        .await;
    assert_eq!(explained["source"], "template");
    assert_eq!(explained["track_id"], id);
    assert!(explained["latency_ms"].is_u64());
    let text = explained["text"].as_str().unwrap();
    let tempo = track["audio_features"]["tempo"].as_f64().unwrap().round() as u64;
    for fact in [
        track["title"].as_str().unwrap().to_string(),
        track["artist"].as_str().unwrap().to_string(),
        format!("{tempo} BPM"),
    ] {
        assert!(text.contains(&fact), "{fact:?} missing from {text:?}");
    }
    assert!(
        text.contains("The strongest reason Chorus picked it for you: "),
        "{text}"
    );

    // Someone without a taste still gets the track's own facts, and no made-up reasons.
    let (_, cold) = app.create_user("New").await;
    let cold_text = app
        .get_json_as(&format!("/api/v1/tracks/{id}/explanation"), &cold)
        .await["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(cold_text.contains(track["title"].as_str().unwrap()));
    assert!(!cold_text.contains("strongest reason"), "{cold_text}");
}

#[actix_web::test]
async fn a_group_hears_about_the_group_and_nothing_about_any_member() {
    let app = spawn_app().await;
    let (group_id, members) = group_of(&app, &["Alice-Private", "Bob-Private"], json!({})).await;
    like_genre(&app, &members[0].token, "rock", 5).await;
    like_genre(&app, &members[1].token, "pop", 5).await;
    let recommendations = app
        .get_json_as(
            &format!("/api/v1/groups/{group_id}/recommendations"),
            &members[0].token,
        )
        .await;
    let id = track_of(&recommendations)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/tracks/{id}/explanation?group={group_id}");
    let text = app.get_json_as(&path, &members[1].token).await["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains("your group"), "{text}");
    for Member { user_id, .. } in &members {
        assert!(!text.contains(user_id.as_str()), "{text}");
    }
    assert!(!text.contains("Alice") && !text.contains("Bob"), "{text}");

    let (_, outsider) = app.create_user("Outsider").await;
    assert_error(app.get_as(&path, &outsider).await, 403, "not_a_member").await;
    let token = &members[0].token;
    assert_error(
        app.get_as(
            &format!("/api/v1/tracks/{id}/explanation?group=nope"),
            token,
        )
        .await,
        400,
        "invalid_query",
    )
    .await;
    assert_error(
        app.get_as(
            &format!("/api/v1/tracks/{id}/explanation?mood=happy"),
            token,
        )
        .await,
        400,
        "invalid_query",
    )
    .await;
    assert_error(
        app.get_as("/api/v1/tracks/0000000000000000000000/explanation", token)
            .await,
        404,
        "track_not_found",
    )
    .await;
    assert_error(
        app.get(&format!("/api/v1/tracks/{id}/explanation")).await,
        401,
        "missing_token",
    )
    .await;
}

//! The strategy bandit end to end: lists are pulls, feedback quoting a list's request id is its
//! reward, lists without a like in the window are failures, the report says so, and the
//! posteriors survive a restart.

use std::{sync::Arc, time::Duration};

use chorus::config::BanditSettings;
use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_app_with, AppOptions, Store, TestApp, ADMIN_TOKEN};

fn bandit_on() -> BanditSettings {
    BanditSettings {
        enabled: true,
        exploration_floor: 0.05,
        reward_window_s: 1,
        persist_interval_ms: 100,
    }
}

async fn report(app: &TestApp) -> Value {
    app.get_json_as("/api/v1/analytics/bandit", ADMIN_TOKEN)
        .await
}

fn arm<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no arm {name} in {report}"))
}

async fn feedback(app: &TestApp, token: &str, track: &Value, request_id: Option<&str>) {
    let mut body = json!({"track_id": track["id"], "kind": "like"});
    if let Some(id) = request_id {
        body["request_id"] = json!(id);
    }
    let response = app.post_json_as("/api/v1/feedback", &body, token).await;
    assert_eq!(response.status(), 202);
}

async fn bandit_learns_and_persists(store: Store) {
    let app = spawn_app_with(AppOptions {
        store,
        bandit: bandit_on(),
        ..AppOptions::default()
    })
    .await;
    let (_, token) = app.create_user("Explorer").await;
    // A taste first, so lists are ranked (a cold listener gets the popular start, no pull).
    let cold: Value = app
        .post_json_as("/api/v1/recommendations", &json!({"limit": 3}), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cold["strategy"], "popular_diverse");
    for item in cold["items"].as_array().unwrap() {
        feedback(&app, &token, &item["track"], None).await;
    }

    // Only `content` lists ever earn a like.
    let (mut pulls, mut content_likes) = (0, 0);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let list: Value = app
            .post_json_as("/api/v1/recommendations", &json!({"limit": 3}), &token)
            .await
            .json()
            .await
            .unwrap();
        let strategy = list["strategy"].as_str().unwrap().to_string();
        pulls += 1;
        if strategy == "content" {
            let request_id = list["request_id"].as_str().unwrap();
            feedback(&app, &token, &list["items"][0]["track"], Some(request_id)).await;
            content_likes += 1;
        }
        seen.insert(strategy);
    }
    assert!(
        seen.iter()
            .all(|s| ["hybrid", "ncf", "content", "popularity"].contains(&s.as_str())),
        "{seen:?}"
    );
    assert!(
        content_likes > 0,
        "the floor alone gives content some lists"
    );
    // Let the window close on every other list, and the posteriors reach the store.
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    let before = report(&app).await;
    let total_pulls: u64 = before["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["pulls"].as_u64().unwrap())
        .sum();
    assert_eq!(total_pulls, pulls);
    let content = arm(&before, "content");
    assert_eq!(content["rewards"], content_likes as f64, "{before}");
    assert_eq!(content["posterior"]["alpha"], 1.0 + content_likes as f64);
    for name in ["hybrid", "ncf", "popularity"] {
        let other = arm(&before, name);
        assert_eq!(other["rewards"], 0.0);
        assert_eq!(
            other["failures"].as_f64().unwrap(),
            other["pulls"].as_f64().unwrap(),
            "{other}"
        );
        assert_eq!(other["pending"], 0);
        assert!(
            content["mean"].as_f64().unwrap() > other["mean"].as_f64().unwrap(),
            "{before}"
        );
    }
    let best: f64 = before["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["probability_best"].as_f64().unwrap())
        .sum();
    assert!((best - 1.0).abs() < 1e-9, "{before}");
    assert!(before["regret_estimate"].as_f64().unwrap() > 0.0);

    // A like after the window closed changes nothing: that list was settled as a failure.
    let late: Value = app
        .post_json_as("/api/v1/recommendations", &json!({"limit": 1}), &token)
        .await
        .json()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let settled = report(&app).await;
    feedback(
        &app,
        &token,
        &late["items"][0]["track"],
        late["request_id"].as_str(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_late = report(&app).await;
    let late_arm = late["strategy"].as_str().unwrap();
    assert_eq!(
        arm(&after_late, late_arm)["rewards"],
        arm(&settled, late_arm)["rewards"]
    );

    // The posteriors come back after a restart.
    let db = Arc::clone(&app.db);
    app.handle.stop(true).await;
    let restarted = spawn_app_with(AppOptions {
        store,
        bandit: bandit_on(),
        database: Some(db),
        ..AppOptions::default()
    })
    .await;
    let restored = report(&restarted).await;
    for name in ["hybrid", "ncf", "content", "popularity"] {
        let (a, b) = (arm(&after_late, name), arm(&restored, name));
        assert_eq!(a["posterior"], b["posterior"], "{name}");
        assert_eq!(a["pulls"], b["pulls"], "{name}");
    }
}

#[actix_web::test]
async fn the_bandit_learns_from_attributed_rewards_and_persists_on_sqlite() {
    bandit_learns_and_persists(Store::Sqlite).await;
}

#[actix_web::test]
async fn the_bandit_learns_from_attributed_rewards_and_persists_on_postgres() {
    bandit_learns_and_persists(Store::Postgres).await;
}

#[actix_web::test]
async fn analytics_need_the_admin_token() {
    let app = spawn_app_with(AppOptions::default()).await;
    assert_error(
        app.get("/api/v1/analytics/bandit").await,
        401,
        "missing_token",
    )
    .await;
    let (_, token) = app.create_user("Curious").await;
    assert_error(
        app.get_as("/api/v1/analytics/bandit", &token).await,
        403,
        "admin_required",
    )
    .await;
    let report = report(&app).await;
    assert_eq!(report["enabled"], false);
    assert_eq!(report["arms"].as_array().unwrap().len(), 4);
}

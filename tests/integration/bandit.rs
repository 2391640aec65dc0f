//! The bandits end to end: lists are pulls, feedback quoting a list's request id (or, in a
//! group, adding a track from the list) is its reward, lists without one in the window are
//! failures, the report says so, and the posteriors survive a restart.

use std::{sync::Arc, time::Duration};

use chorus::config::{BanditSettings, RealtimeSettings};
use serde_json::{json, Value};

use crate::{
    groups::{connect, group_of},
    helpers::{assert_error, spawn_app_with, AppOptions, Store, TestApp, ADMIN_TOKEN},
};

fn bandit_on() -> BanditSettings {
    BanditSettings {
        enabled: true,
        exploration_floor: 0.05,
        reward_window_s: 1,
        persist_interval_ms: 100,
    }
}

/// The report of one bandit (`solo_strategy` or `group_aggregation`).
async fn bandit_report(app: &TestApp, name: &str) -> Value {
    let all = app
        .get_json_as("/api/v1/analytics/bandit", ADMIN_TOKEN)
        .await;
    all["bandits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["bandit"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no bandit {name} in {all}"))
}

async fn report(app: &TestApp) -> Value {
    bandit_report(app, "solo_strategy").await
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
    let cold = app.recommend(&token, 3).await;
    assert_eq!(cold["strategy"], "popular_diverse");
    for item in cold["items"].as_array().unwrap() {
        feedback(&app, &token, &item["track"], None).await;
    }

    // Only `content` lists ever earn a like.
    let (mut pulls, mut content_likes) = (0, 0);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let list = app.recommend(&token, 3).await;
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
    let late = app.recommend(&token, 1).await;
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
    let group = bandit_report(&app, "group_aggregation").await;
    assert_eq!(group["arms"].as_array().unwrap().len(), 4);
}

/// A group set to `auto` gets its aggregation from the second bandit; a member adding a track
/// from the list rewards the arm that made it, and lists nobody adds from are failures.
#[actix_web::test]
async fn auto_groups_feed_the_aggregation_bandit() {
    let app = spawn_app_with(AppOptions {
        bandit: bandit_on(),
        realtime: RealtimeSettings {
            recommend_interval_ms: 20,
            ..RealtimeSettings::default()
        },
        ..AppOptions::default()
    })
    .await;
    let (group_id, members) = group_of(&app, &["A", "B"], json!({"aggregation": "auto"})).await;
    for (i, member) in members.iter().enumerate() {
        for k in 0..4 {
            let track = app.state.catalog.track(i as u32 * 10 + k);
            let body = json!({"track_id": track.id.as_str(), "kind": "like"});
            let response = app
                .post_json_as("/api/v1/feedback", &body, &member.token)
                .await;
            assert_eq!(response.status(), 202);
        }
    }
    let mut a = connect(&app, &members[0]).await;
    a.join(&group_id, None).await;
    a.send(json!({"type": "request_recommendations"})).await;
    let list = loop {
        let frame = a.next_of("recommendations").await;
        if frame["strategy"] != "popular_diverse" {
            break frame;
        }
    };
    let arm_name = list["strategy"].as_str().unwrap().to_string();
    assert!(
        ["average", "least_misery", "most_pleasure", "fair"].contains(&arm_name.as_str()),
        "{arm_name}"
    );
    let track = list["items"][0]["track"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (ack, _) = a
        .op(
            json!({"type": "add_track", "track_id": track}),
            "from-the-list",
        )
        .await;
    assert_eq!(ack["type"], "ack");
    // The window (1 s) closes on every list nobody added from.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let report = bandit_report(&app, "group_aggregation").await;
    let rewarded = arm(&report, &arm_name);
    assert_eq!(rewarded["rewards"], 1.0, "{report}");
    let (pulls, resolved): (f64, f64) = report["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["pulls"].as_f64().unwrap(),
                a["rewards"].as_f64().unwrap() + a["failures"].as_f64().unwrap(),
            )
        })
        .fold((0.0, 0.0), |(p, r), (a, b)| (p + a, r + b));
    assert!(pulls >= 2.0, "the add itself refreshed the list: {report}");
    assert_eq!(pulls, resolved, "{report}");
}

/// Two servers on one store (as in a multi-process deployment): each adds what it saw, and
/// both end up with the sum.
#[actix_web::test]
async fn processes_sharing_a_store_learn_together() {
    let first = spawn_app_with(AppOptions {
        store: Store::Postgres,
        bandit: bandit_on(),
        ..AppOptions::default()
    })
    .await;
    let second = spawn_app_with(AppOptions {
        store: Store::Postgres,
        bandit: bandit_on(),
        database: Some(Arc::clone(&first.db)),
        ..AppOptions::default()
    })
    .await;
    for (app, lists) in [(&first, 5), (&second, 7)] {
        let (_, token) = app.create_user("Listener").await;
        for i in 0..3 {
            let track = app.state.catalog.track(i);
            feedback(app, &token, &json!({"id": track.id.as_str()}), None).await;
        }
        for _ in 0..lists {
            let response = app
                .post_json_as("/api/v1/recommendations", &json!({"limit": 2}), &token)
                .await;
            assert_eq!(response.status(), 200);
        }
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    for app in [&first, &second] {
        let report = report(app).await;
        let pulls: u64 = report["arms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["pulls"].as_u64().unwrap())
            .sum();
        assert_eq!(pulls, 12, "{report}");
    }
}

use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with, AppOptions, Store};

#[actix_web::test]
async fn health_answers_ok() {
    let app = spawn_app().await;
    let response = app.get("/health").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[actix_web::test]
async fn ready_reports_each_dependency() {
    let app = spawn_app().await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert_eq!(body["checks"]["database"]["backend"], "sqlite");
    assert_eq!(body["checks"]["cache"]["backend"], "in-process");
    assert_eq!(body["checks"]["catalog"]["status"], "ok");
    assert_eq!(body["checks"]["models"]["status"], "ok");
    assert_eq!(body["checks"]["models"]["backend"], "cpu");
}

#[actix_web::test]
async fn ready_fails_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.state.db.close().await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["database"]["status"], "down");
}

#[actix_web::test]
async fn metrics_expose_request_latency_histograms() {
    let app = spawn_app().await;
    app.get("/api/v1/tracks?q=queen").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    assert!(
        text.contains(
            "chorus_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/tracks\""
        ),
        "{text}"
    );
    assert!(text.contains(
        "chorus_http_requests_total{method=\"GET\",route=\"/api/v1/tracks\",status=\"200\"} 1"
    ));
    assert!(text.contains(&format!(
        "chorus_catalog_tracks {}",
        crate::helpers::FIXTURE_TRACKS
    )));
}

#[actix_web::test]
async fn openapi_describes_every_route() {
    let app = spawn_app().await;
    let response = app.get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/health", "get"),
        ("/ready", "get"),
        ("/metrics", "get"),
        ("/api/v1/openapi.json", "get"),
        ("/api/v1/users", "post"),
        ("/api/v1/me", "get"),
        ("/api/v1/ws-ticket", "post"),
        ("/api/v1/tracks", "get"),
        ("/api/v1/tracks/{id}", "get"),
        ("/api/v1/genres", "get"),
        ("/api/v1/tracks/{id}/similar", "get"),
        ("/api/v1/classify", "post"),
        ("/api/v1/recommendations", "post"),
        ("/api/v1/feedback", "post"),
        ("/api/v1/comparisons/next", "get"),
        ("/api/v1/comparisons", "post"),
        ("/api/v1/me/profile", "get"),
        ("/api/v1/groups", "post"),
        ("/api/v1/groups/join", "post"),
        ("/api/v1/groups/{id}", "get"),
        ("/api/v1/groups/{id}/events", "get"),
        ("/api/v1/groups/{id}/recommendations", "get"),
        ("/api/v1/ws", "get"),
        ("/api/v1/stats/proportions", "post"),
        ("/api/v1/stats/means", "post"),
        ("/api/v1/analytics/bandit", "get"),
        ("/api/v1/analytics/bandit/history", "get"),
        ("/api/v1/experiments", "post"),
        ("/api/v1/experiments", "get"),
        ("/api/v1/experiments/{id}/stop", "post"),
        ("/api/v1/analytics/ab/{id}", "get"),
        ("/api/v1/tracks/{id}/explanation", "get"),
        ("/api/v1/spotify/login", "get"),
        ("/api/v1/spotify/login", "post"),
        ("/api/v1/spotify/callback", "get"),
        ("/api/v1/spotify", "get"),
        ("/api/v1/spotify", "delete"),
        ("/api/v1/spotify/devices", "get"),
        ("/api/v1/spotify/import", "post"),
        ("/api/v1/groups/{id}/spotify/export", "post"),
        ("/api/v1/groups/{id}/spotify/device", "put"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    assert_eq!(
        paths.len(),
        38,
        "a route was added without updating this test: {:?}",
        paths.keys()
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[actix_web::test]
async fn the_same_server_runs_on_postgres_and_redis() {
    let app = spawn_app_with(AppOptions {
        store: Store::Postgres,
        redis: true,
        ..AppOptions::default()
    })
    .await;
    let body: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["checks"]["database"]["backend"], "postgres");
    assert_eq!(body["checks"]["cache"]["backend"], "redis");
    let (_, token) = app.create_user("Pat").await;
    let me = app.get_as("/api/v1/me", &token).await;
    assert_eq!(me.status(), 200);
    let found: Value = app
        .get("/api/v1/tracks?q=queen")
        .await
        .json()
        .await
        .unwrap();
    assert!(!found["items"].as_array().unwrap().is_empty());
}

#[actix_web::test]
async fn graceful_stop_finishes_and_closes_the_store() {
    let app = spawn_app().await;
    assert_eq!(app.get("/health").await.status(), 200);
    app.handle.stop(true).await;
    assert!(app.client.get(app.url("/health")).send().await.is_err());
}

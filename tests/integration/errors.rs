//! Every client-facing error code, reached through a real request, and bad input on every
//! endpoint.

use reqwest::header::CONTENT_TYPE;
use serde_json::json;

use crate::helpers::{assert_error, spawn_app, spawn_app_with, AppOptions};

#[actix_web::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    for body in [
        "{",
        "{\"display_name\": }",
        "",
        "{\"display_name\": \"a\"",
        "nul",
    ] {
        let response = app
            .client
            .post(app.url("/api/v1/users"))
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_error(response, 400, "malformed_json").await;
    }
}

#[actix_web::test]
async fn unknown_missing_and_invalid_fields_are_named() {
    let app = spawn_app().await;
    let body = assert_error(
        app.post_json(
            "/api/v1/users",
            &json!({"display_name": "a", "admin": true}),
        )
        .await,
        400,
        "unknown_field",
    )
    .await;
    assert!(body["error"]["message"].as_str().unwrap().contains("admin"));
    let body = assert_error(
        app.post_json("/api/v1/users", &json!({})).await,
        422,
        "missing_field",
    )
    .await;
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("display_name"));
    for bad in [
        json!({"display_name": 5}),
        json!({"display_name": null}),
        json!([]),
        json!("x"),
    ] {
        assert_error(
            app.post_json("/api/v1/users", &bad).await,
            422,
            "invalid_field",
        )
        .await;
    }
    for bad in ["", "   ", "a\u{0007}b"] {
        assert_error(
            app.post_json("/api/v1/users", &json!({"display_name": bad}))
                .await,
            422,
            "invalid_field",
        )
        .await;
    }
    let long = "x".repeat(65);
    assert_error(
        app.post_json("/api/v1/users", &json!({"display_name": long}))
            .await,
        422,
        "invalid_field",
    )
    .await;
}

#[actix_web::test]
async fn bodies_must_be_json_and_bounded() {
    let app = spawn_app_with(AppOptions {
        max_body_bytes: Some(2048),
        ..AppOptions::default()
    })
    .await;
    let response = app
        .client
        .post(app.url("/api/v1/users"))
        .header(CONTENT_TYPE, "text/plain")
        .body("{\"display_name\":\"a\"}")
        .send()
        .await
        .unwrap();
    assert_error(response, 415, "unsupported_media_type").await;
    let response = app
        .client
        .post(app.url("/api/v1/users"))
        .body("{\"display_name\":\"a\"}")
        .send()
        .await
        .unwrap();
    assert_error(response, 415, "unsupported_media_type").await;
    let huge = json!({ "display_name": "x".repeat(4096) });
    assert_error(
        app.post_json("/api/v1/users", &huge).await,
        413,
        "payload_too_large",
    )
    .await;
    // The server keeps serving afterwards, and nothing was stored.
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(count, 0);
    assert_eq!(app.get("/health").await.status(), 200);
}

#[actix_web::test]
async fn auth_errors_distinguish_missing_from_invalid() {
    let app = spawn_app().await;
    assert_error(app.get("/api/v1/me").await, 401, "missing_token").await;
    for header in [
        "Basic dXNlcjpwYXNz".to_string(),
        "Bearer".to_string(),
        "Bearer not-a-token".to_string(),
        format!("Bearer chorus_{}", "A".repeat(43)),
    ] {
        let response = app
            .client
            .get(app.url("/api/v1/me"))
            .header("Authorization", header)
            .send()
            .await
            .unwrap();
        assert_error(response, 401, "invalid_token").await;
    }
}

#[actix_web::test]
async fn query_path_and_route_errors() {
    let app = spawn_app().await;
    for path in [
        "/api/v1/tracks?limit=0",
        "/api/v1/tracks?limit=101",
        "/api/v1/tracks?limit=ten",
        "/api/v1/tracks?limit=-1",
        "/api/v1/tracks?sort=title",
    ] {
        assert_error(app.get(path).await, 400, "invalid_query").await;
    }
    let long_query = format!("/api/v1/tracks?q={}", "a".repeat(201));
    assert_error(app.get(&long_query).await, 400, "invalid_query").await;
    assert_error(
        app.get("/api/v1/tracks/has%20space").await,
        400,
        "invalid_id",
    )
    .await;
    assert_error(
        app.get(&format!("/api/v1/tracks/{}", "a".repeat(65))).await,
        400,
        "invalid_id",
    )
    .await;
    assert_error(
        app.get("/api/v1/tracks/0000000000000000000000").await,
        404,
        "track_not_found",
    )
    .await;
    assert_error(app.get("/api/v1/nothing-here").await, 404, "not_found").await;
    let response = app
        .client
        .delete(app.url("/api/v1/tracks"))
        .send()
        .await
        .unwrap();
    assert_error(response, 405, "method_not_allowed").await;
    let response = app
        .client
        .get(app.url("/api/v1/users"))
        .send()
        .await
        .unwrap();
    assert_error(response, 405, "method_not_allowed").await;
    let response = app.client.post(app.url("/health")).send().await.unwrap();
    assert_error(response, 405, "method_not_allowed").await;
}

#[actix_web::test]
async fn a_lost_database_is_503_not_500() {
    let app = spawn_app().await;
    app.state.db.close().await;
    let response = app
        .post_json("/api/v1/users", &json!({"display_name": "x"}))
        .await;
    assert!(response.headers().contains_key("retry-after"));
    assert_error(response, 503, "dependency_unavailable").await;
}

#[actix_web::test]
async fn every_catalog_code_is_documented_in_the_readme() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for code in chorus::error::ErrorCode::ALL {
        let row = format!("| `{}` | {} |", code.as_str(), code.status().as_u16());
        assert!(readme.contains(&row), "README lacks the row {row}");
    }
}

use chorus::config::RateLimitSettings;

use crate::helpers::{assert_error, spawn_app_with, AppOptions};

fn strict(per_ip_burst: u32, per_token_burst: u32) -> Option<RateLimitSettings> {
    Some(RateLimitSettings {
        enabled: true,
        per_ip_per_second: 0.5,
        per_ip_burst,
        per_token_per_second: 0.5,
        per_token_burst,
        ..RateLimitSettings::default()
    })
}

async fn per_ip_limit_applies(redis: bool) {
    let app = spawn_app_with(AppOptions {
        redis,
        rate_limit: strict(5, 100),
        ..AppOptions::default()
    })
    .await;
    for _ in 0..5 {
        assert_eq!(app.get("/api/v1/genres").await.status(), 200);
    }
    let response = app.get("/api/v1/genres").await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_error(response, 429, "rate_limited").await;
    // Operations endpoints stay reachable for probes.
    assert_eq!(app.get("/health").await.status(), 200);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("chorus_rate_limited_total{scope=\"ip\"} 1"),
        "{metrics}"
    );
}

#[actix_web::test]
async fn per_ip_limit_in_process() {
    per_ip_limit_applies(false).await;
}

#[actix_web::test]
async fn per_ip_limit_in_redis() {
    per_ip_limit_applies(true).await;
}

async fn per_token_limit_applies(redis: bool) {
    let app = spawn_app_with(AppOptions {
        redis,
        rate_limit: strict(100, 3),
        ..AppOptions::default()
    })
    .await;
    let (_, token) = app.create_user("Busy").await;
    let (_, other) = app.create_user("Calm").await;
    for _ in 0..3 {
        let response = app.get_as("/api/v1/me", &token).await;
        assert_eq!(response.status(), 200);
    }
    let response = app.get_as("/api/v1/me", &token).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_error(response, 429, "rate_limited").await;
    // Spelling the scheme differently does not escape the limit.
    let response = app
        .client
        .get(app.url("/api/v1/me"))
        .header("Authorization", format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_error(response, 429, "rate_limited").await;
    // Another token from the same address is unaffected.
    let response = app.get_as("/api/v1/me", &other).await;
    assert_eq!(response.status(), 200);
}

#[actix_web::test]
async fn per_token_limit_in_process() {
    per_token_limit_applies(false).await;
}

#[actix_web::test]
async fn per_token_limit_in_redis() {
    per_token_limit_applies(true).await;
}

use serde_json::{json, Value};

use crate::helpers::{assert_error, captured_logs, spawn_app};

#[actix_web::test]
async fn guest_sign_up_returns_a_working_token() {
    let app = spawn_app().await;
    let response = app
        .post_json("/api/v1/users", &json!({ "display_name": "  Zoë  " }))
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["display_name"], "Zoë");
    let token = body["token"].as_str().unwrap();
    let me: Value = app.get_as("/api/v1/me", token).await.json().await.unwrap();
    assert_eq!(me["user_id"], body["user_id"]);
}

#[actix_web::test]
async fn tokens_are_stored_only_as_hashes() {
    let app = spawn_app().await;
    let (user_id, token) = app.create_user("Kim").await;
    let stored: String = sqlx::query_scalar("SELECT token_hash FROM users WHERE id = $1")
        .bind(&user_id)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_ne!(stored, token);
    assert!(!stored.contains(&token[7..]));
    assert_eq!(stored.len(), 64);
}

#[actix_web::test]
async fn tokens_and_tickets_never_reach_the_logs() {
    let app = spawn_app().await;
    let (_, token) = app.create_user("Lee").await;
    let ticket: Value = app
        .client
        .post(app.url("/api/v1/ws-ticket"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = ticket["ticket"].as_str().unwrap().to_string();
    // Also a request whose URL carries the ticket and one with a wrong token.
    app.get(&format!("/api/v1/ws?ticket={ticket}")).await;
    app.client
        .get(app.url("/api/v1/me"))
        .bearer_auth(format!("{token}x"))
        .send()
        .await
        .unwrap();
    let logs = captured_logs();
    assert!(logs.contains("/api/v1/ws-ticket"), "request logging is on");
    assert!(!logs.contains(&token[7..]), "a token was logged");
    assert!(!logs.contains(&ticket[4..]), "a ticket was logged");
}

#[actix_web::test]
async fn ws_tickets_need_a_valid_token() {
    let app = spawn_app().await;
    let (_, token) = app.create_user("Ana").await;
    let response = app
        .client
        .post(app.url("/api/v1/ws-ticket"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let ticket = body["ticket"].as_str().unwrap();
    assert!(ticket.starts_with("wst_"));
    assert_eq!(body["expires_in_s"], 30);
    // The ticket is single-use and resolves to the caller.
    let user = chorus::accounts::redeem_ticket(app.state.cache.as_ref(), ticket)
        .await
        .unwrap();
    assert!(user.is_some());
    assert!(
        chorus::accounts::redeem_ticket(app.state.cache.as_ref(), ticket)
            .await
            .unwrap()
            .is_none()
    );

    let response = app
        .client
        .post(app.url("/api/v1/ws-ticket"))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "missing_token").await;
}

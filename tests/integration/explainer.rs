//! The ExplainerActor against a local OpenAI-compatible stand-in (see `llm_standin`), through
//! the real `async-openai` client: grounded answers over REST and streamed over the socket, the
//! cache (in Redis here), and the template fallback when the model is slow, failing, refusing
//! connections or talking nonsense, always within the deadline.

use std::time::{Duration, Instant};

use chorus::{
    config::{ExplainerSettings, Secret},
    explain::facts::traits,
};
use serde_json::{json, Value};

use crate::{
    explanations::like_genre,
    groups::{connect, group_of},
    helpers::{redis_url, spawn_app_with, AppOptions, TestApp},
    llm_standin::{Reply, StandIn, MODEL},
    sockets::Client,
};

const API_KEY: &str = "sk-standin-key";

fn options(base_url: &str, deadline_ms: u64) -> AppOptions {
    AppOptions {
        explainer: ExplainerSettings {
            base_url: Some(base_url.to_string()),
            model: Some(MODEL.to_string()),
            api_key: Some(Secret::new(API_KEY)),
            deadline_ms,
            ..ExplainerSettings::default()
        },
        ..AppOptions::default()
    }
}

/// A listener who likes rock, and the first track recommended to them.
async fn rock_fan(app: &TestApp) -> (String, String, String) {
    let (user_id, token) = app.create_user("Rocker").await;
    like_genre(app, &token, "rock", 6).await;
    let list = app.recommend(&token, 3).await;
    let track = list["items"][0]["track"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    (user_id, token, track)
}

async fn explain(app: &TestApp, token: &str, track: &str) -> Value {
    app.get_json_as(&format!("/api/v1/tracks/{track}/explanation"), token)
        .await
}

/// The words the template and the stand-in use for what stands out in a track.
fn facts_of(app: &TestApp, track: &str) -> (String, Vec<String>) {
    let catalog = &app.state.catalog;
    let t = catalog.track(catalog.index_of(track).unwrap());
    (t.genres[0].clone(), traits(&t.audio_features))
}

fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn metrics(app: &TestApp) -> String {
    app.get("/metrics").await.text().await.unwrap()
}

#[actix_web::test]
async fn a_model_explains_from_the_facts_and_the_answer_is_cached_in_redis() {
    let standin = StandIn::start(vec![Reply::Grounded]).await;
    let app = spawn_app_with(AppOptions {
        redis: true,
        ..options(&standin.base_url, 3_000)
    })
    .await;
    let (user_id, token, track) = rock_fan(&app).await;

    let first = explain(&app, &token, &track).await;
    assert_eq!(first["source"], "llm", "{first}");
    assert_eq!(first["model"], MODEL);
    assert_eq!(first["cached"], false);
    let text = first["text"].as_str().unwrap();
    let (genre, sound) = facts_of(&app, &track);
    assert!(text.contains(&genre), "{genre:?} missing from {text:?}");
    for word in &sound {
        assert!(text.contains(word), "{word:?} missing from {text:?}");
    }

    // The prompt holds the facts and nothing that identifies the listener.
    let prompt = standin.prompt(0);
    assert!(prompt.contains("Audience: one listener"), "{prompt}");
    assert!(prompt.contains(&format!("Genres: {genre}")), "{prompt}");
    for private in [user_id.as_str(), token.as_str(), "Rocker", track.as_str()] {
        assert!(
            !prompt.contains(private),
            "{private:?} leaked into {prompt}"
        );
    }
    assert_eq!(standin.authorizations(), [format!("Bearer {API_KEY}")]);

    let again = explain(&app, &token, &track).await;
    assert_eq!(again["cached"], true, "{again}");
    assert_eq!(again["source"], "llm");
    assert_eq!(again["text"], first["text"]);
    assert_eq!(
        standin.requests().len(),
        1,
        "a cache hit must not call the model"
    );

    let mut redis = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let pattern = format!(
        "{}cache:explain:{track}:*",
        app.state.settings.redis.key_prefix
    );
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{pattern}: {keys:?}");

    let metrics = metrics(&app).await;
    assert_eq!(metric(&metrics, "chorus_explainer_cache_hits_total"), 1.0);
    assert_eq!(
        metric(&metrics, "chorus_explanations_total{source=\"llm\"}"),
        2.0
    );
    let ready = app.get_json("/ready").await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["explainer"]["status"], "ok", "{ready}");
    assert_eq!(ready["checks"]["explainer"]["backend"], "llm");
    standin.stop().await;
}

#[actix_web::test]
async fn a_group_explanation_streams_to_the_requester_and_shares_only_aggregate_taste() {
    let standin = StandIn::start(vec![Reply::Grounded]).await;
    let app = spawn_app_with(options(&standin.base_url, 3_000)).await;
    let (group_id, members) = group_of(&app, &["Alice-Private", "Bob-Private"], json!({})).await;
    like_genre(&app, &members[0].token, "rock", 5).await;
    like_genre(&app, &members[1].token, "pop", 5).await;
    let (_, outsider) = app.create_user("Outsider-Private").await;
    like_genre(&app, &outsider, "latin", 8).await;
    let list = app
        .get_json_as(
            &format!("/api/v1/groups/{group_id}/recommendations"),
            &members[0].token,
        )
        .await;
    let track = list["items"][0]["track"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let mut alice = connect(&app, &members[0]).await;
    let mut bob = connect(&app, &members[1]).await;
    alice.join(&group_id, None).await;
    bob.join(&group_id, None).await;
    bob.send(json!({"type": "explain", "track_id": track, "client_msg_id": "why-1"}))
        .await;
    let frames = bob.recv_until("explanation_done").await;
    let deltas: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "explanation_delta")
        .collect();
    let done = frames.last().unwrap();
    assert!(deltas.len() >= 2, "expected a stream, got {frames:?}");
    assert!(deltas.iter().all(|d| d["track_id"] == track.as_str()));
    let streamed: String = deltas.iter().map(|d| d["text"].as_str().unwrap()).collect();
    assert_eq!(done["text"].as_str().unwrap(), streamed);
    assert_eq!(done["source"], "llm");
    assert_eq!(done["model"], MODEL);
    assert_eq!(done["client_msg_id"], "why-1");
    assert!(streamed.contains("your group"), "{streamed}");
    let (genre, _) = facts_of(&app, &track);
    assert!(streamed.contains(&genre), "{streamed}");
    // Only the requester hears it.
    assert!(alice
        .try_recv(Duration::from_millis(300))
        .await
        .is_none_or(|f| !f["type"].as_str().unwrap().starts_with("explanation")),);

    let prompt = standin.prompt(0);
    assert!(prompt.contains("Audience: a group"), "{prompt}");
    assert!(prompt.contains("aggregate of 2 member(s)"), "{prompt}");
    let mut private = vec!["Alice", "Bob", "Outsider", outsider.as_str()];
    for member in &members {
        private.push(&member.user_id);
        private.push(&member.token);
    }
    for secret in private {
        assert!(!prompt.contains(secret), "{secret:?} leaked into {prompt}");
    }
    let track_genres = &app
        .state
        .catalog
        .track(app.state.catalog.index_of(&track).unwrap())
        .genres;
    if !track_genres.iter().any(|g| g == "latin") {
        assert!(
            !prompt.contains("latin"),
            "a non-member's taste leaked: {prompt}"
        );
    }

    // Bad requests get an error frame and the socket stays usable.
    bob.send(
        json!({"type": "explain", "track_id": "0000000000000000000000", "client_msg_id": "why-2"}),
    )
    .await;
    let error = bob.next_of("error").await;
    assert_eq!(error["code"], "track_not_found", "{error}");
    assert_eq!(error["client_msg_id"], "why-2");
    bob.send(json!({"type": "explain", "client_msg_id": "why-3"}))
        .await;
    assert_eq!(bob.next_of("error").await["code"], "missing_field");
    bob.send(json!({"type": "ping", "client_msg_id": "still-here"}))
        .await;
    assert_eq!(bob.next_of("pong").await["client_msg_id"], "still-here");
    standin.stop().await;
}

#[actix_web::test]
async fn a_stream_that_turns_to_junk_or_runs_late_is_replaced_by_the_template() {
    let standin = StandIn::start(vec![
        Reply::Text("Buy it now at https://spam.example before it is gone!".into()),
        Reply::Slow(Duration::from_millis(250)),
    ])
    .await;
    let app = spawn_app_with(options(&standin.base_url, 1_000)).await;
    let (user_id, token, track) = rock_fan(&app).await;
    let mut client = Client::connect(&app, &user_id, &token).await;

    client
        .send(json!({"type": "explain", "track_id": track}))
        .await;
    let frames = client.recv_until("explanation_done").await;
    let done = frames.last().unwrap();
    assert!(
        frames
            .iter()
            .any(|f| f["type"] == "explanation_delta"
                && f["text"].as_str().unwrap().contains("spam")),
        "the junk was streamed as it came: {frames:?}"
    );
    assert_eq!(done["source"], "template", "{done}");
    let title = app
        .state
        .catalog
        .track(app.state.catalog.index_of(&track).unwrap())
        .title
        .clone();
    assert!(done["text"].as_str().unwrap().contains(&title), "{done}");

    // A stream that would take ~2.5 s is cut at the 1 s deadline.
    let started = Instant::now();
    client
        .send(json!({"type": "explain", "track_id": track}))
        .await;
    let done = client.next_of("explanation_done").await;
    assert_eq!(done["source"], "template", "{done}");
    assert!(done["latency_ms"].as_u64().unwrap() <= 1_000, "{done}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let metrics = metrics(&app).await;
    assert_eq!(
        metric(
            &metrics,
            "chorus_explainer_fallbacks_total{reason=\"junk\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "chorus_explainer_fallbacks_total{reason=\"timeout\"}"
        ),
        1.0
    );
    standin.stop().await;
}

#[actix_web::test]
async fn failures_fall_back_to_the_template_within_the_deadline_and_a_retry_can_rescue() {
    let standin = StandIn::start(vec![Reply::Status(500, "CUDA out of memory".into())]).await;
    // A deadline wide enough that a loaded CI machine (every integration test at once on two
    // cores) cannot turn "HTTP 500 after one retry" into "the deadline passed" (it once did at
    // 800 ms); the slow reply below is still far beyond it.
    let deadline_ms = 3_000;
    let app = spawn_app_with(options(&standin.base_url, deadline_ms)).await;
    let (_, token, track) = rock_fan(&app).await;

    let answer = explain(&app, &token, &track).await;
    assert_eq!(answer["source"], "template", "{answer}");
    assert!(
        answer["fallback"].as_str().unwrap().contains("HTTP 500"),
        "{answer}"
    );
    assert_eq!(
        standin.requests().len(),
        2,
        "a 5xx is retried once (max_retries 1)"
    );

    standin.set_replies(vec![Reply::Malformed]);
    let answer = explain(&app, &token, &track).await;
    assert_eq!(answer["source"], "template");
    assert!(
        answer["fallback"]
            .as_str()
            .unwrap()
            .contains("not a chat completion"),
        "{answer}"
    );

    standin.set_replies(vec![Reply::Text("Sure! {\"role\": \"assistant\"}".into())]);
    let answer = explain(&app, &token, &track).await;
    assert_eq!(answer["source"], "template");
    assert!(
        answer["fallback"].as_str().unwrap().contains("rejected"),
        "{answer}"
    );

    standin.set_replies(vec![Reply::Slow(Duration::from_secs(30))]);
    let started = Instant::now();
    let answer = explain(&app, &token, &track).await;
    assert_eq!(answer["source"], "template");
    assert!(
        answer["fallback"].as_str().unwrap().contains("deadline"),
        "{answer}"
    );
    assert!(
        answer["latency_ms"].as_u64().unwrap() <= deadline_ms,
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_millis(2 * deadline_ms));

    // Failing calls leave the explainer degraded, never the server unready.
    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(
        ready["checks"]["explainer"]["status"], "degraded",
        "{ready}"
    );
    assert!(ready["checks"]["explainer"]["detail"]
        .as_str()
        .unwrap()
        .contains("fell back"));

    let before = standin.requests().len();
    standin.set_replies(vec![Reply::Status(503, "busy".into()), Reply::Grounded]);
    let answer = explain(&app, &token, &track).await;
    assert_eq!(answer["source"], "llm", "{answer}");
    assert_eq!(
        standin.requests().len(),
        before + 2,
        "one retry after a 503"
    );
    let ready = app.get_json("/ready").await;
    assert_eq!(ready["checks"]["explainer"]["status"], "ok", "{ready}");
    standin.stop().await;
}

#[actix_web::test]
async fn a_refused_connection_falls_back_at_once_and_no_model_means_templates() {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let app = spawn_app_with(options(
        &format!("http://127.0.0.1:{closed_port}/v1"),
        3_000,
    ))
    .await;
    let (_, token, track) = rock_fan(&app).await;
    let started = Instant::now();
    let answer = explain(&app, &token, &track).await;
    assert_eq!(answer["source"], "template", "{answer}");
    assert!(
        answer["fallback"].as_str().unwrap().contains("connect"),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let metrics = metrics(&app).await;
    assert_eq!(
        metric(
            &metrics,
            "chorus_explainer_fallbacks_total{reason=\"connect\"}"
        ),
        1.0
    );

    let app = spawn_app_with(AppOptions::default()).await;
    let (_, token, track) = rock_fan(&app).await;
    let answer = explain(&app, &token, &track).await;
    assert_eq!(answer["source"], "template");
    assert!(answer.get("fallback").is_none(), "{answer}");
    let ready = app.get_json("/ready").await;
    assert_eq!(
        ready["checks"]["explainer"]["status"], "disabled",
        "{ready}"
    );
    assert_eq!(ready["checks"]["explainer"]["backend"], "template");
}

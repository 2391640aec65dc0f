//! The bandits end to end: lists are pulls, feedback quoting a list's request id (or, in a
//! group, adding a track from the list) is its reward, lists without one in the window are
//! failures, the report says so (per context, prior apart from data), and the posteriors and
//! the lists awaiting a reward survive a restart. The warm start on real playlists: the last
//! test.

use std::{sync::Arc, time::Duration};

use chorus::{
    bandit::actor::FlushNow,
    config::{BanditSettings, RealtimeSettings},
};
use serde_json::{json, Value};

use crate::{
    groups::{connect, group_of},
    helpers::{assert_error, spawn_app_with, track_ids, AppOptions, Store, TestApp, ADMIN_TOKEN},
};

/// Uniform priors (weight 0), so what the tests see is the data alone.
fn bandit_on() -> BanditSettings {
    BanditSettings {
        enabled: true,
        exploration_floor: 0.05,
        reward_window_s: 1,
        persist_interval_ms: 100,
        prior_weight: 0.0,
        ..BanditSettings::default()
    }
}

/// The report of one bandit (`solo_strategy` or `group_aggregation`).
pub async fn bandit_report(app: &TestApp, name: &str) -> Value {
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

/// Every (context, arm) of a bandit's report.
fn arms(report: &Value) -> Vec<&Value> {
    report["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["arms"].as_array().unwrap())
        .collect()
}

/// An arm's `field` summed over the contexts.
pub fn total(report: &Value, arm: &str, field: &str) -> f64 {
    arms(report)
        .iter()
        .filter(|a| a["name"] == arm)
        .map(|a| a[field].as_f64().unwrap())
        .sum()
}

/// One context's arm.
fn arm<'a>(report: &'a Value, context: &str, name: &str) -> &'a Value {
    report["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["context"] == context)
        .and_then(|c| {
            c["arms"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["name"] == name)
        })
        .unwrap_or_else(|| panic!("no arm {context}/{name} in {report}"))
}

const SOLO_ARMS: [&str; 4] = ["hybrid", "ncf", "content", "popularity"];

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
    let total_pulls: f64 = SOLO_ARMS.iter().map(|a| total(&before, a, "pulls")).sum();
    assert_eq!(total_pulls, pulls as f64);
    assert_eq!(
        total(&before, "content", "rewards"),
        content_likes as f64,
        "{before}"
    );
    for name in ["hybrid", "ncf", "popularity"] {
        assert_eq!(total(&before, name, "rewards"), 0.0);
        assert_eq!(
            total(&before, name, "failures"),
            total(&before, name, "pulls"),
            "{before}"
        );
        assert_eq!(total(&before, name, "pending"), 0.0);
    }
    for context in before["contexts"].as_array().unwrap() {
        let arms = context["arms"].as_array().unwrap();
        let content = arms.iter().find(|a| a["name"] == "content").unwrap();
        // Uniform priors: the posterior is Beta(1 + rewards, 1 + failures).
        assert_eq!(
            content["posterior"]["alpha"].as_f64().unwrap(),
            1.0 + content["rewards"].as_f64().unwrap()
        );
        assert_eq!(content["prior"]["alpha"], 1.0);
        if content["rewards"].as_f64().unwrap() > 0.0 {
            for other in arms.iter().filter(|a| a["name"] != "content") {
                assert!(
                    content["mean"].as_f64().unwrap() > other["mean"].as_f64().unwrap(),
                    "{context}"
                );
            }
        }
        let best: f64 = arms
            .iter()
            .map(|a| a["probability_best"].as_f64().unwrap())
            .sum();
        assert!((best - 1.0).abs() < 1e-9, "{context}");
    }
    assert!(before["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["regret_estimate"].as_f64().unwrap() > 0.0));

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
        total(&after_late, late_arm, "rewards"),
        total(&settled, late_arm, "rewards")
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
    assert_eq!(after_late["contexts"], restored["contexts"]);
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
    let contexts: Vec<&str> = report["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["context"].as_str().unwrap())
        .collect();
    assert_eq!(contexts, ["cold", "few", "many"]);
    assert_eq!(arms(&report).len(), 12);
    let group = bandit_report(&app, "group_aggregation").await;
    let contexts: Vec<&str> = group["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["context"].as_str().unwrap())
        .collect();
    assert_eq!(contexts, ["small", "medium", "large"]);
    assert_eq!(arms(&group).len(), 12);
    // The warm start, apart from the data: the offline best arm for mature listeners starts at
    // the prior rate with the configured weight (defaults 0.1 and 200).
    let best = arms(&report)
        .into_iter()
        .filter(|a| a["prior"]["alpha"].as_f64().unwrap() > 1.0)
        .map(|a| a["prior"]["mean"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!((best - 21.0 / 202.0).abs() < 1e-9, "{report}");
    assert!(arms(&report)
        .iter()
        .all(|a| a["pulls"] == 0 && a["rewards"] == 0.0));
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
    // Two members: the `small` rooms' posterior.
    let rewarded = arm(&report, "small", &arm_name);
    assert_eq!(rewarded["rewards"], 1.0, "{report}");
    let (pulls, resolved): (f64, f64) = arms(&report)
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
        let pulls: f64 = SOLO_ARMS.iter().map(|a| total(&report, a, "pulls")).sum();
        assert_eq!(pulls, 12.0, "{report}");
    }
}

/// Likes the three tracks of a fresh listener's popular start (a `few`-signals listener).
async fn listener_with_taste(app: &TestApp, name: &str) -> String {
    let (_, token) = app.create_user(name).await;
    let cold = app.recommend(&token, 3).await;
    assert_eq!(cold["strategy"], "popular_diverse");
    for item in cold["items"].as_array().unwrap() {
        feedback(app, &token, &item["track"], None).await;
    }
    token
}

async fn flush(app: &TestApp) {
    app.state
        .bandit
        .send(FlushNow)
        .await
        .expect("the bandit actor runs")
        .expect("the store takes the flush");
}

/// Lists awaiting their reward are in the store: after a restart a like still rewards the list
/// it quotes (once, however often it comes), and the others expire as failures.
async fn pending_lists_survive_a_restart(store: Store) {
    let patient = BanditSettings {
        reward_window_s: 3_600,
        ..bandit_on()
    };
    let app = spawn_app_with(AppOptions {
        store,
        bandit: patient.clone(),
        ..AppOptions::default()
    })
    .await;
    let token = listener_with_taste(&app, "Patient").await;
    let mut lists = Vec::new();
    for _ in 0..5 {
        lists.push(app.recommend(&token, 2).await);
    }
    flush(&app).await;
    let before = report(&app).await;
    let pending: f64 = SOLO_ARMS.iter().map(|a| total(&before, a, "pending")).sum();
    assert_eq!(pending, 5.0, "{before}");
    let db = Arc::clone(&app.db);
    app.handle.stop(true).await;

    let restarted = spawn_app_with(AppOptions {
        store,
        bandit: patient,
        database: Some(Arc::clone(&db)),
        ..AppOptions::default()
    })
    .await;
    for _ in 0..2 {
        feedback(
            &restarted,
            &token,
            &lists[0]["items"][0]["track"],
            lists[0]["request_id"].as_str(),
        )
        .await;
    }
    flush(&restarted).await;
    let after = report(&restarted).await;
    let sum = |r: &Value, field: &str| SOLO_ARMS.iter().map(|a| total(r, a, field)).sum::<f64>();
    assert_eq!(sum(&after, "pulls"), 5.0, "{after}");
    assert_eq!(sum(&after, "rewards"), 1.0, "{after}");
    assert_eq!(sum(&after, "pending"), 4.0, "{after}");
    let rewarded = lists[0]["strategy"].as_str().unwrap();
    assert_eq!(total(&after, rewarded, "rewards"), 1.0);
    restarted.handle.stop(true).await;

    // A server with a short window settles the rest as failures.
    let impatient = spawn_app_with(AppOptions {
        store,
        bandit: bandit_on(),
        database: Some(db),
        ..AppOptions::default()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    flush(&impatient).await;
    let settled = report(&impatient).await;
    assert_eq!(sum(&settled, "pulls"), 5.0, "{settled}");
    assert_eq!(sum(&settled, "rewards"), 1.0, "{settled}");
    assert_eq!(sum(&settled, "failures"), 4.0, "{settled}");
    assert_eq!(sum(&settled, "pending"), 0.0, "{settled}");
}

#[actix_web::test]
async fn pending_lists_survive_a_restart_on_sqlite() {
    pending_lists_survive_a_restart(Store::Sqlite).await;
}

#[actix_web::test]
async fn pending_lists_survive_a_restart_on_postgres() {
    pending_lists_survive_a_restart(Store::Postgres).await;
}

/// The server keeps each context's posterior history; the endpoint checks its query.
#[actix_web::test]
async fn the_server_keeps_the_posterior_history() {
    let app = spawn_app_with(AppOptions {
        bandit: BanditSettings {
            history_interval_s: 1,
            ..bandit_on()
        },
        ..AppOptions::default()
    })
    .await;
    let token = listener_with_taste(&app, "Historian").await;
    for _ in 0..3 {
        app.recommend(&token, 2).await;
    }
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    flush(&app).await;
    let history = app
        .get_json_as(
            "/api/v1/analytics/bandit/history?bandit=solo_strategy&context=few",
            ADMIN_TOKEN,
        )
        .await;
    let points = history["points"].as_array().unwrap();
    assert!(!points.is_empty(), "{history}");
    // Each point has every arm of the context; the newest ones add up to the lists shown.
    let mut newest = std::collections::HashMap::new();
    for p in points {
        newest.insert(p["arm"].as_str().unwrap(), p["pulls"].as_i64().unwrap());
        assert!(p["mean"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(newest.len(), 4, "{history}");
    assert_eq!(newest.values().sum::<i64>(), 3, "{history}");
    for bad in [
        "bandit=nope&context=few",
        "bandit=group_aggregation&context=few",
        "bandit=solo_strategy&context=few&limit=0",
        "bandit=solo_strategy&context=few&extra=1",
        "bandit=solo_strategy",
    ] {
        assert_error(
            app.get_as(
                &format!("/api/v1/analytics/bandit/history?{bad}"),
                ADMIN_TOKEN,
            )
            .await,
            400,
            "invalid_query",
        )
        .await;
    }
    assert_error(
        app.get("/api/v1/analytics/bandit/history?bandit=solo_strategy&context=few")
            .await,
        401,
        "missing_token",
    )
    .await;
}

/// Changing priors is explicit: a server started with other settings keeps the stored priors;
/// `chorus bandit set-priors` replaces them and keeps the data; `chorus bandit reset` forgets
/// the data and keeps the priors.
#[actix_web::test]
async fn priors_change_only_on_command() {
    let app = spawn_app_with(AppOptions {
        bandit: bandit_on(),
        ..AppOptions::default()
    })
    .await;
    let token = listener_with_taste(&app, "Steady").await;
    for _ in 0..4 {
        app.recommend(&token, 2).await;
    }
    flush(&app).await;
    let db = Arc::clone(&app.db);
    app.handle.stop(true).await;
    let warm = BanditSettings {
        prior_weight: 200.0,
        ..bandit_on()
    };
    let restart = |bandit: BanditSettings| {
        let db = Arc::clone(&db);
        async move {
            let app = spawn_app_with(AppOptions {
                bandit,
                database: Some(db),
                ..AppOptions::default()
            })
            .await;
            let r = report(&app).await;
            app.handle.stop(true).await;
            r
        }
    };
    let kept = restart(warm.clone()).await;
    assert!(
        arms(&kept).iter().all(|a| a["prior"]["alpha"] == 1.0),
        "{kept}"
    );

    // The command runs off the test's thread: the servers started here share it, and one may
    // be inside a transaction the command has to wait for.
    let chorus = |args: &'static [&'static str]| {
        let url = db.url.clone();
        async move {
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
                    .current_dir(env!("CARGO_MANIFEST_DIR"))
                    .args(args)
                    .env("DATABASE_URL", &url)
                    .env("CHORUS_LOAD_DEMO_CATALOG", "false")
                    .env_remove("REDIS_URL")
                    .output()
                    .expect("the chorus binary runs")
            })
            .await
            .unwrap();
            assert!(out.status.success(), "{args:?}: {out:?}");
            String::from_utf8_lossy(&out.stderr).to_string()
        }
    };
    let said = chorus(&["bandit", "set-priors"]).await;
    assert!(said.contains("set the priors of 24 bandit arms"), "{said}");
    let replaced = restart(warm.clone()).await;
    // Each context's offline best arm now starts at the prior rate 0.1 with weight 200.
    for context in replaced["contexts"].as_array().unwrap() {
        let best = context["arms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["prior"]["mean"].as_f64().unwrap())
            .fold(0.0, f64::max);
        assert!((best - 21.0 / 202.0).abs() < 1e-9, "{context}");
    }
    let pulls = |r: &Value| SOLO_ARMS.iter().map(|a| total(r, a, "pulls")).sum::<f64>();
    assert_eq!(pulls(&replaced), 4.0, "the data stays: {replaced}");

    let said = chorus(&["bandit", "reset", "--bandit", "solo_strategy"]).await;
    assert!(said.contains("reset solo_strategy"), "{said}");
    let forgotten = restart(warm).await;
    assert_eq!(pulls(&forgotten), 0.0, "{forgotten}");
    assert_eq!(
        arms(&forgotten)
            .iter()
            .map(|a| &a["prior"]["alpha"])
            .collect::<Vec<_>>(),
        arms(&replaced)
            .iter()
            .map(|a| &a["prior"]["alpha"])
            .collect::<Vec<_>>(),
        "the priors stay"
    );
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["bandit", "reset", "--bandit", "nope"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--bandit must be"));
}

/// The recall of a list of track ids against a held-out set.
fn recall(ids: &[String], targets: &std::collections::HashSet<String>) -> f64 {
    ids.iter().filter(|id| targets.contains(*id)).count() as f64 / targets.len().min(20) as f64
}

/// The measure on a fresh server with the shipped defaults: 25 listeners each like the
/// first half of a held-out playlist (10 or more likes) and ask for 8 lists; `popularity` is
/// served about as often as the exploration floor alone gives it (2% of 200), a new listener
/// still gets the popular start, and the lists' recall of the playlists' other halves is the
/// served hybrid's within noise.
#[actix_web::test]
async fn a_fresh_server_serves_mature_listeners_from_the_warm_start() {
    use chorus::{
        domain::UserId,
        eval::groups,
        models::Manifest,
        recommend::{Request, Strategy},
    };
    let app = spawn_app_with(AppOptions {
        load_demo: true,
        seed_fixture: false,
        bandit: BanditSettings::default(),
        ..AppOptions::default()
    })
    .await;
    let catalog = Arc::clone(&app.state.catalog);
    let manifest = Manifest::load(&app.state.settings.models.dir).unwrap();
    assert!(
        manifest.bandit_prior.is_some(),
        "the manifest has the offline priors"
    );
    let members: Vec<groups::Member> = groups::heldout_members(&manifest, &catalog)
        .unwrap()
        .into_iter()
        .filter(|m| m.seeds.len() >= 10)
        .take(25)
        .collect();
    assert_eq!(members.len(), 25);

    let (mut popularity, mut lists) = (0, 0);
    let (mut rest_recall, mut hybrid_recall) = (0.0, 0.0);
    let mut strategies = std::collections::BTreeMap::new();
    for (i, member) in members.iter().enumerate() {
        let (user_id, token) = app.create_user(&format!("Listener {i}")).await;
        for &item in &member.seeds {
            let track = catalog.track(item);
            feedback(&app, &token, &json!({"id": track.id.as_str()}), None).await;
        }
        let targets: std::collections::HashSet<String> = member
            .targets
            .iter()
            .map(|&t| catalog.track(t).id.to_string())
            .collect();
        for _ in 0..8 {
            let list = app.recommend(&token, 20).await;
            let strategy = list["strategy"].as_str().unwrap().to_string();
            popularity += usize::from(strategy == "popularity");
            lists += 1;
            rest_recall += recall(&track_ids(&list), &targets) / 200.0;
            *strategies.entry(strategy).or_insert(0) += 1;
        }
        let hybrid = app
            .state
            .recommender
            .for_user(
                &UserId::parse(&user_id).unwrap(),
                Request {
                    limit: 20,
                    genre: None,
                    exclude: Vec::new(),
                    strategy: Strategy::Hybrid,
                },
            )
            .await
            .unwrap();
        let ids: Vec<String> = hybrid
            .items
            .iter()
            .map(|r| r.track.id.to_string())
            .collect();
        hybrid_recall += recall(&ids, &targets) / 25.0;
    }
    eprintln!(
        "strategies over {lists} lists: {strategies:?}; recall@20 through REST {rest_recall:.4}, \
         served hybrid {hybrid_recall:.4}"
    );
    assert_eq!(lists, 200);
    // The floor alone gives popularity 2% (4 of 200); binomial noise allows up to 10.
    assert!(popularity <= 10, "{strategies:?}");
    assert!(
        rest_recall >= 0.8 * hybrid_recall,
        "REST {rest_recall:.4} vs hybrid {hybrid_recall:.4}: {strategies:?}"
    );

    let (_, newcomer) = app.create_user("Newcomer").await;
    assert_eq!(
        app.recommend(&newcomer, 5).await["strategy"],
        "popular_diverse"
    );
}

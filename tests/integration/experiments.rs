//! A/B experiments end to end: admin-only management with precise errors, stable assignment,
//! exposure logging, and a report whose figures are exactly the stateless endpoint's for the
//! same counts.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::helpers::{
    assert_error, spawn_app, spawn_app_with, AppOptions, Store, TestApp, ADMIN_TOKEN,
};

pub fn experiment(name: &str) -> Value {
    json!({
        "name": name,
        "description": "does popularity beat the hybrid ranker?",
        "variants": [
            {"name": "control", "strategy": "hybrid"},
            {"name": "popular", "strategy": "popularity"},
        ],
        "primary_metric": "like_rate",
        "guardrails": ["skip_rate"],
    })
}

async fn create(app: &TestApp, body: &Value) -> reqwest::Response {
    app.post_json_as("/api/v1/experiments", body, ADMIN_TOKEN)
        .await
}

#[actix_web::test]
async fn experiments_are_managed_by_admins_with_precise_errors() {
    let app = spawn_app().await;
    let body = experiment("first");
    assert_error(
        app.post_json("/api/v1/experiments", &body).await,
        401,
        "missing_token",
    )
    .await;
    let (_, token) = app.create_user("Not an admin").await;
    assert_error(
        app.post_json_as("/api/v1/experiments", &body, &token).await,
        403,
        "admin_required",
    )
    .await;
    assert_error(
        app.get_as("/api/v1/experiments", &token).await,
        403,
        "admin_required",
    )
    .await;

    let mut one_variant = body.clone();
    one_variant["variants"] = json!([{"name": "control", "strategy": "hybrid"}]);
    let mut twins = body.clone();
    twins["variants"][1]["name"] = json!("control");
    let mut half_weights = body.clone();
    half_weights["variants"][0]["weight"] = json!(0.5);
    let mut bad_strategy = body.clone();
    bad_strategy["variants"][1]["strategy"] = json!("astrology");
    let mut bad_metric = body.clone();
    bad_metric["primary_metric"] = json!("revenue");
    let mut extra = body.clone();
    extra["owner"] = json!("me");
    let mut looks_alone = body.clone();
    looks_alone["looks"] = json!(5);
    let mut tiny_plan = body.clone();
    tiny_plan["planned_listeners"] = json!(50);
    for (invalid, status, code) in [
        (one_variant, 422, "too_few_variants"),
        (twins, 422, "duplicate_variant"),
        (half_weights, 422, "invalid_weights"),
        (bad_strategy, 422, "invalid_field"),
        (bad_metric, 422, "invalid_field"),
        (extra, 400, "unknown_field"),
        (looks_alone, 422, "invalid_field"),
        (tiny_plan, 422, "invalid_field"),
    ] {
        assert_error(create(&app, &invalid).await, status, code).await;
    }

    let response = create(&app, &body).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["status"], "running");
    assert_eq!(created["variants"][0]["weight"], 0.5);
    assert_error(
        create(&app, &experiment("second")).await,
        409,
        "experiment_conflict",
    )
    .await;

    let list = app.get_json_as("/api/v1/experiments", ADMIN_TOKEN).await;
    assert_eq!(list["items"][0]["id"], id.as_str());

    let stop = |id: String| {
        let app = &app;
        async move {
            app.client
                .post(app.url(&format!("/api/v1/experiments/{id}/stop")))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
        }
    };
    let stopped: Value = stop(id.clone()).await.json().await.unwrap();
    assert_eq!(stopped["status"], "stopped");
    assert!(stopped["stopped_at"].is_i64());
    assert_error(stop(id.clone()).await, 409, "experiment_conflict").await;
    assert_error(stop("exp_nope".into()).await, 404, "experiment_not_found").await;
    assert_error(
        app.get_as("/api/v1/analytics/ab/exp_nope", ADMIN_TOKEN)
            .await,
        404,
        "experiment_not_found",
    )
    .await;
    // With the first stopped, a new one may start, but not under a used name.
    assert_error(create(&app, &body).await, 409, "experiment_conflict").await;
    assert_eq!(create(&app, &experiment("second")).await.status(), 201);
}

#[actix_web::test]
async fn listeners_split_stably_and_the_report_matches_the_stateless_statistics_on_sqlite() {
    split_and_report(Store::Sqlite).await;
}

#[actix_web::test]
async fn listeners_split_stably_and_the_report_matches_the_stateless_statistics_on_postgres() {
    split_and_report(Store::Postgres).await;
}

async fn split_and_report(store: Store) {
    let app = spawn_app_with(AppOptions {
        store,
        ..AppOptions::default()
    })
    .await;
    let mut body = experiment("popularity vs hybrid");
    // 100 planned listeners looked at 4 times; 40 arrive here, so the first look (25) is
    // reached and the others are not.
    body["planned_listeners"] = json!(100);
    body["looks"] = json!(4);
    let created: Value = create(&app, &body).await.json().await.unwrap();
    assert_eq!(
        created["design"],
        json!({"planned_listeners": 100, "looks": 4})
    );
    let id = created["id"].as_str().unwrap().to_string();
    let empty = app
        .get_json_as(&format!("/api/v1/analytics/ab/{id}"), ADMIN_TOKEN)
        .await;
    assert_eq!(empty["ready"], false);
    assert!(empty["primary"].is_null());

    // 40 listeners: every "popular" listener likes something from a list, every third control
    // listener does; every fourth listener skips one. Feedback without a request id does not
    // count for the experiment.
    let mut listeners: HashMap<String, u64> = HashMap::new();
    let mut likers: HashMap<String, u64> = HashMap::new();
    let mut skippers: HashMap<String, u64> = HashMap::new();
    for i in 0..40 {
        let (_, token) = app.create_user(&format!("L{i}")).await;
        let mut variant = None;
        let mut last = Value::Null;
        for _ in 0..2 {
            let list = app.recommend(&token, 3).await;
            let this = list["variant"].as_str().unwrap().to_string();
            assert!(
                variant.is_none() || variant.as_deref() == Some(this.as_str()),
                "stable"
            );
            variant = Some(this);
            last = list;
        }
        let variant = variant.unwrap();
        *listeners.entry(variant.clone()).or_default() += 1;
        let send = |kind: &str, with_id: bool, item: usize| {
            let mut body = json!({"track_id": last["items"][item]["track"]["id"], "kind": kind});
            if with_id {
                body["request_id"] = last["request_id"].clone();
            }
            let (app, token) = (&app, token.clone());
            async move {
                let response = app.post_json_as("/api/v1/feedback", &body, &token).await;
                assert_eq!(response.status(), 202);
            }
        };
        if variant == "popular" || i % 3 == 0 {
            send("like", true, 0).await;
            send("like", true, 1).await; // a second like is still one converted listener
            *likers.entry(variant.clone()).or_default() += 1;
        } else {
            send("like", false, 0).await;
        }
        if i % 4 == 0 {
            send("skip", true, 2).await;
            *skippers.entry(variant.clone()).or_default() += 1;
        }
    }
    assert_eq!(
        listeners.len(),
        2,
        "both variants got listeners: {listeners:?}"
    );

    let report = app
        .get_json_as(&format!("/api/v1/analytics/ab/{id}"), ADMIN_TOKEN)
        .await;
    assert_eq!(report["ready"], true, "{report}");
    assert_eq!(report["unit"], "listener");
    for v in report["variants"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        assert_eq!(v["listeners"], listeners[name]);
        assert_eq!(v["exposures"], 2 * listeners[name]);
    }
    // The same counts through the stateless endpoint give the very same figures.
    let counts = |converted: &HashMap<String, u64>| {
        let variants: Vec<Value> = ["control", "popular"]
            .iter()
            .map(|name| {
                json!({
                    "name": name,
                    "trials": listeners[*name],
                    "successes": converted.get(*name).copied().unwrap_or(0),
                    "weight": 0.5,
                })
            })
            .collect();
        json!({"control": "control", "variants": variants})
    };
    let stateless: Value = app
        .post_json("/api/v1/stats/proportions", &counts(&likers))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["primary"], stateless);
    let guardrail = &report["guardrails"][0];
    assert_eq!(guardrail["metric"], "skip_rate");
    let stateless_skips: Value = app
        .post_json("/api/v1/stats/proportions", &counts(&skippers))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(guardrail["report"], stateless_skips);
    let sequential = &report["sequential"][0];
    assert_eq!(sequential["name"], "popular");
    let p = sequential["p_value"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p));
    assert_eq!(sequential["mixture_sd"], 0.01);
    assert!(report["srm_warning"].is_boolean());

    let plan = &report["group_sequential"];
    let looks = plan["looks"].as_array().unwrap();
    assert_eq!(looks.len(), 4);
    let bounds: Vec<f64> = looks
        .iter()
        .map(|l| l["boundary"].as_f64().unwrap())
        .collect();
    assert!(
        bounds.windows(2).all(|w| w[0] > w[1]) && bounds[3] > 1.96,
        "{bounds:?}"
    );
    assert_eq!(looks[0]["listeners_needed"], 25);
    assert!(looks[0]["reached_at"].is_i64());
    assert_eq!(looks[0]["z"][0]["name"], "popular");
    assert!(looks[1]["reached_at"].is_null() && looks[1]["z"].as_array().unwrap().is_empty());
    let decision = &plan["decisions"][0];
    assert_eq!(decision["name"], "popular");
    let z = looks[0]["z"][0]["z"].as_f64().unwrap();
    let expected = if z.abs() >= bounds[0] {
        "significant"
    } else {
        "continue"
    };
    assert_eq!(decision["outcome"], expected, "{plan}");
}

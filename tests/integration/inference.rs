//! The InferenceActor and the model-backed endpoints: features identical to the training
//! pipeline's, batched scoring identical to unbatched, overload refused, similar and classify,
//! and a server that will not start on damaged artifacts.

use std::{path::Path, sync::Arc};

use chorus::{
    config::{InferenceSettings, Settings},
    inference::{
        candidates,
        engine::{RankBy, RankJob, Ranked},
        features::{candidate_features, Candidate, Listener, FEATURES, ITEM_ITEM_SCORE},
        group::{GroupPart, GroupRankJob, GroupRanked, Utility},
        retrieval::{top_k, Metric, RetrievalQuery},
    },
    startup::Application,
};
use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{
    assert_error, spawn_app, spawn_app_with, spawn_demo_app, AppOptions, TestApp,
};

fn sample() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/sample.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[actix_web::test]
async fn served_features_match_the_training_pipeline() {
    let app = spawn_demo_app().await;
    let space = app.state.inference.space();
    let catalog = &app.state.catalog;
    let index = |id: &Value| {
        catalog
            .index_of(id.as_str().unwrap())
            .expect("sample track in the demo catalog")
    };
    for playlist in sample()["playlists"].as_array().unwrap() {
        let seeds: Vec<u32> = playlist["seed_track_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(index)
            .collect();
        let listener = Listener::from_history(space, &seeds, &vec![1.0; seeds.len()]);
        let candidates: Vec<u32> = playlist["candidate_track_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(index)
            .collect();
        let item_item = space.neighbours().scores(&listener.seeds);
        let with_scores: Vec<Candidate> = candidates
            .iter()
            .map(|&c| Candidate {
                item: c,
                retrieval: space
                    .vector(c)
                    .dot(&ndarray::ArrayView1::from(&listener.vector[..])),
                item_item: candidates::item_item_score(&item_item, c),
            })
            .collect();
        let ours = candidate_features(space, &listener, &with_scores);
        for (row, expected) in ours.iter().zip(playlist["features"].as_array().unwrap()) {
            // Column 0 is the NCF score, filled in by the model (checked in models.rs).
            for f in 1..FEATURES {
                let e = expected[f].as_f64().unwrap() as f32;
                assert!(
                    (row[f] - e).abs() < 2e-3,
                    "feature {f}: served {} vs trained {e}",
                    row[f]
                );
            }
        }
        // The candidate list itself: the same two sources, merged the same way.
        let mut exclude = seeds.clone();
        exclude.sort_unstable();
        exclude.dedup();
        let total = playlist["candidates"].as_u64().unwrap() as usize;
        let hits = top_k(
            space.items(),
            Metric::Dot,
            &[RetrievalQuery {
                vector: listener.vector.clone(),
                exclude: exclude.clone(),
                k: total,
            }],
        );
        let merged = candidates::merge(
            space,
            &listener.vector,
            &item_item,
            &exclude,
            &hits[0],
            total,
        );
        assert_eq!(merged.len(), total);
        let served: std::collections::HashSet<u32> = merged
            .iter()
            .take(candidates.len())
            .map(|c| c.item)
            .collect();
        let shared = candidates.iter().filter(|c| served.contains(c)).count();
        assert!(
            shared * 100 >= candidates.len() * 96,
            "{shared} of the first {} candidates agree with training",
            candidates.len()
        );
    }
}

#[actix_web::test]
async fn liked_tracks_bring_their_item_item_neighbours_alone_and_in_groups() {
    let app = spawn_demo_app().await;
    let space = app.state.inference.space();
    let neighbours = space.neighbours();
    // Two tracks with many neighbours and none in common.
    let mut rich: Vec<u32> = (0..space.len() as u32)
        .filter(|&i| neighbours.row(i).count() >= 20)
        .collect();
    rich.sort_by_key(|&i| std::cmp::Reverse(neighbours.row(i).count()));
    let first = rich[0];
    let of = |h: u32| {
        neighbours
            .row(h)
            .collect::<std::collections::HashMap<u32, f32>>()
    };
    let second = *rich[1..]
        .iter()
        .find(|&&h| {
            h != first
                && of(h)
                    .keys()
                    .all(|j| !of(first).contains_key(j) && *j != first)
        })
        .expect("two tracks from different playlists");

    // Alone: every neighbour is a candidate (at most half of 200), its weight the feature.
    let listener = Arc::new(Listener::from_history(space, &[first], &[1.0]));
    let ranked = app
        .state
        .inference
        .rank(RankJob {
            listener,
            exclude: vec![first],
            candidates: 200,
            top: 200,
            order: RankBy::Hybrid,
            focus: None,
        })
        .await
        .unwrap();
    assert_eq!(ranked.considered, 200);
    assert_eq!(ranked.items.len(), 200);
    for (j, w) in of(first) {
        let item = ranked.items.iter().find(|i| i.item == j);
        let item = item.unwrap_or_else(|| panic!("neighbour {j} is a candidate"));
        assert!((item.features[ITEM_ITEM_SCORE] - w).abs() < 1e-6);
    }
    let from_item_item = ranked
        .items
        .iter()
        .filter(|i| i.features[ITEM_ITEM_SCORE] > 0.0)
        .count();
    assert_eq!(from_item_item, of(first).len().min(100));

    // A group of two: both members' neighbours are candidates, each scored by its own member
    // (the reported feature is the members' mean).
    let member = |h: u32| Arc::new(Listener::from_history(space, &[h], &[1.0]));
    let mut exclude = vec![first, second];
    exclude.sort();
    let group = app
        .state
        .inference
        .rank_group(GroupRankJob {
            members: vec![member(first), member(second)],
            exclude,
            candidates: 100,
            strategy: chorus::aggregate::Strategy::Average,
            top: 100,
            utility: Default::default(),
            served: Vec::new(),
            own_candidates: true,
            kept: None,
        })
        .await
        .unwrap();
    assert_eq!(group.considered, 100);
    for (h, other) in [(first, second), (second, first)] {
        let best = of(h)
            .into_iter()
            .filter(|(j, _)| *j != other)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        let item = group
            .items
            .iter()
            .find(|i| i.item == best.0)
            .expect("member's best neighbour");
        assert!((item.features[ITEM_ITEM_SCORE] - best.1 / 2.0).abs() < 1e-6);
    }
}

/// Five members, each liking twelve tracks of their own slice of the catalog (long enough
/// histories that one more like moves a taste a little, as in a room that has been going).
fn room_members(app: &TestApp, extra: &[(usize, u32)]) -> Vec<Arc<Listener>> {
    let space = app.state.inference.space();
    (0..5)
        .map(|i| {
            let mut history: Vec<u32> = (0..12)
                .map(|k| ((i * 5_003 + k * 13) % space.len()) as u32)
                .collect();
            history.extend(extra.iter().filter(|(m, _)| *m == i).map(|&(_, t)| t));
            Arc::new(Listener::from_history(
                space,
                &history,
                &vec![1.0; history.len()],
            ))
        })
        .collect()
}

fn room_job(app: &TestApp, members: Vec<Arc<Listener>>, playlist: &[u32]) -> GroupRankJob {
    let mut exclude: Vec<u32> = members
        .iter()
        .flat_map(|m| m.history.clone())
        .chain(playlist.iter().copied())
        .collect();
    exclude.sort_unstable();
    exclude.dedup();
    GroupRankJob {
        served: (0..members.len())
            .map(|m| [0.4, 0.1, 0.0, 0.2, 0.3][m % 5])
            .collect(),
        members,
        exclude,
        candidates: 100,
        strategy: chorus::aggregate::Strategy::Fair,
        top: 10,
        utility: Utility::Platt(app.state.inference.calibration()),
        own_candidates: true,
        kept: None,
    }
}

/// The five members and the room's first ranking (which builds its pool).
async fn first_ranking(app: &TestApp) -> (Vec<Arc<Listener>>, GroupRanked) {
    let members = room_members(app, &[]);
    let first = app
        .state
        .inference
        .rank_group(room_job(app, members.clone(), &[]))
        .await
        .unwrap();
    (members, first)
}

fn assert_same_ranking(a: &GroupRanked, b: &GroupRanked) {
    let items = |r: &GroupRanked| r.items.iter().map(|i| i.item).collect::<Vec<_>>();
    assert_eq!(items(a), items(b));
    assert_eq!(a.considered, b.considered);
    assert_eq!(a.kept.pool(), b.kept.pool());
    // Equal up to the last bits the batch shape may move (see the batched test above).
    let close = |x: f32, y: f32| (x - y).abs() < 1e-5;
    for (x, y) in a.items.iter().zip(&b.items) {
        assert!(x
            .utilities
            .iter()
            .zip(&y.utilities)
            .all(|(u, v)| close(*u, *v)));
        for f in 0..FEATURES {
            assert!(close(x.features[f], y.features[f]), "feature {f}");
            assert!(
                close(x.contributions[f], y.contributions[f]),
                "contribution {f}"
            );
        }
    }
    for (x, y) in a.satisfaction.iter().zip(&b.satisfaction) {
        assert!((x - y).abs() < 1e-5);
    }
    assert!((a.harmony.least - b.harmony.least).abs() < 1e-5);
    assert!((a.harmony.average - b.harmony.average).abs() < 1e-5);
}

/// A room's next ranking keeps what did not change: the member whose taste changed is scored
/// over the pool, the others only over the candidates new to them, and the result is exactly
/// what scoring every member over that pool gives.
#[actix_web::test]
async fn rescoring_the_member_who_changed_gives_the_full_rankings_result() {
    let app = spawn_demo_app().await;
    let inference = &app.state.inference;
    let (members, first) = first_ranking(&app).await;
    assert_eq!(first.pool, GroupPart::New);
    assert_eq!(first.considered, 100);
    assert_eq!(first.rows_scored, 5 * 100);

    // Member 2 adds the room's top pick: it joins their likes and the playlist. The other
    // members' tastes are the very values the first ranking saw.
    let added = first.items[0].item;
    let mut now = members.clone();
    now[2] = Arc::clone(&room_members(&app, &[(2, added)])[2]);
    let job = |kept| GroupRankJob {
        kept: Some(kept),
        ..room_job(&app, now.clone(), &[added])
    };
    let incremental = inference
        .rank_group(job(Arc::clone(&first.kept)))
        .await
        .unwrap();
    let full = inference
        .rank_group(job(Arc::new(first.kept.unscored())))
        .await
        .unwrap();
    assert_eq!(
        (incremental.pool, full.pool),
        (GroupPart::Kept, GroupPart::Kept)
    );
    let pool = incremental.considered;
    assert_eq!(full.rows_scored, 5 * pool);
    // Member 2 over the whole pool, the others over what is new to them: far less.
    assert!(
        incremental.rows_scored >= pool && incremental.rows_scored < 2 * pool,
        "{} rows scored over a pool of {pool}",
        incremental.rows_scored
    );
    assert!(!incremental.kept.pool().contains(&added));
    let shared = incremental
        .kept
        .pool()
        .iter()
        .filter(|t| first.kept.pool().contains(t))
        .count();
    assert!(shared >= 80, "{shared} of the first pool kept");
    assert_same_ranking(&incremental, &full);
    assert!(incremental.items.iter().all(|i| i.item != added));

    // And the next change again scores one member, over what this ranking kept.
    let mut later = now.clone();
    later[4] = Arc::clone(&room_members(&app, &[(4, added)])[4]);
    let next = inference
        .rank_group(GroupRankJob {
            kept: Some(Arc::clone(&incremental.kept)),
            ..room_job(&app, later, &[added])
        })
        .await
        .unwrap();
    assert_eq!(next.pool, GroupPart::Kept);
    assert!(next.rows_scored < 2 * next.considered);
}

/// What a room keeps: nothing is scored again when nothing changed; the group's candidates are
/// retrieved again once the playlist used them up; members who come are scored, those who stay
/// keep theirs; everything is new when the settings change.
#[actix_web::test]
async fn a_rooms_pool_is_rebuilt_when_it_no_longer_fits() {
    let app = spawn_demo_app().await;
    let inference = &app.state.inference;
    let (members, first) = first_ranking(&app).await;
    let rank = |members: Vec<Arc<Listener>>, playlist: Vec<u32>| {
        let job = GroupRankJob {
            kept: Some(Arc::clone(&first.kept)),
            ..room_job(&app, members, &playlist)
        };
        async move { inference.rank_group(job).await.unwrap() }
    };
    // The same pool with every member scored over it: what `rank` must equal.
    let rank_all = |members: Vec<Arc<Listener>>| {
        let job = GroupRankJob {
            kept: Some(Arc::new(first.kept.unscored())),
            ..room_job(&app, members, &[])
        };
        async move { inference.rank_group(job).await.unwrap() }
    };
    // Unchanged: nothing is scored again but the ranker over the kept rows.
    let same = rank(members.clone(), Vec::new()).await;
    assert_eq!(same.pool, GroupPart::Kept);
    assert_eq!(same.rows_scored, 0);
    assert_eq!(same.own_scans, 0);
    assert_eq!(
        same.items.iter().map(|i| i.item).collect::<Vec<_>>(),
        first.items.iter().map(|i| i.item).collect::<Vec<_>>()
    );

    // Member 0 now likes one track far from their slice: they are scored over the whole pool,
    // whose own share for them is new.
    let mut moved = members.clone();
    moved[0] = Arc::new(Listener::from_history(
        app.state.inference.space(),
        &[first.items[9].item],
        &[1.0],
    ));
    let after_move = rank(moved.clone(), Vec::new()).await;
    assert!(after_move.rows_scored >= after_move.considered);
    assert_ne!(after_move.kept.pool(), first.kept.pool());
    // One liked track has too few item-item neighbours for a share: the catalog is scanned
    // for that taste once, and not again while it lasts.
    assert_eq!(after_move.own_scans, 1);
    let again = inference
        .rank_group(GroupRankJob {
            kept: None,
            ..room_job(&app, moved, &[])
        })
        .await
        .unwrap();
    assert_eq!(again.own_scans, 0);

    // A few of the pool's tracks played: the rest is kept.
    let playlist: Vec<u32> = first.kept.pool()[..5].to_vec();
    let kept = rank(members.clone(), playlist.clone()).await;
    assert_eq!(kept.pool, GroupPart::Kept);
    assert!(kept.kept.pool().iter().all(|t| !playlist.contains(t)));
    // All of them: the group's candidates are retrieved again, a full pool without them.
    let playlist: Vec<u32> = first.kept.pool().to_vec();
    let used = rank(members.clone(), playlist.clone()).await;
    assert_eq!(used.pool, GroupPart::UsedUp);
    assert_eq!(used.considered, 100);
    assert!(used.kept.pool().iter().all(|t| !playlist.contains(t)));

    // A sixth member joins: they are scored over the whole pool, the others keep theirs and
    // are scored only over what is new to them; the result is a full scoring's.
    let mut joined = members.clone();
    joined.push(Arc::clone(&room_members(&app, &[(1, 7)])[1]));
    let grown = rank(joined.clone(), Vec::new()).await;
    let grown_full = rank_all(joined).await;
    assert_eq!(grown_full.rows_scored, 6 * grown_full.considered);
    assert!(
        grown.rows_scored >= grown.considered && grown.rows_scored < 2 * grown.considered,
        "{} rows scored over a pool of {}",
        grown.rows_scored,
        grown.considered
    );
    assert_same_ranking(&grown, &grown_full);
    // One leaves: whoever stays keeps their scores, whatever their place in the list.
    let mut shrunk_members = members[1..].to_vec();
    shrunk_members.reverse();
    let shrunk = rank(shrunk_members.clone(), Vec::new()).await;
    let shrunk_full = rank_all(shrunk_members).await;
    assert!(
        shrunk.rows_scored < shrunk.considered,
        "{}",
        shrunk.rows_scored
    );
    assert_eq!(shrunk_full.rows_scored, 4 * shrunk_full.considered);
    assert_same_ranking(&shrunk, &shrunk_full);

    // Other settings: nothing is built on.
    let wider = inference
        .rank_group(GroupRankJob {
            kept: Some(Arc::clone(&first.kept)),
            candidates: 150,
            ..room_job(&app, members.clone(), &[])
        })
        .await
        .unwrap();
    assert_eq!(wider.pool, GroupPart::New);
    assert_eq!(wider.rows_scored, 5 * wider.considered);
}

/// Listeners built from fixture tracks, each liking a different slice of the catalog.
fn jobs(app: &TestApp, n: usize) -> Vec<RankJob> {
    let space = app.state.inference.space();
    (0..n)
        .map(|i| {
            let history: Vec<u32> = (0..4)
                .map(|k| ((i * 37 + k * 11) % space.len()) as u32)
                .collect();
            let mut exclude = history.clone();
            exclude.sort();
            RankJob {
                listener: Arc::new(Listener::from_history(
                    space,
                    &history,
                    &[1.0, 1.0, 0.5, 2.0],
                )),
                exclude,
                candidates: 100 + i * 10,
                top: 10,
                order: RankBy::Hybrid,
                focus: None,
            }
        })
        .collect()
}

fn batch_sizes(app: &TestApp) -> (f64, f64) {
    let h = app
        .state
        .metrics
        .inference_batch_size
        .with_label_values(&["rank"]);
    (h.get_sample_sum(), h.get_sample_count() as f64)
}

#[actix_web::test]
async fn batched_and_unbatched_scoring_give_identical_results() {
    let batched = spawn_app_with(AppOptions {
        inference: InferenceSettings {
            max_batch: 64,
            max_delay_us: 50_000,
            ..InferenceSettings::default()
        },
        ..AppOptions::default()
    })
    .await;
    let unbatched = spawn_app_with(AppOptions {
        inference: InferenceSettings {
            max_batch: 1,
            ..InferenceSettings::default()
        },
        ..AppOptions::default()
    })
    .await;
    let work = jobs(&batched, 12);
    let together: Vec<Ranked> = join_all(
        work.iter()
            .cloned()
            .map(|j| batched.state.inference.rank(j)),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    let (sum, count) = batch_sizes(&batched);
    assert!(
        sum / count > 1.0,
        "requests were batched (mean batch {})",
        sum / count
    );
    let mut alone = Vec::new();
    for job in work {
        alone.push(unbatched.state.inference.rank(job).await.unwrap());
    }
    let (sum, count) = batch_sizes(&unbatched);
    assert_eq!(sum, count, "max_batch 1 runs every request alone");
    for (a, b) in together.iter().zip(&alone) {
        assert_eq!(a.considered, b.considered);
        assert_eq!(
            a.items.iter().map(|i| i.item).collect::<Vec<_>>(),
            b.items.iter().map(|i| i.item).collect::<Vec<_>>()
        );
        for (x, y) in a.items.iter().zip(&b.items) {
            assert!(
                (x.score - y.score).abs() < 1e-5,
                "{} vs {}",
                x.score,
                y.score
            );
            for f in 0..FEATURES {
                assert!((x.contributions[f] - y.contributions[f]).abs() < 1e-5);
                assert!((x.features[f] - y.features[f]).abs() < 1e-5);
            }
        }
    }
}

#[actix_web::test]
async fn a_full_queue_answers_overloaded_with_retry_after() {
    let app = spawn_app_with(AppOptions {
        inference: InferenceSettings {
            max_batch: 1,
            queue_capacity: 2,
            ..InferenceSettings::default()
        },
        ..AppOptions::default()
    })
    .await;
    let (_, token) = app.create_user("Eager").await;
    let liked = app.get_json("/api/v1/tracks?limit=3").await;
    for t in liked["items"].as_array().unwrap() {
        let r = app
            .post_json_as(
                "/api/v1/feedback",
                &json!({ "track_id": t["id"], "kind": "like" }),
                &token,
            )
            .await;
        assert_eq!(r.status(), 202);
    }
    let body = json!({ "limit": 10 });
    let responses =
        join_all((0..64).map(|_| app.post_json_as("/api/v1/recommendations", &body, &token))).await;
    let mut ok = 0;
    let mut refused = 0;
    for response in responses {
        match response.status().as_u16() {
            200 => ok += 1,
            503 => {
                assert_eq!(response.headers()["retry-after"], "1");
                assert_error(response, 503, "overloaded").await;
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok >= 2, "the queue's capacity was served ({ok})");
    assert!(refused > 0, "a flood beyond the queue is refused");
    assert_eq!(app.state.metrics.inference_rejected.get(), refused);
    // The queue drains and serves again.
    let again = app
        .post_json_as("/api/v1/recommendations", &json!({ "limit": 10 }), &token)
        .await;
    assert_eq!(again.status(), 200);
}

#[actix_web::test]
async fn similar_tracks_are_ranked_by_cosine_and_exclude_the_track() {
    let app = spawn_app().await;
    let top = app.get_json("/api/v1/tracks?limit=1").await;
    let id = top["items"][0]["id"].as_str().unwrap().to_string();
    let body = app
        .get_json(&format!("/api/v1/tracks/{id}/similar?limit=7"))
        .await;
    assert_eq!(body["track_id"], id.as_str());
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 7);
    let sims: Vec<f64> = items
        .iter()
        .map(|i| i["similarity"].as_f64().unwrap())
        .collect();
    assert!(sims.windows(2).all(|w| w[0] >= w[1]));
    assert!(sims.iter().all(|s| (-1.001..=1.001).contains(s)));
    assert!(items.iter().all(|i| i["track"]["id"] != id.as_str()));
    assert_error(
        app.get("/api/v1/tracks/nope123/similar").await,
        404,
        "track_not_found",
    )
    .await;
    assert_error(
        app.get(&format!("/api/v1/tracks/{id}/similar?limit=0"))
            .await,
        400,
        "invalid_query",
    )
    .await;
    assert_error(
        app.get(&format!("/api/v1/tracks/{id}/similar?k=3")).await,
        400,
        "invalid_query",
    )
    .await;
}

#[actix_web::test]
async fn classify_names_genres_and_mood_from_a_track_or_features() {
    let app = spawn_app().await;
    let rock = app.get_json("/api/v1/tracks?genre=rock&limit=1").await;
    let track = &rock["items"][0];
    let response = app
        .post_json("/api/v1/classify", &json!({ "track_id": track["id"] }))
        .await;
    assert_eq!(response.status(), 200);
    let by_id: Value = response.json().await.unwrap();
    let genres = by_id["genres"].as_array().unwrap();
    assert_eq!(genres.len(), 6);
    let total: f64 = genres
        .iter()
        .map(|g| g["confidence"].as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-3);
    let confidences: Vec<f64> = genres
        .iter()
        .map(|g| g["confidence"].as_f64().unwrap())
        .collect();
    assert!(confidences.windows(2).all(|w| w[0] >= w[1]));
    let moods = by_id["mood"]["probabilities"].as_object().unwrap();
    assert_eq!(moods.len(), 5);
    assert!(moods.contains_key(by_id["mood"]["primary"].as_str().unwrap()));

    // The same track's features, sent raw with its metadata, classify identically.
    let mut features = track["audio_features"].clone();
    features["release_year"] = track["release_year"].clone();
    features["popularity"] = track["popularity"].clone();
    features["duration_ms"] = track["duration_ms"].clone();
    let by_features: Value = app
        .post_json("/api/v1/classify", &json!({ "features": features }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_features["genres"], by_id["genres"]);
    assert_eq!(by_features["mood"], by_id["mood"]);

    assert_error(
        app.post_json("/api/v1/classify", &json!({})).await,
        422,
        "invalid_field",
    )
    .await;
    assert_error(
        app.post_json(
            "/api/v1/classify",
            &json!({ "track_id": track["id"], "features": features }),
        )
        .await,
        422,
        "invalid_field",
    )
    .await;
    let mut out_of_range = features.clone();
    out_of_range["energy"] = json!(7.5);
    let body = assert_error(
        app.post_json("/api/v1/classify", &json!({ "features": out_of_range }))
            .await,
        422,
        "invalid_field",
    )
    .await;
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("energy"));
    let mut missing = features.clone();
    missing.as_object_mut().unwrap().remove("tempo");
    assert_error(
        app.post_json("/api/v1/classify", &json!({ "features": missing }))
            .await,
        422,
        "missing_field",
    )
    .await;
    assert_error(
        app.post_json("/api/v1/classify", &json!({ "track_id": "nope123" }))
            .await,
        404,
        "track_not_found",
    )
    .await;
}

#[actix_web::test]
async fn the_server_refuses_damaged_model_artifacts() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
        }
    }
    let db = tempfile::tempdir().unwrap();
    let settings = |models: &Path| {
        let mut s = Settings::default();
        s.server.bind = "127.0.0.1:0".parse().unwrap();
        s.database.url =
            chorus::config::Secret::new(format!("sqlite://{}", db.path().join("c.db").display()));
        s.catalog.load_demo = false;
        s.models.dir = models.to_path_buf();
        s
    };
    let mut bytes = std::fs::read(copy.path().join("hybrid.onnx")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(copy.path().join("hybrid.onnx"), &bytes).unwrap();
    let err = Application::build(settings(copy.path()))
        .await
        .err()
        .expect("refused");
    let message = format!("{err:#}");
    assert!(
        message.contains("hybrid.onnx") && message.contains("sha256"),
        "{message}"
    );

    std::fs::copy(source.join("hybrid.onnx"), copy.path().join("hybrid.onnx")).unwrap();
    std::fs::remove_file(copy.path().join("ncf.onnx")).unwrap();
    let err = Application::build(settings(copy.path()))
        .await
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("ncf.onnx"), "{err:#}");
}

/// Regression: with two inference threads, one could hold a batch while waiting for the queue
/// lock held by the other (blocked on an empty queue), so a lone request never got an answer.
#[actix_web::test]
async fn two_inference_threads_answer_lone_requests() {
    let app = spawn_app_with(AppOptions {
        inference: InferenceSettings {
            threads: 2,
            ..InferenceSettings::default()
        },
        ..AppOptions::default()
    })
    .await;
    for job in jobs(&app, 6) {
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            app.state.inference.rank(job),
        )
        .await
        .expect("answered within 10 s")
        .unwrap();
        assert_eq!(answer.items.len(), 10);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn execution_provider_cuda_is_refused_without_support_and_auto_falls_back() {
    use chorus::config::ExecutionProvider;
    let db = tempfile::tempdir().unwrap();
    let settings = |provider| {
        let mut s = Settings::default();
        s.server.bind = "127.0.0.1:0".parse().unwrap();
        s.database.url =
            chorus::config::Secret::new(format!("sqlite://{}", db.path().join("c.db").display()));
        s.catalog.load_demo = false;
        s.models.execution_provider = provider;
        s
    };
    let auto = Application::build(settings(ExecutionProvider::Auto))
        .await
        .expect("auto always starts");
    let provider = auto.state().inference.provider();
    if chorus::models::CUDA_COMPILED {
        assert!(["cpu", "cuda"].contains(&provider));
    } else {
        assert_eq!(provider, "cpu", "auto falls back to the CPU");
    }
    if !chorus::models::CUDA_COMPILED {
        let err = Application::build(settings(ExecutionProvider::Cuda))
            .await
            .err()
            .expect("cuda without CUDA support is refused");
        assert!(format!("{err:#}").contains("CUDA"), "{err:#}");
    }
}

/// A track the models never saw (imported after training) gets its vector from `content.onnx`
/// and takes part in similar-tracks and recommendations like any other.
#[actix_web::test]
async fn a_track_unknown_to_the_models_gets_a_content_vector() {
    let app = spawn_app().await;
    let template = app.get_json("/api/v1/tracks?genre=rock&limit=1").await;
    let mut track = app
        .state
        .catalog
        .get(template["items"][0]["id"].as_str().unwrap())
        .unwrap()
        .clone();
    track.id = chorus::domain::TrackId::parse("coldstart0000000000001").unwrap();
    track.title = "Brand New Song".into();
    chorus::storage::tracks::insert(&app.state.db, &[track], "test", |_| {})
        .await
        .unwrap();
    app.handle.stop(true).await;
    let restarted = spawn_app_with(AppOptions {
        database: Some(Arc::clone(&app.db)),
        ..AppOptions::default()
    })
    .await;
    let index = restarted
        .state
        .catalog
        .index_of("coldstart0000000000001")
        .expect("imported");
    assert!(restarted.state.inference.space().from_content(index));
    assert!(!restarted.state.inference.space().from_content(0));
    let similar = restarted
        .get_json("/api/v1/tracks/coldstart0000000000001/similar?limit=5")
        .await;
    assert_eq!(similar["items"].as_array().unwrap().len(), 5);
    // The endpoint ranks by the content vector: the same five a brute-force cosine scan finds.
    let space = restarted.state.inference.space();
    let mut by_cosine: Vec<(u32, f32)> = (0..space.len() as u32)
        .filter(|&t| t != index)
        .map(|t| (t, space.cosine(index, t)))
        .collect();
    by_cosine.sort_by(|a, b| b.1.total_cmp(&a.1));
    let expected: Vec<&str> = by_cosine[..5]
        .iter()
        .map(|&(t, _)| restarted.state.catalog.track(t).id.as_str())
        .collect();
    let got: Vec<&str> = similar["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["track"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, expected);
}

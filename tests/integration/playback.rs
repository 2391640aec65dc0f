//! Rooms that play, without Spotify: one now-playing track for every socket, the listen-along
//! clock, skip votes on the track playing, a position that survives reconnects and restarts,
//! and auto-fill from the room's own recommendations.

use std::{sync::Arc, time::Duration};

use serde_json::{json, Value};

use crate::{
    groups::{connect, group_of, quick_refresh, track_id, Member},
    helpers::{spawn_app_with, AppOptions, Store, TestApp},
    sockets::Client,
};

/// The event frames of `kind` in `frames`.
fn of_kind<'a>(frames: &'a [Value], kind: &str) -> Vec<&'a Value> {
    frames
        .iter()
        .filter(|f| f["type"] == "event" && f["event"]["kind"] == kind)
        .collect()
}

/// The next `event` frame of this kind, skipping everything else.
async fn next_event(client: &mut Client, kind: &str) -> Value {
    loop {
        let frame = client.next_of("event").await;
        if frame["event"]["kind"] == kind {
            return frame["event"].clone();
        }
    }
}

async fn view(app: &TestApp, group_id: &str, member: &Member) -> Value {
    app.get_json_as(&format!("/api/v1/groups/{group_id}"), &member.token)
        .await
}

async fn add(client: &mut Client, app: &TestApp, i: u32) {
    let id = format!("add{i}");
    let (ack, _) = client
        .op(
            json!({"type": "add_track", "track_id": track_id(app, i)}),
            &id,
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
}

async fn listen_along_survives_reconnects_and_restarts(store: Store) {
    let app = spawn_app_with(AppOptions {
        store,
        ..AppOptions::default()
    })
    .await;
    let (group_id, members) = group_of(&app, &["Host", "Guest"], json!({})).await;
    let mut host = connect(&app, &members[0]).await;
    let mut guest = connect(&app, &members[1]).await;
    host.join(&group_id, None).await;
    guest.join(&group_id, None).await;
    for i in 0..3 {
        add(&mut host, &app, i).await;
    }
    let (ack, frames) = host.op(json!({"type": "play"}), "play").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let started = of_kind(&frames, "playback_advanced")[0]["event"]["payload"].clone();
    assert_eq!(started["reason"], "started");
    // The guest sees the same track start.
    assert_eq!(
        next_event(&mut guest, "playback_advanced").await["payload"],
        started
    );
    let first = started["started"].as_str().unwrap().to_string();

    // Near the end, the listen-along clock moves everyone on to the next track.
    let playing = view(&app, &group_id, &members[1]).await;
    let duration = playing["now_playing"]["entry"]["track"]["duration_ms"]
        .as_u64()
        .unwrap();
    let (ack, _) = host
        .op(
            json!({"type": "seek", "position_ms": duration - 600}),
            "seek",
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let ended = next_event(&mut guest, "playback_advanced").await;
    assert_eq!(ended["payload"]["reason"], "ended");
    assert_eq!(ended["payload"]["finished"], first.as_str());
    assert!(
        ended["actor"].is_null(),
        "the server moved on, not a member"
    );
    assert_eq!(
        next_event(&mut host, "playback_advanced").await["payload"],
        ended["payload"]
    );
    let second = ended["payload"]["started"].as_str().unwrap().to_string();

    // A socket joining now gets the track playing and its position in the snapshot.
    let mut late = connect(&app, &members[1]).await;
    let frames = late.join(&group_id, None).await;
    let snapshot = frames.iter().find(|f| f["type"] == "snapshot").unwrap();
    let now_playing = &snapshot["group"]["now_playing"];
    assert_eq!(now_playing["entry"]["entry_id"], second.as_str());
    assert_eq!(now_playing["playing"], true);
    assert!(now_playing["position_ms"].as_u64().unwrap() < 5_000);
    assert_eq!(snapshot["group"]["history"][0]["entry_id"], first.as_str());
    assert_eq!(snapshot["group"]["history"][0]["reason"], "ended");
    assert_eq!(snapshot["group"]["up_next"].as_array().unwrap().len(), 1);

    // Paused: the position stands still (two reads apart in time agree).
    host.op(json!({"type": "pause"}), "pause").await;
    let paused = view(&app, &group_id, &members[0]).await["now_playing"].clone();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = view(&app, &group_id, &members[0]).await["now_playing"].clone();
    assert_eq!(paused["playing"], false);
    assert_eq!(paused["position_ms"], still["position_ms"]);
    host.op(json!({"type": "play"}), "resume").await;
    let before = view(&app, &group_id, &members[0]).await;

    // Restart: the same track plays on from where the clock says.
    let db = Arc::clone(&app.db);
    app.handle.stop(true).await;
    drop((host, guest, late));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let restarted = spawn_app_with(AppOptions {
        store,
        database: Some(db),
        ..AppOptions::default()
    })
    .await;
    let after = view(&restarted, &group_id, &members[1]).await;
    assert_eq!(after["now_playing"]["entry"]["entry_id"], second.as_str());
    assert_eq!(after["now_playing"]["playing"], true);
    let moved = after["now_playing"]["position_ms"].as_u64().unwrap()
        - before["now_playing"]["position_ms"].as_u64().unwrap();
    assert!(
        (400..10_000).contains(&moved),
        "the position moved on by the time away: {moved} ms"
    );
    assert_eq!(after["history"], before["history"]);

    // And the clock still runs after the restart.
    let mut host = connect(&restarted, &members[0]).await;
    host.join(&group_id, Some(after["seq"].as_i64().unwrap()))
        .await;
    let duration = after["now_playing"]["entry"]["track"]["duration_ms"]
        .as_u64()
        .unwrap();
    host.op(
        json!({"type": "seek", "position_ms": duration - 300}),
        "seek2",
    )
    .await;
    let ended = next_event(&mut host, "playback_advanced").await;
    assert_eq!(ended["payload"]["finished"], second.as_str());
    assert_eq!(ended["payload"]["reason"], "ended");
}

#[actix_web::test]
async fn listen_along_on_sqlite() {
    listen_along_survives_reconnects_and_restarts(Store::Sqlite).await;
}

#[actix_web::test]
async fn listen_along_on_postgres() {
    listen_along_survives_reconnects_and_restarts(Store::Postgres).await;
}

#[actix_web::test]
async fn skip_votes_skip_the_track_playing_and_guests_cannot_drive() {
    let app = spawn_app_with(AppOptions::default()).await;
    let (group_id, members) = group_of(&app, &["Host", "Guest"], json!({})).await;
    let mut host = connect(&app, &members[0]).await;
    let mut guest = connect(&app, &members[1]).await;
    host.join(&group_id, None).await;
    guest.join(&group_id, None).await;
    let (error, _) = guest.op(json!({"type": "play"}), "g-play").await;
    assert_eq!(error["code"], "not_allowed", "{error}");
    let (error, _) = host.op(json!({"type": "play"}), "empty").await;
    assert_eq!(error["code"], "nothing_to_play", "{error}");
    // A frame that does not parse is answered without its client id.
    host.send(json!({"type": "seek", "position_ms": -5})).await;
    assert_eq!(host.next_of("error").await["code"], "invalid_field");
    let (error, _) = host
        .op(json!({"type": "seek", "position_ms": 5}), "idle")
        .await;
    assert_eq!(error["code"], "nothing_to_play", "{error}");
    add(&mut host, &app, 0).await;
    add(&mut host, &app, 1).await;
    host.op(json!({"type": "play"}), "play").await;
    let playing = view(&app, &group_id, &members[1]).await["now_playing"]["entry"]["entry_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Two online members at 0.5: one vote is enough.
    let (ack, frames) = guest
        .op(json!({"type": "skip_vote", "entry_id": playing}), "skip")
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    // (The guest's frames before the ack include the start it had not read yet.)
    let advanced = of_kind(&frames, "playback_advanced");
    let skipped = &advanced.last().unwrap()["event"]["payload"];
    assert_eq!(skipped["reason"], "skipped");
    assert_eq!(skipped["finished"], playing.as_str());
    // The track that played cannot come back within the no-repeat window.
    let (error, _) = host
        .op(
            json!({"type": "add_track", "track_id": track_id(&app, 0)}),
            "again",
        )
        .await;
    assert_eq!(error["code"], "recently_played", "{error}");
}

#[actix_web::test]
async fn auto_fill_keeps_the_queue_topped_up_from_the_rooms_recommendations() {
    let app = spawn_app_with(quick_refresh()).await;
    let (group_id, members) = group_of(&app, &["Host", "Guest"], json!({})).await;
    let mut host = connect(&app, &members[0]).await;
    host.join(&group_id, None).await;
    let (ack, _) = host
        .op(
            json!({"type": "update_settings", "settings": {"auto_fill": true, "auto_fill_min": 3}}),
            "settings",
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let mut added = Vec::new();
    while added.len() < 3 {
        let event = next_event(&mut host, "track_added").await;
        assert_eq!(event["payload"]["added_by"], "chorus");
        assert!(event["actor"].is_null());
        added.push(event["payload"]["entry_id"].as_str().unwrap().to_string());
    }
    let (ack, _) = host.op(json!({"type": "play"}), "play").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    // Playing one leaves two queued: auto-fill adds one more.
    let event = next_event(&mut host, "track_added").await;
    assert_eq!(event["payload"]["added_by"], "chorus");
    let state = view(&app, &group_id, &members[1]).await;
    assert_eq!(state["up_next"].as_array().unwrap().len(), 3);
    // Nothing added twice, and nothing that is playing.
    let mut tracks: Vec<&str> = state["playlist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["track"]["id"].as_str().unwrap())
        .collect();
    tracks.push(
        state["now_playing"]["entry"]["track"]["id"]
            .as_str()
            .unwrap(),
    );
    let count = tracks.len();
    tracks.sort();
    tracks.dedup();
    assert_eq!(tracks.len(), count);
}

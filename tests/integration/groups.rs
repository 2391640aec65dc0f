//! Group sessions end to end: REST, real WebSocket clients, the store, restarts.

use std::{sync::Arc, time::Duration};

use chorus::config::{InferenceSettings, RealtimeSettings};
use futures_util::future::join_all;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    helpers::{assert_error, spawn_app, spawn_app_with, track_ids, AppOptions, Store, TestApp},
    sockets::{events, socket_url, ticket, Client, Ending},
};

pub struct Member {
    pub user_id: String,
    pub token: String,
}

/// A group whose host is the first of `names`; the others joined by code.
pub async fn group_of(app: &TestApp, names: &[&str], settings: Value) -> (String, Vec<Member>) {
    let mut members = Vec::new();
    for name in names {
        let (user_id, token) = app.create_user(name).await;
        members.push(Member { user_id, token });
    }
    let response = app
        .post_json_as(
            "/api/v1/groups",
            &json!({"name": "Friday night", "settings": settings}),
            &members[0].token,
        )
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let group_id = created["group_id"].as_str().unwrap().to_string();
    let code = created["join_code"].as_str().unwrap().to_string();
    for member in &members[1..] {
        let response = app
            .post_json_as(
                "/api/v1/groups/join",
                &json!({ "join_code": code.to_lowercase() }),
                &member.token,
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    (group_id, members)
}

pub fn track_id(app: &TestApp, i: u32) -> String {
    app.state.catalog.track(i).id.as_str().to_string()
}

pub async fn connect(app: &TestApp, member: &Member) -> Client {
    Client::connect(app, &member.user_id, &member.token).await
}

#[actix_web::test]
async fn groups_are_created_joined_and_read_over_rest() {
    let app = spawn_app().await;
    let (group_id, members) = group_of(&app, &["Host", "Guest"], json!({"max_members": 3})).await;
    let view = app
        .get_json_as(&format!("/api/v1/groups/{group_id}"), &members[1].token)
        .await;
    assert_eq!(view["name"], "Friday night");
    assert_eq!(view["host"], members[0].user_id.as_str());
    assert_eq!(view["settings"]["max_members"], 3);
    assert_eq!(view["settings"]["aggregation"], "fair");
    let roles: Vec<&str> = view["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["host", "member"]);
    assert_eq!(view["seq"], 2);
    let log = app
        .get_json_as(
            &format!("/api/v1/groups/{group_id}/events?after=0"),
            &members[0].token,
        )
        .await;
    let kinds: Vec<&str> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["group_created", "member_joined"]);
    assert_eq!(log["has_more"], false);
    let page = app
        .get_json_as(
            &format!("/api/v1/groups/{group_id}/events?after=0&limit=1"),
            &members[0].token,
        )
        .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    assert_eq!(page["has_more"], true);

    // Joining twice is harmless; the third member fills the group; a fourth is refused.
    let code = view["join_code"].as_str().unwrap();
    let again = app
        .post_json_as(
            "/api/v1/groups/join",
            &json!({"join_code": code}),
            &members[1].token,
        )
        .await;
    assert_eq!(again.status(), 200);
    let (_, third) = app.create_user("Third").await;
    let (_, fourth) = app.create_user("Fourth").await;
    assert_eq!(
        app.post_json_as("/api/v1/groups/join", &json!({"join_code": code}), &third)
            .await
            .status(),
        200
    );
    assert_error(
        app.post_json_as("/api/v1/groups/join", &json!({"join_code": code}), &fourth)
            .await,
        409,
        "group_full",
    )
    .await;

    // Errors: not a member, bad ids, unknown group, bad codes, bad bodies.
    assert_error(
        app.get_as(&format!("/api/v1/groups/{group_id}"), &fourth)
            .await,
        403,
        "not_a_member",
    )
    .await;
    assert_error(
        app.get_as("/api/v1/groups/nope", &fourth).await,
        400,
        "invalid_id",
    )
    .await;
    assert_error(
        app.get_as(&format!("/api/v1/groups/g_{}", "0".repeat(32)), &fourth)
            .await,
        404,
        "group_not_found",
    )
    .await;
    assert_error(
        app.get_as(
            &format!("/api/v1/groups/{group_id}/events?after=-1"),
            &members[0].token,
        )
        .await,
        400,
        "invalid_query",
    )
    .await;
    assert_error(
        app.post_json_as(
            "/api/v1/groups/join",
            &json!({"join_code": "ZZZZZZ"}),
            &fourth,
        )
        .await,
        404,
        "join_code_not_found",
    )
    .await;
    assert_error(
        app.post_json_as("/api/v1/groups/join", &json!({"join_code": "0O"}), &fourth)
            .await,
        422,
        "invalid_field",
    )
    .await;
    for (body, status, code) in [
        (json!({"name": ""}), 422, "invalid_field"),
        (json!({"name": "x".repeat(81)}), 422, "invalid_field"),
        (json!({}), 422, "missing_field"),
        (json!({"name": "x", "colour": 1}), 400, "unknown_field"),
        (
            json!({"name": "x", "settings": {"max_members": 1}}),
            422,
            "invalid_field",
        ),
        (
            json!({"name": "x", "settings": {"aggregation": "loudest"}}),
            422,
            "invalid_field",
        ),
        (
            json!({"name": "x", "settings": {"skip_threshold": 1.5}}),
            422,
            "invalid_field",
        ),
    ] {
        assert_error(
            app.post_json_as("/api/v1/groups", &body, &fourth).await,
            status,
            code,
        )
        .await;
    }
    assert_error(
        app.post_json("/api/v1/groups", &json!({"name": "x"})).await,
        401,
        "missing_token",
    )
    .await;
}

#[actix_web::test]
async fn members_see_every_event_in_the_same_order_under_concurrent_ops() {
    let app = spawn_app().await;
    let (group_id, members) = group_of(&app, &["A", "B", "C"], json!({})).await;
    let mut clients = Vec::new();
    for member in &members {
        let mut client = connect(&app, member).await;
        client.join(&group_id, None).await;
        clients.push(client);
    }
    const PER_MEMBER: u32 = 15;
    // Every member fires its adds without waiting, all at once.
    let sends = clients.iter_mut().enumerate().map(|(m, client)| {
        let app = &app;
        async move {
            for i in 0..PER_MEMBER {
                let track = track_id(app, m as u32 * PER_MEMBER + i);
                client
                    .send(json!({"type": "add_track", "track_id": track, "client_msg_id": format!("add-{i}")}))
                    .await;
            }
        }
    });
    join_all(sends).await;
    let total = 3 * PER_MEMBER as usize;
    let received = join_all(clients.iter_mut().map(|client| async move {
        let mut seen = Vec::new();
        let mut acks = 0;
        while seen.len() < total || acks < PER_MEMBER {
            let frame = client.recv().await;
            match frame["type"].as_str().unwrap() {
                "event" => seen.push((
                    frame["seq"].as_i64().unwrap(),
                    frame["event"]["payload"]["entry_id"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )),
                "ack" => acks += 1,
                "error" => panic!("unexpected error {frame}"),
                _ => {}
            }
        }
        seen
    }))
    .await;
    for other in &received[1..] {
        assert_eq!(other, &received[0], "every member sees the same order");
    }
    let seqs: Vec<i64> = received[0].iter().map(|(seq, _)| *seq).collect();
    let first = seqs[0];
    assert_eq!(
        seqs,
        (first..first + total as i64).collect::<Vec<_>>(),
        "gap-free"
    );
    // Every add's store append is timed: the part of its delivery spent waiting for the store.
    let appends = app.state.metrics.group_append_duration.get_sample_count();
    assert!(
        appends >= total as u64,
        "{appends} appends timed for {total} adds"
    );
    // The REST snapshot agrees with what the sockets saw.
    let view = app
        .get_json_as(&format!("/api/v1/groups/{group_id}"), &members[0].token)
        .await;
    let playlist: Vec<&str> = view["playlist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry_id"].as_str().unwrap())
        .collect();
    let order: Vec<&str> = received[0].iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(playlist, order);
    assert_eq!(view["seq"], seqs[seqs.len() - 1]);
}

#[actix_web::test]
async fn a_reconnecting_client_gets_exactly_what_it_missed() {
    let app = spawn_app_with(AppOptions {
        realtime: RealtimeSettings {
            replay_events: 8,
            ..RealtimeSettings::default()
        },
        ..AppOptions::default()
    })
    .await;
    let (group_id, members) = group_of(&app, &["A", "B"], json!({})).await;
    let mut a = connect(&app, &members[0]).await;
    let joined = a.join(&group_id, None).await;
    let snapshot = joined.iter().find(|f| f["type"] == "snapshot").unwrap();
    let seen = snapshot["seq"].as_i64().unwrap();
    a.close().await;

    let mut b = connect(&app, &members[1]).await;
    b.join(&group_id, None).await;
    let mut acked = Vec::new();
    for i in 0..3 {
        let (ack, _) = b
            .op(
                json!({"type": "add_track", "track_id": track_id(&app, i)}),
                &format!("b{i}"),
            )
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        acked.push(ack["seq"].as_i64().unwrap());
    }
    assert_eq!(acked, vec![seen + 1, seen + 2, seen + 3]);

    let mut a = connect(&app, &members[0]).await;
    let frames = a.join(&group_id, Some(seen)).await;
    assert!(frames.iter().all(|f| f["type"] != "snapshot"), "{frames:?}");
    assert_eq!(
        events(&frames),
        vec![
            (seen + 1, "track_added".to_string()),
            (seen + 2, "track_added".to_string()),
            (seen + 3, "track_added".to_string()),
        ]
    );
    assert_eq!(frames.last().unwrap()["seq"], seen + 3);

    // Up to date: nothing to replay.
    let mut again = connect(&app, &members[0]).await;
    let frames = again.join(&group_id, Some(seen + 3)).await;
    assert!(events(&frames).is_empty() && frames.iter().all(|f| f["type"] != "snapshot"));

    // A retried operation (same client_msg_id) is acknowledged with its first seq, not redone.
    let (ack, _) = b
        .op(
            json!({"type": "add_track", "track_id": track_id(&app, 0)}),
            "b0",
        )
        .await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(ack["seq"], seen + 1);

    // Further behind than the replay window (8 events): a snapshot instead.
    for i in 3..12 {
        b.op(
            json!({"type": "add_track", "track_id": track_id(&app, i)}),
            &format!("b{i}"),
        )
        .await;
    }
    let mut late = connect(&app, &members[0]).await;
    let frames = late.join(&group_id, Some(seen)).await;
    let snapshot = frames
        .iter()
        .find(|f| f["type"] == "snapshot")
        .expect("a snapshot");
    assert_eq!(snapshot["group"]["playlist"].as_array().unwrap().len(), 12);
    assert!(events(&frames).is_empty());
}

async fn groups_and_playlists_survive_a_restart(store: Store) {
    let app = spawn_app_with(AppOptions {
        store,
        ..AppOptions::default()
    })
    .await;
    let (group_id, members) = group_of(&app, &["A", "B"], json!({"guest_controls": true})).await;
    let mut a = connect(&app, &members[0]).await;
    a.join(&group_id, None).await;
    for i in 0..4 {
        a.op(
            json!({"type": "add_track", "track_id": track_id(&app, i)}),
            &format!("a{i}"),
        )
        .await;
    }
    let view = app
        .get_json_as(&format!("/api/v1/groups/{group_id}"), &members[0].token)
        .await;
    let entry = view["playlist"][3]["entry_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (ack, _) = a
        .op(
            json!({"type": "move_track", "entry_id": entry, "to_index": 0}),
            "move",
        )
        .await;
    assert_eq!(ack["type"], "ack");
    let before = app
        .get_json_as(&format!("/api/v1/groups/{group_id}"), &members[1].token)
        .await;
    let seq = before["seq"].as_i64().unwrap();
    let db = Arc::clone(&app.db);
    app.handle.stop(true).await;
    drop(a);

    let restarted = spawn_app_with(AppOptions {
        store,
        database: Some(db),
        ..AppOptions::default()
    })
    .await;
    let after = restarted
        .get_json_as(&format!("/api/v1/groups/{group_id}"), &members[1].token)
        .await;
    assert_eq!(after["playlist"], before["playlist"]);
    assert_eq!(after["seq"], seq);
    assert_eq!(after["join_code"], before["join_code"]);
    // A client resuming from the last seq it saw misses nothing, and the log continues.
    let mut a = connect(&restarted, &members[0]).await;
    let frames = a.join(&group_id, Some(seq)).await;
    assert!(events(&frames).is_empty());
    let (ack, _) = a
        .op(
            json!({"type": "add_track", "track_id": track_id(&restarted, 9)}),
            "after",
        )
        .await;
    assert_eq!(ack["seq"], seq + 1);
    // Retried operations from before the restart are still recognised.
    let (ack, _) = a
        .op(
            json!({"type": "add_track", "track_id": track_id(&restarted, 0)}),
            "a0",
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert!(ack["seq"].as_i64().unwrap() < seq);
}

#[actix_web::test]
async fn groups_survive_a_restart_on_sqlite() {
    groups_and_playlists_survive_a_restart(Store::Sqlite).await;
}

#[actix_web::test]
async fn groups_survive_a_restart_on_postgres() {
    groups_and_playlists_survive_a_restart(Store::Postgres).await;
}

#[actix_web::test]
async fn hosts_control_the_room_and_guests_cannot() {
    let app = spawn_app().await;
    let (group_id, members) = group_of(&app, &["Host", "Guest", "Other"], json!({})).await;
    let mut host = connect(&app, &members[0]).await;
    let mut guest = connect(&app, &members[1]).await;
    let mut other = connect(&app, &members[2]).await;
    for client in [&mut host, &mut guest, &mut other] {
        client.join(&group_id, None).await;
    }
    let (ack, _) = host
        .op(
            json!({"type": "add_track", "track_id": track_id(&app, 1)}),
            "h1",
        )
        .await;
    assert_eq!(ack["type"], "ack");
    let (ack, _) = guest
        .op(
            json!({"type": "add_track", "track_id": track_id(&app, 2)}),
            "g1",
        )
        .await;
    assert_eq!(ack["type"], "ack");
    let view = app
        .get_json_as(&format!("/api/v1/groups/{group_id}"), &members[0].token)
        .await;
    let host_entry = view["playlist"][0]["entry_id"]
        .as_str()
        .unwrap()
        .to_string();
    let guest_entry = view["playlist"][1]["entry_id"]
        .as_str()
        .unwrap()
        .to_string();

    let expect_error = |frame: &Value, code: &str| {
        assert_eq!(frame["type"], "error", "{frame}");
        assert_eq!(frame["code"], code, "{frame}");
    };
    let (answer, _) = other
        .op(
            json!({"type": "remove_track", "entry_id": host_entry}),
            "o1",
        )
        .await;
    expect_error(&answer, "not_allowed");
    let (answer, _) = other
        .op(json!({"type": "kick", "user_id": members[1].user_id}), "o2")
        .await;
    expect_error(&answer, "not_allowed");
    let (answer, _) = other
        .op(
            json!({"type": "update_settings", "settings": {"guest_controls": false}}),
            "o3",
        )
        .await;
    expect_error(&answer, "not_allowed");
    let (answer, _) = guest
        .op(
            json!({"type": "add_track", "track_id": track_id(&app, 1)}),
            "g2",
        )
        .await;
    expect_error(&answer, "duplicate_track");
    let (answer, _) = guest
        .op(
            json!({"type": "add_track", "track_id": "0000000000000000000000"}),
            "g3",
        )
        .await;
    expect_error(&answer, "track_not_found");
    let (answer, _) = guest
        .op(
            json!({"type": "vote", "entry_id": "e_0000000000000000", "value": 1}),
            "g4",
        )
        .await;
    expect_error(&answer, "entry_not_found");

    // The host removes someone else's entry and moves entries.
    let (ack, _) = host
        .op(
            json!({"type": "remove_track", "entry_id": guest_entry}),
            "h2",
        )
        .await;
    assert_eq!(ack["type"], "ack");
    // Guest controls off: the guest can no longer add.
    let (ack, _) = host
        .op(
            json!({"type": "update_settings", "settings": {"guest_controls": false}}),
            "h3",
        )
        .await;
    assert_eq!(ack["type"], "ack");
    let (answer, _) = guest
        .op(
            json!({"type": "add_track", "track_id": track_id(&app, 3)}),
            "g5",
        )
        .await;
    expect_error(&answer, "not_allowed");
    // ...but still votes.
    let (ack, _) = guest
        .op(
            json!({"type": "vote", "entry_id": host_entry, "value": 1}),
            "g6",
        )
        .await;
    assert_eq!(ack["type"], "ack");

    // Kick: the kicked member's socket sees the event, then `left`, and cannot act or rejoin.
    let (ack, _) = host
        .op(json!({"type": "kick", "user_id": members[2].user_id}), "h4")
        .await;
    assert_eq!(ack["type"], "ack");
    let frames = other.recv_until("left").await;
    let kicked = frames
        .iter()
        .find(|f| f["type"] == "event" && f["event"]["kind"] == "member_left")
        .expect("the kick event");
    assert_eq!(kicked["event"]["payload"]["reason"], "kicked");
    assert_eq!(frames.last().unwrap()["reason"], "kicked");
    let (answer, _) = other
        .op(
            json!({"type": "vote", "entry_id": host_entry, "value": 1}),
            "o4",
        )
        .await;
    expect_error(&answer, "not_joined");
    other
        .send(json!({"type": "join", "group_id": group_id, "client_msg_id": "rejoin"}))
        .await;
    let answer = other.next_of("error").await;
    expect_error(&answer, "not_a_member");
    let code = app
        .get_json_as(&format!("/api/v1/groups/{group_id}"), &members[0].token)
        .await["join_code"]
        .as_str()
        .unwrap()
        .to_string();
    assert_error(
        app.post_json_as(
            "/api/v1/groups/join",
            &json!({"join_code": code}),
            &members[2].token,
        )
        .await,
        403,
        "not_allowed",
    )
    .await;

    // Handing over host: the old host loses the controls.
    let (ack, _) = host
        .op(
            json!({"type": "set_host", "user_id": members[1].user_id}),
            "h5",
        )
        .await;
    assert_eq!(ack["type"], "ack");
    let (answer, _) = host
        .op(
            json!({"type": "update_settings", "settings": {"guest_controls": true}}),
            "h6",
        )
        .await;
    expect_error(&answer, "not_allowed");
    let (ack, _) = guest
        .op(
            json!({"type": "update_settings", "settings": {"guest_controls": true}}),
            "g7",
        )
        .await;
    assert_eq!(ack["type"], "ack");
    let view = app
        .get_json_as(&format!("/api/v1/groups/{group_id}"), &members[1].token)
        .await;
    assert_eq!(view["host"], members[1].user_id.as_str());
    assert_eq!(view["members"].as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn bad_frames_get_errors_and_the_socket_stays_open() {
    let app = spawn_app().await;
    let (group_id, members) = group_of(&app, &["A"], json!({})).await;
    let mut a = connect(&app, &members[0]).await;
    for (text, code) in [
        ("{not json", "malformed_json"),
        ("[1,2,3]", "invalid_field"),
        (r#"{"type":"dance"}"#, "unknown_type"),
        (r#"{"track_id":"x"}"#, "missing_field"),
        (r#"{"type":"ping","extra":1}"#, "unknown_field"),
        (
            r#"{"type":"vote","entry_id":"e","value":"up"}"#,
            "invalid_field",
        ),
        (r#"{"type":"add_track","track_id":"x"}"#, "not_joined"),
        (r#"{"type":"join","group_id":"nope"}"#, "invalid_field"),
        (
            r#"{"type":"join","group_id":"g_00000000000000000000000000000000"}"#,
            "group_not_found",
        ),
    ] {
        a.send_text(text.to_string()).await;
        let frame = a.recv().await;
        assert_eq!(frame["type"], "error", "{text}: {frame}");
        assert_eq!(frame["code"], code, "{text}: {frame}");
        assert!(frame["message"].as_str().unwrap().len() > 5);
    }
    a.send_raw(Message::binary(vec![1, 2, 3])).await;
    assert_eq!(a.recv().await["code"], "unsupported_frame");
    a.send(json!({"type": "ping", "client_msg_id": "p"})).await;
    let pong = a.recv().await;
    assert_eq!(pong, json!({"type": "pong", "client_msg_id": "p"}));
    // Still fully usable.
    a.join(&group_id, None).await;

    // A frame over 64 KiB closes the socket with 1009.
    a.send_text(format!(
        r#"{{"type":"ping","client_msg_id":"{}"}}"#,
        "x".repeat(70 * 1024)
    ))
    .await;
    let (_, ending) = a.drain_until_end(Duration::from_secs(5)).await;
    assert!(
        matches!(ending, Ending::Closed { code: 1009, .. }),
        "{ending:?}"
    );

    // Tickets: missing, unknown and reused ones are refused before the upgrade.
    let no_ticket = app.get("/api/v1/ws").await;
    assert_error(no_ticket, 401, "invalid_ticket").await;
    let unknown = app.get("/api/v1/ws?ticket=wst_nope").await;
    assert_error(unknown, 401, "invalid_ticket").await;
    let used = ticket(&app, &members[0].token).await;
    tokio_tungstenite::connect_async(socket_url(&app, &used))
        .await
        .expect("first use works");
    match tokio_tungstenite::connect_async(socket_url(&app, &used)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("a reused ticket must be refused: {other:?}"),
    }
    // A valid ticket without the upgrade handshake.
    let plain = ticket(&app, &members[0].token).await;
    assert_error(
        app.get(&format!("/api/v1/ws?ticket={plain}")).await,
        400,
        "upgrade_required",
    )
    .await;
}

#[actix_web::test]
async fn floods_are_rate_limited_without_closing_the_socket() {
    let app = spawn_app_with(AppOptions {
        realtime: RealtimeSettings {
            ops_per_second: 5.0,
            op_burst: 5,
            ..RealtimeSettings::default()
        },
        ..AppOptions::default()
    })
    .await;
    let (_, members) = group_of(&app, &["A"], json!({})).await;
    let mut a = connect(&app, &members[0]).await;
    for i in 0..30 {
        a.send(json!({"type": "ping", "client_msg_id": format!("p{i}")}))
            .await;
    }
    let mut pongs = 0;
    let mut limited = 0;
    while let Some(frame) = a.try_recv(Duration::from_millis(500)).await {
        match frame["type"].as_str().unwrap() {
            "pong" => pongs += 1,
            "error" => {
                assert_eq!(frame["code"], "rate_limited");
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!((5..=7).contains(&pongs), "{pongs} pongs");
    assert_eq!(limited, 1, "one error per flood, not one per frame");
    tokio::time::sleep(Duration::from_millis(400)).await;
    a.send(json!({"type": "ping", "client_msg_id": "later"}))
        .await;
    assert_eq!(a.recv().await["type"], "pong");
}

#[actix_web::test]
async fn silent_clients_time_out_and_others_see_them_go() {
    let app = spawn_app_with(AppOptions {
        realtime: RealtimeSettings {
            heartbeat_interval_ms: 100,
            client_timeout_ms: 400,
            ..RealtimeSettings::default()
        },
        ..AppOptions::default()
    })
    .await;
    let (group_id, members) = group_of(&app, &["A", "B"], json!({})).await;
    let mut watcher = connect(&app, &members[0]).await;
    watcher.join(&group_id, None).await;
    let mut silent = connect(&app, &members[1]).await;
    silent.join(&group_id, None).await;
    let silent_id = members[1].user_id.as_str();
    let mut presence_of_silent = Vec::new();
    // The watcher keeps reading (its client answers pings); the silent one reads nothing, so
    // it answers no ping.
    while presence_of_silent.len() < 2 {
        let frame = watcher.next_of("presence").await;
        if frame["user_id"] == silent_id {
            presence_of_silent.push(frame["online"].as_bool().unwrap());
        }
    }
    assert_eq!(presence_of_silent, [true, false]);
    let (_, ending) = silent.drain_until_end(Duration::from_secs(5)).await;
    assert!(
        matches!(ending, Ending::Closed { code: 4000, .. }),
        "{ending:?}"
    );
    // The watcher, which answered its pings, is still connected.
    watcher.send(json!({"type": "ping"})).await;
    assert_eq!(watcher.next_of("pong").await["type"], "pong");
}

#[actix_web::test]
async fn a_client_that_stops_reading_is_disconnected() {
    let app = spawn_app_with(AppOptions {
        realtime: RealtimeSettings {
            outbox_frames: 16,
            ops_per_second: 100_000.0,
            op_burst: 100_000,
            ..RealtimeSettings::default()
        },
        ..AppOptions::default()
    })
    .await;
    let (group_id, members) = group_of(&app, &["A"], json!({})).await;
    let mut slow = connect(&app, &members[0]).await;
    let joined = slow.join(&group_id, None).await;
    // Until the room has its first list, a request only starts a refresh and sends nothing;
    // from then on each request is answered with a recommendations frame.
    if !joined.iter().any(|f| f["type"] == "recommendations") {
        slow.next_of("recommendations").await;
    }
    // Ask without reading until the server gives up on the socket. How many frames that takes
    // depends on the kernel's socket buffers (loopback buffers grow to megabytes), so ask in
    // batches, and pause after each so that no request arrives after the server has closed
    // (unread bytes at close would make the kernel reset the connection instead).
    const BATCH: usize = 500;
    const MOST: usize = 200_000;
    let mut asked = 0;
    loop {
        for _ in 0..BATCH {
            slow.send(json!({"type": "request_recommendations"})).await;
        }
        asked += BATCH;
        if slow_consumers_closed(&app, Duration::from_millis(500)).await {
            break;
        }
        assert!(
            asked < MOST,
            "{asked} requests unread and the socket is still open"
        );
    }
    let (frames, ending) = slow.drain_until_end(Duration::from_secs(30)).await;
    assert!(
        matches!(ending, Ending::Closed { code: 4008, .. }),
        "{ending:?}"
    );
    let delivered = frames
        .iter()
        .filter(|f| f["type"] == "recommendations")
        .count();
    assert!(delivered < asked, "{delivered} of {asked} delivered");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("chorus_ws_closed_total{reason=\"slow_consumer\"} 1"),
        "{metrics}"
    );
}

/// Whether one socket has been closed as a slow consumer, waiting up to `wait` for it.
async fn slow_consumers_closed(app: &TestApp, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        if metrics.contains("chorus_ws_closed_total{reason=\"slow_consumer\"} 1") {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Likes `tracks` for a member over REST.
async fn like(app: &TestApp, member: &Member, tracks: &[String]) {
    for track in tracks {
        let response = app
            .post_json_as(
                "/api/v1/feedback",
                &json!({"track_id": track, "kind": "like"}),
                &member.token,
            )
            .await;
        assert_eq!(response.status(), 202);
    }
}

/// Group recommendations recomputed at most every 20 ms, so tests need not wait.
pub fn quick_refresh() -> AppOptions {
    refresh_every(20)
}

/// Group recommendations recomputed at most every `ms`.
fn refresh_every(ms: u64) -> AppOptions {
    AppOptions {
        realtime: RealtimeSettings {
            recommend_interval_ms: ms,
            ..RealtimeSettings::default()
        },
        ..AppOptions::default()
    }
}

#[actix_web::test]
async fn group_recommendations_follow_adds_votes_and_strategy() {
    let app = spawn_app_with(quick_refresh()).await;
    let (group_id, members) = group_of(&app, &["A", "B"], json!({})).await;
    // Before anyone has a taste: the popular start.
    let cold = app
        .get_json_as(
            &format!("/api/v1/groups/{group_id}/recommendations"),
            &members[0].token,
        )
        .await;
    assert_eq!(cold["strategy"], "popular_diverse");
    assert!(cold["harmony"].is_null());
    assert_eq!(cold["members_without_taste"].as_array().unwrap().len(), 2);

    let catalog = &app.state.catalog;
    let pick = |genre: &str, n: usize| -> Vec<String> {
        (0..catalog.len() as u32)
            .map(|i| catalog.track(i))
            .filter(|t| t.has_genre(genre))
            .take(n)
            .map(|t| t.id.as_str().to_string())
            .collect()
    };
    like(&app, &members[0], &pick("rock", 6)).await;
    like(&app, &members[1], &pick("rap", 6)).await;

    let mut a = connect(&app, &members[0]).await;
    a.join(&group_id, None).await;
    a.send(json!({"type": "request_recommendations"})).await;
    // The list once both tastes are in (a refresh may run between the two members' likes).
    let first = loop {
        let frame = a.next_of("recommendations").await;
        if frame["strategy"] == "fair" && frame["members"].as_array().unwrap().len() == 2 {
            break frame;
        }
    };
    assert_eq!(first["items"].as_array().unwrap().len(), 10);
    let harmony = &first["harmony"];
    let least = harmony["least"].as_f64().unwrap();
    let average = harmony["average"].as_f64().unwrap();
    assert!(
        (0.0..=1.0).contains(&least) && least <= average && average <= 1.0,
        "{harmony}"
    );
    assert_eq!(first["members"].as_array().unwrap().len(), 2);
    let item = &first["items"][0];
    assert_eq!(item["fit"].as_array().unwrap().len(), 2);
    assert!(item["least"].as_f64().unwrap() <= item["score"].as_f64().unwrap());
    // The frame leaves the reasons out and carries each track as a playlist entry shows it
    // (together most of its bytes); the REST mirror of the same list has it all.
    assert!(item.get("reasons").is_none(), "{item}");
    let mut brief: Vec<&str> = item["track"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    brief.sort_unstable();
    assert_eq!(
        brief,
        ["album", "artist", "duration_ms", "id", "title"],
        "{item}"
    );
    let mirror = app
        .get_json_as(
            &format!("/api/v1/groups/{group_id}/recommendations"),
            &members[0].token,
        )
        .await;
    if mirror["request_id"] == first["request_id"] {
        let whole = &mirror["items"][0]["track"];
        for field in brief {
            assert_eq!(whole[field], item["track"][field], "{field}");
        }
        assert!(!whole["genres"].as_array().unwrap().is_empty(), "{whole}");
        assert_eq!(mirror["items"][0]["reasons"].as_array().unwrap().len(), 8);
    }
    assert_eq!(
        mirror["items"][0]["reasons"].as_array().unwrap().len(),
        8,
        "{mirror}"
    );

    // Adding the top pick: the next list no longer has it and reflects the new seq.
    let top = track_ids(&first)[0].clone();
    let (ack, _) = a
        .op(json!({"type": "add_track", "track_id": top}), "add-top")
        .await;
    let added_seq = ack["seq"].as_i64().unwrap();
    let after_add = loop {
        let frame = a.next_of("recommendations").await;
        if frame["seq"].as_i64().unwrap() >= added_seq {
            break frame;
        }
    };
    assert!(!track_ids(&after_add).contains(&top));

    // B joins and down-votes the entry: B's taste changes, so the group's picks are redone.
    let mut b = connect(&app, &members[1]).await;
    b.join(&group_id, None).await;
    let room = app
        .get_json_as(&format!("/api/v1/groups/{group_id}"), &members[1].token)
        .await;
    let entry = room["playlist"][0]["entry_id"]
        .as_str()
        .unwrap()
        .to_string();
    let voted_track = room["playlist"][0]["track"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (ack, _) = b
        .op(
            json!({"type": "vote", "entry_id": entry, "value": -1}),
            "down",
        )
        .await;
    let vote_seq = ack["seq"].as_i64().unwrap();
    let after_vote = loop {
        let frame = b.next_of("recommendations").await;
        if frame["seq"].as_i64().unwrap() >= vote_seq {
            break frame;
        }
    };
    assert_ne!(after_vote["request_id"], after_add["request_id"]);
    let profile = app
        .get_json_as("/api/v1/me/profile", &members[1].token)
        .await;
    assert_eq!(profile["counts"]["dislike"], 1, "{profile}");
    let profile = app
        .get_json_as("/api/v1/me/profile", &members[0].token)
        .await;
    assert_eq!(profile["counts"]["add"], 1, "{profile}");
    // Stored with the room's events, in the same write: one row each, naming the room.
    let mut stored: Vec<(String, String, String)> =
        sqlx::query_as("SELECT user_id, kind, track_id FROM interactions WHERE group_id = $1")
            .bind(&group_id)
            .fetch_all(app.state.db.pool())
            .await
            .unwrap();
    stored.sort();
    let mut expected = vec![
        (members[0].user_id.clone(), "add".to_string(), top.clone()),
        (
            members[1].user_id.clone(),
            "dislike".to_string(),
            voted_track,
        ),
    ];
    expected.sort();
    assert_eq!(stored, expected);

    // The host switches the strategy; the next list says so.
    let (ack, _) = a
        .op(
            json!({"type": "update_settings", "settings": {"aggregation": "least_misery"}}),
            "strategy",
        )
        .await;
    assert_eq!(ack["type"], "ack");
    let switched = loop {
        let frame = a.next_of("recommendations").await;
        if frame["strategy"] == "least_misery" {
            break frame;
        }
    };
    // REST mirrors the socket.
    let rest = app
        .get_json_as(
            &format!("/api/v1/groups/{group_id}/recommendations"),
            &members[0].token,
        )
        .await;
    assert_eq!(rest["request_id"], switched["request_id"]);
    assert_eq!(track_ids(&rest), track_ids(&switched));
}

/// A room of two whose host likes the catalog's first three tracks, joined and holding the
/// room's first list; and the ids of the catalog's first `n` tracks.
async fn joined_with_a_list(app: &TestApp, n: u32) -> (Client, Vec<String>) {
    let (group_id, members) = group_of(app, &["A", "B"], json!({})).await;
    let catalog = &app.state.catalog;
    let tracks: Vec<String> = (0..n)
        .map(|i| catalog.track(i).id.as_str().to_string())
        .collect();
    like(app, &members[0], &tracks[..3]).await;
    let mut a = connect(app, &members[0]).await;
    a.join(&group_id, None).await;
    a.send(json!({"type": "request_recommendations"})).await;
    a.next_of("recommendations").await;
    (a, tracks)
}

/// A burst of changes costs one ranking per `recommend_interval_ms`, never one per change,
/// and the list that follows reflects the last of them.
#[actix_web::test]
async fn a_burst_of_changes_is_ranked_once_per_interval_and_the_newest_state_wins() {
    const INTERVAL_MS: u64 = 400;
    let app = spawn_app_with(refresh_every(INTERVAL_MS)).await;
    let (mut a, tracks) = joined_with_a_list(&app, 20).await;
    let rankings = || {
        app.state
            .metrics
            .group_recommendation_duration
            .with_label_values(&["ok"])
            .get_sample_count()
    };
    tokio::time::sleep(Duration::from_millis(INTERVAL_MS)).await;
    let before = rankings();
    let started = std::time::Instant::now();
    let mut last_seq = 0;
    for (n, track) in tracks[3..15].iter().enumerate() {
        let (ack, _) = a
            .op(
                json!({"type": "add_track", "track_id": track}),
                &format!("burst-{n}"),
            )
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        last_seq = ack["seq"].as_i64().unwrap();
    }
    let newest = loop {
        let frame = a.next_of("recommendations").await;
        if frame["seq"].as_i64().unwrap() >= last_seq {
            break frame;
        }
    };
    let elapsed = started.elapsed().as_millis() as u64;
    let ran = rankings() - before;
    // Rankings start at least an interval apart: the first at once, then one per interval.
    assert!(
        ran >= 1 && ran <= elapsed / INTERVAL_MS + 1,
        "{ran} rankings in {elapsed} ms"
    );
    assert!(ran < 12, "{ran} rankings for 12 changes");
    let listed = track_ids(&newest);
    assert!(
        tracks[3..15].iter().all(|t| !listed.contains(t)),
        "{listed:?}"
    );
}

/// A list a second late behind a change is announced as being updated; the next list ends it.
#[actix_web::test]
async fn a_late_list_is_announced_as_updating() {
    // Lists at most every 2.5 s: the list after a change is late on purpose.
    let app = spawn_app_with(refresh_every(2_500)).await;
    let (mut a, tracks) = joined_with_a_list(&app, 5).await;
    let (ack, _) = a
        .op(json!({"type": "add_track", "track_id": tracks[3]}), "late")
        .await;
    let seq = ack["seq"].as_i64().unwrap();
    let added = std::time::Instant::now();
    let frames = a.recv_until("recommendations").await;
    let list = frames.last().unwrap();
    assert!(list["seq"].as_i64().unwrap() >= seq, "{list}");
    let notices: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "recommendations_updating")
        .collect();
    assert_eq!(notices.len(), 1, "{frames:?}");
    assert!(notices[0]["seq"].as_i64().unwrap() >= seq);
    assert!(added.elapsed() >= Duration::from_secs(1));
}

/// A solo like (REST, outside any group) reaches every live group of that member.
#[actix_web::test]
async fn a_like_anywhere_refreshes_every_live_group_of_that_member() {
    let app = spawn_app_with(quick_refresh()).await;
    let (first, members) = group_of(&app, &["A", "B"], json!({})).await;
    let second = app
        .post_json_as(
            "/api/v1/groups",
            &json!({"name": "B alone"}),
            &members[1].token,
        )
        .await;
    assert_eq!(second.status(), 201);
    let second: Value = second.json().await.unwrap();
    let mut a = connect(&app, &members[0]).await;
    a.join(&first, None).await;
    a.send(json!({"type": "request_recommendations"})).await;
    let cold = a.next_of("recommendations").await;
    assert_eq!(cold["members_without_taste"].as_array().unwrap().len(), 2);

    // B likes tracks over REST, outside any group: A's room picks it up without any op.
    let liked: Vec<String> = (0..5)
        .map(|i| app.state.catalog.track(i).id.as_str().to_string())
        .collect();
    like(&app, &members[1], &liked).await;
    let warm = loop {
        let frame = a.next_of("recommendations").await;
        if frame["members_without_taste"].as_array().unwrap().len() == 1 {
            break frame;
        }
    };
    assert_eq!(warm["members_without_taste"][0], members[0].user_id);
    assert_ne!(
        track_ids(&warm),
        track_ids(&cold),
        "the picks follow B's new taste"
    );

    // B's own group (no socket open) serves the fresh list over REST too.
    let rest = app
        .get_json_as(
            &format!(
                "/api/v1/groups/{}/recommendations",
                second["group_id"].as_str().unwrap()
            ),
            &members[1].token,
        )
        .await;
    assert!(
        rest["members_without_taste"].as_array().unwrap().is_empty(),
        "{rest}"
    );
}

/// The real ConnectionActor and its default constants, in tokio's paused (virtual) time: a
/// client that never answers is pinged every 5 s and closed with 4000 once 15 s pass.
#[actix_web::test]
async fn heartbeat_timeout_in_virtual_time() {
    // The client's side of the connection: it stays open and never sends a byte.
    let silent = futures_util::stream::pending::<
        Result<actix_web::web::Bytes, actix_web::error::PayloadError>,
    >();
    let (pings, code, elapsed) = socket_in_virtual_time(Box::pin(silent)).await;
    assert_eq!(code, 4000);
    assert!(
        elapsed >= Duration::from_secs(15) && elapsed < Duration::from_secs(21),
        "closed after {elapsed:?}"
    );
    // Pings at 5 s and 10 s; at 15 s the client has been silent too long.
    assert_eq!(pings.len(), 2, "pinged at {pings:?}");
}

/// A client heard from within half a heartbeat interval is not pinged (its frames prove it is
/// alive); once it goes quiet it is pinged every interval again and closed when silent too long.
#[actix_web::test]
async fn clients_heard_from_lately_are_not_pinged() {
    use actix_codec::Encoder;
    use actix_http::ws::{Codec, Message};
    use actix_web::web::BytesMut;

    // An application-level ping every 2 s for 20 s, then nothing.
    let chatty = futures_util::stream::unfold(0u32, |sent| async move {
        if sent == 10 {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut frame = BytesMut::new();
        Codec::new()
            .client_mode()
            .encode(Message::Text(r#"{"type":"ping"}"#.into()), &mut frame)
            .unwrap();
        Some((
            Ok::<_, actix_web::error::PayloadError>(frame.freeze()),
            sent + 1,
        ))
    });
    let (pings, code, elapsed) = socket_in_virtual_time(Box::pin(chatty)).await;
    assert!(
        !pings.is_empty() && pings.iter().all(|&at| at > Duration::from_secs(20)),
        "pinged at {pings:?}"
    );
    assert_eq!(code, 4000);
    assert!(
        elapsed >= Duration::from_secs(35) && elapsed < Duration::from_secs(41),
        "closed after {elapsed:?}"
    );
}

/// Frames leave as soon as they are written: every socket the server accepted has TCP_NODELAY
/// (with Nagle's algorithm an event waits while the previous frame to that socket is
/// unacknowledged, a round trip on a real network). The server runs in this process, so its
/// accepted sockets are among this process's descriptors.
#[cfg(target_os = "linux")]
#[actix_web::test]
async fn accepted_sockets_send_without_delay() {
    use std::{net::SocketAddr, os::fd::BorrowedFd};

    let app = spawn_app().await;
    let (group_id, members) = group_of(&app, &["A"], json!({})).await;
    let mut client = connect(&app, &members[0]).await;
    client.join(&group_id, None).await;
    let server: SocketAddr = app.address.trim_start_matches("http://").parse().unwrap();
    let mut accepted = 0;
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let Ok(fd) = entry.unwrap().file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // SAFETY: only borrowed for the calls below; a descriptor closed meanwhile makes them
        // fail (or names another socket, which the address check skips).
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let local = rustix::net::getsockname(fd)
            .ok()
            .and_then(|a| SocketAddr::try_from(a).ok());
        let connected = matches!(rustix::net::getpeername(fd), Ok(Some(_)));
        if local == Some(server) && connected {
            accepted += 1;
            assert!(
                rustix::net::sockopt::tcp_nodelay(fd).unwrap(),
                "an accepted socket without TCP_NODELAY"
            );
        }
    }
    assert!(accepted >= 1, "found none of the server's accepted sockets");
}

/// Opens a socket on the real ConnectionActor in paused time with `client` as what the client
/// sends, and reads until the server closes it: when it pinged (since the socket opened), the
/// close code, and when it closed.
async fn socket_in_virtual_time(
    client: actix_http::BoxedPayloadStream,
) -> (Vec<Duration>, u16, Duration) {
    use actix_http::ws::{Codec, Frame};
    use actix_web::{
        body::MessageBody,
        dev::{Payload, Service},
        test::{init_service, TestRequest},
        web::BytesMut,
        App,
    };

    let app = spawn_app().await;
    let (_, token) = app.create_user("Quiet").await;
    let ticket = ticket(&app, &token).await;
    let service = init_service(
        App::new()
            .app_data(app.state.clone())
            .configure(chorus::http::configure),
    )
    .await;
    tokio::time::pause();
    let (request, _) = TestRequest::get()
        .uri(&format!("/api/v1/ws?ticket={ticket}"))
        .insert_header(("upgrade", "websocket"))
        .insert_header(("connection", "upgrade"))
        .insert_header(("sec-websocket-version", "13"))
        .insert_header(("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="))
        .to_request()
        .replace_payload(Payload::from(client));
    let response = service.call(request).await.unwrap();
    assert_eq!(response.status(), 101);
    let started = tokio::time::Instant::now();
    let mut body = response.into_body();
    let mut codec = Codec::new().client_mode();
    let mut buffer = BytesMut::new();
    let mut pings = Vec::new();
    let close = loop {
        let chunk = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_next(cx))
            .await
            .expect("the server closes with a close frame")
            .unwrap();
        buffer.extend_from_slice(&chunk);
        let frames = decode_all(&mut codec, &mut buffer);
        if let Some(close) = frames.iter().find_map(|f| match f {
            Frame::Close(reason) => Some(reason.clone()),
            _ => None,
        }) {
            break close;
        }
        pings.extend(
            frames
                .iter()
                .filter(|f| matches!(f, Frame::Ping(_)))
                .map(|_| started.elapsed()),
        );
    };
    let code: u16 = close.expect("a close reason").code.into();
    (pings, code, started.elapsed())
}

/// Every complete WebSocket frame in `buffer`, removed from it.
fn decode_all(
    codec: &mut actix_http::ws::Codec,
    buffer: &mut actix_web::web::BytesMut,
) -> Vec<actix_http::ws::Frame> {
    use actix_codec::Decoder;
    let mut frames = Vec::new();
    while let Some(frame) = codec.decode(buffer).expect("the server sends valid frames") {
        frames.push(frame);
    }
    frames
}

/// A room nobody has touched since it was created still shows its first visitor a list.
#[actix_web::test]
async fn joining_an_untouched_room_brings_its_first_recommendations() {
    let app = spawn_app().await;
    let (group_id, members) = group_of(&app, &["Host"], json!({})).await;
    let mut host = connect(&app, &members[0]).await;
    host.join(&group_id, None).await;
    let list = host.next_of("recommendations").await;
    assert_eq!(list["strategy"], "popular_diverse", "{list}");
    assert!(!list["items"].as_array().unwrap().is_empty());
}

/// A refresh the inference queue refuses is tried again a refresh interval later, without waiting
/// for the room's next change (which may never come).
#[actix_web::test]
async fn a_refresh_refused_by_a_full_inference_queue_is_retried() {
    use std::sync::atomic::{AtomicBool, Ordering};

    let app = Arc::new(
        spawn_app_with(AppOptions {
            inference: InferenceSettings {
                max_batch: 1,
                queue_capacity: 1,
                threads: 1,
                ..InferenceSettings::default()
            },
            ..quick_refresh()
        })
        .await,
    );
    let (group_id, members) = group_of(&app, &["Host"], json!({})).await;
    let liked: Vec<String> = (0..5).map(|i| track_id(&app, i)).collect();
    like(&app, &members[0], &liked).await;
    let refused = |app: &TestApp| {
        app.state
            .metrics
            .group_recommendation_duration
            .with_label_values(&["error"])
            .get_sample_count()
    };
    // Solo listeners with a taste (so their lists need the models) keep the one-slot queue busy.
    let busy = Arc::new(AtomicBool::new(true));
    let mut load = Vec::new();
    for n in 0..8 {
        let (user_id, token) = app.create_user(&format!("Busy {n}")).await;
        let listener = Member { user_id, token };
        like(&app, &listener, &liked).await;
        let token = listener.token;
        let (app, busy) = (Arc::clone(&app), Arc::clone(&busy));
        load.push(tokio::spawn(async move {
            while busy.load(Ordering::Relaxed) {
                let body = json!({ "limit": 5 });
                let _ = app
                    .post_json_as("/api/v1/recommendations", &body, &token)
                    .await;
            }
        }));
    }
    let mut host = connect(&app, &members[0]).await;
    host.join(&group_id, None).await;
    // One add at a time until a refresh for it is refused: then no change is in flight.
    let mut seq = 0;
    for i in 5..200 {
        let before = refused(&app);
        let (ack, _) = host
            .op(
                json!({"type": "add_track", "track_id": track_id(&app, i)}),
                &format!("add-{i}"),
            )
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        seq = ack["seq"].as_i64().unwrap();
        let covered = loop {
            if refused(&app) > before {
                break false;
            }
            match host.try_recv(Duration::from_millis(20)).await {
                Some(f) if f["type"] == "recommendations" && f["seq"].as_i64() >= Some(seq) => {
                    break true
                }
                _ => {}
            }
        };
        if !covered {
            break;
        }
    }
    assert!(
        refused(&app) > 0,
        "the load never filled the inference queue"
    );
    busy.store(false, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    // Nothing changes in the room from here on, yet a list covering the last add arrives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frame = host
            .try_recv(deadline - tokio::time::Instant::now())
            .await
            .expect("a retried refresh covering the last add");
        if frame["type"] == "recommendations" && frame["seq"].as_i64() >= Some(seq) {
            break;
        }
    }
}

//! Rooms served by several processes: three servers sharing the real PostgreSQL and Redis, each
//! with members of the same room, keep one order; a server that goes away leaves the room
//! running on the others; a Redis restart heals from the store.

use std::{sync::Arc, time::Duration};

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::{
    groups::{connect, group_of, track_id, Member},
    helpers::{
        seed_fixture, spawn_app_with, AppOptions, PgProxy, PrivateRedis, Store, TestApp, TestDb,
    },
    sockets::Client,
};

/// `n` servers over one PostgreSQL database and one Redis key space.
async fn cluster(n: usize, redis_url: Option<String>) -> Vec<TestApp> {
    let prefix = format!("chorus-test:{}:", uuid::Uuid::new_v4().simple());
    let options = |database| AppOptions {
        store: Store::Postgres,
        redis: true,
        redis_url: redis_url.clone(),
        redis_prefix: Some(prefix.clone()),
        database,
        ..AppOptions::default()
    };
    let first = spawn_app_with(options(None)).await;
    let mut apps = vec![];
    for _ in 1..n {
        apps.push(spawn_app_with(options(Some(Arc::clone(&first.db)))).await);
    }
    apps.insert(0, first);
    apps
}

/// The room's log as stored: (seq, kind, payload).
async fn stored_log(app: &TestApp, group_id: &str, member: &Member) -> Vec<(i64, String, Value)> {
    let page = app
        .get_json_as(
            &format!("/api/v1/groups/{group_id}/events?after=0&limit=1000"),
            &member.token,
        )
        .await;
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["seq"].as_i64().unwrap(),
                e["kind"].as_str().unwrap().to_string(),
                e["payload"].clone(),
            )
        })
        .collect()
}

type Seen = Vec<(i64, String, Value)>;

fn event_of(frame: &Value) -> Option<(i64, String, Value)> {
    (frame["type"] == "event").then(|| {
        (
            frame["seq"].as_i64().unwrap(),
            frame["event"]["kind"].as_str().unwrap().to_string(),
            frame["event"]["payload"].clone(),
        )
    })
}

/// Event frames until the one with seq `last`, after those already `seen`.
async fn events_until(client: &mut Client, last: i64, mut seen: Seen) -> Seen {
    while seen.last().map_or(true, |(seq, _, _)| *seq < last) {
        seen.extend(event_of(&client.next_of("event").await));
    }
    seen
}

/// Sends `adds` add_track operations at once and waits for all their acks; returns the events
/// that came meanwhile.
async fn add_many(client: &mut Client, app: &TestApp, member: usize, adds: u32) -> Seen {
    for i in 0..adds {
        let track = track_id(app, member as u32 * 10 + i);
        client
            .send(json!({"type": "add_track", "track_id": track, "client_msg_id": format!("m{member}-{i}")}))
            .await;
    }
    let (mut seen, mut acked) = (Vec::new(), 0);
    while acked < adds {
        let frame = client.recv().await;
        if frame["type"] == "error" {
            panic!("member {member}: {frame}");
        }
        acked += u32::from(frame["type"] == "ack");
        seen.extend(event_of(&frame));
    }
    seen
}

async fn online_in(app: &TestApp, group_id: &str, viewer: &Member, member: &Member) -> bool {
    let view = app
        .get_json_as(&format!("/api/v1/groups/{group_id}"), &viewer.token)
        .await;
    shows_online(&view, &member.user_id)
}

/// Whether a room's view shows this member online (who must be a member).
pub fn shows_online(view: &Value, user_id: &str) -> bool {
    view["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == user_id)
        .map(|m| m["online"] == true)
        .unwrap()
}

/// Two processes, a room with its host on the first and a guest on the second, both joined.
async fn host_and_guest(apps: &[TestApp]) -> (String, Vec<Member>, Client, Client) {
    let (group_id, members) = group_of(&apps[0], &["Host", "Guest"], json!({})).await;
    let mut host = connect(&apps[0], &members[0]).await;
    let mut guest = connect(&apps[1], &members[1]).await;
    host.join(&group_id, None).await;
    guest.join(&group_id, None).await;
    (group_id, members, host, guest)
}

/// Polls `check` every 100 ms for up to `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn three_processes_serve_one_room_in_one_order() {
    let apps = cluster(3, None).await;
    let names = ["Host", "Ana", "Ben", "Cleo", "Dev", "Eli"];
    let (group_id, members) = group_of(&apps[0], &names, json!({})).await;
    // Members spread over the three processes, two on each.
    let home = |m: usize| &apps[m % 3];
    let mut clients = Vec::new();
    for (m, member) in members.iter().enumerate() {
        let mut client = connect(home(m), member).await;
        client.join(&group_id, None).await;
        clients.push(client);
    }
    // Who is online is known everywhere: Cleo is connected to the first process only, Ana to
    // the second.
    eventually(
        Duration::from_secs(5),
        "presence across processes",
        || async {
            online_in(&apps[1], &group_id, &members[0], &members[3]).await
                && online_in(&apps[0], &group_id, &members[0], &members[1]).await
        },
    )
    .await;

    // Everyone adds at once, through their own process.
    let adds = 6;
    let seen = join_all(
        clients
            .iter_mut()
            .enumerate()
            .map(|(m, client)| add_many(client, home(m), m, adds)),
    )
    .await;
    let log = stored_log(&apps[2], &group_id, &members[0]).await;
    let last = log.last().unwrap().0;
    assert_eq!(last, 1 + 5 + 6 * i64::from(adds), "every op stored once");
    assert_eq!(
        log.iter().map(|e| e.0).collect::<Vec<_>>(),
        (1..=last).collect::<Vec<_>>(),
        "gap-free"
    );
    // Every member, whichever process serves them, saw exactly the stored order.
    let after_joins: Vec<_> = log.iter().filter(|e| e.0 > 6).cloned().collect();
    for ((m, client), seen) in clients.iter_mut().enumerate().zip(seen) {
        assert_eq!(
            events_until(client, last, seen).await,
            after_joins,
            "member {m} on process {}",
            m % 3
        );
    }

    // The third process goes away: its members' sockets close; the room carries on on the
    // others, and they come back through another process with what they missed.
    apps[2].shutdown.begin().await;
    let (mut on_c1, mut on_c2) = (clients.remove(5), clients.remove(2));
    for client in [&mut on_c1, &mut on_c2] {
        let (_, _ending) = client.drain_until_end(Duration::from_secs(5)).await;
    }
    eventually(
        Duration::from_secs(8),
        "the gone process's members offline",
        || async {
            !online_in(&apps[0], &group_id, &members[0], &members[2]).await
                && !online_in(&apps[1], &group_id, &members[0], &members[5]).await
        },
    )
    .await;
    let seen = join_all(
        clients
            .iter_mut()
            .zip([0usize, 1, 3, 4])
            .map(|(client, m)| add_many(client, home(m), m + 10, 1)),
    )
    .await;
    let log = stored_log(&apps[0], &group_id, &members[0]).await;
    let new_last = log.last().unwrap().0;
    assert_eq!(new_last, last + 4);
    for (m, home) in [(2usize, &apps[0]), (5, &apps[1])] {
        let log = stored_log(&apps[0], &group_id, &members[0]).await;
        let missed: Seen = log.into_iter().filter(|e| e.0 > last).collect();
        let mut back = connect(home, &members[m]).await;
        let frames = back.join(&group_id, Some(last)).await;
        let replayed: Seen = frames.iter().filter_map(event_of).collect();
        assert_eq!(replayed, missed, "member {m} gets exactly what they missed");
        // And they act again, seen by the others.
        let (ack, _) = back
            .op(
                json!({"type": "add_track", "track_id": track_id(home, 90 + m as u32)}),
                "again",
            )
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    let last = stored_log(&apps[0], &group_id, &members[0])
        .await
        .last()
        .unwrap()
        .0;
    assert_eq!(last, new_last + 2);
    for (client, seen) in clients.iter_mut().zip(seen) {
        assert_eq!(
            events_until(client, last, seen).await.last().unwrap().0,
            last
        );
    }
}

#[actix_web::test]
async fn replicas_heal_from_the_store_after_redis_restarts() {
    let mut redis = PrivateRedis::start();
    let apps = cluster(2, Some(redis.url())).await;
    let (_, _, mut host, mut guest) = host_and_guest(&apps).await;
    add_many(&mut host, &apps[0], 0, 1).await;
    assert_eq!(
        events_until(&mut guest, 3, vec![]).await.last().unwrap().1,
        "track_added"
    );

    // Redis goes away: operations still store (the store orders them), but the news does not
    // reach the other process.
    redis.kill();
    add_many(&mut host, &apps[0], 1, 2).await;
    assert!(
        guest
            .try_recv(Duration::from_millis(500))
            .await
            .map_or(true, |f| f["type"] != "event"),
        "no news without Redis"
    );
    // Back: the guest's process reconnects and reads what it missed from the store.
    redis.restart();
    let healed = tokio::time::timeout(Duration::from_secs(10), events_until(&mut guest, 5, vec![]))
        .await
        .expect("the guest's process heals within 10 s of Redis coming back");
    assert_eq!(healed.iter().map(|e| e.0).collect::<Vec<_>>(), vec![4, 5]);
    // And news flows again.
    add_many(&mut host, &apps[0], 2, 1).await;
    assert_eq!(
        events_until(&mut guest, 6, vec![]).await.last().unwrap().0,
        6
    );
}

/// The first `recommendations` frame whose list reflects at least `seq`.
async fn list_at(client: &mut Client, seq: i64) -> Value {
    loop {
        let frame = client.next_of("recommendations").await;
        if frame["seq"].as_i64().unwrap() >= seq {
            return frame;
        }
    }
}

#[actix_web::test]
async fn one_process_ranks_for_the_room_and_the_others_show_its_list() {
    let apps = cluster(2, None).await;
    let (group_id, members, mut host, mut guest) = host_and_guest(&apps).await;
    // The guest likes tracks through their own process; the list on both sides reflects it,
    // and it is the same list (computed once, by the process holding the room's duties).
    add_many(&mut guest, &apps[1], 0, 3).await;
    let (on_host, on_guest) = (list_at(&mut host, 5).await, list_at(&mut guest, 5).await);
    assert_eq!(on_host["request_id"], on_guest["request_id"]);
    assert!(on_guest["members_without_taste"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m != members[1].user_id.as_str()));
    let over_rest = apps[1]
        .get_json_as(
            &format!("/api/v1/groups/{group_id}/recommendations"),
            &members[1].token,
        )
        .await;
    assert_eq!(over_rest["request_id"], on_guest["request_id"]);
    // Frames leave the reasons out; the REST mirror on the replica has the whole list.
    let ids = |list: &serde_json::Value| -> Vec<serde_json::Value> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["track"]["id"].clone())
            .collect()
    };
    assert_eq!(ids(&over_rest), ids(&on_guest));
    assert!(on_guest["items"][0].get("reasons").is_none());
    assert_eq!(
        over_rest["items"][0]["reasons"].as_array().unwrap().len(),
        8
    );

    // A like over solo REST on one process moves the room's list on both.
    let track = track_id(&apps[1], 77);
    let response = apps[1]
        .post_json_as(
            "/api/v1/feedback",
            &json!({"track_id": track, "kind": "like"}),
            &members[0].token,
        )
        .await;
    assert!(response.status().is_success(), "{}", response.status());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frame = guest.next_of("recommendations").await;
        if frame["members_without_taste"]
            .as_array()
            .unwrap()
            .is_empty()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the host's taste reached the room"
        );
    }
}

#[actix_web::test]
async fn a_postgres_outage_refuses_operations_cleanly_and_loses_nothing() {
    let proxy = PgProxy::start().await;
    let db = TestDb::new(Store::Postgres).await;
    seed_fixture(&db).await;
    let app = spawn_app_with(AppOptions {
        store: Store::Postgres,
        redis: true,
        database: Some(Arc::new(TestDb::at(proxy.url(&db)))),
        ..AppOptions::default()
    })
    .await;
    let (group_id, members) = group_of(&app, &["Host", "Guest"], json!({})).await;
    let mut host = connect(&app, &members[0]).await;
    host.join(&group_id, None).await;
    add_many(&mut host, &app, 0, 1).await;

    proxy.cut();
    let track = track_id(&app, 42);
    let started = std::time::Instant::now();
    let (answer, _) = host
        .op(json!({"type": "add_track", "track_id": track}), "during")
        .await;
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["code"], "dependency_unavailable", "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "a clear error, not a hang"
    );
    // The room is as it was: nothing half-applied.
    let view = app
        .get_json_as(&format!("/api/v1/groups/{group_id}"), &members[1].token)
        .await;
    assert_eq!(view["seq"], 3, "{view}");

    proxy.restore();
    // The client retries the same operation until the store is back: stored once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (answer, _) = host
            .op(json!({"type": "add_track", "track_id": track}), "during")
            .await;
        if answer["type"] == "ack" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{answer}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let log = stored_log(&app, &group_id, &members[0]).await;
    assert_eq!(
        log.iter().map(|e| e.0).collect::<Vec<_>>(),
        (1..=4).collect::<Vec<_>>()
    );
    assert_eq!(
        log.iter()
            .filter(|e| e.2["track"]["id"] == track.as_str())
            .count(),
        1
    );
}

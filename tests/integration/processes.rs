//! Real Chorus processes sharing a room through PostgreSQL and Redis, and one of them killed
//! with SIGKILL mid-session: the members elsewhere carry on, the dead process's members come
//! back through another with exactly what they missed, and no acknowledged operation is lost
//! or doubled. `scripts/cluster-test.sh` runs just this.

use std::{process::Child, time::Duration};

use chorus::catalog::import;
use serde_json::{json, Value};

use crate::{
    cluster::shows_online,
    helpers::{redis_url, seed_fixture, start_chorus_binary, Store, TestDb, FIXTURE_CSV},
    sockets::Client,
};

/// One `chorus` process on a free port, SIGKILLed when dropped.
struct Node {
    child: Child,
    address: String,
}

impl Node {
    fn start(database_url: &str, redis_prefix: &str) -> Self {
        let (child, port) = start_chorus_binary(|command| {
            command
                .env("DATABASE_URL", database_url)
                .env("REDIS_URL", redis_url())
                .env("CHORUS_REDIS_KEY_PREFIX", redis_prefix)
                .env("CHORUS_LOAD_DEMO_CATALOG", "false")
                .env("CHORUS_RATE_LIMIT", "false");
        });
        Self {
            child,
            address: format!("http://127.0.0.1:{port}"),
        }
    }

    fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Value {
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", self.address))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}{path}", self.address))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Member {
    user_id: String,
    token: String,
}

fn event_of(frame: &Value) -> Option<(i64, String)> {
    (frame["type"] == "event").then(|| {
        (
            frame["seq"].as_i64().unwrap(),
            frame["event"]["payload"]["entry_id"]
                .as_str()
                .or(frame["event"]["kind"].as_str())
                .unwrap()
                .to_string(),
        )
    })
}

/// The stored log as (seq, entry id or kind), and each added track's count.
async fn log(node: &Node, group_id: &str, member: &Member) -> (Vec<(i64, String)>, Vec<String>) {
    let page = node
        .get(
            &format!("/api/v1/groups/{group_id}/events?after=0&limit=1000"),
            &member.token,
        )
        .await;
    let events = page["events"].as_array().unwrap();
    let order = events
        .iter()
        .map(|e| {
            (
                e["seq"].as_i64().unwrap(),
                e["payload"]["entry_id"]
                    .as_str()
                    .or(e["kind"].as_str())
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    let added = events
        .iter()
        .filter(|e| e["kind"] == "track_added")
        .map(|e| e["payload"]["track"]["id"].as_str().unwrap().to_string())
        .collect();
    (order, added)
}

async fn online(node: &Node, group_id: &str, viewer: &Member, who: &Member) -> bool {
    let view = node
        .get(&format!("/api/v1/groups/{group_id}"), &viewer.token)
        .await;
    shows_online(&view, &who.user_id)
}

/// Sends an add and waits for its ack, keeping the events seen meanwhile.
async fn add(client: &mut Client, track: &str, id: &str, seen: &mut Vec<(i64, String)>) -> i64 {
    client
        .send(json!({"type": "add_track", "track_id": track, "client_msg_id": id}))
        .await;
    loop {
        let frame = client.recv().await;
        seen.extend(event_of(&frame));
        if frame["client_msg_id"] == id {
            assert_eq!(frame["type"], "ack", "{frame}");
            return frame["seq"].as_i64().unwrap();
        }
    }
}

#[actix_web::test]
async fn a_killed_process_loses_no_acknowledged_operation() {
    let db = TestDb::new(Store::Postgres).await;
    seed_fixture(&db).await;
    let prefix = format!("chorus-test:{}:", uuid::Uuid::new_v4().simple());
    // One at a time, so the first migrates the schema alone.
    let mut nodes: Vec<Node> = Vec::new();
    for _ in 0..3 {
        nodes.push(Node::start(&db.url, &prefix));
    }
    let tracks: Vec<String> =
        import::parse_spotify_songs(std::fs::File::open(FIXTURE_CSV).unwrap())
            .unwrap()
            .tracks
            .iter()
            .map(|t| t.id.as_str().to_string())
            .collect();
    let mut members = Vec::new();
    for name in ["Host", "Bea", "Cal"] {
        let user = nodes[0]
            .post("/api/v1/users", None, json!({"display_name": name}))
            .await;
        members.push(Member {
            user_id: user["user_id"].as_str().unwrap().to_string(),
            token: user["token"].as_str().unwrap().to_string(),
        });
    }
    let created = nodes[0]
        .post(
            "/api/v1/groups",
            Some(&members[0].token),
            json!({"name": "Kill night"}),
        )
        .await;
    let group_id = created["group_id"].as_str().unwrap().to_string();
    // Read through the first process: it loads the room first, so takes the room's lease.
    nodes[0]
        .get(&format!("/api/v1/groups/{group_id}"), &members[0].token)
        .await;
    for member in &members[1..] {
        nodes[1]
            .post(
                "/api/v1/groups/join",
                Some(&member.token),
                json!({"join_code": created["join_code"]}),
            )
            .await;
    }
    // The host on the first process (which runs the room's duties), Bea on the second, Cal on
    // the third.
    let mut clients = Vec::new();
    for (m, member) in members.iter().enumerate() {
        let mut client =
            Client::connect_at(&nodes[m].address, &member.user_id, &member.token).await;
        client.join(&group_id, None).await;
        clients.push(client);
    }
    let mut seen: Vec<Vec<(i64, String)>> = vec![vec![]; 3];
    let mut acked = Vec::new();
    for i in 0..3 {
        for m in 0..3 {
            let track = &tracks[m * 20 + i];
            add(&mut clients[m], track, &format!("{m}-{i}"), &mut seen[m]).await;
            acked.push(track.clone());
        }
    }
    // The listen-along clock runs on the room's duty holder: play, and seek near the end so
    // that the track must end after the kill.
    let (ack, _) = clients[0].op(json!({"type": "play"}), "play").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    // Read where the play was acknowledged: another process learns of it a moment later.
    let view = nodes[0]
        .get(&format!("/api/v1/groups/{group_id}"), &members[0].token)
        .await;
    let playing = view["now_playing"]["entry"]["entry_id"]
        .as_str()
        .unwrap()
        .to_string();
    let duration = view["now_playing"]["entry"]["track"]["duration_ms"]
        .as_u64()
        .unwrap();
    let (ack, _) = clients[0]
        .op(
            json!({"type": "seek", "position_ms": duration - 3_000}),
            "seek",
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let last_seen_by_host = ack["seq"].as_i64().unwrap();

    // The host sends one more add and the process dies before (or after) storing it.
    let in_flight = tracks[99].clone();
    clients[0]
        .send(json!({"type": "add_track", "track_id": in_flight, "client_msg_id": "in-flight"}))
        .await;
    nodes[0].kill_9();
    drop(clients.remove(0));

    // The others carry on at once, through their own processes.
    for i in 3..6 {
        for m in 1..3 {
            let track = &tracks[m * 20 + i];
            add(
                &mut clients[m - 1],
                track,
                &format!("{m}-{i}"),
                &mut seen[m],
            )
            .await;
            acked.push(track.clone());
        }
    }
    // The dead process's member goes offline within seconds (its heartbeats stopped)...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while online(&nodes[1], &group_id, &members[1], &members[0]).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the host still shows online"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ...and the room's duties moved: the track that was playing ends on time.
    let ended = loop {
        let frame = clients[0].next_of("event").await;
        seen[1].extend(event_of(&frame));
        if frame["event"]["kind"] == "playback_advanced" {
            break frame;
        }
    };
    assert_eq!(ended["event"]["payload"]["finished"], playing.as_str());
    assert_eq!(ended["event"]["payload"]["reason"], "ended");

    // The host comes back through the second process with their last seq: exactly the events
    // missed, then the in-flight add again, stored once whatever happened to it.
    let mut host =
        Client::connect_at(&nodes[1].address, &members[0].user_id, &members[0].token).await;
    let frames = host.join(&group_id, Some(last_seen_by_host)).await;
    let replayed: Vec<(i64, String)> = frames.iter().filter_map(event_of).collect();
    let (stored, _) = log(&nodes[2], &group_id, &members[2]).await;
    let missed: Vec<(i64, String)> = stored
        .iter()
        .filter(|(seq, _)| *seq > last_seen_by_host)
        .cloned()
        .collect();
    assert_eq!(replayed, missed);
    let mut after = Vec::new();
    add(&mut host, &in_flight, "in-flight", &mut after).await;
    acked.push(in_flight.clone());

    let (order, added) = log(&nodes[2], &group_id, &members[2]).await;
    assert_eq!(
        order.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        (1..=order.len() as i64).collect::<Vec<_>>(),
        "gap-free"
    );
    for track in &acked {
        assert_eq!(
            added.iter().filter(|t| *t == track).count(),
            1,
            "acknowledged add of {track} stored exactly once"
        );
    }
    assert_eq!(added.len(), acked.len());
    // What each surviving member saw is the stored order.
    for (m, client) in clients.iter_mut().enumerate() {
        let seen = &mut seen[m + 1];
        let last = order.last().unwrap().0;
        while seen.last().map_or(true, |(seq, _)| *seq < last) {
            seen.extend(event_of(&client.next_of("event").await));
        }
        let from = seen[0].0;
        let expected: Vec<_> = order
            .iter()
            .filter(|(seq, _)| *seq >= from)
            .cloned()
            .collect();
        assert_eq!(*seen, expected, "member {}", m + 1);
    }
}

//! `cargo bench --bench store`: the store alone under the live rooms' writes, as the group
//! actors issue them: each operation appends one `track_added` event to its room's log with the
//! acting member's interaction, in one write through the group-commit writer. No sockets, no
//! ranking: what the writer, sqlx and the database cost per operation, and how long an
//! operation waits.
//!
//! `RATE` operations per second in total, spread over the rooms, one in flight per room (a room's
//! actor runs one operation at a time); `RATE=0`: every room as fast as it can (the store's
//! capacity). Prints operations per second, the operation's latency percentiles, the process's
//! CPU time and file writes per operation.
//!
//! Environment: `STORE_URL` (default: a new SQLite file in a temporary directory; a
//! `postgres://` URL's database is used as is, so give it an empty one), `ROOMS` (2000),
//! `MEMBERS` (5), `RATE` (2000), `SECONDS` (10), `WARMUP` (3), `WRITES` (`together`; `apart`:
//! the interaction as a second write after the append's answer, as the user actors wrote it
//! before; `events`: appends only).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chorus::{
    catalog::synthetic,
    config::{DatabaseSettings, Secret},
    domain::{now_ms, UserId},
    storage::{
        feedback::{self, NewInteraction},
        groups::{self, Appended, NewGroup},
        tracks, Db,
    },
};
use tokio::sync::Mutex;

#[derive(Clone, Copy, PartialEq)]
enum Writes {
    Together,
    Apart,
    Events,
}

struct Room {
    id: String,
    members: Vec<UserId>,
    last_seq: Mutex<i64>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User and system CPU seconds of this process so far, and the bytes it wrote to files.
fn usage() -> (f64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let written = io
        .lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (cpu, written)
}

async fn setup(db: &Db, rooms: usize, members: usize) -> (Vec<Arc<Room>>, Vec<String>) {
    let catalog = synthetic::tracks(2_000, 7);
    tracks::insert(db, &catalog, "synthetic", |_| {})
        .await
        .expect("tracks");
    let track_ids = catalog.iter().map(|t| t.id.as_str().to_string()).collect();
    let mut all = Vec::with_capacity(rooms);
    for r in 0..rooms {
        let users: Vec<UserId> = (0..members).map(|_| UserId::generate()).collect();
        let mut tx = db.pool().begin().await.expect("begin");
        for (m, user) in users.iter().enumerate() {
            sqlx::query(
                "INSERT INTO users (id, display_name, token_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(user.as_str())
            .bind(format!("listener {r}-{m}"))
            .bind(format!("hash-{}", user.as_str()))
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .expect("user");
        }
        tx.commit().await.expect("commit");
        let id = format!("g_{}", uuid::Uuid::now_v7().simple());
        groups::create(
            db,
            &NewGroup {
                id: &id,
                name: "bench room",
                join_code: &format!("{r:08}"),
                host: &users[0],
                settings_json: "{}",
                created: ("group_created", r#"{"name":"bench room"}"#),
            },
        )
        .await
        .expect("group");
        all.push(Arc::new(Room {
            id,
            members: users,
            last_seq: Mutex::new(1),
        }));
    }
    (all, track_ids)
}

/// One operation: the room's append, then the member's interaction. Returns its duration.
async fn operation(db: &Db, room: &Room, n: u64, tracks: &[String], writes: Writes) -> Duration {
    let mut last_seq = room.last_seq.lock().await;
    let started = Instant::now();
    let member = &room.members[n as usize % room.members.len()];
    let track = &tracks[(n as usize * 7919) % tracks.len()];
    let payload = format!(
        r#"{{"entry_id":"e_{n:032x}","track":{{"id":"{track}","title":"A title of some length","artist":"An Artist","album":"An Album Name","duration_ms":215000}},"added_by":"{}"}}"#,
        member.as_str()
    );
    let interaction = NewInteraction {
        id: &uuid::Uuid::now_v7().to_string(),
        user_id: member,
        track_id: track,
        kind: "add",
        weight: 1.0,
        request_id: None,
        group_id: Some(&room.id),
        created_at: now_ms(),
    };
    let together = std::slice::from_ref(&interaction);
    match groups::append_events(
        db,
        &room.id,
        *last_seq,
        Some(member),
        Some("m1"),
        &[("track_added", &payload)],
        if writes == Writes::Together {
            together
        } else {
            &[]
        },
    )
    .await
    .expect("append")
    {
        Appended::Stored { first, .. } => *last_seq = first,
        other => panic!("append not stored: {other:?}"),
    }
    if writes == Writes::Apart {
        feedback::insert_interaction(db, &interaction)
            .await
            .expect("interaction");
    }
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let rooms: usize = env_or("ROOMS", 2_000);
    let members: usize = env_or("MEMBERS", 5);
    let rate: f64 = env_or("RATE", 2_000.0);
    let seconds: f64 = env_or("SECONDS", 10.0);
    let warmup: f64 = env_or("WARMUP", 3.0);
    let writes = match std::env::var("WRITES").as_deref() {
        Ok("apart") => Writes::Apart,
        Ok("events") => Writes::Events,
        Ok("together") | Err(_) => Writes::Together,
        Ok(other) => panic!("WRITES is together, apart or events, not {other:?}"),
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = std::env::var("STORE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let db = Db::connect(&DatabaseSettings {
        url: Secret::new(&url),
        max_connections: 8,
    })
    .await
    .expect("store");
    let started = Instant::now();
    let (rooms_list, track_ids) = setup(&db, rooms, members).await;
    eprintln!(
        "{} rooms x {members} members on {} in {:.1} s",
        rooms,
        db.backend().name(),
        started.elapsed().as_secs_f64()
    );
    let tracks = Arc::new(track_ids);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Duration)>();
    let run_for = Duration::from_secs_f64(warmup + seconds);
    let begin = Instant::now();
    let measure_from = begin + Duration::from_secs_f64(warmup);
    let mut workers = Vec::new();
    for (i, room) in rooms_list.iter().enumerate() {
        let (db, room, tracks, done) = (db.clone(), room.clone(), tracks.clone(), done_tx.clone());
        workers.push(tokio::spawn(async move {
            // Open loop: this room's share of the rate, from its own offset in the period.
            let period = (rate > 0.0).then(|| Duration::from_secs_f64(rooms as f64 / rate));
            let mut next =
                begin + period.map_or(Duration::ZERO, |p| p.mul_f64(i as f64 / rooms as f64));
            let mut n = 0u64;
            while begin.elapsed() < run_for {
                if let Some(period) = period {
                    tokio::time::sleep_until(next.into()).await;
                    next += period;
                }
                let took = operation(&db, &room, n, &tracks, writes).await;
                n += 1;
                let _ = done.send((Instant::now(), took));
            }
        }));
    }
    drop(done_tx);
    tokio::time::sleep_until(measure_from.into()).await;
    let (cpu0, written0) = usage();
    let mut latencies = Vec::new();
    let mut measured_until = measure_from;
    while let Some((at, took)) = done_rx.recv().await {
        if at >= measure_from && at <= measure_from + Duration::from_secs_f64(seconds) {
            latencies.push(took);
            measured_until = at;
        }
        if at > measure_from + Duration::from_secs_f64(seconds) && measured_until >= measure_from {
            break;
        }
    }
    let (cpu1, written1) = usage();
    for worker in workers {
        worker.abort();
    }
    let ops = latencies.len() as f64;
    latencies.sort();
    println!(
        "store {} ({}): {} rooms, rate {}: {:.0} ops/s, op p50 {:.2} ms p99 {:.2} ms max {:.2} ms, \
         {:.0} us CPU/op, {:.1} KB written/op",
        db.backend().name(),
        std::env::var("WRITES").unwrap_or_else(|_| "together".into()),
        rooms,
        if rate > 0.0 { format!("{rate:.0}") } else { "as fast as possible".into() },
        ops / seconds,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
        (cpu1 - cpu0) / ops * 1e6,
        (written1 - written0) as f64 / ops / 1e3,
    );
}

//! One storage suite, run against SQLite and the real PostgreSQL.

use std::collections::HashSet;

use chorus::{
    catalog::import,
    domain::{AccessToken, DisplayName, UserId},
    storage::{
        bandit,
        feedback::{self, NewInteraction},
        groups, tracks, users, Db,
    },
};

use crate::helpers::{Store, TestDb, FIXTURE_CSV, FIXTURE_TRACKS};

macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[actix_web::test] async fn $name() { super::$name(super::Store::Sqlite).await; })+
        }
        mod postgres {
            $(#[actix_web::test] async fn $name() { super::$name(super::Store::Postgres).await; })+
        }
    };
}

on_both_stores!(
    migrations_are_idempotent,
    users_round_trip_by_token_hash,
    tracks_round_trip_and_inserts_skip_existing_ids,
    group_event_seq_is_gap_free_under_concurrency,
    appends_after_a_seen_seq_fail_when_the_log_moved_on,
    events_after_pages_in_order,
    schema_constraints_reject_bad_rows,
    a_bad_write_fails_alone_in_a_batch,
    an_append_stores_the_feedback_it_implies_all_or_none,
    one_batch_stores_many_rooms_appends_each_in_its_own_order,
    the_store_closes_promptly_right_after_writes,
    a_flush_counts_each_shown_list_once,
);

/// On SQLite the group writer's checkpoint thread copies committed appends into the database
/// file while the store stays open (commits no longer checkpoint by themselves below 10,000
/// WAL pages): a connection that reads the file alone (`immutable=1` ignores the WAL) sees them.
#[actix_web::test]
async fn sqlite_appends_reach_the_database_file_while_the_store_is_open() {
    let test_db = TestDb::new(Store::Sqlite).await;
    let db = test_db.connect().await;
    let room = new_group(&db).await;
    append_five(&db, &room).await;
    let path = test_db.url.strip_prefix("sqlite://").unwrap();
    let count = |uri: String| -> rusqlite::Result<i64> {
        let conn = rusqlite::Connection::open_with_flags(
            uri,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
        )?;
        conn.query_row(
            "SELECT COUNT(*) FROM group_events WHERE group_id = ?1",
            [&room],
            |row| row.get(0),
        )
    };
    // The room's events (its creation's and the five), as every reader sees them.
    let stored = count(format!("file:{path}")).unwrap();
    assert!(stored >= 5, "{stored}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        // An error is a read that met a checkpoint writing the file: look again.
        let found = count(format!("file:{path}?immutable=1")).unwrap_or(-1);
        if found == stored {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{found} of {stored} events in the database file after 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    db.close().await;
}

async fn migrations_are_idempotent(store: Store) {
    let db = TestDb::new(store).await;
    db.connect().await.close().await;
    let again = db.connect().await;
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(again.pool())
        .await
        .unwrap();
    assert!(applied >= 1);
}

async fn users_round_trip_by_token_hash(store: Store) {
    let test_db = TestDb::new(store).await;
    let db = test_db.connect().await;
    let token = AccessToken::generate();
    let id = UserId::generate();
    let created = users::create(
        &db,
        &id,
        &DisplayName::parse("Émile").unwrap(),
        &token.hash(),
    )
    .await
    .unwrap();
    assert_eq!(
        users::find_by_token(&db, &token.hash()).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(users::find(&db, &id).await.unwrap(), Some(created));
    assert_eq!(
        users::find_by_token(&db, &AccessToken::generate().hash())
            .await
            .unwrap(),
        None
    );
    // Token hashes are unique.
    let clash = users::create(
        &db,
        &UserId::generate(),
        &DisplayName::parse("x").unwrap(),
        &token.hash(),
    )
    .await;
    assert!(clash.is_err());
}

async fn tracks_round_trip_and_inserts_skip_existing_ids(store: Store) {
    let test_db = TestDb::new(store).await;
    let db = test_db.connect().await;
    let report = import::parse_spotify_songs(std::fs::File::open(FIXTURE_CSV).unwrap()).unwrap();
    let mut reported = 0;
    let inserted = tracks::insert(&db, &report.tracks, "fixture", |done| reported = done)
        .await
        .unwrap();
    assert_eq!(inserted as usize, FIXTURE_TRACKS);
    assert_eq!(reported, FIXTURE_TRACKS, "progress reaches the total");
    assert_eq!(
        tracks::insert(&db, &report.tracks, "fixture", |_| {})
            .await
            .unwrap(),
        0
    );
    let mut expected = report.tracks.clone();
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    let loaded = tracks::load_all(&db).await.unwrap();
    assert_eq!(loaded.len(), expected.len());
    for (a, b) in loaded.iter().zip(&expected) {
        assert_eq!(a, b, "track {} changed on its way through {store:?}", b.id);
    }
    assert_eq!(tracks::count(&db).await.unwrap(), FIXTURE_TRACKS as i64);
}

/// Five plain events appended to `room`, one at a time.
async fn append_five(db: &Db, room: &str) {
    for _ in 0..5 {
        groups::append_event(db, room, "t", None, "{}")
            .await
            .unwrap()
            .unwrap();
    }
}

async fn new_group(db: &Db) -> String {
    let host = UserId::generate();
    users::create(
        db,
        &host,
        &DisplayName::parse("Host").unwrap(),
        &AccessToken::generate().hash(),
    )
    .await
    .unwrap();
    let id = format!("g_{}", uuid::Uuid::new_v4().simple());
    let code = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    groups::create(
        db,
        &groups::NewGroup {
            id: &id,
            name: "Friday",
            join_code: &code,
            host: &host,
            settings_json: "{}",
            created: ("group_created", "{}"),
        },
    )
    .await
    .unwrap();
    id
}

async fn group_event_seq_is_gap_free_under_concurrency(store: Store) {
    let test_db = TestDb::new(store).await;
    let db = test_db.connect().await;
    let group = new_group(&db).await;
    let appenders: Vec<_> = (0..8)
        .map(|worker| {
            let db = db.clone();
            let group = group.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..10 {
                    let payload = format!("{{\"worker\":{worker},\"i\":{i}}}");
                    seqs.push(
                        groups::append_event(&db, &group, "test", None, &payload)
                            .await
                            .unwrap()
                            .unwrap(),
                    );
                }
                seqs
            })
        })
        .collect();
    let mut all = Vec::new();
    for appender in appenders {
        let seqs = appender.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "one writer's events keep their order"
        );
        all.extend(seqs);
    }
    all.sort_unstable();
    // seq 1 is the group's creation.
    assert_eq!(all, (2..=81).collect::<Vec<i64>>());
    assert_eq!(
        groups::append_event(&db, "g_missing", "test", None, "{}")
            .await
            .unwrap(),
        None
    );
}

/// What processes serving one room do: each appends only after the seq it has seen; an appender
/// that is behind stores nothing, reads what it missed and tries again.
async fn appends_after_a_seen_seq_fail_when_the_log_moved_on(store: Store) {
    let test_db = TestDb::new(store).await;
    let db = test_db.connect().await;
    let group = new_group(&db).await;
    let first = groups::append_events(&db, &group, 1, None, None, &[("a", "{}"), ("b", "{}")], &[])
        .await
        .unwrap();
    assert!(matches!(first, groups::Appended::Stored { first: 2, .. }));
    // Decided on seq 1, but the log is at 3: nothing stored.
    assert_eq!(
        groups::append_events(&db, &group, 1, None, None, &[("late", "{}")], &[])
            .await
            .unwrap(),
        groups::Appended::Behind { last_seq: 3 }
    );
    assert_eq!(
        groups::events_after(&db, &group, 3, 10).await.unwrap(),
        vec![]
    );
    assert_eq!(
        groups::append_events(&db, "g_missing", 1, None, None, &[("x", "{}")], &[])
            .await
            .unwrap(),
        groups::Appended::NoGroup
    );
    // Eight appenders racing, each deciding on the log as read: every one of their 40 events is
    // stored once, in one gap-free order, and each appender's own events keep their order.
    let appenders: Vec<_> = (0..8)
        .map(|worker| {
            let (db, group) = (db.clone(), group.clone());
            tokio::spawn(async move {
                let mut seen = groups::find(&db, &group).await.unwrap().unwrap().last_seq;
                let (mut mine, mut retries) = (Vec::new(), 0);
                while mine.len() < 5 {
                    let payload = format!("{{\"worker\":{worker},\"i\":{}}}", mine.len());
                    match groups::append_events(
                        &db,
                        &group,
                        seen,
                        None,
                        None,
                        &[("t", &payload)],
                        &[],
                    )
                    .await
                    .unwrap()
                    {
                        groups::Appended::Stored { first, .. } => {
                            mine.push(first);
                            seen = first;
                        }
                        groups::Appended::Behind { last_seq } => {
                            assert!(last_seq > seen);
                            seen = last_seq;
                            retries += 1;
                        }
                        groups::Appended::NoGroup => unreachable!(),
                    }
                }
                (mine, retries)
            })
        })
        .collect();
    let mut all = Vec::new();
    for appender in appenders {
        let (mine, _retries) = appender.await.unwrap();
        assert!(mine.windows(2).all(|w| w[0] < w[1]));
        all.extend(mine);
    }
    all.sort_unstable();
    assert_eq!(all, (4..=43).collect::<Vec<i64>>());
    let stored = groups::events_after(&db, &group, 3, 100).await.unwrap();
    assert_eq!(
        stored.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (4..=43).collect::<Vec<i64>>()
    );
}

async fn events_after_pages_in_order(store: Store) {
    let test_db = TestDb::new(store).await;
    let db = test_db.connect().await;
    let group = new_group(&db).await;
    let actor = UserId::generate();
    for i in 0..5 {
        groups::append_event(
            &db,
            &group,
            "added",
            Some(&actor),
            &format!("{{\"i\":{i}}}"),
        )
        .await
        .unwrap();
    }
    let page = groups::events_after(&db, &group, 2, 2).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(page[0].payload, "{\"i\":1}");
    assert_eq!(page[0].actor_user_id.as_deref(), Some(actor.as_str()));
    assert!(groups::events_after(&db, &group, 6, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn schema_constraints_reject_bad_rows(store: Store) {
    let test_db = TestDb::new(store).await;
    let db = test_db.connect().await;
    // Interactions must name a known user and track and a known kind.
    let bad = sqlx::query(
        "INSERT INTO interactions (id, user_id, track_id, kind, weight, created_at) VALUES ('i1', 'nobody', 'none', 'like', 1.0, 0)",
    )
    .execute(db.pool())
    .await;
    assert!(bad.is_err(), "foreign keys are enforced");
    let (stored_tracks, user) = tracks_and_user(&db, 2).await;
    let insert = |kind: &'static str| {
        let db = db.clone();
        let user = user.clone();
        let track = stored_tracks[0].id.to_string();
        async move {
            sqlx::query("INSERT INTO interactions (id, user_id, track_id, kind, weight, created_at) VALUES ($1, $2, $3, $4, 1.0, 0)")
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(user.as_str())
                .bind(track)
                .bind(kind)
                .execute(db.pool())
                .await
        }
    };
    assert!(insert("like").await.is_ok());
    assert!(insert("love").await.is_err(), "unknown kinds are refused");
    let ids: HashSet<_> = stored_tracks[..2]
        .iter()
        .map(|t| t.id.to_string())
        .collect();
    assert_eq!(ids.len(), 2);
}

/// Interactions and group events are committed in batches; a write that breaks a constraint
/// (an unknown track) must fail on its own while the writes batched with it are stored.
async fn a_bad_write_fails_alone_in_a_batch(store: Store) {
    let test_db = TestDb::new(store).await;
    let db = test_db.connect().await;
    let (stored_tracks, user) = tracks_and_user(&db, 20).await;
    let group = new_group(&db).await;
    let writes = (0..40).map(|i| {
        let (db, user, group) = (db.clone(), user.clone(), group.clone());
        let track = if i == 17 {
            "no-such-track".to_string()
        } else {
            stored_tracks[i % 20].id.as_str().to_string()
        };
        tokio::spawn(async move {
            let stored = like(&db, &format!("i{i}"), &user, &track, i as i64).await;
            let appended = groups::append_event(&db, &group, "test", None, "{}").await;
            (stored.is_ok(), appended.unwrap().is_some())
        })
    });
    let mut results = Vec::new();
    for write in writes.collect::<Vec<_>>() {
        results.push(write.await.unwrap());
    }
    let failed: Vec<usize> = (0..40).filter(|&i| !results[i].0).collect();
    assert_eq!(failed, vec![17]);
    assert!(results.iter().all(|r| r.1), "every event was appended");
    let stored = feedback::interactions(&db, &user).await.unwrap();
    assert_eq!(stored.len(), 39);
    let events = groups::events_after(&db, &group, 0, 100).await.unwrap();
    assert_eq!(events.last().unwrap().seq, 41);
}

/// A room's operation is one write: its events and the members' feedback they imply are
/// stored together or not at all (an append that is behind, or one that breaks a constraint,
/// stores neither), also when batched with other rooms' appends.
async fn an_append_stores_the_feedback_it_implies_all_or_none(store: Store) {
    let test_db = TestDb::new(store).await;
    let db = test_db.connect().await;
    let (stored_tracks, user) = tracks_and_user(&db, 10).await;
    let add = |id: &str, track: &str| (id.to_string(), track.to_string());
    let append = |group: String, after: i64, feedback: Vec<(String, String)>| {
        let (db, user) = (db.clone(), user.clone());
        async move {
            let rows: Vec<NewInteraction<'_>> = feedback
                .iter()
                .map(|(id, track)| NewInteraction {
                    id,
                    user_id: &user,
                    track_id: track,
                    kind: "add",
                    weight: 1.0,
                    request_id: None,
                    group_id: Some(&group),
                    created_at: 5,
                })
                .collect();
            groups::append_events(
                &db,
                &group,
                after,
                Some(&user),
                None,
                &[("added", "{}")],
                &rows,
            )
            .await
        }
    };
    let group = new_group(&db).await;
    let track = stored_tracks[0].id.to_string();
    assert!(matches!(
        append(group.clone(), 1, vec![add("i1", &track)])
            .await
            .unwrap(),
        groups::Appended::Stored { first: 2, .. }
    ));
    let stored = feedback::interactions(&db, &user).await.unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|r| (
                r.id.as_str(),
                r.track_id.as_str(),
                r.kind.as_str(),
                r.created_at
            ))
            .collect::<Vec<_>>(),
        vec![("i1", track.as_str(), "add", 5)]
    );
    // Behind: neither the event nor its feedback.
    assert_eq!(
        append(group.clone(), 1, vec![add("i2", &track)])
            .await
            .unwrap(),
        groups::Appended::Behind { last_seq: 2 }
    );
    assert_eq!(feedback::interactions(&db, &user).await.unwrap().len(), 1);
    // Twelve rooms' appends reaching the writer together, one with feedback for an unknown
    // track: that one stores nothing, the others store their events and feedback.
    let mut rooms = Vec::new();
    for _ in 0..12 {
        rooms.push(new_group(&db).await);
    }
    let appends: Vec<_> = rooms
        .iter()
        .enumerate()
        .map(|(i, room)| {
            let track = if i == 5 {
                "no-such-track".to_string()
            } else {
                stored_tracks[i % 10].id.to_string()
            };
            tokio::spawn(append(room.clone(), 1, vec![add(&format!("r{i}"), &track)]))
        })
        .collect();
    for (i, appended) in futures_util::future::join_all(appends)
        .await
        .into_iter()
        .enumerate()
    {
        let appended = appended.unwrap();
        let events = groups::events_after(&db, &rooms[i], 1, 10).await.unwrap();
        if i == 5 {
            assert!(appended.is_err(), "an unknown track fails the write");
            assert_eq!(events, vec![], "and no event of it is stored");
        } else {
            assert!(matches!(
                appended.unwrap(),
                groups::Appended::Stored { first: 2, .. }
            ));
            assert_eq!(events.len(), 1);
        }
    }
    let ids: HashSet<String> = feedback::interactions(&db, &user)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    let expected: HashSet<String> = std::iter::once("i1".to_string())
        .chain((0..12).filter(|&i| i != 5).map(|i| format!("r{i}")))
        .collect();
    assert_eq!(ids, expected);
}

/// Writes for many rooms that reach the writer together (each room's several appends, some
/// decided on a stale seq, one for a room that does not exist, feedback rows between them): each
/// gets its own answer, every room's log is gap-free in its appenders' order.
async fn one_batch_stores_many_rooms_appends_each_in_its_own_order(store: Store) {
    let test_db = TestDb::new(store).await;
    let db = test_db.connect().await;
    let (stored_tracks, user) = tracks_and_user(&db, 5).await;
    let mut rooms = Vec::new();
    for _ in 0..12 {
        let room = new_group(&db).await;
        // At seq 2 before the batch, so an append decided on seq 1 is stale.
        groups::append_event(&db, &room, "start", None, "{}")
            .await
            .unwrap();
        rooms.push(room);
    }
    let writes = (0..12 * 4).map(|i| {
        let (db, user, room) = (db.clone(), user.clone(), rooms[i % 12].clone());
        let track = stored_tracks[i % 5].id.as_str().to_string();
        tokio::spawn(async move {
            let payload = format!("{{\"i\":{i}}}");
            // Every fourth room's third write decided on seq 1, which has moved on by then.
            let seen = (i / 12 == 2 && i % 4 == 0).then_some(1);
            let appended = match seen {
                Some(seen) => {
                    groups::append_events(&db, &room, seen, None, None, &[("t", &payload)], &[])
                        .await
                }
                None => groups::append_event(&db, &room, "t", None, &payload)
                    .await
                    .map(|stored| match stored {
                        Some(seq) => groups::Appended::Stored { first: seq, at: 0 },
                        None => groups::Appended::NoGroup,
                    }),
            };
            let liked = like(&db, &format!("b{i}"), &user, &track, i as i64).await;
            let missing = groups::append_event(&db, "g_missing", "t", None, "{}").await;
            (i, appended.unwrap(), liked.is_ok(), missing.unwrap())
        })
    });
    let mut stale = 0;
    for write in writes.collect::<Vec<_>>() {
        let (i, appended, liked, missing) = write.await.unwrap();
        assert!(liked, "feedback {i} stored");
        assert_eq!(missing, None);
        match appended {
            groups::Appended::Stored { first, .. } => assert!(first >= 3),
            groups::Appended::Behind { last_seq } => {
                assert!(last_seq > 1);
                stale += 1;
            }
            groups::Appended::NoGroup => panic!("room {i} exists"),
        }
    }
    assert_eq!(stale, 3, "the three writes decided on seq 1");
    assert_eq!(feedback::interactions(&db, &user).await.unwrap().len(), 48);
    for (r, room) in rooms.iter().enumerate() {
        let events = groups::events_after(&db, room, 1, 100).await.unwrap();
        let expected = if r % 4 == 0 { 4 } else { 5 };
        assert_eq!(
            events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (2..2 + expected).collect::<Vec<i64>>(),
            "room {r}: gap-free"
        );
    }
}

/// The group-commit writer keeps its connection while writes keep coming; closing the store
/// (every shutdown does) must not wait for it.
async fn the_store_closes_promptly_right_after_writes(store: Store) {
    let test_db = TestDb::new(store).await;
    let db = test_db.connect().await;
    let room = new_group(&db).await;
    append_five(&db, &room).await;
    tokio::time::timeout(std::time::Duration::from_secs(5), db.close())
        .await
        .expect("the store closed within 5 s");
}

/// A flush of many shown lists (several multi-row statements) stores each as pending and counts
/// it as a pull of its arm; the same shows flushed again (a retry after a lost answer) count
/// nothing, and a reward settles its list.
async fn a_flush_counts_each_shown_list_once(store: Store) {
    let test_db = TestDb::new(store).await;
    let db = test_db.connect().await;
    let shown: Vec<bandit::Shown> = (0..97)
        .map(|i| bandit::Shown {
            request_id: format!("list-{i}"),
            bandit: "solo_strategy",
            context: "many",
            arm: if i % 3 == 0 { "content" } else { "hybrid" },
            at: 1_000 + i,
        })
        .collect();
    let flush = |shown: Vec<bandit::Shown>, rewards: Vec<(String, f64)>| bandit::Flush {
        shown,
        rewards,
        expire_before: 0,
        history_at: None,
        now: 5_000,
    };
    let pulls = |rows: Vec<bandit::PosteriorRow>| -> Vec<(String, i64, f64)> {
        rows.into_iter()
            .map(|r| (r.arm, r.pulls, r.successes))
            .collect()
    };
    bandit::flush(&db, &flush(shown.clone(), vec![]))
        .await
        .unwrap();
    let expected = vec![
        ("content".to_string(), 33, 0.0),
        ("hybrid".to_string(), 64, 0.0),
    ];
    assert_eq!(pulls(bandit::load_posteriors(&db).await.unwrap()), expected);
    let again = bandit::flush(
        &db,
        &flush(shown[40..60].to_vec(), vec![("list-3".into(), 1.0)]),
    )
    .await
    .unwrap();
    assert_eq!(again.rewarded, 1);
    let expected = vec![
        ("content".to_string(), 33, 1.0),
        ("hybrid".to_string(), 64, 0.0),
    ];
    assert_eq!(pulls(bandit::load_posteriors(&db).await.unwrap()), expected);
    let pending: i64 = bandit::pending_counts(&db).await.unwrap().values().sum();
    assert_eq!(pending, 96);
}

/// Records `user`'s like of `track`.
async fn like(db: &Db, id: &str, user: &UserId, track: &str, at: i64) -> Result<(), sqlx::Error> {
    feedback::insert_interaction(
        db,
        &NewInteraction {
            id,
            user_id: user,
            track_id: track,
            kind: "like",
            weight: 1.0,
            request_id: None,
            group_id: None,
            created_at: at,
        },
    )
    .await
}

/// Stores the fixture's first `n` tracks and one user.
async fn tracks_and_user(db: &Db, n: usize) -> (Vec<chorus::catalog::Track>, UserId) {
    let report = import::parse_spotify_songs(std::fs::File::open(FIXTURE_CSV).unwrap()).unwrap();
    tracks::insert(db, &report.tracks[..n], "fixture", |_| {})
        .await
        .unwrap();
    let user = UserId::generate();
    users::create(
        db,
        &user,
        &DisplayName::parse("Listener").unwrap(),
        &AccessToken::generate().hash(),
    )
    .await
    .unwrap();
    (report.tracks[..n].to_vec(), user)
}

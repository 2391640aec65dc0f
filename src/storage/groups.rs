//! Group sessions and their event log. The log's per-group `seq` is gap-free: an append reads
//! where the log ends (its highest seq) and stores its events in one transaction, with the room
//! locked (SQLite's write lock, PostgreSQL's row lock), so a failed append leaves no hole and
//! concurrent appenders (in this or another process) are serialised (`super::writer`).

use sqlx::{any::AnyRow, AssertSqlSafe, Row};

use super::{
    feedback::NewInteraction,
    writer::{EventsWritten, Write, Written, LOG_END},
    Db,
};
use crate::domain::{now_ms, UserId};

#[derive(Debug, Clone, PartialEq)]
pub struct NewGroup<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub join_code: &'a str,
    pub host: &'a UserId,
    pub settings_json: &'a str,
    /// The log's first event (seq 1), `(kind, payload)`: the group's creation.
    pub created: (&'a str, &'a str),
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    pub id: String,
    pub name: String,
    pub join_code: String,
    /// The log's highest seq.
    pub last_seq: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredEvent {
    pub seq: i64,
    pub kind: String,
    pub actor_user_id: Option<String>,
    pub payload: String,
    pub client_msg_id: Option<String>,
    pub created_at: i64,
}

/// Whether an insert failed only because the join code is taken (the caller draws another).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Creates the group, its host's membership and the first event, in one transaction.
pub async fn create(db: &Db, group: &NewGroup<'_>) -> Result<i64, sqlx::Error> {
    let now = now_ms();
    let _turn = db.write_turn().await;
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO group_sessions (id, name, join_code, host_user_id, settings, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(group.id)
    .bind(group.name)
    .bind(group.join_code)
    .bind(group.host.as_str())
    .bind(group.settings_json)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO group_members (group_id, user_id, role, joined_at) VALUES ($1, $2, 'host', $3)")
        .bind(group.id)
        .bind(group.host.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    insert_event(
        &mut tx,
        group.id,
        1,
        group.created,
        Some(group.host),
        None,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(now)
}

/// How many rooms `host` created at or after `since`, and when the oldest of them was created.
pub async fn created_by_since(
    db: &Db,
    host: &UserId,
    since: i64,
) -> Result<(i64, Option<i64>), sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS rooms, MIN(created_at) AS oldest FROM group_sessions \
         WHERE host_user_id = $1 AND created_at >= $2",
    )
    .bind(host.as_str())
    .bind(since)
    .fetch_one(db.pool())
    .await?;
    Ok((row.try_get("rooms")?, row.try_get("oldest")?))
}

pub async fn find(db: &Db, id: &str) -> Result<Option<GroupRow>, sqlx::Error> {
    sqlx::query(AssertSqlSafe(format!(
        "SELECT id, name, join_code, created_at, {LOG_END} AS last_seq FROM group_sessions \
         WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db.pool())
    .await?
    .map(|row| group_row(&row))
    .transpose()
}

pub async fn find_by_join_code(db: &Db, code: &str) -> Result<Option<GroupRow>, sqlx::Error> {
    sqlx::query(AssertSqlSafe(format!(
        "SELECT id, name, join_code, created_at, {LOG_END} AS last_seq FROM group_sessions \
         WHERE join_code = $1 AND closed_at IS NULL"
    )))
    .bind(code)
    .fetch_optional(db.pool())
    .await?
    .map(|row| group_row(&row))
    .transpose()
}

fn group_row(row: &AnyRow) -> Result<GroupRow, sqlx::Error> {
    Ok(GroupRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        join_code: row.try_get("join_code")?,
        last_seq: row.try_get("last_seq")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Stores a snapshot of the group's state at `seq`, unless a later one is already stored
/// (processes may race; the newest wins).
pub async fn save_snapshot(
    db: &Db,
    group_id: &str,
    seq: i64,
    state_json: &str,
) -> Result<(), sqlx::Error> {
    let _turn = db.write_turn().await;
    sqlx::query(
        "INSERT INTO group_snapshots (group_id, seq, state, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (group_id) DO UPDATE SET seq = excluded.seq, state = excluded.state, \
         created_at = excluded.created_at WHERE group_snapshots.seq < excluded.seq",
    )
    .bind(group_id)
    .bind(seq)
    .bind(state_json)
    .bind(now_ms())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The group's latest snapshot: its seq and state (JSON).
pub async fn load_snapshot(db: &Db, group_id: &str) -> Result<Option<(i64, String)>, sqlx::Error> {
    let row = sqlx::query("SELECT seq, state FROM group_snapshots WHERE group_id = $1")
        .bind(group_id)
        .fetch_optional(db.pool())
        .await?;
    row.map(|row| Ok((row.try_get("seq")?, row.try_get("state")?)))
        .transpose()
}

/// Appends one event at the end of the log, whatever it is, and returns its seq. `Ok(None)` if
/// the group does not exist. (Live groups append with [`append_events`], which checks the seq.)
pub async fn append_event(
    db: &Db,
    group_id: &str,
    kind: &str,
    actor: Option<&UserId>,
    payload_json: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let written = write_events(
        db,
        group_id,
        None,
        actor,
        None,
        &[(kind, payload_json)],
        &[],
    )
    .await?;
    Ok(match written {
        Appended::Stored { first, .. } => Some(first),
        Appended::Behind { .. } | Appended::NoGroup => None,
    })
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored with consecutive seqs from `first`, all sharing the timestamp `at`.
    Stored {
        first: i64,
        at: i64,
    },
    /// Nothing stored: the log is at `last_seq`, past what the appender had seen (another
    /// process appended first). The appender reads what it missed and decides again.
    Behind {
        last_seq: i64,
    },
    NoGroup,
}

/// Appends `events` (`(kind, payload)`) with consecutive seqs after `after`, all or none,
/// through the group-commit writer — only if the log's last seq is still `after`, so every
/// appender decides on the whole log before it (one order per group across processes).
/// `interactions`, the members' feedback the events imply, are stored in the same write and
/// only with the events: one write per operation, and no event without its feedback.
pub async fn append_events(
    db: &Db,
    group_id: &str,
    after: i64,
    actor: Option<&UserId>,
    client_msg_id: Option<&str>,
    events: &[(&str, &str)],
    interactions: &[NewInteraction<'_>],
) -> Result<Appended, sqlx::Error> {
    write_events(
        db,
        group_id,
        Some(after),
        actor,
        client_msg_id,
        events,
        interactions,
    )
    .await
}

async fn write_events(
    db: &Db,
    group_id: &str,
    after: Option<i64>,
    actor: Option<&UserId>,
    client_msg_id: Option<&str>,
    events: &[(&str, &str)],
    interactions: &[NewInteraction<'_>],
) -> Result<Appended, sqlx::Error> {
    let now = now_ms();
    let written = db
        .writer
        .write(Write::Events {
            group_id: group_id.to_string(),
            actor: actor.map(|a| a.as_str().to_string()),
            client_msg_id: client_msg_id.map(str::to_string),
            events: events
                .iter()
                .map(|&(kind, payload)| (kind.to_string(), payload.to_string()))
                .collect(),
            interactions: interactions.iter().map(NewInteraction::to_write).collect(),
            after,
            now,
        })
        .await?;
    Ok(match written {
        Written::Events(EventsWritten::From(first)) => Appended::Stored { first, at: now },
        Written::Events(EventsWritten::Behind(last_seq)) => Appended::Behind { last_seq },
        Written::Events(EventsWritten::NoGroup) => Appended::NoGroup,
        Written::Interaction | Written::Exposure => {
            unreachable!("an events write answers with events")
        }
    })
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    group_id: &str,
    seq: i64,
    (kind, payload): (&str, &str),
    actor: Option<&UserId>,
    client_msg_id: Option<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO group_events (group_id, seq, kind, actor_user_id, payload, client_msg_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(group_id)
    .bind(seq)
    .bind(kind)
    .bind(actor.map(|a| a.as_str().to_string()))
    .bind(payload)
    .bind(client_msg_id.map(str::to_string))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Events with seq > `after`, oldest first, at most `limit`.
pub async fn events_after(
    db: &Db,
    group_id: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, kind, actor_user_id, payload, client_msg_id, created_at FROM group_events \
         WHERE group_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(group_id)
    .bind(after)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(StoredEvent {
                seq: row.try_get("seq")?,
                kind: row.try_get("kind")?,
                actor_user_id: row.try_get("actor_user_id")?,
                payload: row.try_get("payload")?,
                client_msg_id: row.try_get("client_msg_id")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}

//! Group sessions and their event log. The log's per-group `seq` is gap-free: the counter on the
//! group row and the event row change in one transaction, so a failed append leaves no hole and
//! concurrent appenders (in this or another process) are serialised by the row's write lock.

use sqlx::Row;

use super::Db;
use crate::domain::{now_ms, UserId};

#[derive(Debug, Clone, PartialEq)]
pub struct NewGroup<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub join_code: &'a str,
    pub host: &'a UserId,
    pub settings_json: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    pub kind: String,
    pub actor_user_id: Option<String>,
    pub payload: String,
    pub created_at: i64,
}

pub async fn create(db: &Db, group: &NewGroup<'_>) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO group_sessions (id, name, join_code, host_user_id, settings, last_seq, created_at) \
         VALUES ($1, $2, $3, $4, $5, 0, $6)",
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
    tx.commit().await
}

/// Appends one event and returns its seq. `Ok(None)` if the group does not exist.
pub async fn append_event(
    db: &Db,
    group_id: &str,
    kind: &str,
    actor: Option<&UserId>,
    payload_json: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    let seq: Option<i64> = sqlx::query(
        "UPDATE group_sessions SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq",
    )
    .bind(group_id)
    .fetch_optional(&mut *tx)
    .await?
    .map(|row| row.try_get(0))
    .transpose()?;
    let Some(seq) = seq else {
        tx.rollback().await?;
        return Ok(None);
    };
    sqlx::query(
        "INSERT INTO group_events (group_id, seq, kind, actor_user_id, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(group_id)
    .bind(seq)
    .bind(kind)
    .bind(actor.map(|a| a.as_str().to_string()))
    .bind(payload_json)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(seq))
}

/// Events with seq > `after`, oldest first, at most `limit`.
pub async fn events_after(
    db: &Db,
    group_id: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, kind, actor_user_id, payload, created_at FROM group_events \
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
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}

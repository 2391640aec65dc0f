//! Accounts: users and the hashes of their bearer tokens.

use sqlx::Row;

use super::Db;
use crate::domain::{now_ms, DisplayName, TokenHash, UserId};

#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub id: UserId,
    pub display_name: String,
    pub created_at: i64,
}

pub async fn create(
    db: &Db,
    id: &UserId,
    name: &DisplayName,
    token_hash: &TokenHash,
) -> Result<UserRecord, sqlx::Error> {
    let created_at = now_ms();
    let _turn = db.write_turn().await;
    sqlx::query(
        "INSERT INTO users (id, display_name, token_hash, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id.as_str())
    .bind(name.as_str())
    .bind(token_hash.as_str())
    .bind(created_at)
    .execute(db.pool())
    .await?;
    Ok(UserRecord {
        id: id.clone(),
        display_name: name.as_str().to_string(),
        created_at,
    })
}

pub async fn find_by_token(
    db: &Db,
    token_hash: &TokenHash,
) -> Result<Option<UserRecord>, sqlx::Error> {
    let row = sqlx::query("SELECT id, display_name, created_at FROM users WHERE token_hash = $1")
        .bind(token_hash.as_str())
        .fetch_optional(db.pool())
        .await?;
    row.map(|row| record(&row)).transpose()
}

pub async fn find(db: &Db, id: &UserId) -> Result<Option<UserRecord>, sqlx::Error> {
    let row = sqlx::query("SELECT id, display_name, created_at FROM users WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(db.pool())
        .await?;
    row.map(|row| record(&row)).transpose()
}

fn record(row: &sqlx::any::AnyRow) -> Result<UserRecord, sqlx::Error> {
    let id: String = row.try_get("id")?;
    Ok(UserRecord {
        id: UserId::parse(&id).map_err(|e| sqlx::Error::Decode(e.into()))?,
        display_name: row.try_get("display_name")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Marks the account as seen now (authentication calls it at most once per token-cache miss).
pub async fn touch(db: &Db, id: &UserId, at: i64) -> Result<(), sqlx::Error> {
    let _turn = db.write_turn().await;
    sqlx::query("UPDATE users SET last_seen_at = $2 WHERE id = $1")
        .bind(id.as_str())
        .bind(at)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Deletes accounts not seen since `cutoff` that never left a trace: no feedback, comparison,
/// taste, list shown, experiment assignment, room hosted, joined or asked to join (whoever
/// acted in a room did one of these first). Returns how many went.
pub async fn delete_unused(db: &Db, cutoff: i64) -> Result<u64, sqlx::Error> {
    let _turn = db.write_turn().await;
    let deleted = sqlx::query(
        "DELETE FROM users WHERE COALESCE(last_seen_at, created_at) < $1 \
         AND NOT EXISTS (SELECT 1 FROM interactions t WHERE t.user_id = users.id) \
         AND NOT EXISTS (SELECT 1 FROM comparisons t WHERE t.user_id = users.id) \
         AND NOT EXISTS (SELECT 1 FROM user_state t WHERE t.user_id = users.id) \
         AND NOT EXISTS (SELECT 1 FROM exposures t WHERE t.user_id = users.id) \
         AND NOT EXISTS (SELECT 1 FROM experiment_assignments t WHERE t.user_id = users.id) \
         AND NOT EXISTS (SELECT 1 FROM group_sessions t WHERE t.host_user_id = users.id) \
         AND NOT EXISTS (SELECT 1 FROM group_members t WHERE t.user_id = users.id) \
         AND NOT EXISTS (SELECT 1 FROM group_events t WHERE t.actor_user_id = users.id \
                         AND t.kind IN ('member_joined', 'join_requested'))",
    )
    .bind(cutoff)
    .execute(db.pool())
    .await?;
    Ok(deleted.rows_affected())
}

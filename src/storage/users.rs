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

//! A listener's feedback: interactions (like, dislike, skip, play, add) and pairwise comparisons.
//! These rows are the source of truth for taste: a UserActor's state is a fold of them, so
//! nothing acknowledged is ever lost by a restart.

use sqlx::Row;

use super::{
    writer::{Interaction, Write},
    Db,
};
use crate::domain::UserId;

pub struct NewInteraction<'a> {
    pub id: &'a str,
    pub user_id: &'a UserId,
    pub track_id: &'a str,
    pub kind: &'a str,
    pub weight: f64,
    pub request_id: Option<&'a str>,
    pub group_id: Option<&'a str>,
    pub created_at: i64,
}

impl NewInteraction<'_> {
    pub(super) fn to_write(&self) -> Interaction {
        Interaction {
            id: self.id.to_string(),
            user_id: self.user_id.as_str().to_string(),
            track_id: self.track_id.to_string(),
            kind: self.kind.to_string(),
            weight: self.weight,
            request_id: self.request_id.map(str::to_string),
            group_id: self.group_id.map(str::to_string),
            created_at: self.created_at,
        }
    }
}

/// Stored through the group-commit writer (see `writer.rs`).
pub async fn insert_interaction(db: &Db, row: &NewInteraction<'_>) -> Result<(), sqlx::Error> {
    db.writer.write(Write::Interaction(row.to_write())).await?;
    Ok(())
}

pub struct NewComparison<'a> {
    pub id: &'a str,
    pub user_id: &'a UserId,
    pub track_a: &'a str,
    pub track_b: &'a str,
    pub winner: &'a str,
    pub request_id: Option<&'a str>,
    pub created_at: i64,
}

pub async fn insert_comparison(db: &Db, row: &NewComparison<'_>) -> Result<(), sqlx::Error> {
    let _turn = db.write_turn().await;
    sqlx::query(
        "INSERT INTO comparisons (id, user_id, track_a, track_b, winner, request_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(row.id)
    .bind(row.user_id.as_str())
    .bind(row.track_a)
    .bind(row.track_b)
    .bind(row.winner)
    .bind(row.request_id)
    .bind(row.created_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredInteraction {
    pub id: String,
    pub track_id: String,
    pub kind: String,
    pub created_at: i64,
}

/// Every interaction of the user, oldest first (ties in time broken by id, which is a UUIDv7).
pub async fn interactions(db: &Db, user: &UserId) -> Result<Vec<StoredInteraction>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, track_id, kind, created_at FROM interactions WHERE user_id = $1 \
         ORDER BY created_at, id",
    )
    .bind(user.as_str())
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredInteraction {
                id: r.try_get("id")?,
                track_id: r.try_get("track_id")?,
                kind: r.try_get("kind")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredComparison {
    pub winner: String,
    pub loser: String,
}

/// The user's latest `limit` comparisons, oldest first.
pub async fn comparisons(
    db: &Db,
    user: &UserId,
    limit: i64,
) -> Result<Vec<StoredComparison>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT track_a, track_b, winner FROM comparisons WHERE user_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(user.as_str())
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    let mut out = rows
        .iter()
        .map(|r| {
            let a: String = r.try_get("track_a")?;
            let b: String = r.try_get("track_b")?;
            let winner: String = r.try_get("winner")?;
            let loser = if winner == a { b } else { a };
            Ok(StoredComparison { winner, loser })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    out.reverse();
    Ok(out)
}

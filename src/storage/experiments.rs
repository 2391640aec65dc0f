//! Exposures (what was shown, under which strategy) and the bandits' persisted posteriors.

use sqlx::Row;

use super::{
    writer::{Exposure, Write},
    Db,
};

pub struct NewExposure<'a> {
    pub request_id: &'a str,
    pub user_id: Option<&'a str>,
    pub group_id: Option<&'a str>,
    pub experiment_id: Option<&'a str>,
    pub variant: Option<&'a str>,
    pub strategy: &'a str,
    pub track_ids: &'a [&'a str],
    pub created_at: i64,
}

/// Stored through the group-commit writer: one per recommendation response.
pub async fn insert_exposure(db: &Db, row: &NewExposure<'_>) -> Result<(), sqlx::Error> {
    db.writer
        .write(Write::Exposure(Exposure {
            request_id: row.request_id.to_string(),
            user_id: row.user_id.map(str::to_string),
            group_id: row.group_id.map(str::to_string),
            experiment_id: row.experiment_id.map(str::to_string),
            variant: row.variant.map(str::to_string),
            strategy: row.strategy.to_string(),
            track_ids: serde_json::to_string(row.track_ids).expect("strings serialize"),
            created_at: row.created_at,
        }))
        .await?;
    Ok(())
}

/// One bandit arm as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredArm {
    pub arm: String,
    pub alpha: f64,
    pub beta: f64,
    pub pulls: i64,
    pub rewards: f64,
}

pub async fn load_arms(db: &Db, bandit: &str) -> Result<Vec<StoredArm>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT arm, alpha, beta, pulls, rewards FROM bandit_arms WHERE bandit = $1 ORDER BY arm",
    )
    .bind(bandit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(StoredArm {
                arm: row.try_get("arm")?,
                alpha: row.try_get("alpha")?,
                beta: row.try_get("beta")?,
                pulls: row.try_get("pulls")?,
                rewards: row.try_get("rewards")?,
            })
        })
        .collect()
}

/// Upserts every arm of `bandit` in one transaction.
pub async fn save_arms(
    db: &Db,
    bandit: &str,
    arms: &[StoredArm],
    now: i64,
) -> Result<(), sqlx::Error> {
    let _turn = db.write_turn().await;
    let mut tx = db.pool().begin().await?;
    for arm in arms {
        sqlx::query(
            "INSERT INTO bandit_arms (bandit, arm, alpha, beta, pulls, rewards, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (bandit, arm) DO UPDATE SET alpha = excluded.alpha, beta = excluded.beta, \
             pulls = excluded.pulls, rewards = excluded.rewards, updated_at = excluded.updated_at",
        )
        .bind(bandit)
        .bind(arm.arm.as_str())
        .bind(arm.alpha)
        .bind(arm.beta)
        .bind(arm.pulls)
        .bind(arm.rewards)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

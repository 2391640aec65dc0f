//! Exposures (what was shown, under which strategy) and experiments.

use sqlx::{AssertSqlSafe, Row};

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

/// The list a listener was shown, as stored with its exposure.
#[derive(Debug, Clone, PartialEq)]
pub struct ShownList {
    pub user_id: Option<String>,
    pub track_ids: Vec<String>,
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

/// The listener and tracks of a shown list, if `request_id` names one.
pub async fn find_exposure(db: &Db, request_id: &str) -> Result<Option<ShownList>, sqlx::Error> {
    let row = sqlx::query("SELECT user_id, track_ids FROM exposures WHERE request_id = $1")
        .bind(request_id)
        .fetch_optional(db.pool())
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let track_ids: String = row.try_get("track_ids")?;
    Ok(Some(ShownList {
        user_id: row.try_get("user_id")?,
        track_ids: serde_json::from_str(&track_ids).unwrap_or_default(),
    }))
}

/// An experiment row; `variants` and `guardrails` are JSON.
#[derive(Debug, Clone)]
pub struct ExperimentRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub variants: String,
    pub primary_metric: String,
    pub guardrails: String,
    pub mixture_sd: Option<f64>,
    pub planned_listeners: Option<i64>,
    pub looks: Option<i64>,
    pub status: String,
    pub created_at: i64,
    pub stopped_at: Option<i64>,
}

/// Inserts a running experiment unless another one runs or the name is taken; `Ok(false)`
/// then. The check and the insert share one transaction (and SQLite's writer turn).
pub async fn insert_experiment(db: &Db, row: &ExperimentRow) -> Result<bool, sqlx::Error> {
    let _turn = db.write_turn().await;
    let mut tx = db.pool().begin().await?;
    let clash: i64 =
        sqlx::query("SELECT COUNT(*) FROM experiments WHERE status = 'running' OR name = $1")
            .bind(row.name.as_str())
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
    if clash > 0 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO experiments (id, name, description, variants, primary_metric, guardrails, mixture_sd, planned_listeners, looks, status, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'running', $10)",
    )
    .bind(row.id.as_str())
    .bind(row.name.as_str())
    .bind(row.description.as_str())
    .bind(row.variants.as_str())
    .bind(row.primary_metric.as_str())
    .bind(row.guardrails.as_str())
    .bind(row.mixture_sd)
    .bind(row.planned_listeners)
    .bind(row.looks)
    .bind(row.created_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

const EXPERIMENT_COLUMNS: &str = "id, name, description, variants, primary_metric, guardrails, \
                                  mixture_sd, planned_listeners, looks, status, created_at, stopped_at";

fn experiment_row(row: &sqlx::any::AnyRow) -> Result<ExperimentRow, sqlx::Error> {
    Ok(ExperimentRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        variants: row.try_get("variants")?,
        primary_metric: row.try_get("primary_metric")?,
        guardrails: row.try_get("guardrails")?,
        mixture_sd: row.try_get("mixture_sd")?,
        planned_listeners: row.try_get("planned_listeners")?,
        looks: row.try_get("looks")?,
        status: row.try_get("status")?,
        created_at: row.try_get("created_at")?,
        stopped_at: row.try_get("stopped_at")?,
    })
}

/// Newest first.
pub async fn list_experiments(db: &Db) -> Result<Vec<ExperimentRow>, sqlx::Error> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {EXPERIMENT_COLUMNS} FROM experiments ORDER BY created_at DESC, id DESC"
    )))
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(experiment_row).collect()
}

pub async fn find_experiment(db: &Db, id: &str) -> Result<Option<ExperimentRow>, sqlx::Error> {
    sqlx::query(AssertSqlSafe(format!(
        "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db.pool())
    .await?
    .as_ref()
    .map(experiment_row)
    .transpose()
}

/// Marks a running experiment stopped; `false` when it was not running.
pub async fn stop_experiment(db: &Db, id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let _turn = db.write_turn().await;
    let done = sqlx::query(
        "UPDATE experiments SET status = 'stopped', stopped_at = $1 WHERE id = $2 AND status = 'running'",
    )
    .bind(now)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Per variant: distinct listeners exposed and lists shown.
pub async fn exposure_counts(
    db: &Db,
    experiment_id: &str,
) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT variant, COUNT(DISTINCT user_id) AS listeners, COUNT(*) AS lists \
         FROM exposures WHERE experiment_id = $1 GROUP BY variant",
    )
    .bind(experiment_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("variant")?,
                r.try_get("listeners")?,
                r.try_get("lists")?,
            ))
        })
        .collect()
}

/// Per variant: distinct listeners who gave feedback of `kind` to a list of the experiment.
pub async fn converted_listeners(
    db: &Db,
    experiment_id: &str,
    kind: &str,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT e.variant AS variant, COUNT(DISTINCT e.user_id) AS listeners \
         FROM exposures e JOIN interactions i ON i.request_id = e.request_id \
         WHERE e.experiment_id = $1 AND i.kind = $2 GROUP BY e.variant",
    )
    .bind(experiment_id)
    .bind(kind)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("variant")?, r.try_get("listeners")?)))
        .collect()
}

/// One listener of an experiment: their variant, when they first saw one of its lists, and when
/// they first gave the metric's feedback to one (if they did).
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerTimeline {
    pub variant: String,
    pub first_seen: i64,
    pub converted_at: Option<i64>,
}

/// Every listener of the experiment with their first exposure and first `kind` feedback
/// quoting one of its lists, ordered by first exposure.
pub async fn listener_timelines(
    db: &Db,
    experiment_id: &str,
    kind: &str,
) -> Result<Vec<ListenerTimeline>, sqlx::Error> {
    let seen = sqlx::query(
        "SELECT user_id, variant, MIN(created_at) AS first_seen FROM exposures \
         WHERE experiment_id = $1 GROUP BY user_id, variant",
    )
    .bind(experiment_id)
    .fetch_all(db.pool())
    .await?;
    let converted = sqlx::query(
        "SELECT e.user_id AS user_id, MIN(i.created_at) AS converted_at \
         FROM exposures e JOIN interactions i ON i.request_id = e.request_id \
         WHERE e.experiment_id = $1 AND i.kind = $2 GROUP BY e.user_id",
    )
    .bind(experiment_id)
    .bind(kind)
    .fetch_all(db.pool())
    .await?;
    let mut conversions = std::collections::HashMap::new();
    for row in &converted {
        let user: String = row.try_get("user_id")?;
        let at: i64 = row.try_get("converted_at")?;
        conversions.insert(user, at);
    }
    let mut out = seen
        .iter()
        .map(|row| {
            let user: String = row.try_get("user_id")?;
            Ok(ListenerTimeline {
                variant: row.try_get("variant")?,
                first_seen: row.try_get("first_seen")?,
                converted_at: conversions.get(&user).copied(),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    out.sort_by_key(|l| l.first_seen);
    Ok(out)
}

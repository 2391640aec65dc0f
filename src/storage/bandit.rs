//! The bandits' store: posteriors per (bandit, context, arm) with the prior apart from the data,
//! the lists awaiting a reward, and the posterior history. Every count changes by increments
//! inside one transaction with the pending row it settles, so processes sharing the store never
//! overwrite each other and a list is counted once whichever process settles it.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row;

use super::{row_placeholders, Db};

/// One stored (bandit, context, arm).
#[derive(Debug, Clone, PartialEq)]
pub struct PosteriorRow {
    pub bandit: String,
    pub context: String,
    pub arm: String,
    pub prior_alpha: f64,
    pub prior_beta: f64,
    pub pulls: i64,
    pub successes: f64,
    pub failures: f64,
    pub prior_set_at: i64,
}

/// A prior to store for one (bandit, context, arm).
#[derive(Debug, Clone, PartialEq)]
pub struct PriorRow {
    pub bandit: &'static str,
    pub context: &'static str,
    pub arm: &'static str,
    pub alpha: f64,
    pub beta: f64,
}

pub async fn load_posteriors(db: &Db) -> Result<Vec<PosteriorRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT bandit, context, arm, prior_alpha, prior_beta, pulls, successes, failures, \
         prior_set_at FROM bandit_posteriors ORDER BY bandit, context, arm",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(PosteriorRow {
                bandit: row.try_get("bandit")?,
                context: row.try_get("context")?,
                arm: row.try_get("arm")?,
                prior_alpha: row.try_get("prior_alpha")?,
                prior_beta: row.try_get("prior_beta")?,
                pulls: row.try_get("pulls")?,
                successes: row.try_get("successes")?,
                failures: row.try_get("failures")?,
                prior_set_at: row.try_get("prior_set_at")?,
            })
        })
        .collect()
}

/// Stores priors: for (bandit, context, arm)s not stored yet only (`replace` false; returns how
/// many were new), or over the stored ones, keeping their data (`replace` true).
pub async fn store_priors(
    db: &Db,
    priors: &[PriorRow],
    replace: bool,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let on_conflict = if replace {
        "DO UPDATE SET prior_alpha = $4, prior_beta = $5, prior_set_at = $6, updated_at = $6"
    } else {
        "DO NOTHING"
    };
    let sql = format!(
        "INSERT INTO bandit_posteriors (bandit, context, arm, prior_alpha, prior_beta, \
         prior_set_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (bandit, context, arm) {on_conflict}"
    );
    let _turn = db.write_turn().await;
    let mut tx = db.pool().begin().await?;
    let mut written = 0;
    for p in priors {
        written += sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(p.bandit)
            .bind(p.context)
            .bind(p.arm)
            .bind(p.alpha)
            .bind(p.beta)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    tx.commit().await?;
    Ok(written)
}

/// Forgets what a bandit learned (every bandit when `None`): counts back to zero and the lists
/// awaiting a reward dropped; the priors stay. Returns the pending lists dropped.
pub async fn reset(db: &Db, bandit: Option<&str>, now: i64) -> Result<u64, sqlx::Error> {
    let _turn = db.write_turn().await;
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "UPDATE bandit_posteriors SET pulls = 0, successes = 0, failures = 0, updated_at = $2 \
         WHERE $1 IS NULL OR bandit = $1",
    )
    .bind(bandit)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let dropped = sqlx::query("DELETE FROM bandit_pending WHERE $1 IS NULL OR bandit = $1")
        .bind(bandit)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(dropped)
}

/// A list shown under an arm, to be stored as pending.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    pub request_id: String,
    pub bandit: &'static str,
    pub context: &'static str,
    pub arm: &'static str,
    pub at: i64,
}

/// What one process gathered since its last flush.
#[derive(Debug, Default)]
pub struct Flush {
    /// In the order shown.
    pub shown: Vec<Shown>,
    /// Rewards by request id, in the order they came (after the shows they may settle).
    pub rewards: Vec<(String, f64)>,
    /// Lists shown before this instant (ms) are settled as failures.
    pub expire_before: i64,
    /// Add the changed arms' posteriors to the history, at this instant.
    pub history_at: Option<i64>,
    pub now: i64,
}

/// Key of an arm in the store.
pub type ArmKey = (String, String, String);

#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Delta {
    pulls: i64,
    successes: f64,
    failures: f64,
}

/// What a flush settled.
#[derive(Debug, Default, PartialEq)]
pub struct Flushed {
    pub rewarded: u64,
    pub expired: u64,
    /// Arms whose counts changed.
    pub changed: BTreeSet<ArmKey>,
}

/// At most this many expired lists are settled per flush (the next flush takes the rest).
const EXPIRE_BATCH: i64 = 5_000;

/// Stores the shows as pending and counts their pulls, settles rewards and expiries (deleting
/// their pending rows and counting the outcome), and writes history: one transaction.
pub async fn flush(db: &Db, flush: &Flush) -> Result<Flushed, sqlx::Error> {
    let _turn = db.write_turn().await;
    let mut tx = db.pool().begin().await?;
    let mut deltas: BTreeMap<ArmKey, Delta> = BTreeMap::new();
    for shown in flush.shown.chunks(SHOWN_PER_STATEMENT) {
        // Only the rows stored (a show already pending, from a retried flush, is not) count.
        // The SQL holds placeholders only; every value is bound.
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(insert_shown_sql(shown.len())));
        for s in shown {
            insert = insert
                .bind(s.request_id.as_str())
                .bind(s.bandit)
                .bind(s.context)
                .bind(s.arm)
                .bind(s.at);
        }
        for row in insert.fetch_all(&mut *tx).await? {
            deltas.entry(arm_key(&row)?).or_default().pulls += 1;
        }
    }
    let mut out = Flushed::default();
    for (request_id, reward) in &flush.rewards {
        let settled = sqlx::query(
            "DELETE FROM bandit_pending WHERE request_id = $1 RETURNING bandit, context, arm",
        )
        .bind(request_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = settled {
            let d = deltas.entry(arm_key(&row)?).or_default();
            d.successes += reward;
            d.failures += 1.0 - reward;
            out.rewarded += 1;
        }
    }
    let expired = sqlx::query(
        "DELETE FROM bandit_pending WHERE request_id IN (SELECT request_id FROM bandit_pending \
         WHERE shown_at < $1 ORDER BY shown_at LIMIT $2) RETURNING bandit, context, arm",
    )
    .bind(flush.expire_before)
    .bind(EXPIRE_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    for row in &expired {
        deltas.entry(arm_key(row)?).or_default().failures += 1.0;
    }
    out.expired = expired.len() as u64;
    for ((bandit, context, arm), d) in &deltas {
        // An arm reset away or never seeded gets a uniform prior rather than losing the count.
        sqlx::query(
            "INSERT INTO bandit_posteriors (bandit, context, arm, prior_alpha, prior_beta, \
             pulls, successes, failures, prior_set_at, updated_at) \
             VALUES ($1, $2, $3, 1, 1, $4, $5, $6, $7, $7) \
             ON CONFLICT (bandit, context, arm) DO UPDATE SET \
             pulls = bandit_posteriors.pulls + $4, \
             successes = bandit_posteriors.successes + $5, \
             failures = bandit_posteriors.failures + $6, updated_at = $7",
        )
        .bind(bandit.as_str())
        .bind(context.as_str())
        .bind(arm.as_str())
        .bind(d.pulls)
        .bind(d.successes)
        .bind(d.failures)
        .bind(flush.now)
        .execute(&mut *tx)
        .await?;
        out.changed
            .insert((bandit.clone(), context.clone(), arm.clone()));
    }
    tx.commit().await?;
    Ok(out)
}

/// Shows stored per INSERT. A flush holds the store's write turn, which solo exposures and room
/// events wait for, and one statement per show made a busy server's flush (thousands of shows)
/// hold it for a quarter of a second; sqlx binds a SQLite statement's parameters in time
/// superlinear in their number, so not all in one either.
const SHOWN_PER_STATEMENT: usize = 40;

fn insert_shown_sql(rows: usize) -> String {
    format!(
        "INSERT INTO bandit_pending (request_id, bandit, context, arm, shown_at) VALUES {} \
         ON CONFLICT (request_id) DO NOTHING RETURNING bandit, context, arm",
        row_placeholders(rows, 5)
    )
}

/// The (bandit, context, arm) a `RETURNING bandit, context, arm` row names.
fn arm_key(row: &sqlx::any::AnyRow) -> Result<ArmKey, sqlx::Error> {
    Ok((
        row.try_get("bandit")?,
        row.try_get("context")?,
        row.try_get("arm")?,
    ))
}

/// Adds the current posteriors of every arm of the contexts `arms` belong to (so each point of
/// the history has all of a context's arms), and deletes history before `keep_after`.
pub async fn record_history(
    db: &Db,
    arms: &BTreeSet<ArmKey>,
    at: i64,
    keep_after: i64,
) -> Result<(), sqlx::Error> {
    let contexts: BTreeSet<(&str, &str)> = arms
        .iter()
        .map(|(bandit, context, _)| (bandit.as_str(), context.as_str()))
        .collect();
    let _turn = db.write_turn().await;
    let mut tx = db.pool().begin().await?;
    for (bandit, context) in contexts {
        sqlx::query(
            "INSERT INTO bandit_history (bandit, context, arm, at, alpha, beta, pulls) \
             SELECT bandit, context, arm, $3, prior_alpha + successes, prior_beta + failures, \
             pulls FROM bandit_posteriors WHERE bandit = $1 AND context = $2",
        )
        .bind(bandit)
        .bind(context)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("DELETE FROM bandit_history WHERE at < $1")
        .bind(keep_after)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub arm: String,
    pub at: i64,
    pub alpha: f64,
    pub beta: f64,
    pub pulls: i64,
}

/// One context's history after `since` (ms), oldest first, at most `limit` rows (the newest).
pub async fn history(
    db: &Db,
    bandit: &str,
    context: &str,
    since: i64,
    limit: i64,
) -> Result<Vec<HistoryRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT arm, at, alpha, beta, pulls FROM bandit_history \
         WHERE bandit = $1 AND context = $2 AND at > $3 ORDER BY at DESC, arm LIMIT $4",
    )
    .bind(bandit)
    .bind(context)
    .bind(since)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    let mut out = rows
        .iter()
        .map(|row| {
            Ok(HistoryRow {
                arm: row.try_get("arm")?,
                at: row.try_get("at")?,
                alpha: row.try_get("alpha")?,
                beta: row.try_get("beta")?,
                pulls: row.try_get("pulls")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    out.reverse();
    Ok(out)
}

/// Lists awaiting a reward, per (bandit, context, arm).
pub async fn pending_counts(db: &Db) -> Result<BTreeMap<ArmKey, i64>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT bandit, context, arm, COUNT(*) AS n FROM bandit_pending \
         GROUP BY bandit, context, arm",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| Ok((arm_key(row)?, row.try_get("n")?)))
        .collect()
}

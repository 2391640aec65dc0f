//! Group commit for the hot writes: group events, interactions and exposures. Callers hand their write to
//! one writer task and wait for its answer; the task takes every write that queued meanwhile
//! and commits them in one transaction. Under load that turns thousands of small transactions
//! a second into tens of larger ones (one SQLite writer, no colliding writers, one commit each).
//!
//! A batch that fails is retried one write per transaction, so one bad write (a foreign key that
//! does not hold) fails alone and never takes its neighbours with it.

use std::sync::Arc;

use sqlx::{pool::PoolConnection, Any, AnyConnection, AnyPool, Connection, Row};
use tokio::sync::{mpsc, oneshot, Mutex};

/// Writes per transaction at most.
const MAX_BATCH: usize = 256;
/// Writes waiting for the writer at most; callers beyond it wait for room.
const QUEUE: usize = 8_192;
/// The writer keeps its connection while writes keep coming at least this often.
const IDLE_RELEASE: std::time::Duration = std::time::Duration::from_millis(50);

/// One write, owned so it can cross to the writer task.
pub(super) enum Write {
    Events {
        group_id: String,
        actor: Option<String>,
        client_msg_id: Option<String>,
        /// `(kind, payload)` in order.
        events: Vec<(String, String)>,
        /// The log's last seq as the appender saw it: the append happens only if it still is
        /// (`None`: at the end, whatever it is).
        after: Option<i64>,
        now: i64,
    },
    Interaction(Interaction),
    Exposure(Exposure),
}

/// A recommendation list as shown, for attributing the feedback that quotes its request id.
pub(super) struct Exposure {
    pub request_id: String,
    pub user_id: Option<String>,
    pub group_id: Option<String>,
    pub experiment_id: Option<String>,
    pub variant: Option<String>,
    pub strategy: String,
    /// JSON array of track ids in the order shown.
    pub track_ids: String,
    pub created_at: i64,
}

pub(super) struct Interaction {
    pub id: String,
    pub user_id: String,
    pub track_id: String,
    pub kind: String,
    pub weight: f64,
    pub request_id: Option<String>,
    pub group_id: Option<String>,
    pub created_at: i64,
}

/// What a write produced.
#[derive(Debug, Clone, Copy)]
pub(super) enum Written {
    Events(EventsWritten),
    Interaction,
    Exposure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EventsWritten {
    /// Stored from this seq on.
    From(i64),
    /// Not stored: the log had moved on to this seq (another process appended).
    Behind(i64),
    NoGroup,
}

type Reply = oneshot::Sender<Result<Written, sqlx::Error>>;

#[derive(Clone, Debug)]
pub(super) struct Writer {
    jobs: mpsc::Sender<(Write, Reply)>,
}

impl Writer {
    /// Starts the writer task on the current runtime; it ends when the last handle is dropped.
    /// `turn`: the store's writer lock (SQLite), held for each transaction.
    pub fn start(pool: AnyPool, turn: Option<Arc<Mutex<()>>>) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, turn, queue));
        Self { jobs }
    }

    pub async fn write(&self, write: Write) -> Result<Written, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((write, reply))
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

/// The writer's own connection, kept from batch to batch. A connection taken from the pool for
/// each batch found its page cache invalidated by the previous batch's writes on another
/// connection and read those pages again (on SQLite, eight connections each doing a share of
/// every write's work); one connection keeps its cache warm. Given back after an error, so a
/// broken one is replaced, and after every batch when the pool has a single connection (the
/// others would wait for it forever).
struct Held {
    pool: AnyPool,
    keep: bool,
    conn: Option<PoolConnection<Any>>,
}

impl Held {
    async fn commit(&mut self, writes: &[Write]) -> Result<Vec<Written>, sqlx::Error> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(self.pool.acquire().await?),
        };
        let result = commit(conn, writes).await;
        if result.is_err() || !self.keep {
            self.conn = None;
        }
        result
    }
}

async fn run(
    pool: AnyPool,
    turn: Option<Arc<Mutex<()>>>,
    mut queue: mpsc::Receiver<(Write, Reply)>,
) {
    let keep = pool.options().get_max_connections() > 1;
    let mut held = Held {
        pool,
        keep,
        conn: None,
    };
    loop {
        // Idle: give the connection back, so the pool can close (a shutdown waits for every
        // connection) and readers get it while nothing is being written.
        let next = match held.conn {
            Some(_) => match tokio::time::timeout(IDLE_RELEASE, queue.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    held.conn = None;
                    queue.recv().await
                }
            },
            None => queue.recv().await,
        };
        let Some(first) = next else {
            break;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (writes, replies): (Vec<Write>, Vec<Reply>) = batch.into_iter().unzip();
        let _turn = match &turn {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        match held.commit(&writes).await {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(err) if writes.len() == 1 => {
                let _ = replies.into_iter().next().map(|r| r.send(Err(err)));
            }
            Err(err) => {
                tracing::warn!(error = %err, writes = writes.len(), "batched write failed; retrying one by one");
                for (write, reply) in writes.into_iter().zip(replies) {
                    let result = held
                        .commit(std::slice::from_ref(&write))
                        .await
                        .map(|mut r| r.remove(0));
                    let _ = reply.send(result);
                }
            }
        }
    }
}

async fn commit(conn: &mut AnyConnection, writes: &[Write]) -> Result<Vec<Written>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let mut results = vec![None; writes.len()];
    for i in lock_order(writes) {
        results[i] = Some(apply(&mut tx, &writes[i]).await?);
    }
    tx.commit().await?;
    Ok(results
        .into_iter()
        .map(|r| r.expect("every write applied"))
        .collect())
}

/// The order to apply a batch in: group rows (which appends lock) by group id, then the
/// inserts. Writers of several processes lock the rows they share in the same order, so their
/// batches wait for each other but never deadlock. One group's writes keep their order.
fn lock_order(writes: &[Write]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..writes.len()).collect();
    order.sort_by(|&a, &b| match (&writes[a], &writes[b]) {
        (Write::Events { group_id: x, .. }, Write::Events { group_id: y, .. }) => x.cmp(y),
        (Write::Events { .. }, _) => std::cmp::Ordering::Less,
        (_, Write::Events { .. }) => std::cmp::Ordering::Greater,
        _ => std::cmp::Ordering::Equal,
    });
    order
}

async fn apply(conn: &mut AnyConnection, write: &Write) -> Result<Written, sqlx::Error> {
    match write {
        Write::Events {
            group_id,
            actor,
            client_msg_id,
            events,
            after,
            now,
        } => {
            let count = events.len() as i64;
            // The row's write lock serialises appenders; the seq condition makes an appender
            // that decided on an older state fail instead of interleaving.
            let last: Option<i64> = match after {
                Some(after) => sqlx::query(
                    "UPDATE group_sessions SET last_seq = last_seq + $1 WHERE id = $2 AND last_seq = $3 \
                     RETURNING last_seq",
                )
                .bind(count)
                .bind(group_id.as_str())
                .bind(*after),
                None => sqlx::query(
                    "UPDATE group_sessions SET last_seq = last_seq + $1 WHERE id = $2 RETURNING last_seq",
                )
                .bind(count)
                .bind(group_id.as_str()),
            }
            .fetch_optional(&mut *conn)
            .await?
            .map(|row| row.try_get(0))
            .transpose()?;
            let Some(last) = last else {
                let now_at: Option<i64> =
                    sqlx::query("SELECT last_seq FROM group_sessions WHERE id = $1")
                        .bind(group_id.as_str())
                        .fetch_optional(&mut *conn)
                        .await?
                        .map(|row| row.try_get(0))
                        .transpose()?;
                return Ok(Written::Events(
                    now_at.map_or(EventsWritten::NoGroup, EventsWritten::Behind),
                ));
            };
            let first = last - count + 1;
            for (offset, (kind, payload)) in events.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO group_events (group_id, seq, kind, actor_user_id, payload, client_msg_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(group_id.as_str())
                .bind(first + offset as i64)
                .bind(kind.as_str())
                .bind(actor.clone())
                .bind(payload.as_str())
                .bind(client_msg_id.clone())
                .bind(*now)
                .execute(&mut *conn)
                .await?;
            }
            Ok(Written::Events(EventsWritten::From(first)))
        }
        Write::Interaction(row) => {
            sqlx::query(
                "INSERT INTO interactions (id, user_id, track_id, kind, weight, request_id, group_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(row.id.as_str())
            .bind(row.user_id.as_str())
            .bind(row.track_id.as_str())
            .bind(row.kind.as_str())
            .bind(row.weight)
            .bind(row.request_id.clone())
            .bind(row.group_id.clone())
            .bind(row.created_at)
            .execute(&mut *conn)
            .await?;
            Ok(Written::Interaction)
        }
        Write::Exposure(row) => {
            sqlx::query(
                "INSERT INTO exposures (request_id, user_id, group_id, experiment_id, variant, strategy, track_ids, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(row.request_id.as_str())
            .bind(row.user_id.clone())
            .bind(row.group_id.clone())
            .bind(row.experiment_id.clone())
            .bind(row.variant.clone())
            .bind(row.strategy.as_str())
            .bind(row.track_ids.as_str())
            .bind(row.created_at)
            .execute(&mut *conn)
            .await?;
            Ok(Written::Exposure)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(group: &str) -> Write {
        Write::Events {
            group_id: group.into(),
            actor: None,
            client_msg_id: None,
            events: vec![],
            after: None,
            now: 0,
        }
    }

    fn exposure() -> Write {
        Write::Exposure(Exposure {
            request_id: "r".into(),
            user_id: None,
            group_id: None,
            experiment_id: None,
            variant: None,
            strategy: "s".into(),
            track_ids: "[]".into(),
            created_at: 0,
        })
    }

    #[test]
    fn group_rows_are_locked_in_id_order_before_the_inserts() {
        let batch = [
            events("g_b"),
            exposure(),
            events("g_a"),
            events("g_b"),
            exposure(),
        ];
        // g_a's row first, then g_b's two writes in the order they came (0 before 3), then the
        // inserts in theirs.
        assert_eq!(lock_order(&batch), vec![2, 0, 3, 1, 4]);
    }
}

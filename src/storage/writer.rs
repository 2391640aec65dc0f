//! Group commit for the hot writes: group events, interactions and exposures. Callers hand their write to
//! one writer and wait for its answer; the writer takes every write that queued meanwhile and
//! commits them in one transaction. Under load that turns thousands of small transactions a
//! second into hundreds of larger ones (one SQLite writer, no colliding writers, one commit
//! each).
//!
//! On SQLite the writer is a thread with its own connection ([`sqlite`]). On PostgreSQL it is a
//! task on sqlx, and a batch is a few statements however many writes it holds (the rooms'
//! locks, where their logs end, one multi-row INSERT per table): each statement is a round trip
//! to the server.
//!
//! A room's log ends at its highest seq (the `(group_id, seq)` key finds it); an append goes
//! there while the room is locked (SQLite's write lock, or the row's lock on PostgreSQL), and only
//! if the log is still where its appender saw it.
//!
//! A batch that fails is retried one write per transaction, so one bad write (a foreign key that
//! does not hold) fails alone and never takes its neighbours with it.

mod sqlite;

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, LazyLock},
};

// The dynamic statements below are built from placeholders and fixed names only.
use sqlx::{pool::PoolConnection, Any, AnyConnection, AnyPool, AssertSqlSafe, Connection, Row};

use super::{placeholders, row_placeholders};
use tokio::sync::{mpsc, oneshot, Mutex};

/// Where a room's log ends, for a query over `group_sessions`: its highest seq (one lookup of
/// the `(group_id, seq)` key's last entry for the room), 0 for an empty log.
pub(super) const LOG_END: &str =
    "(SELECT COALESCE(MAX(seq), 0) FROM group_events WHERE group_id = group_sessions.id)";

/// Writes per transaction at most.
const MAX_BATCH: usize = 256;
/// WAL pages after which a commit on SQLite checkpoints by itself (SQLite's default is 1,000):
/// a backstop only, for when the writer's checkpoint thread falls behind; 40 MB of 4 KiB pages.
const CHECKPOINT_BACKSTOP_PAGES: u32 = 10_000;

/// Every SQLite connection's settings, the pool's and the writer's: WAL lets readers run beside
/// the writer; busy_timeout queues writers instead of failing them; foreign keys are off by
/// default in SQLite; commits wait for the WAL's checkpoint rather than for the disk; and
/// checkpoints are the writer's checkpoint thread's job, a commit's only past the backstop.
/// (Built once: sqlx wants the text to outlive a connection's setup.)
pub(super) static SQLITE_PRAGMAS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
         PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = {CHECKPOINT_BACKSTOP_PAGES};"
    )
});
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
        /// Stored with the events, and only if they are.
        interactions: Vec<Interaction>,
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
/// A write and where its answer goes.
type Answer = (Write, Reply);

#[derive(Clone, Debug)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Answer>,
}

impl Writer {
    /// Starts the writer task on the current runtime, for PostgreSQL; it ends when the last
    /// handle is dropped.
    pub fn start_postgres(pool: AnyPool) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, queue));
        Self { jobs }
    }

    /// Starts the writer thread for the SQLite file at `path`; it ends when the last handle is
    /// dropped. `turn`: the store's writer lock, held for each transaction.
    pub fn start_sqlite(path: &Path, turn: Arc<Mutex<()>>) -> anyhow::Result<Self> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        sqlite::start(path, turn, queue)?;
        Ok(Self { jobs })
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

/// The writer's own connection, kept from batch to batch (its prepared statements with it).
/// Given back after an error, so a broken one is replaced, and after every batch when the pool
/// has a single connection (the others would wait for it forever).
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

async fn run(pool: AnyPool, mut queue: mpsc::Receiver<Answer>) {
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
    // Every room the batch appends to, locked and located in a few statements however many
    // rooms it serves (each statement is a round trip to the server).
    let rooms = rooms_in_lock_order(writes);
    let mut ends = HashMap::new();
    for piece in in_statement_sizes(&rooms) {
        ends.extend(log_ends(&mut tx, piece).await?);
    }
    let Placed {
        mut results,
        events,
        mut interactions,
    } = place(writes, ends);
    insert_events(&mut tx, &events).await?;
    interactions.extend(writes.iter().filter_map(|w| match w {
        Write::Interaction(row) => Some(row),
        _ => None,
    }));
    insert_interactions(&mut tx, &interactions).await?;
    let exposures: Vec<&Exposure> = writes
        .iter()
        .filter_map(|w| match w {
            Write::Exposure(row) => Some(row),
            _ => None,
        })
        .collect();
    insert_exposures(&mut tx, &exposures).await?;
    tx.commit().await?;
    for (result, write) in results.iter_mut().zip(writes) {
        match write {
            Write::Interaction(_) => *result = Some(Written::Interaction),
            Write::Exposure(_) => *result = Some(Written::Exposure),
            Write::Events { .. } => {}
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every write applied"))
        .collect())
}

struct EventRow<'a> {
    group_id: &'a str,
    seq: i64,
    kind: &'a str,
    actor: Option<&'a str>,
    payload: &'a str,
    client_msg_id: Option<&'a str>,
    created_at: i64,
}

/// The rooms a batch appends to, each once, in id order: the order every process locks them
/// in, so batches that share rooms wait for each other but never deadlock.
fn rooms_in_lock_order(writes: &[Write]) -> Vec<&str> {
    let mut rooms: Vec<&str> = writes
        .iter()
        .filter_map(|w| match w {
            Write::Events { group_id, .. } => Some(group_id.as_str()),
            _ => None,
        })
        .collect();
    rooms.sort_unstable();
    rooms.dedup();
    rooms
}

/// Locks the rooms' rows (in the order given: PostgreSQL takes a `FOR UPDATE` statement's
/// locks in its `ORDER BY`'s order), then reads where each room's log ends: its highest seq,
/// found by the `(group_id, seq)` key. Another process's appender waits for the lock, and its
/// read (a statement of its own, so a snapshot of its own) then sees this batch's events.
/// Rooms that do not exist are absent.
async fn log_ends<'a>(
    conn: &mut AnyConnection,
    rooms: &[&'a str],
) -> Result<HashMap<&'a str, i64>, sqlx::Error> {
    let sql = format!(
        "SELECT id FROM group_sessions WHERE id IN ({}) ORDER BY id FOR UPDATE",
        placeholders(0, rooms.len())
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for room in rooms {
        query = query.bind(*room);
    }
    query.fetch_all(&mut *conn).await?;
    // One index lookup per room (its key's last entry); `MAX … GROUP BY` over the rooms
    // instead read every event of theirs, and a batch's latency grew with the logs.
    let sql = format!(
        "SELECT id, {LOG_END} FROM group_sessions WHERE id IN ({})",
        placeholders(0, rooms.len())
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for room in rooms {
        query = query.bind(*room);
    }
    let mut ends = HashMap::new();
    for row in query.fetch_all(&mut *conn).await? {
        let id: String = row.try_get(0)?;
        if let Some(&room) = rooms.iter().find(|r| **r == id) {
            ends.insert(room, row.try_get(1)?);
        }
    }
    Ok(ends)
}

/// A batch's appends placed in the rooms' logs.
struct Placed<'a> {
    /// Per write: its outcome for an append, `None` for the others.
    results: Vec<Option<Written>>,
    events: Vec<EventRow<'a>>,
    /// The interactions the stored appends imply.
    interactions: Vec<&'a Interaction>,
}

/// Places each append at the end of its room's log (`ends`: where each existing room's log
/// ends), in the batch's order, where the log is still at the seq its appender decided on; an
/// appender that decided on an older state is told where the log is instead of interleaving.
fn place<'a>(writes: &'a [Write], mut ends: HashMap<&str, i64>) -> Placed<'a> {
    let mut placed = Placed {
        results: vec![None; writes.len()],
        events: Vec::new(),
        interactions: Vec::new(),
    };
    for (result, write) in placed.results.iter_mut().zip(writes) {
        let Write::Events {
            group_id,
            actor,
            client_msg_id,
            events,
            interactions,
            after,
            now,
        } = write
        else {
            continue;
        };
        *result =
            Some(Written::Events(match ends.get_mut(group_id.as_str()) {
                None => EventsWritten::NoGroup,
                Some(last) if after.is_some_and(|seen| seen != *last) => {
                    EventsWritten::Behind(*last)
                }
                Some(last) => {
                    let first = *last + 1;
                    placed.events.extend(events.iter().enumerate().map(
                        |(offset, (kind, payload))| EventRow {
                            group_id,
                            seq: first + offset as i64,
                            kind,
                            actor: actor.as_deref(),
                            payload,
                            client_msg_id: client_msg_id.as_deref(),
                            created_at: *now,
                        },
                    ));
                    *last += events.len() as i64;
                    placed.interactions.extend(interactions);
                    EventsWritten::From(first)
                }
            }));
    }
    placed
}

/// The row counts multi-row statements come in (the largest first). Each statement's text
/// depends on its row count, and preparing a long statement anew for every batch cost more
/// than the round trips it saved; with a few fixed sizes every statement stays prepared.
/// 32 rows of 8 columns are well within PostgreSQL's bound parameters.
const STATEMENT_ROWS: [usize; 4] = [32, 8, 2, 1];

/// `rows` cut into consecutive pieces of the sizes in [`STATEMENT_ROWS`], largest first.
fn in_statement_sizes<T>(mut rows: &[T]) -> Vec<&[T]> {
    let mut pieces = Vec::new();
    for size in STATEMENT_ROWS {
        while rows.len() >= size {
            let (piece, rest) = rows.split_at(size);
            pieces.push(piece);
            rows = rest;
        }
    }
    pieces
}

/// `INSERT INTO table (columns) VALUES (…), (…)` for `rows` rows of `columns` parameters.
fn insert_sql(table: &str, columns: &[&str], rows: usize) -> String {
    format!(
        "INSERT INTO {table} ({}) VALUES {}",
        columns.join(", "),
        row_placeholders(rows, columns.len())
    )
}

type RowQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

/// Inserts `rows` into `table` in statements of [`STATEMENT_ROWS`] sizes; `bind` binds one
/// row's values in `columns` order.
async fn insert_rows<T>(
    conn: &mut AnyConnection,
    table: &str,
    columns: &[&str],
    rows: &[T],
    bind: impl for<'q> Fn(RowQuery<'q>, &'q T) -> RowQuery<'q>,
) -> Result<(), sqlx::Error> {
    for chunk in in_statement_sizes(rows) {
        let sql = insert_sql(table, columns, chunk.len());
        let query = chunk
            .iter()
            .fold(sqlx::query(AssertSqlSafe(sql)), |query, row| {
                bind(query, row)
            });
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

async fn insert_events(conn: &mut AnyConnection, rows: &[EventRow<'_>]) -> Result<(), sqlx::Error> {
    const COLUMNS: [&str; 7] = [
        "group_id",
        "seq",
        "kind",
        "actor_user_id",
        "payload",
        "client_msg_id",
        "created_at",
    ];
    insert_rows(conn, "group_events", &COLUMNS, rows, |query, row| {
        query
            .bind(row.group_id)
            .bind(row.seq)
            .bind(row.kind)
            .bind(row.actor)
            .bind(row.payload)
            .bind(row.client_msg_id)
            .bind(row.created_at)
    })
    .await
}

async fn insert_interactions(
    conn: &mut AnyConnection,
    rows: &[&Interaction],
) -> Result<(), sqlx::Error> {
    const COLUMNS: [&str; 8] = [
        "id",
        "user_id",
        "track_id",
        "kind",
        "weight",
        "request_id",
        "group_id",
        "created_at",
    ];
    insert_rows(conn, "interactions", &COLUMNS, rows, |query, row| {
        query
            .bind(row.id.as_str())
            .bind(row.user_id.as_str())
            .bind(row.track_id.as_str())
            .bind(row.kind.as_str())
            .bind(row.weight)
            .bind(row.request_id.as_deref())
            .bind(row.group_id.as_deref())
            .bind(row.created_at)
    })
    .await
}

async fn insert_exposures(conn: &mut AnyConnection, rows: &[&Exposure]) -> Result<(), sqlx::Error> {
    const COLUMNS: [&str; 8] = [
        "request_id",
        "user_id",
        "group_id",
        "experiment_id",
        "variant",
        "strategy",
        "track_ids",
        "created_at",
    ];
    insert_rows(conn, "exposures", &COLUMNS, rows, |query, row| {
        query
            .bind(row.request_id.as_str())
            .bind(row.user_id.as_deref())
            .bind(row.group_id.as_deref())
            .bind(row.experiment_id.as_deref())
            .bind(row.variant.as_deref())
            .bind(row.strategy.as_str())
            .bind(row.track_ids.as_str())
            .bind(row.created_at)
    })
    .await
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
            interactions: vec![],
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

    fn append(group: &str, events: usize, after: Option<i64>) -> Write {
        Write::Events {
            group_id: group.into(),
            actor: None,
            client_msg_id: None,
            events: (0..events).map(|e| ("k".into(), e.to_string())).collect(),
            interactions: vec![],
            after,
            now: 0,
        }
    }

    #[test]
    fn rooms_are_locked_once_each_in_id_order() {
        let batch = [
            events("g_b"),
            exposure(),
            events("g_a"),
            events("g_b"),
            exposure(),
            events("g_c"),
        ];
        assert_eq!(rooms_in_lock_order(&batch), vec!["g_a", "g_b", "g_c"]);
        assert!(rooms_in_lock_order(&[exposure()]).is_empty());
    }

    #[test]
    fn appends_follow_each_other_in_batch_order_and_stale_ones_are_refused() {
        let batch = [
            append("g_a", 2, Some(4)),
            exposure(),
            // Decided on the log as the first append leaves it.
            append("g_a", 1, Some(6)),
            // Decided on the log before the first: refused, told where it is.
            append("g_a", 1, Some(4)),
            // At the end, whatever it is.
            append("g_a", 1, None),
            append("g_new", 1, Some(0)),
            append("g_gone", 1, None),
        ];
        let placed = place(&batch, HashMap::from([("g_a", 4), ("g_new", 0)]));
        let outcomes: Vec<Option<EventsWritten>> = placed
            .results
            .iter()
            .map(|r| match r {
                Some(Written::Events(e)) => Some(*e),
                _ => None,
            })
            .collect();
        assert_eq!(
            outcomes,
            vec![
                Some(EventsWritten::From(5)),
                None,
                Some(EventsWritten::From(7)),
                Some(EventsWritten::Behind(7)),
                Some(EventsWritten::From(8)),
                Some(EventsWritten::From(1)),
                Some(EventsWritten::NoGroup),
            ]
        );
        let rows: Vec<(&str, i64, &str)> = placed
            .events
            .iter()
            .map(|e| (e.group_id, e.seq, e.payload))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("g_a", 5, "0"),
                ("g_a", 6, "1"),
                ("g_a", 7, "0"),
                ("g_a", 8, "0"),
                ("g_new", 1, "0"),
            ]
        );
    }

    #[test]
    fn multi_row_inserts_number_their_parameters_in_order() {
        assert_eq!(
            insert_sql("t", &["a", "b"], 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
    }

    #[test]
    fn statements_come_in_a_few_sizes_that_cover_every_row_in_order() {
        let rows: Vec<usize> = (0..77).collect();
        let pieces = in_statement_sizes(&rows);
        let sizes: Vec<usize> = pieces.iter().map(|p| p.len()).collect();
        assert_eq!(sizes, vec![32, 32, 8, 2, 2, 1]);
        assert_eq!(pieces.concat(), rows);
        assert!(in_statement_sizes::<usize>(&[]).is_empty());
    }
}

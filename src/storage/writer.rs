//! Group commit for the hot writes: group events, interactions and exposures. Callers hand their write to
//! one writer and wait for its answer; the writer takes every write that queued meanwhile and
//! commits them in one transaction. Under load that turns thousands of small transactions a
//! second into hundreds of larger ones (one SQLite writer, no colliding writers, one commit
//! each).
//!
//! On SQLite the writer is a thread with its own connection ([`sqlite`]). On PostgreSQL it is a
//! task on sqlx, and a batch is a few statements however many writes it holds (one UPDATE per
//! round of the rooms' appends, one multi-row INSERT per table): each statement is a round trip
//! to the server.
//!
//! A batch that fails is retried one write per transaction, so one bad write (a foreign key that
//! does not hold) fails alone and never takes its neighbours with it.

mod sqlite;

use std::{collections::HashMap, path::Path, sync::Arc};

// The dynamic statements below are built from placeholders and fixed names only.
use sqlx::{pool::PoolConnection, Any, AnyConnection, AnyPool, AssertSqlSafe, Connection, Row};

use super::{placeholders, row_placeholders};
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
    let mut results: Vec<Option<Written>> = vec![None; writes.len()];
    // Group appends in rounds: each group's first write of the batch, then its second... One
    // round is one statement for every group in it, so a batch costs a few statements however
    // many rooms it serves (each statement is a round trip to the server).
    let mut event_rows: Vec<EventRow<'_>> = Vec::new();
    let mut interactions: Vec<&Interaction> = Vec::new();
    for round in append_rounds(writes) {
        let appends: Vec<Append<'_>> = round
            .iter()
            .map(|&i| match &writes[i] {
                Write::Events {
                    group_id,
                    events,
                    after,
                    ..
                } => Append {
                    group_id,
                    count: events.len() as i64,
                    after: *after,
                },
                _ => unreachable!("rounds hold appends only"),
            })
            .collect();
        let mut stored = HashMap::new();
        for piece in in_statement_sizes(&appends) {
            stored.extend(append_round(&mut tx, piece).await?);
        }
        let missed: Vec<&str> = appends
            .iter()
            .map(|a| a.group_id)
            .filter(|g| !stored.contains_key(g))
            .collect();
        let positions = last_seqs(&mut tx, &missed).await?;
        for (&i, append) in round.iter().zip(&appends) {
            let Write::Events {
                actor,
                client_msg_id,
                events,
                interactions: implied,
                now,
                ..
            } = &writes[i]
            else {
                unreachable!("rounds hold appends only");
            };
            results[i] = Some(Written::Events(match stored.get(append.group_id) {
                Some(&last) => {
                    let first = last - append.count + 1;
                    event_rows.extend(events.iter().enumerate().map(
                        |(offset, (kind, payload))| EventRow {
                            group_id: append.group_id,
                            seq: first + offset as i64,
                            kind,
                            actor: actor.as_deref(),
                            payload,
                            client_msg_id: client_msg_id.as_deref(),
                            created_at: *now,
                        },
                    ));
                    interactions.extend(implied);
                    EventsWritten::From(first)
                }
                None => positions
                    .get(append.group_id)
                    .map_or(EventsWritten::NoGroup, |&at| EventsWritten::Behind(at)),
            }));
        }
    }
    insert_events(&mut tx, &event_rows).await?;
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

/// One group's append in a round.
struct Append<'a> {
    group_id: &'a str,
    count: i64,
    /// The seq the appender decided on (`None`: at the end, whatever it is).
    after: Option<i64>,
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

/// The batch's appends in rounds: a group's n-th write of the batch in round n, each round in
/// group id order. One group's writes keep their order (round by round), and processes lock
/// the rows they share in the same order, so their batches wait for each other but never
/// deadlock.
fn append_rounds(writes: &[Write]) -> Vec<Vec<usize>> {
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, write) in writes.iter().enumerate() {
        if let Write::Events { group_id, .. } = write {
            let n = seen.entry(group_id.as_str()).or_default();
            if rounds.len() <= *n {
                rounds.push(Vec::new());
            }
            rounds[*n].push(i);
            *n += 1;
        }
    }
    for round in &mut rounds {
        round.sort_by(|&a, &b| group_of(&writes[a]).cmp(group_of(&writes[b])));
    }
    rounds
}

fn group_of(write: &Write) -> &str {
    match write {
        Write::Events { group_id, .. } => group_id,
        _ => "",
    }
}

/// Moves every group's counter on by its count, where the seq is still the one its appender
/// decided on; the row's write lock serialises appenders, the seq condition makes an appender
/// that decided on an older state fail instead of interleaving. Returns the new last seq of
/// the groups that moved.
async fn append_round<'a>(
    conn: &mut AnyConnection,
    appends: &[Append<'a>],
) -> Result<HashMap<&'a str, i64>, sqlx::Error> {
    // Row locks in id order first: PostgreSQL's UPDATE would take them in scan order.
    let sql = format!(
        "SELECT id FROM group_sessions WHERE id IN ({}) ORDER BY id FOR UPDATE",
        placeholders(0, appends.len())
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for append in appends {
        query = query.bind(append.group_id);
    }
    query.fetch_all(&mut *conn).await?;
    let mut sql = String::from("UPDATE group_sessions SET last_seq = last_seq + CASE id");
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    for _ in appends {
        sql.push_str(&format!(" WHEN {} THEN CAST({} AS BIGINT)", next(), next()));
    }
    sql.push_str(" END WHERE ");
    for k in 0..appends.len() {
        if k > 0 {
            sql.push_str(" OR ");
        }
        // No seq to check (NULL): any.
        sql.push_str(&format!(
            "(id = {} AND last_seq = COALESCE(CAST({} AS BIGINT), last_seq))",
            next(),
            next()
        ));
    }
    sql.push_str(" RETURNING id, last_seq");
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for append in appends {
        query = query.bind(append.group_id).bind(append.count);
    }
    for append in appends {
        query = query.bind(append.group_id).bind(append.after);
    }
    let mut moved = HashMap::new();
    for row in query.fetch_all(&mut *conn).await? {
        let id: String = row.try_get(0)?;
        let last: i64 = row.try_get(1)?;
        if let Some(append) = appends.iter().find(|a| a.group_id == id) {
            moved.insert(append.group_id, last);
        }
    }
    Ok(moved)
}

/// Where the given groups' logs are (groups that do not exist are absent).
async fn last_seqs<'a>(
    conn: &mut AnyConnection,
    groups: &[&'a str],
) -> Result<HashMap<&'a str, i64>, sqlx::Error> {
    if groups.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT id, last_seq FROM group_sessions WHERE id IN ({})",
        placeholders(0, groups.len())
    );
    // Rare (another process appended first): prepared for the one use.
    let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(false);
    for group in groups {
        query = query.bind(*group);
    }
    let mut found = HashMap::new();
    for row in query.fetch_all(&mut *conn).await? {
        let id: String = row.try_get(0)?;
        if let Some(&group) = groups.iter().find(|g| **g == id) {
            found.insert(group, row.try_get(1)?);
        }
    }
    Ok(found)
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

    #[test]
    fn appends_go_in_rounds_in_group_id_order() {
        let batch = [
            events("g_b"),
            exposure(),
            events("g_a"),
            events("g_b"),
            exposure(),
            events("g_c"),
            events("g_b"),
        ];
        // Each group's first write in the first round (by id), its second in the second...
        assert_eq!(append_rounds(&batch), vec![vec![2, 0, 5], vec![3], vec![6]]);
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

//! The group-commit writer on SQLite: a thread of its own with its own connection, which takes
//! each batch's writes from the queue and commits them in one transaction, every statement a
//! call on this thread. Through sqlx every statement was a message to the connection's thread
//! and a wake-up back: a batch of two writes cost about twenty context switches, and at 2,000
//! operations a second those hand-offs, not SQLite, were most of the writer's CPU
//! (docs/BENCHMARKS.md). Only these hot writes take this path; everything else stays on sqlx.
//!
//! One writer per database file within a process holds the store's writer lock (`turn`) for
//! each transaction, like every other SQLite write; another process writing the same file is
//! waited for by SQLite's busy timeout.

use std::{
    collections::HashMap,
    path::Path,
    sync::{mpsc as std_mpsc, Arc},
    time::Duration,
};

use anyhow::Context;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, Mutex};

use super::{
    place, rooms_in_lock_order, Answer, Exposure, Interaction, Placed, Write, Written, LOG_END,
    MAX_BATCH, SQLITE_PRAGMAS,
};

/// How often the checkpoint thread copies the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// Checkpoints without the writer lock, at most, before the one with it…
const UNLOCKED_PASSES: usize = 4;
/// …unless the writer added fewer pages than this during the last one.
const SMALL_REST_PAGES: i64 = 200;

/// Opens the writer's connection to the database file at `path` (already migrated) and starts
/// its thread, which ends when the queue's last sender is dropped.
pub(super) fn start(
    path: &Path,
    turn: Arc<Mutex<()>>,
    queue: mpsc::Receiver<Answer>,
) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(path)
        .with_context(|| format!("opening {} for the writer", path.display()))?;
    // The pool's settings; checkpoints run on a thread of their own (`checkpoint_until`).
    conn.execute_batch(&SQLITE_PRAGMAS)
        .context("setting up the writer's connection")?;
    conn.set_prepared_statement_cache_capacity(16);
    let checkpoints = rusqlite::Connection::open(path)
        .with_context(|| format!("opening {} for checkpoints", path.display()))?;
    // The writer's thread holds `alive`; when it ends, so does the checkpoint thread.
    let (alive, writer_gone) = std_mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn({
            let turn = Arc::clone(&turn);
            move || checkpoint_until(checkpoints, &turn, writer_gone)
        })
        .context("starting the checkpoint thread")?;
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || {
            let _alive = alive;
            run(conn, turn, queue)
        })
        .context("starting the writer's thread")?;
    Ok(())
}

/// Copies the WAL back into the database file every [`CHECKPOINT_EVERY`] until the writer's
/// thread ends. When the writer checkpointed at its own commits (every 1,000 WAL pages, SQLite's
/// default), the copy and its fsync held up the appends behind it: delivery p99 at 2,000
/// operations a second went from 5–16 ms without checkpoints to 39–906 ms with them
/// (docs/BENCHMARKS.md). A PASSIVE checkpoint on another connection takes no lock a writer
/// needs, so appends go on meanwhile. But the log only starts over once a checkpoint has copied
/// all of it, which a busy writer never allows; so a last pass, over the little written
/// during the others, holds the store's writer lock (`turn`). Idle, the passes find nothing to
/// copy.
fn checkpoint_until(
    conn: rusqlite::Connection,
    turn: &Mutex<()>,
    writer_gone: std_mpsc::Receiver<()>,
) {
    loop {
        let last = matches!(
            writer_gone.recv_timeout(CHECKPOINT_EVERY),
            Err(std_mpsc::RecvTimeoutError::Disconnected)
        );
        // Unlocked passes while the writer adds much during each; then the locked one.
        let mut log = checkpoint(&conn);
        for _ in 1..UNLOCKED_PASSES {
            let before = log;
            log = checkpoint(&conn);
            if log - before < SMALL_REST_PAGES {
                break;
            }
        }
        if log > 0 {
            // The locked pass flushes the log and then the database file, and everything
            // the unlocked passes left unflushed would be written out with the lock held.
            flush(&conn, rusqlite::ffi::SQLITE_FCNTL_JOURNAL_POINTER);
            flush(&conn, rusqlite::ffi::SQLITE_FCNTL_FILE_POINTER);
            let _turn = turn.blocking_lock();
            checkpoint(&conn);
        }
        if last {
            return;
        }
    }
}

/// Flushes one of the checkpoint connection's files to disk through SQLite's own handle
/// (`SQLITE_FCNTL_JOURNAL_POINTER`: the WAL; `SQLITE_FCNTL_FILE_POINTER`: the database file);
/// false where the connection has no such file open or the flush failed (logged).
///
/// A PASSIVE checkpoint flushes the database file only when it has copied the whole log, which
/// with appends arriving only the locked pass does: that pass then flushed every page the others
/// had copied, with the writer waiting (p50 11 ms, p90 30–35 ms at 2,000 operations a second;
/// docs/BENCHMARKS.md). Flushing first leaves it little. The locked pass still flushes both
/// files itself, so a failure here costs nothing but the head start. SQLite's own handle,
/// because the process must not open and close a descriptor of its own on the database file:
/// closing one drops the POSIX locks all of the process's SQLite connections hold on it.
fn flush(conn: &rusqlite::Connection, which: std::ffi::c_int) -> bool {
    use rusqlite::ffi;
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // `None`: the connection has no such file open.
    // SAFETY: `conn` is open and used only on this thread, so its handle is valid here and no
    // statement runs meanwhile. Both opcodes write one `sqlite3_file` pointer into `file`: the
    // connection's own file (null, or without methods, while it is not open), valid as long as
    // the connection is. `xSync` is that file's flush, which SQLite itself calls between
    // statements.
    let rc = unsafe {
        let found = ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            which,
            (&mut file as *mut *mut ffi::sqlite3_file).cast(),
        );
        if found != ffi::SQLITE_OK {
            Some(found)
        } else if file.is_null() || (*file).pMethods.is_null() {
            None
        } else {
            (*(*file).pMethods)
                .xSync
                .map(|sync| sync(file, ffi::SQLITE_SYNC_NORMAL))
        }
    };
    if let Some(code) = rc.filter(|&code| code != ffi::SQLITE_OK) {
        tracing::warn!(code, "flushing a SQLite file before the locked checkpoint");
    }
    rc == Some(ffi::SQLITE_OK)
}

/// One PASSIVE checkpoint: the pages in the log when it began (0 after an error, which is
/// logged; the next turn tries again).
fn checkpoint(conn: &rusqlite::Connection) -> i64 {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
        .unwrap_or_else(|err| {
            tracing::warn!(error = %err, "checkpointing the SQLite WAL");
            0
        })
}

fn run(mut conn: rusqlite::Connection, turn: Arc<Mutex<()>>, mut queue: mpsc::Receiver<Answer>) {
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (writes, replies): (Vec<Write>, Vec<_>) = batch.into_iter().unzip();
        let _turn = turn.blocking_lock();
        match commit(&mut conn, &writes) {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(err) if writes.len() == 1 => {
                let _ = replies.into_iter().next().map(|r| r.send(Err(error(err))));
            }
            // One bad write (a foreign key that does not hold) fails alone.
            Err(err) => {
                tracing::warn!(error = %err, writes = writes.len(), "batched write failed; retrying one by one");
                for (write, reply) in writes.iter().zip(replies) {
                    let result = commit(&mut conn, std::slice::from_ref(write))
                        .map(|mut r| r.remove(0))
                        .map_err(error);
                    let _ = reply.send(result);
                }
            }
        }
    }
}

/// The callers speak sqlx's errors.
fn error(err: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(err))
}

/// The writes in one transaction: each room's append placed by the same rule as on PostgreSQL
/// ([`place`]: at the end of its log only where that is still the seq the appender decided
/// on), with the feedback its events imply; a standalone interaction or exposure is one row.
fn commit(conn: &mut rusqlite::Connection, writes: &[Write]) -> rusqlite::Result<Vec<Written>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Where each room's log ends (its highest seq, found by the `(group_id, seq)` key); rooms
    // that do not exist are absent. The transaction holds the database's write lock, so the
    // logs stay where they are until the events are in.
    let mut ends = HashMap::new();
    {
        let mut log_end = tx.prepare_cached(&format!(
            "SELECT {LOG_END} FROM group_sessions WHERE id = ?1"
        ))?;
        for room in rooms_in_lock_order(writes) {
            let end: Option<i64> = log_end
                .query_row(params![room], |row| row.get(0))
                .optional()?;
            if let Some(end) = end {
                ends.insert(room, end);
            }
        }
    }
    let Placed {
        results,
        events,
        interactions,
    } = place(writes, ends);
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO group_events \
             (group_id, seq, kind, actor_user_id, payload, client_msg_id, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for event in &events {
            insert.execute(params![
                event.group_id,
                event.seq,
                event.kind,
                event.actor,
                event.payload,
                event.client_msg_id,
                event.created_at
            ])?;
        }
    }
    for row in interactions {
        insert_interaction(&tx, row)?;
    }
    let results = results
        .into_iter()
        .zip(writes)
        .map(|(placed, write)| {
            Ok(match write {
                Write::Events { .. } => placed.expect("every append placed"),
                Write::Interaction(row) => {
                    insert_interaction(&tx, row)?;
                    Written::Interaction
                }
                Write::Exposure(row) => {
                    insert_exposure(&tx, row)?;
                    Written::Exposure
                }
            })
        })
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tx.commit()?;
    Ok(results)
}

fn insert_interaction(conn: &rusqlite::Connection, row: &Interaction) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO interactions \
         (id, user_id, track_id, kind, weight, request_id, group_id, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        row.id,
        row.user_id,
        row.track_id,
        row.kind,
        row.weight,
        row.request_id,
        row.group_id,
        row.created_at
    ])?;
    Ok(())
}

fn insert_exposure(conn: &rusqlite::Connection, row: &Exposure) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO exposures \
         (request_id, user_id, group_id, experiment_id, variant, strategy, track_ids, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        row.request_id,
        row.user_id,
        row.group_id,
        row.experiment_id,
        row.variant,
        row.strategy,
        row.track_ids,
        row.created_at
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flush reaches SQLite's own open files through the FFI, and reports a file the
    /// connection has not opened.
    #[test]
    fn the_checkpoint_connection_flushes_its_log_and_database_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flush.db");
        let writer = rusqlite::Connection::open(&path).unwrap();
        writer.execute_batch(&SQLITE_PRAGMAS).unwrap();
        writer
            .execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
            .unwrap();
        let checkpoints = rusqlite::Connection::open(&path).unwrap();
        assert!(
            !flush(&checkpoints, rusqlite::ffi::SQLITE_FCNTL_JOURNAL_POINTER),
            "a connection that has not read the database has no log open"
        );
        writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
        assert!(checkpoint(&checkpoints) > 0, "the log holds the inserts");
        assert!(flush(
            &checkpoints,
            rusqlite::ffi::SQLITE_FCNTL_JOURNAL_POINTER
        ));
        assert!(flush(
            &checkpoints,
            rusqlite::ffi::SQLITE_FCNTL_FILE_POINTER
        ));
    }
}

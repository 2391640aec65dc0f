//! Persistent storage through sqlx's `Any` driver: a SQLite file by default, PostgreSQL when the
//! URL says `postgres://`. One set of migrations and one set of queries serve both, which is why
//! the SQL here sticks to the shared dialect (`$N` placeholders, `ON CONFLICT`, `RETURNING`) and
//! the types `Any` carries (TEXT, BIGINT as i64, DOUBLE PRECISION as f64).
//!
//! The pool is cloned freely (it is an `Arc` inside); every query runs on tokio without blocking.

pub mod bandit;
pub mod experiments;
pub mod feedback;
pub mod groups;
pub mod spotify;
pub mod tracks;
pub mod users;
mod writer;

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions},
    AnyPool, Executor,
};

use crate::config::DatabaseSettings;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// SQLite only: one writer at a time (see [`Db::write_turn`]).
    writes: Option<Arc<tokio::sync::Mutex<()>>>,
    /// Group commit for group events and interactions.
    writer: writer::Writer,
}

impl Db {
    /// Connects (creating the SQLite file and its directory if needed) and applies migrations.
    pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let url = settings.url.expose();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let url = match backend {
            Backend::Sqlite => sqlite_url_creating_dirs(url)?,
            Backend::Postgres => url.to_string(),
        };
        let sqlite_file = match backend {
            Backend::Sqlite => Some(sqlite_path(&url)?),
            Backend::Postgres => None,
        };
        let options = AnyConnectOptions::from_str(&url).context("parsing DATABASE_URL")?;
        let pool = AnyPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(writer::SQLITE_PRAGMAS.as_str()).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to the {} database", backend.name()))?;
        MIGRATOR
            .run(&pool)
            .await
            .context("applying database migrations")?;
        let writes = (backend == Backend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
        let writer = match (&sqlite_file, &writes) {
            (Some(path), Some(turn)) => writer::Writer::start_sqlite(path, Arc::clone(turn))?,
            _ => writer::Writer::start_postgres(pool.clone()),
        };
        Ok(Self {
            pool,
            backend,
            writes,
            writer,
        })
    }

    /// Hold this while writing. SQLite allows one writer at a time and makes colliding writers
    /// wait in its busy handler, which sleeps in steps of up to 100 ms; queueing them here, in
    /// order, keeps writes flowing. PostgreSQL has row locks and needs no turn.
    pub async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.writes {
            Some(lock) => Some(lock.lock().await),
            None => None,
        }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `sqlite://path` → `sqlite://path?mode=rwc`, creating the parent directory. In-memory URLs
/// pass through.
fn sqlite_url_creating_dirs(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" {
        return Ok(url.to_string());
    }
    if let Some(parent) = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the database directory {}", parent.display()))?;
    }
    let query = if query.contains("mode=") {
        query.to_string()
    } else if query.is_empty() {
        "mode=rwc".to_string()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}

/// The file of a `sqlite://path?query` URL (as [`sqlite_url_creating_dirs`] leaves it). The
/// store's writer has a connection of its own, so an in-memory database, which is private to
/// each connection, cannot hold the store.
fn sqlite_path(url: &str) -> anyhow::Result<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = rest.split_once('?').map_or(rest, |(path, _)| path);
    if path.is_empty() || path == ":memory:" {
        anyhow::bail!(
            "an in-memory SQLite database is private to each connection and cannot hold the \
             store; give DATABASE_URL a file, like sqlite://chorus.db"
        );
    }
    Ok(PathBuf::from(path))
}

/// `$1, $2, …` for `count` parameters starting after `offset`: the placeholder style both
/// backends accept through `Any`.
pub(crate) fn placeholders(offset: usize, count: usize) -> String {
    (offset + 1..=offset + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, …, $columns), ($columns+1, …), …` for `rows` rows: a multi-row `VALUES` list.
pub(crate) fn row_placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholders(r * columns, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/chorus.db");
        let url = sqlite_url_creating_dirs(&format!("sqlite://{}", path.display())).unwrap();
        assert!(url.ends_with("chorus.db?mode=rwc"), "{url}");
        assert!(path.parent().unwrap().is_dir());
        assert_eq!(
            sqlite_url_creating_dirs("sqlite::memory:").unwrap(),
            "sqlite::memory:"
        );
    }

    #[test]
    fn the_writer_opens_the_urls_file_and_refuses_memory() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/chorus/c.db?mode=rwc").unwrap(),
            PathBuf::from("/var/lib/chorus/c.db")
        );
        assert_eq!(
            sqlite_path("sqlite://chorus.db").unwrap(),
            PathBuf::from("chorus.db")
        );
        let err = sqlite_path("sqlite::memory:").unwrap_err().to_string();
        assert!(err.contains("give DATABASE_URL a file"), "{err}");
    }

    #[test]
    fn placeholders_are_numbered() {
        assert_eq!(placeholders(2, 3), "$3, $4, $5");
        assert_eq!(row_placeholders(2, 2), "($1, $2), ($3, $4)");
    }
}

//! Command-line entry points: serve (the default), import catalogs, generate synthetic data,
//! apply migrations. Long jobs print progress to stderr.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Write},
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::{
    catalog::{import, synthetic},
    config::Settings,
    startup::Application,
    storage::{tracks, Db},
    telemetry,
};

#[derive(Parser)]
#[command(
    name = "chorus",
    version,
    about = "Real-time group session server for music recommendation"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default). Configuration: README, "Configuration".
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Import a catalog CSV into the database (`DATABASE_URL`). Existing ids are kept.
    Import {
        #[arg(value_enum)]
        format: ImportFormat,
        /// Path to the CSV file (`-` for standard input).
        path: PathBuf,
    },
    /// Generate a synthetic catalog and listeners for load tests.
    Generate {
        #[arg(long)]
        tracks: usize,
        #[arg(long, default_value_t = 0)]
        users: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Directory for `tracks.csv` (generic catalog format) and `interactions.csv`.
        #[arg(long)]
        out: PathBuf,
        /// Also import the generated tracks into the database.
        #[arg(long)]
        import: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ImportFormat {
    /// TidyTuesday `spotify_songs.csv` (one row per track and playlist).
    SpotifySongs,
    /// The generic catalog CSV documented in the README.
    Generic,
}

pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load()?;
    telemetry::init(&settings.log);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            Application::build(settings)
                .await?
                .run_until_stopped()
                .await
        }
        Command::Migrate => {
            Db::connect(&settings.database).await?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Import { format, path } => {
            let db = Db::connect(&settings.database).await?;
            let (report, source) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let reader: Box<dyn std::io::Read + Send> = if path.as_os_str() == "-" {
                    Box::new(std::io::stdin())
                } else {
                    Box::new(BufReader::new(
                        File::open(&path).with_context(|| format!("opening {}", path.display()))?,
                    ))
                };
                Ok(match format {
                    ImportFormat::SpotifySongs => {
                        (import::parse_spotify_songs(reader)?, "spotify-songs")
                    }
                    ImportFormat::Generic => (import::parse_generic(reader)?, "generic"),
                })
            })
            .await??;
            eprintln!(
                "read {} rows: {} tracks, {} rows skipped",
                report.rows,
                report.tracks.len(),
                report.skipped
            );
            for problem in &report.problems {
                eprintln!("  skipped {problem}");
            }
            store(&db, &report.tracks, source).await
        }
        Command::Generate {
            tracks: n,
            users,
            seed,
            out,
            import,
        } => {
            let started = Instant::now();
            let generated =
                tokio::task::spawn_blocking(move || generate(n, users, seed, &out)).await??;
            eprintln!("generated in {:.1} s", started.elapsed().as_secs_f64());
            if import {
                let db = Db::connect(&settings.database).await?;
                store(&db, &generated, "synthetic").await?;
            }
            Ok(())
        }
    }
}

async fn store(db: &Db, all: &[crate::catalog::Track], source: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let total = all.len();
    let mut last_report = Instant::now();
    let inserted = tracks::insert(db, all, source, |done| {
        if last_report.elapsed().as_secs() >= 2 || done == total {
            eprintln!(
                "  stored {done}/{total} ({:.0}%)",
                100.0 * done as f64 / total.max(1) as f64
            );
            last_report = Instant::now();
        }
    })
    .await?;
    eprintln!(
        "{inserted} new tracks stored ({} already present) in {:.1} s",
        total as u64 - inserted,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn generate(
    n: usize,
    users: usize,
    seed: u64,
    out: &Path,
) -> anyhow::Result<Vec<crate::catalog::Track>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    eprintln!("generating {n} tracks (seed {seed})");
    let all = synthetic::tracks(n, seed);
    let path = out.join("tracks.csv");
    import::write_generic(BufWriter::new(File::create(&path)?), &all)?;
    eprintln!("  wrote {}", path.display());
    if users > 0 {
        eprintln!("generating {users} listeners");
        let listeners = synthetic::users(&all, users, seed);
        let path = out.join("interactions.csv");
        let mut w = BufWriter::new(File::create(&path)?);
        writeln!(w, "user_id,track_id,weight,timestamp")?;
        let mut rows = 0usize;
        for user in &listeners {
            for (track, plays, ts) in &user.interactions {
                writeln!(w, "{},{},{},{}", user.id, track, plays, ts)?;
                rows += 1;
            }
        }
        w.flush()?;
        eprintln!("  wrote {} ({rows} interactions)", path.display());
    }
    Ok(all)
}

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
    /// The offline group benchmark (docs/QUALITY.md, "Groups") on the shipped models and the
    /// embedded catalog's held-out playlists; prints a markdown table, progress to stderr.
    EvalGroups {
        /// Groups per kind and size.
        #[arg(long, default_value_t = 60)]
        groups: usize,
        #[arg(long, default_value_t = 20200121)]
        seed: u64,
        /// Candidates scored for every member (the server's realtime.group_candidates).
        #[arg(long, default_value_t = 100)]
        candidates: usize,
        /// Also the utility scales the server does not use, to compare.
        #[arg(long)]
        compare: bool,
        /// Store the fitted Platt scaling in models/manifest.json (models.hybrid.calibration).
        #[arg(long)]
        write_calibration: bool,
        /// Write the calibration and group tables into this markdown file (between the
        /// `<!-- groups:begin -->` and `<!-- groups:end -->` markers, appended if absent).
        #[arg(long)]
        quality: Option<PathBuf>,
    },
    /// Each bandit arm's offline quality per context (docs/QUALITY.md, "Bandit priors"), which
    /// the bandits' warm start turns into priors; prints a markdown table, progress to stderr.
    EvalPriors {
        /// Random groups per room size.
        #[arg(long, default_value_t = 60)]
        groups: usize,
        #[arg(long, default_value_t = 20200121)]
        seed: u64,
        /// Candidates ranked per list (the server's inference.candidates and
        /// realtime.group_candidates).
        #[arg(long, default_value_t = 200)]
        candidates: usize,
        #[arg(long, default_value_t = 100)]
        group_candidates: usize,
        /// Store the measurements in models/manifest.json (bandit_prior).
        #[arg(long)]
        write: bool,
        /// Write the table into this markdown file (between the `<!-- bandit-priors:begin -->`
        /// and `<!-- bandit-priors:end -->` markers, appended if absent).
        #[arg(long)]
        quality: Option<PathBuf>,
    },
    /// The bandits' stored state: apply the configured priors, or forget what was learned.
    Bandit {
        #[command(subcommand)]
        action: BanditAction,
    },
    /// The seeded bandit simulation (docs/QUALITY.md, "Bandit"): regret of today's and the
    /// warm-started contextual bandit over a population of cold and warm listeners.
    SimulateBandit {
        #[arg(long, default_value_t = 20)]
        runs: u64,
        /// Write the table into this markdown file (`bandit-simulation` markers).
        #[arg(long)]
        quality: Option<PathBuf>,
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
    /// Run the local Spotify stand-in (accounts service and Web API) for demos and the browser
    /// tests; point spotify.accounts_url and spotify.api_url at the URLs it prints.
    SpotifyStandin {
        #[arg(long, default_value = "127.0.0.1:8888")]
        bind: std::net::SocketAddr,
        /// The client id it accepts (set the same as spotify.client_id).
        #[arg(long, default_value = "chorus-standin")]
        client_id: String,
    },
}

#[derive(Subcommand)]
enum BanditAction {
    /// Replace the stored priors with the configured ones (the manifest's bandit_prior,
    /// bandit.prior_weight and bandit.prior_rate); what was learned stays.
    SetPriors,
    /// Forget what was learned (counts to zero, pending lists dropped); the priors stay.
    Reset {
        /// Only this bandit (solo_strategy or group_aggregation).
        #[arg(long)]
        bandit: Option<String>,
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
        Command::EvalGroups {
            groups,
            seed,
            candidates,
            compare,
            write_calibration,
            quality,
        } => {
            let models = settings.models.clone();
            let options = EvalGroups {
                per_cell: groups,
                seed,
                candidates,
                compare,
                write_calibration,
            };
            let report =
                tokio::task::spawn_blocking(move || eval_groups(&models, &options)).await??;
            match quality {
                Some(path) => {
                    write_section(&path, "groups", "Groups", &report)?;
                    eprintln!("wrote the Groups section of {}", path.display());
                }
                None => println!("{report}"),
            }
            Ok(())
        }
        Command::EvalPriors {
            groups,
            seed,
            candidates,
            group_candidates,
            write,
            quality,
        } => {
            let models = settings.models.clone();
            let bandit = settings.bandit.clone();
            let (measured, report) = tokio::task::spawn_blocking(move || {
                eval_priors(&models, &bandit, groups, seed, candidates, group_candidates)
            })
            .await??;
            if write {
                let path = settings.models.dir.join("manifest.json");
                let mut manifest: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?,
                )?;
                manifest["bandit_prior"] = serde_json::to_value(&measured)?;
                std::fs::write(&path, serde_json::to_string_pretty(&manifest)?)?;
                eprintln!("wrote bandit_prior to {}", path.display());
            }
            match quality {
                Some(path) => {
                    write_section(&path, "bandit-priors", "Bandit priors", &report)?;
                    eprintln!("wrote the Bandit priors section of {}", path.display());
                }
                None => println!("{report}"),
            }
            Ok(())
        }
        Command::Bandit { action } => bandit_admin(&settings, action).await,
        Command::SimulateBandit { runs, quality } => {
            let report =
                tokio::task::spawn_blocking(move || crate::bandit::simulation::report(runs))
                    .await?;
            match quality {
                Some(path) => {
                    write_section(&path, "bandit-simulation", "Bandit", &report)?;
                    eprintln!("wrote the Bandit section of {}", path.display());
                }
                None => println!("{report}"),
            }
            Ok(())
        }
        Command::SpotifyStandin { bind, client_id } => {
            let listener =
                std::net::TcpListener::bind(bind).with_context(|| format!("binding {bind}"))?;
            let (standin, server) =
                crate::spotify::standin::SpotifyStandIn::build(listener, &client_id)?;
            eprintln!(
                "Spotify stand-in for client id {client_id:?}: SPOTIFY_ACCOUNTS_URL={} SPOTIFY_API_URL={}",
                standin.base_url,
                standin.api_url()
            );
            server.await?;
            Ok(())
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

struct EvalGroups {
    per_cell: usize,
    seed: u64,
    candidates: usize,
    compare: bool,
    write_calibration: bool,
}

/// The calibration of the ranker's logits and the group benchmark, as markdown.
fn eval_groups(
    models: &crate::config::ModelSettings,
    options: &EvalGroups,
) -> anyhow::Result<String> {
    use std::fmt::Write as _;

    use crate::{
        aggregate::Strategy,
        eval::{
            calibration,
            groups::{self, Bench, Method},
        },
        inference::group::Utility,
    };
    let started = Instant::now();
    let (catalog, members, loaded) = load_eval(models)?;
    let space = std::sync::Arc::clone(&loaded.space);
    let mut engine = loaded.into_engines().remove(0);
    let mut bench = Bench::new(&mut engine, &space, &catalog, &members, options.candidates);

    // Platt scaling: fitted on half the members and checked on the other half (both ways),
    // then fitted on all of them for serving.
    let mut out = String::new();
    writeln!(
        out,
        "### Calibration of the ranker's scores (solo and group)\n"
    )?;
    writeln!(
        out,
        "Each held-out playlist's first half are a listener's likes; the served ranker scores \
         its 200 candidates, and a candidate is relevant when it is in the playlist's other \
         half. Platt scaling p = σ(a·logit + b) is fitted on half the playlists and checked on \
         the other half, both ways; the shipped fit uses all of them.\n"
    )?;
    let halves = |parity: usize| (0..members.len()).filter(move |m| m % 2 == parity);
    let mut pooled: Vec<(f32, f32, bool)> = Vec::new();
    for (fit_on, check_on) in [(0, 1), (1, 0)] {
        let platt = calibration::fit(&bench.logits(halves(fit_on))?);
        for (x, y) in bench.logits(halves(check_on))? {
            pooled.push((platt.probability(x), 1.0 / (1.0 + (-x).exp()), y));
        }
    }
    let scaled: Vec<(f32, bool)> = pooled.iter().map(|&(p, _, y)| (p, y)).collect();
    let raw: Vec<(f32, bool)> = pooled.iter().map(|&(_, r, y)| (r, y)).collect();
    let (table, ece) = calibration::reliability(&scaled, 10);
    let (raw_table, raw_ece) = calibration::reliability(&raw, 10);
    let raw_range = (
        raw_table.first().map_or(0.0, |b| b.lower),
        raw_table.last().map_or(0.0, |b| b.upper),
    );
    writeln!(
        out,
        "| decile of predictions (Platt, held-out half) | candidates | mean predicted | observed relevant |"
    )?;
    writeln!(out, "| --- | --- | --- | --- |")?;
    for bin in &table {
        writeln!(
            out,
            "| {:.4}–{:.4} | {} | {:.4} | {:.4} |",
            bin.lower, bin.upper, bin.count, bin.mean_predicted, bin.observed
        )?;
    }
    writeln!(
        out,
        "\nExpected calibration error (over these deciles): **{ece:.4}** with Platt scaling, \
         {raw_ece:.4} for σ(logit) as served before, whose predictions ran from {:.4} to {:.4}. \
         {} candidates of {} listeners; {:.2}% relevant.\n",
        raw_range.0,
        raw_range.1,
        pooled.len(),
        members.len(),
        100.0 * pooled.iter().filter(|s| s.2).count() as f64 / pooled.len().max(1) as f64
    )?;
    let platt = calibration::fit(&bench.logits(0..members.len())?);
    eprintln!("Platt on all members: {platt:?}; held-out ECE {ece:.4} (raw {raw_ece:.4})");
    if options.write_calibration {
        write_calibration(&models.dir, platt, ece, raw_ece, members.len())?;
    }

    let served = |strategy, utility, own_candidates| Method::Served {
        strategy,
        utility,
        own_candidates,
    };
    let mut methods = vec![
        Method::Popularity,
        Method::RoundRobin,
        // The earlier design: raw probabilities over a pooled candidate list.
        served(Strategy::Average, Utility::Sigmoid, false),
        served(Strategy::Fair, Utility::Sigmoid, false),
    ];
    if options.compare {
        for utility in [
            Utility::Sigmoid,
            Utility::Catalog,
            Utility::Pool,
            Utility::Blend,
        ] {
            methods.push(served(Strategy::Average, utility, true));
            methods.push(served(Strategy::Fair, utility, true));
        }
    }
    for strategy in Strategy::ALL {
        methods.push(served(strategy, Utility::Platt(platt), true));
    }
    writeln!(out, "### Group benchmark\n")?;
    writeln!(
        out,
        "`chorus eval-groups --seed {} --groups {}`: {} held-out playlists as members (seeds: \
         the first half, targets: the rest), {} groups per kind and size, the served ranking \
         with {} candidates. \"least-served\" is the worst member of each group, averaged over \
         groups; \"own-genre share\" is the smallest share of the top 10 in any member's \
         playlist genre.\n",
        options.seed,
        options.per_cell,
        members.len(),
        options.per_cell,
        options.candidates
    )?;
    out += &groups::run(
        &mut bench,
        &methods,
        &[2, 3, 5, 8],
        options.per_cell,
        options.seed,
    )?;
    eprintln!("done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(out)
}

/// The embedded catalog, its held-out playlists as members, and the shipped models.
fn load_eval(
    models: &crate::config::ModelSettings,
) -> anyhow::Result<(
    crate::catalog::Catalog,
    Vec<crate::eval::groups::Member>,
    crate::inference::Loaded,
)> {
    use crate::{
        catalog::{demo, Catalog},
        eval::groups,
        models::Manifest,
    };
    let catalog = Catalog::new(demo::parse()?.tracks);
    let manifest = Manifest::load(&models.dir)?;
    let members = groups::heldout_members(&manifest, &catalog)?;
    eprintln!(
        "{} held-out playlists as members; loading the models",
        members.len()
    );
    let loaded = crate::inference::load(models, 1, 1, &catalog)?;
    Ok((catalog, members, loaded))
}

/// Each bandit arm's offline quality per context, and the markdown report.
fn eval_priors(
    models: &crate::config::ModelSettings,
    bandit: &crate::config::BanditSettings,
    per_size: usize,
    seed: u64,
    candidates: usize,
    group_candidates: usize,
) -> anyhow::Result<(crate::bandit::prior::OfflineQuality, String)> {
    use crate::{eval::priors, inference::group::Utility};
    let started = Instant::now();
    let (catalog, members, loaded) = load_eval(models)?;
    let platt = loaded.calibration.context(
        "the manifest has no calibration: run chorus eval-groups --write-calibration first",
    )?;
    let space = std::sync::Arc::clone(&loaded.space);
    let mut engine = loaded.into_engines().remove(0);
    let mut cells = priors::solo(&mut engine, &space, &members, candidates)?;
    let mut bench =
        crate::eval::groups::Bench::new(&mut engine, &space, &catalog, &members, group_candidates);
    cells.extend(priors::group(
        &mut bench,
        Utility::Platt(platt),
        per_size,
        seed,
    )?);
    let measured_on = format!(
        "{} held-out spotify-songs playlists; solo: the first 2, 5 or 15 tracks liked; groups: \
         {per_size} random groups of 2, 3 and 5 (seed {seed}), likes the first half",
        members.len()
    );
    let quality = priors::quality(&cells, measured_on);
    let mut report = format!(
        "`chorus eval-priors --seed {seed} --groups {per_size}`: {}. Each arm's NDCG@10 on \
         the rest of the playlist(s), from the served code; the priors shown are what the \
         defaults (bandit.prior_weight {}, bandit.prior_rate {}) make of them.\n\n",
        quality.measured_on, bandit.prior_weight, bandit.prior_rate
    );
    report += &priors::table(&cells, bandit);
    eprintln!("done in {:.0} s", started.elapsed().as_secs_f64());
    Ok((quality, report))
}

/// `chorus bandit set-priors | reset`: explicit, and logged.
async fn bandit_admin(settings: &Settings, action: BanditAction) -> anyhow::Result<()> {
    use crate::{
        bandit::{actor::prior_rows, context::BanditKind},
        domain::now_ms,
        models::Manifest,
        storage::bandit as store,
    };
    if let BanditAction::Reset { bandit: Some(name) } = &action {
        if BanditKind::parse(name).is_none() {
            anyhow::bail!("--bandit must be solo_strategy or group_aggregation, not {name:?}");
        }
    }
    let db = Db::connect(&settings.database).await?;
    match action {
        BanditAction::SetPriors => {
            let manifest = Manifest::load(&settings.models.dir)?;
            let rows = prior_rows(manifest.bandit_prior.as_ref(), &settings.bandit);
            let written = store::store_priors(&db, &rows, true, now_ms()).await?;
            tracing::warn!(
                arms = written,
                prior_weight = settings.bandit.prior_weight,
                prior_rate = settings.bandit.prior_rate,
                "bandit priors replaced by the configured ones"
            );
            eprintln!("set the priors of {written} bandit arms");
        }
        BanditAction::Reset { bandit } => {
            let dropped = store::reset(&db, bandit.as_deref(), now_ms()).await?;
            tracing::warn!(
                bandit = bandit.as_deref().unwrap_or("all"),
                pending_dropped = dropped,
                "bandit reset: what was learned is forgotten, the priors stay"
            );
            eprintln!(
                "reset {}; {dropped} pending lists dropped",
                bandit.as_deref().unwrap_or("both bandits")
            );
        }
    }
    db.close().await;
    Ok(())
}

/// Stores the fit in `manifest.json` (models.hybrid.calibration), leaving everything else as is.
fn write_calibration(
    dir: &Path,
    platt: crate::inference::group::Platt,
    ece: f64,
    raw_ece: f64,
    listeners: usize,
) -> anyhow::Result<()> {
    let path = dir.join("manifest.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut manifest: serde_json::Value = serde_json::from_str(&text)?;
    manifest["models"]["hybrid"]["calibration"] = serde_json::json!({
        "method": "platt",
        "slope": platt.slope,
        "intercept": platt.intercept,
        "fitted_on": format!(
            "the served ranker's 200 candidates for each of {listeners} held-out spotify-songs playlists (likes: its first half; relevant: its other half)"
        ),
        "ece_cross_fitted": (ece * 1e4).round() / 1e4,
        "ece_sigmoid": (raw_ece * 1e4).round() / 1e4,
        "command": "chorus eval-groups --write-calibration",
    });
    std::fs::write(&path, serde_json::to_string_pretty(&manifest)?)?;
    eprintln!("wrote models.hybrid.calibration to {}", path.display());
    Ok(())
}

/// Replaces the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in a markdown file,
/// or appends the section with its markers under `## HEADING`.
fn write_section(path: &Path, name: &str, heading: &str, body: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let section = format!("{begin}\n{body}\n{end}");
    let updated = match (text.find(&begin), text.find(&end)) {
        (Some(b), Some(e)) if b < e => format!("{}{section}{}", &text[..b], &text[e + end.len()..]),
        _ => format!("{}\n\n## {heading}\n\n{section}\n", text.trim_end()),
    };
    std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))
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

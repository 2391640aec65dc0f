//! `chorus-load`: load scenarios against a running Chorus server. Every run is bounded in time,
//! sends traffic only to the URL it is given (loopback in this project's benchmarks), and
//! writes a JSON and a markdown report.
//!
//! Scenarios:
//! - `rest-search`: search-as-you-type over real catalog titles — prefixes of growing length
//!   and one-typo variants — through `GET /api/v1/tracks`.
//! - `rest-recommend`: listeners with a few likes each asking for recommendations through
//!   `POST /api/v1/recommendations` (the whole two-stage pipeline).
//! - `ws-groups`: live groups over WebSockets — delivery latency of every event to every member,
//!   group-recommendation refresh latency, and the server's memory per socket.

mod catalog;
mod report;
mod rest_recommend;
mod rest_search;
mod runner;
mod ws_groups;

use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "chorus-load",
    about = "Load scenarios for a running Chorus server"
)]
struct Cli {
    /// Base URL of the server under test.
    #[arg(long, default_value = "http://127.0.0.1:8080", global = true)]
    url: String,
    /// Concurrent connections (closed loop: each sends its next request when the last returns).
    #[arg(long, default_value_t = 16, global = true)]
    concurrency: usize,
    /// Measured seconds, after the warm-up (at most 600).
    #[arg(long, default_value_t = 20, global = true)]
    duration: u64,
    /// Seconds of unmeasured warm-up.
    #[arg(long, default_value_t = 3, global = true)]
    warmup: u64,
    /// Target requests per second over all connections (open loop, latency measured from the
    /// intended send time so stalls are not hidden). Unset: as fast as the server answers.
    #[arg(long, global = true)]
    rate: Option<f64>,
    /// Directory for `<scenario>.json` and `<scenario>.md`.
    #[arg(long, default_value = "loadtests/results", global = true)]
    out: PathBuf,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Search-as-you-type over real titles.
    RestSearch,
    /// Personal recommendations for listeners with a few likes each.
    RestRecommend {
        /// Listeners created (with their likes) before the run.
        #[arg(long, default_value_t = 200)]
        users: usize,
        /// Tracks per recommendation list.
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// Live groups over WebSockets.
    WsGroups {
        /// Groups created before the run.
        #[arg(long, default_value_t = 100)]
        groups: usize,
        /// Members (sockets) per group.
        #[arg(long, default_value_t = 5)]
        members: usize,
        /// Operations per group per second.
        #[arg(long, default_value_t = 1.0)]
        op_rate: f64,
        /// Extra sockets that only stay connected (answering pings).
        #[arg(long, default_value_t = 0)]
        idle: usize,
        /// Loopback source addresses to spread connections over (127.0.0.1 ..= 127.0.0.N).
        #[arg(long, default_value_t = 4)]
        sources: u8,
        /// The server's process id, to read its memory from /proc.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Another process serving the same rooms (repeatable): member m of every group
        /// connects to server m mod (1 + the number of these), and group g is set up through
        /// server g mod that number.
        #[arg(long = "also")]
        also: Vec<String>,
        /// Which tracks members add.
        #[arg(long, value_enum, default_value_t = ws_groups::Adds::Random)]
        adds: ws_groups::Adds,
    },
}

pub const MAX_DURATION: Duration = Duration::from_secs(600);

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The socket scenario runs on one thread: its thousands of sockets each wake for a few
    // small frames a second, and on a worker pool a quarter of its CPU went to parking and
    // waking the workers, CPU the server on the same machine did not get (docs/BENCHMARKS.md).
    // The request scenarios keep the pool: up to 4,096 requests in flight with their parsing.
    let runtime = match cli.scenario {
        Scenario::WsGroups { .. } => tokio::runtime::Builder::new_current_thread(),
        Scenario::RestSearch | Scenario::RestRecommend { .. } => {
            tokio::runtime::Builder::new_multi_thread()
        }
    }
    .enable_all()
    .build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let options = runner::RunOptions {
        concurrency: cli.concurrency.clamp(1, 4096),
        duration: Duration::from_secs(cli.duration).min(MAX_DURATION),
        warmup: Duration::from_secs(cli.warmup).min(Duration::from_secs(60)),
        rate: cli.rate.filter(|r| *r > 0.0),
    };
    let report = match cli.scenario {
        Scenario::RestSearch => Outcome::Http(rest_search::run(&cli.url, &options).await?),
        Scenario::RestRecommend { users, limit } => {
            let scenario = rest_recommend::Options {
                users: users.clamp(1, 100_000),
                limit: limit.clamp(1, 100),
            };
            Outcome::Http(rest_recommend::run(&cli.url, &options, &scenario).await?)
        }
        Scenario::WsGroups {
            groups,
            members,
            op_rate,
            idle,
            sources,
            server_pid,
            also,
            adds,
        } => {
            let scenario = ws_groups::Options {
                groups: groups.clamp(1, 100_000),
                members: members.clamp(1, 500),
                op_rate: op_rate.clamp(0.01, 100.0),
                idle: idle.min(1_000_000),
                sources: sources.clamp(1, 250),
                server_pid,
                also,
                adds,
            };
            Outcome::Sockets(ws_groups::run(&cli.url, &options, &scenario).await?)
        }
    };
    report.write(&cli.out)?;
    println!("{}", report.markdown());
    Ok(())
}

/// Request scenarios report latency per request; the socket scenario has its own measures.
enum Outcome {
    Http(report::Report),
    Sockets(ws_groups::WsReport),
}

impl Outcome {
    fn write(&self, dir: &std::path::Path) -> anyhow::Result<()> {
        match self {
            Outcome::Http(r) => r.write(dir),
            Outcome::Sockets(r) => r.write(dir),
        }
    }

    fn markdown(&self) -> String {
        match self {
            Outcome::Http(r) => r.markdown(),
            Outcome::Sockets(r) => r.markdown(),
        }
    }
}

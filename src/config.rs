//! Typed settings: compiled-in defaults, then an optional TOML file (`CHORUS_CONFIG`), then
//! environment variables. Secrets live in [`Secret`] so they never reach a log line.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr};

use anyhow::{bail, Context};
use figment::{
    value::{Dict, Map, Value},
    Figment, Metadata, Profile, Provider,
};
use serde::{Deserialize, Deserializer};

/// A value that must never be printed (tokens, API keys, passwords inside URLs).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub catalog: CatalogSettings,
    pub rate_limit: RateLimitSettings,
    pub models: ModelSettings,
    pub inference: InferenceSettings,
    pub realtime: RealtimeSettings,
    pub bandit: BanditSettings,
    pub explainer: ExplainerSettings,
    pub spotify: SpotifySettings,
    pub log: LogSettings,
    pub accounts: AccountSettings,
    /// Bearer token that grants experiment administration. Unset: nobody is admin.
    pub admin_token: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountSettings {
    /// Guest accounts that never did anything (no feedback, comparison, list or room) and were
    /// not seen for this many hours are deleted, hourly. 0 keeps them forever.
    pub unused_guest_ttl_h: u64,
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            unused_guest_ttl_h: 72,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on. Port 0 picks a free port (tests use this).
    pub bind: SocketAddr,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Seconds that in-flight requests get to finish on shutdown.
    pub shutdown_timeout_s: u64,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// The built web app (`scripts/setup.sh` builds `web/` into `web/dist`), served at `/`.
    pub web_dir: PathBuf,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".parse().expect("valid default address"),
            max_body_bytes: 64 * 1024,
            shutdown_timeout_s: 10,
            workers: 0,
            web_dir: PathBuf::from("web/dist"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://path/to/file.db` (created if missing) or `postgres://…`.
    pub url: Secret,
    pub max_connections: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: Secret::new("sqlite://chorus.db"),
            max_connections: 8,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:port/db`. Unset: in-process cache and rate limits.
    pub url: Option<Secret>,
    /// Prepended to every key, so several deployments (or tests) can share one Redis.
    pub key_prefix: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "chorus:".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogSettings {
    /// Load the embedded Spotify demo catalog when the tracks table is empty.
    pub load_demo: bool,
}

impl Default for CatalogSettings {
    fn default() -> Self {
        Self { load_demo: true }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    pub enabled: bool,
    /// Sustained requests per second allowed from one IP address.
    pub per_ip_per_second: f64,
    /// Requests one IP address may send at once before the sustained rate applies.
    pub per_ip_burst: u32,
    /// Sustained requests per second allowed for one bearer token.
    pub per_token_per_second: f64,
    pub per_token_burst: u32,
    /// Guest accounts one IP address may create per hour on average, and at once.
    pub signups_per_ip_per_hour: f64,
    pub signup_burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            per_ip_per_second: 100.0,
            per_ip_burst: 200,
            per_token_per_second: 30.0,
            per_token_burst: 60,
            signups_per_ip_per_hour: 60.0,
            signup_burst: 20,
        }
    }
}

/// Read case-insensitively (`CUDA` works), from the file as from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ExecutionProvider {
    Cpu,
    Cuda,
    Auto,
}

impl TryFrom<String> for ExecutionProvider {
    type Error = anyhow::Error;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl FromStr for ExecutionProvider {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            "auto" => Ok(Self::Auto),
            other => bail!("expected cpu, cuda or auto, got {other:?}"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSettings {
    pub dir: PathBuf,
    pub execution_provider: ExecutionProvider,
    /// Path to `libonnxruntime.so`; unset: the copy installed by `scripts/setup.sh`.
    pub ort_dylib_path: Option<PathBuf>,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("models"),
            execution_provider: ExecutionProvider::Cpu,
            ort_dylib_path: None,
        }
    }
}

/// The InferenceActor's dynamic batcher (see `src/inference`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InferenceSettings {
    /// Requests per batch at most; 1 turns batching off.
    pub max_batch: usize,
    /// How long the first request of a batch waits for company, in microseconds.
    pub max_delay_us: u64,
    /// Requests accepted but not yet answered; beyond it callers get `overloaded`.
    pub queue_capacity: usize,
    /// Dedicated threads that run batches (each holds its own ONNX Runtime sessions).
    pub threads: usize,
    /// ONNX Runtime intra-op threads per session.
    pub intra_threads: usize,
    /// The inference threads' niceness (Linux, 0–19; 0 leaves them as they are). When the CPU
    /// is short, sockets and room events run first and rankings take what is left: a busy
    /// machine then refreshes lists later instead of delivering every event late.
    pub nice: i32,
    /// Retrieval candidates handed to the rankers. 200 keeps 98% of the continuation NDCG@20
    /// measured at 300 (what the hybrid ranker was trained on) for 40% more throughput; see
    /// docs/BENCHMARKS.md.
    pub candidates: usize,
}

impl Default for InferenceSettings {
    fn default() -> Self {
        Self {
            max_batch: 64,
            max_delay_us: 1_000,
            queue_capacity: 1_024,
            threads: 2,
            intra_threads: 1,
            nice: 10,
            candidates: 200,
        }
    }
}

impl InferenceSettings {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_batch == 0 || self.max_batch > 1_024 {
            bail!("inference.max_batch must be between 1 and 1024");
        }
        if self.queue_capacity < self.max_batch {
            bail!("inference.queue_capacity must be at least inference.max_batch");
        }
        if self.threads == 0 || self.intra_threads == 0 {
            bail!("inference.threads and inference.intra_threads must be at least 1");
        }
        if !(10..=2_000).contains(&self.candidates) {
            bail!("inference.candidates must be between 10 and 2000");
        }
        if !(0..=19).contains(&self.nice) {
            bail!("inference.nice must be between 0 and 19");
        }
        Ok(())
    }
}

/// WebSocket sessions and live groups (see `src/groups`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeSettings {
    /// How often the server pings each socket.
    pub heartbeat_interval_ms: u64,
    /// A socket that sends nothing (not even a pong) for this long is closed with 4000.
    pub client_timeout_ms: u64,
    /// Frames queued for one socket at most; a client that falls further behind is closed
    /// with 4008.
    pub outbox_frames: usize,
    /// Bytes queued for one socket at most (snapshots are large); past it, 4008 as well. A
    /// reconnect replay larger than half of this is sent as a snapshot instead.
    pub outbox_bytes: usize,
    /// Largest accepted client frame; bigger ones close the socket with 1009.
    pub max_frame_bytes: usize,
    /// Operations per second one socket may send on average, and in a burst.
    pub ops_per_second: f64,
    pub op_burst: u32,
    /// Group recommendations are recomputed at most once per interval: at once after a quiet
    /// spell, else when the interval ends (a burst of changes costs one recomputation).
    pub recommend_interval_ms: u64,
    /// Tracks in a group's recommendations.
    pub group_recommendations: usize,
    /// Retrieval candidates every member's scores are computed for. A group refresh costs
    /// about `members × candidates` NCF rows, so groups use fewer than solo requests (100 kept
    /// 95% of solo NDCG@20 in `serving_eval`; docs/BENCHMARKS.md has the throughput).
    pub group_candidates: usize,
    /// A group with no open sockets is unloaded from memory after this long (its log stays).
    pub group_idle_timeout_s: u64,
    /// Recent events kept in memory per group for reconnect replay; a client further behind
    /// gets a snapshot.
    pub replay_events: usize,
    /// Rooms one user may create in any 24 hours.
    pub rooms_per_user_per_day: u32,
    /// Sockets one user may hold open at once (per process).
    pub sockets_per_user: usize,
    /// Changes one member may make to one room per second on average, and at once, over all
    /// their sockets and REST calls together.
    pub room_ops_per_second: f64,
    pub room_op_burst: u32,
}

impl Default for RealtimeSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 5_000,
            client_timeout_ms: 15_000,
            outbox_frames: 256,
            outbox_bytes: 1 << 20,
            max_frame_bytes: 64 * 1024,
            ops_per_second: 20.0,
            op_burst: 40,
            recommend_interval_ms: 250,
            group_recommendations: 10,
            group_candidates: 100,
            group_idle_timeout_s: 300,
            replay_events: 1_000,
            rooms_per_user_per_day: 50,
            sockets_per_user: 8,
            room_ops_per_second: 5.0,
            room_op_burst: 20,
        }
    }
}

impl RealtimeSettings {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.heartbeat_interval_ms == 0 || self.client_timeout_ms <= self.heartbeat_interval_ms {
            bail!("realtime.client_timeout_ms must exceed realtime.heartbeat_interval_ms (> 0)");
        }
        if self.outbox_frames == 0 || self.max_frame_bytes < 1024 {
            bail!("realtime.outbox_frames must be positive and max_frame_bytes at least 1024");
        }
        if self.outbox_bytes < 256 * 1024 {
            bail!(
                "realtime.outbox_bytes must be at least 262144 (a full room's snapshot must fit)"
            );
        }
        if !(self.ops_per_second.is_finite() && self.ops_per_second > 0.0) || self.op_burst == 0 {
            bail!("realtime.ops_per_second and op_burst must be positive");
        }
        if self.rooms_per_user_per_day == 0 || self.sockets_per_user == 0 {
            bail!("realtime.rooms_per_user_per_day and sockets_per_user must be positive");
        }
        if !(self.room_ops_per_second.is_finite() && self.room_ops_per_second > 0.0)
            || self.room_op_burst == 0
        {
            bail!("realtime.room_ops_per_second and room_op_burst must be positive");
        }
        if !(10..=2_000).contains(&self.group_candidates) {
            bail!("realtime.group_candidates must be between 10 and 2000");
        }
        if !(1..=100).contains(&self.group_recommendations) {
            bail!("realtime.group_recommendations must be between 1 and 100");
        }
        Ok(())
    }
}

/// The strategy bandit (see `src/bandit`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BanditSettings {
    /// Off: every solo list is `hybrid` and nothing is explored.
    pub enabled: bool,
    /// Minimum share of lists each strategy gets (0 to 1/strategies).
    pub exploration_floor: f64,
    /// A list earns its reward when a like or add quotes its `request_id` within this window;
    /// one that earns none by then counts as a failure.
    pub reward_window_s: u64,
    /// How often shown lists, rewards and expiries are written to the store (and the other
    /// processes' read back).
    pub persist_interval_ms: u64,
    /// Pseudo-observations the offline prior is worth per (context, arm); 0: every arm starts
    /// at Beta(1, 1). See `src/bandit/prior.rs`.
    pub prior_weight: f64,
    /// The reward rate assumed for the offline best arm of each context.
    pub prior_rate: f64,
    /// Posteriors are added to the history table at most this often (seconds).
    pub history_interval_s: u64,
    /// History older than this is deleted (days).
    pub history_days: u64,
}

impl Default for BanditSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            exploration_floor: 0.02,
            reward_window_s: 600,
            persist_interval_ms: 2_000,
            prior_weight: 200.0,
            prior_rate: 0.1,
            history_interval_s: 60,
            history_days: 30,
        }
    }
}

impl BanditSettings {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(0.0..=0.25).contains(&self.exploration_floor) {
            bail!("bandit.exploration_floor must be between 0 and 0.25");
        }
        if self.reward_window_s == 0 || self.persist_interval_ms == 0 {
            bail!("bandit.reward_window_s and persist_interval_ms must be positive");
        }
        if !(0.0..=100_000.0).contains(&self.prior_weight) {
            bail!("bandit.prior_weight must be between 0 and 100000");
        }
        if !(self.prior_rate > 0.0 && self.prior_rate < 1.0) {
            bail!("bandit.prior_rate must be between 0 and 1 (exclusive)");
        }
        if self.history_interval_s == 0 || self.history_days == 0 {
            bail!("bandit.history_interval_s and history_days must be positive");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExplainerSettings {
    /// OpenAI-compatible base URL including the version path (e.g. a vLLM server at
    /// `http://localhost:8000/v1`). Unset: template explanations only.
    pub base_url: Option<String>,
    /// The served model's name, as the server lists it under `/v1/models`.
    pub model: Option<String>,
    pub api_key: Option<Secret>,
    /// Everything, retries included, must finish within this; then the template answers.
    pub deadline_ms: u64,
    /// Language-model calls in flight at once; more wait (within the deadline) for a slot.
    pub max_concurrency: usize,
    /// Further attempts after a refused connection, a 429 or a 5xx (always before any text
    /// arrived, and never past the deadline).
    pub max_retries: u32,
    /// How long an accepted explanation is reused for the same track and taste.
    pub cache_ttl_s: u64,
    /// Upper bound on the completion's length.
    pub max_tokens: u32,
}

impl ExplainerSettings {
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.base_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("EXPLAINER_BASE_URL must start with http:// or https://, got {url:?}");
            }
            if self.model.as_deref().map_or(true, str::is_empty) {
                bail!("EXPLAINER_MODEL must name the served model when EXPLAINER_BASE_URL is set");
            }
        }
        if !(100..=60_000).contains(&self.deadline_ms) {
            bail!("explainer.deadline_ms must be between 100 and 60000");
        }
        if self.max_concurrency == 0 || self.max_tokens == 0 || self.cache_ttl_s == 0 {
            bail!("explainer.max_concurrency, max_tokens and cache_ttl_s must be positive");
        }
        if self.max_retries > 5 {
            bail!("explainer.max_retries must be at most 5");
        }
        Ok(())
    }
}

impl Default for ExplainerSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            model: None,
            api_key: None,
            deadline_ms: 3_000,
            max_concurrency: 8,
            max_retries: 1,
            cache_ttl_s: 24 * 3600,
            max_tokens: 160,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpotifySettings {
    /// The Spotify app's client id; without it Spotify features are off.
    pub client_id: Option<String>,
    /// Not used: sign-in is Authorization Code with PKCE, which needs no secret. Accepted so
    /// that existing configurations keep loading.
    pub client_secret: Option<Secret>,
    /// Registered in the Spotify app; default `http://<server.bind>/api/v1/spotify/callback`
    /// (Spotify accepts http only for loopback addresses).
    pub redirect_uri: Option<String>,
    /// Spotify's accounts service (a stand-in's in tests and demos).
    pub accounts_url: String,
    /// Spotify's Web API, ending in `/v1/`.
    pub api_url: String,
    /// Members may import their top and saved tracks as likes. Off by default: Spotify's
    /// Developer Policy forbids using Spotify content to train models (README).
    pub allow_import: bool,
    /// Seals stored Spotify tokens (ChaCha20-Poly1305): base64 of 32 random bytes. Unset, tokens
    /// are stored as issued (a warning at startup says so).
    pub token_key: Option<Secret>,
    /// How often a room playing on a Spotify device reads `/me/player` to follow what the host
    /// does in the Spotify app (Spotify's rate limits are per app: keep it seconds, not ms).
    pub poll_interval_ms: u64,
}

impl Default for SpotifySettings {
    fn default() -> Self {
        Self {
            client_id: None,
            client_secret: None,
            redirect_uri: None,
            accounts_url: "https://accounts.spotify.com/".into(),
            api_url: "https://api.spotify.com/v1/".into(),
            allow_import: false,
            token_key: None,
            poll_interval_ms: 5_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `tracing` filter directive, e.g. `info,chorus=debug`.
    pub filter: String,
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            filter: "info,sqlx=warn".into(),
            format: LogFormat::Pretty,
        }
    }
}

impl Settings {
    /// Defaults, then the file named by `CHORUS_CONFIG` (if any), then the process environment.
    pub fn load() -> anyhow::Result<Self> {
        Self::load_from(|name| std::env::var(name).ok())
    }

    /// Like [`Settings::load`] with an injectable environment (tests use a map).
    pub fn load_from(env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut figment = Figment::new();
        if let Some(path) = env("CHORUS_CONFIG") {
            figment = figment.merge(ConfigFile::read(&PathBuf::from(path))?);
        }
        for &(var, key, kind) in ENVIRONMENT {
            if let Some(value) = env(var).filter(|v| !v.is_empty()) {
                figment = figment.merge(EnvVar {
                    var,
                    key,
                    kind,
                    value,
                });
            }
        }
        let settings: Self = figment.extract().map_err(figment_error)?;
        settings.validate()?;
        settings.inference.validate()?;
        Ok(settings)
    }

    /// The file's settings over the defaults (no environment).
    pub fn from_toml_file(path: &PathBuf) -> anyhow::Result<Self> {
        Figment::from(ConfigFile::read(path)?)
            .extract()
            .map_err(figment_error)
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.realtime.validate()?;
        self.bandit.validate()?;
        self.explainer.validate()?;
        let url = self.database.url.expose();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            bail!("DATABASE_URL must start with sqlite:, postgres:// or postgresql://");
        }
        let rl = &self.rate_limit;
        if rl.enabled
            && (!rl.per_ip_per_second.is_finite()
                || rl.per_ip_per_second <= 0.0
                || !rl.per_token_per_second.is_finite()
                || rl.per_token_per_second <= 0.0
                || rl.per_ip_burst == 0
                || rl.per_token_burst == 0
                || !rl.signups_per_ip_per_hour.is_finite()
                || rl.signups_per_ip_per_hour <= 0.0
                || rl.signup_burst == 0)
        {
            bail!("rate limits must be positive (disable them with CHORUS_RATE_LIMIT=false)");
        }
        if self.server.max_body_bytes < 1024 {
            bail!("server.max_body_bytes must be at least 1024");
        }
        Ok(())
    }
}

/// Every environment variable Chorus reads, the settings key it sets, and whether its value is
/// text as given (else it is read as a number, boolean or address, as the key needs).
const ENVIRONMENT: &[(&str, &str, EnvKind)] = &[
    ("CHORUS_BIND", "server.bind", EnvKind::Value),
    (
        "CHORUS_MAX_BODY_BYTES",
        "server.max_body_bytes",
        EnvKind::Value,
    ),
    ("CHORUS_WEB_DIR", "server.web_dir", EnvKind::Text),
    ("CHORUS_WORKERS", "server.workers", EnvKind::Value),
    ("DATABASE_URL", "database.url", EnvKind::Text),
    ("REDIS_URL", "redis.url", EnvKind::Text),
    ("CHORUS_REDIS_KEY_PREFIX", "redis.key_prefix", EnvKind::Text),
    (
        "CHORUS_LOAD_DEMO_CATALOG",
        "catalog.load_demo",
        EnvKind::Value,
    ),
    ("CHORUS_RATE_LIMIT", "rate_limit.enabled", EnvKind::Value),
    (
        "CHORUS_RATE_LIMIT_PER_IP",
        "rate_limit.per_ip_per_second",
        EnvKind::Value,
    ),
    (
        "CHORUS_RATE_LIMIT_PER_TOKEN",
        "rate_limit.per_token_per_second",
        EnvKind::Value,
    ),
    ("CHORUS_MODELS_DIR", "models.dir", EnvKind::Text),
    (
        "CHORUS_EXECUTION_PROVIDER",
        "models.execution_provider",
        EnvKind::Text,
    ),
    ("ORT_DYLIB_PATH", "models.ort_dylib_path", EnvKind::Text),
    (
        "CHORUS_INFERENCE_MAX_BATCH",
        "inference.max_batch",
        EnvKind::Value,
    ),
    (
        "CHORUS_INFERENCE_MAX_DELAY_US",
        "inference.max_delay_us",
        EnvKind::Value,
    ),
    (
        "CHORUS_INFERENCE_QUEUE",
        "inference.queue_capacity",
        EnvKind::Value,
    ),
    (
        "CHORUS_INFERENCE_THREADS",
        "inference.threads",
        EnvKind::Value,
    ),
    ("EXPLAINER_BASE_URL", "explainer.base_url", EnvKind::Text),
    ("EXPLAINER_MODEL", "explainer.model", EnvKind::Text),
    ("EXPLAINER_API_KEY", "explainer.api_key", EnvKind::Text),
    (
        "EXPLAINER_DEADLINE_MS",
        "explainer.deadline_ms",
        EnvKind::Value,
    ),
    ("CHORUS_ADMIN_TOKEN", "admin_token", EnvKind::Text),
    ("SPOTIFY_CLIENT_ID", "spotify.client_id", EnvKind::Text),
    (
        "SPOTIFY_CLIENT_SECRET",
        "spotify.client_secret",
        EnvKind::Text,
    ),
    (
        "SPOTIFY_REDIRECT_URI",
        "spotify.redirect_uri",
        EnvKind::Text,
    ),
    (
        "SPOTIFY_ACCOUNTS_URL",
        "spotify.accounts_url",
        EnvKind::Text,
    ),
    ("SPOTIFY_API_URL", "spotify.api_url", EnvKind::Text),
    (
        "CHORUS_SPOTIFY_IMPORT",
        "spotify.allow_import",
        EnvKind::Value,
    ),
    ("CHORUS_LOG", "log.filter", EnvKind::Text),
    ("CHORUS_LOG_FORMAT", "log.format", EnvKind::Text),
];

#[derive(Debug, Clone, Copy)]
enum EnvKind {
    /// Kept as the string it is (a token of digits stays a string).
    Text,
    /// Read as a number, boolean or string, whichever it looks like.
    Value,
}

/// One environment variable as a figment source, named after the variable so that an error
/// says which variable to fix.
struct EnvVar {
    var: &'static str,
    key: &'static str,
    kind: EnvKind,
    value: String,
}

impl Provider for EnvVar {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("environment variable {}", self.var))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let value = match self.kind {
            EnvKind::Text => Value::from(self.value.clone()),
            EnvKind::Value => self
                .value
                .trim()
                .parse()
                .expect("parsing a figment value is total"),
        };
        Ok(Profile::Default.collect(
            figment::util::nest(self.key, value)
                .into_dict()
                .expect("nest makes a dict"),
        ))
    }
}

/// The TOML file named by `CHORUS_CONFIG`, read with the `toml` crate.
struct ConfigFile {
    path: PathBuf,
    data: Dict,
}

impl ConfigFile {
    fn read(path: &PathBuf) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let table: toml::Table = toml::from_str(&text)
            .with_context(|| format!("parsing config file {}", path.display()))?;
        let data = Value::serialize(table)
            .ok()
            .and_then(Value::into_dict)
            .ok_or_else(|| anyhow::anyhow!("config file {} is not a table", path.display()))?;
        Ok(Self {
            path: path.clone(),
            data,
        })
    }
}

impl Provider for ConfigFile {
    fn metadata(&self) -> Metadata {
        Metadata::from("config file", self.path.as_path())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.data.clone()))
    }
}

/// A figment error as one line: what is wrong, with the key and the file or variable it came
/// from (for example "… for key \"default.server.bind\" in environment variable CHORUS_BIND").
fn figment_error(err: figment::Error) -> anyhow::Error {
    anyhow::anyhow!("{}", err.to_string().replace("key \"default.", "key \""))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_serve_sqlite_on_8080() {
        let s = Settings::load_from(env(&[])).unwrap();
        assert_eq!(s.server.bind.to_string(), "127.0.0.1:8080");
        assert!(s.database.url.expose().starts_with("sqlite:"));
        assert!(s.redis.url.is_none());
        assert!(s.catalog.load_demo);
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chorus.toml");
        std::fs::write(
            &path,
            "[server]\nbind = \"127.0.0.1:9000\"\nmax_body_bytes = 4096\n[catalog]\nload_demo = false\n",
        )
        .unwrap();
        let path = path.to_str().unwrap().to_string();
        let s = Settings::load_from(env(&[
            ("CHORUS_CONFIG", &path),
            ("CHORUS_BIND", "0.0.0.0:7000"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
        ]))
        .unwrap();
        assert_eq!(s.server.bind.to_string(), "0.0.0.0:7000");
        assert_eq!(s.server.max_body_bytes, 4096);
        assert!(!s.catalog.load_demo);
        assert_eq!(s.redis.url.unwrap().expose(), "redis://127.0.0.1:6379");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = Settings::load_from(env(&[("CHORUS_BIND", "nope")])).unwrap_err();
        assert!(err.to_string().contains("CHORUS_BIND"), "{err}");
        let err = Settings::load_from(env(&[("CHORUS_EXECUTION_PROVIDER", "tpu")])).unwrap_err();
        assert!(
            err.to_string().contains("CHORUS_EXECUTION_PROVIDER"),
            "{err}"
        );
        let err = Settings::load_from(env(&[("DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
        let err =
            Settings::load_from(env(&[("EXPLAINER_BASE_URL", "localhost:8000")])).unwrap_err();
        assert!(err.to_string().contains("EXPLAINER_BASE_URL"), "{err}");
        let err = Settings::load_from(env(&[("EXPLAINER_BASE_URL", "http://localhost:8000/v1")]))
            .unwrap_err();
        assert!(err.to_string().contains("EXPLAINER_MODEL"), "{err}");
        let err = Settings::load_from(env(&[("EXPLAINER_DEADLINE_MS", "5")])).unwrap_err();
        assert!(err.to_string().contains("deadline_ms"), "{err}");
    }

    #[test]
    fn environment_values_keep_their_type() {
        let s = Settings::load_from(env(&[
            ("CHORUS_ADMIN_TOKEN", "0123456"),
            ("CHORUS_WORKERS", " 3 "),
            ("CHORUS_RATE_LIMIT", "false"),
            ("CHORUS_EXECUTION_PROVIDER", "CPU"),
            ("CHORUS_LOG_FORMAT", "json"),
            ("CHORUS_BIND", ""),
        ]))
        .unwrap();
        assert_eq!(
            s.admin_token.unwrap().expose(),
            "0123456",
            "digits stay text"
        );
        assert_eq!(s.server.workers, 3);
        assert!(!s.rate_limit.enabled);
        assert_eq!(s.models.execution_provider, ExecutionProvider::Cpu);
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(
            s.server.bind.to_string(),
            "127.0.0.1:8080",
            "empty means unset"
        );
        let err = Settings::load_from(env(&[("CHORUS_WORKERS", "many")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid type: found string \"many\", expected usize for key \"server.workers\" \
             in environment variable CHORUS_WORKERS"
        );
        let err = Settings::load_from(env(&[("CHORUS_LOG_FORMAT", "xml")])).unwrap_err();
        assert!(err.to_string().contains("CHORUS_LOG_FORMAT"), "{err}");
    }

    #[test]
    fn unknown_keys_in_the_file_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[server]\nbnd = \"x\"\n").unwrap();
        let err = Settings::from_toml_file(&path).unwrap_err();
        assert!(format!("{err:#}").contains("bnd"), "{err:#}");
    }

    #[test]
    fn secrets_never_print() {
        let s = Settings::load_from(env(&[
            ("CHORUS_ADMIN_TOKEN", "hunter2"),
            ("DATABASE_URL", "postgres://u:pw@h/db"),
            ("EXPLAINER_BASE_URL", "http://llm:8000/v1"),
            ("EXPLAINER_MODEL", "m"),
            ("EXPLAINER_API_KEY", "sk-shh"),
        ]))
        .unwrap();
        let printed = format!("{s:?}");
        assert!(
            !printed.contains("hunter2")
                && !printed.contains("pw@h")
                && !printed.contains("sk-shh"),
            "{printed}"
        );
    }
}

//! `spawn_app` starts the real server on port 0 with an isolated database (a temporary SQLite
//! file, or a fresh schema in the local PostgreSQL) and, when asked, the local Redis under a
//! random key prefix. PostgreSQL and Redis are required: if they are down the tests fail with
//! a message saying how to start them, rather than skipping.

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
    time::{SystemTime, UNIX_EPOCH},
};

use actix_web::{dev::ServerHandle, web};
use chorus::{
    catalog::import,
    config::{
        BanditSettings, ExplainerSettings, InferenceSettings, RateLimitSettings, RealtimeSettings,
        Secret, Settings, SpotifySettings,
    },
    startup::Application,
    state::AppState,
    storage::{tracks, Db},
};
use serde_json::{json, Value};
use sqlx::Executor;

pub const FIXTURE_CSV: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/spotify_sample.csv"
);
/// Unique tracks in the fixture (it has 637 rows).
pub const FIXTURE_TRACKS: usize = 589;

pub fn postgres_base_url() -> String {
    std::env::var("CHORUS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn redis_url() -> String {
    std::env::var("CHORUS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Store {
    Sqlite,
    Postgres,
}

/// A database for one test, dropped (schema) or deleted (file) with the value.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(store: Store) -> Self {
        match store {
            Store::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("chorus.db").display());
                Self {
                    url,
                    _dir: Some(dir),
                }
            }
            Store::Postgres => Self {
                url: postgres_schema_url().await,
                _dir: None,
            },
        }
    }

    /// A database some other way (a proxy in front of another `TestDb`).
    pub fn at(url: String) -> Self {
        Self { url, _dir: None }
    }

    pub async fn connect(&self) -> Db {
        Db::connect(&chorus::config::DatabaseSettings {
            url: Secret::new(self.url.clone()),
            max_connections: 8,
        })
        .await
        .expect("connect test database")
    }
}

/// A fresh schema in the test database, as a URL whose connections use it. Schemas left by
/// crashed runs are dropped after an hour (their name carries the creation time).
async fn postgres_schema_url() -> String {
    sqlx::any::install_default_drivers();
    let base = postgres_base_url();
    let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&base).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let schema = format!("chorus_t_{now}_{}", uuid::Uuid::new_v4().simple());
    let conn = admin.as_mut().unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is required for these tests ({base}): {e}. Start it with \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        )
    });
    let stale: Vec<String> = sqlx::query_scalar::<_, String>(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'chorus_t_%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    for old in stale {
        let created: u64 = old
            .split('_')
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if created + 3600 < now {
            let _ = conn
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {old} CASCADE"
                )))
                .await;
        }
    }
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await
        .expect("create test schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options[search_path]={schema}")
}

/// The admin token every test server accepts.
pub const ADMIN_TOKEN: &str = "test-admin-token-3f9c";

pub struct AppOptions {
    pub store: Store,
    pub redis: bool,
    /// A Redis other than the shared one (a [`PrivateRedis`] a test may kill); implies `redis`.
    pub redis_url: Option<String>,
    /// The Redis key prefix (default: one of the app's own); processes that share rooms share it.
    pub redis_prefix: Option<String>,
    pub rate_limit: Option<RateLimitSettings>,
    pub load_demo: bool,
    pub seed_fixture: bool,
    pub max_body_bytes: Option<usize>,
    pub inference: InferenceSettings,
    pub realtime: RealtimeSettings,
    /// Off by default here, so lists are deterministic `hybrid` ones unless a test is about
    /// the bandit.
    pub bandit: BanditSettings,
    /// Template-only unless a test points it at a stand-in model server.
    pub explainer: ExplainerSettings,
    /// Where the built web app is (default: `web/dist`, which may not be built).
    pub web_dir: Option<std::path::PathBuf>,
    /// Serve this existing database (a "restart") instead of a fresh one; nothing is seeded.
    pub database: Option<Arc<TestDb>>,
    /// No Spotify app unless a test points it at the stand-in.
    pub spotify: SpotifySettings,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            store: Store::Sqlite,
            redis: false,
            redis_url: None,
            redis_prefix: None,
            rate_limit: None,
            load_demo: false,
            seed_fixture: true,
            max_body_bytes: None,
            inference: InferenceSettings::default(),
            realtime: RealtimeSettings::default(),
            bandit: BanditSettings {
                enabled: false,
                ..BanditSettings::default()
            },
            explainer: ExplainerSettings::default(),
            web_dir: None,
            database: None,
            spotify: SpotifySettings::default(),
        }
    }
}

/// A redis-server of a test's own on a free port, which the test may kill and restart (the
/// shared one on 6379 must stay up for every other test). Killed when dropped.
pub struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self { port, child: None };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is required for these tests (Debian's redis-server package)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: web::Data<AppState>,
    pub handle: ServerHandle,
    pub shutdown: chorus::startup::Shutdown,
    pub db: Arc<TestDb>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

/// A server over the embedded demo catalog (the tracks the shipped models were trained on).
pub async fn spawn_demo_app() -> TestApp {
    spawn_app_with(AppOptions {
        load_demo: true,
        seed_fixture: false,
        ..AppOptions::default()
    })
    .await
}

/// The fixture catalog, stored in `db`.
pub async fn seed_fixture(db: &TestDb) {
    let store = db.connect().await;
    let report = import::parse_spotify_songs(std::fs::File::open(FIXTURE_CSV).unwrap()).unwrap();
    tracks::insert(&store, &report.tracks, "fixture", |_| {})
        .await
        .unwrap();
    store.close().await;
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    init_logs();
    let reused = options.database.is_some();
    let db = match options.database {
        Some(db) => db,
        None => Arc::new(TestDb::new(options.store).await),
    };
    if options.seed_fixture && !reused {
        seed_fixture(&db).await;
    }
    let mut settings = Settings::default();
    settings.server.bind = "127.0.0.1:0".parse().unwrap();
    settings.server.workers = 1;
    settings.server.shutdown_timeout_s = 1;
    if let Some(limit) = options.max_body_bytes {
        settings.server.max_body_bytes = limit;
    }
    settings.database.url = Secret::new(db.url.clone());
    settings.catalog.load_demo = options.load_demo;
    settings.inference = options.inference;
    settings.realtime = options.realtime;
    settings.bandit = options.bandit;
    settings.explainer = options.explainer;
    settings.spotify = options.spotify;
    if let Some(dir) = options.web_dir {
        settings.server.web_dir = dir;
    }
    settings.admin_token = Some(Secret::new(ADMIN_TOKEN));
    settings.rate_limit = options.rate_limit.unwrap_or(RateLimitSettings {
        enabled: false,
        ..RateLimitSettings::default()
    });
    if options.redis || options.redis_url.is_some() {
        let url = options.redis_url.unwrap_or_else(redis_url);
        settings.redis.url = Some(Secret::new(url));
        settings.redis.key_prefix = options
            .redis_prefix
            .unwrap_or_else(|| format!("chorus-test:{}:", uuid::Uuid::new_v4().simple()));
    }
    let app = Application::build(settings)
        .await
        .unwrap_or_else(|e| panic!("building the app: {e:#}"));
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let handle = app.handle();
    let shutdown = app.shutdown();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        state,
        handle,
        shutdown,
        db,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// GET and parse the JSON body, whatever the status.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.expect("a JSON body")
    }

    /// GET with a bearer token and parse the JSON body, whatever the status.
    pub async fn get_json_as(&self, path: &str, token: &str) -> Value {
        self.get_as(path, token)
            .await
            .json()
            .await
            .expect("a JSON body")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_json_as(&self, path: &str, body: &Value, token: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Creates a guest and returns (user_id, token).
    /// `POST /api/v1/recommendations` with `limit`, as the listener with `token`; the list.
    pub async fn recommend(&self, token: &str, limit: usize) -> Value {
        let response = self
            .post_json_as("/api/v1/recommendations", &json!({ "limit": limit }), token)
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.expect("a JSON list")
    }

    pub async fn create_user(&self, name: &str) -> (String, String) {
        let response = self
            .post_json("/api/v1/users", &json!({ "display_name": name }))
            .await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        (
            body["user_id"].as_str().unwrap().to_string(),
            body["token"].as_str().unwrap().to_string(),
        )
    }
}

/// Asserts status and error code, and that the body has exactly the catalog's shape.
/// The track ids of a list (`{items: [{track: {id}}]}`, solo or group), in order.
pub fn track_ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["track"]["id"].as_str().unwrap().to_string())
        .collect()
}

/// The genres of one list item's track.
pub fn track_genres(item: &Value) -> Vec<String> {
    item["track"]["genres"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap().to_string())
        .collect()
}

pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status for {code}");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "error bodies are JSON"
    );
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"]
        .as_str()
        .expect("message is a string");
    assert!(!message.is_empty());
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert_eq!(body["error"].as_object().unwrap().len(), 2, "{body}");
    body
}

/// Every log line the test binary writes, for checks that secrets never reach the logs.
pub fn captured_logs() -> String {
    let buffer = LOGS.get().expect("logs initialised").lock().unwrap();
    String::from_utf8_lossy(&buffer).into_owned()
}

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logs() {
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt};
        let _ = tracing_subscriber::registry()
            .with(chorus::telemetry::QuietClientErrors)
            .with(chorus::telemetry::without_secrets(
                tracing_subscriber::EnvFilter::new("debug,h2=info,hyper=info,reqwest=info"),
            ))
            .with(
                tracing_subscriber::fmt::layer().with_writer(move || BufferWriter(writer.clone())),
            )
            .try_init();
        buffer
    });
}

/// A TCP proxy in front of the shared PostgreSQL that a test can cut (every connection through
/// it drops and new ones are refused) and restore: PostgreSQL "briefly unavailable" without
/// stopping the server every other test uses.
pub struct PgProxy {
    pub port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl PgProxy {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let accepting = Arc::clone(&up);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accepting.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:5432").await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Self { port, up, cut }
    }

    /// A URL for `db`'s schema through the proxy.
    pub fn url(&self, db: &TestDb) -> String {
        db.url
            .replacen("127.0.0.1:5432", &format!("127.0.0.1:{}", self.port), 1)
    }

    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Starts the real `chorus` binary on a free port with JSON logs (`configure` sets the rest of
/// its environment) and returns it with the port it says it listens on.
pub fn start_chorus_binary(
    configure: impl FnOnce(&mut std::process::Command),
) -> (std::process::Child, u16) {
    use std::io::BufRead;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_chorus"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CHORUS_BIND", "127.0.0.1:0")
        .env("CHORUS_LOG_FORMAT", "json")
        .stderr(std::process::Stdio::piped());
    configure(&mut command);
    let mut child = command.spawn().expect("the chorus binary starts");
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in stderr.lines().map_while(Result::ok) {
            if !sent && line.contains("\"listening\"") {
                let log: Value = serde_json::from_str(&line).unwrap();
                port_tx.send(log["port"].as_u64().unwrap() as u16).unwrap();
                sent = true;
            }
        }
    });
    let port = port_rx
        .recv_timeout(std::time::Duration::from_secs(90))
        .expect("the server says where it listens");
    (child, port)
}

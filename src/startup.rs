//! Builds the application from settings: connects storage, loads the catalog, picks the cache and
//! rate-limit backends, binds the listener. `main` and the tests both go through [`Application`].

use std::{net::TcpListener, sync::Arc, time::Instant};

use actix::Actor;
use actix_web::{dev::Server, web, App, HttpServer};
use anyhow::Context;

use crate::{
    accounts::TokenCache,
    bandit::actor::BanditActor,
    cache::{Cache, MemoryCache, RedisCache},
    catalog::{demo, Catalog},
    config::Settings,
    experiments::Registry,
    explain::actor::ExplainerActor,
    fanout::{self, Fanout},
    groups::{connection::ConnectionDeps, Groups},
    http,
    inference::Inference,
    limits::{MemoryRateLimiter, RateLimiter, RedisRateLimiter},
    metrics::Metrics,
    recommend::Recommender,
    redis_link,
    state::AppState,
    storage::{tracks, Db},
    taste::{actor::IDLE_TIMEOUT, directory::UserDirectory},
};

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    shutdown: Shutdown,
}

/// Starts a graceful shutdown: sockets close at once with 1012 (service restart, so clients
/// reconnect elsewhere) and take no more operations; HTTP requests in flight get
/// `server.shutdown_timeout_s` to finish. What SIGTERM and SIGINT do; tests trigger it directly.
#[derive(Clone)]
pub struct Shutdown {
    sockets: tokio::sync::watch::Sender<bool>,
    server: actix_web::dev::ServerHandle,
}

impl Shutdown {
    pub async fn begin(&self) {
        tracing::info!("shutting down: closing sockets (1012), finishing requests in flight");
        self.sockets.send_replace(true);
        self.server.stop(true).await;
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = Db::connect(&settings.database).await?;
        tracing::info!(backend = db.backend().name(), "database ready");
        let catalog = load_catalog(&db, settings.catalog.load_demo).await?;
        let (cache, limiter) = connect_shared_state(&settings).await?;
        let metrics = Arc::new(Metrics::new());
        metrics.catalog_tracks.set(catalog.len() as i64);
        let inference = Inference::start(
            &settings.models,
            &settings.inference,
            Arc::clone(&catalog),
            Arc::clone(&metrics),
        )
        .await?;
        let users = UserDirectory::new(
            db.clone(),
            Arc::clone(&catalog),
            Arc::clone(inference.space()),
            Arc::clone(&metrics),
            IDLE_TIMEOUT,
        );
        let recommender = Recommender {
            inference: inference.clone(),
            users: users.clone(),
            catalog: Arc::clone(&catalog),
            candidates: settings.inference.candidates,
        };
        // The models loaded, so the manifest is known good; its bandit_prior warm-starts the
        // bandits' arms the store does not have yet.
        let bandit_prior = crate::models::Manifest::load(&settings.models.dir)?.bandit_prior;
        let bandit = BanditActor::load(db.clone(), settings.bandit.clone(), bandit_prior.as_ref())
            .await
            .context("loading the strategy bandit")?
            .start();
        let listener = TcpListener::bind(settings.server.bind)
            .with_context(|| format!("binding {}", settings.server.bind))?;
        let port = listener.local_addr()?.port();
        // Spotify accepts http redirects only to loopback addresses: a server bound to all
        // interfaces is reached at 127.0.0.1 from this machine (set spotify.redirect_uri for
        // any other address).
        let host = match settings.server.bind.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let spotify = crate::spotify::Spotify::new(
            &settings.spotify,
            format!("http://{host}:{port}/api/v1/spotify/callback"),
            db.clone(),
        )?;
        let groups = Groups::new(
            db.clone(),
            recommender.clone(),
            Arc::clone(&metrics),
            settings.realtime.clone(),
            bandit.clone(),
            spotify.clone(),
            connect_fanout(&settings).await?,
        );
        let explainer = ExplainerActor::new(
            settings.explainer.clone(),
            Arc::clone(&cache),
            Arc::clone(&metrics),
            catalog.genres().iter().map(|g| g.name.clone()).collect(),
        )
        .start();
        let experiments = Arc::new(Registry::default());
        experiments
            .reload(&db)
            .await
            .context("loading the running experiment")?;
        spawn_registry_reload(Arc::downgrade(&experiments), db.clone());
        spawn_account_expiry(&settings, db.clone());
        let (shutdown_sockets, closing) = tokio::sync::watch::channel(false);
        let state = web::Data::new(AppState {
            spotify,
            connections: ConnectionDeps {
                groups: groups.clone(),
                recommender: recommender.clone(),
                db: db.clone(),
                bandit: bandit.clone(),
                explainer: explainer.clone(),
                metrics: Arc::clone(&metrics),
                settings: Arc::new(settings.realtime.clone()),
                closing,
            },
            settings,
            db,
            catalog,
            cache,
            limiter,
            metrics,
            inference,
            users,
            recommender,
            groups,
            bandit,
            explainer,
            experiments,
            tokens: TokenCache::default(),
            sockets: Arc::default(),
        });
        let server = serve(listener, state.clone())?;
        let shutdown = Shutdown {
            sockets: shutdown_sockets,
            server: server.handle(),
        };
        Ok(Self {
            port,
            server,
            state,
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serves until SIGINT/SIGTERM (or [`Shutdown::begin`], or a handle's `stop`), lets
    /// in-flight requests finish, then closes the database pool.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(port = self.port, "listening");
        let shutdown = self.shutdown.clone();
        let signals = actix_web::rt::spawn(async move {
            wait_for_signal().await;
            shutdown.begin().await;
        });
        let served = self.server.await.context("running the HTTP server");
        signals.abort();
        // The bandits' last shows and rewards, before the pool closes.
        match self.state.bandit.send(crate::bandit::actor::FlushNow).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "saving the bandits at shutdown"),
            Err(_) => tracing::warn!("the bandit actor was gone at shutdown"),
        }
        served?;
        self.state.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

fn serve(listener: TcpListener, state: web::Data<AppState>) -> anyhow::Result<Server> {
    let server_settings = state.settings.server.clone();
    let limit = server_settings.max_body_bytes;
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(http::extract::json_config(limit))
            .app_data(http::extract::query_config())
            .app_data(http::extract::path_config())
            .app_data(web::PayloadConfig::new(limit))
            .configure(http::configure)
            .default_service(web::to(http::not_found))
            .wrap(actix_web::middleware::from_fn(http::middleware::observe))
    })
    .shutdown_timeout(server_settings.shutdown_timeout_s)
    // Frames are small and late ones matter: with Nagle's algorithm (actix's default now) a
    // frame waits while the previous one to that socket is unacknowledged, a round trip on a
    // real network between one event and the next.
    .tcp_nodelay(true)
    // Signals are ours (`run_until_stopped`): sockets must close with 1012 before the grace.
    .disable_signals()
    .listen(listener)?;
    if server_settings.workers > 0 {
        server = server.workers(server_settings.workers);
    }
    Ok(server.run())
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

/// Loads every stored track into memory, first importing the embedded demo catalog if the store
/// has none and `load_demo` is set. CPU-heavy steps run off the async workers.
async fn load_catalog(db: &Db, load_demo: bool) -> anyhow::Result<Arc<Catalog>> {
    if load_demo && tracks::count(db).await? == 0 {
        let started = Instant::now();
        tracing::info!("empty catalog: importing the embedded spotify-songs demo catalog");
        let report = tokio::task::spawn_blocking(demo::parse).await??;
        let inserted = tracks::insert(db, &report.tracks, demo::SOURCE, |_| {}).await?;
        tracing::info!(
            inserted,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "demo catalog imported"
        );
    }
    let started = Instant::now();
    let all = tracks::load_all(db).await.context("loading the catalog")?;
    let catalog = tokio::task::spawn_blocking(move || Catalog::new(all)).await?;
    tracing::info!(
        tracks = catalog.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "catalog loaded and indexed"
    );
    if catalog.is_empty() {
        tracing::warn!(
            "the catalog is empty: import one with `chorus import` or enable catalog.load_demo"
        );
    }
    Ok(Arc::new(catalog))
}

async fn connect_shared_state(
    settings: &Settings,
) -> anyhow::Result<(Arc<dyn Cache>, Arc<dyn RateLimiter>)> {
    let Some(url) = &settings.redis.url else {
        return Ok((
            Arc::new(MemoryCache::default()),
            Arc::new(MemoryRateLimiter::default()),
        ));
    };
    let connection = redis_link::connect(url.expose()).await?;
    let prefix = settings.redis.key_prefix.clone();
    tracing::info!("cache and rate limits in Redis");
    Ok((
        Arc::new(RedisCache::new(connection.clone(), prefix.clone())),
        Arc::new(RedisRateLimiter::new(connection, prefix)),
    ))
}

/// Rooms are shared with the other processes through Redis when `REDIS_URL` is set.
async fn connect_fanout(settings: &Settings) -> anyhow::Result<Arc<dyn Fanout>> {
    let Some(url) = &settings.redis.url else {
        return Ok(Arc::new(fanout::local::Local::alone()));
    };
    let node = fanout::node_name();
    let fanout =
        fanout::redis::RedisFanout::connect(url.expose(), &settings.redis.key_prefix, node).await?;
    tracing::info!(
        node = fanout.node(),
        "rooms shared with other processes through Redis"
    );
    Ok(fanout)
}

/// Every hour, deletes guest accounts that were never used (`accounts.unused_guest_ttl_h`).
fn spawn_account_expiry(settings: &Settings, db: Db) {
    let ttl_h = settings.accounts.unused_guest_ttl_h;
    if ttl_h == 0 {
        return;
    }
    let ttl = std::time::Duration::from_secs(ttl_h * 3600);
    actix_web::rt::spawn(async move {
        let mut every = actix_web::rt::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every.tick().await;
            if db.pool().is_closed() {
                return;
            }
            match crate::accounts::expire_unused(&db, ttl).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, ttl_h, "unused guest accounts deleted"),
                Err(err) => tracing::warn!(error = %err, "deleting unused guest accounts"),
            }
        }
    });
}

/// Re-reads the running experiment every few seconds (other processes may start or stop one)
/// until the application is gone.
fn spawn_registry_reload(registry: std::sync::Weak<Registry>, db: Db) {
    actix_web::rt::spawn(async move {
        let mut every = actix_web::rt::time::interval(std::time::Duration::from_secs(5));
        every.tick().await;
        loop {
            every.tick().await;
            let Some(registry) = registry.upgrade() else {
                return;
            };
            if let Err(err) = registry.reload(&db).await {
                tracing::warn!(error = %err, "reloading the running experiment");
            }
        }
    });
}

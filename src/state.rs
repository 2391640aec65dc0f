//! What every request handler may reach, registered once as `web::Data<AppState>`.

use std::sync::Arc;

use actix::Addr;

use crate::{
    accounts::TokenCache,
    bandit::actor::BanditActor,
    cache::Cache,
    catalog::Catalog,
    config::Settings,
    error::{ApiError, ErrorCode},
    experiments::Registry,
    explain::actor::ExplainerActor,
    groups::{connection::ConnectionDeps, Groups},
    inference::Inference,
    limits::RateLimiter,
    metrics::Metrics,
    recommend::Recommender,
    storage::Db,
    taste::directory::UserDirectory,
};

pub struct AppState {
    pub settings: Settings,
    pub db: Db,
    pub catalog: Arc<Catalog>,
    pub cache: Arc<dyn Cache>,
    pub limiter: Arc<dyn RateLimiter>,
    pub metrics: Arc<Metrics>,
    pub inference: Inference,
    pub users: UserDirectory,
    pub recommender: Recommender,
    pub groups: Groups,
    pub bandit: Addr<BanditActor>,
    pub explainer: Addr<ExplainerActor>,
    pub experiments: Arc<Registry>,
    pub tokens: TokenCache,
    /// Open sockets per user.
    pub sockets: Arc<crate::groups::connection::SocketCounts>,
    /// What each socket's Connection works with (it closes with 1012 when the server begins
    /// shutting down).
    pub connections: ConnectionDeps,
    /// Spotify sign-in, devices, export and import; `None` without a Spotify app configured.
    pub spotify: Option<crate::spotify::Spotify>,
}

impl AppState {
    /// The Spotify service, or the error saying this server has none.
    pub fn spotify(&self) -> Result<&crate::spotify::Spotify, ApiError> {
        self.spotify.as_ref().ok_or_else(|| {
            ApiError::new(
                ErrorCode::SpotifyNotConfigured,
                "this server has no Spotify app configured (spotify.client_id)",
            )
        })
    }

    /// The catalog row of a track id sent in a body field named `field`.
    pub fn track_index(&self, id: &str, field: &str) -> Result<u32, ApiError> {
        self.catalog.lookup(id, field)
    }

    /// A genre or sub-genre name known to the catalog, lower-cased.
    pub fn genre(&self, name: &str) -> Result<String, ApiError> {
        let wanted = name.trim().to_lowercase();
        if self.catalog.genres().iter().any(|g| g.name == wanted) {
            Ok(wanted)
        } else {
            Err(ApiError::new(
                ErrorCode::InvalidField,
                format!("genre {name:?} is not in the catalog; GET /api/v1/genres lists them"),
            ))
        }
    }
}

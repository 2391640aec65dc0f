//! What every request handler may reach, registered once as `web::Data<AppState>`.

use std::sync::Arc;

use crate::{
    cache::Cache, catalog::Catalog, config::Settings, limits::RateLimiter, metrics::Metrics,
    storage::Db,
};

pub struct AppState {
    pub settings: Settings,
    pub db: Db,
    pub catalog: Arc<Catalog>,
    pub cache: Arc<dyn Cache>,
    pub limiter: Arc<dyn RateLimiter>,
    pub metrics: Arc<Metrics>,
}

//! Finds a listener's UserActor, starting it on first use; actors remove themselves when they
//! stop. A message that meets an actor in the middle of stopping is retried once on a fresh one.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use actix::prelude::*;

use super::actor::{unreachable, UserActor};
use crate::{
    catalog::Catalog, domain::UserId, error::ApiError, inference::space::ItemSpace,
    metrics::Metrics, storage::Db,
};

/// Told which listener's taste just changed (stored and folded in).
pub type TasteListener = Box<dyn Fn(&UserId) + Send + Sync>;

#[derive(Clone)]
pub struct UserDirectory {
    inner: Arc<Inner>,
}

struct Inner {
    actors: Mutex<HashMap<UserId, Addr<UserActor>>>,
    db: Db,
    catalog: Arc<Catalog>,
    space: Arc<ItemSpace>,
    metrics: Arc<Metrics>,
    catalog_means: Vec<f32>,
    idle_timeout: Duration,
    taste_listener: OnceLock<TasteListener>,
}

impl UserDirectory {
    /// Actors stop after `idle_timeout` without messages ([`super::actor::IDLE_TIMEOUT`] in the
    /// server).
    pub fn new(
        db: Db,
        catalog: Arc<Catalog>,
        space: Arc<ItemSpace>,
        metrics: Arc<Metrics>,
        idle_timeout: Duration,
    ) -> Self {
        let catalog_means = super::profile::catalog_means(&catalog);
        Self {
            inner: Arc::new(Inner {
                actors: Mutex::new(HashMap::new()),
                db,
                catalog,
                space,
                metrics,
                catalog_means,
                idle_timeout,
                taste_listener: OnceLock::new(),
            }),
        }
    }

    /// Sends `msg` to the listener's actor (starting it if needed) and waits for the answer.
    pub async fn send<M>(&self, user: &UserId, msg: M) -> Result<M::Result, ApiError>
    where
        M: Message + Send + Clone + 'static,
        M::Result: Send,
        UserActor: Handler<M>,
    {
        for _ in 0..2 {
            let addr = self.actor(user);
            match addr.send(msg.clone()).await {
                Ok(answer) => return Ok(answer),
                Err(_) => self.forget(user, &addr),
            }
        }
        Err(unreachable(user))
    }

    fn actor(&self, user: &UserId) -> Addr<UserActor> {
        let mut actors = self.inner.actors.lock().expect("directory lock");
        if let Some(addr) = actors.get(user).filter(|a| a.connected()) {
            return addr.clone();
        }
        let addr = UserActor::new(user.clone(), self.clone()).start();
        actors.insert(user.clone(), addr.clone());
        addr
    }

    /// Drops the entry if it still points at `addr` (a newer actor may have replaced it).
    pub fn forget(&self, user: &UserId, addr: &Addr<UserActor>) {
        let mut actors = self.inner.actors.lock().expect("directory lock");
        if actors.get(user) == Some(addr) {
            actors.remove(user);
        }
    }

    /// Rereads the listener's feedback from the store if their actor is live here (another
    /// process recorded some); done when it is in. Nobody is told: the caller knows.
    pub async fn reload(&self, user: &UserId) {
        let live = {
            let actors = self.inner.actors.lock().expect("directory lock");
            actors.get(user).filter(|a| a.connected()).cloned()
        };
        if let Some(addr) = live {
            let _ = addr.send(super::actor::Reload).await;
        }
    }

    /// Registers the one listener for taste changes (live groups use it to redo their picks
    /// when a member's taste moves, whichever endpoint moved it). Later calls are ignored.
    pub fn on_taste_changed(&self, listener: TasteListener) {
        let _ = self.inner.taste_listener.set(listener);
    }

    pub(super) fn taste_changed(&self, user: &UserId) {
        if let Some(listener) = self.inner.taste_listener.get() {
            listener(user);
        }
    }

    pub fn active(&self) -> usize {
        self.inner.actors.lock().expect("directory lock").len()
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    pub fn space(&self) -> &ItemSpace {
        &self.inner.space
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn idle_timeout(&self) -> Duration {
        self.inner.idle_timeout
    }

    pub fn catalog_means(&self) -> &[f32] {
        &self.inner.catalog_means
    }
}

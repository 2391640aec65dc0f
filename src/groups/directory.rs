//! Finds a group's live actor, loading the group from the store (the fold of its whole log) on
//! first use: after a restart, groups come back as members reconnect or read them. Actors remove
//! themselves when they stop.
//!
//! It also indexes live groups by member, so a change to a member's taste (from any endpoint)
//! reaches every live group they are in.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
};

use actix::prelude::*;

use super::{
    actor::{stored_events, GroupActor, TasteChanged},
    ids::GroupId,
    state::GroupState,
};
use crate::{
    bandit::actor::BanditActor,
    config::RealtimeSettings,
    error::{ApiError, ErrorCode},
    metrics::Metrics,
    recommend::Recommender,
    storage::{groups, Db},
};

#[derive(Clone)]
pub struct GroupDirectory {
    inner: Arc<Inner>,
}

struct Inner {
    actors: Mutex<HashMap<String, Addr<GroupActor>>>,
    /// Live groups per member's user id.
    member_groups: Mutex<HashMap<String, Vec<Addr<GroupActor>>>>,
    db: Db,
    recommender: Recommender,
    metrics: Arc<Metrics>,
    settings: RealtimeSettings,
    bandit: Addr<BanditActor>,
}

impl GroupDirectory {
    pub fn new(
        db: Db,
        recommender: Recommender,
        metrics: Arc<Metrics>,
        settings: RealtimeSettings,
        bandit: Addr<BanditActor>,
    ) -> Self {
        let directory = Self {
            inner: Arc::new(Inner {
                actors: Mutex::new(HashMap::new()),
                member_groups: Mutex::new(HashMap::new()),
                db,
                recommender,
                metrics,
                settings,
                bandit,
            }),
        };
        // Weak: the user directory lives inside the recommender this directory holds.
        let weak: Weak<Inner> = Arc::downgrade(&directory.inner);
        directory
            .inner
            .recommender
            .users
            .on_taste_changed(Box::new(move |user| {
                if let Some(inner) = weak.upgrade() {
                    (GroupDirectory { inner }).taste_changed(user.as_str());
                }
            }));
        directory
    }

    /// `addr` is a live group with `user` among its members.
    pub fn index_member(&self, user: &str, addr: &Addr<GroupActor>) {
        let mut index = self.inner.member_groups.lock().expect("member index lock");
        let groups = index.entry(user.to_string()).or_default();
        if !groups.contains(addr) {
            groups.push(addr.clone());
        }
    }

    /// `user` left `addr`'s group, or the group stopped.
    pub fn unindex_member(&self, user: &str, addr: &Addr<GroupActor>) {
        let mut index = self.inner.member_groups.lock().expect("member index lock");
        if let Some(groups) = index.get_mut(user) {
            groups.retain(|a| a != addr);
            if groups.is_empty() {
                index.remove(user);
            }
        }
    }

    fn taste_changed(&self, user: &str) {
        let index = self.inner.member_groups.lock().expect("member index lock");
        for addr in index.get(user).into_iter().flatten() {
            addr.do_send(TasteChanged);
        }
    }

    /// The group's actor, started from the store if it is not live.
    pub async fn get(&self, id: &GroupId) -> Result<Addr<GroupActor>, ApiError> {
        if let Some(addr) = self.live(id.as_str()) {
            return Ok(addr);
        }
        let db = &self.inner.db;
        let row = groups::find(db, id.as_str()).await?.ok_or_else(|| {
            ApiError::new(ErrorCode::GroupNotFound, format!("no group has id {id}"))
        })?;
        let events = stored_events(groups::events_after(db, id.as_str(), 0, i64::MAX).await?);
        let keep = self.inner.settings.replay_events.min(events.len());
        let recent = events[events.len() - keep..].to_vec();
        let state = GroupState::from_events(&row.id, &row.join_code, events)
            .map_err(|e| ApiError::internal(anyhow::anyhow!("group {id}: {e}")))?;
        let mut actors = self.inner.actors.lock().expect("directory lock");
        // Another request may have loaded it meanwhile; the first one wins.
        if let Some(addr) = actors.get(id.as_str()).filter(|a| a.connected()) {
            return Ok(addr.clone());
        }
        let addr = GroupActor::new(state, self.clone(), recent).start();
        actors.insert(id.as_str().to_string(), addr.clone());
        Ok(addr)
    }

    fn live(&self, id: &str) -> Option<Addr<GroupActor>> {
        let actors = self.inner.actors.lock().expect("directory lock");
        actors.get(id).filter(|a| a.connected()).cloned()
    }

    /// Drops the entry if it still points at `addr`.
    pub fn forget(&self, id: &str, addr: &Addr<GroupActor>) {
        let mut actors = self.inner.actors.lock().expect("directory lock");
        if actors.get(id) == Some(addr) {
            actors.remove(id);
        }
    }

    pub fn live_count(&self) -> usize {
        self.inner.actors.lock().expect("directory lock").len()
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn recommender(&self) -> &Recommender {
        &self.inner.recommender
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The bandit that picks aggregation strategies for groups set to `auto`.
    pub fn bandit(&self) -> &Addr<BanditActor> {
        &self.inner.bandit
    }

    pub fn settings(&self) -> &RealtimeSettings {
        &self.inner.settings
    }
}

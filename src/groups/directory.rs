//! Finds a group's live actor, loading the group from the store (its latest snapshot and the
//! events after it) on first use: after a restart, groups come back as members reconnect or read them. Actors remove
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
    events::Event,
    ids::GroupId,
    state::{GroupState, Snapshot},
};
use crate::{
    bandit::actor::BanditActor,
    config::RealtimeSettings,
    error::{ApiError, ErrorCode},
    metrics::Metrics,
    recommend::Recommender,
    storage::{groups, Db},
};

/// Events read per query when loading a group.
const LOAD_PAGE: i64 = 5_000;

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
        let (state, recent, snapshot_seq) = self.load(&row).await?;
        let mut actors = self.inner.actors.lock().expect("directory lock");
        // Another request may have loaded it meanwhile; the first one wins.
        if let Some(addr) = actors.get(id.as_str()).filter(|a| a.connected()) {
            return Ok(addr.clone());
        }
        let addr = GroupActor::new(state, self.clone(), recent, snapshot_seq).start();
        actors.insert(id.as_str().to_string(), addr.clone());
        Ok(addr)
    }

    /// The group's state, from its latest snapshot and the events after it (or the whole log
    /// when there is no usable snapshot), and the recent events kept for replay.
    /// Also returns the seq of the snapshot it started from (0: none).
    async fn load(
        &self,
        row: &groups::GroupRow,
    ) -> Result<(GroupState, Vec<Event>, i64), ApiError> {
        let db = &self.inner.db;
        let started = std::time::Instant::now();
        let snapshot = match groups::load_snapshot(db, &row.id).await? {
            Some((seq, json)) => match serde_json::from_str::<Snapshot>(&json)
                .map_err(|e| e.to_string())
                .and_then(|snapshot| GroupState::from_snapshot(&row.id, &row.join_code, snapshot))
            {
                Ok(state) => Some(state),
                Err(err) => {
                    tracing::warn!(group = %row.id, seq, error = %err, "unusable group snapshot; folding the whole log");
                    None
                }
            },
            None => None,
        };
        let replay = self.inner.settings.replay_events as i64;
        let snapshot_seq = snapshot.as_ref().map_or(0, |s| s.seq);
        let from = snapshot_seq.min((row.last_seq - replay).max(0));
        // Read in pages, folding as it goes and keeping only the replay window, so a long log
        // without a snapshot (data from before snapshots) never sits in memory whole.
        let mut state = snapshot;
        let mut recent = std::collections::VecDeque::with_capacity(replay as usize);
        let (mut after, mut folded) = (from, 0usize);
        loop {
            let page = stored_events(groups::events_after(db, &row.id, after, LOAD_PAGE).await?);
            let Some(last) = page.last() else { break };
            after = last.seq;
            let full = page.len() as i64 == LOAD_PAGE;
            for event in page {
                if event.seq > snapshot_seq {
                    folded += 1;
                    match &mut state {
                        Some(state) => state.apply(&event),
                        None => {
                            let first =
                                GroupState::from_events(&row.id, &row.join_code, [event.clone()])
                                    .map_err(|e| {
                                    ApiError::internal(anyhow::anyhow!("group {}: {e}", row.id))
                                })?;
                            state = Some(first);
                        }
                    }
                }
                if recent.len() == replay as usize {
                    recent.pop_front();
                }
                if replay > 0 {
                    recent.push_back(event);
                }
            }
            if !full {
                break;
            }
        }
        let state = state
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("group {} has no events", row.id)))?;
        let recent: Vec<Event> = recent.into();
        self.inner.metrics.group_load_events.observe(folded as f64);
        tracing::debug!(
            group = %row.id,
            snapshot_seq,
            folded,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "group loaded"
        );
        Ok((state, recent, snapshot_seq))
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

//! The BanditActor: owns the bandits' posteriors — solo recommendation strategies, and group
//! aggregation strategies for groups set to `auto` — attributes rewards to the exposure that
//! earned them, and persists itself.
//!
//! A list shown is a pull of its strategy's arm and waits, under its `request_id`, for a
//! reward: for a solo list the first like or add that quotes the id within the reward window,
//! for a group's list a member adding one of its tracks; a list that earns none by then is a
//! failure. So late feedback still
//! counts for the arm that caused it, whatever the bandit chose in between. Pending exposures
//! live in memory (a restart forgets them, and they count as neither). Every
//! `persist_interval_ms` the counts this process gathered are added to `bandit_arms` and the
//! totals read back, so several processes sharing the store learn together.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use actix::prelude::*;
use rand::rngs::StdRng;

use super::thompson::{Arm, Thompson};
use crate::{
    aggregate,
    config::BanditSettings,
    domain::now_ms,
    recommend::Strategy,
    storage::{
        experiments::{add_to_arms, load_arms, ArmDelta, StoredArm},
        Db,
    },
    taste::FeedbackKind,
};

/// The two bandits, as named in `bandit_arms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BanditKind {
    /// Solo lists: hybrid, ncf, content, popularity.
    SoloStrategy,
    /// Group lists of groups whose aggregation is `auto`: average, least misery, most
    /// pleasure, fair.
    GroupAggregation,
}

impl BanditKind {
    pub const ALL: [BanditKind; 2] = [BanditKind::SoloStrategy, BanditKind::GroupAggregation];

    pub fn name(self) -> &'static str {
        match self {
            BanditKind::SoloStrategy => "solo_strategy",
            BanditKind::GroupAggregation => "group_aggregation",
        }
    }

    fn arms(self) -> Vec<&'static str> {
        match self {
            BanditKind::SoloStrategy => Strategy::ALL.iter().map(|s| s.as_str()).collect(),
            BanditKind::GroupAggregation => {
                aggregate::Strategy::ALL.iter().map(|s| s.name()).collect()
            }
        }
    }

    /// What is served while the bandits are off.
    fn default_arm(self) -> &'static str {
        match self {
            BanditKind::SoloStrategy => Strategy::Hybrid.as_str(),
            BanditKind::GroupAggregation => aggregate::Strategy::Fair.name(),
        }
    }

    fn index(self) -> usize {
        match self {
            BanditKind::SoloStrategy => 0,
            BanditKind::GroupAggregation => 1,
        }
    }
}
/// Exposures awaiting a reward at most; past it the oldest are settled as failures early.
const MAX_PENDING: usize = 500_000;
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The arm for the next list of this kind (not yet a pull: a solo list may turn out a cold
/// start).
#[derive(Message)]
#[rtype(result = "String")]
pub struct Choose(pub BanditKind);

/// A list was shown under `arm`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shown {
    pub bandit: BanditKind,
    pub request_id: String,
    pub arm: String,
}

/// The list `request_id` earned its reward (a group member added one of its tracks).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Rewarded {
    pub request_id: String,
}

/// Feedback that quoted a `request_id`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Outcome {
    pub request_id: String,
    pub kind: FeedbackKind,
}

/// The current state of one bandit, for reports (computed off the actor).
#[derive(Message)]
#[rtype(result = "BanditState")]
pub struct GetState(pub BanditKind);

#[derive(Debug, Clone)]
pub struct BanditState {
    pub name: &'static str,
    pub enabled: bool,
    pub policy: Thompson,
    /// Exposures still inside the reward window, per arm.
    pub pending: Vec<u64>,
    pub reward_window_s: u64,
}

pub struct BanditActor {
    db: Db,
    settings: BanditSettings,
    /// Indexed by [`BanditKind::index`]: the stored counts plus what this process saw since.
    policies: [Thompson; 2],
    /// What this process saw since it last saved, per bandit and arm.
    unsaved: [Vec<Arm>; 2],
    rng: StdRng,
    pending: HashMap<String, (BanditKind, usize)>,
    /// Pending request ids in the order shown (entries already rewarded are skipped).
    shown: VecDeque<(Instant, String)>,
    saving: bool,
}

impl BanditActor {
    /// Loads the stored posteriors (arms not stored yet start at Beta(1, 1)).
    pub async fn load(db: Db, settings: BanditSettings) -> Result<Self, sqlx::Error> {
        let stored = load_all(&db).await?;
        let fresh = |kind: BanditKind| Thompson::new(&kind.arms(), settings.exploration_floor);
        let mut actor = Self {
            policies: BanditKind::ALL.map(fresh),
            unsaved: BanditKind::ALL.map(|kind| fresh(kind).arms),
            db,
            settings,
            rng: rand::make_rng::<StdRng>(),
            pending: HashMap::new(),
            shown: VecDeque::new(),
            saving: false,
        };
        actor.adopt(stored);
        Ok(actor)
    }

    /// Takes the stored totals, plus what this process has not saved yet.
    fn adopt(&mut self, stored: [Vec<StoredArm>; 2]) {
        for kind in BanditKind::ALL {
            let k = kind.index();
            let mut policy = Thompson::new(&kind.arms(), self.settings.exploration_floor);
            for row in &stored[k] {
                if let Some(i) = policy.index_of(&row.arm) {
                    let arm = &mut policy.arms[i];
                    arm.successes = row.alpha - 1.0;
                    arm.failures = row.beta - 1.0;
                    arm.pulls = row.pulls.max(0) as u64;
                }
            }
            for (arm, extra) in policy.arms.iter_mut().zip(&self.unsaved[k]) {
                arm.pulls += extra.pulls;
                arm.successes += extra.successes;
                arm.failures += extra.failures;
            }
            self.policies[k] = policy;
        }
    }

    fn record_pull(&mut self, kind: BanditKind, arm: usize) {
        self.policies[kind.index()].arms[arm].pulls += 1;
        self.unsaved[kind.index()][arm].pulls += 1;
    }

    fn record_reward(&mut self, kind: BanditKind, arm: usize, reward: f64) {
        self.policies[kind.index()].reward(arm, reward);
        let unsaved = &mut self.unsaved[kind.index()][arm];
        unsaved.successes += reward;
        unsaved.failures += 1.0 - reward;
    }

    fn settle_expired(&mut self) {
        let window = Duration::from_secs(self.settings.reward_window_s);
        while let Some((at, _)) = self.shown.front() {
            if at.elapsed() < window && self.pending.len() <= MAX_PENDING {
                break;
            }
            let (_, request_id) = self.shown.pop_front().expect("front exists");
            if let Some((kind, arm)) = self.pending.remove(&request_id) {
                self.record_reward(kind, arm, 0.0);
            }
        }
    }

    /// A success for the pending list `request_id` (ignored when unknown or settled).
    fn reward(&mut self, request_id: &str) {
        if let Some((kind, arm)) = self.pending.remove(request_id) {
            self.record_reward(kind, arm, 1.0);
        }
    }

    /// Adds what this process saw to the stored counts (increments, so processes sharing the
    /// store never overwrite each other), then reads the totals back, which brings in what the
    /// other processes saw.
    fn persist(&mut self, ctx: &mut Context<Self>) {
        if self.saving {
            return;
        }
        self.saving = true;
        let mut deltas = Vec::new();
        for kind in BanditKind::ALL {
            for arm in &mut self.unsaved[kind.index()] {
                if arm.pulls > 0 || arm.successes > 0.0 || arm.failures > 0.0 {
                    deltas.push(ArmDelta {
                        bandit: kind.name(),
                        arm: arm.name.clone(),
                        pulls: arm.pulls as i64,
                        successes: arm.successes,
                        failures: arm.failures,
                    });
                }
                *arm = Arm::new(arm.name.clone());
            }
        }
        let db = self.db.clone();
        let sync = {
            let deltas = deltas.clone();
            async move {
                if !deltas.is_empty() {
                    add_to_arms(&db, &deltas, now_ms()).await?;
                }
                load_all(&db).await
            }
        };
        ctx.spawn(sync.into_actor(self).map(move |result, actor, _| {
            actor.saving = false;
            match result {
                Ok(stored) => actor.adopt(stored),
                Err(err) => {
                    tracing::warn!(error = %err, "saving the bandits' counts; will retry");
                    // Put the counts back (the transaction wrote none of them).
                    for delta in deltas {
                        let kind = BanditKind::ALL
                            .into_iter()
                            .find(|k| k.name() == delta.bandit)
                            .expect("a known bandit");
                        if let Some(arm) = actor.unsaved[kind.index()]
                            .iter_mut()
                            .find(|a| a.name == delta.arm)
                        {
                            arm.pulls += delta.pulls as u64;
                            arm.successes += delta.successes;
                            arm.failures += delta.failures;
                        }
                    }
                }
            }
        }));
    }
}

async fn load_all(db: &Db) -> Result<[Vec<StoredArm>; 2], sqlx::Error> {
    let solo = load_arms(db, BanditKind::SoloStrategy.name()).await?;
    let group = load_arms(db, BanditKind::GroupAggregation.name()).await?;
    Ok([solo, group])
}

impl Actor for BanditActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(SWEEP_INTERVAL, |actor, _| actor.settle_expired());
        let every = Duration::from_millis(self.settings.persist_interval_ms);
        ctx.run_interval(every, |actor, ctx| actor.persist(ctx));
    }
}

impl Handler<Choose> for BanditActor {
    type Result = String;

    fn handle(&mut self, Choose(kind): Choose, _: &mut Self::Context) -> String {
        if !self.settings.enabled {
            return kind.default_arm().to_string();
        }
        let policy = &self.policies[kind.index()];
        let arm = policy.sample(&mut self.rng);
        policy.arms[arm].name.clone()
    }
}

impl Handler<Shown> for BanditActor {
    type Result = ();

    fn handle(&mut self, msg: Shown, _: &mut Self::Context) {
        if !self.settings.enabled {
            return;
        }
        let Some(arm) = self.policies[msg.bandit.index()].index_of(&msg.arm) else {
            return;
        };
        self.record_pull(msg.bandit, arm);
        self.pending
            .insert(msg.request_id.clone(), (msg.bandit, arm));
        self.shown.push_back((Instant::now(), msg.request_id));
        if self.pending.len() > MAX_PENDING {
            self.settle_expired();
        }
    }
}

impl Handler<Outcome> for BanditActor {
    type Result = ();

    fn handle(&mut self, msg: Outcome, _: &mut Self::Context) {
        if matches!(msg.kind, FeedbackKind::Like | FeedbackKind::Add) {
            self.reward(&msg.request_id);
        }
    }
}

impl Handler<Rewarded> for BanditActor {
    type Result = ();

    fn handle(&mut self, msg: Rewarded, _: &mut Self::Context) {
        self.reward(&msg.request_id);
    }
}

impl Handler<GetState> for BanditActor {
    type Result = MessageResult<GetState>;

    fn handle(&mut self, GetState(kind): GetState, _: &mut Self::Context) -> Self::Result {
        let policy = &self.policies[kind.index()];
        let mut pending = vec![0u64; policy.arms.len()];
        for &(_, arm) in self.pending.values().filter(|(k, _)| *k == kind) {
            pending[arm] += 1;
        }
        MessageResult(BanditState {
            name: kind.name(),
            enabled: self.settings.enabled,
            policy: policy.clone(),
            pending,
            reward_window_s: self.settings.reward_window_s,
        })
    }
}

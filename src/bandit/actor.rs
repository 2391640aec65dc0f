//! The BanditActor: owns the strategy bandit's posteriors, attributes rewards to the exposure
//! that earned them, and persists itself.
//!
//! A list shown to a listener is a pull of its strategy's arm and waits, under its
//! `request_id`, for a reward: the first like or add that quotes the id within the reward window
//! makes it a success; a list that earns none by then is a failure. So late feedback still
//! counts for the arm that caused it, whatever the bandit chose in between. Pending exposures
//! live in memory (a restart forgets them, and they count as neither); the posteriors are
//! written to `bandit_arms` every `persist_interval_ms` when changed, and loaded on start.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use actix::prelude::*;
use rand::{rngs::StdRng, SeedableRng};

use super::thompson::Thompson;
use crate::{
    config::BanditSettings,
    domain::now_ms,
    recommend::Strategy,
    storage::{
        experiments::{load_arms, save_arms, StoredArm},
        Db,
    },
    taste::FeedbackKind,
};

/// The bandit over solo recommendation strategies, as named in `bandit_arms`.
pub const STRATEGY_BANDIT: &str = "solo_strategy";
/// Exposures awaiting a reward at most; past it the oldest are settled as failures early.
const MAX_PENDING: usize = 500_000;
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The strategy for the next solo list (not yet a pull: the list may turn out a cold start).
#[derive(Message)]
#[rtype(result = "Strategy")]
pub struct Choose;

/// A list was shown under `strategy`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shown {
    pub request_id: String,
    pub strategy: Strategy,
}

/// Feedback that quoted a `request_id`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Outcome {
    pub request_id: String,
    pub kind: FeedbackKind,
}

/// The current state, for reports (computed off the actor).
#[derive(Message)]
#[rtype(result = "BanditState")]
pub struct GetState;

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
    policy: Thompson,
    rng: StdRng,
    pending: HashMap<String, usize>,
    /// Pending request ids in the order shown (entries already rewarded are skipped).
    shown: VecDeque<(Instant, String)>,
    dirty: bool,
    saving: bool,
}

impl BanditActor {
    /// Loads the stored posteriors (arms not stored yet start at Beta(1, 1)).
    pub async fn load(db: Db, settings: BanditSettings) -> Result<Self, sqlx::Error> {
        let names: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
        let mut policy = Thompson::new(&names, settings.exploration_floor);
        for stored in load_arms(&db, STRATEGY_BANDIT).await? {
            if let Some(i) = policy.index_of(&stored.arm) {
                let arm = &mut policy.arms[i];
                arm.successes = stored.alpha - 1.0;
                arm.failures = stored.beta - 1.0;
                arm.pulls = stored.pulls.max(0) as u64;
            }
        }
        Ok(Self {
            db,
            settings,
            policy,
            rng: StdRng::from_entropy(),
            pending: HashMap::new(),
            shown: VecDeque::new(),
            dirty: false,
            saving: false,
        })
    }

    fn settle_expired(&mut self) {
        let window = Duration::from_secs(self.settings.reward_window_s);
        while let Some((at, _)) = self.shown.front() {
            if at.elapsed() < window && self.pending.len() <= MAX_PENDING {
                break;
            }
            let (_, request_id) = self.shown.pop_front().expect("front exists");
            if let Some(arm) = self.pending.remove(&request_id) {
                self.policy.reward(arm, 0.0);
                self.dirty = true;
            }
        }
    }

    fn persist(&mut self, ctx: &mut Context<Self>) {
        if !self.dirty || self.saving {
            return;
        }
        self.dirty = false;
        self.saving = true;
        let arms: Vec<StoredArm> = self
            .policy
            .arms
            .iter()
            .map(|a| StoredArm {
                arm: a.name.clone(),
                alpha: a.alpha(),
                beta: a.beta(),
                pulls: a.pulls as i64,
                rewards: a.successes,
            })
            .collect();
        let db = self.db.clone();
        let save = async move { save_arms(&db, STRATEGY_BANDIT, &arms, now_ms()).await };
        ctx.spawn(save.into_actor(self).map(|result, actor, _| {
            actor.saving = false;
            if let Err(err) = result {
                tracing::warn!(error = %err, "saving the bandit's posteriors; will retry");
                actor.dirty = true;
            }
        }));
    }
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
    type Result = MessageResult<Choose>;

    fn handle(&mut self, _: Choose, _: &mut Self::Context) -> Self::Result {
        if !self.settings.enabled {
            return MessageResult(Strategy::Hybrid);
        }
        let arm = self.policy.sample(&mut self.rng);
        MessageResult(Strategy::parse(&self.policy.arms[arm].name).unwrap_or_default())
    }
}

impl Handler<Shown> for BanditActor {
    type Result = ();

    fn handle(&mut self, msg: Shown, _: &mut Self::Context) {
        if !self.settings.enabled {
            return;
        }
        let Some(arm) = self.policy.index_of(msg.strategy.as_str()) else {
            return;
        };
        self.policy.arms[arm].pulls += 1;
        self.pending.insert(msg.request_id.clone(), arm);
        self.shown.push_back((Instant::now(), msg.request_id));
        self.dirty = true;
        if self.pending.len() > MAX_PENDING {
            self.settle_expired();
        }
    }
}

impl Handler<Outcome> for BanditActor {
    type Result = ();

    fn handle(&mut self, msg: Outcome, _: &mut Self::Context) {
        if !matches!(msg.kind, FeedbackKind::Like | FeedbackKind::Add) {
            return;
        }
        if let Some(arm) = self.pending.remove(&msg.request_id) {
            self.policy.reward(arm, 1.0);
            self.dirty = true;
        }
    }
}

impl Handler<GetState> for BanditActor {
    type Result = MessageResult<GetState>;

    fn handle(&mut self, _: GetState, _: &mut Self::Context) -> Self::Result {
        let mut pending = vec![0u64; self.policy.arms.len()];
        for &arm in self.pending.values() {
            pending[arm] += 1;
        }
        MessageResult(BanditState {
            name: STRATEGY_BANDIT,
            enabled: self.settings.enabled,
            policy: self.policy.clone(),
            pending,
            reward_window_s: self.settings.reward_window_s,
        })
    }
}

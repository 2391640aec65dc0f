//! The BanditActor: owns the bandits' posteriors — solo recommendation strategies per listener
//! maturity, and group aggregation strategies per room size for rooms set to `auto` — and
//! keeps them in the store.
//!
//! A list shown is a pull of its (context, arm) and waits, under its `request_id`, for a
//! reward: for a solo list the first like or add that quotes the id within the reward window,
//! for a group's list a member adding one of its tracks; a list that earns none by then is a
//! failure. So late feedback still counts for the arm that caused it, whatever the bandit chose
//! in between. Every `persist_interval_ms` the lists shown, the rewards and the expiries this
//! process saw are written in one transaction (`storage::bandit::flush`): shown lists become
//! pending rows, and settling deletes a pending row and counts its outcome together, so a
//! restart neither forgets a pending list nor counts one twice, and a reward may arrive at any
//! process sharing the store. The totals are then read back, which brings in what the other
//! processes saw. A crash loses at most the last interval's shows and rewards (counted as
//! neither).

use std::{
    collections::{BTreeSet, HashMap},
    time::{Duration, Instant},
};

use actix::prelude::*;
use rand::rngs::StdRng;

use super::{
    context::{BanditKind, Context, Maturity, Pull, RoomSize},
    prior::{self, OfflineQuality},
    thompson::{Arm, Thompson},
};
use crate::{
    aggregate,
    config::BanditSettings,
    domain::now_ms,
    recommend,
    storage::{
        bandit::{self as store, ArmKey, PosteriorRow, PriorRow},
        Db,
    },
    taste::FeedbackKind,
};

/// Shows and rewards kept for the next flush at most (while the store is unreachable); past it
/// the oldest shows are dropped (counted as neither) with a warning.
const MAX_UNSAVED: usize = 100_000;

/// The strategy for a solo listener's next list (not yet a pull: a list may turn out a cold
/// start). `Hybrid` while the bandits are off.
#[derive(Message)]
#[rtype(result = "recommend::Strategy")]
pub struct ChooseSolo(pub Maturity);

/// The aggregation for an `auto` room's next list; `Fair` while the bandits are off.
#[derive(Message)]
#[rtype(result = "aggregate::Strategy")]
pub struct ChooseGroup(pub RoomSize);

/// A list was shown under `pull`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shown {
    pub request_id: String,
    pub pull: Pull,
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

/// Writes what this process gathered now (graceful shutdown; tests), then reads the totals.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct FlushNow;

/// The current state of one bandit, for reports (computed off the actor).
#[derive(Message)]
#[rtype(result = "BanditState")]
pub struct GetState(pub BanditKind);

#[derive(Debug, Clone)]
pub struct BanditState {
    pub kind: BanditKind,
    pub enabled: bool,
    /// Each context's policy, in `BanditKind::contexts` order.
    pub contexts: Vec<(Context, Thompson)>,
    pub reward_window_s: u64,
    pub prior_weight: f64,
    pub prior_rate: f64,
    /// When each context's priors were last set (ms), per arm as in the policy.
    pub prior_set_at: HashMap<(Context, String), i64>,
}

/// What one write did.
struct Written {
    result: Result<Vec<PosteriorRow>, sqlx::Error>,
    /// What to put back when the flush failed.
    restore: Option<store::Flush>,
    changed: BTreeSet<ArmKey>,
    history_written: bool,
}

pub struct BanditActor {
    db: Db,
    settings: BanditSettings,
    policies: HashMap<Context, Thompson>,
    prior_set_at: HashMap<(Context, String), i64>,
    rng: StdRng,
    /// Gathered since the last flush.
    shown: Vec<store::Shown>,
    rewards: Vec<(String, f64)>,
    flushing: bool,
    /// Arms changed since the last history write.
    changed: BTreeSet<ArmKey>,
    history_written: Instant,
}

/// The priors the configuration and the offline evaluation give, as rows to store.
pub fn prior_rows(quality: Option<&OfflineQuality>, settings: &BanditSettings) -> Vec<PriorRow> {
    let priors = prior::priors(quality, settings);
    let mut rows = Vec::new();
    for kind in BanditKind::ALL {
        for context in kind.contexts() {
            for arm in kind.arms() {
                let p = priors[&(context, arm)];
                rows.push(PriorRow {
                    bandit: kind.name(),
                    context: context.name(),
                    arm,
                    alpha: p.alpha,
                    beta: p.beta,
                });
            }
        }
    }
    rows
}

impl BanditActor {
    /// Seeds the priors of (context, arm)s the store does not have yet, then loads the stored
    /// posteriors. Stored priors that differ from the configured ones are kept (changing them is
    /// explicit: `chorus bandit set-priors`), with a warning.
    pub async fn load(
        db: Db,
        settings: BanditSettings,
        quality: Option<&OfflineQuality>,
    ) -> Result<Self, sqlx::Error> {
        if quality.is_none() {
            tracing::warn!(
                "models/manifest.json has no bandit_prior (chorus eval-priors --write): new \
                 bandit arms start at Beta(1, 1)"
            );
        }
        let wanted = prior_rows(quality, &settings);
        let seeded = store::store_priors(&db, &wanted, false, now_ms()).await?;
        if seeded > 0 {
            tracing::info!(
                arms = seeded,
                prior_weight = settings.prior_weight,
                prior_rate = settings.prior_rate,
                "bandit priors set from the offline evaluation"
            );
        }
        let stored = store::load_posteriors(&db).await?;
        let differing = wanted
            .iter()
            .filter(|w| {
                stored.iter().any(|s| {
                    (s.bandit.as_str(), s.context.as_str(), s.arm.as_str())
                        == (w.bandit, w.context, w.arm)
                        && ((s.prior_alpha - w.alpha).abs() > 1e-9
                            || (s.prior_beta - w.beta).abs() > 1e-9)
                })
            })
            .count();
        if differing > 0 {
            tracing::warn!(
                arms = differing,
                "the stored bandit priors differ from the configured ones and are kept; \
                 `chorus bandit set-priors` applies the configured ones"
            );
        }
        let mut actor = Self {
            policies: HashMap::new(),
            prior_set_at: HashMap::new(),
            db,
            rng: rand::make_rng::<StdRng>(),
            shown: Vec::new(),
            rewards: Vec::new(),
            flushing: false,
            changed: BTreeSet::new(),
            history_written: Instant::now(),
            settings,
        };
        actor.adopt(&stored);
        Ok(actor)
    }

    /// Takes the stored totals (arms not stored start at Beta(1, 1)).
    fn adopt(&mut self, stored: &[PosteriorRow]) {
        for kind in BanditKind::ALL {
            for context in kind.contexts() {
                let mut policy = Thompson::new(&kind.arms(), self.settings.exploration_floor);
                for row in stored
                    .iter()
                    .filter(|r| r.bandit == kind.name() && r.context == context.name())
                {
                    if let Some(i) = policy.index_of(&row.arm) {
                        policy.arms[i] = Arm {
                            name: row.arm.clone(),
                            prior_alpha: row.prior_alpha,
                            prior_beta: row.prior_beta,
                            pulls: row.pulls.max(0) as u64,
                            successes: row.successes,
                            failures: row.failures,
                        };
                        self.prior_set_at
                            .insert((context, row.arm.clone()), row.prior_set_at);
                    }
                }
                self.policies.insert(context, policy);
            }
        }
    }

    /// The index of the arm to pull in `context` (arms in `BanditKind::arms` order, which is
    /// each strategy enum's `ALL` order); `None` while the bandits are off.
    fn choose(&mut self, context: Context) -> Option<usize> {
        self.settings
            .enabled
            .then(|| self.policies[&context].sample(&mut self.rng))
    }

    fn take_unsaved(&mut self) -> store::Flush {
        let now = now_ms();
        let history_due =
            self.history_written.elapsed() >= Duration::from_secs(self.settings.history_interval_s);
        store::Flush {
            shown: std::mem::take(&mut self.shown),
            rewards: std::mem::take(&mut self.rewards),
            expire_before: now - (self.settings.reward_window_s * 1_000) as i64,
            history_at: history_due.then_some(now),
            now,
        }
    }

    /// Writes a flush, the history when due, and reads the totals back.
    fn write(
        &mut self,
        flush: store::Flush,
    ) -> impl ActorFuture<Self, Output = Result<(), String>> + use<> {
        let db = self.db.clone();
        let keep_after = now_ms() - (self.settings.history_days as i64) * 24 * 3_600 * 1_000;
        let mut changed = std::mem::take(&mut self.changed);
        let work = async move {
            let mut done = Written {
                result: Ok(Vec::new()),
                restore: None,
                changed: BTreeSet::new(),
                history_written: false,
            };
            match store::flush(&db, &flush).await {
                Ok(flushed) => changed.extend(flushed.changed),
                Err(err) => {
                    done.result = Err(err);
                    done.restore = Some(flush);
                    done.changed = changed;
                    return done;
                }
            }
            if let Some(at) = flush.history_at {
                match store::record_history(&db, &changed, at, keep_after).await {
                    Ok(()) => {
                        changed.clear();
                        done.history_written = true;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "writing the bandits' history; will retry")
                    }
                }
            }
            done.result = store::load_posteriors(&db).await;
            done.changed = changed;
            done
        };
        work.into_actor(self).map(move |done, actor, _| {
            actor.changed.extend(done.changed);
            if done.history_written {
                actor.history_written = Instant::now();
            }
            if let Some(unsaved) = done.restore {
                // The transaction wrote none of it: put it back, oldest first.
                let mut shown = unsaved.shown;
                shown.append(&mut actor.shown);
                actor.shown = shown;
                let mut rewards = unsaved.rewards;
                rewards.append(&mut actor.rewards);
                actor.rewards = rewards;
                actor.bound_unsaved();
            }
            match done.result {
                Ok(stored) => {
                    actor.adopt(&stored);
                    Ok(())
                }
                Err(err) => {
                    tracing::warn!(error = %err, "saving the bandits' counts; will retry");
                    Err(err.to_string())
                }
            }
        })
    }

    fn bound_unsaved(&mut self) {
        if self.shown.len() > MAX_UNSAVED {
            let dropped = self.shown.len() - MAX_UNSAVED;
            self.shown.drain(..dropped);
            tracing::warn!(
                dropped,
                "the store is unreachable: dropping the oldest bandit pulls"
            );
        }
        if self.rewards.len() > MAX_UNSAVED {
            let dropped = self.rewards.len() - MAX_UNSAVED;
            self.rewards.drain(..dropped);
            tracing::warn!(
                dropped,
                "the store is unreachable: dropping the oldest bandit rewards"
            );
        }
    }

    fn persist(&mut self, ctx: &mut actix::Context<Self>) {
        if self.flushing {
            return;
        }
        self.flushing = true;
        let flush = self.take_unsaved();
        ctx.spawn(self.write(flush).map(|_, actor, _| actor.flushing = false));
    }
}

impl Actor for BanditActor {
    type Context = actix::Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let every = Duration::from_millis(self.settings.persist_interval_ms);
        ctx.run_interval(every, |actor, ctx| actor.persist(ctx));
    }
}

impl Handler<ChooseSolo> for BanditActor {
    type Result = MessageResult<ChooseSolo>;

    fn handle(&mut self, ChooseSolo(maturity): ChooseSolo, _: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.choose(Context::Solo(maturity))
                .map_or_else(Default::default, |arm| recommend::Strategy::ALL[arm]),
        )
    }
}

impl Handler<ChooseGroup> for BanditActor {
    type Result = MessageResult<ChooseGroup>;

    fn handle(&mut self, ChooseGroup(size): ChooseGroup, _: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.choose(Context::Group(size))
                .map_or(aggregate::Strategy::Fair, |arm| {
                    aggregate::Strategy::ALL[arm]
                }),
        )
    }
}

impl Handler<Shown> for BanditActor {
    type Result = ();

    fn handle(&mut self, msg: Shown, _: &mut Self::Context) {
        if !self.settings.enabled {
            return;
        }
        let context = msg.pull.context();
        self.shown.push(store::Shown {
            request_id: msg.request_id,
            bandit: context.kind().name(),
            context: context.name(),
            arm: msg.pull.arm(),
            at: now_ms(),
        });
        self.bound_unsaved();
    }
}

impl Handler<Outcome> for BanditActor {
    type Result = ();

    fn handle(&mut self, msg: Outcome, _: &mut Self::Context) {
        if matches!(msg.kind, FeedbackKind::Like | FeedbackKind::Add) {
            self.rewards.push((msg.request_id, 1.0));
            self.bound_unsaved();
        }
    }
}

impl Handler<Rewarded> for BanditActor {
    type Result = ();

    fn handle(&mut self, msg: Rewarded, _: &mut Self::Context) {
        self.rewards.push((msg.request_id, 1.0));
        self.bound_unsaved();
    }
}

impl Handler<FlushNow> for BanditActor {
    type Result = ResponseActFuture<Self, Result<(), String>>;

    fn handle(&mut self, _: FlushNow, _: &mut Self::Context) -> Self::Result {
        let flush = self.take_unsaved();
        Box::pin(self.write(flush))
    }
}

impl Handler<GetState> for BanditActor {
    type Result = MessageResult<GetState>;

    fn handle(&mut self, GetState(kind): GetState, _: &mut Self::Context) -> Self::Result {
        MessageResult(BanditState {
            kind,
            enabled: self.settings.enabled,
            contexts: kind
                .contexts()
                .into_iter()
                .map(|c| (c, self.policies[&c].clone()))
                .collect(),
            reward_window_s: self.settings.reward_window_s,
            prior_weight: self.settings.prior_weight,
            prior_rate: self.settings.prior_rate,
            prior_set_at: self.prior_set_at.clone(),
        })
    }
}

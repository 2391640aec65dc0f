//! UserActor: one per active listener. It loads the listener's stored feedback once, then keeps
//! the taste state live: every feedback or comparison is written to the store and folded into
//! the state before it is acknowledged, one at a time, so the next request sees it and a restart
//! rebuilds the same state. It stops after [`IDLE_TIMEOUT`] without messages.
//!
//! Feedback a live room implies (a member's add, vote or skip vote) is stored by the room, in
//! the same write as its events ([`FoldStored`]); the actor only folds it. Such a fold can race
//! the actor's own load (an actor started, or reloaded, after the room's write reads the row
//! itself), so the actor remembers the ids of the recent rows its last load read and skips
//! their folds. A fold lands in arrival order, which may differ from the stored order by a
//! millisecond's neighbours; a reload folds in stored order.

use std::{
    collections::HashSet,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;

use super::{directory::UserDirectory, profile, FeedbackKind, Profile, Taste, MAX_COMPARISONS};
use crate::{
    domain::{now_ms, UserId},
    error::{ApiError, ErrorCode},
    inference::features::Listener,
    storage::{
        feedback::{self, NewComparison, NewInteraction},
        Db,
    },
};

pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How often an actor checks whether it has been idle long enough to stop.
const IDLE_CHECK: Duration = Duration::from_secs(30);

/// What a recommendation request needs from the listener's state; rebuilt after every change.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub listener: Option<Arc<Listener>>,
    /// Every track the listener reacted to, sorted.
    pub reacted: Vec<u32>,
    pub disliked: Vec<u32>,
    pub compared: HashSet<(u32, u32)>,
}

#[derive(Message, Clone)]
#[rtype(result = "Arc<Snapshot>")]
pub struct GetSnapshot;

#[derive(Message, Clone)]
#[rtype(result = "Profile")]
pub struct GetProfile;

#[derive(Message, Clone)]
#[rtype(result = "Result<String, ApiError>")]
pub struct RecordFeedback {
    pub item: u32,
    pub track_id: String,
    pub kind: FeedbackKind,
    pub request_id: Option<String>,
    pub group_id: Option<String>,
}

/// Feedback already stored (by a live room, with its events): fold it into the taste.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct FoldStored {
    /// The stored interaction's id.
    pub id: String,
    pub item: u32,
    pub kind: FeedbackKind,
}

#[derive(Message, Clone)]
#[rtype(result = "Result<String, ApiError>")]
pub struct RecordComparison {
    pub a: (u32, String),
    pub b: (u32, String),
    /// True when `a` won.
    pub a_wins: bool,
    pub request_id: Option<String>,
}

pub struct UserActor {
    user: UserId,
    directory: UserDirectory,
    taste: Taste,
    snapshot: Arc<Snapshot>,
    last_active: Instant,
    /// Ids of the rows the last load read that were stored within [`FOLD_RACE`] of it: a
    /// [`FoldStored`] for one of them is already counted.
    loaded_recently: HashSet<String>,
}

/// How long after a room stores a member's feedback its fold may still be on its way.
const FOLD_RACE: Duration = Duration::from_secs(10 * 60);

impl UserActor {
    pub fn new(user: UserId, directory: UserDirectory) -> Self {
        Self {
            user,
            directory,
            taste: Taste::default(),
            snapshot: Arc::default(),
            last_active: Instant::now(),
            loaded_recently: HashSet::new(),
        }
    }

    fn refresh(&mut self) {
        let space = self.directory.space();
        self.taste.refresh(space);
        self.snapshot = Arc::new(Snapshot {
            listener: self.taste.listener(space).map(Arc::new),
            reacted: self.taste.reacted(),
            disliked: self.taste.disliked(),
            compared: self.taste.compared_pairs(),
        });
    }

    /// Writes the change to the store (`write` gets the pool, the user and a fresh row id), then
    /// folds it into the taste and answers the id. Atomic: no other message is handled in
    /// between, so writes and folds happen in the same order.
    fn persist_then<W>(
        &mut self,
        write: impl FnOnce(Db, UserId, String) -> W,
        fold: impl FnOnce(&mut Taste) + 'static,
    ) -> AtomicResponse<Self, Result<String, ApiError>>
    where
        W: Future<Output = Result<(), sqlx::Error>> + 'static,
    {
        self.last_active = Instant::now();
        let id = uuid::Uuid::now_v7().to_string();
        let written = write(self.directory.db().clone(), self.user.clone(), id.clone());
        AtomicResponse::new(Box::pin(written.into_actor(self).map(
            move |written, actor, _| {
                written.map_err(ApiError::from)?;
                fold(&mut actor.taste);
                actor.refresh();
                actor.directory.taste_changed(&actor.user);
                Ok(id)
            },
        )))
    }

    /// The listener's stored feedback.
    #[allow(clippy::type_complexity)]
    fn load(
        &self,
    ) -> impl ActorFuture<
        Self,
        Output = Result<
            (
                Vec<feedback::StoredInteraction>,
                Vec<feedback::StoredComparison>,
            ),
            sqlx::Error,
        >,
    > {
        let db = self.directory.db().clone();
        let user = self.user.clone();
        async move {
            let interactions = feedback::interactions(&db, &user).await?;
            let comparisons = feedback::comparisons(&db, &user, MAX_COMPARISONS as i64).await?;
            Ok((interactions, comparisons))
        }
        .into_actor(self)
    }

    fn restore(
        &mut self,
        interactions: Vec<feedback::StoredInteraction>,
        comparisons: Vec<feedback::StoredComparison>,
    ) {
        let catalog = self.directory.catalog();
        let recent = now_ms() - FOLD_RACE.as_millis() as i64;
        self.loaded_recently = interactions
            .iter()
            .filter(|row| row.created_at >= recent)
            .map(|row| row.id.clone())
            .collect();
        for row in interactions {
            if let (Some(item), Some(kind)) = (
                catalog.index_of(&row.track_id),
                FeedbackKind::parse(&row.kind),
            ) {
                self.taste.record(item, kind);
            }
        }
        for row in comparisons {
            if let (Some(w), Some(l)) =
                (catalog.index_of(&row.winner), catalog.index_of(&row.loser))
            {
                self.taste.record_comparison(w, l);
            }
        }
        self.refresh();
    }
}

impl Actor for UserActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.directory.metrics().active_users.inc();
        // `wait`: no message is handled before the stored state is in.
        ctx.wait(self.load().map(|loaded, actor, ctx| match loaded {
            Ok((interactions, comparisons)) => actor.restore(interactions, comparisons),
            Err(e) => {
                tracing::error!(user_id = %actor.user, error = %e, "loading a listener's feedback failed");
                ctx.stop();
            }
        }));
        let idle_timeout = self.directory.idle_timeout();
        ctx.run_interval(IDLE_CHECK.min(idle_timeout / 2), move |actor, ctx| {
            if actor.last_active.elapsed() >= idle_timeout {
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.directory.metrics().active_users.dec();
        self.directory.forget(&self.user, &ctx.address());
    }
}

/// Reread the stored feedback (another process recorded some).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Reload;

impl Handler<Reload> for UserActor {
    type Result = ();

    fn handle(&mut self, _: Reload, ctx: &mut Self::Context) {
        ctx.wait(self.load().map(|loaded, actor, _| match loaded {
            Ok((interactions, comparisons)) => {
                actor.taste = Taste::default();
                actor.restore(interactions, comparisons);
            }
            // The taste as it was is the best there is; the next change rereads.
            Err(e) => {
                tracing::warn!(user_id = %actor.user, error = %e, "rereading a listener's feedback failed")
            }
        }));
    }
}

impl Handler<GetSnapshot> for UserActor {
    type Result = Arc<Snapshot>;

    fn handle(&mut self, _: GetSnapshot, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        Arc::clone(&self.snapshot)
    }
}

impl Handler<GetProfile> for UserActor {
    type Result = MessageResult<GetProfile>;

    fn handle(&mut self, _: GetProfile, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        MessageResult(profile::build(
            &self.taste,
            self.directory.catalog(),
            self.directory.catalog_means(),
        ))
    }
}

impl Handler<RecordFeedback> for UserActor {
    type Result = AtomicResponse<Self, Result<String, ApiError>>;

    fn handle(&mut self, msg: RecordFeedback, _: &mut Self::Context) -> Self::Result {
        let (item, kind) = (msg.item, msg.kind);
        self.persist_then(
            move |db, user, id| async move {
                feedback::insert_interaction(
                    &db,
                    &NewInteraction {
                        id: &id,
                        user_id: &user,
                        track_id: &msg.track_id,
                        kind: kind.as_str(),
                        weight: f64::from(kind.weight()),
                        request_id: msg.request_id.as_deref(),
                        group_id: msg.group_id.as_deref(),
                        created_at: now_ms(),
                    },
                )
                .await
            },
            move |taste| taste.record(item, kind),
        )
    }
}

impl Handler<FoldStored> for UserActor {
    type Result = ();

    fn handle(&mut self, msg: FoldStored, _: &mut Self::Context) {
        self.last_active = Instant::now();
        // Already counted when the load read the row; the rooms are told either way.
        if !self.loaded_recently.remove(&msg.id) {
            self.taste.record(msg.item, msg.kind);
            self.refresh();
        }
        self.directory.taste_changed(&self.user);
    }
}

impl Handler<RecordComparison> for UserActor {
    type Result = AtomicResponse<Self, Result<String, ApiError>>;

    fn handle(&mut self, msg: RecordComparison, _: &mut Self::Context) -> Self::Result {
        let (winner, loser) = if msg.a_wins {
            (msg.a.0, msg.b.0)
        } else {
            (msg.b.0, msg.a.0)
        };
        self.persist_then(
            move |db, user, id| async move {
                let winner_id = if msg.a_wins { &msg.a.1 } else { &msg.b.1 };
                feedback::insert_comparison(
                    &db,
                    &NewComparison {
                        id: &id,
                        user_id: &user,
                        track_a: &msg.a.1,
                        track_b: &msg.b.1,
                        winner: winner_id,
                        request_id: msg.request_id.as_deref(),
                        created_at: now_ms(),
                    },
                )
                .await
            },
            move |taste| taste.record_comparison(winner, loser),
        )
    }
}

/// A UserActor that could not be reached (it failed to load, or stopped under the message).
pub fn unreachable(user: &UserId) -> ApiError {
    tracing::error!(user_id = %user, "the listener's state is unavailable");
    ApiError::new(
        ErrorCode::DependencyUnavailable,
        "the listener's stored state could not be loaded; retry shortly",
    )
    .retry_after(2)
}

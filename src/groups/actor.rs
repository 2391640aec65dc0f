//! The GroupActor: one per live group. It owns the group's state (the fold of its log), the
//! sockets attached to it and the group's current recommendations.
//!
//! Operations run one at a time (`AtomicResponse`): validate against the state, append the
//! resulting events to the store, and only then fold them in and broadcast them. So every
//! member receives the same events in `seq` order, and nothing is shown that was not stored.
//!
//! Several processes may serve one room: each runs a replica (this actor) for its own sockets.
//! The store keeps one order: an append names the seq its replica decided on and fails if the
//! log moved on, and the replica then reads what it missed and decides again. Replicas tell each
//! other what they stored, who is online and the room's list over the fan-out ([`News`]); one of
//! them at a time holds the room's lease and runs its duties (the listen-along clock, auto-fill,
//! recommendations, the Spotify device), which the others receive.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use bytestring::ByteString;
use futures_util::future::join_all;
use tokio::sync::oneshot;

use super::{
    commands::{
        auto_fill, decide, device_moved_on, device_position, track_ended, Command, Context as Rules,
    },
    events::{Event, EventBody, LeaveReason, TrackSummary},
    ids::generate_entry_id,
    news::News,
    player::{ConnectLink, Desired, DeviceReport},
    protocol::ServerFrame,
    queue::CHORUS,
    registry::LiveGroups,
    socket_link::SocketLink,
    state::{GroupState, GroupView, PlaybackIssue},
};
use crate::{
    aggregate::Strategy,
    bandit::{
        actor::{BanditActor, ChooseGroup, Rewarded, Shown},
        context::{Pull, RoomSize},
    },
    config::RealtimeSettings,
    domain::{now_ms, UserId},
    error::{ApiError, ErrorCode},
    fanout::{Delivery, Fanout, Topic},
    limits::{gcra, Decision, Quota},
    metrics::Metrics,
    recommend::{GroupRecommendations, GroupRefresh, GroupRequest, KeptPool, Recommender},
    storage::{feedback::NewInteraction, groups, Db},
    taste::{actor::FoldStored, FeedbackKind},
};

/// What every GroupActor works with, handed to it when it starts.
#[derive(Clone)]
pub struct GroupDeps {
    pub db: Db,
    pub recommender: Recommender,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<RealtimeSettings>,
    /// Picks the aggregation of rooms set to `auto`.
    pub bandit: Addr<BanditActor>,
    /// This process's live groups, which the actor joins and leaves.
    pub live: Arc<LiveGroups<GroupActor>>,
    /// Rooms that play on a Spotify Connect device drive it through this.
    pub spotify: Option<crate::spotify::Spotify>,
    /// The other processes serving the same rooms.
    pub fanout: Arc<dyn Fanout>,
}

/// A socket joins the live session (its user must be a member). The actor sends it a snapshot
/// or the events after `last_seq`, the current recommendations, then an `ack` for the join.
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct Attach {
    pub conn: u64,
    pub user: UserId,
    pub socket: SocketLink,
    pub last_seq: Option<i64>,
    pub client_msg_id: Option<String>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach {
    pub conn: u64,
}

/// Where an operation came from: a socket gets its `ack` or `error` frame in line with the
/// events; a REST caller only gets the result.
pub enum Origin {
    Socket { socket: SocketLink },
    Rest,
}

#[derive(Message)]
#[rtype(result = "Result<i64, ApiError>")]
pub struct Execute {
    pub actor: UserId,
    pub command: Command,
    pub client_msg_id: Option<String>,
    pub origin: Origin,
}

/// A change the server makes on its own (no member acted), serialised with members' operations.
#[derive(Message)]
#[rtype(result = "Result<i64, ApiError>")]
enum ServerOp {
    /// The listen-along clock says this entry reached its end.
    TrackEnded { entry_id: String },
    /// Top the queue up from the current recommendations (settings.auto_fill).
    AutoFill,
    /// Follow what the host did in the Spotify app.
    FollowDevice(DeviceReport),
}

/// What the fan-out brought: news from another replica, or a hint that some may be missing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FromFanout(pub Delivery);

/// An operation as it is decided (again, when another process appended first).
enum Op {
    Member {
        actor: UserId,
        command: Command,
        client_msg_id: Option<String>,
    },
    Server(ServerOp),
}

/// Where folded events were stored.
enum Source {
    /// By this replica, with the members' feedback they imply (stored in the same write): the
    /// members' user actors fold it in.
    Here(Vec<(UserId, FoldStored)>),
    /// By another process (read from the fan-out or the store), which told its own user actors.
    Elsewhere,
}

/// A process's open sockets in this room, as it last said.
struct RemotePresence {
    users: HashMap<String, usize>,
    seen: Instant,
}

#[derive(Message)]
#[rtype(result = "GroupView")]
pub struct GetView;

#[derive(Message)]
#[rtype(result = "bool")]
pub struct IsMember(pub UserId);

/// The current recommendations, computed first if there are none yet.
#[derive(Message)]
#[rtype(result = "Result<Arc<GroupRecommendations>, ApiError>")]
pub struct GetRecommendations;

/// A socket asks for the recommendations again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendRecommendations {
    pub socket: SocketLink,
}

/// A member's taste changed (feedback from any endpoint, the group's own ops included).
#[derive(Message)]
#[rtype(result = "()")]
pub struct TasteChanged;

struct Socket {
    user: String,
    link: SocketLink,
}

type Waiter = oneshot::Sender<Result<Arc<GroupRecommendations>, String>>;

/// The room's current list: the frame sockets get, and the whole list — ranked here, or as
/// another process sent it, read only when needed (most replicas never need it: reading every
/// list another process computed was the largest cost of a replica).
struct RoomList {
    frame: ByteString,
    whole: WholeList,
}

enum WholeList {
    Computed(Arc<GroupRecommendations>),
    Received {
        text: String,
        list: std::cell::OnceCell<Option<Arc<GroupRecommendations>>>,
    },
}

impl RoomList {
    fn computed(list: Arc<GroupRecommendations>) -> Self {
        Self {
            frame: ServerFrame::Recommendations(list.for_sockets()).encode(),
            whole: WholeList::Computed(list),
        }
    }

    fn received(frame: ByteString, text: String) -> Self {
        Self {
            frame,
            whole: WholeList::Received {
                text,
                list: std::cell::OnceCell::new(),
            },
        }
    }

    /// The whole list as JSON, for the other replicas.
    fn text(&self) -> String {
        match &self.whole {
            WholeList::Computed(list) => {
                serde_json::to_string(list.as_ref()).expect("lists serialise")
            }
            WholeList::Received { text, .. } => text.clone(),
        }
    }

    fn list(&self) -> Option<&Arc<GroupRecommendations>> {
        match &self.whole {
            WholeList::Computed(list) => Some(list),
            WholeList::Received { text, list } => list
                .get_or_init(|| match serde_json::from_str(text) {
                    Ok(list) => Some(Arc::new(list)),
                    Err(err) => {
                        tracing::warn!(error = %err, "unreadable room list from another process");
                        None
                    }
                })
                .as_ref(),
        }
    }
}

pub struct GroupActor {
    state: GroupState,
    deps: GroupDeps,
    sockets: HashMap<u64, Socket>,
    /// Open sockets per user, over every process.
    online: HashMap<String, usize>,
    /// Open sockets per user in this process.
    local_online: HashMap<String, usize>,
    /// Other processes' open sockets, by process.
    remote_online: HashMap<Arc<str>, RemotePresence>,
    /// This replica holds the room's lease and runs its duties (always, in a process alone).
    duties: bool,
    /// The fan-out subscription (processes that share rooms).
    subscription: Option<u64>,
    /// A read of missed events from the store is under way.
    resyncing: bool,
    /// The latest events as sent, for replay to reconnecting clients.
    recent: VecDeque<(i64, ByteString)>,
    recommendations: Option<RoomList>,
    refresh_scheduled: bool,
    refreshing: bool,
    last_refresh: Option<Instant>,
    refresh_again: bool,
    /// What the last ranking left for the next (see `KeptPool`).
    kept_pool: Option<Arc<KeptPool>>,
    /// Refreshes wait `recommend_interval_ms << refresh_backoff`: one more step each time
    /// inference is too busy to take one, one less after each that ran.
    refresh_backoff: u32,
    /// Armed by a change the list should reflect: tells the members if it still does not
    /// after `UPDATING_NOTICE`.
    list_watch: Option<SpawnHandle>,
    /// The members were told the list is being updated (until the next list).
    told_updating: bool,
    /// The seq of the latest event that should change the list.
    list_wanted: i64,
    waiters: Vec<Waiter>,
    /// Bumped whenever the last socket leaves; an idle timer only stops the generation it saw.
    idle_generation: u64,
    /// The seq of the latest stored snapshot of this group (0: none).
    snapshot_seq: i64,
    /// Per member: the GCRA schedule of their changes to this room (µs on `op_clock`).
    op_schedule: HashMap<String, u64>,
    op_clock: Instant,
    /// The listen-along clock: fires when the track playing ends.
    track_end: Option<SpawnHandle>,
    /// The room's Spotify Connect device, while it has one.
    connect: Option<ConnectLink>,
    /// Why that device is not following right now.
    playback_issue: Option<PlaybackIssue>,
}

/// A snapshot is stored after this many events since the last one, so loading a group folds at
/// most about this many events (plus the replay window it reads anyway).
const SNAPSHOT_EVERY: i64 = 1_000;
/// Unloading an idle group stores a snapshot if at least this many events came since the last.
const SNAPSHOT_ON_UNLOAD: i64 = 50;
/// How often a replica says who is online here, and takes or keeps the room's lease.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// A process not heard from for this long has no sockets in the room any more (it died).
const PRESENCE_TTL: Duration = Duration::from_secs(6);
/// The room's lease lasts this long unless renewed: a dead holder's duties move on within it.
const LEASE_TTL: Duration = Duration::from_secs(6);
/// Decisions an operation may take when other processes keep appending first (each lost race
/// means another operation was stored, so this bounds a burst, not a steady state).
const MAX_ATTEMPTS: u32 = 32;
/// Events read from the store per query when catching up.
const RESYNC_PAGE: i64 = 1_000;
/// A list this late behind a change is announced as being updated.
const UPDATING_NOTICE: Duration = Duration::from_secs(1);
/// At most `recommend_interval_ms << MAX_REFRESH_BACKOFF` between refreshes of a room when
/// inference is too busy (250 ms → 4 s by default).
const MAX_REFRESH_BACKOFF: u32 = 4;
/// The inference queue's fill below which rooms refresh at their own pace ...
const STRETCH_FROM: f64 = 0.25;
/// ... and how many times longer they wait once it is full (linearly in between).
const MAX_STRETCH: f64 = 16.0;

/// How long a room waits between refreshes: `recommend_interval_ms`, doubled per step of
/// `backoff` (rankings refused), and stretched as the inference queue fills (`busy`, 0–1).
/// Every room slows down together as the machine runs out of ranking capacity, so the queue
/// settles below the point where it refuses, and a room's members get a later list rather than
/// none.
fn refresh_interval(interval_ms: u64, backoff: u32, busy: f64) -> Duration {
    let over = ((busy - STRETCH_FROM) / (1.0 - STRETCH_FROM)).clamp(0.0, 1.0);
    let stretch = 1.0 + (MAX_STRETCH - 1.0) * over;
    Duration::from_millis(interval_ms << backoff).mul_f64(stretch)
}

impl GroupActor {
    pub fn new(state: GroupState, deps: GroupDeps, recent: Vec<Event>, snapshot_seq: i64) -> Self {
        let duties = !deps.fanout.shared();
        let mut actor = Self {
            state,
            deps,
            sockets: HashMap::new(),
            online: HashMap::new(),
            local_online: HashMap::new(),
            remote_online: HashMap::new(),
            duties,
            subscription: None,
            resyncing: false,
            recent: VecDeque::new(),
            recommendations: None,
            refresh_scheduled: false,
            refreshing: false,
            last_refresh: None,
            refresh_again: false,
            kept_pool: None,
            refresh_backoff: 0,
            list_watch: None,
            told_updating: false,
            list_wanted: 0,
            waiters: Vec::new(),
            idle_generation: 0,
            snapshot_seq,
            op_schedule: HashMap::new(),
            op_clock: Instant::now(),
            track_end: None,
            connect: None,
            playback_issue: None,
        };
        for event in &recent {
            actor.remember(event.seq, event_frame(event));
        }
        actor
    }

    fn remember(&mut self, seq: i64, frame: ByteString) {
        self.recent.push_back((seq, frame));
        while self.recent.len() > self.deps.settings.replay_events {
            self.recent.pop_front();
        }
    }

    /// Stores a snapshot of the state now (in the background; a failure only means the next
    /// load folds more events).
    fn save_snapshot(&mut self) {
        let snapshot = self.state.to_snapshot();
        let seq = snapshot.seq;
        let json = match serde_json::to_string(&snapshot) {
            Ok(json) => json,
            Err(err) => {
                return tracing::error!(group = %self.state.id, error = %err, "serialising a group snapshot")
            }
        };
        self.snapshot_seq = seq;
        let db = self.deps.db.clone();
        let group = self.state.id.clone();
        actix_web::rt::spawn(async move {
            if let Err(err) = groups::save_snapshot(&db, &group, seq, &json).await {
                tracing::warn!(group = %group, seq, error = %err, "storing a group snapshot");
            }
        });
    }

    /// One member's changes to this room are limited over all their sockets and REST calls
    /// (`realtime.room_ops_per_second`, `room_op_burst`), so many sockets do not multiply the
    /// rate at which one member can grow the room's log.
    fn admit_op(&mut self, user: &str) -> Result<(), ApiError> {
        let settings = &self.deps.settings;
        let quota = Quota {
            per_second: settings.room_ops_per_second,
            burst: settings.room_op_burst,
        };
        let now_us = self.op_clock.elapsed().as_micros() as u64;
        let tat = self.op_schedule.get(user).copied();
        match gcra(tat, now_us, quota) {
            (Decision::Allowed, Some(next)) => {
                // Forget members whose schedule has long run out, so the map stays small.
                if self.op_schedule.len() > 2 * self.state.members.len() + 16 {
                    self.op_schedule.retain(|_, tat| *tat > now_us);
                }
                self.op_schedule.insert(user.to_string(), next);
                Ok(())
            }
            (decision, _) => {
                let wait = match decision {
                    Decision::Limited { retry_after } => retry_after,
                    Decision::Allowed => Duration::ZERO,
                };
                Err(ApiError::new(
                    ErrorCode::RateLimited,
                    format!(
                        "more than {} changes per second to this room; retry in {} ms",
                        settings.room_ops_per_second,
                        wait.as_millis().max(1)
                    ),
                )
                .retry_after(wait.as_secs() + 1))
            }
        }
    }

    /// For a track added from the room's current list: the member it was recommended for (the
    /// one predicted to like it most).
    fn recommended_for(&self, command: &Command) -> Option<String> {
        let Command::AddTrack { track } = command else {
            return None;
        };
        let list = self.recommendations.as_ref()?.list()?;
        let item = list
            .items
            .iter()
            .find(|i| i.track.id.as_str() == track.id)?;
        best_served(&item.fit).map(|f| f.user_id.clone())
    }

    fn broadcast(&self, frame: &ByteString) {
        for socket in self.sockets.values() {
            socket.link.frame(frame.clone());
        }
    }

    fn online_members(&self) -> usize {
        self.state
            .members
            .iter()
            .filter(|m| self.online.get(&m.user_id).copied().unwrap_or(0) > 0)
            .count()
    }

    fn view(&self) -> GroupView {
        let mut view = self.state.view(&self.online, now_ms());
        view.playback_issue = self.playback_issue.clone();
        view
    }

    /// Keeps the room's Spotify device (if it has one) doing what the room does: a new link
    /// when the target changed, then the room's state now.
    fn sync_device(&mut self, ctx: &mut Context<Self>) {
        if !self.duties {
            return;
        }
        let target = self.state.playback_target.clone();
        if self.connect.as_ref().map(|link| &link.target) != target.as_ref() {
            self.connect = None;
            let issue = match (target, &self.deps.spotify) {
                (None, _) => None,
                (Some(_), None) => Some(PlaybackIssue {
                    code: ErrorCode::SpotifyNotConfigured.as_str(),
                    message: "this server has no Spotify app configured any more; the room plays in listen-along mode".into(),
                }),
                (Some(target), Some(spotify)) => {
                    let poll = spotify.poll_interval();
                    self.connect = Some(ConnectLink::start(
                        spotify.clone(),
                        target,
                        ctx.address().recipient(),
                        poll,
                    ));
                    None
                }
            };
            self.set_playback_issue(issue);
        }
        if let Some(link) = &self.connect {
            let now = self.state.now_playing.as_ref();
            link.want(Desired {
                entry_id: now.map(|n| n.entry.entry_id.clone()),
                track_id: now.map(|n| n.entry.track.id.clone()),
                duration_ms: now.map_or(0, |n| n.entry.track.duration_ms),
                playing: now.is_some_and(|n| n.playing),
                position_ms: now.map_or(0, |n| n.position_at(now_ms())),
                at: Instant::now(),
            });
        }
    }

    fn set_playback_issue(&mut self, issue: Option<PlaybackIssue>) {
        if issue != self.playback_issue {
            self.playback_issue = issue;
            self.broadcast(
                &ServerFrame::PlaybackStatus {
                    issue: self.playback_issue.as_ref(),
                }
                .encode(),
            );
            if self.duties {
                self.tell_playback();
            }
        }
    }

    /// Sends news to the room's replicas in other processes. In a process alone there are
    /// none, and the news is not even made (it would cost the hot path a copy or an encoding).
    fn tell_others(&self, news: impl FnOnce() -> News) {
        if self.deps.fanout.shared() {
            self.deps
                .fanout
                .publish(Topic::Room(&self.state.id), news().encode());
        }
    }

    /// Sends the room's list to the other replicas: the frame their sockets get, and the list.
    fn tell_list(&self) {
        if let Some(list) = &self.recommendations {
            self.tell_others(|| News::Recommendations {
                frame: list.frame.to_string(),
                list: list.text(),
            });
        }
    }

    /// Tells the other replicas how the room's Spotify device is doing.
    fn tell_playback(&self) {
        self.tell_others(|| News::Playback {
            issue: self.playback_issue.clone(),
        });
    }

    /// Tells the other replicas who is online here, and the seq this replica has.
    fn tell_presence(&self) {
        self.tell_others(|| News::Presence {
            users: self.local_online.clone(),
            seq: self.state.seq,
        });
    }

    /// Brings `users`' counts over all processes up to date, announcing who came online or
    /// went offline.
    fn recount<'a>(&mut self, users: impl IntoIterator<Item = &'a String>) {
        let users: Vec<String> = users.into_iter().cloned().collect();
        for user in users {
            let total = self.local_online.get(&user).copied().unwrap_or(0)
                + self
                    .remote_online
                    .values()
                    .map(|r| r.users.get(&user).copied().unwrap_or(0))
                    .sum::<usize>();
            let before = if total == 0 {
                self.online.remove(&user)
            } else {
                self.online.insert(user.clone(), total)
            }
            .unwrap_or(0);
            if (before > 0) != (total > 0) {
                self.announce_presence(&user);
            }
        }
    }

    /// Another process's sockets, as it just said (an empty map: none left there).
    fn remote_presence(&mut self, from: Arc<str>, users: HashMap<String, usize>) {
        let mut changed: Vec<String> = users.keys().cloned().collect();
        let previous = if users.is_empty() {
            self.remote_online.remove(&from)
        } else {
            self.remote_online.insert(
                from,
                RemotePresence {
                    users,
                    seen: Instant::now(),
                },
            )
        };
        if let Some(previous) = previous {
            changed.extend(previous.users.into_keys());
        }
        self.recount(&changed);
    }

    /// Processes not heard from within [`PRESENCE_TTL`] are gone, and their sockets with them.
    fn expire_remote_presence(&mut self) {
        let expired: Vec<Arc<str>> = self
            .remote_online
            .iter()
            .filter(|(_, r)| r.seen.elapsed() > PRESENCE_TTL)
            .map(|(node, _)| Arc::clone(node))
            .collect();
        for node in expired {
            tracing::info!(group = %self.state.id, %node, "a process serving this room went silent; its members are offline");
            self.remote_presence(node, HashMap::new());
        }
    }

    fn lease_name(&self) -> String {
        format!("room:{}", self.state.id)
    }

    /// Takes the room's lease, or keeps it; whoever holds it runs the room's duties.
    fn hold_lease(&mut self, ctx: &mut Context<Self>) {
        let holding = self.deps.fanout.hold(&self.lease_name(), LEASE_TTL);
        ctx.spawn(holding.into_actor(self).map(|held, actor, ctx| match held {
            Ok(held) => actor.set_duties(held, ctx),
            // Nobody can be asked: keep doing what this replica did. The lease only spares
            // work (the store orders the log), so two holders for a while do no harm.
            Err(err) => tracing::debug!(group = %actor.state.id, error = %err, "the room's lease could not be renewed"),
        }));
    }

    /// Starts or stops the room's duties here.
    fn set_duties(&mut self, held: bool, ctx: &mut Context<Self>) {
        if held == self.duties {
            return;
        }
        self.duties = held;
        tracing::debug!(group = %self.state.id, held, "the room's duties");
        if held {
            self.schedule_track_end(ctx);
            self.sync_device(ctx);
            if self.recommendations.is_none() {
                self.schedule_refresh(ctx);
            }
            self.request_auto_fill(ctx);
        } else {
            if let Some(handle) = self.track_end.take() {
                ctx.cancel_future(handle);
            }
            self.connect = None;
        }
    }

    /// Reads the events this replica is missing from the store (another process stored them
    /// and the news did not arrive, or not yet). Nothing else is handled meanwhile.
    fn resync(&mut self, ctx: &mut Context<Self>) {
        if self.resyncing {
            return;
        }
        self.resyncing = true;
        let (db, group, after) = (self.deps.db.clone(), self.state.id.clone(), self.state.seq);
        let read = async move { groups::events_after(&db, &group, after, RESYNC_PAGE).await };
        ctx.wait(read.into_actor(self).map(|read, actor, ctx| {
            actor.resyncing = false;
            match read {
                Ok(rows) => {
                    let more = rows.len() as i64 == RESYNC_PAGE;
                    actor.apply_events(stored_events(rows), Source::Elsewhere, ctx);
                    if more {
                        actor.resync(ctx);
                    }
                }
                // The next news or heartbeat tries again.
                Err(err) => tracing::warn!(group = %actor.state.id, error = %err, "reading missed group events"),
            }
        }));
    }

    fn announce_presence(&self, user: &str) {
        let connections = self.online.get(user).copied().unwrap_or(0);
        self.broadcast(
            &ServerFrame::Presence {
                user_id: user,
                online: connections > 0,
                connections,
            }
            .encode(),
        );
    }

    /// Sends a joining socket what it is missing: the events after `last_seq` when they are
    /// all still in memory and fit half the socket's outbox, else a snapshot. The replay goes
    /// as one batch, which the socket streams out frame by frame.
    fn catch_up(&self, socket: &SocketLink, last_seq: Option<i64>) {
        let oldest_kept = self
            .recent
            .front()
            .map_or(self.state.seq + 1, |(seq, _)| *seq);
        let replay = match last_seq {
            Some(after) if after <= self.state.seq && after + 1 >= oldest_kept => {
                let frames: Vec<ByteString> = self
                    .recent
                    .iter()
                    .filter(|(seq, _)| *seq > after)
                    .map(|(_, frame)| frame.clone())
                    .collect();
                let bytes: usize = frames.iter().map(|f| f.len()).sum();
                (bytes <= self.deps.settings.outbox_bytes / 2).then_some(frames)
            }
            _ => None,
        };
        match replay {
            Some(frames) if frames.is_empty() => {}
            Some(frames) => socket.frames(frames),
            None => {
                let view = self.view();
                socket.frame(
                    ServerFrame::Snapshot {
                        group: &view,
                        seq: view.seq,
                    }
                    .encode(),
                );
            }
        }
    }

    fn detach(&mut self, conn: u64, ctx: &mut Context<Self>) {
        let Some(socket) = self.sockets.remove(&conn) else {
            return;
        };
        if let Some(count) = self.local_online.get_mut(&socket.user) {
            *count -= 1;
            if *count == 0 {
                self.local_online.remove(&socket.user);
            }
        }
        self.recount([&socket.user]);
        self.tell_presence();
        if self.sockets.is_empty() {
            self.schedule_idle_stop(ctx);
        }
    }

    fn schedule_idle_stop(&mut self, ctx: &mut Context<Self>) {
        self.idle_generation += 1;
        let generation = self.idle_generation;
        let timeout = Duration::from_secs(self.deps.settings.group_idle_timeout_s);
        ctx.run_later(timeout, move |actor, ctx| {
            if actor.idle_generation == generation
                && actor.sockets.is_empty()
                && !actor.refreshing
                && actor.waiters.is_empty()
            {
                ctx.stop();
            }
        });
    }

    /// Folds stored events in (the next in seq order; older ones are skipped, and a gap is
    /// read from the store), sends them to this process's sockets and starts what follows
    /// from them: for events stored here, the members' user actors fold the feedback stored
    /// with them; then (once that is folded, so it counts) the recommendations.
    fn apply_events(&mut self, events: Vec<Event>, source: Source, ctx: &mut Context<Self>) {
        let mut affects_recommendations = false;
        let (feedback, here) = match source {
            Source::Here(feedback) => (feedback, true),
            Source::Elsewhere => (Vec::new(), false),
        };
        // Feedback another process stored: its taste news will ask for the refresh, once
        // the taste counts (refreshing now would rank with the member's old taste).
        let mut feedback_elsewhere = false;
        let mut gap = false;
        for event in events {
            if event.seq <= self.state.seq {
                continue;
            }
            if event.seq != self.state.seq + 1 {
                gap = true;
                break;
            }
            self.state.apply(&event);
            let frame = event_frame(&event);
            self.broadcast(&frame);
            self.remember(event.seq, frame);
            self.deps.metrics.group_events.inc();
            affects_recommendations |= event.body.affects_recommendations();
            self.reward_recommendations(&event);
            self.follow_up(&event, ctx);
            if !here {
                feedback_elsewhere |=
                    implied_feedback(&event.body, |entry_id| self.entry_track(entry_id)).is_some();
            }
        }
        if gap {
            self.resync(ctx);
        }
        if self.duties && self.state.seq - self.snapshot_seq >= SNAPSHOT_EVERY {
            self.save_snapshot();
        }
        self.schedule_track_end(ctx);
        self.sync_device(ctx);
        self.request_auto_fill(ctx);
        if affects_recommendations {
            self.list_wanted = self.state.seq;
            self.watch_list(ctx);
        }
        if feedback.is_empty() {
            if affects_recommendations && !feedback_elsewhere {
                self.schedule_refresh(ctx);
            }
            return;
        }
        let users = self.deps.recommender.users.clone();
        let folded = async move {
            join_all(
                feedback
                    .iter()
                    .map(|(user, message)| users.send(user, message.clone())),
            )
            .await
        };
        // Folded feedback comes back as `TasteChanged` (the actor is in the member index),
        // which refreshes; only a member whose user actor could not be reached needs the
        // refresh asked for here (the feedback is stored: the actor's next load counts it).
        ctx.spawn(folded.into_actor(self).map(|results, actor, ctx| {
            let mut failed = false;
            for result in results {
                if let Err(err) = result {
                    tracing::warn!(error = %err, "folding a group member's feedback");
                    failed = true;
                }
            }
            if failed {
                actor.schedule_refresh(ctx);
            }
        }));
    }

    /// Listen-along: when the track playing will end, tell the actor (as a server operation, so
    /// it is ordered with members' operations). Re-armed after every change.
    fn schedule_track_end(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.track_end.take() {
            ctx.cancel_future(handle);
        }
        if !self.duties {
            return;
        }
        let Some(now) = &self.state.now_playing else {
            return;
        };
        let Some(ends_at) = now.ends_at() else {
            return;
        };
        let entry_id = now.entry.entry_id.clone();
        let wait = Duration::from_millis((ends_at - now_ms()).max(0) as u64);
        self.track_end = Some(ctx.run_later(wait, move |actor, ctx| {
            actor.track_end = None;
            ctx.notify(ServerOp::TrackEnded { entry_id });
        }));
    }

    /// Auto-fill when the queue is short and there are recommendations to take from.
    fn request_auto_fill(&self, ctx: &mut Context<Self>) {
        let settings = &self.state.settings;
        if self.duties
            && settings.auto_fill
            && self.state.playlist.len() < settings.auto_fill_min as usize
            && self.recommendations.is_some()
        {
            ctx.notify(ServerOp::AutoFill);
        }
    }

    /// The current recommendations that auto-fill adds now, each for its best-served member.
    fn auto_fill_events(&self) -> Vec<EventBody> {
        let Some(list) = self.recommendations.as_ref().and_then(RoomList::list) else {
            return Vec::new();
        };
        let picks: Vec<(TrackSummary, Option<String>)> = list
            .items
            .iter()
            .map(|item| {
                let for_member = best_served(&item.fit).map(|f| f.user_id.clone());
                (TrackSummary::from(&*item.track), for_member)
            })
            .collect();
        auto_fill(&self.state, &picks, generate_entry_id)
    }

    /// A member added a track from the current list: that list earned its reward (the bandit
    /// ignores lists it did not pick, and rewards each list once).
    fn reward_recommendations(&self, event: &Event) {
        let EventBody::TrackAdded {
            track, added_by, ..
        } = &event.body
        else {
            return;
        };
        // Auto-fill took it: nobody chose this list. Or the list is another process's: its
        // bandit showed it, so it rewards it.
        if added_by == CHORUS || !self.duties {
            return;
        }
        if self.state.settings.aggregation.fixed().is_some() {
            return;
        }
        if let Some(list) = self.recommendations.as_ref().and_then(RoomList::list) {
            if list
                .items
                .iter()
                .any(|item| item.track.id.as_str() == track.id)
            {
                self.deps.bandit.do_send(Rewarded {
                    request_id: list.request_id.clone(),
                });
            }
        }
    }

    /// What an event starts beside its frame: keeping the member index current, and taking a
    /// leaving member's sockets out.
    fn follow_up(&mut self, event: &Event, ctx: &mut Context<Self>) {
        match &event.body {
            EventBody::MemberJoined { user_id, .. } => {
                self.deps.live.index_member(user_id, &ctx.address());
            }
            EventBody::MemberLeft { user_id, reason } => {
                let user_id = user_id.clone();
                self.deps.live.unindex_member(&user_id, &ctx.address());
                self.remove_member_sockets(&user_id, *reason, ctx);
            }
            _ => {}
        }
    }

    /// The track of a playlist entry (upcoming, playing or played).
    fn entry_track(&self, entry_id: &str) -> Option<String> {
        self.state
            .find_entry(entry_id)
            .map(|entry| entry.track.id.clone())
    }

    /// The members' feedback an operation's events imply, as rows to store with them. Entries
    /// are looked up in the state the operation was decided on, then among the operation's own
    /// additions.
    fn implied_feedback(&self, bodies: &[EventBody]) -> Vec<NewInteractionRow> {
        let added_here = |entry_id: &str| {
            bodies.iter().find_map(|body| match body {
                EventBody::TrackAdded {
                    entry_id: added,
                    track,
                    ..
                } if added == entry_id => Some(track.id.clone()),
                _ => None,
            })
        };
        let entry_track =
            |entry_id: &str| self.entry_track(entry_id).or_else(|| added_here(entry_id));
        bodies
            .iter()
            .filter_map(|body| {
                let (user, track_id, kind) = implied_feedback(body, entry_track)?;
                let user = UserId::parse(&user).ok()?;
                let item = self.deps.recommender.catalog.index_of(&track_id)?;
                Some(NewInteractionRow {
                    id: uuid::Uuid::now_v7().to_string(),
                    user,
                    track_id,
                    item,
                    kind,
                })
            })
            .collect()
    }

    fn remove_member_sockets(&mut self, user: &str, reason: LeaveReason, ctx: &mut Context<Self>) {
        let leaving: Vec<u64> = self
            .sockets
            .iter()
            .filter(|(_, s)| s.user == user)
            .map(|(&conn, _)| conn)
            .collect();
        for conn in leaving {
            if let Some(socket) = self.sockets.get(&conn) {
                socket.link.left(self.state.id.clone(), reason);
            }
            self.detach(conn, ctx);
        }
    }

    /// After a change the list should reflect: if the list still does not reflect it after
    /// `UPDATING_NOTICE` (a busy machine, a slow ranking), the members are told a new one is
    /// coming rather than left looking at the old one. Every replica watches its own sockets'
    /// list, whoever ranks.
    fn watch_list(&mut self, ctx: &mut Context<Self>) {
        if self.list_watch.is_some() || self.told_updating || self.sockets.is_empty() {
            return;
        }
        let changed = self.list_wanted;
        self.list_watch = Some(ctx.run_later(UPDATING_NOTICE, move |actor, ctx| {
            actor.list_watch = None;
            let shown = actor
                .recommendations
                .as_ref()
                .and_then(|list| list.list())
                .map_or(i64::MIN, |list| list.seq);
            if actor.told_updating {
                return;
            }
            if shown >= changed {
                // Caught up with that change; one since gets its own second.
                if actor.list_wanted > shown {
                    actor.watch_list(ctx);
                }
                return;
            }
            actor.told_updating = true;
            actor.broadcast(
                &ServerFrame::RecommendationsUpdating {
                    seq: actor.state.seq,
                }
                .encode(),
            );
        }));
    }

    /// At most one recomputation per `recommend_interval_ms`: at once after a quiet spell, else
    /// at the end of the interval (so a burst of changes costs one, never one per change).
    fn schedule_refresh(&mut self, ctx: &mut Context<Self>) {
        // The duty holder refreshes for every replica (it folds the same events).
        if self.refresh_scheduled || !self.duties {
            return;
        }
        let interval = refresh_interval(
            self.deps.settings.recommend_interval_ms,
            self.refresh_backoff,
            self.deps.recommender.inference.busy(),
        );
        let wait = self
            .last_refresh
            .map_or(Duration::ZERO, |at| interval.saturating_sub(at.elapsed()));
        if wait.is_zero() {
            return self.refresh(ctx);
        }
        self.refresh_scheduled = true;
        ctx.run_later(wait, |actor, ctx| {
            actor.refresh_scheduled = false;
            actor.refresh(ctx);
        });
    }

    /// Recomputes the recommendations (one at a time; a change meanwhile runs another after).
    fn refresh(&mut self, ctx: &mut Context<Self>) {
        if self.refreshing {
            self.refresh_again = true;
            return;
        }
        self.refreshing = true;
        self.last_refresh = Some(Instant::now());
        let recommender = self.deps.recommender.clone();
        let catalog = Arc::clone(&recommender.catalog);
        let members: Vec<UserId> = self
            .state
            .members
            .iter()
            .filter_map(|m| UserId::parse(&m.user_id).ok())
            .collect();
        // Never recommend what is queued, playing, or played within the no-repeat window.
        let mut playlist: Vec<u32> = self
            .state
            .taken_tracks()
            .filter_map(|id| catalog.index_of(id))
            .collect();
        playlist.sort_unstable();
        let fixed = self.state.settings.aggregation.fixed();
        let room_size = RoomSize::of_members(members.len());
        let bandit = self.deps.bandit.clone();
        let limit = self.deps.settings.group_recommendations;
        let candidates = self.deps.settings.group_candidates;
        let seq = self.state.seq;
        // The session's fairness: each member's share of the playlist so far, weighted by how
        // long the playlist is next to one list (a short playlist says little yet).
        let served = if self.state.settings.session_fairness {
            let weight = (self.state.playlist.len() as f64 / limit.max(1) as f64).min(1.0);
            let mut shares = self.state.session_shares();
            shares.values_mut().for_each(|s| *s *= weight);
            shares
        } else {
            Default::default()
        };
        let kept = self.kept_pool.clone();
        let started = Instant::now();
        let work = async move {
            // `auto`: the group-aggregation bandit picks (the default strategy if it is gone).
            let strategy = match fixed {
                Some(strategy) => strategy,
                None => bandit
                    .send(ChooseGroup(room_size))
                    .await
                    .unwrap_or(Strategy::Fair),
            };
            recommender
                .for_group(GroupRequest {
                    members: &members,
                    playlist,
                    strategy,
                    limit,
                    candidates,
                    seq,
                    served,
                    kept,
                })
                .await
        };
        ctx.spawn(work.into_actor(self).map(move |result, actor, ctx| {
            actor.refreshing = false;
            // Only the duty holder's lists are pulls (a replica answering a REST caller before
            // the holder's list came is not shown to the room, so it earns no reward).
            if let (None, Ok(GroupRefresh { list, .. }), true) = (fixed, &result, actor.duties) {
                // A popular start (nobody has a taste) is no pull of any arm.
                if let Some(strategy) = Strategy::parse(&list.strategy) {
                    actor.deps.bandit.do_send(Shown {
                        request_id: list.request_id.clone(),
                        pull: Pull::Group(room_size, strategy),
                    });
                }
            }
            let outcome = if result.is_ok() { "ok" } else { "error" };
            actor
                .deps
                .metrics
                .group_recommendation_duration
                .with_label_values(&[outcome])
                .observe(started.elapsed().as_secs_f64());
            match result {
                Ok(refresh) => {
                    actor.refresh_backoff = actor.refresh_backoff.saturating_sub(1);
                    if let Some(pool) = refresh.pool {
                        let label = pool.label();
                        actor.deps.metrics.group_pools.with_label_values(&[label]).inc();
                    }
                    actor
                        .deps
                        .metrics
                        .group_own_scans
                        .inc_by(refresh.own_scans as u64);
                    actor.kept_pool = refresh.kept;
                    actor.set_recommendations(RoomList::computed(Arc::new(refresh.list)));
                    if actor.duties {
                        actor.tell_list();
                    }
                    actor.request_auto_fill(ctx);
                }
                Err(err) => {
                    if err.code == ErrorCode::Overloaded {
                        // Transient: try again later rather than leaving the room on its old
                        // list until its next change, and refresh this room less often while
                        // inference is this busy. Expected under load, so not a warning (the
                        // duration metric counts the errors).
                        tracing::debug!(group = %actor.state.id, "group recommendations refused: inference queue full");
                        actor.refresh_backoff = (actor.refresh_backoff + 1).min(MAX_REFRESH_BACKOFF);
                        actor.refresh_again = true;
                    } else {
                        tracing::warn!(group = %actor.state.id, error = %err, "group recommendations failed");
                    }
                    for waiter in actor.waiters.drain(..) {
                        let _ = waiter.send(Err(err.message.clone()));
                    }
                }
            }
            if std::mem::take(&mut actor.refresh_again) {
                actor.schedule_refresh(ctx);
            }
        }));
    }

    /// The room's list now: to every socket here and to whoever waits for it.
    fn set_recommendations(&mut self, list: RoomList) {
        self.told_updating = false;
        self.broadcast(&list.frame);
        if !self.waiters.is_empty() {
            let answer = list
                .list()
                .cloned()
                .ok_or_else(|| "the room's list could not be read".to_string());
            for waiter in self.waiters.drain(..) {
                let _ = waiter.send(answer.clone());
            }
        }
        self.recommendations = Some(list);
    }

    fn reply(origin: &Origin, frame: ByteString) {
        if let Origin::Socket { socket } = origin {
            socket.frame(frame);
        }
    }
}

/// The member predicted to like an item most (the first of equals).
fn best_served(fit: &[crate::recommend::MemberFit]) -> Option<&crate::recommend::MemberFit> {
    fit.iter()
        .fold(None::<&crate::recommend::MemberFit>, |best, f| match best {
            Some(b) if b.probability >= f.probability => Some(b),
            _ => Some(f),
        })
}

/// A member's feedback an event implies: `(user id, track id, kind)` for an add, a like or
/// dislike vote and a skip vote; `entry_track` finds an entry's track.
fn implied_feedback(
    body: &EventBody,
    entry_track: impl Fn(&str) -> Option<String>,
) -> Option<(String, String, FeedbackKind)> {
    match body {
        EventBody::TrackAdded {
            track, added_by, ..
        } => Some((added_by.clone(), track.id.clone(), FeedbackKind::Add)),
        EventBody::VoteCast {
            user_id,
            entry_id,
            value,
        } => {
            let kind = match value {
                1 => FeedbackKind::Like,
                -1 => FeedbackKind::Dislike,
                _ => return None,
            };
            Some((user_id.clone(), entry_track(entry_id)?, kind))
        }
        EventBody::SkipVoteCast {
            user_id, entry_id, ..
        } => Some((user_id.clone(), entry_track(entry_id)?, FeedbackKind::Skip)),
        _ => None,
    }
}

/// A member's feedback to store with an operation's events.
struct NewInteractionRow {
    id: String,
    user: UserId,
    track_id: String,
    /// The track's catalog row.
    item: u32,
    kind: FeedbackKind,
}

impl NewInteractionRow {
    /// The member's user actor folds the row once it is stored.
    fn fold(&self) -> (UserId, FoldStored) {
        let fold = FoldStored {
            id: self.id.clone(),
            item: self.item,
            kind: self.kind,
        };
        (self.user.clone(), fold)
    }
}

fn event_frame(event: &Event) -> ByteString {
    ServerFrame::Event {
        seq: event.seq,
        event,
    }
    .encode()
}

fn ack(client_msg_id: Option<&str>, seq: i64) -> ByteString {
    ServerFrame::Ack {
        client_msg_id,
        seq: Some(seq),
    }
    .encode()
}

impl Actor for GroupActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.deps.metrics.live_groups.inc();
        // Loaded by folding a long log: store a snapshot so the next load does not.
        if self.state.seq - self.snapshot_seq >= SNAPSHOT_EVERY {
            self.save_snapshot();
        }
        for member in &self.state.members {
            self.deps.live.index_member(&member.user_id, &ctx.address());
        }
        if self.deps.fanout.shared() {
            let replica = ctx.address();
            self.subscription = Some(self.deps.fanout.subscribe(
                Topic::Room(&self.state.id),
                Arc::new(move |delivery| replica.do_send(FromFanout(delivery))),
            ));
            self.hold_lease(ctx);
            ctx.run_interval(HEARTBEAT, |actor, ctx| {
                if !actor.local_online.is_empty() {
                    actor.tell_presence();
                }
                actor.expire_remote_presence();
                actor.hold_lease(ctx);
            });
        }
        // Listen-along goes on from where the clock is (a track that ended while the room was
        // unloaded ends now, and the next one starts); a Spotify device picks up from there.
        self.schedule_track_end(ctx);
        self.sync_device(ctx);
        // Loaded for a REST call or a socket that never attaches: unload when idle.
        self.schedule_idle_stop(ctx);
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.deps.metrics.live_groups.dec();
        if self.state.seq - self.snapshot_seq >= SNAPSHOT_ON_UNLOAD {
            self.save_snapshot();
        }
        let addr = ctx.address();
        for member in &self.state.members {
            self.deps.live.unindex_member(&member.user_id, &addr);
        }
        self.deps.live.forget(&self.state.id, &addr);
        if let Some(id) = self.subscription.take() {
            self.deps
                .fanout
                .unsubscribe(Topic::Room(&self.state.id), id);
            self.local_online.clear();
            self.tell_presence();
            if self.duties {
                self.deps.fanout.release(&self.lease_name());
            }
        }
    }
}

impl Handler<Attach> for GroupActor {
    type Result = Result<(), ApiError>;

    fn handle(&mut self, msg: Attach, ctx: &mut Self::Context) -> Self::Result {
        let user = msg.user.as_str().to_string();
        if !self.state.is_member(&user) {
            return Err(ApiError::new(
                ErrorCode::NotAMember,
                "you are not a member of this group; join it with its code first",
            ));
        }
        self.idle_generation += 1;
        self.catch_up(&msg.socket, msg.last_seq);
        if let Some(list) = &self.recommendations {
            msg.socket.frame(list.frame.clone());
        }
        msg.socket
            .frame(ack(msg.client_msg_id.as_deref(), self.state.seq));
        *self.local_online.entry(user.clone()).or_insert(0) += 1;
        self.sockets.insert(
            msg.conn,
            Socket {
                user: user.clone(),
                link: msg.socket,
            },
        );
        self.recount([&user]);
        self.tell_presence();
        // A room nobody has changed since it was loaded has no list yet: make one for the
        // newcomer rather than wait for the first change.
        if self.recommendations.is_none() && !self.refreshing {
            self.schedule_refresh(ctx);
        }
        Ok(())
    }
}

impl Handler<Detach> for GroupActor {
    type Result = ();

    fn handle(&mut self, msg: Detach, ctx: &mut Self::Context) {
        self.detach(msg.conn, ctx);
    }
}

impl Handler<Execute> for GroupActor {
    type Result = AtomicResponse<Self, Result<i64, ApiError>>;

    fn handle(&mut self, msg: Execute, _ctx: &mut Self::Context) -> Self::Result {
        let Execute {
            actor,
            command,
            client_msg_id,
            origin,
        } = msg;
        // A retry of an operation already stored is acknowledged again, not limited.
        if let Some(id) = &client_msg_id {
            if let Some(seq) = self.state.applied_op(actor.as_str(), id) {
                Self::reply(&origin, ack(Some(id), seq));
                return AtomicResponse::new(Box::pin(actix::fut::ready(Ok(seq))));
            }
        }
        if let Err(err) = self.admit_op(actor.as_str()) {
            Self::reply(&origin, ServerFrame::error(&err, client_msg_id.as_deref()));
            return AtomicResponse::new(Box::pin(actix::fut::ready(Err(err))));
        }
        let op = Op::Member {
            actor,
            command,
            client_msg_id,
        };
        AtomicResponse::new(self.run(op, origin, 1))
    }
}

impl Handler<ServerOp> for GroupActor {
    type Result = AtomicResponse<Self, Result<i64, ApiError>>;

    fn handle(&mut self, op: ServerOp, _ctx: &mut Self::Context) -> Self::Result {
        // A duty that moved to another process meanwhile is that process's to do.
        if !self.duties {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Ok(self.state.seq))));
        }
        AtomicResponse::new(self.run(Op::Server(op), Origin::Rest, 1))
    }
}

/// What an operation does to the state as it is now.
enum Decided {
    /// Nothing (again): the seq to acknowledge.
    Nothing(i64),
    Events(Vec<EventBody>),
}

impl GroupActor {
    fn decide_op(&self, op: &Op) -> Result<Decided, ApiError> {
        let bodies = match op {
            Op::Member {
                actor,
                command,
                client_msg_id,
            } => {
                // Decided again after another process appended: that may have been this very
                // operation, sent before through another process.
                if let Some(id) = client_msg_id {
                    if let Some(seq) = self.state.applied_op(actor.as_str(), id) {
                        return Ok(Decided::Nothing(seq));
                    }
                }
                let rules = Rules {
                    actor: actor.as_str(),
                    online_members: self.online_members(),
                    connections: &self.online,
                    new_entry_id: generate_entry_id(),
                    recommended_for: self.recommended_for(command),
                    now: now_ms(),
                };
                decide(&self.state, command, &rules)?
            }
            Op::Server(ServerOp::TrackEnded { entry_id }) => track_ended(&self.state, entry_id),
            Op::Server(ServerOp::AutoFill) => self.auto_fill_events(),
            Op::Server(ServerOp::FollowDevice(report)) => match report {
                DeviceReport::MovedOn { entry_id } => device_moved_on(&self.state, entry_id),
                DeviceReport::Position {
                    entry_id,
                    playing,
                    position_ms,
                } => device_position(&self.state, entry_id, *playing, *position_ms),
                DeviceReport::Issue(_) => Vec::new(),
            },
        };
        Ok(if bodies.is_empty() {
            Decided::Nothing(self.state.seq)
        } else {
            Decided::Events(bodies)
        })
    }

    /// Decides the operation on the state, appends its events after this replica's seq, and
    /// publishes them; when another process appended first, reads what it stored and decides
    /// again. The caller gets the last seq (a socket its `ack`, or an `error` when nothing
    /// could be stored).
    fn run(
        &mut self,
        op: Op,
        origin: Origin,
        attempt: u32,
    ) -> ResponseActFuture<Self, Result<i64, ApiError>> {
        let (actor, client_msg_id) = match &op {
            Op::Member {
                actor,
                client_msg_id,
                ..
            } => (Some(actor.clone()), client_msg_id.clone()),
            Op::Server(_) => (None, None),
        };
        let failing_id = client_msg_id.clone();
        let fail = move |err: ApiError, origin: &Origin| {
            Self::reply(origin, ServerFrame::error(&err, failing_id.as_deref()));
            Box::pin(actix::fut::ready(Err(err))) as ResponseActFuture<Self, _>
        };
        let bodies = match self.decide_op(&op) {
            Ok(Decided::Events(bodies)) => bodies,
            Ok(Decided::Nothing(seq)) => {
                Self::reply(&origin, ack(client_msg_id.as_deref(), seq));
                return Box::pin(actix::fut::ready(Ok(seq)));
            }
            Err(err) => return fail(err, &origin),
        };
        let db = self.deps.db.clone();
        let group_id = self.state.id.clone();
        let after = self.state.seq;
        let columns: Vec<(String, String)> = bodies.iter().map(EventBody::to_columns).collect();
        let rows = self.implied_feedback(&bodies);
        let folds: Vec<(UserId, FoldStored)> = rows.iter().map(NewInteractionRow::fold).collect();
        let (store_actor, store_client_id) = (actor.clone(), client_msg_id.clone());
        let append_duration = self.deps.metrics.group_append_duration.clone();
        let append = async move {
            let started = Instant::now();
            let appended = {
                let refs: Vec<(&str, &str)> = columns
                    .iter()
                    .map(|(k, p)| (k.as_str(), p.as_str()))
                    .collect();
                let created_at = now_ms();
                let interactions: Vec<NewInteraction<'_>> = rows
                    .iter()
                    .map(|row| NewInteraction {
                        id: &row.id,
                        user_id: &row.user,
                        track_id: &row.track_id,
                        kind: row.kind.as_str(),
                        weight: f64::from(row.kind.weight()),
                        request_id: None,
                        group_id: Some(&group_id),
                        created_at,
                    })
                    .collect();
                groups::append_events(
                    &db,
                    &group_id,
                    after,
                    store_actor.as_ref(),
                    store_client_id.as_deref(),
                    &refs,
                    &interactions,
                )
                .await?
            };
            append_duration.observe(started.elapsed().as_secs_f64());
            // Another process appended first: read what it stored, to decide again on it.
            let missed = match appended {
                groups::Appended::Behind { .. } => {
                    groups::events_after(&db, &group_id, after, RESYNC_PAGE).await?
                }
                _ => Vec::new(),
            };
            // Stored: the columns as written are the other replicas' news.
            Ok::<_, sqlx::Error>((appended, missed, columns))
        };
        Box::pin(append.into_actor(self).then(move |result, group, ctx| {
            match result {
                Ok((groups::Appended::Stored { first, at }, _, columns)) => {
                    group.tell_others(|| {
                        News::stored(
                            first,
                            at,
                            actor.as_ref().map(UserId::as_str),
                            client_msg_id.as_deref(),
                            columns,
                        )
                    });
                    let events = bodies
                        .into_iter()
                        .enumerate()
                        .map(|(i, body)| Event {
                            seq: first + i as i64,
                            body,
                            actor: actor.as_ref().map(|a| a.as_str().to_string()),
                            client_msg_id: client_msg_id.clone(),
                            ts: at,
                        })
                        .collect();
                    group.apply_events(events, Source::Here(folds), ctx);
                    let seq = group.state.seq;
                    Self::reply(&origin, ack(client_msg_id.as_deref(), seq));
                    Box::pin(actix::fut::ready(Ok(seq))) as ResponseActFuture<Self, _>
                }
                Ok((groups::Appended::Behind { .. }, missed, _)) if attempt < MAX_ATTEMPTS => {
                    group.deps.metrics.group_append_retries.inc();
                    group.apply_events(stored_events(missed), Source::Elsewhere, ctx);
                    // Replicas racing in lockstep would keep colliding: after a second lost
                    // race, wait a random moment (up to 1, 2, 4 … 32 ms) before deciding again.
                    let pause = if attempt >= 2 {
                        let cap = 1u64 << (attempt - 2).min(5);
                        Duration::from_micros(rand::random_range(0..cap * 1000))
                    } else {
                        Duration::ZERO
                    };
                    Box::pin(
                        actix::clock::sleep(pause)
                            .into_actor(group)
                            .then(move |_, group, _| group.run(op, origin, attempt + 1)),
                    ) as ResponseActFuture<Self, _>
                }
                Ok((groups::Appended::Behind { .. }, _, _)) => fail(
                    ApiError::new(
                        ErrorCode::Overloaded,
                        "the room is changing too fast right now; retry",
                    )
                    .retry_after(1),
                    &origin,
                ),
                Ok((groups::Appended::NoGroup, _, _)) => fail(
                    ApiError::new(ErrorCode::GroupNotFound, "the group was deleted"),
                    &origin,
                ),
                Err(err) => {
                    tracing::error!(group = %group.state.id, error = %err, "appending group events");
                    fail(
                        ApiError::new(
                            ErrorCode::DependencyUnavailable,
                            "the change could not be stored; nothing was changed, retry",
                        )
                        .retry_after(1),
                        &origin,
                    )
                }
            }
        }))
    }
}

/// Rows read back from the store as events (rows that do not parse are logged and skipped,
/// which the fold tolerates).
pub fn stored_events(rows: Vec<groups::StoredEvent>) -> Vec<Event> {
    rows.into_iter()
        .filter_map(|row| match EventBody::from_columns(&row.kind, &row.payload) {
            Ok(body) => Some(Event {
                seq: row.seq,
                body,
                actor: row.actor_user_id,
                client_msg_id: row.client_msg_id,
                ts: row.created_at,
            }),
            Err(err) => {
                tracing::error!(seq = row.seq, kind = %row.kind, error = %err, "unreadable group event");
                None
            }
        })
        .collect()
}

impl Handler<FromFanout> for GroupActor {
    type Result = ();

    fn handle(&mut self, FromFanout(delivery): FromFanout, ctx: &mut Self::Context) {
        let (from, body) = match delivery {
            // Whatever was said before the subscription (or while the link was down) may be
            // missing: read the log from the store, and say hello to be told the rest.
            Delivery::Subscribed | Delivery::Reconnected => {
                self.resync(ctx);
                self.tell_others(|| News::Hello);
                self.tell_presence();
                // Taste news may have been lost too.
                if matches!(delivery, Delivery::Reconnected) {
                    self.schedule_refresh(ctx);
                }
                return;
            }
            Delivery::Message { from, body } => (from, body),
        };
        let news = match serde_json::from_str::<News>(&body) {
            Ok(news) => news,
            Err(err) => {
                return tracing::warn!(group = %self.state.id, %from, error = %err, "unreadable room news")
            }
        };
        match news {
            News::Events { events } => {
                self.apply_events(stored_events(events), Source::Elsewhere, ctx)
            }
            News::Presence { users, seq } => {
                self.remote_presence(from, users);
                if seq > self.state.seq {
                    self.resync(ctx);
                }
            }
            News::Hello => {
                if !self.local_online.is_empty() {
                    self.tell_presence();
                }
                if self.duties {
                    match &self.recommendations {
                        Some(_) => self.tell_list(),
                        None => self.schedule_refresh(ctx),
                    }
                    if self.playback_issue.is_some() {
                        self.tell_playback();
                    }
                }
            }
            // The holder's list (a replica that holds the lease too, for a moment, keeps its own).
            News::Recommendations { frame, list } if !self.duties => {
                self.set_recommendations(RoomList::received(ByteString::from(frame), list))
            }
            News::Playback { issue } if !self.duties => self.set_playback_issue(issue),
            News::Recommendations { .. } | News::Playback { .. } => {}
        }
    }
}

impl Handler<DeviceReport> for GroupActor {
    type Result = ();

    fn handle(&mut self, report: DeviceReport, ctx: &mut Self::Context) {
        match report {
            DeviceReport::Issue(issue) => self.set_playback_issue(issue),
            report => ctx.notify(ServerOp::FollowDevice(report)),
        }
    }
}

impl Handler<GetView> for GroupActor {
    type Result = MessageResult<GetView>;

    fn handle(&mut self, _: GetView, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.view())
    }
}

impl Handler<IsMember> for GroupActor {
    type Result = bool;

    fn handle(&mut self, msg: IsMember, _ctx: &mut Self::Context) -> bool {
        self.state.is_member(msg.0.as_str())
    }
}

impl Handler<GetRecommendations> for GroupActor {
    type Result = ResponseFuture<Result<Arc<GroupRecommendations>, ApiError>>;

    fn handle(&mut self, _: GetRecommendations, ctx: &mut Self::Context) -> Self::Result {
        if let Some(list) = self.recommendations.as_ref().and_then(RoomList::list) {
            let list = Arc::clone(list);
            return Box::pin(async move { Ok(list) });
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        self.refresh(ctx);
        Box::pin(async move {
            match rx.await {
                Ok(Ok(recommendations)) => Ok(recommendations),
                Ok(Err(message)) => Err(ApiError::internal(anyhow::anyhow!(message))),
                Err(_) => Err(ApiError::internal(anyhow::anyhow!(
                    "the group stopped while computing recommendations"
                ))),
            }
        })
    }
}

impl Handler<SendRecommendations> for GroupActor {
    type Result = ();

    fn handle(&mut self, msg: SendRecommendations, ctx: &mut Self::Context) {
        match &self.recommendations {
            Some(list) => msg.socket.frame(list.frame.clone()),
            // The socket is attached, so it receives the broadcast when it is ready.
            None => self.refresh(ctx),
        }
    }
}

impl Handler<TasteChanged> for GroupActor {
    type Result = ();

    fn handle(&mut self, _: TasteChanged, ctx: &mut Self::Context) {
        self.schedule_refresh(ctx);
    }
}

/// A group actor that stopped while a request waited on it: an internal error, never the
/// caller's.
pub fn mailbox(err: MailboxError) -> ApiError {
    ApiError::internal(anyhow::anyhow!("group actor unreachable: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_refresh_at_their_pace_until_the_inference_queue_fills_then_ever_slower() {
        let at = |backoff, busy| refresh_interval(250, backoff, busy);
        assert_eq!(at(0, 0.0), Duration::from_millis(250));
        assert_eq!(at(0, STRETCH_FROM), Duration::from_millis(250));
        assert_eq!(at(2, 0.1), Duration::from_millis(1_000));
        // Halfway from the threshold to full: halfway to the largest stretch.
        let half = STRETCH_FROM + (1.0 - STRETCH_FROM) / 2.0;
        assert_eq!(at(0, half), Duration::from_millis(250).mul_f64(8.5));
        assert_eq!(at(0, 1.0), Duration::from_millis(4_000));
        assert_eq!(at(1, 1.0), Duration::from_millis(8_000));
        // Monotone in the queue's fill.
        let mut last = Duration::ZERO;
        for step in 0..=20 {
            let wait = at(0, f64::from(step) / 20.0);
            assert!(wait >= last);
            last = wait;
        }
    }
}

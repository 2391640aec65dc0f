//! The ConnectionActor: one per WebSocket. It owns the socket's outbox, heartbeat, frame limits
//! and op rate limit, parses client frames and routes them to the group (or the user's taste).
//!
//! Frames go into a bounded outbox that the response body pulls from as the client reads
//! ([`socket_io`]). The outbox is bounded in frames and in bytes (snapshots are large): a client
//! that reads too slowly fills it, and the socket is then closed with
//! [`close::SLOW_CONSUMER`] instead of buffering without bound. A reconnect's replay is one
//! outbox item written frame by frame, so catching up on hundreds of events never trips the
//! frame bound.
//!
//! Every inbound frame (text, binary, ping, pong) takes a token from the socket's op bucket, so
//! no kind of flood is answered one for one.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use actix::prelude::*;
use actix_http::ws::{CloseCode, CloseReason, ProtocolError};
use bytestring::ByteString;
// tokio's clock, so the heartbeat runs in virtual time under `tokio::time::pause`.
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};

use super::{
    actor::Attach,
    commands::Command,
    events::TrackSummary,
    frame_guard,
    ids::GroupId,
    protocol::{close, ClientFrame, ServerFrame, PROTOCOL_VERSION},
    socket_io::{Inbound, Incoming, Outbox, Outgoing, PushError},
    socket_link::{SocketLink, ToSocket},
    Groups, Room,
};
use crate::{
    bandit::actor::{BanditActor, Outcome},
    config::RealtimeSettings,
    domain::UserId,
    error::{ApiError, ErrorCode},
    experiments::attribution::credited_request,
    explain::{
        self,
        actor::{explainer_gone, Explain, ExplainerActor},
    },
    metrics::Metrics,
    recommend::Recommender,
    storage::Db,
    taste::actor::RecordFeedback,
};

/// What every socket works with: built once at startup, cloned for each socket.
#[derive(Clone)]
pub struct ConnectionDeps {
    pub groups: Groups,
    /// Tastes (feedback) and the catalog.
    pub recommender: Recommender,
    pub db: Db,
    pub bandit: Addr<BanditActor>,
    pub explainer: Addr<ExplainerActor>,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<RealtimeSettings>,
    /// Turns true when the server begins shutting down; every socket then closes with 1012.
    pub closing: watch::Receiver<bool>,
}

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Open sockets per user in this process, so one account cannot hold an unbounded number
/// (`realtime.sockets_per_user`). A [`SocketPermit`] holds one place until dropped.
#[derive(Default)]
pub struct SocketCounts {
    open: std::sync::Mutex<std::collections::HashMap<UserId, usize>>,
}

impl SocketCounts {
    /// A place for one more socket of `user`, unless they already hold `max`.
    pub fn acquire(self: &Arc<Self>, user: &UserId, max: usize) -> Option<SocketPermit> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(user.clone()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(SocketPermit {
            counts: Arc::clone(self),
            user: user.clone(),
        })
    }
}

pub struct SocketPermit {
    counts: Arc<SocketCounts>,
    user: UserId,
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

/// Explanations one socket may wait for at once.
const MAX_EXPLANATIONS_IN_FLIGHT: usize = 3;

struct Joined {
    group_id: String,
    room: Room,
}

/// Tokens refill at `rate` per second up to `burst`; each client frame takes one.
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate,
            burst: burst as f64,
            tokens: burst as f64,
            refilled: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub struct Connection {
    id: u64,
    user: UserId,
    deps: ConnectionDeps,
    outbox: Outbox,
    /// This socket's place in the user's socket count, given back when the actor goes.
    _permit: SocketPermit,
    joined: Option<Joined>,
    last_heard: Instant,
    bucket: TokenBucket,
    /// Set after a `rate_limited` error, so a flood gets one error, not one per frame.
    throttled: bool,
    /// Explanations this socket is waiting for.
    explaining: usize,
}

impl Connection {
    /// Starts the actor for an upgraded socket and the task that writes its frames.
    pub fn start(
        user: UserId,
        deps: ConnectionDeps,
        outbox: Outbox,
        incoming: Incoming,
        permit: SocketPermit,
    ) -> Addr<Self> {
        let settings = &deps.settings;
        let bucket = TokenBucket::new(settings.ops_per_second, settings.op_burst);
        Connection::create(move |ctx| {
            ctx.add_stream(incoming);
            Connection {
                id: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
                user,
                deps,
                outbox,
                _permit: permit,
                joined: None,
                last_heard: Instant::now(),
                bucket,
                throttled: false,
                explaining: 0,
            }
        })
    }

    fn send(&mut self, frame: ByteString, ctx: &mut Context<Self>) {
        self.enqueue(Outgoing::Text(frame), ctx);
    }

    fn enqueue(&mut self, item: Outgoing, ctx: &mut Context<Self>) {
        match self.outbox.push(item) {
            Ok(()) => {}
            Err(PushError::Full) => self.too_slow(ctx),
            Err(PushError::Closed) => ctx.stop(),
        }
    }

    fn too_slow(&mut self, ctx: &mut Context<Self>) {
        self.close(
            ctx,
            CloseCode::Other(close::SLOW_CONSUMER),
            "slow_consumer",
            "the client is not reading its frames fast enough",
        );
    }

    /// How a room (or this connection's own tasks) reaches this socket.
    fn link(&self, ctx: &Context<Self>) -> SocketLink {
        SocketLink::new(self.outbox.sender(), ctx.address().recipient())
    }

    fn send_error(&mut self, err: &ApiError, client_msg_id: Option<&str>, ctx: &mut Context<Self>) {
        self.send(ServerFrame::error(err, client_msg_id), ctx);
    }

    /// Sends a close frame (dropping whatever is still queued) and stops.
    fn close(&mut self, ctx: &mut Context<Self>, code: CloseCode, reason: &str, description: &str) {
        let reason_frame = CloseReason {
            code,
            description: Some(description.to_string()),
        };
        if self.outbox.close(reason_frame) {
            self.deps
                .metrics
                .ws_closed
                .with_label_values(&[reason])
                .inc();
        }
        ctx.stop();
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        let settings = &self.deps.settings;
        let timeout = Duration::from_millis(settings.client_timeout_ms);
        let half_interval = Duration::from_millis(settings.heartbeat_interval_ms / 2);
        let quiet = self.last_heard.elapsed();
        if quiet > timeout {
            self.close(
                ctx,
                CloseCode::Other(close::HEARTBEAT_TIMEOUT),
                "heartbeat_timeout",
                "no frame or pong within the client timeout",
            );
        } else if quiet >= half_interval {
            // A client heard from within the last half interval is alive, and the connection
            // is not idle: a ping would only cost a send and a pong (most of a busy room's
            // members skip theirs). A quiet client is pinged every interval, as before.
            self.enqueue(Outgoing::Ping, ctx);
        }
    }

    /// Counts an inbound frame against the op bucket; `false`: drop it (the first dropped frame
    /// of a flood gets one `rate_limited` error).
    fn admit(&mut self, ctx: &mut Context<Self>) -> bool {
        self.deps.metrics.ws_frames_in.inc();
        if self.bucket.take(Instant::now()) {
            self.throttled = false;
            return true;
        }
        if !std::mem::replace(&mut self.throttled, true) {
            let err = ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "more than {} frames per second; frames are dropped until you slow down",
                    self.deps.settings.ops_per_second
                ),
            );
            self.send_error(&err, None, ctx);
        }
        false
    }

    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        match ClientFrame::parse(text) {
            Ok(frame) => self.dispatch(frame, ctx),
            Err(err) => self.send_error(&err, None, ctx),
        }
    }

    fn dispatch(&mut self, frame: ClientFrame, ctx: &mut Context<Self>) {
        let client_msg_id = frame.client_msg_id().map(str::to_string);
        let command = match frame {
            ClientFrame::Ping(_) => {
                let pong = ServerFrame::Pong {
                    client_msg_id: client_msg_id.as_deref(),
                }
                .encode();
                return self.send(pong, ctx);
            }
            ClientFrame::Join(join) => {
                return self.join(join.group_id, join.last_seq, client_msg_id, ctx)
            }
            ClientFrame::Feedback(feedback) => {
                return self.feedback(feedback, client_msg_id, ctx);
            }
            ClientFrame::Explain(explain) => {
                return self.explain(&explain.track_id, client_msg_id, ctx);
            }
            ClientFrame::RequestRecommendations(_) => {
                return match &self.joined {
                    Some(joined) => joined.room.send_recommendations(self.link(ctx)),
                    None => self.send_error(&not_joined(), client_msg_id.as_deref(), ctx),
                };
            }
            ClientFrame::Leave(_) => Ok(Command::Leave),
            ClientFrame::AddTrack(add) => self
                .track(&add.track_id)
                .map(|track| Command::AddTrack { track }),
            ClientFrame::RemoveTrack(op) => Ok(Command::RemoveTrack {
                entry_id: op.entry_id,
            }),
            ClientFrame::MoveTrack(op) => Ok(Command::MoveTrack {
                entry_id: op.entry_id,
                to_index: op.to_index,
            }),
            ClientFrame::Vote(op) => Ok(Command::Vote {
                entry_id: op.entry_id,
                value: op.value,
            }),
            ClientFrame::SkipVote(op) => Ok(Command::SkipVote {
                entry_id: op.entry_id,
            }),
            ClientFrame::Kick(op) => Ok(Command::Kick {
                user_id: op.user_id,
            }),
            ClientFrame::SetHost(op) => Ok(Command::SetHost {
                user_id: op.user_id,
            }),
            ClientFrame::Admit(op) => Ok(Command::Admit {
                user_id: op.user_id,
            }),
            ClientFrame::Decline(op) => Ok(Command::Decline {
                user_id: op.user_id,
            }),
            ClientFrame::UpdateSettings(op) => Ok(Command::UpdateSettings(op.settings)),
            ClientFrame::Play(op) => Ok(Command::Play {
                entry_id: op.entry_id,
            }),
            ClientFrame::Pause(_) => Ok(Command::Pause),
            ClientFrame::Next(_) => Ok(Command::Next),
            ClientFrame::Seek(op) => Ok(Command::Seek {
                position_ms: op.position_ms,
            }),
            ClientFrame::Pin(op) => Ok(Command::Pin {
                entry_id: op.entry_id,
                pinned: op.pinned,
            }),
        };
        let Some(joined) = &self.joined else {
            return self.send_error(&not_joined(), client_msg_id.as_deref(), ctx);
        };
        match command {
            Ok(command) => {
                joined
                    .room
                    .execute(self.user.clone(), command, client_msg_id, self.link(ctx))
            }
            Err(err) => self.send_error(&err, client_msg_id.as_deref(), ctx),
        }
    }

    fn track(&self, track_id: &str) -> Result<TrackSummary, ApiError> {
        let item = self.deps.recommender.catalog.lookup(track_id, "track_id")?;
        Ok(TrackSummary::from(
            self.deps.recommender.catalog.track(item),
        ))
    }

    /// Attaches to a group; frames that arrive meanwhile wait (`ctx.wait`), so a client may send
    /// operations right after `join`.
    fn join(
        &mut self,
        group_id: String,
        last_seq: Option<i64>,
        client_msg_id: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        let group_id = match GroupId::parse(&group_id) {
            Ok(id) => id,
            Err(e) => {
                let err = ApiError::new(ErrorCode::InvalidField, format!("group_id: {e}"));
                return self.send_error(&err, client_msg_id.as_deref(), ctx);
            }
        };
        if let Some(previous) = self.joined.take() {
            previous.room.detach(self.id);
        }
        let groups = self.deps.groups.clone();
        let attach = Attach {
            conn: self.id,
            user: self.user.clone(),
            socket: self.link(ctx),
            last_seq,
            client_msg_id: client_msg_id.clone(),
        };
        let id = group_id.clone();
        let work = async move { groups.attach(&id, attach).await };
        ctx.wait(
            work.into_actor(self)
                .map(move |result, connection, ctx| match result {
                    Ok(room) => {
                        connection.joined = Some(Joined {
                            group_id: group_id.as_str().to_string(),
                            room,
                        })
                    }
                    Err(err) => connection.send_error(&err, client_msg_id.as_deref(), ctx),
                }),
        );
    }

    fn feedback(
        &mut self,
        feedback: super::protocol::Feedback,
        client_msg_id: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        let item = match self
            .deps
            .recommender
            .catalog
            .lookup(&feedback.track_id, "track_id")
        {
            Ok(item) => item,
            Err(err) => return self.send_error(&err, client_msg_id.as_deref(), ctx),
        };
        let track_id = self
            .deps
            .recommender
            .catalog
            .track(item)
            .id
            .as_str()
            .to_string();
        let kind = feedback.kind;
        let group_id = self.joined.as_ref().map(|j| j.group_id.clone());
        let db = self.deps.db.clone();
        let bandit = self.deps.bandit.clone();
        let users = self.deps.recommender.users.clone();
        let user = self.user.clone();
        let quoted = feedback.request_id;
        let work = async move {
            // Only a list shown to this listener, for a track in it, earns a reward.
            let request_id = credited_request(&db, quoted, &user, &track_id).await?;
            let message = RecordFeedback {
                item,
                track_id,
                kind,
                request_id: request_id.clone(),
                group_id,
            };
            users.send(&user, message).await.and_then(|r| r)?;
            Ok::<_, ApiError>(request_id.map(|request_id| Outcome { request_id, kind }))
        };
        ctx.spawn(
            work.into_actor(self)
                .map(move |result, connection, ctx| match result {
                    // The groups the user is in hear of it through the member index.
                    Ok(outcome) => {
                        if let Some(outcome) = outcome {
                            bandit.do_send(outcome);
                        }
                        let ack = ServerFrame::Ack {
                            client_msg_id: client_msg_id.as_deref(),
                            seq: None,
                        }
                        .encode();
                        connection.send(ack, ctx);
                    }
                    Err(err) => connection.send_error(&err, client_msg_id.as_deref(), ctx),
                }),
        );
    }
}

impl Connection {
    /// Streams an explanation of a track to this socket: for the group it is in, else for the
    /// user. Every frame goes through the actor's mailbox, so the deltas always precede
    /// `explanation_done`.
    fn explain(&mut self, track_id: &str, client_msg_id: Option<String>, ctx: &mut Context<Self>) {
        let item = match self.deps.recommender.catalog.lookup(track_id, "track_id") {
            Ok(item) => item,
            Err(err) => return self.send_error(&err, client_msg_id.as_deref(), ctx),
        };
        if self.explaining >= MAX_EXPLANATIONS_IN_FLIGHT {
            let err = ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "at most {MAX_EXPLANATIONS_IN_FLIGHT} explanations at a time per socket; \
                     wait for an explanation_done"
                ),
            );
            return self.send_error(&err, client_msg_id.as_deref(), ctx);
        }
        self.explaining += 1;
        let deps = self.deps.clone();
        let user = self.user.clone();
        let room = self.joined.as_ref().map(|j| j.room.clone());
        let socket = self.link(ctx);
        let track_id = deps.recommender.catalog.track(item).id.as_str().to_string();
        let work = async move {
            let facts = match &room {
                Some(room) => explain::gather::for_group(&deps.recommender, room, item).await,
                None => explain::gather::for_listener(&deps.recommender, &user, item).await,
            };
            let facts = match facts {
                Ok(facts) => facts,
                Err(err) => {
                    let frame = ServerFrame::error(&err, client_msg_id.as_deref());
                    return socket.frame(frame);
                }
            };
            let (deltas, mut pieces) = mpsc::unbounded_channel();
            let asked = deps.explainer.send(Explain {
                facts,
                deltas: Some(deltas),
            });
            let forward = async {
                while let Some(piece) = pieces.recv().await {
                    let frame = ServerFrame::ExplanationDelta {
                        track_id: &track_id,
                        text: &piece,
                    };
                    socket.frame(frame.encode());
                }
            };
            let (answer, ()) = futures_util::join!(asked, forward);
            let frame = match answer {
                Ok(answer) => ServerFrame::ExplanationDone {
                    track_id: &track_id,
                    text: &answer.text,
                    source: answer.source.as_str(),
                    model: answer.model.as_deref(),
                    cached: answer.cached,
                    latency_ms: answer.latency_ms,
                    client_msg_id: client_msg_id.as_deref(),
                }
                .encode(),
                Err(err) => ServerFrame::error(&explainer_gone(err), client_msg_id.as_deref()),
            };
            socket.frame(frame);
        };
        ctx.spawn(work.into_actor(self).map(|(), connection, _| {
            connection.explaining -= 1;
        }));
    }
}

fn not_joined() -> ApiError {
    ApiError::new(
        ErrorCode::NotJoined,
        "join a group first: {\"type\":\"join\",\"group_id\":…}",
    )
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.deps.metrics.ws_connections.inc();
        let deps = self.deps.clone();
        let realtime = &deps.settings;
        let welcome = ServerFrame::Welcome {
            user_id: self.user.as_str(),
            protocol: PROTOCOL_VERSION,
            heartbeat_interval_ms: realtime.heartbeat_interval_ms,
            client_timeout_ms: realtime.client_timeout_ms,
            max_frame_bytes: realtime.max_frame_bytes,
        }
        .encode();
        self.send(welcome, ctx);
        let interval = Duration::from_millis(realtime.heartbeat_interval_ms);
        ctx.run_interval(interval, |connection, ctx| connection.heartbeat(ctx));
        // A shutdown closes the socket at once, ahead of anything queued, and no later frame
        // is read: the client reconnects (elsewhere) and resends what was not acknowledged.
        let mut closing = deps.closing.clone();
        ctx.spawn(
            async move {
                if closing.wait_for(|closing| *closing).await.is_err() {
                    // The application is gone without a shutdown: nothing to wait for.
                    std::future::pending::<()>().await;
                }
            }
            .into_actor(self)
            .map(|(), connection, ctx| {
                connection.close(
                    ctx,
                    CloseCode::Restart,
                    "shutdown",
                    "the server is restarting; reconnect",
                )
            }),
        );
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.deps.metrics.ws_connections.dec();
        if let Some(joined) = self.joined.take() {
            joined.room.detach(self.id);
        }
    }
}

impl Handler<ToSocket> for Connection {
    type Result = ();

    fn handle(&mut self, msg: ToSocket, ctx: &mut Self::Context) {
        match msg {
            ToSocket::TooSlow => self.too_slow(ctx),
            ToSocket::Left { group_id, reason } => {
                if self.joined.as_ref().is_some_and(|j| j.group_id == group_id) {
                    self.joined = None;
                    let reason = match reason {
                        super::events::LeaveReason::Left => "left",
                        super::events::LeaveReason::Kicked => "kicked",
                    };
                    let frame = ServerFrame::Left {
                        group_id: &group_id,
                        reason,
                    }
                    .encode();
                    self.send(frame, ctx);
                }
            }
        }
    }
}

impl StreamHandler<Result<Inbound, ProtocolError>> for Connection {
    fn handle(&mut self, item: Result<Inbound, ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        let counted = matches!(
            item,
            Ok(Inbound::Text(_) | Inbound::Binary(_) | Inbound::Ping(_) | Inbound::Pong(_))
        );
        if counted && !self.admit(ctx) {
            return;
        }
        match item {
            Ok(Inbound::Text(text)) => self.on_text(&text, ctx),
            Ok(Inbound::Binary(_)) => {
                let err = ApiError::new(
                    ErrorCode::UnsupportedFrame,
                    "binary frames are not part of the protocol; send JSON text frames",
                );
                self.send_error(&err, None, ctx);
            }
            Ok(Inbound::Ping(bytes)) => self.enqueue(Outgoing::Pong(bytes), ctx),
            Ok(Inbound::Pong(_)) => {}
            Ok(Inbound::Close(_)) => {
                self.close(ctx, CloseCode::Normal, "client", "closing as asked")
            }
            Err(ProtocolError::Overflow) => self.too_big(ctx),
            Err(ProtocolError::Io(err)) if frame_guard::is_refusal(&err) => self.too_big(ctx),
            Err(err) => self.close(ctx, CloseCode::Protocol, "protocol_error", &err.to_string()),
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        self.deps
            .metrics
            .ws_closed
            .with_label_values(&["disconnected"])
            .inc();
        ctx.stop();
    }
}

impl Connection {
    /// A frame (or fragmented message) over the limit: close with 1009.
    fn too_big(&mut self, ctx: &mut Context<Self>) {
        let limit = self.deps.settings.max_frame_bytes;
        self.close(
            ctx,
            CloseCode::Size,
            "too_big",
            &format!("frames and messages are limited to {limit} bytes"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_allows_bursts_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 3);
        assert!((0..3).all(|_| bucket.take(start)));
        assert!(!bucket.take(start));
        assert!(bucket.take(start + Duration::from_millis(100)));
        assert!(!bucket.take(start + Duration::from_millis(100)));
        // Never more than the burst, however long the pause.
        let later = start + Duration::from_secs(60);
        assert!((0..3).all(|_| bucket.take(later)));
        assert!(!bucket.take(later));
    }
}

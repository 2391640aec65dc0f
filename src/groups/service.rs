//! `Groups`: the one way into live group sessions, for REST handlers, sockets and explanations.
//! It creates rooms, admits members by join code, and hands out [`Room`]s — a live group a
//! caller may act in — loading a group from the store (its latest snapshot and the events
//! after it) on first use: after a restart, groups come back as members reconnect or read them.
//! Actors remove themselves from this process's [`LiveGroups`] when they stop.

use std::sync::{Arc, Weak};

use actix::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    actor::{
        mailbox, stored_events, Attach, Detach, Execute, GetRecommendations, GetView, GroupActor,
        GroupDeps, IsMember, Origin, SendRecommendations, TasteChanged,
    },
    commands::Command,
    events::{Event, EventBody},
    ids::{generate_join_code, normalize_join_code, GroupId},
    registry::LiveGroups,
    settings::{GroupSettings, SettingsPatch},
    socket_link::SocketLink,
    state::{GroupState, GroupView, Snapshot},
};
use crate::{
    bandit::actor::BanditActor,
    config::RealtimeSettings,
    domain::{now_ms, text, UserId},
    error::{ApiError, ErrorCode},
    fanout::{Delivery, Fanout, Topic},
    metrics::Metrics,
    recommend::{GroupRecommendations, Recommender},
    storage::{groups, Db},
};

/// Events read per query when loading a group.
const LOAD_PAGE: i64 = 5_000;
/// Longest room name, in characters.
pub const MAX_NAME_CHARS: usize = 80;
/// Join codes drawn before giving up (a clash is a one-in-millions event).
const JOIN_CODE_ATTEMPTS: usize = 5;

#[derive(Clone)]
pub struct Groups {
    deps: GroupDeps,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedGroup {
    pub group_id: String,
    /// Six characters others type (or scan) to join.
    pub join_code: String,
    pub name: String,
    pub settings: GroupSettings,
}

/// Who joined where, and whether they are in (or waiting for the host).
#[derive(Debug)]
pub struct Joined {
    pub group_id: String,
    pub name: String,
    pub seq: i64,
    pub member: bool,
}

/// One page of a group's event log.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// True when more events follow the last one returned.
    pub has_more: bool,
}

/// A live group a caller may act in: obtained as a member ([`Groups::member_room`]) or by
/// attaching a socket ([`Groups::attach`]).
#[derive(Clone)]
pub struct Room {
    id: GroupId,
    addr: Addr<GroupActor>,
}

impl Groups {
    pub fn new(
        db: Db,
        recommender: Recommender,
        metrics: Arc<Metrics>,
        settings: RealtimeSettings,
        bandit: Addr<BanditActor>,
        spotify: Option<crate::spotify::Spotify>,
        fanout: Arc<dyn Fanout>,
    ) -> Self {
        let live: Arc<LiveGroups<GroupActor>> = Arc::default();
        // Weak: the user directory lives inside the recommender the groups hold.
        let index: Weak<LiveGroups<GroupActor>> = Arc::downgrade(&live);
        let tell = Arc::clone(&fanout);
        recommender.users.on_taste_changed(Box::new(move |user| {
            refresh_rooms_of(&index, user);
            // Other processes reread this listener's taste (their rooms rank with it too).
            tell.publish(Topic::Tastes, user.as_str().to_string());
        }));
        if fanout.shared() {
            let (users, index) = (recommender.users.clone(), Arc::downgrade(&live));
            fanout.subscribe(
                Topic::Tastes,
                Arc::new(move |delivery| {
                    let Delivery::Message { body, .. } = delivery else {
                        return;
                    };
                    let Ok(user) = UserId::parse(&body) else {
                        return;
                    };
                    let (users, index) = (users.clone(), index.clone());
                    tokio::spawn(async move {
                        users.reload(&user).await;
                        refresh_rooms_of(&index, &user);
                    });
                }),
            );
        }
        Self {
            deps: GroupDeps {
                db,
                recommender,
                metrics,
                settings: Arc::new(settings),
                bandit,
                live,
                spotify,
                fanout,
            },
        }
    }

    /// Live groups in this process.
    pub fn live_count(&self) -> usize {
        self.deps.live.len()
    }

    /// Creates a room with `host` as its host. At most `realtime.rooms_per_user_per_day` rooms
    /// per user in any 24 hours.
    pub async fn create(
        &self,
        host: &UserId,
        host_name: &str,
        name: &str,
        settings: Option<SettingsPatch>,
    ) -> Result<CreatedGroup, ApiError> {
        let name = name.trim().to_string();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                format!("name must be 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        text::check_line("name", &name).map_err(|e| ApiError::new(ErrorCode::InvalidField, e))?;
        self.enforce_room_quota(host).await?;
        let settings = GroupSettings::default()
            .patched(&settings.unwrap_or_default())
            .map_err(|e| ApiError::new(ErrorCode::InvalidField, e))?;
        let group_id = GroupId::generate();
        let created = EventBody::GroupCreated {
            name: name.clone(),
            host: host.as_str().to_string(),
            host_name: host_name.to_string(),
            settings: settings.clone(),
        };
        let (kind, payload) = created.to_columns();
        let settings_json = serde_json::to_string(&settings).expect("settings serialise");
        for _ in 0..JOIN_CODE_ATTEMPTS {
            let join_code = generate_join_code();
            let stored = groups::create(
                &self.deps.db,
                &groups::NewGroup {
                    id: group_id.as_str(),
                    name: &name,
                    join_code: &join_code,
                    host,
                    settings_json: &settings_json,
                    created: (&kind, &payload),
                },
            )
            .await;
            match stored {
                Ok(_) => {
                    return Ok(CreatedGroup {
                        group_id: group_id.as_str().to_string(),
                        join_code,
                        name,
                        settings,
                    })
                }
                Err(err) if groups::is_unique_violation(&err) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(ApiError::internal(anyhow::anyhow!(
            "no free join code after {JOIN_CODE_ATTEMPTS} attempts"
        )))
    }

    /// Counted in the store, so several processes share the count; two creations racing may
    /// both pass.
    async fn enforce_room_quota(&self, user: &UserId) -> Result<(), ApiError> {
        const DAY_MS: i64 = 24 * 3600 * 1000;
        let quota = self.deps.settings.rooms_per_user_per_day;
        let now = now_ms();
        let (rooms, oldest) = groups::created_by_since(&self.deps.db, user, now - DAY_MS).await?;
        if rooms < i64::from(quota) {
            return Ok(());
        }
        let wait_s = (oldest.unwrap_or(now) + DAY_MS - now).max(1000) / 1000;
        Err(ApiError::new(
            ErrorCode::QuotaExceeded,
            format!("you created {rooms} rooms in the last 24 hours (at most {quota}); join one of them or try later"),
        )
        .retry_after(wait_s as u64))
    }

    /// Joins the room with this code (joining again is harmless). In a room whose host approves
    /// newcomers the caller may only be waiting (`member` false).
    pub async fn join_by_code(
        &self,
        user: &UserId,
        display_name: &str,
        code: &str,
    ) -> Result<Joined, ApiError> {
        let code = normalize_join_code(code).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidField,
                "join_code is six letters or digits, like \"K7P2QX\"",
            )
        })?;
        let row = groups::find_by_join_code(&self.deps.db, &code)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::JoinCodeNotFound,
                    format!("no open group has the code {code}"),
                )
            })?;
        let group_id =
            GroupId::parse(&row.id).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
        let group = self.live(&group_id).await?;
        let seq = group
            .send(Execute {
                actor: user.clone(),
                command: Command::Join {
                    display_name: display_name.to_string(),
                },
                client_msg_id: None,
                origin: Origin::Rest,
            })
            .await
            .map_err(mailbox)??;
        let member = group.send(IsMember(user.clone())).await.map_err(mailbox)?;
        Ok(Joined {
            group_id: row.id,
            name: row.name,
            seq,
            member,
        })
    }

    /// The room `raw_id` names, if `user` is a member.
    pub async fn member_room(&self, raw_id: &str, user: &UserId) -> Result<Room, ApiError> {
        let id = GroupId::parse(raw_id).map_err(|e| ApiError::new(ErrorCode::InvalidId, e))?;
        let addr = self.live(&id).await?;
        if !addr.send(IsMember(user.clone())).await.map_err(mailbox)? {
            return Err(ApiError::new(
                ErrorCode::NotAMember,
                "only members can read a group; join it with its code first",
            ));
        }
        Ok(Room { id, addr })
    }

    /// Attaches a socket to a group (its user must be a member); see [`Attach`].
    pub async fn attach(&self, id: &GroupId, attach: Attach) -> Result<Room, ApiError> {
        let addr = self.live(id).await?;
        addr.send(attach)
            .await
            .map_err(|_| ApiError::internal(anyhow::anyhow!("group {id} stopped during join")))??;
        Ok(Room {
            id: id.clone(),
            addr,
        })
    }

    /// The room's event log after `after`, oldest first: exactly what a socket would have
    /// received.
    pub async fn events(&self, room: &Room, after: i64, limit: i64) -> Result<EventPage, ApiError> {
        let mut rows =
            groups::events_after(&self.deps.db, room.id.as_str(), after, limit + 1).await?;
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit.max(0) as usize);
        Ok(EventPage {
            events: stored_events(rows),
            has_more,
        })
    }

    /// The group's actor, started from the store if it is not live.
    async fn live(&self, id: &GroupId) -> Result<Addr<GroupActor>, ApiError> {
        if let Some(addr) = self.deps.live.get(id.as_str()) {
            return Ok(addr);
        }
        let row = groups::find(&self.deps.db, id.as_str())
            .await?
            .ok_or_else(|| {
                ApiError::new(ErrorCode::GroupNotFound, format!("no group has id {id}"))
            })?;
        let (state, recent, snapshot_seq) = self.load(&row).await?;
        let deps = self.deps.clone();
        Ok(self.deps.live.get_or_start(id.as_str(), move || {
            GroupActor::new(state, deps, recent, snapshot_seq).start()
        }))
    }

    /// The group's state, from its latest snapshot and the events after it (or the whole log
    /// when there is no usable snapshot), and the recent events kept for replay.
    /// Also returns the seq of the snapshot it started from (0: none).
    async fn load(
        &self,
        row: &groups::GroupRow,
    ) -> Result<(GroupState, Vec<Event>, i64), ApiError> {
        let db = &self.deps.db;
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
        let replay = self.deps.settings.replay_events as i64;
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
        self.deps.metrics.group_load_events.observe(folded as f64);
        tracing::debug!(
            group = %row.id,
            snapshot_seq,
            folded,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "group loaded"
        );
        Ok((state, recent, snapshot_seq))
    }
}

/// The live rooms `user` is in rank again (their taste changed).
fn refresh_rooms_of(live: &Weak<LiveGroups<GroupActor>>, user: &UserId) {
    if let Some(live) = live.upgrade() {
        for addr in live.member_groups(user.as_str()) {
            addr.do_send(TasteChanged);
        }
    }
}

impl Room {
    pub fn id(&self) -> &GroupId {
        &self.id
    }

    /// The group as members see it: members with presence, the playlist, settings and `seq`.
    pub async fn view(&self) -> Result<GroupView, ApiError> {
        self.addr.send(GetView).await.map_err(mailbox)
    }

    /// The current recommendations with harmony (computed now if there are none yet).
    pub async fn recommendations(&self) -> Result<Arc<GroupRecommendations>, ApiError> {
        self.addr.send(GetRecommendations).await.map_err(mailbox)?
    }

    /// An operation from a socket: its `ack` or `error` frame comes in line with the events.
    pub fn execute(
        &self,
        actor: UserId,
        command: Command,
        client_msg_id: Option<String>,
        socket: SocketLink,
    ) {
        self.addr.do_send(Execute {
            actor,
            command,
            client_msg_id,
            origin: Origin::Socket { socket },
        });
    }

    /// An operation over REST: the seq of its last event once stored.
    pub async fn run(&self, actor: UserId, command: Command) -> Result<i64, ApiError> {
        self.addr
            .send(Execute {
                actor,
                command,
                client_msg_id: None,
                origin: Origin::Rest,
            })
            .await
            .map_err(mailbox)?
    }

    /// Sends the current recommendations to a socket again.
    pub fn send_recommendations(&self, socket: SocketLink) {
        self.addr.do_send(SendRecommendations { socket });
    }

    /// The socket `conn` leaves the live session.
    pub fn detach(&self, conn: u64) {
        self.addr.do_send(Detach { conn });
    }
}

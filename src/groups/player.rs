//! Spotify Connect for one room: a task that makes the chosen device play what the room plays
//! (the room's queue stays the truth) and watches `/me/player` so that what the host does in
//! the Spotify app itself (skip, pause, resume, seek) comes back to the room.
//!
//! The group actor says what it wants through a `watch` channel (the newest state wins, so a
//! burst of changes costs one call); the task reports back with [`DeviceReport`]s. Spotify being
//! slow, down, rate limiting or refusing never holds the room up: the listen-along clock keeps
//! the room playing and the issue is shown until the device follows again.

use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::watch;

use super::{events::PlaybackTarget, state::PlaybackIssue};
use crate::{domain::UserId, error::ApiError, spotify::Spotify};

/// A device within this much of the room's position counts as in step.
const TOLERANCE_MS: i64 = 3_000;
/// Right after a play request the device may still report the previous track.
const SETTLE: Duration = Duration::from_secs(2);

/// What the room plays now, as the device should.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub entry_id: Option<String>,
    pub track_id: Option<String>,
    pub duration_ms: u32,
    pub playing: bool,
    /// The position at `at`.
    pub position_ms: u32,
    pub at: Instant,
}

impl Desired {
    fn position_now(&self) -> u32 {
        let moved = if self.playing {
            self.at.elapsed().as_millis() as u64
        } else {
            0
        };
        (self.position_ms as u64 + moved).min(self.duration_ms as u64) as u32
    }

    /// Whether the device doing `self` is already doing `other` (same track and state, about
    /// the same position).
    fn matches(&self, other: &Desired) -> bool {
        self.track_id == other.track_id
            && self.playing == other.playing
            && (self.position_now() as i64 - other.position_now() as i64).abs() < TOLERANCE_MS
    }
}

/// What the device did that the room should follow, or how the link is doing.
#[derive(Message, Debug, Clone, PartialEq)]
#[rtype(result = "()")]
pub enum DeviceReport {
    /// `None`: the device follows the room again.
    Issue(Option<PlaybackIssue>),
    /// The device left the room's track (the host skipped or picked something in the app).
    MovedOn { entry_id: String },
    /// The device plays or stands elsewhere than the room on the room's track (the host paused,
    /// resumed or seeked in the app).
    Position {
        entry_id: String,
        playing: bool,
        position_ms: u32,
    },
}

/// The link to one room's device; dropping it stops the task.
pub struct ConnectLink {
    pub target: PlaybackTarget,
    wanted: watch::Sender<Option<Desired>>,
}

impl ConnectLink {
    pub fn start(
        spotify: Spotify,
        target: PlaybackTarget,
        report: Recipient<DeviceReport>,
        poll: Duration,
    ) -> Self {
        let (wanted, watching) = watch::channel(None);
        let task = Task {
            spotify,
            user: UserId::parse(&target.user_id).ok(),
            device_id: target.device_id.clone(),
            report,
            poll,
            applied: None,
            applied_at: Instant::now(),
            issue: None,
            quiet_until: Instant::now(),
        };
        actix_web::rt::spawn(task.run(watching));
        Self { target, wanted }
    }

    /// The room's state now; the task applies the newest it has seen.
    pub fn want(&self, desired: Desired) {
        self.wanted.send_replace(Some(desired));
    }
}

struct Task {
    spotify: Spotify,
    user: Option<UserId>,
    device_id: String,
    report: Recipient<DeviceReport>,
    poll: Duration,
    /// What the device was last made to do (or seen doing).
    applied: Option<Desired>,
    applied_at: Instant,
    issue: Option<PlaybackIssue>,
    /// No calls before this (Spotify's Retry-After).
    quiet_until: Instant,
}

impl Task {
    async fn run(mut self, mut watching: watch::Receiver<Option<Desired>>) {
        let Some(user) = self.user.clone() else {
            return;
        };
        let mut next_poll = tokio::time::Instant::now() + self.poll;
        loop {
            let polled = tokio::select! {
                changed = watching.changed() => {
                    if changed.is_err() {
                        // The room let go of the link (another device, or the room unloaded).
                        return;
                    }
                    false
                }
                _ = tokio::time::sleep_until(next_poll) => true,
            };
            if polled {
                next_poll = tokio::time::Instant::now() + self.poll;
            }
            if Instant::now() < self.quiet_until {
                continue;
            }
            let desired = watching.borrow_and_update().clone();
            let Some(desired) = desired else { continue };
            let in_step = self.applied.as_ref().is_some_and(|a| a.matches(&desired));
            // A room change the device already matches (a vote, an add) costs no call; the
            // device is read only on the poll timer, however busy the room.
            let result = match (in_step, polled) {
                (false, _) => self.apply(&user, &desired).await,
                (true, true) => self.watch_device(&user, &desired).await,
                (true, false) => continue,
            };
            self.set_issue(result.err());
        }
    }

    /// Makes the device do what the room does.
    async fn apply(&mut self, user: &UserId, desired: &Desired) -> Result<(), ApiError> {
        match (&desired.track_id, desired.playing) {
            (Some(track), true) => {
                self.spotify
                    .play(user, &self.device_id, track, desired.position_now())
                    .await?
            }
            (Some(track), false) => {
                let same_track = self
                    .applied
                    .as_ref()
                    .is_some_and(|a| a.track_id.as_ref() == Some(track));
                if !same_track {
                    self.spotify
                        .play(user, &self.device_id, track, desired.position_now())
                        .await?;
                }
                self.spotify.pause(user, &self.device_id).await?;
            }
            (None, _) => {
                if self.applied.as_ref().is_some_and(|a| a.playing) {
                    self.spotify.pause(user, &self.device_id).await?;
                }
            }
        }
        self.applied = Some(Desired {
            at: Instant::now(),
            position_ms: desired.position_now(),
            ..desired.clone()
        });
        self.applied_at = Instant::now();
        Ok(())
    }

    /// Reads the device and reports what the host changed in the Spotify app.
    async fn watch_device(&mut self, user: &UserId, desired: &Desired) -> Result<(), ApiError> {
        let (Some(entry_id), Some(track)) = (&desired.entry_id, &desired.track_id) else {
            return Ok(());
        };
        let Some(device) = self.spotify.playback(user).await? else {
            return Err(ApiError::new(
                crate::error::ErrorCode::SpotifyNoDevice,
                "the Spotify device is not active any more; open Spotify on it, or pick another",
            ));
        };
        if self.applied_at.elapsed() < SETTLE {
            return Ok(());
        }
        let entry_id = entry_id.clone();
        let position_ms = device.progress_ms;
        let report = if device.track_id.as_ref() != Some(track) {
            Some(DeviceReport::MovedOn { entry_id })
        } else {
            // A track that reached its end is the room's clock's to end, not a pause.
            let at_end = position_ms + TOLERANCE_MS as u32 >= desired.duration_ms;
            let paused_at_end = desired.playing && !device.is_playing && at_end;
            let drifted = (position_ms as i64 - desired.position_now() as i64).abs() > TOLERANCE_MS;
            ((device.is_playing != desired.playing || drifted) && !paused_at_end).then_some(
                DeviceReport::Position {
                    entry_id,
                    playing: device.is_playing,
                    position_ms,
                },
            )
        };
        if let Some(report) = report {
            // The device is where it is: what the room does next is applied from there.
            self.applied = Some(Desired {
                track_id: device.track_id.clone(),
                playing: device.is_playing,
                position_ms,
                at: Instant::now(),
                ..desired.clone()
            });
            self.report.do_send(report);
        }
        Ok(())
    }

    fn set_issue(&mut self, err: Option<ApiError>) {
        if let Some(err) = &err {
            if let Some(wait) = err.retry_after_s {
                self.quiet_until = Instant::now() + Duration::from_secs(wait);
            }
            // Try the whole state again once Spotify is back.
            self.applied = None;
        }
        let issue = err.map(|err| PlaybackIssue {
            code: err.code.as_str(),
            message: err.message,
        });
        if issue != self.issue {
            self.issue = issue.clone();
            self.report.do_send(DeviceReport::Issue(issue));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(track: &str, playing: bool, position_ms: u32) -> Desired {
        Desired {
            entry_id: Some("e".into()),
            track_id: Some(track.into()),
            duration_ms: 200_000,
            playing,
            position_ms,
            at: Instant::now(),
        }
    }

    #[test]
    fn a_device_in_step_needs_no_call_and_a_real_change_does() {
        let applied = desired("a", true, 10_000);
        assert!(
            applied.matches(&desired("a", true, 11_500)),
            "within the tolerance"
        );
        assert!(!applied.matches(&desired("a", true, 20_000)), "a seek");
        assert!(!applied.matches(&desired("a", false, 10_000)), "a pause");
        assert!(
            !applied.matches(&desired("b", true, 10_000)),
            "another track"
        );
        let mut stopped = desired("a", true, 10_000);
        stopped.track_id = None;
        assert!(!applied.matches(&stopped), "the queue ran out");
    }

    #[test]
    fn the_position_moves_only_while_playing() {
        let mut d = desired("a", true, 1_000);
        d.at = Instant::now() - Duration::from_millis(500);
        assert!((1_500..1_600).contains(&d.position_now()));
        d.playing = false;
        assert_eq!(d.position_now(), 1_000);
        d.playing = true;
        d.position_ms = 199_900;
        assert_eq!(d.position_now(), 200_000, "never past the end");
    }
}

//! Spotify for hosts: sign-in (Authorization Code with PKCE), tokens kept server-side and
//! refreshed before they expire, the user's Connect devices, saving a room to a playlist, and
//! the opt-in library import. rspotify is the only Spotify client; [`Spotify`] is the way in.
//!
//! Tokens never leave the server and are never logged. A refresh token Spotify refuses (revoked
//! access, six months passed) turns the account to `reconnect`, which the web app shows.

mod client;
mod seal;
pub mod standin;

use std::sync::Arc;

use rspotify::{
    clients::OAuthClient,
    model::{AdditionalType, PlayableId, PlayableItem, PlaylistId, TimeRange, TrackId},
    prelude::Id,
    AuthCodePkceSpotify, Config, Credentials, OAuth,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    config::SpotifySettings,
    domain::{now_ms, UserId},
    error::{ApiError, ErrorCode},
    storage::{spotify as store, Db},
};
use client::{call, spotify_error, Session};
use seal::Seal;

/// What Chorus asks the user to allow: playback, playlists, and (for the opt-in import) top
/// and saved tracks.
const SCOPES: &[&str] = &[
    "user-read-playback-state",
    "user-modify-playback-state",
    "playlist-modify-private",
    "playlist-modify-public",
    "user-top-read",
    "user-library-read",
];
/// A sign-in must come back within this long.
const LOGIN_TTL_MS: i64 = 10 * 60 * 1000;
/// Spotify's limit on URIs per playlist-items request.
const ITEMS_PER_REQUEST: usize = 100;
/// Tracks an import reads at most from each of top and saved tracks.
const IMPORT_LIMIT: usize = 200;

#[derive(Clone)]
pub struct Spotify {
    inner: Arc<Inner>,
}

struct Inner {
    client_id: String,
    redirect_uri: String,
    config: Config,
    allow_import: bool,
    poll_interval: std::time::Duration,
    seal: Seal,
    db: Db,
}

/// A user's Spotify connection as the web app shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionStatus {
    /// Whether this server has a Spotify app configured at all.
    pub available: bool,
    /// `disconnected`, `connected`, or `reconnect` (Spotify no longer accepts the sign-in).
    pub state: &'static str,
    pub spotify_user_id: Option<String>,
    pub display_name: Option<String>,
    /// Whether members may import their top and saved tracks as likes on this server.
    pub import_enabled: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceView {
    pub id: String,
    pub name: String,
    /// Spotify's device type: `Computer`, `Smartphone`, `Speaker`…
    pub kind: String,
    pub is_active: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Exported {
    pub playlist_id: String,
    pub url: String,
    pub tracks: usize,
    /// False the first time; true when the room's earlier playlist was updated.
    pub updated: bool,
}

impl Spotify {
    /// `None` when no Spotify app is configured (`spotify.client_id`); an error for a token key
    /// that is not one.
    pub fn new(
        settings: &SpotifySettings,
        default_redirect: String,
        db: Db,
    ) -> anyhow::Result<Option<Self>> {
        let Some(client_id) = settings.client_id.clone().filter(|id| !id.is_empty()) else {
            return Ok(None);
        };
        let seal = Seal::new(settings.token_key.as_ref().map(|k| k.expose()))?;
        if !seal.is_sealing() {
            tracing::warn!("spotify.token_key is not set: Spotify tokens are stored unencrypted");
        }
        let config = Config {
            api_base_url: settings.api_url.clone(),
            auth_base_url: settings.accounts_url.clone(),
            token_cached: false,
            // Chorus refreshes itself, so it can store the new tokens (client.rs).
            token_refreshing: false,
            ..Config::default()
        };
        Ok(Some(Self {
            inner: Arc::new(Inner {
                client_id,
                redirect_uri: settings.redirect_uri.clone().unwrap_or(default_redirect),
                config,
                allow_import: settings.allow_import,
                poll_interval: std::time::Duration::from_millis(settings.poll_interval_ms.max(200)),
                seal,
                db,
            }),
        }))
    }

    /// How often a room on a Connect device checks what the device does.
    pub fn poll_interval(&self) -> std::time::Duration {
        self.inner.poll_interval
    }

    fn client(&self) -> AuthCodePkceSpotify {
        let inner = &self.inner;
        AuthCodePkceSpotify::with_config(
            Credentials::new_pkce(&inner.client_id),
            OAuth {
                redirect_uri: inner.redirect_uri.clone(),
                scopes: SCOPES.iter().map(|s| s.to_string()).collect(),
                ..OAuth::default()
            },
            inner.config.clone(),
        )
    }

    /// Where to send the user's browser: Spotify's consent page with a PKCE challenge and a
    /// random `state`; the verifier waits in the store for the callback. `return_to` is the
    /// web app's page to come back to (`#/…`).
    pub async fn login_url(&self, user: &UserId, return_to: &str) -> Result<String, ApiError> {
        let mut client = self.client();
        let state = uuid::Uuid::new_v4().simple().to_string();
        client.oauth.state = state.clone();
        let url = client.get_authorize_url(Some(64)).map_err(|e| {
            ApiError::internal(anyhow::anyhow!("building the Spotify sign-in URL: {e}"))
        })?;
        let verifier = client.verifier.clone().expect("get_authorize_url sets it");
        let now = now_ms();
        store::save_login(
            &self.inner.db,
            &state,
            &store::PendingLogin {
                user_id: user.as_str().to_string(),
                verifier,
                return_to: return_to.to_string(),
                created_at: now,
            },
            now - LOGIN_TTL_MS,
        )
        .await
        .map_err(storage_unavailable)?;
        Ok(url)
    }

    /// Finishes a sign-in: `state` must be one this server issued (once, within 10 minutes);
    /// the code is exchanged with the stored verifier, and the tokens stored. Returns the page to
    /// go back to.
    pub async fn finish_login(&self, state: &str, code: &str) -> Result<String, ApiError> {
        let login = store::take_login(&self.inner.db, state)
            .await
            .map_err(storage_unavailable)?
            .filter(|login| now_ms() - login.created_at <= LOGIN_TTL_MS)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::SpotifyLoginFailed,
                    "this Spotify sign-in is unknown, already used or expired; start again",
                )
            })?;
        let mut client = self.client();
        client.verifier = Some(login.verifier);
        client.request_token(code).await.map_err(|e| {
            tracing::warn!(error = %e, "Spotify refused a sign-in code");
            ApiError::new(
                ErrorCode::SpotifyLoginFailed,
                "Spotify did not accept this sign-in; start again",
            )
        })?;
        let me = match client.current_user().await {
            Ok(me) => me,
            Err(err) => return Err(spotify_error(err, "reading your Spotify profile").await),
        };
        let token = client
            .token
            .lock()
            .await
            .map_err(|_| ApiError::internal(anyhow::anyhow!("rspotify token lock poisoned")))?
            .clone()
            .expect("request_token stores one");
        let account = store::Account {
            user_id: login.user_id,
            spotify_user_id: me.id.id().to_string(),
            display_name: me.display_name,
            access_token: self.inner.seal.seal(&token.access_token),
            refresh_token: token.refresh_token.map(|t| self.inner.seal.seal(&t)),
            expires_at: token
                .expires_at
                .map_or(now_ms(), |at| at.timestamp_millis()),
            scopes: {
                let mut scopes: Vec<String> = token.scopes.into_iter().collect();
                scopes.sort();
                scopes.join(" ")
            },
            status: store::CONNECTED.to_string(),
        };
        store::save_account(&self.inner.db, &account, now_ms())
            .await
            .map_err(storage_unavailable)?;
        tracing::info!(user = %account.user_id, "connected a Spotify account");
        Ok(login.return_to)
    }

    pub async fn status(&self, user: &UserId) -> Result<ConnectionStatus, ApiError> {
        let account = store::account(&self.inner.db, user.as_str())
            .await
            .map_err(storage_unavailable)?;
        Ok(ConnectionStatus {
            available: true,
            state: match &account {
                None => "disconnected",
                Some(a) if a.status == store::RECONNECT => "reconnect",
                Some(_) => "connected",
            },
            spotify_user_id: account.as_ref().map(|a| a.spotify_user_id.clone()),
            display_name: account.and_then(|a| a.display_name),
            import_enabled: self.inner.allow_import,
        })
    }

    /// Forgets the user's tokens (Spotify's own "remove access" is on their account page).
    pub async fn disconnect(&self, user: &UserId) -> Result<bool, ApiError> {
        store::delete_account(&self.inner.db, user.as_str())
            .await
            .map_err(storage_unavailable)
    }

    async fn session(&self, user: &UserId) -> Result<Session, ApiError> {
        Session::open(self.client(), &self.inner.db, &self.inner.seal, user).await
    }

    pub async fn devices(&self, user: &UserId) -> Result<Vec<DeviceView>, ApiError> {
        let session = self.session(user).await?;
        let devices = call(
            &session,
            &self.inner.db,
            "listing your devices",
            |c| async move { c.device().await },
        )
        .await?;
        Ok(devices
            .into_iter()
            .filter_map(|d| {
                Some(DeviceView {
                    id: d.id?,
                    name: d.name,
                    kind: format!("{:?}", d._type),
                    is_active: d.is_active,
                })
            })
            .collect())
    }

    /// Saves `track_ids` (catalog ids are Spotify track ids) as a playlist in the user's
    /// account: a new one the first time, the same one (its items replaced) after that.
    pub async fn export(
        &self,
        user: &UserId,
        group_id: &str,
        name: &str,
        track_ids: &[String],
    ) -> Result<Exported, ApiError> {
        let session = self.session(user).await?;
        let db = &self.inner.db;
        let ids: Vec<TrackId<'static>> = track_ids
            .iter()
            .filter_map(|id| TrackId::from_id(id.clone()).ok())
            .collect();
        let earlier = store::export(db, group_id, user.as_str())
            .await
            .map_err(storage_unavailable)?;
        let description = format!("Made together in the Chorus room “{name}”.");
        let (playlist_id, updated) = match earlier {
            Some(id) => {
                let playlist = PlaylistId::from_id(id.clone())
                    .map_err(|e| ApiError::internal(anyhow::anyhow!("stored playlist id: {e}")))?;
                let (title, text) = (name.to_string(), description.clone());
                call(&session, db, "renaming the playlist", move |c| {
                    let (playlist, title, text) = (playlist.clone(), title.clone(), text.clone());
                    async move {
                        c.playlist_change_detail(playlist, Some(&title), None, Some(&text), None)
                            .await
                    }
                })
                .await?;
                (id, true)
            }
            None => {
                let (title, text) = (name.to_string(), description.clone());
                let me = session.spotify_user_id()?;
                let created = call(&session, db, "creating the playlist", move |c| {
                    let (title, text, me) = (title.clone(), text.clone(), me.clone());
                    async move {
                        c.user_playlist_create(me, &title, Some(false), None, Some(&text))
                            .await
                    }
                })
                .await?;
                (created.id.id().to_string(), false)
            }
        };
        let playlist = PlaylistId::from_id(playlist_id.clone())
            .map_err(|e| ApiError::internal(anyhow::anyhow!("playlist id: {e}")))?;
        // The first batch replaces what an earlier export left; the rest append, 100 at a time.
        for (i, batch) in ids.chunks(ITEMS_PER_REQUEST).enumerate() {
            let items: Vec<TrackId<'static>> = batch.to_vec();
            let playlist = playlist.clone();
            call(&session, db, "adding the tracks", move |c| {
                let (items, playlist) = (items.clone(), playlist.clone());
                async move {
                    let items = items.into_iter().map(PlayableId::Track);
                    if i == 0 {
                        c.playlist_replace_items(playlist, items).await
                    } else {
                        c.playlist_add_items(playlist, items, None)
                            .await
                            .map(|_| ())
                    }
                }
            })
            .await?;
        }
        if ids.is_empty() && updated {
            let playlist = playlist.clone();
            call(&session, db, "emptying the playlist", move |c| {
                let playlist = playlist.clone();
                async move { c.playlist_replace_items(playlist, std::iter::empty()).await }
            })
            .await?;
        }
        let url = format!("https://open.spotify.com/playlist/{playlist_id}");
        store::save_export(db, group_id, user.as_str(), &playlist_id, &url, now_ms())
            .await
            .map_err(storage_unavailable)?;
        Ok(Exported {
            playlist_id,
            url,
            tracks: ids.len(),
            updated,
        })
    }

    /// The user's top and saved track ids (at most 200 of each), for the opt-in import.
    pub async fn library(&self, user: &UserId) -> Result<Vec<String>, ApiError> {
        if !self.inner.allow_import {
            return Err(ApiError::new(
                ErrorCode::ImportDisabled,
                "this server does not import Spotify libraries (spotify.allow_import is off)",
            ));
        }
        let session = self.session(user).await?;
        let db = &self.inner.db;
        let mut ids = track_ids(
            &session,
            db,
            "reading your top tracks",
            |c, offset| async move {
                c.current_user_top_tracks_manual(
                    Some(TimeRange::MediumTerm),
                    Some(50),
                    Some(offset),
                )
                .await
                .map(|page| {
                    (
                        page.items.into_iter().map(|t| t.id).collect(),
                        page.next.is_some(),
                    )
                })
            },
        )
        .await?;
        let saved = track_ids(
            &session,
            db,
            "reading your saved tracks",
            |c, offset| async move {
                c.current_user_saved_tracks_manual(None, Some(50), Some(offset))
                    .await
                    .map(|page| {
                        let ids = page.items.into_iter().map(|saved| saved.track.id).collect();
                        (ids, page.next.is_some())
                    })
            },
        )
        .await?;
        ids.extend(saved);
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(id.clone()));
        Ok(ids)
    }
}

/// Track ids from a paged library endpoint, 50 at a time up to [`IMPORT_LIMIT`]; `fetch` gives
/// one page's ids and whether another page follows.
async fn track_ids<F, Fut>(
    session: &Session,
    db: &Db,
    what: &str,
    fetch: F,
) -> Result<Vec<String>, ApiError>
where
    F: Fn(AuthCodePkceSpotify, u32) -> Fut,
    Fut: std::future::Future<
        Output = Result<(Vec<Option<TrackId<'static>>>, bool), rspotify::ClientError>,
    >,
{
    let mut ids = Vec::new();
    for offset in (0..IMPORT_LIMIT as u32).step_by(50) {
        let (page, more) = call(session, db, what, |c| fetch(c, offset)).await?;
        ids.extend(page.into_iter().flatten().map(|id| id.id().to_string()));
        if !more {
            break;
        }
    }
    Ok(ids)
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters stay).
pub(crate) fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a Connect device is doing, as `/me/player` says.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceState {
    pub device_id: Option<String>,
    pub track_id: Option<String>,
    pub is_playing: bool,
    pub progress_ms: u32,
}

impl Spotify {
    /// Plays one track (a catalog id is a Spotify track id) on the device from `position_ms`.
    pub async fn play(
        &self,
        user: &UserId,
        device_id: &str,
        track_id: &str,
        position_ms: u32,
    ) -> Result<(), ApiError> {
        let track = TrackId::from_id(track_id.to_string()).map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidField,
                format!("{track_id:?} is not a Spotify track id"),
            )
        })?;
        let session = self.session(user).await?;
        let device = device_id.to_string();
        call(&session, &self.inner.db, "starting playback", move |c| {
            let (track, device) = (track.clone(), device.clone());
            async move {
                c.start_uris_playback(
                    [PlayableId::Track(track)],
                    Some(&device),
                    None,
                    Some(chrono::Duration::milliseconds(position_ms as i64)),
                )
                .await
            }
        })
        .await
    }

    pub async fn pause(&self, user: &UserId, device_id: &str) -> Result<(), ApiError> {
        let session = self.session(user).await?;
        let device = device_id.to_string();
        call(&session, &self.inner.db, "pausing playback", move |c| {
            let device = device.clone();
            async move { c.pause_playback(Some(&device)).await }
        })
        .await
    }

    /// What the user's active device plays (`None`: no active device).
    pub async fn playback(&self, user: &UserId) -> Result<Option<DeviceState>, ApiError> {
        let session = self.session(user).await?;
        let context = call(
            &session,
            &self.inner.db,
            "reading the player",
            |c| async move { c.current_playback(None, None::<Vec<&AdditionalType>>).await },
        )
        .await?;
        Ok(context.map(|context| DeviceState {
            device_id: context.device.id,
            track_id: match context.item {
                Some(PlayableItem::Track(track)) => track.id.map(|id| id.id().to_string()),
                _ => None,
            },
            is_playing: context.is_playing,
            progress_ms: context
                .progress
                .map_or(0, |p| p.num_milliseconds().max(0) as u32),
        }))
    }
}

fn storage_unavailable(err: sqlx::Error) -> ApiError {
    tracing::error!(error = %err, "Spotify store");
    ApiError::new(
        ErrorCode::DependencyUnavailable,
        "the database is not reachable; nothing was changed, retry",
    )
    .retry_after(1)
}

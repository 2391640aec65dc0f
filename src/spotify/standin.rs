//! A faithful local stand-in for Spotify's accounts service and the parts of the Web API Chorus
//! uses, so the real client code (rspotify) runs unchanged against it in the tests, the browser
//! tests and demos without Spotify (`chorus spotify-standin`). Point `spotify.accounts_url` and
//! `spotify.api_url` at it.
//!
//! What it keeps faithful: Authorization Code with PKCE (S256; a wrong verifier, a reused or
//! expired code and a different redirect URI fail with `invalid_grant`), access tokens that
//! expire after an hour and refresh tokens that can be revoked, the player as a state machine
//! over the user's devices (play with explicit URIs, pause, next, seek, transfer, `/me/player`,
//! Spotify's own queue: add and read),
//! playlists (`POST /me/playlists`, items in batches of at most 100), top and saved tracks, and
//! the error answers: 401 expired or invalid token, 403 `PREMIUM_REQUIRED`, 404
//! `NO_ACTIVE_DEVICE`, 429 with `Retry-After`, 503 while "down". Under `/standin/` it has
//! controls that Spotify does not: set the account (Premium or not, devices, top and saved
//! tracks), inject faults, revoke or expire tokens, skip in "the Spotify app", and read its state.

use std::{
    collections::HashMap,
    net::TcpListener,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use actix_web::{
    dev::{Server, ServerHandle},
    http::{header, StatusCode},
    web, App, HttpRequest, HttpResponse, HttpServer,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The user every sign-in becomes.
pub const USER_ID: &str = "standin-user";
const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// What the stand-in's player assumes a track lasts (it does not know the catalog).
const TRACK_MS: u64 = 180_000;
/// Spotify's limit on URIs per playlist-items request.
const MAX_ITEMS_PER_REQUEST: usize = 100;

struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    issued: Instant,
}

struct Player {
    device_id: String,
    track: Option<String>,
    /// Spotify's own queue (added with `POST /me/player/queue`); `next` plays its first.
    queue: std::collections::VecDeque<String>,
    playing: bool,
    progress_ms: u64,
    since: Instant,
}

impl Player {
    fn progress(&self) -> u64 {
        let moved = if self.playing {
            self.since.elapsed().as_millis() as u64
        } else {
            0
        };
        (self.progress_ms + moved).min(TRACK_MS)
    }

    fn set(&mut self, track: Option<String>, progress_ms: u64, playing: bool) {
        self.track = track;
        self.progress_ms = progress_ms;
        self.playing = playing;
        self.since = Instant::now();
    }
}

struct Playlist {
    name: String,
    description: Option<String>,
    public: bool,
    uris: Vec<String>,
    snapshot: u32,
}

/// Faults the stand-in injects, as Spotify would fail.
#[derive(Default)]
struct Faults {
    /// This many next Web API requests are answered 429 with `Retry-After: retry_after_s`.
    rate_limited: u32,
    retry_after_s: u64,
    /// Every request is answered 503.
    down: bool,
    /// Every request waits this long first.
    delay: Duration,
}

struct State {
    client_id: String,
    premium: bool,
    devices: Vec<(String, String)>,
    player: Option<Player>,
    codes: HashMap<String, Code>,
    /// Access token → when it expires.
    access: HashMap<String, Instant>,
    refresh: HashMap<String, bool>,
    playlists: HashMap<String, Playlist>,
    top_tracks: Vec<String>,
    saved_tracks: Vec<String>,
    faults: Faults,
    /// "METHOD /path" → count, for tests to see what the client did.
    requests: HashMap<String, u32>,
    /// The URIs of every play request, in order.
    plays: Vec<Vec<String>>,
}

impl State {
    fn new(client_id: &str) -> Self {
        Self {
            client_id: client_id.to_string(),
            premium: true,
            devices: vec![("standin-speaker".into(), "Living room speaker".into())],
            player: None,
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            playlists: HashMap::new(),
            top_tracks: Vec::new(),
            saved_tracks: Vec::new(),
            faults: Faults::default(),
            requests: HashMap::new(),
            plays: Vec::new(),
        }
    }
}

type Shared = Arc<Mutex<State>>;

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running stand-in.
pub struct SpotifyStandIn {
    /// e.g. `http://127.0.0.1:PORT/` (the accounts service and the API share it).
    pub base_url: String,
    pub handle: ServerHandle,
}

impl SpotifyStandIn {
    /// Binds `listener` and returns the server to run and its handle.
    pub fn build(listener: TcpListener, client_id: &str) -> std::io::Result<(Self, Server)> {
        let port = listener.local_addr()?.port();
        let shared: Shared = Arc::new(Mutex::new(State::new(client_id)));
        let data = web::Data::new(shared);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::JsonConfig::default().error_handler(|err, _| {
                    let body = api_error(StatusCode::BAD_REQUEST, &format!("{err}"), None);
                    actix_web::error::InternalError::from_response(err, body).into()
                }))
                .route("/authorize", web::get().to(authorize))
                .route("/api/token", web::post().to(token))
                .service(
                    web::scope("/standin")
                        .route("/state", web::get().to(read_state))
                        .route("/account", web::post().to(set_account))
                        .route("/faults", web::post().to(set_faults))
                        .route("/revoke", web::post().to(revoke))
                        .route("/expire", web::post().to(expire))
                        .route("/app/next", web::post().to(app_next)),
                )
                .service(web::scope("/v1").default_service(web::to(api)))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        Ok((
            Self {
                base_url: format!("http://127.0.0.1:{port}/"),
                handle,
            },
            server,
        ))
    }

    /// The API base URL rspotify wants (`…/v1/`).
    pub fn api_url(&self) -> String {
        format!("{}v1/", self.base_url)
    }
}

fn api_error(status: StatusCode, message: &str, reason: Option<&str>) -> HttpResponse {
    let mut error = json!({"status": status.as_u16(), "message": message});
    if let Some(reason) = reason {
        error["reason"] = json!(reason);
    }
    HttpResponse::build(status).json(json!({ "error": error }))
}

fn oauth_error(error: &str, description: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": error, "error_description": description}))
}

fn random_id(len: usize) -> String {
    let mut id = String::new();
    while id.len() < len {
        id.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    id.truncate(len);
    id
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    client_id: Option<String>,
    response_type: Option<String>,
    redirect_uri: Option<String>,
    code_challenge_method: Option<String>,
    code_challenge: Option<String>,
    state: Option<String>,
}

/// Spotify shows its sign-in and consent page here; the stand-in's user is always signed in and
/// agrees, so it redirects straight back with a code (or answers errors as Spotify's page does).
async fn authorize(shared: web::Data<Shared>, query: web::Query<AuthorizeQuery>) -> HttpResponse {
    let q = query.into_inner();
    let mut state = lock(&shared);
    if q.client_id.as_deref() != Some(state.client_id.as_str()) {
        return HttpResponse::BadRequest().body("INVALID_CLIENT: Invalid client");
    }
    let Some(redirect_uri) = q.redirect_uri else {
        return HttpResponse::BadRequest().body("INVALID_CLIENT: Invalid redirect URI");
    };
    // Spotify accepts https, or http only to a loopback address.
    let loopback = ["http://127.0.0.1", "http://[::1]"]
        .iter()
        .any(|p| redirect_uri.starts_with(p));
    if !redirect_uri.starts_with("https://") && !loopback {
        return HttpResponse::BadRequest().body("INVALID_CLIENT: Insecure redirect URI");
    }
    if q.response_type.as_deref() != Some("code") {
        return HttpResponse::BadRequest().body("unsupported_response_type");
    }
    let (Some("S256"), Some(challenge)) = (q.code_challenge_method.as_deref(), q.code_challenge)
    else {
        // Without PKCE, the Authorization Code flow needs a client secret Chorus never has.
        return HttpResponse::BadRequest()
            .body("code_challenge and code_challenge_method=S256 are required");
    };
    let code = random_id(64);
    let client_id = state.client_id.clone();
    state.codes.insert(
        code.clone(),
        Code {
            client_id,
            redirect_uri: redirect_uri.clone(),
            challenge,
            issued: Instant::now(),
        },
    );
    let mut location = format!("{redirect_uri}?code={code}");
    if let Some(s) = q.state {
        location.push_str(&format!("&state={}", super::urlencode(&s)));
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

async fn token(
    shared: web::Data<Shared>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let form = form.into_inner();
    let mut state = lock(&shared);
    if form.get("client_id") != Some(&state.client_id) {
        return HttpResponse::BadRequest()
            .json(json!({"error": "invalid_client", "error_description": "Invalid client"}));
    }
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = form.get("code").cloned().unwrap_or_default();
            // A code works once, whatever happens next.
            let Some(issued) = state.codes.remove(&code) else {
                return oauth_error("invalid_grant", "Invalid authorization code");
            };
            if issued.issued.elapsed() > CODE_LIFETIME {
                return oauth_error("invalid_grant", "Authorization code expired");
            }
            if form.get("redirect_uri") != Some(&issued.redirect_uri) {
                return oauth_error("invalid_grant", "Invalid redirect URI");
            }
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if challenge != issued.challenge || issued.client_id != state.client_id {
                return oauth_error("invalid_grant", "code_verifier was incorrect");
            }
            let refresh = random_id(64);
            state.refresh.insert(refresh.clone(), true);
            issue_access(&mut state, Some(refresh))
        }
        Some("refresh_token") => {
            let refresh = form.get("refresh_token").cloned().unwrap_or_default();
            if state.refresh.get(&refresh) != Some(&true) {
                return oauth_error("invalid_grant", "Refresh token revoked");
            }
            // Spotify may or may not rotate the refresh token; this one keeps it.
            issue_access(&mut state, None)
        }
        _ => oauth_error(
            "unsupported_grant_type",
            "grant_type must be authorization_code or refresh_token",
        ),
    }
}

fn issue_access(state: &mut State, refresh: Option<String>) -> HttpResponse {
    let access = random_id(96);
    state
        .access
        .insert(access.clone(), Instant::now() + ACCESS_TOKEN_LIFETIME);
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "scope": "user-read-playback-state user-modify-playback-state playlist-modify-private playlist-modify-public user-top-read user-library-read",
        "expires_in": ACCESS_TOKEN_LIFETIME.as_secs(),
    });
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    HttpResponse::Ok().json(body)
}

/// Every Web API request: faults first, then the bearer token, then the endpoint.
async fn api(shared: web::Data<Shared>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let delay = lock(&shared).faults.delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut state = lock(&shared);
    let path = request.path().trim_start_matches("/v1").to_string();
    let method = request.method().as_str().to_string();
    *state
        .requests
        .entry(format!("{method} {path}"))
        .or_default() += 1;
    if state.faults.down {
        return api_error(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable", None);
    }
    if state.faults.rate_limited > 0 {
        state.faults.rate_limited -= 1;
        return HttpResponse::TooManyRequests()
            .insert_header((header::RETRY_AFTER, state.faults.retry_after_s.to_string()))
            .json(json!({"error": {"status": 429, "message": "API rate limit exceeded"}}));
    }
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return api_error(StatusCode::UNAUTHORIZED, "No token provided", None);
    };
    match state.access.get(token) {
        None => return api_error(StatusCode::UNAUTHORIZED, "Invalid access token", None),
        Some(expires) if *expires <= Instant::now() => {
            return api_error(StatusCode::UNAUTHORIZED, "The access token expired", None)
        }
        Some(_) => {}
    }
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(value) => value,
            Err(_) => return api_error(StatusCode::BAD_REQUEST, "Error parsing JSON.", None),
        }
    };
    let query = web::Query::<HashMap<String, String>>::from_query(request.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let base = request.connection_info().scheme().to_string()
        + "://"
        + request.connection_info().host()
        + "/v1";
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["me"]) => HttpResponse::Ok().json(user_json(&base)),
        ("GET", ["me", "player", "devices"]) => HttpResponse::Ok().json(json!({
            "devices": state.devices.iter().map(|(id, name)| device_json(&state, id, name)).collect::<Vec<_>>()
        })),
        ("GET", ["me", "player"]) => playback(&state, &base),
        ("PUT", ["me", "player"]) => transfer(&mut state, &body),
        ("PUT", ["me", "player", "play"]) => play(&mut state, &query, &body),
        ("PUT", ["me", "player", "pause"]) => {
            player_command(&mut state, &query, |p| p.set(p.track.clone(), p.progress(), false))
        }
        ("POST", ["me", "player", "next"]) => player_command(&mut state, &query, |p| {
            // The next in Spotify's own queue, else (like Spotify at the end of a context) stop.
            match p.queue.pop_front() {
                Some(track) => p.set(Some(track), 0, true),
                None => p.set(None, 0, false),
            }
        }),
        ("GET", ["me", "player", "queue"]) => {
            let (current, queue) = match &state.player {
                Some(p) => (
                    p.track.as_deref().map(|id| track_json(id, &base)),
                    p.queue.iter().map(|id| track_json(id, &base)).collect(),
                ),
                None => (None, Vec::new()),
            };
            HttpResponse::Ok().json(json!({"currently_playing": current, "queue": queue}))
        }
        ("POST", ["me", "player", "queue"]) => {
            let Some(id) = query
                .get("uri")
                .and_then(|uri| uri.strip_prefix("spotify:track:"))
                .map(str::to_string)
            else {
                return api_error(StatusCode::BAD_REQUEST, "Invalid track uri", None);
            };
            player_command(&mut state, &query, |p| p.queue.push_back(id))
        }
        ("PUT", ["me", "player", "seek"]) => {
            let Some(position) = query.get("position_ms").and_then(|p| p.parse::<u64>().ok())
            else {
                return api_error(StatusCode::BAD_REQUEST, "Missing or invalid position_ms", None);
            };
            player_command(&mut state, &query, |p| {
                p.set(p.track.clone(), position.min(TRACK_MS), p.playing)
            })
        }
        ("POST", ["me", "playlists"]) => create_playlist(&mut state, &body, &base),
        ("POST", ["playlists", id, "items"]) => playlist_items(&mut state, id, &body, false),
        ("PUT", ["playlists", id, "items"]) => playlist_items(&mut state, id, &body, true),
        ("PUT", ["playlists", id]) => {
            let Some(playlist) = state.playlists.get_mut(*id) else {
                return api_error(StatusCode::NOT_FOUND, "Resource not found", None);
            };
            if let Some(name) = body["name"].as_str() {
                playlist.name = name.to_string();
            }
            if let Some(description) = body["description"].as_str() {
                playlist.description = Some(description.to_string());
            }
            HttpResponse::Ok().finish()
        }
        ("GET", ["me", "top", "tracks"]) => {
            let page: Vec<Value> = state.top_tracks.iter().map(|id| track_json(id, &base)).collect();
            paged(&page, &query, &base, "me/top/tracks")
        }
        ("GET", ["me", "tracks"]) => {
            let page: Vec<Value> = state
                .saved_tracks
                .iter()
                .map(|id| json!({"added_at": "2026-01-01T00:00:00Z", "track": track_json(id, &base)}))
                .collect();
            paged(&page, &query, &base, "me/tracks")
        }
        _ => api_error(StatusCode::NOT_FOUND, "Service not found", None),
    }
}

fn paged(items: &[Value], query: &HashMap<String, String>, base: &str, path: &str) -> HttpResponse {
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(20);
    let offset: usize = query
        .get("offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    if !(1..=50).contains(&limit) {
        return api_error(StatusCode::BAD_REQUEST, "Invalid limit", None);
    }
    let page: Vec<Value> = items.iter().skip(offset).take(limit).cloned().collect();
    let next = (offset + limit < items.len())
        .then(|| format!("{base}/{path}?offset={}&limit={limit}", offset + limit));
    let previous = (offset > 0).then(|| {
        format!(
            "{base}/{path}?offset={}&limit={limit}",
            offset.saturating_sub(limit)
        )
    });
    HttpResponse::Ok().json(json!({
        "href": format!("{base}/{path}?offset={offset}&limit={limit}"),
        "items": page,
        "limit": limit,
        "next": next,
        "offset": offset,
        "previous": previous,
        "total": items.len(),
    }))
}

fn user_json(base: &str) -> Value {
    json!({
        "display_name": "Stand-in Listener",
        "external_urls": {"spotify": format!("https://open.spotify.com/user/{USER_ID}")},
        "href": format!("{base}/users/{USER_ID}"),
        "id": USER_ID,
        "images": [],
        "type": "user",
        "uri": format!("spotify:user:{USER_ID}"),
    })
}

fn device_json(state: &State, id: &str, name: &str) -> Value {
    let active = state.player.as_ref().is_some_and(|p| p.device_id == id);
    json!({
        "id": id,
        "is_active": active,
        "is_private_session": false,
        "is_restricted": false,
        "name": name,
        "type": "Speaker",
        "volume_percent": 60,
        "supports_volume": true,
    })
}

fn track_json(id: &str, base: &str) -> Value {
    json!({
        "album": {
            "album_type": "album",
            "artists": [{"external_urls": {}, "href": null, "id": null, "name": "Stand-in Artist", "type": "artist", "uri": null}],
            "external_urls": {},
            "href": null,
            "id": null,
            "images": [],
            "name": "Stand-in Album",
            "release_date": "2020-01-01",
            "release_date_precision": "day",
            "total_tracks": 1,
            "type": "album",
            "uri": null,
        },
        "artists": [{"external_urls": {}, "href": null, "id": null, "name": "Stand-in Artist", "type": "artist", "uri": null}],
        "disc_number": 1,
        "duration_ms": TRACK_MS,
        "explicit": false,
        "external_ids": {},
        "external_urls": {"spotify": format!("https://open.spotify.com/track/{id}")},
        "href": format!("{base}/tracks/{id}"),
        "id": id,
        "is_local": false,
        "name": format!("Track {id}"),
        "popularity": 50,
        "preview_url": null,
        "track_number": 1,
        "type": "track",
        "uri": format!("spotify:track:{id}"),
    })
}

fn playback(state: &State, base: &str) -> HttpResponse {
    let Some(player) = &state.player else {
        // No active device: Spotify answers 204 with no body.
        return HttpResponse::NoContent().finish();
    };
    let name = state
        .devices
        .iter()
        .find(|(id, _)| *id == player.device_id)
        .map_or("", |(_, name)| name.as_str());
    HttpResponse::Ok().json(json!({
        "device": device_json(state, &player.device_id, name),
        "repeat_state": "off",
        "shuffle_state": false,
        "context": null,
        "timestamp": chrono::Utc::now().timestamp_millis(),
        "progress_ms": player.track.as_ref().map(|_| player.progress()),
        "is_playing": player.playing && player.progress() < TRACK_MS,
        "item": player.track.as_deref().map(|id| track_json(id, base)),
        "currently_playing_type": if player.track.is_some() { "track" } else { "unknown" },
        "actions": {"disallows": {}},
    }))
}

fn transfer(state: &mut State, body: &Value) -> HttpResponse {
    let Some(id) = body["device_ids"][0].as_str() else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "Required field device_ids missing",
            None,
        );
    };
    if !state.premium {
        return premium_required();
    }
    if !state.devices.iter().any(|(d, _)| d == id) {
        return device_not_found();
    }
    let play = body["play"].as_bool().unwrap_or(false);
    let (track, progress, playing) = match &state.player {
        Some(p) => (p.track.clone(), p.progress(), play || p.playing),
        None => (None, 0, false),
    };
    let queue = spotify_queue(state);
    let mut player = Player {
        device_id: id.to_string(),
        track: None,
        queue,
        playing: false,
        progress_ms: 0,
        since: Instant::now(),
    };
    player.set(track, progress, playing);
    state.player = Some(player);
    HttpResponse::NoContent().finish()
}

/// Spotify's own queue survives moving playback between devices and starting a track.
fn spotify_queue(state: &State) -> std::collections::VecDeque<String> {
    state
        .player
        .as_ref()
        .map(|p| p.queue.clone())
        .unwrap_or_default()
}

fn premium_required() -> HttpResponse {
    api_error(
        StatusCode::FORBIDDEN,
        "Player command failed: Premium required",
        Some("PREMIUM_REQUIRED"),
    )
}

/// The device a player command targets: `device_id` if given (it must exist), else the active
/// one (404 `NO_ACTIVE_DEVICE` without). The refusal is the answer to send.
fn target_device(
    state: &State,
    query: &HashMap<String, String>,
) -> Result<String, fn() -> HttpResponse> {
    if !state.premium {
        return Err(premium_required);
    }
    match query.get("device_id") {
        Some(id) if state.devices.iter().any(|(d, _)| d == id) => Ok(id.clone()),
        Some(_) => Err(device_not_found),
        None => state
            .player
            .as_ref()
            .map(|p| p.device_id.clone())
            .ok_or(no_active_device),
    }
}

fn device_not_found() -> HttpResponse {
    api_error(StatusCode::NOT_FOUND, "Device not found", None)
}

fn no_active_device() -> HttpResponse {
    api_error(
        StatusCode::NOT_FOUND,
        "Player command failed: No active device found",
        Some("NO_ACTIVE_DEVICE"),
    )
}

fn play(state: &mut State, query: &HashMap<String, String>, body: &Value) -> HttpResponse {
    let device = match target_device(state, query) {
        Ok(device) => device,
        Err(refusal) => return refusal(),
    };
    let position = body["position_ms"].as_u64().unwrap_or(0);
    let uris: Option<Vec<String>> = body["uris"].as_array().map(|uris| {
        uris.iter()
            .filter_map(|u| u.as_str().map(str::to_string))
            .collect()
    });
    let track = match &uris {
        Some(uris) => {
            let Some(first) = uris.first() else {
                return api_error(StatusCode::BAD_REQUEST, "uris must not be empty", None);
            };
            let Some(id) = first.strip_prefix("spotify:track:") else {
                return api_error(StatusCode::BAD_REQUEST, "Invalid track uri", None);
            };
            state.plays.push(uris.clone());
            Some(id.to_string())
        }
        // No URIs: resume what was playing.
        None => state.player.as_ref().and_then(|p| p.track.clone()),
    };
    let resume_at = match (&uris, &state.player) {
        (None, Some(p)) => p.progress(),
        _ => position,
    };
    let queue = spotify_queue(state);
    let mut player = Player {
        device_id: device,
        track: None,
        queue,
        playing: false,
        progress_ms: 0,
        since: Instant::now(),
    };
    player.set(track, resume_at.min(TRACK_MS), true);
    state.player = Some(player);
    HttpResponse::NoContent().finish()
}

fn player_command(
    state: &mut State,
    query: &HashMap<String, String>,
    change: impl FnOnce(&mut Player),
) -> HttpResponse {
    if let Err(refusal) = target_device(state, query) {
        return refusal();
    }
    match &mut state.player {
        Some(player) => {
            change(player);
            HttpResponse::NoContent().finish()
        }
        None => no_active_device(),
    }
}

fn playlist_json(id: &str, playlist: &Playlist, base: &str) -> Value {
    json!({
        "collaborative": false,
        "description": playlist.description,
        "external_urls": {"spotify": format!("https://open.spotify.com/playlist/{id}")},
        "followers": {"href": null, "total": 0},
        "href": format!("{base}/playlists/{id}"),
        "id": id,
        "images": [],
        "name": playlist.name,
        "owner": {"display_name": "Stand-in Listener", "external_urls": {}, "href": format!("{base}/users/{USER_ID}"), "id": USER_ID, "type": "user", "uri": format!("spotify:user:{USER_ID}")},
        "public": playlist.public,
        "snapshot_id": format!("snapshot-{}", playlist.snapshot),
        "tracks": {"href": format!("{base}/playlists/{id}/items"), "items": [], "limit": 100, "next": null, "offset": 0, "previous": null, "total": playlist.uris.len()},
        "items": {"href": format!("{base}/playlists/{id}/items"), "items": [], "limit": 100, "next": null, "offset": 0, "previous": null, "total": playlist.uris.len()},
        "type": "playlist",
        "uri": format!("spotify:playlist:{id}"),
    })
}

fn create_playlist(state: &mut State, body: &Value, base: &str) -> HttpResponse {
    let Some(name) = body["name"].as_str() else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "Missing required field: name",
            None,
        );
    };
    let id = random_id(22);
    let playlist = Playlist {
        name: name.to_string(),
        description: body["description"].as_str().map(str::to_string),
        public: body["public"].as_bool().unwrap_or(true),
        uris: Vec::new(),
        snapshot: 1,
    };
    let json = playlist_json(&id, &playlist, base);
    state.playlists.insert(id, playlist);
    HttpResponse::Created().json(json)
}

fn playlist_items(state: &mut State, id: &str, body: &Value, replace: bool) -> HttpResponse {
    let Some(playlist) = state.playlists.get_mut(id) else {
        return api_error(StatusCode::NOT_FOUND, "Resource not found", None);
    };
    let uris: Vec<String> = body["uris"]
        .as_array()
        .map(|u| {
            u.iter()
                .filter_map(|u| u.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if uris.len() > MAX_ITEMS_PER_REQUEST {
        return api_error(StatusCode::BAD_REQUEST, "Too many ids requested", None);
    }
    if uris.iter().any(|u| !u.starts_with("spotify:track:")) {
        return api_error(StatusCode::BAD_REQUEST, "Invalid track uri", None);
    }
    if replace {
        playlist.uris = uris;
    } else {
        playlist.uris.extend(uris);
    }
    playlist.snapshot += 1;
    let status = if replace {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    HttpResponse::build(status)
        .json(json!({"snapshot_id": format!("snapshot-{}", playlist.snapshot)}))
}

async fn read_state(shared: web::Data<Shared>) -> HttpResponse {
    let state = lock(&shared);
    let player = state.player.as_ref().map(|p| {
        json!({"device_id": p.device_id, "track_id": p.track, "is_playing": p.playing, "progress_ms": p.progress()})
    });
    let playlists: serde_json::Map<String, Value> = state
        .playlists
        .iter()
        .map(|(id, p)| {
            (
                id.clone(),
                json!({"name": p.name, "description": p.description, "uris": p.uris}),
            )
        })
        .collect();
    HttpResponse::Ok().json(json!({
        "premium": state.premium,
        "player": player,
        "plays": state.plays,
        "playlists": playlists,
        "requests": state.requests,
        // For tests that check tokens never leak (Spotify has no such thing).
        "access_tokens": state.access.keys().collect::<Vec<_>>(),
        "refresh_tokens": state.refresh.keys().collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Account {
    premium: Option<bool>,
    /// `[[id, name], …]`
    devices: Option<Vec<(String, String)>>,
    top_tracks: Option<Vec<String>>,
    saved_tracks: Option<Vec<String>>,
}

async fn set_account(shared: web::Data<Shared>, body: web::Json<Account>) -> HttpResponse {
    let mut state = lock(&shared);
    let account = body.into_inner();
    if let Some(premium) = account.premium {
        state.premium = premium;
    }
    if let Some(devices) = account.devices {
        if state
            .player
            .as_ref()
            .is_some_and(|p| !devices.iter().any(|(id, _)| *id == p.device_id))
        {
            state.player = None;
        }
        state.devices = devices;
    }
    if let Some(top) = account.top_tracks {
        state.top_tracks = top;
    }
    if let Some(saved) = account.saved_tracks {
        state.saved_tracks = saved;
    }
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsBody {
    rate_limited: Option<u32>,
    retry_after_s: Option<u64>,
    down: Option<bool>,
    delay_ms: Option<u64>,
}

async fn set_faults(shared: web::Data<Shared>, body: web::Json<FaultsBody>) -> HttpResponse {
    let mut state = lock(&shared);
    let faults = body.into_inner();
    if let Some(n) = faults.rate_limited {
        state.faults.rate_limited = n;
    }
    if let Some(s) = faults.retry_after_s {
        state.faults.retry_after_s = s;
    }
    if let Some(down) = faults.down {
        state.faults.down = down;
    }
    if let Some(ms) = faults.delay_ms {
        state.faults.delay = Duration::from_millis(ms);
    }
    HttpResponse::NoContent().finish()
}

/// The user removed the app's access: every token stops working.
async fn revoke(shared: web::Data<Shared>) -> HttpResponse {
    let mut state = lock(&shared);
    state.access.clear();
    state.refresh.values_mut().for_each(|alive| *alive = false);
    HttpResponse::NoContent().finish()
}

/// An hour passed: every access token has expired (refresh tokens still work).
async fn expire(shared: web::Data<Shared>) -> HttpResponse {
    let mut state = lock(&shared);
    let now = Instant::now();
    state.access.values_mut().for_each(|expires| *expires = now);
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppNext {
    /// What the user picked in the Spotify app (absent: nothing plays next).
    track_id: Option<String>,
}

/// The user skipped (or picked something else) in the Spotify app itself.
async fn app_next(shared: web::Data<Shared>, body: web::Json<AppNext>) -> HttpResponse {
    let mut state = lock(&shared);
    let track = body.into_inner().track_id;
    match &mut state.player {
        Some(player) => {
            let playing = track.is_some();
            player.set(track, 0, playing);
            HttpResponse::NoContent().finish()
        }
        None => api_error(StatusCode::NOT_FOUND, "no active device", None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rspotify::model::{
        CurrentPlaybackContext, CurrentUserQueue, FullPlaylist, FullTrack, PrivateUser,
    };

    /// The stand-in's JSON is what rspotify's models read (they follow Spotify's reference).
    #[test]
    fn answers_parse_as_rspotify_models() {
        let base = "http://127.0.0.1:1/v1";
        serde_json::from_value::<PrivateUser>(user_json(base)).unwrap();
        serde_json::from_value::<FullTrack>(track_json("4uLU6hMCjMI75M1A2tKUQC", base)).unwrap();
        let playlist = Playlist {
            name: "Friday".into(),
            description: None,
            public: false,
            uris: vec![],
            snapshot: 1,
        };
        serde_json::from_value::<FullPlaylist>(playlist_json("p", &playlist, base)).unwrap();
        let mut state = State::new("c");
        state.player = Some(Player {
            device_id: "standin-speaker".into(),
            track: Some("4uLU6hMCjMI75M1A2tKUQC".into()),
            queue: ["7ouMYWpwJ422jRcDASZB7P".to_string()].into(),
            playing: true,
            progress_ms: 0,
            since: Instant::now(),
        });
        let response = playback(&state, base);
        let body = actix_web::body::to_bytes(response.into_body());
        let body = futures_util::FutureExt::now_or_never(body)
            .unwrap()
            .unwrap();
        let context: CurrentPlaybackContext = serde_json::from_slice(&body).unwrap();
        assert!(context.is_playing);
        let queue = json!({
            "currently_playing": track_json("4uLU6hMCjMI75M1A2tKUQC", base),
            "queue": [track_json("7ouMYWpwJ422jRcDASZB7P", base)],
        });
        serde_json::from_value::<CurrentUserQueue>(queue).unwrap();
    }
}

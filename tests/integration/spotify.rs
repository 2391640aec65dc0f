//! Spotify through the real rspotify client against the local stand-in (src/spotify/standin.rs):
//! sign-in with PKCE and its failures (forged or replayed state, a code for another verifier,
//! a declined consent), tokens that expire and refresh or get revoked, devices, saving a room
//! as a playlist in batches of 100 (again: the same playlist), the opt-in import, and Spotify
//! rate limiting or down.

use std::net::TcpListener;

use chorus::{
    config::{RealtimeSettings, SpotifySettings},
    spotify::standin::{SpotifyStandIn, USER_ID},
};
use serde_json::{json, Value};

use crate::{
    groups::{connect, group_of, track_id},
    helpers::{assert_error, spawn_app_with, AppOptions, Store, TestApp},
};

const CLIENT_ID: &str = "test-client";

struct Setup {
    app: TestApp,
    standin: SpotifyStandIn,
    http: reqwest::Client,
}

async fn setup(allow_import: bool) -> Setup {
    setup_on(allow_import, Store::Sqlite, 5_000).await
}

async fn setup_on(allow_import: bool, store: Store, poll_interval_ms: u64) -> Setup {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (standin, server) = SpotifyStandIn::build(listener, CLIENT_ID).unwrap();
    actix_web::rt::spawn(server);
    let app = spawn_app_with(AppOptions {
        store,
        spotify: SpotifySettings {
            client_id: Some(CLIENT_ID.into()),
            accounts_url: standin.base_url.clone(),
            api_url: standin.api_url(),
            allow_import,
            poll_interval_ms,
            // Sealed tokens on SQLite; the PostgreSQL run keeps them as issued (no key).
            token_key: (store == Store::Sqlite).then(|| {
                chorus::config::Secret::new("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            }),
            ..SpotifySettings::default()
        },
        realtime: RealtimeSettings {
            room_ops_per_second: 1_000.0,
            room_op_burst: 1_000,
            ops_per_second: 1_000.0,
            op_burst: 1_000,
            ..RealtimeSettings::default()
        },
        ..AppOptions::default()
    })
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Setup { app, standin, http }
}

impl Setup {
    async fn control(&self, path: &str, body: Value) {
        let response = self
            .http
            .post(format!("{}standin/{path}", self.standin.base_url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }

    async fn standin_state(&self) -> Value {
        self.http
            .get(format!("{}standin/state", self.standin.base_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Spotify's consent page answered: the callback URL it sends the browser to.
    async fn consent(&self, token: &str, return_to: &str) -> String {
        let body: Value = self
            .app
            .post_json_as(
                "/api/v1/spotify/login",
                &json!({"return_to": return_to}),
                token,
            )
            .await
            .json()
            .await
            .unwrap();
        let authorize = body["authorize_url"].as_str().expect("an authorize_url");
        assert!(authorize.starts_with(&self.standin.base_url), "{authorize}");
        assert!(
            authorize.contains("code_challenge_method=S256"),
            "{authorize}"
        );
        let response = self.http.get(authorize).send().await.unwrap();
        assert_eq!(response.status(), 303);
        location(&response)
    }

    /// Follows the stand-in's redirect to Chorus's callback; where Chorus sends the browser.
    async fn callback(&self, url: &str) -> String {
        let path = url.split_once("/api/v1/").expect("a Chorus callback URL").1;
        let response = self
            .http
            .get(self.app.url(&format!("/api/v1/{path}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        location(&response)
    }

    async fn connect(&self, token: &str) {
        let back = self.consent(token, "#/").await;
        assert_eq!(self.callback(&back).await, "/?spotify=connected#/");
    }
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_string()
}

#[actix_web::test]
async fn a_host_signs_in_with_pkce_and_bad_callbacks_are_refused() {
    let s = setup(false).await;
    let (user, token) = s.app.create_user("Host").await;
    let status = s.app.get_json_as("/api/v1/spotify", &token).await;
    assert_eq!(status["state"], "disconnected");
    assert_eq!(status["available"], true);
    assert_error(
        s.app.get_as("/api/v1/spotify/devices", &token).await,
        409,
        "spotify_not_connected",
    )
    .await;

    // The redirect URI defaults to this server's callback on loopback.
    let back = s.consent(&token, "#/rooms").await;
    assert!(
        back.starts_with(&s.app.url("/api/v1/spotify/callback?code=")),
        "{back}"
    );
    assert_eq!(s.callback(&back).await, "/?spotify=connected#/rooms");
    let status = s.app.get_json_as("/api/v1/spotify", &token).await;
    assert_eq!(status["state"], "connected");
    assert_eq!(status["spotify_user_id"], USER_ID);
    // Tokens stay on the server.
    let text = status.to_string();
    assert!(!text.contains("token"), "{text}");
    let stored: (String,) =
        sqlx::query_as("SELECT access_token FROM spotify_accounts WHERE user_id = $1")
            .bind(&user)
            .fetch_one(s.app.state.db.pool())
            .await
            .unwrap();
    assert!(
        stored.0.starts_with("enc1:"),
        "sealed at rest: {}",
        stored.0
    );

    // The same callback again (a replayed state) fails, and so does a forged state.
    let replayed = s.callback(&back).await;
    assert!(
        replayed.starts_with("/?spotify=failed&message="),
        "{replayed}"
    );
    let forged = back.replace("state=", "state=x");
    assert!(s.callback(&forged).await.starts_with("/?spotify=failed"));
    // A code issued for one login's challenge, brought back with another login's state (and so
    // its verifier), is refused by Spotify.
    let first = s.consent(&token, "#/").await;
    let second = s.consent(&token, "#/").await;
    let code = first
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let state = second.split("state=").nth(1).unwrap();
    let crossed = format!(
        "{}?code={code}&state={state}",
        first.split('?').next().unwrap()
    );
    let crossed = s.callback(&crossed).await;
    assert!(
        crossed.starts_with("/?spotify=failed&message=Spotify%20did%20not%20accept"),
        "{crossed}"
    );
    // Declined on Spotify's page.
    let declined = s
        .callback(
            &s.app
                .url("/api/v1/spotify/callback?error=access_denied&state=zz"),
        )
        .await;
    assert_eq!(declined, "/?spotify=denied#/");
    // A return page outside the web app is refused up front.
    assert_error(
        s.app
            .post_json_as(
                "/api/v1/spotify/login",
                &json!({"return_to": "https://evil.example"}),
                &token,
            )
            .await,
        422,
        "invalid_field",
    )
    .await;
    // The browser's way in: a ticket, then a redirect to the consent page.
    let ticket = crate::sockets::ticket(&s.app, &token).await;
    let response = s
        .http
        .get(s.app.url(&format!("/api/v1/spotify/login?ticket={ticket}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    assert!(location(&response).starts_with(&format!("{}authorize?", s.standin.base_url)));
    let again = s
        .http
        .get(s.app.url(&format!("/api/v1/spotify/login?ticket={ticket}")))
        .send()
        .await
        .unwrap();
    assert_error(again, 401, "invalid_ticket").await;

    // No token Spotify issued reaches a log line (rspotify logs request headers at debug).
    s.app.get_json_as("/api/v1/spotify/devices", &token).await;
    let state = s.standin_state().await;
    let logs = crate::helpers::captured_logs();
    for secret in state["access_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .chain(state["refresh_tokens"].as_array().unwrap())
    {
        assert!(
            !logs.contains(secret.as_str().unwrap()),
            "a Spotify token reached the logs"
        );
    }
    // Disconnecting forgets the tokens.
    let response = s
        .app
        .client
        .delete(s.app.url("/api/v1/spotify"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        s.app.get_json_as("/api/v1/spotify", &token).await["state"],
        "disconnected"
    );
}

#[actix_web::test]
async fn tokens_refresh_when_they_expire_and_a_revoked_sign_in_asks_to_reconnect() {
    let s = setup(false).await;
    let (_, token) = s.app.create_user("Host").await;
    s.connect(&token).await;
    let devices = s.app.get_json_as("/api/v1/spotify/devices", &token).await;
    assert_eq!(devices["devices"][0]["name"], "Living room speaker");

    // Spotify expires the access token early: one 401, a refresh, the same answer.
    s.control("expire", json!({})).await;
    let devices = s.app.get_json_as("/api/v1/spotify/devices", &token).await;
    assert_eq!(devices["devices"].as_array().unwrap().len(), 1);
    let state = s.standin_state().await;
    assert_eq!(state["requests"]["GET /me/player/devices"], 3, "{state}");

    // Rate limited: the caller hears when to retry.
    s.control("faults", json!({"rate_limited": 1, "retry_after_s": 7}))
        .await;
    let limited = s.app.get_as("/api/v1/spotify/devices", &token).await;
    assert_eq!(limited.headers()["retry-after"], "7");
    assert_error(limited, 503, "spotify_unavailable").await;
    // Down.
    s.control("faults", json!({"down": true})).await;
    assert_error(
        s.app.get_as("/api/v1/spotify/devices", &token).await,
        503,
        "spotify_unavailable",
    )
    .await;
    s.control("faults", json!({"down": false})).await;
    // Slow: every call has a deadline (8 s), after which the caller hears Spotify is not answering.
    s.control("faults", json!({"delay_ms": 8_500})).await;
    let started = std::time::Instant::now();
    let slow = s.app.get_as("/api/v1/spotify/devices", &token).await;
    assert!(
        started.elapsed() < std::time::Duration::from_millis(8_400),
        "{:?}",
        started.elapsed()
    );
    let body = assert_error(slow, 503, "spotify_unavailable").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not answer in time"),
        "{body}"
    );
    s.control("faults", json!({"delay_ms": 0})).await;

    // The user removed Chorus's access in their Spotify account.
    s.control("revoke", json!({})).await;
    assert_error(
        s.app.get_as("/api/v1/spotify/devices", &token).await,
        409,
        "spotify_reconnect",
    )
    .await;
    assert_eq!(
        s.app.get_json_as("/api/v1/spotify", &token).await["state"],
        "reconnect"
    );
    // Signing in again fixes it.
    s.connect(&token).await;
    assert_eq!(
        s.app.get_json_as("/api/v1/spotify", &token).await["state"],
        "connected"
    );
    s.app.get_json_as("/api/v1/spotify/devices", &token).await;
}

#[actix_web::test]
async fn a_room_is_saved_as_one_playlist_on_sqlite() {
    a_room_is_saved_as_one_playlist_in_batches_of_100(Store::Sqlite).await;
}

#[actix_web::test]
async fn a_room_is_saved_as_one_playlist_on_postgres() {
    a_room_is_saved_as_one_playlist_in_batches_of_100(Store::Postgres).await;
}

async fn a_room_is_saved_as_one_playlist_in_batches_of_100(store: Store) {
    let s = setup_on(false, store, 5_000).await;
    let (group_id, members) = group_of(&s.app, &["Host", "Guest"], json!({})).await;
    let mut host = connect(&s.app, &members[0]).await;
    host.join(&group_id, None).await;
    for i in 0..150 {
        let (ack, _) = host
            .op(
                json!({"type": "add_track", "track_id": track_id(&s.app, i)}),
                &format!("a{i}"),
            )
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    host.op(json!({"type": "play"}), "play").await;
    host.op(json!({"type": "next"}), "next").await;
    let export = |include: &'static str| {
        let (app, token, group) = (&s.app, members[0].token.clone(), group_id.clone());
        async move {
            let response = app
                .post_json_as(
                    &format!("/api/v1/groups/{group}/spotify/export"),
                    &json!({"include": include}),
                    &token,
                )
                .await;
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, body) = export("all").await;
    assert_eq!(status, 409, "not connected yet: {body}");
    assert_eq!(body["error"]["code"], "spotify_not_connected");
    s.connect(&members[0].token).await;
    let (status, first) = export("all").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["tracks"], 150);
    assert_eq!(first["updated"], false);
    let playlist = first["playlist_id"].as_str().unwrap();
    let state = s.standin_state().await;
    let uris = state["playlists"][playlist]["uris"].as_array().unwrap();
    assert_eq!(uris.len(), 150);
    // Played first, then playing, then up next: the room's order.
    assert_eq!(uris[0], format!("spotify:track:{}", track_id(&s.app, 0)));
    assert_eq!(uris[1], format!("spotify:track:{}", track_id(&s.app, 1)));
    assert_eq!(
        state["requests"][format!("PUT /playlists/{playlist}/items")],
        1
    );
    assert_eq!(
        state["requests"][format!("POST /playlists/{playlist}/items")],
        1
    );
    assert_eq!(state["playlists"][playlist]["name"], "Friday night");

    // Again, played only: the same playlist, now holding just that.
    let (status, second) = export("played").await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["playlist_id"], playlist);
    assert_eq!(second["updated"], true);
    assert_eq!(second["tracks"], 2);
    let state = s.standin_state().await;
    assert_eq!(state["playlists"].as_object().unwrap().len(), 1);
    assert_eq!(
        state["playlists"][playlist]["uris"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A member who is not connected, and a stranger.
    let (status, body) = {
        let response = s
            .app
            .post_json_as(
                &format!("/api/v1/groups/{group_id}/spotify/export"),
                &json!({}),
                &members[1].token,
            )
            .await;
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    };
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("spotify_not_connected"))
    );
    let (_, stranger) = s.app.create_user("Stranger").await;
    assert_error(
        s.app
            .post_json_as(
                &format!("/api/v1/groups/{group_id}/spotify/export"),
                &json!({}),
                &stranger,
            )
            .await,
        403,
        "not_a_member",
    )
    .await;
    assert_error(
        s.app
            .post_json_as(
                &format!("/api/v1/groups/{group_id}/spotify/export"),
                &json!({"include": "some"}),
                &members[0].token,
            )
            .await,
        422,
        "invalid_field",
    )
    .await;
}

#[actix_web::test]
async fn the_library_import_is_opt_in_and_likes_what_the_catalog_has() {
    let off = setup(false).await;
    let (_, token) = off.app.create_user("Listener").await;
    off.connect(&token).await;
    assert_error(
        off.app
            .post_json_as("/api/v1/spotify/import", &json!({}), &token)
            .await,
        403,
        "import_disabled",
    )
    .await;
    assert_eq!(
        off.app.get_json_as("/api/v1/spotify", &token).await["import_enabled"],
        false
    );

    let s = setup(true).await;
    let (_, token) = s.app.create_user("Listener").await;
    s.connect(&token).await;
    let top: Vec<String> = (0..60)
        .map(|i| track_id(&s.app, i))
        .chain(["0000000000000000000000".to_string()])
        .collect();
    let saved: Vec<String> = (50..70).map(|i| track_id(&s.app, i)).collect();
    s.control("account", json!({"top_tracks": top, "saved_tracks": saved}))
        .await;
    let imported = s
        .app
        .post_json_as("/api/v1/spotify/import", &json!({}), &token)
        .await;
    assert_eq!(imported.status(), 200);
    let imported: Value = imported.json().await.unwrap();
    // 61 top (two pages of 50) and 20 saved, 10 of them also top: 71 read, 70 in the catalog.
    assert_eq!(
        imported,
        json!({"read": 71, "liked": 70, "not_in_catalog": 1})
    );
    let profile = s.app.get_json_as("/api/v1/me/profile", &token).await;
    assert_eq!(profile["counts"]["like"], 70, "{profile}");
}

#[actix_web::test]
async fn without_a_spotify_app_the_endpoints_say_so() {
    let app = spawn_app_with(AppOptions::default()).await;
    let (_, token) = app.create_user("Host").await;
    let status = app.get_json_as("/api/v1/spotify", &token).await;
    assert_eq!(status["available"], false);
    assert_error(
        app.get_as("/api/v1/spotify/devices", &token).await,
        501,
        "spotify_not_configured",
    )
    .await;
    assert_error(
        app.get("/api/v1/spotify/callback?code=a&state=b").await,
        501,
        "spotify_not_configured",
    )
    .await;
}

/// The next `event` frame of this kind, skipping everything else.
async fn next_event(client: &mut crate::sockets::Client, kind: &str) -> Value {
    loop {
        let frame = client.next_of("event").await;
        if frame["event"]["kind"] == kind {
            return frame["event"].clone();
        }
    }
}

async fn wait_for(s: &Setup, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let state = s.standin_state().await;
        if check(&state) {
            return state;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "the stand-in never got to: {what}; it is at {}",
        s.standin_state().await
    );
}

#[actix_web::test]
async fn the_room_plays_on_the_hosts_device_follows_the_app_and_survives_spotify_failing() {
    // The device is read every 300 ms so that following the app takes moments.
    let s = setup_on(false, Store::Sqlite, 300).await;
    let (group_id, members) = group_of(&s.app, &["Host", "Guest"], json!({})).await;
    let token = members[0].token.clone();
    s.connect(&token).await;
    let mut host = connect(&s.app, &members[0]).await;
    let mut guest = connect(&s.app, &members[1]).await;
    host.join(&group_id, None).await;
    guest.join(&group_id, None).await;
    for i in 0..4 {
        host.op(
            json!({"type": "add_track", "track_id": track_id(&s.app, i)}),
            &format!("a{i}"),
        )
        .await;
    }
    let device = |id: Value| {
        let (app, token, group) = (&s.app, token.clone(), group_id.clone());
        async move {
            app.client
                .put(app.url(&format!("/api/v1/groups/{group}/spotify/device")))
                .bearer_auth(&token)
                .json(&json!({ "device_id": id }))
                .send()
                .await
                .unwrap()
        }
    };
    assert_error(device(json!("nope")).await, 409, "spotify_no_device").await;
    assert_eq!(device(json!("standin-speaker")).await.status(), 200);
    let chosen = next_event(&mut guest, "playback_target_changed").await;
    assert_eq!(
        chosen["payload"]["target"]["device_name"],
        "Living room speaker"
    );

    // Play: the device plays the room's track, by its explicit URI.
    host.op(json!({"type": "play"}), "play").await;
    assert_eq!(
        next_event(&mut guest, "playback_advanced").await["payload"]["reason"],
        "started"
    );
    let first = format!("spotify:track:{}", track_id(&s.app, 0));
    wait_for(&s, "playing the first track", |st| {
        st["player"]["is_playing"] == true
            && st["plays"].as_array().unwrap().last() == Some(&json!([first.clone()]))
    })
    .await;

    // The host skips in the Spotify app: the room moves on, and the device gets the room's next.
    s.control("app/next", json!({"track_id": "7ouMYWpwJ422jRcDASZB7P"}))
        .await;
    let moved = next_event(&mut guest, "playback_advanced").await;
    assert_eq!(moved["payload"]["reason"], "next");
    assert!(moved["actor"].is_null());
    let second = track_id(&s.app, 1);
    wait_for(&s, "playing the room's second track", |st| {
        st["player"]["track_id"] == second.as_str()
    })
    .await;

    // Premium gone: the room plays on (listen-along) and says why; back, the device follows.
    s.control("account", json!({"premium": false})).await;
    host.op(json!({"type": "next"}), "next").await;
    let status = guest.next_of("playback_status").await;
    assert_eq!(
        status["issue"]["code"], "spotify_premium_required",
        "{status}"
    );
    let view = s
        .app
        .get_json_as(&format!("/api/v1/groups/{group_id}"), &members[1].token)
        .await;
    assert_eq!(
        view["now_playing"]["entry"]["track"]["id"],
        track_id(&s.app, 2).as_str()
    );
    assert_eq!(view["playback_issue"]["code"], "spotify_premium_required");
    s.control("account", json!({"premium": true})).await;
    let status = guest.next_of("playback_status").await;
    assert!(status["issue"].is_null(), "{status}");
    let third = track_id(&s.app, 2);
    wait_for(&s, "catching up with the room", |st| {
        st["player"]["track_id"] == third.as_str()
    })
    .await;

    // Rate limited, then the sign-in revoked mid-session.
    s.control("faults", json!({"rate_limited": 3, "retry_after_s": 1}))
        .await;
    let status = guest.next_of("playback_status").await;
    assert_eq!(status["issue"]["code"], "spotify_unavailable", "{status}");
    // (Each refused call may say so in its own words; then the device follows again.)
    loop {
        let status = guest.next_of("playback_status").await;
        if status["issue"].is_null() {
            break;
        }
        assert_eq!(status["issue"]["code"], "spotify_unavailable", "{status}");
    }
    s.control("revoke", json!({})).await;
    let status = guest.next_of("playback_status").await;
    assert_eq!(status["issue"]["code"], "spotify_reconnect", "{status}");
    // The room still plays in listen-along mode.
    host.op(json!({"type": "next"}), "next2").await;
    let view = s
        .app
        .get_json_as(&format!("/api/v1/groups/{group_id}"), &members[1].token)
        .await;
    assert_eq!(
        view["now_playing"]["entry"]["track"]["id"],
        track_id(&s.app, 3).as_str()
    );

    // Back to listen-along only.
    let response = device(Value::Null).await;
    // (Choosing "none" needs no Spotify call, so it works with a dead sign-in too.)
    assert_eq!(response.status(), 200);
    let cleared = next_event(&mut guest, "playback_target_changed").await;
    assert!(cleared["payload"]["target"].is_null());
}

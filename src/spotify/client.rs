//! One user's rspotify client with their stored tokens: refreshed before they expire (and once
//! more if Spotify answers 401 anyway), new tokens stored, every call bounded in time, and
//! Spotify's answers turned into errors a user can act on.

use std::{future::Future, time::Duration};

use chrono::{TimeZone, Utc};
use rspotify::{
    clients::BaseClient, http::HttpError, model::UserId as SpotifyUserId, AuthCodePkceSpotify,
    ClientError, Token,
};

use super::seal::Seal;
use crate::{
    domain::{now_ms, UserId},
    error::{ApiError, ErrorCode},
    storage::{spotify as store, Db},
};

/// Refresh when the access token has less than this left.
const REFRESH_MARGIN_MS: i64 = 60_000;
/// Longest wait for one Spotify call before the room carries on without it.
const CALL_TIMEOUT: Duration = Duration::from_secs(8);

pub struct Session {
    client: AuthCodePkceSpotify,
    account: store::Account,
    seal: Seal,
}

impl Session {
    /// The user's client, refreshed first when its access token is (nearly) expired.
    pub async fn open(
        mut client: AuthCodePkceSpotify,
        db: &Db,
        seal: &Seal,
        user: &UserId,
    ) -> Result<Self, ApiError> {
        let account = store::account(db, user.as_str())
            .await
            .map_err(super::storage_unavailable)?
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::SpotifyNotConnected,
                    "connect your Spotify account first",
                )
            })?;
        if account.status == store::RECONNECT {
            return Err(reconnect());
        }
        let tokens = seal.open(&account.access_token).and_then(|access| {
            let refresh = account
                .refresh_token
                .as_deref()
                .map(|r| seal.open(r))
                .transpose()?;
            Ok((access, refresh))
        });
        let (access_token, refresh_token) = match tokens {
            Ok(tokens) => tokens,
            Err(why) => {
                // Nothing the user did: the operator changed or removed the key. A new
                // sign-in stores tokens that open.
                tracing::warn!(user = %account.user_id, "{why}; the user must reconnect Spotify");
                store::needs_reconnect(db, &account.user_id, now_ms())
                    .await
                    .map_err(super::storage_unavailable)?;
                return Err(reconnect());
            }
        };
        client.token = std::sync::Arc::new(rspotify::sync::Mutex::new(Some(Token {
            access_token,
            expires_in: chrono::Duration::milliseconds(account.expires_at - now_ms()),
            expires_at: Utc.timestamp_millis_opt(account.expires_at).single(),
            refresh_token,
            scopes: account.scopes.split(' ').map(str::to_string).collect(),
        })));
        let mut session = Self {
            client,
            account,
            seal: seal.clone(),
        };
        if session.account.expires_at - now_ms() < REFRESH_MARGIN_MS {
            session.refresh(db).await?;
        }
        Ok(session)
    }

    pub fn spotify_user_id(&self) -> Result<SpotifyUserId<'static>, ApiError> {
        SpotifyUserId::from_id(self.account.spotify_user_id.clone())
            .map_err(|e| ApiError::internal(anyhow::anyhow!("stored Spotify user id: {e}")))
    }

    /// Asks Spotify for a new access token and stores it; a refused refresh token marks the
    /// account for reconnecting.
    async fn refresh(&mut self, db: &Db) -> Result<(), ApiError> {
        let refreshed = tokio::time::timeout(CALL_TIMEOUT, self.client.refresh_token()).await;
        match refreshed {
            Err(_) => return Err(unavailable("refreshing the sign-in", None)),
            Ok(Err(ClientError::Http(http))) if is_status(&http, 400) || is_status(&http, 401) => {
                tracing::info!(user = %self.account.user_id, "Spotify refused the refresh token; the user must reconnect");
                store::needs_reconnect(db, &self.account.user_id, now_ms())
                    .await
                    .map_err(super::storage_unavailable)?;
                return Err(reconnect());
            }
            Ok(Err(err)) => return Err(spotify_error(err, "refreshing the sign-in").await),
            Ok(Ok(())) => {}
        }
        let token = self
            .client
            .token
            .lock()
            .await
            .map_err(|_| ApiError::internal(anyhow::anyhow!("rspotify token lock poisoned")))?
            .clone()
            .ok_or_else(reconnect)?;
        let expires_at = token
            .expires_at
            .map_or(now_ms() + 3_600_000, |at| at.timestamp_millis());
        let refresh = token.refresh_token.as_deref().map(|t| self.seal.seal(t));
        store::update_tokens(
            db,
            &self.account.user_id,
            &self.seal.seal(&token.access_token),
            refresh.as_deref(),
            expires_at,
            now_ms(),
        )
        .await
        .map_err(super::storage_unavailable)?;
        self.account.access_token = self.seal.seal(&token.access_token);
        self.account.expires_at = expires_at;
        Ok(())
    }
}

/// Runs one Spotify call (`what` names it in errors) with a deadline; a 401 refreshes the
/// token once and tries again.
pub async fn call<T, F, Fut>(
    session: &Session,
    db: &Db,
    what: &str,
    request: F,
) -> Result<T, ApiError>
where
    F: Fn(AuthCodePkceSpotify) -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let first = tokio::time::timeout(CALL_TIMEOUT, request(session.client.clone())).await;
    let err = match first {
        Err(_) => return Err(unavailable(what, None)),
        Ok(Ok(value)) => return Ok(value),
        Ok(Err(err)) => err,
    };
    let ClientError::Http(http) = &err else {
        return Err(spotify_error(err, what).await);
    };
    if !is_status(http, 401) {
        return Err(spotify_error(err, what).await);
    }
    // The access token was refused before its time (Spotify can): refresh once, try again.
    let mut retry = Session {
        client: session.client.clone(),
        account: session.account.clone(),
        seal: session.seal.clone(),
    };
    retry.refresh(db).await?;
    match tokio::time::timeout(CALL_TIMEOUT, request(retry.client.clone())).await {
        Err(_) => Err(unavailable(what, None)),
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(spotify_error(err, what).await),
    }
}

fn is_status(http: &HttpError, status: u16) -> bool {
    matches!(http, HttpError::StatusCode(response) if response.status().as_u16() == status)
}

fn reconnect() -> ApiError {
    ApiError::new(
        ErrorCode::SpotifyReconnect,
        "Spotify no longer accepts this sign-in (access was removed or it expired); connect Spotify again",
    )
}

fn no_device() -> ApiError {
    ApiError::new(
        ErrorCode::SpotifyNoDevice,
        "no active Spotify device: open Spotify on a phone, computer or speaker, then pick it here",
    )
}

fn unavailable(what: &str, retry_after: Option<u64>) -> ApiError {
    let err = ApiError::new(
        ErrorCode::SpotifyUnavailable,
        format!("Spotify did not answer in time ({what}); try again shortly"),
    );
    err.retry_after(retry_after.unwrap_or(5))
}

/// What a failed Spotify call means for the user.
pub async fn spotify_error(err: ClientError, what: &str) -> ApiError {
    let ClientError::Http(http) = err else {
        return ApiError::internal(anyhow::anyhow!("Spotify client ({what}): {err}"));
    };
    let response = match *http {
        HttpError::StatusCode(response) => response,
        HttpError::Client(err) => {
            tracing::warn!(error = %err, "Spotify unreachable ({what})");
            return ApiError::new(
                ErrorCode::SpotifyUnavailable,
                format!("Spotify is not reachable ({what}); try again shortly"),
            )
            .retry_after(5);
        }
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = response.text().await.unwrap_or_default();
    let reason = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"]["reason"].as_str().map(str::to_string))
        .unwrap_or_default();
    match (status, reason.as_str()) {
        (403, "PREMIUM_REQUIRED") => ApiError::new(
            ErrorCode::SpotifyPremiumRequired,
            "playback control needs Spotify Premium on the host's account",
        ),
        (404, "NO_ACTIVE_DEVICE") => no_device(),
        (404, _) if body.contains("Device not found") => no_device(),
        (401, _) => reconnect(),

        (429, _) => ApiError::new(
            ErrorCode::SpotifyUnavailable,
            format!("Spotify asks us to slow down ({what}); try again shortly"),
        )
        .retry_after(retry_after.unwrap_or(5)),
        (500..=599, _) => unavailable(what, retry_after),
        _ => {
            tracing::warn!(status, body = %body.chars().take(300).collect::<String>(), "Spotify refused a request ({what})");
            ApiError::new(
                ErrorCode::SpotifyUnavailable,
                format!("Spotify refused the request ({what}, HTTP {status})"),
            )
        }
    }
}

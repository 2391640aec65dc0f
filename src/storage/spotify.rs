//! Spotify sign-ins: logins waiting for their callback, each user's tokens, each room's export.

use sqlx::Row;

use super::Db;

/// A login waiting for Spotify's callback.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingLogin {
    pub user_id: String,
    pub verifier: String,
    pub return_to: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub user_id: String,
    pub spotify_user_id: String,
    pub display_name: Option<String>,
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// ms since the epoch.
    pub expires_at: i64,
    pub scopes: String,
    /// `connected`, or `reconnect` once the refresh token was refused.
    pub status: String,
}

pub const CONNECTED: &str = "connected";
pub const RECONNECT: &str = "reconnect";

pub async fn save_login(
    db: &Db,
    state: &str,
    login: &PendingLogin,
    older_than: i64,
) -> Result<(), sqlx::Error> {
    let _turn = db.write_turn().await;
    let mut tx = db.pool().begin().await?;
    // Logins never finished are dropped as new ones come.
    sqlx::query("DELETE FROM spotify_logins WHERE created_at < $1")
        .bind(older_than)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO spotify_logins (state, user_id, verifier, return_to, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(state)
    .bind(&login.user_id)
    .bind(&login.verifier)
    .bind(&login.return_to)
    .bind(login.created_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// The login `state` names, removed so it works once.
pub async fn take_login(db: &Db, state: &str) -> Result<Option<PendingLogin>, sqlx::Error> {
    let _turn = db.write_turn().await;
    let row = sqlx::query(
        "DELETE FROM spotify_logins WHERE state = $1 \
         RETURNING user_id, verifier, return_to, created_at",
    )
    .bind(state)
    .fetch_optional(db.pool())
    .await?;
    row.map(|row| {
        Ok(PendingLogin {
            user_id: row.try_get("user_id")?,
            verifier: row.try_get("verifier")?,
            return_to: row.try_get("return_to")?,
            created_at: row.try_get("created_at")?,
        })
    })
    .transpose()
}

pub async fn save_account(db: &Db, account: &Account, now: i64) -> Result<(), sqlx::Error> {
    let _turn = db.write_turn().await;
    sqlx::query(
        "INSERT INTO spotify_accounts (user_id, spotify_user_id, display_name, access_token, \
         refresh_token, expires_at, scopes, status, connected_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
         ON CONFLICT (user_id) DO UPDATE SET spotify_user_id = excluded.spotify_user_id, \
         display_name = excluded.display_name, access_token = excluded.access_token, \
         refresh_token = excluded.refresh_token, expires_at = excluded.expires_at, \
         scopes = excluded.scopes, status = excluded.status, connected_at = excluded.connected_at, \
         updated_at = excluded.updated_at",
    )
    .bind(&account.user_id)
    .bind(&account.spotify_user_id)
    .bind(&account.display_name)
    .bind(&account.access_token)
    .bind(&account.refresh_token)
    .bind(account.expires_at)
    .bind(&account.scopes)
    .bind(&account.status)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn account(db: &Db, user_id: &str) -> Result<Option<Account>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT user_id, spotify_user_id, display_name, access_token, refresh_token, expires_at, \
         scopes, status FROM spotify_accounts WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?;
    row.map(|row| {
        Ok(Account {
            user_id: row.try_get("user_id")?,
            spotify_user_id: row.try_get("spotify_user_id")?,
            display_name: row.try_get("display_name")?,
            access_token: row.try_get("access_token")?,
            refresh_token: row.try_get("refresh_token")?,
            expires_at: row.try_get("expires_at")?,
            scopes: row.try_get("scopes")?,
            status: row.try_get("status")?,
        })
    })
    .transpose()
}

/// New tokens after a refresh (the refresh token stays when Spotify did not send a new one).
pub async fn update_tokens(
    db: &Db,
    user_id: &str,
    access_token: &str,
    refresh_token: Option<&str>,
    expires_at: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    let _turn = db.write_turn().await;
    sqlx::query(
        "UPDATE spotify_accounts SET access_token = $2, \
         refresh_token = COALESCE($3, refresh_token), expires_at = $4, status = $5, \
         updated_at = $6 WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(access_token)
    .bind(refresh_token)
    .bind(expires_at)
    .bind(CONNECTED)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Spotify refused the refresh token: the user has to sign in again.
pub async fn needs_reconnect(db: &Db, user_id: &str, now: i64) -> Result<(), sqlx::Error> {
    let _turn = db.write_turn().await;
    sqlx::query("UPDATE spotify_accounts SET status = $2, updated_at = $3 WHERE user_id = $1")
        .bind(user_id)
        .bind(RECONNECT)
        .bind(now)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn delete_account(db: &Db, user_id: &str) -> Result<bool, sqlx::Error> {
    let _turn = db.write_turn().await;
    let deleted = sqlx::query("DELETE FROM spotify_accounts WHERE user_id = $1")
        .bind(user_id)
        .execute(db.pool())
        .await?;
    Ok(deleted.rows_affected() > 0)
}

/// The playlist a room was exported to by this user before.
pub async fn export(db: &Db, group_id: &str, user_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query("SELECT playlist_id FROM spotify_exports WHERE group_id = $1 AND user_id = $2")
        .bind(group_id)
        .bind(user_id)
        .fetch_optional(db.pool())
        .await?
        .map(|row| row.try_get("playlist_id"))
        .transpose()
}

pub async fn save_export(
    db: &Db,
    group_id: &str,
    user_id: &str,
    playlist_id: &str,
    url: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let _turn = db.write_turn().await;
    sqlx::query(
        "INSERT INTO spotify_exports (group_id, user_id, playlist_id, url, exported_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (group_id) DO UPDATE SET \
         user_id = excluded.user_id, playlist_id = excluded.playlist_id, url = excluded.url, \
         exported_at = excluded.exported_at",
    )
    .bind(group_id)
    .bind(user_id)
    .bind(playlist_id)
    .bind(url)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

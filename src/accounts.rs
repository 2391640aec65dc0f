//! Guest accounts, bearer-token authentication and single-use WebSocket tickets.
//!
//! Browsers cannot set headers on a WebSocket handshake, so a client trades its bearer token for
//! a ticket (`POST /api/v1/ws-ticket`) and puts that in the socket URL. A ticket lives
//! [`TICKET_TTL`] and is consumed atomically on first use (the cache's `take`), so a URL that
//! leaks into a proxy log is worthless by the time anyone reads it. Only the ticket's hash is
//! used as the cache key.

use std::time::Duration;

use crate::{
    cache::Cache,
    domain::{AccessToken, DisplayName, TokenHash, UserId},
    error::{ApiError, ErrorCode},
    storage::{users, users::UserRecord, Db},
};

pub const TICKET_TTL: Duration = Duration::from_secs(30);

pub struct NewAccount {
    pub user: UserRecord,
    pub token: AccessToken,
}

pub async fn create_guest(db: &Db, name: &DisplayName) -> Result<NewAccount, ApiError> {
    let token = AccessToken::generate();
    let user = users::create(db, &UserId::generate(), name, &token.hash()).await?;
    Ok(NewAccount { user, token })
}

/// How long an authenticated token is remembered in process.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(300);
/// Remembered tokens at most; when full, the least useful are forgotten (moka's TinyLFU).
pub const TOKEN_CACHE_CAPACITY: u64 = 100_000;

/// Tokens (by hash) recently resolved to their user, so busy endpoints skip a database round
/// trip per request. Sound because a token is never reassigned or revoked in this version
/// (an expired guest account was unused for days, so it is not cached); the TTL bounds how long
/// any future revocation would take to apply.
pub struct TokenCache {
    entries: moka::sync::Cache<TokenHash, UserRecord>,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(TOKEN_CACHE_CAPACITY)
                .time_to_live(TOKEN_CACHE_TTL)
                .build(),
        }
    }
}

/// Resolves an `Authorization` header value to its user.
pub async fn authenticate(
    db: &Db,
    tokens: &TokenCache,
    header: Option<&str>,
) -> Result<UserRecord, ApiError> {
    let header = header.ok_or_else(|| {
        ApiError::new(
            ErrorCode::MissingToken,
            "send `Authorization: Bearer <token>`; create a guest account with POST /api/v1/users",
        )
    })?;
    let raw = bearer_token(header).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidToken,
            "the Authorization header must use the Bearer scheme",
        )
    })?;
    let token =
        AccessToken::parse(raw).map_err(|reason| ApiError::new(ErrorCode::InvalidToken, reason))?;
    let hash = token.hash();
    if let Some(user) = tokens.entries.get(&hash) {
        return Ok(user);
    }
    let user = users::find_by_token(db, &hash).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidToken,
            "the token is not known to this server",
        )
    })?;
    // Seen now: the account is in use (see `expire_unused`). At most once per cache miss.
    if let Err(err) = users::touch(db, &user.id, crate::domain::now_ms()).await {
        tracing::warn!(error = %err, "recording when an account was last seen");
    }
    tokens.entries.insert(hash, user.clone());
    Ok(user)
}

/// Deletes guest accounts that were never used and not seen for `ttl` (see
/// [`users::delete_unused`]); their tokens stop working. Returns how many went.
pub async fn expire_unused(db: &Db, ttl: Duration) -> Result<u64, sqlx::Error> {
    let cutoff = crate::domain::now_ms() - ttl.as_millis() as i64;
    users::delete_unused(db, cutoff).await
}

/// The credential of an `Authorization: Bearer <credential>` header value (scheme matched
/// case-insensitively, as RFC 9110 asks), trimmed. Authentication and the per-token rate limit
/// both read it here, so they always agree on which token a request carries.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, credential) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
}

fn ticket_key(ticket: &str) -> String {
    format!("ws-ticket:{}", TokenHash::of(ticket).as_str())
}

pub async fn issue_ticket(cache: &dyn Cache, user: &UserId) -> Result<String, ApiError> {
    let ticket = AccessToken::generate()
        .expose()
        .replacen("chorus_", "wst_", 1);
    cache
        .set(&ticket_key(&ticket), user.as_str().as_bytes(), TICKET_TTL)
        .await
        .map_err(cache_unavailable)?;
    Ok(ticket)
}

/// The ticket's user, if the ticket is known and unused; it is consumed either way.
pub async fn redeem_ticket(cache: &dyn Cache, ticket: &str) -> Result<Option<UserId>, ApiError> {
    if ticket.is_empty() || ticket.len() > 128 {
        return Ok(None);
    }
    let value = cache
        .take(&ticket_key(ticket))
        .await
        .map_err(cache_unavailable)?;
    Ok(value
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|id| UserId::parse(&id).ok()))
}

/// The user of a ticket from a query string (`?ticket=`), or `invalid_ticket` saying how to
/// open `what` (`the socket`, …) properly: absent, unknown, used or expired alike.
pub async fn ticket_user(
    cache: &dyn Cache,
    ticket: Option<&str>,
    what: &str,
) -> Result<UserId, ApiError> {
    let invalid = || {
        ApiError::new(
            ErrorCode::InvalidTicket,
            format!(
                "open {what} with ?ticket= from POST /api/v1/ws-ticket; tickets work once, for 30 s"
            ),
        )
    };
    redeem_ticket(cache, ticket.ok_or_else(invalid)?)
        .await?
        .ok_or_else(invalid)
}

static CACHE_WARNINGS: std::sync::LazyLock<crate::telemetry::LogThrottle> =
    std::sync::LazyLock::new(|| crate::telemetry::LogThrottle::new(TICKET_TTL / 3));

fn cache_unavailable(err: anyhow::Error) -> ApiError {
    if let Some(held_back) = CACHE_WARNINGS.admit() {
        tracing::warn!(
            error = format!("{err:#}"),
            similar_since_last = held_back,
            "session cache unavailable; socket tickets refused"
        );
    }
    ApiError::new(
        ErrorCode::DependencyUnavailable,
        "the session cache is not reachable",
    )
    .retry_after(5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemoryCache;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("BEARER abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[actix_web::test]
    async fn tickets_are_single_use() {
        let cache = MemoryCache::default();
        let user = UserId::generate();
        let ticket = issue_ticket(&cache, &user).await.unwrap();
        assert!(ticket.starts_with("wst_"));
        assert_eq!(redeem_ticket(&cache, &ticket).await.unwrap(), Some(user));
        assert_eq!(redeem_ticket(&cache, &ticket).await.unwrap(), None);
        assert_eq!(redeem_ticket(&cache, "wst_forged").await.unwrap(), None);
        assert_eq!(redeem_ticket(&cache, "").await.unwrap(), None);
    }
}

//! The one catalog of client-facing errors. Every REST error body and every WebSocket `error`
//! frame carries one of these codes; the HTTP status lives beside the code so the two never drift.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::error::Category;
use utoipa::ToSchema;

macro_rules! error_codes {
    ($($variant:ident => ($code:literal, $status:ident, $doc:literal)),+ $(,)?) => {
        /// Stable, snake_case error codes. Clients may match on them; never rename one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $(#[doc = $doc] $variant),+
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code),+ }
            }

            pub fn parse(code: &str) -> Option<Self> {
                match code { $($code => Some(ErrorCode::$variant),)+ _ => None }
            }

            pub fn status(self) -> StatusCode {
                match self { $(ErrorCode::$variant => StatusCode::$status),+ }
            }

            pub fn description(self) -> &'static str {
                match self { $(ErrorCode::$variant => $doc),+ }
            }
        }
    };
}

error_codes! {
    MalformedJson => ("malformed_json", BAD_REQUEST, "The body is not valid JSON."),
    UnknownField => ("unknown_field", BAD_REQUEST, "The body has a field this endpoint does not accept."),
    MissingField => ("missing_field", UNPROCESSABLE_ENTITY, "A required field is missing from the body."),
    InvalidField => ("invalid_field", UNPROCESSABLE_ENTITY, "A field has the wrong type or a value out of range."),
    InvalidQuery => ("invalid_query", BAD_REQUEST, "A query-string parameter is unknown or invalid."),
    InvalidId => ("invalid_id", BAD_REQUEST, "An id in the path is not well formed."),
    UnsupportedMediaType => ("unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, "The body must be sent as application/json."),
    PayloadTooLarge => ("payload_too_large", PAYLOAD_TOO_LARGE, "The body is larger than the server accepts."),
    MissingToken => ("missing_token", UNAUTHORIZED, "The request needs an `Authorization: Bearer <token>` header."),
    InvalidToken => ("invalid_token", UNAUTHORIZED, "The bearer token is malformed, unknown or revoked."),
    NotFound => ("not_found", NOT_FOUND, "No such endpoint."),
    MethodNotAllowed => ("method_not_allowed", METHOD_NOT_ALLOWED, "The endpoint exists but not for this HTTP method."),
    TrackNotFound => ("track_not_found", NOT_FOUND, "No track has this id."),
    GroupNotFound => ("group_not_found", NOT_FOUND, "No group has this id."),
    JoinCodeNotFound => ("join_code_not_found", NOT_FOUND, "No open group has this join code."),
    EntryNotFound => ("entry_not_found", NOT_FOUND, "The group's playlist has no entry with this id."),
    AdminRequired => ("admin_required", FORBIDDEN, "The endpoint needs the admin token (CHORUS_ADMIN_TOKEN), and this is not it."),
    NotAMember => ("not_a_member", FORBIDDEN, "Only members of the group may do this; join it with its code first."),
    NotAllowed => ("not_allowed", FORBIDDEN, "Your role in the group does not allow this (host-only, or guest controls are off)."),
    GroupFull => ("group_full", CONFLICT, "The group has as many members as its settings allow."),
    PlaylistFull => ("playlist_full", CONFLICT, "The group's playlist has as many entries as allowed."),
    DuplicateTrack => ("duplicate_track", CONFLICT, "The track is already in the group's playlist."),
    RecentlyPlayed => ("recently_played", CONFLICT, "The track played in this room within its no-repeat window (settings.no_repeat_window tracks)."),
    NothingToPlay => ("nothing_to_play", CONFLICT, "Nothing is playing and nothing is queued to play."),
    SpotifyNotConfigured => ("spotify_not_configured", NOT_IMPLEMENTED, "This server has no Spotify app configured (spotify.client_id)."),
    SpotifyNotConnected => ("spotify_not_connected", CONFLICT, "Connect your Spotify account first."),
    SpotifyReconnect => ("spotify_reconnect", CONFLICT, "Spotify no longer accepts your sign-in (access removed or expired); connect Spotify again."),
    SpotifyLoginFailed => ("spotify_login_failed", BAD_REQUEST, "The Spotify sign-in is unknown, already used, expired, or Spotify refused its code; start again."),
    SpotifyPremiumRequired => ("spotify_premium_required", FORBIDDEN, "Playback control needs Spotify Premium on the host's account."),
    SpotifyNoDevice => ("spotify_no_device", CONFLICT, "No active Spotify device (or the chosen one is gone); open Spotify somewhere and pick it."),
    SpotifyUnavailable => ("spotify_unavailable", SERVICE_UNAVAILABLE, "Spotify did not answer, refused the request, or asked us to slow down; retry after Retry-After."),
    ImportDisabled => ("import_disabled", FORBIDDEN, "This server does not import Spotify libraries (spotify.allow_import is off)."),
    AlreadyVoted => ("already_voted", CONFLICT, "You already asked to skip this entry."),
    NotJoined => ("not_joined", CONFLICT, "The socket has not joined a group; send `join` first."),
    UnknownType => ("unknown_type", BAD_REQUEST, "The WebSocket frame's `type` is not part of the protocol."),
    UnsupportedFrame => ("unsupported_frame", BAD_REQUEST, "Only text frames holding JSON are accepted on the socket."),
    UpgradeRequired => ("upgrade_required", BAD_REQUEST, "The WebSocket endpoint was called without a WebSocket upgrade."),
    InvalidTicket => ("invalid_ticket", UNAUTHORIZED, "The WebSocket ticket is missing, unknown, expired or already used."),
    ExperimentNotFound => ("experiment_not_found", NOT_FOUND, "No experiment has this id."),
    ExperimentConflict => ("experiment_conflict", CONFLICT, "Another experiment is running, the name is taken, or the experiment is already stopped."),
    TooFewVariants => ("too_few_variants", UNPROCESSABLE_ENTITY, "A comparison needs 2 to 20 variants, the control included."),
    UnknownControl => ("unknown_control", UNPROCESSABLE_ENTITY, "The named control is not one of the variants."),
    DuplicateVariant => ("duplicate_variant", UNPROCESSABLE_ENTITY, "Two variants have the same name."),
    InvalidCounts => ("invalid_counts", UNPROCESSABLE_ENTITY, "Counts that cannot describe data: zero trials, more successes than trials, n below 2, a negative or non-finite sd."),
    InvalidWeights => ("invalid_weights", UNPROCESSABLE_ENTITY, "Traffic weights must be positive and given for every variant or for none."),
    NoVariance => ("no_variance", UNPROCESSABLE_ENTITY, "Both samples have standard deviation 0, so a t-test is undefined."),
    NumericOverflow => ("numeric_overflow", UNPROCESSABLE_ENTITY, "The inputs are too large to compute with in double precision (a difference or a variance overflows)."),
    RateLimited => ("rate_limited", TOO_MANY_REQUESTS, "Too many requests; retry after the number of seconds in Retry-After."),
    TooManyConnections => ("too_many_connections", TOO_MANY_REQUESTS, "You have as many sockets open as allowed; close one (another tab or device) first."),
    QuotaExceeded => ("quota_exceeded", TOO_MANY_REQUESTS, "You have created as many rooms (or accounts) as allowed for now; retry after the seconds in Retry-After."),
    Overloaded => ("overloaded", SERVICE_UNAVAILABLE, "The recommender's queue is full; retry after the seconds in Retry-After."),
    DependencyUnavailable => ("dependency_unavailable", SERVICE_UNAVAILABLE, "A backing service (database, cache) is not reachable."),
    Internal => ("internal_error", INTERNAL_SERVER_ERROR, "Something failed on the server; it has been logged."),
}

/// The body of every error response: `{"error":{"code","message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// One of the stable codes listed in the README's error catalog.
    pub code: &'static str,
    pub message: String,
}

/// An error a client will see. Internal causes are logged, never sent.
#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds for the Retry-After header (rate limits, unavailable dependencies).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds.max(1));
        self
    }

    /// Logs the real cause with its chain and returns an opaque 500.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let cause = cause.into();
        tracing::error!(error = format!("{cause:#}"), "internal error");
        Self::new(ErrorCode::Internal, "internal server error")
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str(),
                message: self.message.clone(),
            },
        }
    }
}

/// Maps serde_json's error categories (and its stable message prefixes for data errors) to codes.
pub fn deserialize_error(err: &serde_json::Error) -> ApiError {
    let message = err.to_string();
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::new(
            ErrorCode::MalformedJson,
            format!("the body is not valid JSON: {message}"),
        ),
        Category::Data if message.starts_with("unknown field") => {
            ApiError::new(ErrorCode::UnknownField, message)
        }
        Category::Data if message.starts_with("missing field") => {
            ApiError::new(ErrorCode::MissingField, message)
        }
        Category::Data => ApiError::new(ErrorCode::InvalidField, message),
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(seconds) = self.retry_after_s {
            response.insert_header(("Retry-After", seconds.to_string()));
        }
        response.json(self.body())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                tracing::error!(error = %err, "database unavailable");
                ApiError::new(
                    ErrorCode::DependencyUnavailable,
                    "the database is not reachable",
                )
                .retry_after(5)
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        ApiError::internal(err)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
        }
    }

    #[test]
    fn only_internal_is_a_server_fault_5xx() {
        for code in ErrorCode::ALL {
            let status = code.status();
            if status.is_server_error() {
                assert!(
                    matches!(
                        code,
                        ErrorCode::Internal
                            | ErrorCode::DependencyUnavailable
                            | ErrorCode::Overloaded
                            // Spotify failing, and a server without a Spotify app: never the
                            // caller's doing.
                            | ErrorCode::SpotifyUnavailable
                            | ErrorCode::SpotifyNotConfigured
                    ),
                    "{code:?}"
                );
            } else {
                assert!(status.is_client_error(), "{code:?}");
            }
        }
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        let err = ApiError::new(ErrorCode::RateLimited, "slow down").retry_after(0);
        let response = err.error_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get("Retry-After").unwrap(), "1");
    }
}

//! Extractor configuration that turns every way a request can be malformed into a precise code
//! from the error catalog instead of actix's plain-text defaults.

use actix_web::{
    error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError},
    web, FromRequest, HttpMessage, HttpRequest,
};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::{
    accounts,
    domain::{text, TokenHash},
    error::{deserialize_error, ApiError, ErrorCode},
    state::AppState,
    storage::users::UserRecord,
};

pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, _req| json_error(err, limit).into())
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| query_error(err).into())
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| path_error(err).into())
}

fn json_error(err: JsonPayloadError, limit: usize) -> ApiError {
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body is larger than {limit} bytes"),
        )
    };
    match err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            too_large()
        }
        JsonPayloadError::Payload(PayloadError::Overflow) => too_large(),
        JsonPayloadError::ContentType => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as JSON with `Content-Type: application/json`",
        ),
        JsonPayloadError::Deserialize(err) => deserialize_error(&err),
        other => ApiError::new(
            ErrorCode::MalformedJson,
            format!("could not read the body: {other}"),
        ),
    }
}

/// A JSON request body, read whole within `server.max_body_bytes` and checked for syntax before
/// its shape; no string in it may hold a NUL ([`text::find_nul`]). (actix's `web::Json` deserializes while parsing, so `{"a":`, `[1,2` or `{} x` met a
/// field error first and were answered `unknown_field`, `invalid_field` or `missing_field`.)
pub struct JsonBody<T>(pub T);

impl<T> JsonBody<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for JsonBody<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map_or(64 * 1024, |s| s.settings.server.max_body_bytes);
        let json = req
            .mime_type()
            .ok()
            .flatten()
            .is_some_and(|m| m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"));
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !json {
                return Err(json_error(JsonPayloadError::ContentType, limit));
            }
            let bytes = bytes
                .await
                .map_err(|err| match err.as_error::<PayloadError>() {
                    Some(PayloadError::Overflow) => {
                        json_error(JsonPayloadError::Payload(PayloadError::Overflow), limit)
                    }
                    _ => ApiError::new(
                        ErrorCode::MalformedJson,
                        format!("could not read the body: {err}"),
                    ),
                })?;
            let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                ApiError::new(
                    ErrorCode::MalformedJson,
                    format!("the body is not valid JSON: {e}"),
                )
            })?;
            if let Some(path) = text::find_nul(&value) {
                return Err(ApiError::new(
                    ErrorCode::InvalidField,
                    format!("body{path}: text must not contain NUL characters"),
                ));
            }
            serde_json::from_value::<T>(value)
                .map(JsonBody)
                .map_err(|e| deserialize_error(&e))
        })
    }
}

fn query_error(err: QueryPayloadError) -> ApiError {
    let detail = match err {
        QueryPayloadError::Deserialize(e) => e.to_string(),
        other => other.to_string(),
    };
    ApiError::new(
        ErrorCode::InvalidQuery,
        format!("invalid query string: {detail}"),
    )
}

fn path_error(err: PathError) -> ApiError {
    let PathError::Deserialize(e) = err else {
        return ApiError::new(ErrorCode::InvalidId, "invalid path");
    };
    ApiError::new(ErrorCode::InvalidId, format!("invalid path: {e}"))
}

/// The authenticated caller, resolved from the bearer token.
pub struct AuthUser(pub UserRecord);

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut actix_web::dev::Payload) -> Self::Future {
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_string));
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState is not registered")))?;
            let header = match header {
                Some(Ok(value)) => Some(value),
                Some(Err(_)) => {
                    return Err(ApiError::new(
                        ErrorCode::InvalidToken,
                        "the Authorization header is not text",
                    ))
                }
                None => None,
            };
            accounts::authenticate(&state.db, &state.tokens, header.as_deref())
                .await
                .map(AuthUser)
        })
    }
}

/// A caller holding the admin token (`CHORUS_ADMIN_TOKEN`): experiment administration and
/// analytics.
pub struct AdminAuth;

impl FromRequest for AdminAuth {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(admin(req))
    }
}

fn admin(req: &HttpRequest) -> Result<AdminAuth, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState is not registered")))?;
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(accounts::bearer_token)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::MissingToken,
                "this endpoint needs `Authorization: Bearer <admin token>`",
            )
        })?;
    let Some(expected) = &state.settings.admin_token else {
        return Err(ApiError::new(
            ErrorCode::AdminRequired,
            "no admin token is configured on this server (set CHORUS_ADMIN_TOKEN)",
        ));
    };
    // Compared as hashes: equal length, and the token itself is never held twice.
    if TokenHash::of(token) == TokenHash::of(expected.expose()) {
        Ok(AdminAuth)
    } else {
        Err(ApiError::new(
            ErrorCode::AdminRequired,
            "this endpoint needs the admin token",
        ))
    }
}

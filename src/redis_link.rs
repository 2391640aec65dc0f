//! The one Redis connection the cache and the rate limiter share, with the bounds that keep a
//! Redis outage from becoming a Chorus outage: a connect timeout, a response timeout, a short
//! reconnect backoff, and a deadline around every call. A call that misses its deadline fails
//! like any other Redis error, and each caller decides what that means (the limiter allows the
//! request, the cache misses, a ticket cannot be issued).

use std::{future::Future, time::Duration};

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// The longest any single cache or limiter call may take, reconnection included.
pub const CALL_DEADLINE: Duration = Duration::from_millis(250);
/// How long establishing one TCP connection to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a sent command may wait for its reply.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// Reconnect attempts after a failure before the next call starts another round.
const RECONNECT_RETRIES: usize = 2;
/// Backoff between reconnect attempts: 50 ms, doubling, never above 500 ms.
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);
/// Startup gives up on an unreachable Redis after this long, with a message saying so.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(5);

/// Connects at startup. Redis is a hard dependency once `REDIS_URL` is set (socket tickets must
/// be single-use across processes), so an unreachable server stops startup within
/// [`STARTUP_DEADLINE`] rather than running with state other processes cannot see.
pub async fn connect(url: &str) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url).context("parsing REDIS_URL")?;
    let connecting = ConnectionManager::new_with_config(client, manager_config());
    match tokio::time::timeout(STARTUP_DEADLINE, connecting).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(err)) => Err(anyhow::Error::new(err).context(
            "Redis (REDIS_URL) is not reachable; start it, or unset REDIS_URL to keep the cache \
             and rate limits in process",
        )),
        Err(_) => Err(anyhow::anyhow!(
            "Redis (REDIS_URL) did not answer within {} s; start it, or unset REDIS_URL to keep \
             the cache and rate limits in process",
            STARTUP_DEADLINE.as_secs()
        )),
    }
}

/// The bounds every Chorus connection to Redis has.
pub fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(RECONNECT_RETRIES)
        .set_min_delay(RECONNECT_MIN_DELAY)
        .set_max_delay(RECONNECT_MAX_DELAY)
        .set_exponent_base(2.0)
}

/// Runs one Redis call within [`CALL_DEADLINE`].
pub async fn within<T>(
    what: &'static str,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(CALL_DEADLINE, call).await {
        Ok(result) => result.context(what),
        Err(_) => Err(anyhow::anyhow!(
            "{what}: no answer from Redis within {} ms",
            CALL_DEADLINE.as_millis()
        )),
    }
}

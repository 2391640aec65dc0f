//! The cache and rate-limiter contracts, run against both implementations: in-process and the
//! real Redis on this machine.

use std::{sync::Arc, time::Duration};

use chorus::{
    cache::{Cache, MemoryCache, RedisCache},
    limits::{Decision, MemoryRateLimiter, Quota, RateLimiter, RedisRateLimiter},
    redis_link,
};

use crate::helpers::redis_url;

fn prefix() -> String {
    format!("chorus-test:{}:", uuid::Uuid::new_v4().simple())
}

async fn redis() -> redis::aio::ConnectionManager {
    redis_link::connect(&redis_url()).await.unwrap_or_else(|e| {
        panic!(
            "Redis is required for these tests ({}): {e:#}. Start it with `redis-server --daemonize yes \
             --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no`",
            redis_url()
        )
    })
}

async fn cache_contract(cache: Arc<dyn Cache>) {
    cache.ping().await.unwrap();
    assert_eq!(cache.get("missing").await.unwrap(), None);
    cache
        .set("k", b"v1", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v1"[..]));
    cache
        .set("k", b"v2", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v2"[..]));

    cache
        .set("short", b"x", Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        cache.get("short").await.unwrap(),
        None,
        "expired entries vanish"
    );
    assert_eq!(cache.take("short").await.unwrap(), None);

    // Of many concurrent takers exactly one wins.
    cache
        .set("once", b"ticket", Duration::from_secs(60))
        .await
        .unwrap();
    let takers: Vec<_> = (0..16)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.take("once").await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for taker in takers {
        if taker.await.unwrap().is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(cache.get("once").await.unwrap(), None);
}

#[actix_web::test]
async fn memory_cache_contract() {
    cache_contract(Arc::new(MemoryCache::default())).await;
}

#[actix_web::test]
async fn redis_cache_contract() {
    cache_contract(Arc::new(RedisCache::new(redis().await, prefix()))).await;
}

async fn limiter_contract(limiter: Arc<dyn RateLimiter>) {
    let quota = Quota {
        per_second: 20.0,
        burst: 4,
    };
    for _ in 0..4 {
        assert_eq!(limiter.check("a", quota).await.unwrap(), Decision::Allowed);
    }
    let Decision::Limited { retry_after } = limiter.check("a", quota).await.unwrap() else {
        panic!("the fifth request in a burst of four must be limited");
    };
    assert!(retry_after <= Duration::from_millis(50), "{retry_after:?}");
    assert_eq!(
        limiter.check("b", quota).await.unwrap(),
        Decision::Allowed,
        "keys are independent"
    );
    tokio::time::sleep(retry_after + Duration::from_millis(5)).await;
    assert_eq!(
        limiter.check("a", quota).await.unwrap(),
        Decision::Allowed,
        "a slot reopens at the rate"
    );

    // Concurrent checks never admit more than the burst.
    let strict = Quota {
        per_second: 0.1,
        burst: 5,
    };
    let checks: Vec<_> = (0..30)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.check("c", strict).await.unwrap() })
        })
        .collect();
    let mut allowed = 0;
    for check in checks {
        if check.await.unwrap() == Decision::Allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5);
}

#[actix_web::test]
async fn memory_limiter_contract() {
    limiter_contract(Arc::new(MemoryRateLimiter::default())).await;
}

#[actix_web::test]
async fn redis_limiter_contract() {
    limiter_contract(Arc::new(RedisRateLimiter::new(redis().await, prefix()))).await;
}

#[actix_web::test]
async fn redis_limits_are_shared_between_processes() {
    // Two limiters on one Redis stand in for two Chorus processes.
    let prefix = prefix();
    let a = RedisRateLimiter::new(redis().await, prefix.clone());
    let b = RedisRateLimiter::new(redis().await, prefix);
    let quota = Quota {
        per_second: 0.1,
        burst: 2,
    };
    assert_eq!(a.check("k", quota).await.unwrap(), Decision::Allowed);
    assert_eq!(b.check("k", quota).await.unwrap(), Decision::Allowed);
    assert!(matches!(
        a.check("k", quota).await.unwrap(),
        Decision::Limited { .. }
    ));
    assert!(matches!(
        b.check("k", quota).await.unwrap(),
        Decision::Limited { .. }
    ));
}

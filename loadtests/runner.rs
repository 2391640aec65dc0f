//! A bounded closed- or open-loop request driver with one HDR histogram per connection.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

/// How late a timer may fire before the lateness counts as the server's.
const TIMER_SLACK: Duration = Duration::from_millis(2);

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub concurrency: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub rate: Option<f64>,
}

/// What one connection measured.
pub struct Tally {
    pub latency_us: Histogram<u64>,
    pub ok: u64,
    pub errors: u64,
    pub statuses: std::collections::BTreeMap<u16, u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("valid histogram bounds"),
            ok: 0,
            errors: 0,
            statuses: Default::default(),
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latency_us.add(other.latency_us).expect("same bounds");
        self.ok += other.ok;
        self.errors += other.errors;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
    }
}

/// Sends a request and reads the whole body (so the measured time includes the answer);
/// returns the HTTP status, or 0 for a transport error.
pub async fn status_of(request: reqwest::RequestBuilder) -> u16 {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        }
        Err(_) => 0,
    }
}

/// Runs `request(connection, i)` on `concurrency` connections for warm-up + duration. A request
/// returns its HTTP status (0 for a transport error). Returns the merged tally of the measured
/// window and its actual length.
pub async fn drive<F, Fut>(options: &RunOptions, request: F) -> (Tally, Duration)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = u16> + Send,
{
    let request = Arc::new(request);
    let concurrency = options.concurrency;
    let start = Instant::now();
    let measure_from = start + options.warmup;
    let stop_at = measure_from + options.duration;
    let interval = options
        .rate
        .map(|rate| Duration::from_secs_f64(options.concurrency as f64 / rate));
    let workers: Vec<_> = (0..options.concurrency)
        .map(|connection| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut tally = Tally::new();
                let mut i = 0u64;
                // Stagger open-loop connections evenly across one interval.
                let mut next_send =
                    interval.map(|iv| start + iv.mul_f64(connection as f64 / concurrency as f64));
                loop {
                    let intended = match (next_send, interval) {
                        (Some(at), Some(iv)) => {
                            tokio::time::sleep_until(at.into()).await;
                            next_send = Some(at + iv);
                            // Behind schedule (the previous answer came late): count from the
                            // intended time, so a stall is not hidden. On time: count from now,
                            // so the timer's millisecond granularity is not billed to the server.
                            let now = Instant::now();
                            if now > at + TIMER_SLACK {
                                at
                            } else {
                                now
                            }
                        }
                        _ => Instant::now(),
                    };
                    if intended >= stop_at {
                        break;
                    }
                    let status = request(connection, i).await;
                    i += 1;
                    let done = Instant::now();
                    if intended >= measure_from && done <= stop_at + Duration::from_secs(5) {
                        let us = done.duration_since(intended).as_micros().max(1) as u64;
                        tally.latency_us.saturating_record(us);
                        *tally.statuses.entry(status).or_default() += 1;
                        if (200..300).contains(&status) {
                            tally.ok += 1;
                        } else {
                            tally.errors += 1;
                        }
                    }
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::new();
    for worker in workers {
        if let Ok(tally) = worker.await {
            total.merge(tally);
        }
    }
    (total, options.duration)
}

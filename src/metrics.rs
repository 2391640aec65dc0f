//! Prometheus metrics, one registry per application (tests run several apps in one process).
//! Route labels are the matched route pattern (`/api/v1/tracks/{id}`), never the raw path, so
//! label cardinality stays bounded.

use prometheus::{
    CounterVec, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_latency: HistogramVec,
    pub rate_limited: IntCounterVec,
    pub rate_limiter_errors: IntCounter,
    pub catalog_tracks: IntGauge,
    pub inference_batch_size: HistogramVec,
    pub inference_duration: HistogramVec,
    pub inference_queue_depth: IntGauge,
    pub inference_phase_seconds: CounterVec,
    pub inference_rejected: IntCounter,
    pub active_users: IntGauge,
    pub ws_connections: IntGauge,
    pub ws_closed: IntCounterVec,
    pub ws_frames_in: IntCounter,
    pub live_groups: IntGauge,
    pub group_events: IntCounter,
    /// Appends another process beat (the replica read its events and decided again).
    pub group_append_retries: IntCounter,
    /// How long storing an operation's events took (the group-commit queue and the commit):
    /// the part of an operation's delivery spent waiting for the store.
    pub group_append_duration: Histogram,
    pub group_load_events: Histogram,
    pub group_recommendation_duration: HistogramVec,
    /// Group rankings by whether their candidate pool was built or the room's kept one used.
    pub group_pools: IntCounterVec,
    pub group_own_scans: IntCounter,
    pub explanations: IntCounterVec,
    pub explainer_cache_hits: IntCounter,
    pub explainer_fallbacks: IntCounterVec,
    pub explainer_llm_duration: HistogramVec,
    pub explainer_in_flight: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("chorus".into()), None).expect("valid prefix");
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by route, method and status",
            ),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let http_latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer HTTP requests",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["method", "route"],
        )
        .expect("valid metric");
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "rate_limited_total",
                "Requests refused by a rate limit, by scope",
            ),
            &["scope"],
        )
        .expect("valid metric");
        let group_load_events = Histogram::with_opts(
            HistogramOpts::new(
                "group_load_events",
                "Events folded when a group is loaded (after its latest snapshot)",
            )
            .buckets(vec![
                0.0, 10.0, 100.0, 500.0, 1000.0, 2000.0, 5000.0, 20000.0, 100000.0,
            ]),
        )
        .expect("valid metric");
        let rate_limiter_errors = IntCounter::new(
            "rate_limiter_errors_total",
            "Rate-limit checks whose store failed or timed out (the request was allowed)",
        )
        .expect("valid metric");
        let catalog_tracks = IntGauge::new("catalog_tracks", "Tracks in the in-memory catalog")
            .expect("valid metric");
        let inference_batch_size = HistogramVec::new(
            HistogramOpts::new(
                "inference_batch_size",
                "Requests per batch run by the inference threads, by kind",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            &["kind"],
        )
        .expect("valid metric");
        let inference_duration = HistogramVec::new(
            HistogramOpts::new(
                "inference_batch_duration_seconds",
                "Time to run one inference batch, by kind",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
            &["kind"],
        )
        .expect("valid metric");
        let inference_phase_seconds = CounterVec::new(
            Opts::new(
                "inference_phase_seconds_total",
                "Time the inference threads spent in each ranking step",
            ),
            &["phase"],
        )
        .expect("valid metric");
        let inference_queue_depth = IntGauge::new(
            "inference_queue_depth",
            "Inference requests accepted and not yet answered",
        )
        .expect("valid metric");
        let inference_rejected = IntCounter::new(
            "inference_rejected_total",
            "Inference requests refused because the queue was full",
        )
        .expect("valid metric");
        let active_users =
            IntGauge::new("active_users", "Users with a live UserActor").expect("valid metric");
        let ws_connections =
            IntGauge::new("ws_connections", "Open WebSocket connections").expect("valid metric");
        let ws_closed = IntCounterVec::new(
            Opts::new(
                "ws_closed_total",
                "WebSocket connections closed, by who and why (client, heartbeat_timeout, slow_consumer, too_big, protocol_error, shutdown)",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let ws_frames_in = IntCounter::new("ws_frames_received_total", "Text frames received")
            .expect("valid metric");
        let live_groups =
            IntGauge::new("live_groups", "Groups with a live GroupActor").expect("valid metric");
        let group_events =
            IntCounter::new("group_events_total", "Group events appended").expect("valid metric");
        let group_append_retries = IntCounter::new(
            "group_append_retries_total",
            "Group operations decided again because another process appended first",
        )
        .expect("valid metric");
        let group_append_duration = Histogram::with_opts(
            HistogramOpts::new(
                "group_append_duration_seconds",
                "Time to store a group operation's events, queueing for the group commit included",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        )
        .expect("valid metric");
        let group_recommendation_duration = HistogramVec::new(
            HistogramOpts::new(
                "group_recommendation_duration_seconds",
                "Time to compute a group's recommendations, by outcome",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["outcome"],
        )
        .expect("valid metric");
        let group_pools = IntCounterVec::new(
            Opts::new(
                "group_pools_total",
                "Group rankings by the group's candidates: the room's kept ones, or retrieved (new, aged, drifted, used_up)",
            ),
            &["pool"],
        )
        .expect("valid metric");
        let group_own_scans = IntCounter::new(
            "group_own_scans_total",
            "Group rankings' scans of the whole catalog for a member's own best tracks (members whose liked tracks have too few item-item neighbours, once per new taste)",
        )
        .expect("valid metric");
        let explanations = IntCounterVec::new(
            Opts::new(
                "explanations_total",
                "Explanations answered, by source (llm or template)",
            ),
            &["source"],
        )
        .expect("valid metric");
        let explainer_cache_hits = IntCounter::new(
            "explainer_cache_hits_total",
            "Explanations served from the cache",
        )
        .expect("valid metric");
        let explainer_fallbacks = IntCounterVec::new(
            Opts::new(
                "explainer_fallbacks_total",
                "Template answers given although a language model is configured, by reason (timeout, busy, connect, http_status, malformed, empty, transport, junk)",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let explainer_llm_duration = HistogramVec::new(
            HistogramOpts::new(
                "explainer_llm_call_duration_seconds",
                "Time of each language-model call, by outcome (ok or error)",
            )
            .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0]),
            &["outcome"],
        )
        .expect("valid metric");
        let explainer_in_flight =
            IntGauge::new("explainer_llm_in_flight", "Language-model calls under way")
                .expect("valid metric");
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_latency.clone()),
            Box::new(rate_limited.clone()),
            Box::new(rate_limiter_errors.clone()),
            Box::new(group_load_events.clone()),
            Box::new(catalog_tracks.clone()),
            Box::new(inference_batch_size.clone()),
            Box::new(inference_duration.clone()),
            Box::new(inference_queue_depth.clone()),
            Box::new(inference_phase_seconds.clone()),
            Box::new(inference_rejected.clone()),
            Box::new(active_users.clone()),
            Box::new(ws_connections.clone()),
            Box::new(ws_closed.clone()),
            Box::new(ws_frames_in.clone()),
            Box::new(live_groups.clone()),
            Box::new(group_events.clone()),
            Box::new(group_append_retries.clone()),
            Box::new(group_append_duration.clone()),
            Box::new(group_recommendation_duration.clone()),
            Box::new(group_pools.clone()),
            Box::new(group_own_scans.clone()),
            Box::new(explanations.clone()),
            Box::new(explainer_cache_hits.clone()),
            Box::new(explainer_fallbacks.clone()),
            Box::new(explainer_llm_duration.clone()),
            Box::new(explainer_in_flight.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric registered once");
        }
        Self {
            registry,
            http_requests,
            http_latency,
            rate_limited,
            rate_limiter_errors,
            group_load_events,
            catalog_tracks,
            inference_batch_size,
            inference_duration,
            inference_queue_depth,
            inference_phase_seconds,
            inference_rejected,
            active_users,
            ws_connections,
            ws_closed,
            ws_frames_in,
            live_groups,
            group_events,
            group_append_retries,
            group_append_duration,
            group_recommendation_duration,
            group_pools,
            group_own_scans,
            explanations,
            explainer_cache_hits,
            explainer_fallbacks,
            explainer_llm_duration,
            explainer_in_flight,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding cannot fail");
        String::from_utf8(buffer).expect("Prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

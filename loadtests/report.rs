//! Run reports: JSON for machines, markdown for `docs/BENCHMARKS.md`.

use std::{collections::BTreeMap, path::Path, time::Duration};

use serde::Serialize;

use crate::runner::{RunOptions, Tally};

#[derive(Serialize)]
pub struct Report {
    pub scenario: String,
    pub url: String,
    pub concurrency: usize,
    pub target_rate: Option<f64>,
    pub duration_s: f64,
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub throughput_rps: f64,
    pub latency_ms: Percentiles,
    pub notes: Vec<String>,
}

#[derive(Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// Milliseconds from a histogram of microseconds.
    pub fn of(h: &hdrhistogram::Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

impl Report {
    pub fn new(
        scenario: &str,
        url: &str,
        options: &RunOptions,
        tally: &Tally,
        measured: Duration,
    ) -> Self {
        let requests = tally.ok + tally.errors;
        Self {
            scenario: scenario.into(),
            url: url.into(),
            concurrency: options.concurrency,
            target_rate: options.rate,
            duration_s: measured.as_secs_f64(),
            requests,
            ok: tally.ok,
            errors: tally.errors,
            statuses: tally.statuses.clone(),
            throughput_rps: requests as f64 / measured.as_secs_f64().max(1e-9),
            latency_ms: Percentiles::of(&tally.latency_us),
            notes: Vec::new(),
        }
    }

    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        write_files(dir, &self.scenario, self, &self.markdown())
    }

    pub fn markdown(&self) -> String {
        let l = &self.latency_ms;
        let mut out = format!(
            "| scenario | concurrency | rate | requests | errors | req/s | p50 ms | p90 ms | p95 ms | p99 ms | p99.9 ms | max ms |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n\
             | {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            self.scenario,
            self.concurrency,
            self.target_rate.map_or("max".to_string(), |r| format!("{r:.0}/s")),
            self.requests,
            self.errors,
            self.throughput_rps,
            l.p50,
            l.p90,
            l.p95,
            l.p99,
            l.p999,
            l.max,
        );
        for note in &self.notes {
            out.push_str(&format!("\n{note}\n"));
        }
        out
    }
}

/// `<dir>/<scenario>.json` and `<dir>/<scenario>.md`.
pub fn write_files(
    dir: &Path,
    scenario: &str,
    json: &impl Serialize,
    markdown: &str,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(format!("{scenario}.json")),
        serde_json::to_string_pretty(json)?,
    )?;
    std::fs::write(dir.join(format!("{scenario}.md")), markdown)?;
    Ok(())
}

//! A/B experiments over solo recommendation strategies: definitions and their validation,
//! stable assignment of listeners to variants, the running experiment, and the report.

pub mod assign;
pub mod attribution;
pub mod definition;
pub mod report;

pub use definition::{Experiment, Metric, NewExperiment, SequentialDesign, Variant};

use std::sync::{Arc, RwLock};

use crate::storage::{experiments::ExperimentRow, Db};

/// A stored row back to an experiment (`None` when its JSON is not ours: logged, skipped).
pub fn from_row(row: ExperimentRow) -> Option<Experiment> {
    let variants = serde_json::from_str(&row.variants);
    let guardrails = serde_json::from_str(&row.guardrails);
    let metric = serde_json::from_value(serde_json::Value::String(row.primary_metric.clone()));
    match (variants, guardrails, metric) {
        (Ok(variants), Ok(guardrails), Ok(primary_metric)) => Some(Experiment {
            id: row.id,
            name: row.name,
            description: row.description,
            variants,
            primary_metric,
            guardrails,
            mixture_sd: row
                .mixture_sd
                .unwrap_or(crate::stats::sequential::DEFAULT_MIXTURE_SD),
            design: match (row.planned_listeners, row.looks) {
                (Some(planned), Some(looks)) if planned > 0 && looks > 0 => {
                    Some(SequentialDesign {
                        planned_listeners: planned as u64,
                        looks: looks as u32,
                    })
                }
                _ => None,
            },
            status: row.status,
            created_at: row.created_at,
            stopped_at: row.stopped_at,
        }),
        _ => {
            tracing::error!(experiment = %row.id, "experiment row does not parse; ignored");
            None
        }
    }
}

/// The running experiment, if any, as this process last read it from the store (at start,
/// after its own changes, and every few seconds, so other processes' changes arrive too).
#[derive(Default)]
pub struct Registry {
    running: RwLock<Option<Arc<Experiment>>>,
}

impl Registry {
    pub fn running(&self) -> Option<Arc<Experiment>> {
        self.running.read().expect("registry lock").clone()
    }

    pub async fn reload(&self, db: &Db) -> Result<(), sqlx::Error> {
        let running = crate::storage::experiments::list_experiments(db)
            .await?
            .into_iter()
            .filter(|row| row.status == "running")
            .find_map(from_row)
            .map(Arc::new);
        *self.running.write().expect("registry lock") = running;
        Ok(())
    }
}

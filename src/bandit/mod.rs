//! Strategy selection by contextual, warm-started Thompson sampling: the contexts (`context`),
//! the priors from the offline evaluation (`prior`), the pure policy (`thompson`), the
//! BanditActor that owns the live state and keeps it in the store, the report experimenters
//! read, and the seeded simulation that justifies the design (`simulation`).

pub mod actor;
pub mod context;
pub mod prior;
pub mod report;
pub mod simulation;
pub mod thompson;

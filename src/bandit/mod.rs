//! Strategy selection by Thompson sampling: the pure policy (`thompson`), the BanditActor that
//! owns the live state, attributes delayed rewards to exposures and persists itself, and the
//! report experimenters read.

pub mod actor;
pub mod report;
pub mod thompson;

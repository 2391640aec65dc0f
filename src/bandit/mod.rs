//! Strategy selection by Thompson sampling: the pure policy (`thompson`) and the BanditActor
//! that owns the live state, attributes delayed rewards to exposures and persists itself.

pub mod thompson;

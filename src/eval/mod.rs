//! Offline evaluations that run the served code (the models' own metrics are computed by the
//! training pipeline in `models/train`).

pub mod calibration;
pub mod groups;
pub mod priors;

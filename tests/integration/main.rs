//! One integration-test binary: every module starts the real server (see `helpers`).

mod accounts;
mod bandit;
mod cluster;
mod errors;
mod experiments;
mod explainer;
mod explanations;
mod group_quality;
mod groups;
mod hardening;
mod helpers;
mod inference;
mod llm_standin;
mod models;
mod operations;
mod playback;
mod rate_limits;
mod recommendations;
mod redis_backends;
mod simulations;
mod sockets;
mod spotify;
mod statistics;
mod storage;
mod tracks;
mod webapp;

//! Chorus: a real-time group session server for music recommendation.
//!
//! See the README's architecture map for where each concept lives.

pub mod accounts;
pub mod aggregate;
pub mod bandit;
pub mod cache;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod eval;
pub mod experiments;
pub mod explain;
pub mod fanout;
pub mod groups;
pub mod http;
pub mod inference;
pub mod limits;
pub mod metrics;
pub mod models;
pub mod recommend;
pub mod redis_link;
pub mod spotify;
pub mod startup;
pub mod state;
pub mod stats;
pub mod storage;
pub mod taste;
pub mod telemetry;

//! storage-gateway: one HTTP service in front of PostgreSQL, Redis,
//! ClickHouse, Kubo and IPFS Cluster.

#![forbid(unsafe_code)]

pub mod analytics;
pub mod auth;
pub mod cli;
pub mod config;
pub mod files;
pub mod http;
pub mod metrics;
pub mod startup;
pub mod stores;
pub mod telemetry;

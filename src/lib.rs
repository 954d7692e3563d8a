//! storage-gateway: one HTTP service in front of PostgreSQL, Redis,
//! ClickHouse, Kubo and IPFS Cluster.

#![forbid(unsafe_code)]

pub mod admission;
pub mod analytics;
pub mod auth;
pub mod cache;
pub mod challenges;
pub mod cli;
pub mod config;
pub mod dashboards;
pub mod error_code;
pub mod files;
pub mod http;
pub mod links;
pub mod metrics;
pub mod rate_limit;
pub mod rfc3339;
pub mod sessions;
pub mod startup;
pub mod stores;
pub mod telemetry;
pub mod whole_number;

//! The gateway's API against the real local stack, one module per feature.
//! One binary links the gateway once for all of them. The outage tests stop
//! the stack's shared servers, so they stay in a binary of their own
//! (`tests/outage.rs`), which cargo runs after this one and never beside it.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod abuse;
mod analytics;
mod auth;
mod browser;
mod cache;
mod challenges;
mod cli;
mod compose;
mod dashboards;
mod files;
mod health;
mod ipfs_tools;
mod migrations;
mod monitoring;
mod openapi;
mod rate_limit;
mod sessions;

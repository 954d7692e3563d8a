//! Routes, one module per resource.

pub mod analytics;
pub mod api_keys;
pub mod cache;
pub mod challenges;
pub mod files;
pub mod health;
pub mod links;
pub mod metrics;
pub mod pages;
pub mod psa;
pub mod rate_limit;
pub mod sessions;
pub mod tus;

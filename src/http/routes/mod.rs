//! Routes, one module per resource.

pub mod api_keys;
pub mod files;
pub mod health;
pub mod metrics;

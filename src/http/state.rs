//! What every handler can reach: the capabilities, built once at startup.

use std::sync::Arc;

use crate::admission::Admission;
use crate::analytics::Analytics;
use crate::auth::ApiKeys;
use crate::cache::Cache;
use crate::challenges::Challenges;
use crate::config::Settings;
use crate::dashboards::Dashboards;
use crate::files::Files;
use crate::http::cors::CorsPolicy;
use crate::links::LinkSigner;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::sessions::Sessions;
use crate::stores::Stores;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub stores: Stores,
    pub api_keys: ApiKeys,
    pub files: Files,
    pub analytics: Analytics,
    pub sessions: Sessions,
    pub rate_limiter: RateLimiter,
    pub cache: Cache,
    pub dashboards: Dashboards,
    pub challenges: Challenges,
    pub metrics: Arc<Metrics>,
    pub admission: Admission,
    pub links: LinkSigner,
    pub cors: CorsPolicy,
}

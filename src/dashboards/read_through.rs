//! A read-through cache in Redis for answers that are expensive to compute.
//!
//! An entry is fresh for its TTL; after that it may still be served (STALE)
//! while one refresh runs, and it is kept longer still so there is something
//! to serve while the source is down. A cold or expired key is computed once
//! however many ask at the same time: within a gateway the callers share one
//! computation, and across gateways a short Redis lock lets one gateway
//! compute while the others wait for its entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt, Shared};

use crate::stores::redis::Redis;
use crate::stores::StoreError;

/// How an answer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    Stale,
}

impl CacheStatus {
    pub fn header_value(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Stale => "STALE",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Answer {
    pub body: Bytes,
    pub status: CacheStatus,
    /// Seconds since the answer was computed.
    pub age_secs: u64,
    /// Redis could not be asked; the answer came straight from the source.
    pub bypassed: bool,
}

/// What the cache must know about one key.
pub struct Lifetimes {
    pub fresh: Duration,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    pub lock: Duration,
}

/// An answer computed, or found computed by another gateway.
#[derive(Debug, Clone)]
struct Fill {
    body: Bytes,
    stored_at_ms: u64,
}

type Flight = Shared<BoxFuture<'static, Result<Fill, StoreError>>>;

pub type Compute = BoxFuture<'static, Result<Bytes, StoreError>>;

#[derive(Clone)]
pub struct ReadThrough {
    redis: Redis,
    flights: Arc<Mutex<HashMap<String, Flight>>>,
}

/// How often a gateway waiting on another's computation looks for its entry.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

impl ReadThrough {
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            flights: Arc::default(),
        }
    }

    /// The answer under `key`: from Redis when fresh (or stale within the
    /// revalidation window), else from `compute`, stored for the next caller.
    /// Fails only when there is nothing to serve and `compute` failed.
    pub async fn get(
        &self,
        key: String,
        lifetimes: Lifetimes,
        compute: impl FnOnce() -> Compute + Send + 'static,
    ) -> Result<Answer, StoreError> {
        let now = now_ms();
        let (cached, redis_up) = match self.read(&key).await {
            Ok(cached) => (cached, true),
            Err(error) => {
                tracing::warn!(%error, "dashboard cache unreadable; answering from the source");
                (None, false)
            }
        };
        let fresh_ms = lifetimes.fresh.as_millis() as u64;
        let revalidate_ms = lifetimes.stale_while_revalidate.as_millis() as u64;
        let lifetimes = Arc::new(lifetimes);
        if let Some(entry) = &cached {
            let age_ms = now.saturating_sub(entry.stored_at_ms);
            if age_ms < fresh_ms {
                return Ok(answer(entry, CacheStatus::Hit, now, false));
            }
            if age_ms < fresh_ms + revalidate_ms {
                // The refresh runs on its own task; this caller does not wait.
                drop(self.flight(key, redis_up, Some(entry.stored_at_ms), lifetimes, compute));
                return Ok(answer(entry, CacheStatus::Stale, now, false));
            }
        }
        let seen = cached.as_ref().map(|entry| entry.stored_at_ms);
        match self.flight(key, redis_up, seen, lifetimes, compute).await {
            Ok(fill) => Ok(answer(&fill, CacheStatus::Miss, now_ms(), !redis_up)),
            Err(error) => match cached {
                Some(entry) => {
                    tracing::warn!(%error, "dashboard answer recomputation failed; serving the stale one");
                    Ok(answer(&entry, CacheStatus::Stale, now_ms(), false))
                }
                None => Err(error),
            },
        }
    }

    /// Joins the computation of `key` running in this gateway, or starts it.
    fn flight(
        &self,
        key: String,
        redis_up: bool,
        seen: Option<u64>,
        lifetimes: Arc<Lifetimes>,
        compute: impl FnOnce() -> Compute + Send + 'static,
    ) -> Flight {
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(flight) = flights.get(&key) {
            return flight.clone();
        }
        let this = self.clone();
        let flight_key = key.clone();
        // Spawned, so the computation finishes and fills the cache even when
        // every caller waiting for it has gone.
        let task = tokio::spawn(async move {
            let result = this
                .fill(&flight_key, redis_up, seen, &lifetimes, compute)
                .await;
            this.flights
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&flight_key);
            result
        });
        let flight = async move {
            task.await.unwrap_or_else(|error| {
                Err(StoreError::failed(
                    crate::stores::StoreKind::ClickHouse,
                    format!("the query task failed: {error}"),
                ))
            })
        }
        .boxed()
        .shared();
        flights.insert(key, flight.clone());
        flight
    }

    async fn fill(
        &self,
        key: &str,
        redis_up: bool,
        seen: Option<u64>,
        lifetimes: &Lifetimes,
        compute: impl FnOnce() -> Compute,
    ) -> Result<Fill, StoreError> {
        if redis_up {
            match self.lock(key, lifetimes.lock).await {
                Ok(true) => {
                    // Another gateway may have stored the entry between this
                    // caller's miss and its taking the lock.
                    let stored = match self.read(key).await {
                        Ok(Some(entry)) if seen.is_none_or(|seen| entry.stored_at_ms > seen) => {
                            Some(entry)
                        }
                        _ => None,
                    };
                    let filled = match stored {
                        Some(entry) => Ok(entry),
                        None => self.compute_and_store(key, lifetimes, compute).await,
                    };
                    self.unlock(key).await;
                    return filled;
                }
                Ok(false) => {
                    if let Some(fill) = self.wait_for_other_gateway(key, seen, lifetimes.lock).await
                    {
                        return Ok(fill);
                    }
                }
                Err(error) => tracing::warn!(%error, "dashboard cache lock unavailable"),
            }
        }
        self.compute_and_store(key, lifetimes, compute).await
    }

    async fn compute_and_store(
        &self,
        key: &str,
        lifetimes: &Lifetimes,
        compute: impl FnOnce() -> Compute,
    ) -> Result<Fill, StoreError> {
        let body = compute().await?;
        let fill = Fill {
            body,
            stored_at_ms: now_ms(),
        };
        let keep = lifetimes.fresh
            + lifetimes
                .stale_while_revalidate
                .max(lifetimes.stale_if_error);
        let mut value = Vec::with_capacity(fill.body.len() + 24);
        value.extend_from_slice(format!("{}\n", fill.stored_at_ms).as_bytes());
        value.extend_from_slice(&fill.body);
        if let Err(error) = self.redis.answer_set(key, value, keep).await {
            tracing::warn!(%error, "dashboard answer not cached");
        }
        Ok(fill)
    }

    /// Waits for the gateway holding the lock to store a newer entry than
    /// `seen`; `None` when it does not within `patience` or gives up.
    async fn wait_for_other_gateway(
        &self,
        key: &str,
        seen: Option<u64>,
        patience: Duration,
    ) -> Option<Fill> {
        let deadline = tokio::time::Instant::now() + patience;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(POLL_INTERVAL).await;
            let (entry, locked) = self.read_with_lock(key).await.ok()?;
            if let Some(entry) = entry {
                if seen.is_none_or(|seen| entry.stored_at_ms > seen) {
                    return Some(entry);
                }
            }
            if !locked {
                // The other gateway finished without storing: its query failed.
                return None;
            }
        }
        None
    }

    async fn read(&self, key: &str) -> Result<Option<Fill>, StoreError> {
        Ok(self.redis.answer_get(key).await?.and_then(decode))
    }

    async fn read_with_lock(&self, key: &str) -> Result<(Option<Fill>, bool), StoreError> {
        let (value, locked) = self.redis.answer_get_with_lock(key).await?;
        Ok((value.and_then(decode), locked))
    }

    async fn lock(&self, key: &str, hold: Duration) -> Result<bool, StoreError> {
        self.redis.answer_lock(key, hold).await
    }

    async fn unlock(&self, key: &str) {
        if let Err(error) = self.redis.answer_unlock(key).await {
            // It expires on its own within the lock time.
            tracing::warn!(%error, "dashboard cache lock not released");
        }
    }
}

/// An entry is the time it was stored (Unix milliseconds), a newline, the body.
fn decode(value: Vec<u8>) -> Option<Fill> {
    let newline = value.iter().position(|b| *b == b'\n')?;
    let stored_at_ms = std::str::from_utf8(&value[..newline]).ok()?.parse().ok()?;
    let body = Bytes::from(value).slice(newline + 1..);
    Some(Fill { body, stored_at_ms })
}

fn answer(fill: &Fill, status: CacheStatus, now_ms: u64, bypassed: bool) -> Answer {
    Answer {
        body: fill.body.clone(),
        status,
        age_secs: now_ms.saturating_sub(fill.stored_at_ms) / 1000,
        bypassed,
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_decode_into_time_and_body() {
        let fill = decode(b"1700000000123\n{\"a\":1}".to_vec()).unwrap();
        assert_eq!(fill.stored_at_ms, 1_700_000_000_123);
        assert_eq!(&fill.body[..], b"{\"a\":1}");
        assert!(decode(b"no newline".to_vec()).is_none());
        assert!(decode(b"x\n{}".to_vec()).is_none());
    }
}

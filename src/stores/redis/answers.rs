//! The read-through cache's Redis operations: stored answers under the
//! keys [`keys::dashboard_answer`] builds, each with a short lock that lets
//! one gateway compute it while the others wait.

use std::time::Duration;

use super::{keys, Redis};
use crate::stores::StoreError;

impl Redis {
    /// Stores an answer's bytes for `keep`.
    pub async fn answer_set(
        &self,
        key: &str,
        value: Vec<u8>,
        keep: Duration,
    ) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.run("dashboard_cache_set", |mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(keep.as_millis() as u64)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    pub async fn answer_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_owned();
        self.run("dashboard_cache_get", |mut c| async move {
            redis::cmd("GET").arg(key).query_async(&mut c).await
        })
        .await
    }

    /// The answer's bytes and whether a gateway holds its lock, in one
    /// round trip.
    pub async fn answer_get_with_lock(
        &self,
        key: &str,
    ) -> Result<(Option<Vec<u8>>, bool), StoreError> {
        let (key, lock) = (key.to_owned(), keys::dashboard_lock(key));
        self.run("dashboard_cache_get", |mut c| async move {
            redis::pipe()
                .get(key)
                .exists(lock)
                .query_async(&mut c)
                .await
        })
        .await
    }

    /// Takes the answer's lock for `hold` unless another holds it.
    pub async fn answer_lock(&self, key: &str, hold: Duration) -> Result<bool, StoreError> {
        let lock = keys::dashboard_lock(key);
        let taken: Option<String> = self
            .run("dashboard_cache_lock", |mut c| async move {
                redis::cmd("SET")
                    .arg(lock)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(hold.as_millis() as u64)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(taken.is_some())
    }

    pub async fn answer_unlock(&self, key: &str) -> Result<(), StoreError> {
        let lock = keys::dashboard_lock(key);
        self.run("dashboard_cache_unlock", |mut c| async move {
            redis::cmd("DEL").arg(lock).query_async::<()>(&mut c).await
        })
        .await
    }
}

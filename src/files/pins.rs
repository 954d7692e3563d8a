//! Pin requests (the IPFS Pinning Service API): a tenant names a CID, the
//! Cluster fetches and pins it. Each request is a file of the tenant with a
//! reference of its own on the CID, so the same CID may be pinned under
//! several requests, and uploads are pin requests too.

use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{pin_name, ContentId, File, Files, FilesError};
use crate::auth::TenantId;
use crate::stores::cluster::PinRequest;
use crate::stores::kubo::DagCheck;
use crate::stores::postgres::{FileDeletion, FileRow, NewPin, PinState};
pub use crate::stores::postgres::{NameMatch, PinFilter};
use crate::stores::StoreError;

/// Where a pin request stands, in the Pinning Service's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinProgress {
    Queued,
    Pinning,
    Pinned,
    Failed,
}

impl PinProgress {
    pub const ALL: [PinProgress; 4] = [
        PinProgress::Queued,
        PinProgress::Pinning,
        PinProgress::Pinned,
        PinProgress::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PinProgress::Queued => "queued",
            PinProgress::Pinning => "pinning",
            PinProgress::Pinned => "pinned",
            PinProgress::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

/// The Cluster's IPFS nodes' addresses, and when they were read.
pub(super) type Delegates = (std::time::Instant, Vec<String>);

/// A file seen as a pin request: its status, why it failed, and the
/// Cluster's IPFS nodes a client may connect to for it.
#[derive(Debug, Clone)]
pub struct TrackedPin {
    pub file: File,
    pub progress: PinProgress,
    pub failure: Option<String>,
    pub delegates: Vec<String>,
}

/// What a caller asks to pin.
#[derive(Debug, Clone)]
pub struct PinSpec {
    pub cid: ContentId,
    pub name: String,
    pub origins: Vec<String>,
    /// String values only, as the Pinning Service's `meta`.
    pub meta: serde_json::Map<String, serde_json::Value>,
}

/// The status of a file as a pin request, from its blob's state and its age.
pub fn progress_of(
    file: &File,
    now: OffsetDateTime,
    fail_after: Duration,
) -> (PinProgress, Option<String>) {
    match file.pin_state {
        PinState::Pinned => (PinProgress::Pinned, None),
        PinState::Error => (
            PinProgress::Failed,
            Some("the Cluster reports an error pinning this CID".to_owned()),
        ),
        _ if now - file.created_at > fail_after => (
            PinProgress::Failed,
            Some(format!(
                "not pinned within {} seconds; the Cluster keeps trying until the request is removed",
                fail_after.as_secs()
            )),
        ),
        _ if file.fetching => (PinProgress::Pinning, None),
        _ => (PinProgress::Queued, None),
    }
}

impl Files {
    fn fail_after(&self) -> Duration {
        Duration::from_secs(self.pinning.fail_after_secs)
    }

    fn track(&self, file: FileRow, delegates: Vec<String>) -> Result<TrackedPin, FilesError> {
        let file = File::try_from(file)?;
        let (progress, failure) = progress_of(&file, OffsetDateTime::now_utc(), self.fail_after());
        Ok(TrackedPin {
            file,
            progress,
            failure,
            delegates,
        })
    }

    /// Records a pin request and hands the pin to the Cluster, with the
    /// request's origins. Refused when the tenant has no quota left (the
    /// content's size is charged once it is pinned).
    pub async fn request_pin(
        &self,
        tenant: &TenantId,
        spec: &PinSpec,
    ) -> Result<TrackedPin, FilesError> {
        let quota =
            (self.settings.tenant_quota_bytes > 0).then_some(self.settings.tenant_quota_bytes);
        let metadata = serde_json::Value::Object(spec.meta.clone());
        let (replication_min, replication_max) =
            (self.settings.replication_min, self.settings.replication_max);
        let postgres = &self.stores.postgres;
        let pending = postgres
            .claim_pin(
                NewPin {
                    tenant_id: tenant.as_str(),
                    cid: spec.cid.as_str(),
                    name: &spec.name,
                    metadata: &metadata,
                    origins: &spec.origins,
                    replication_min,
                    replication_max,
                },
                quota,
            )
            .await?
            .ok_or_else(|| {
                let quota = self.settings.tenant_quota_bytes;
                FilesError::InsufficientFunds { quota }
            })?;
        let pinned = self
            .stores
            .cluster
            .pin(&PinRequest {
                cid: spec.cid.as_str(),
                name: &pin_name(&spec.name),
                replication_min,
                replication_max,
                origins: &spec.origins,
            })
            .await;
        let committed = match pinned {
            Ok(()) => postgres.commit_pin(pending).await,
            Err(error) => Err(error),
        };
        match committed {
            Ok(Some(file)) => {
                let file = self.settle(file).await;
                self.track(file, self.delegates().await)
            }
            Ok(None) => Err(FilesError::Expired),
            Err(error) => {
                self.roll_back(pending).await;
                Err(error.into())
            }
        }
    }

    /// Waits up to `pinning.settle_wait_ms` for a new pin to be pinned:
    /// content a peer already has, or that is small and near, is pinned in
    /// tens of milliseconds, and a client that polls (Kubo sleeps half a
    /// second between polls) then learns it from the first answer.
    async fn settle(&self, file: FileRow) -> FileRow {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.pinning.settle_wait_ms);
        let mut file = file;
        while file.pin_state == PinState::Pinning && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(25)).await;
            if let Err(error) = self.refresh_pin(&file.cid, file.replication_min).await {
                tracing::debug!(%error, "pin settle check failed");
                break;
            }
            match self.stores.postgres.file_by_id(file.id).await {
                Ok(Some(fresh)) => file = fresh,
                _ => break,
            }
        }
        file
    }

    /// The tenant's file `id` as a pin request. A pin on its way is checked
    /// with the Cluster (at most every `pinning.status_check_interval_ms`
    /// per CID, whoever asks), so a poller sees it pinned promptly.
    pub async fn pin_request(&self, tenant: &TenantId, id: Uuid) -> Result<TrackedPin, FilesError> {
        let postgres = &self.stores.postgres;
        let not_found = || FilesError::NotFound(format!("pin request {id}"));
        let mut file = postgres
            .file_by_id(id)
            .await?
            .filter(|file| file.tenant_id == tenant.as_str())
            .ok_or_else(not_found)?;
        let interval = Duration::from_millis(self.pinning.status_check_interval_ms);
        if file.pin_state == PinState::Pinning
            && postgres.take_status_check(&file.cid, interval).await?
        {
            match self.refresh_pin(&file.cid, file.replication_min).await {
                Ok(()) => {
                    file = postgres
                        .file_by_id(id)
                        .await?
                        .filter(|file| file.tenant_id == tenant.as_str())
                        .ok_or_else(not_found)?;
                }
                // The stored state is the best answer while the Cluster
                // (or Kubo, for the size) cannot say more; the next poll
                // or the reconciler asks again.
                Err(error) => tracing::warn!(%error, cid = %file.cid, "pin status check failed"),
            }
        }
        self.track(file, self.delegates().await)
    }

    /// Asks the Cluster where the pin of `cid` stands and records it; once
    /// pinned, records the content's size on its pin requests.
    pub(crate) async fn refresh_pin(
        &self,
        cid: &str,
        replication_min: i32,
    ) -> Result<(), StoreError> {
        let status = self.stores.cluster.pin_status(cid).await?;
        let state = if status.pinned_peers() >= replication_min.max(1) as usize {
            PinState::Pinned
        } else if status.has_errors() {
            tracing::warn!(%cid, error = status.first_error().unwrap_or(""), "pin failed");
            PinState::Error
        } else {
            PinState::Pinning
        };
        let postgres = &self.stores.postgres;
        postgres
            .set_pin_progress(cid, state, status.fetching())
            .await?;
        if state == PinState::Pinned {
            self.record_pin_size(cid).await?;
        }
        Ok(())
    }

    /// Reads the size of pinned `cid` from Kubo and charges it to the pin
    /// requests that wait for it: a UnixFS file's bytes, else the bytes of
    /// the blocks under it (also for data that is not UnixFS at all).
    pub(crate) async fn record_pin_size(&self, cid: &str) -> Result<(), StoreError> {
        let kubo = &self.stores.kubo;
        let size = match kubo.content_size(cid).await {
            Ok(size) => size.bytes(),
            Err(StoreError::Failed { .. }) => {
                let within = Duration::from_secs(self.settings.car_check_timeout_secs);
                match kubo.check_dag(cid, within).await? {
                    DagCheck::Complete { bytes } => bytes,
                    DagCheck::Missing(block) => {
                        return Err(StoreError::failed(
                            crate::stores::StoreKind::Kubo,
                            format!("pinned {cid} lacks block {block} on this node"),
                        ))
                    }
                }
            }
            Err(other) => return Err(other),
        };
        self.stores
            .postgres
            .record_pin_size(cid, i64::try_from(size).unwrap_or(i64::MAX))
            .await
    }

    /// The tenant's files a listing wants, newest first, and their count.
    pub async fn pin_requests(
        &self,
        tenant: &TenantId,
        mut filter: PinFilter<'_>,
    ) -> Result<(i64, Vec<TrackedPin>), FilesError> {
        filter.fail_after = self.fail_after();
        let (count, files) = self
            .stores
            .postgres
            .pin_requests(tenant.as_str(), &filter)
            .await?;
        let delegates = self.delegates().await;
        let tracked = files.into_iter().map(|f| self.track(f, delegates.clone()));
        Ok((count, tracked.collect::<Result<_, _>>()?))
    }

    /// Replaces pin request `id` with a new one (a new id): the new pin is
    /// made first, so the content stays pinned when both name the same CID.
    pub async fn replace_pin(
        &self,
        tenant: &TenantId,
        id: Uuid,
        spec: &PinSpec,
    ) -> Result<TrackedPin, FilesError> {
        self.pin_request(tenant, id).await?;
        let replacement = self.request_pin(tenant, spec).await?;
        self.remove_pin(tenant, id).await?;
        Ok(replacement)
    }

    /// Removes the tenant's file `id`; the Cluster unpins when no file is
    /// left on its CID.
    pub async fn remove_pin(&self, tenant: &TenantId, id: Uuid) -> Result<(), FilesError> {
        match self
            .stores
            .postgres
            .delete_file_by_id(tenant.as_str(), id)
            .await?
        {
            FileDeletion::Deleted { unpin } => {
                if let Some(cid) = unpin {
                    self.unpin(&cid).await;
                }
                Ok(())
            }
            FileDeletion::NotFound => Err(FilesError::NotFound(format!("pin request {id}"))),
            FileDeletion::OutputOf(submission) => Err(FilesError::InUse(format!(
                "this is the last file of its CID, and submission {submission} names it as output"
            ))),
        }
    }

    /// Multiaddrs of the Cluster's IPFS nodes, for clients to connect to;
    /// read from the Cluster at most once a minute.
    pub async fn delegates(&self) -> Vec<String> {
        const REFRESH: Duration = Duration::from_secs(60);
        {
            let cached = self.delegates.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, addresses)) = cached.as_ref() {
                if at.elapsed() < REFRESH {
                    return addresses.clone();
                }
            }
        }
        match self.stores.cluster.ipfs_addresses().await {
            Ok(addresses) => {
                let mut cached = self.delegates.lock().unwrap_or_else(|e| e.into_inner());
                *cached = Some((std::time::Instant::now(), addresses.clone()));
                addresses
            }
            Err(error) => {
                tracing::debug!(%error, "delegates unknown");
                let cached = self.delegates.lock().unwrap_or_else(|e| e.into_inner());
                cached.as_ref().map(|(_, a)| a.clone()).unwrap_or_default()
            }
        }
    }

    /// Records the sizes of pins that were pinned without anybody asking
    /// (the reconciler's part); answers how many.
    pub(crate) async fn size_pinned_requests(&self, limit: i64) -> Result<u64, StoreError> {
        let mut sized = 0;
        for cid in self.stores.postgres.unsized_pins(limit).await? {
            match self.record_pin_size(&cid).await {
                Ok(()) => sized += 1,
                Err(error) if error.is_unavailable() => return Err(error),
                Err(error) => tracing::warn!(%error, %cid, "size of a pinned CID unknown"),
            }
        }
        Ok(sized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(pin_state: PinState, fetching: bool, age_secs: i64) -> (File, OffsetDateTime) {
        let now = OffsetDateTime::now_utc();
        let file = File {
            id: Uuid::nil(),
            tenant: TenantId::parse("t").unwrap(),
            cid: ContentId::parse("bafkqaaa").unwrap(),
            owner: None,
            name: "n".into(),
            size: None,
            content_type: "application/octet-stream".into(),
            sha256: None,
            metadata: serde_json::json!({}),
            kind: super::super::FileKind::Pin,
            origins: vec![],
            pin_state,
            fetching,
            replication_min: 1,
            replication_max: 1,
            created_at: now - time::Duration::seconds(age_secs),
            updated_at: now,
        };
        (file, now)
    }

    #[test]
    fn status_follows_the_blob_and_fails_after_the_bound() {
        let bound = Duration::from_secs(60);
        let cases = [
            (PinState::Pinning, false, 1, PinProgress::Queued),
            (PinState::Pinning, true, 1, PinProgress::Pinning),
            (PinState::Pinned, true, 1, PinProgress::Pinned),
            (PinState::Pinned, true, 600, PinProgress::Pinned),
            (PinState::Error, true, 1, PinProgress::Failed),
            (PinState::Pinning, true, 61, PinProgress::Failed),
            (PinState::Pinning, false, 61, PinProgress::Failed),
        ];
        for (state, fetching, age, expected) in cases {
            let (row, now) = file(state, fetching, age);
            let (progress, failure) = progress_of(&row, now, bound);
            assert_eq!(
                progress, expected,
                "{state:?} fetching={fetching} age={age}"
            );
            assert_eq!(failure.is_some(), expected == PinProgress::Failed);
        }
    }

    #[test]
    fn statuses_parse_their_own_words_only() {
        for status in PinProgress::ALL {
            assert_eq!(PinProgress::parse(status.as_str()), Some(status));
        }
        assert_eq!(PinProgress::parse("Pinned"), None);
        assert_eq!(PinProgress::parse(""), None);
    }
}

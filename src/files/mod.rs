//! Files in IPFS: content streamed into Kubo, pinned through the Cluster,
//! described in Postgres, shared between tenants by CID with a reference count.

pub mod byte_range;
pub mod content_id;
mod reconciler;

pub use reconciler::ReconcileReport;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::TenantId;
use crate::config::FilesSettings;
use crate::metrics::Metrics;
use crate::stores::cluster::{PinRequest, PinStatus};
use crate::stores::kubo::{AddOptions, ContentStream};
use crate::stores::postgres::{FileContent, FileDeletion, FileDetails, FilePage, FileRow};
use crate::stores::{StoreError, Stores};
pub use byte_range::{requested_range, ByteRange, RangeError};
pub use content_id::{ContentId, InvalidCid};

/// Bytes kept from the start of an upload to recognise its type.
const SNIFF_BYTES: usize = 512;
/// Chunks in flight between the request body and Kubo: bounded, so a slow
/// Kubo slows the client down instead of filling memory.
const CHUNKS_IN_FLIGHT: usize = 8;
/// Request bodies arrive in small pieces; they go to Kubo gathered into
/// pieces of this size, so Kubo parses few large chunks. With
/// `CHUNKS_IN_FLIGHT` it bounds an upload's buffers to a few MiB.
const FORWARD_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("upload is over the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error(
        "upload would take the tenant over its quota of {quota} bytes ({used} already stored)"
    )]
    OverQuota { quota: u64, used: u64 },
    #[error("content type {0} is not accepted here")]
    UnsupportedType(String),
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("no file {0} in this tenant")]
    NotFound(String),
    #[error("{0}")]
    InUse(String),
}

impl FilesError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        FilesError::Invalid {
            code,
            message: message.into(),
        }
    }
}

/// How many bytes an upload may bring, and which limit that is.
#[derive(Debug, Clone)]
pub struct UploadLimit {
    bytes: u64,
    quota: Option<(u64, u64)>,
}

impl UploadLimit {
    fn exceeded(&self) -> FilesError {
        match self.quota {
            Some((quota, used)) => FilesError::OverQuota { quota, used },
            None => FilesError::TooLarge { limit: self.bytes },
        }
    }
}

/// An upload that has begun: its row exists, invisible, until commit.
#[derive(Debug)]
pub struct PendingUpload {
    id: Uuid,
}

/// What streaming the content into Kubo learned.
#[derive(Debug, Clone)]
pub struct ReceivedContent {
    pub cid: String,
    pub size: u64,
    pub sha256: [u8; 32],
    /// The type recognised from the first bytes, when recognised.
    pub sniffed_type: Option<&'static str>,
}

/// What a caller says about an upload.
#[derive(Debug, Clone)]
pub struct UploadDetails {
    pub name: String,
    pub owner: Option<String>,
    pub declared_type: Option<String>,
    pub metadata: serde_json::Value,
    pub replication_min: i32,
    pub replication_max: i32,
}

/// A file stored in one call, and whether it is new: content the tenant
/// already had is the same file as before.
pub struct StoredFile {
    pub file: FileRow,
    pub created: bool,
}

#[derive(Clone)]
pub struct Files {
    stores: Stores,
    settings: Arc<FilesSettings>,
    metrics: Arc<Metrics>,
}

impl Files {
    pub fn new(stores: Stores, settings: FilesSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            stores,
            settings: Arc::new(settings),
            metrics,
        }
    }

    pub fn settings(&self) -> &FilesSettings {
        &self.settings
    }

    pub async fn begin(&self, tenant: &TenantId) -> Result<PendingUpload, FilesError> {
        let id = self
            .stores
            .postgres
            .insert_pending_file(tenant.as_str())
            .await?;
        Ok(PendingUpload { id })
    }

    /// The most a new upload of `tenant` may bring: the size limit, or what
    /// is left of the tenant's quota when that is less.
    pub async fn upload_limit(&self, tenant: &TenantId) -> Result<UploadLimit, FilesError> {
        let max = self.settings.max_upload_bytes;
        let quota = self.settings.tenant_quota_bytes;
        if quota == 0 {
            return Ok(UploadLimit {
                bytes: max,
                quota: None,
            });
        }
        let used = self.stores.postgres.tenant_usage(tenant.as_str()).await?;
        let left = quota.saturating_sub(used);
        Ok(if left < max {
            UploadLimit {
                bytes: left,
                quota: Some((quota, used)),
            }
        } else {
            UploadLimit {
                bytes: max,
                quota: None,
            }
        })
    }

    /// Polls the Cluster until `replication_min` peers report the pin as
    /// pinned or `files.pin_wait_max_secs` passes; true when it got there.
    pub async fn wait_until_pinned(
        &self,
        cid: &ContentId,
        replication_min: i32,
    ) -> Result<(PinStatus, bool), FilesError> {
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_secs(self.settings.pin_wait_max_secs);
        loop {
            let status = self.pin_status(cid).await?;
            if status.pinned_peers() >= replication_min.max(1) as usize {
                self.stores
                    .postgres
                    .set_pin_state(cid.as_str(), "pinned")
                    .await?;
                return Ok((status, true));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok((status, false));
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    /// Forgets an upload that failed; what Kubo received stays unpinned.
    pub async fn abandon(&self, pending: PendingUpload) {
        if let Err(error) = self.stores.postgres.discard_pending_file(pending.id).await {
            // The reconciler removes the row later.
            tracing::warn!(%error, pending = %pending.id, "could not discard a pending upload");
        }
    }

    /// Streams `body` into Kubo, hashing and counting on the same pass and
    /// cutting the stream off as soon as it crosses the size limit.
    pub async fn receive<S, E>(
        &self,
        limit: &UploadLimit,
        body: S,
    ) -> Result<ReceivedContent, FilesError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let limit = limit.clone();
        let (sender, receiver) =
            tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_IN_FLIGHT);
        let to_kubo = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        });
        let options = AddOptions {
            chunker: self.settings.chunker.clone(),
        };
        let add = self.stores.kubo.add(to_kubo, &options);
        let pump = async move {
            let mut hasher = Sha256::new();
            let mut size: u64 = 0;
            let mut head = Vec::with_capacity(SNIFF_BYTES);
            let mut gathered = bytes::BytesMut::with_capacity(FORWARD_BYTES);
            let mut body = std::pin::pin!(body);
            while let Some(chunk) = body.next().await {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(error) => {
                        let message = format!("the request body ended abnormally: {error}");
                        let _ = sender
                            .send(Err(std::io::Error::other(message.clone())))
                            .await;
                        return Err(FilesError::invalid("incomplete_body", message));
                    }
                };
                size += chunk.len() as u64;
                if size > limit.bytes {
                    let _ = sender
                        .send(Err(std::io::Error::other("upload over its limit")))
                        .await;
                    return Err(limit.exceeded());
                }
                hasher.update(&chunk);
                if head.len() < SNIFF_BYTES {
                    let take = (SNIFF_BYTES - head.len()).min(chunk.len());
                    head.extend_from_slice(&chunk[..take]);
                }
                gathered.extend_from_slice(&chunk);
                if gathered.len() >= FORWARD_BYTES {
                    let piece = gathered.split().freeze();
                    if sender.send(Ok(piece)).await.is_err() {
                        // Kubo stopped reading; its own error says why.
                        return Ok(None);
                    }
                }
            }
            if !gathered.is_empty() && sender.send(Ok(gathered.freeze())).await.is_err() {
                return Ok(None);
            }
            Ok(Some((size, hasher.finalize().into(), head)))
        };
        let (pumped, added) = tokio::join!(pump, add);
        let Some((size, sha256, head)) = pumped? else {
            return Err(added
                .err()
                .map(FilesError::from)
                .unwrap_or_else(|| FilesError::invalid("incomplete_body", "upload interrupted")));
        };
        let added = added?;
        Ok(ReceivedContent {
            cid: added.cid,
            size,
            sha256,
            sniffed_type: infer::get(&head).map(|kind| kind.mime_type()),
        })
    }

    /// Pins the content through the Cluster (unless another file already
    /// holds it) and makes the file visible, in one transaction.
    pub async fn commit(
        &self,
        pending: &PendingUpload,
        content: &ReceivedContent,
        details: &UploadDetails,
    ) -> Result<FileRow, FilesError> {
        let content_type = content
            .sniffed_type
            .map(str::to_owned)
            .or_else(|| details.declared_type.clone())
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        let allowed = &self.settings.allowed_content_types;
        if !allowed.is_empty()
            && !allowed
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&content_type))
        {
            return Err(FilesError::UnsupportedType(content_type));
        }
        let size = i64::try_from(content.size).map_err(|_| FilesError::TooLarge {
            limit: i64::MAX as u64,
        })?;
        let cluster = &self.stores.cluster;
        let pin = PinRequest {
            cid: &content.cid,
            name: &details.name,
            replication_min: details.replication_min,
            replication_max: details.replication_max,
        };
        let row = self
            .stores
            .postgres
            .commit_file(
                pending.id,
                FileContent {
                    cid: &content.cid,
                    size_bytes: size,
                    sha256: &content.sha256,
                    replication_min: details.replication_min,
                    replication_max: details.replication_max,
                },
                FileDetails {
                    owner_id: details.owner.as_deref(),
                    name: &details.name,
                    content_type: &content_type,
                    metadata: &details.metadata,
                },
                || cluster.pin(&pin),
            )
            .await?;
        self.metrics
            .file_bytes
            .with_label_values(&["upload"])
            .inc_by(content.size);
        Ok(row)
    }

    /// Stores `body` as a file of `tenant`: the whole upload path (limits,
    /// quota, Kubo, Cluster pin, commit) in one call, streaming as it goes.
    pub async fn store<S, E>(
        &self,
        tenant: &TenantId,
        body: S,
        details: &UploadDetails,
    ) -> Result<StoredFile, FilesError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let limit = self.upload_limit(tenant).await?;
        let pending = self.begin(tenant).await?;
        let outcome = async {
            let received = self.receive(&limit, body).await?;
            self.commit(&pending, &received, details).await
        }
        .await;
        match outcome {
            Ok(file) => Ok(StoredFile {
                // The pending row became the file unless the tenant already
                // had one with this content.
                created: file.id == pending.id,
                file,
            }),
            Err(error) => {
                self.abandon(pending).await;
                Err(error)
            }
        }
    }

    /// Counts `bytes` of content sent to a client.
    pub fn count_download(&self, bytes: u64) {
        self.metrics
            .file_bytes
            .with_label_values(&["download"])
            .inc_by(bytes);
    }

    pub async fn file(&self, tenant: &TenantId, cid: &ContentId) -> Result<FileRow, FilesError> {
        self.stores
            .postgres
            .file(tenant.as_str(), cid.as_str())
            .await?
            .ok_or_else(|| FilesError::NotFound(cid.to_string()))
    }

    pub async fn list(
        &self,
        tenant: &TenantId,
        owner: Option<&str>,
        after: Option<(time::OffsetDateTime, Uuid)>,
        limit: i64,
    ) -> Result<FilePage, FilesError> {
        Ok(self
            .stores
            .postgres
            .files(tenant.as_str(), owner, after, limit)
            .await?)
    }

    pub async fn pin_status(&self, cid: &ContentId) -> Result<PinStatus, FilesError> {
        Ok(self.stores.cluster.pin_status(cid.as_str()).await?)
    }

    /// The file's bytes in `range` (all of them when `None`), streamed from Kubo.
    pub async fn content(
        &self,
        file: &FileRow,
        range: Option<ByteRange>,
    ) -> Result<ContentStream, FilesError> {
        let range = range.map(|r| (r.start, r.end));
        Ok(self.stores.kubo.read(&file.cid, range).await?)
    }

    /// Removes the tenant's file; the Cluster unpins when no file is left on the CID.
    pub async fn delete(&self, tenant: &TenantId, cid: &ContentId) -> Result<(), FilesError> {
        let cluster = &self.stores.cluster;
        let deleted = self
            .stores
            .postgres
            .delete_file(tenant.as_str(), cid.as_str(), || {
                cluster.unpin(cid.as_str())
            })
            .await?;
        match deleted {
            FileDeletion::Deleted => Ok(()),
            FileDeletion::NotFound => Err(FilesError::NotFound(cid.to_string())),
            FileDeletion::OutputOf(submission) => Err(FilesError::InUse(format!(
                "file {cid} is the output of submission {submission}; it stays while the submission does"
            ))),
        }
    }
}

//! Files in IPFS: content streamed into Kubo, pinned through the Cluster,
//! described in Postgres, shared between tenants by CID with a reference count.

pub mod byte_range;
pub mod content_id;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::TenantId;
use crate::config::FilesSettings;
use crate::stores::cluster::{PinRequest, PinStatus};
use crate::stores::kubo::{AddOptions, ContentStream};
use crate::stores::postgres::{FileContent, FileDetails, FilePage, FileRow};
use crate::stores::{StoreError, Stores};
pub use byte_range::{requested_range, ByteRange, RangeError};
pub use content_id::{ContentId, InvalidCid};

/// Bytes kept from the start of an upload to recognise its type.
const SNIFF_BYTES: usize = 512;
/// Chunks in flight between the request body and Kubo: bounded, so a slow
/// Kubo slows the client down instead of filling memory.
const CHUNKS_IN_FLIGHT: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("upload is over the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("no file {0} in this tenant")]
    NotFound(String),
}

impl FilesError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        FilesError::Invalid {
            code,
            message: message.into(),
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

#[derive(Clone)]
pub struct Files {
    stores: Stores,
    settings: Arc<FilesSettings>,
}

impl Files {
    pub fn new(stores: Stores, settings: FilesSettings) -> Self {
        Self {
            stores,
            settings: Arc::new(settings),
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

    /// Forgets an upload that failed; what Kubo received stays unpinned.
    pub async fn abandon(&self, pending: PendingUpload) {
        if let Err(error) = self.stores.postgres.discard_pending_file(pending.id).await {
            // The reconciler removes the row later.
            tracing::warn!(%error, pending = %pending.id, "could not discard a pending upload");
        }
    }

    /// Streams `body` into Kubo, hashing and counting on the same pass and
    /// cutting the stream off as soon as it crosses the size limit.
    pub async fn receive<S, E>(&self, body: S) -> Result<ReceivedContent, FilesError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let limit = self.settings.max_upload_bytes;
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
                if size > limit {
                    let _ = sender
                        .send(Err(std::io::Error::other("upload over the size limit")))
                        .await;
                    return Err(FilesError::TooLarge { limit });
                }
                hasher.update(&chunk);
                if head.len() < SNIFF_BYTES {
                    let take = (SNIFF_BYTES - head.len()).min(chunk.len());
                    head.extend_from_slice(&chunk[..take]);
                }
                if sender.send(Ok(chunk)).await.is_err() {
                    // Kubo stopped reading; its own error says why.
                    return Ok(None);
                }
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
        Ok(row)
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
        let (offset, length) = match range {
            Some(range) => (range.start, Some(range.len())),
            None => (0, None),
        };
        Ok(self.stores.kubo.cat(&file.cid, offset, length).await?)
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
        if deleted {
            Ok(())
        } else {
            Err(FilesError::NotFound(cid.to_string()))
        }
    }
}

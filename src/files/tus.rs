//! Resumable uploads (the tus protocol's model): an upload is created with
//! its quota reserved, receives its bytes in parts through any gateway, and
//! on its last byte becomes a file exactly as a one-request upload would.
//!
//! Each part's bytes go to Kubo as they arrive, cut into the raw leaves
//! `add` would make; Postgres keeps the leaves' digests, the bytes of a leaf
//! not yet complete and the running SHA-256. The last part builds the DAG
//! over the leaves ([`super::unixfs`]) and commits it like any upload.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::running_hash::RunningHash;
use super::unixfs::{self, DagNode};
use super::{Files, FilesError, ReceivedContent, StoredFile, UploadDetails, SNIFF_BYTES};
use crate::auth::TenantId;
use crate::error_code::ErrorCode;
use crate::stores::kubo::AddOptions;
use crate::stores::postgres::{NewTusUpload, TusLock, TusProgress, TusRow};
use crate::stores::{StoreError, StoreKind};

/// A PATCH holds its upload this long, renewed while it streams; a gateway
/// that dies mid-PATCH frees the upload when it runs out.
const LEASE: Duration = Duration::from_secs(30);
/// A PATCH waits this long for another PATCH of the same upload to finish.
const LOCK_WAIT: Duration = Duration::from_secs(10);
/// Leaves in flight between the request body and Kubo.
const LEAVES_IN_FLIGHT: usize = 4;

/// What a resumable upload is created with.
#[derive(Debug, Clone)]
pub struct TusCreation {
    /// `None` while the length is deferred.
    pub length: Option<u64>,
    pub details: UploadDetails,
    /// Content types the file may have (from a signed upload link); empty
    /// allows what the gateway allows.
    pub allowed_types: Vec<String>,
    /// Most bytes the upload may bring (from a signed upload link).
    pub max_bytes: Option<u64>,
    pub wait_for_pin: bool,
    /// A one-use link's nonce and expiry: the creation uses it up.
    pub one_use: Option<(String, i64)>,
}

/// What the caller said at creation, kept with the upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TusDetails {
    #[serde(flatten)]
    pub upload: UploadDetails,
    pub allowed_types: Vec<String>,
    pub wait_for_pin: bool,
}

/// Where a resumable upload stands.
#[derive(Debug, Clone)]
pub struct TusUpload {
    pub id: Uuid,
    pub offset: u64,
    pub length: Option<u64>,
    pub expires_at: OffsetDateTime,
    /// The file's CID once the last byte came.
    pub completed: Option<String>,
    pub details: TusDetails,
}

impl TusUpload {
    fn from_row(row: &TusRow) -> Result<Self, FilesError> {
        let details = serde_json::from_value(row.details.clone()).map_err(|e| {
            FilesError::Store(StoreError::failed(
                StoreKind::Postgres,
                format!("upload {} has unreadable details: {e}", row.id),
            ))
        })?;
        Ok(Self {
            id: row.id,
            offset: row.upload_offset.max(0) as u64,
            length: row.upload_length.map(|l| l.max(0) as u64),
            expires_at: row.expires_at,
            completed: row.completed_cid.clone(),
            details,
        })
    }
}

/// One PATCH: where it starts, the length when it declares it (deferred
/// uploads), and the SHA-256 its bytes must have.
#[derive(Debug, Clone, Copy)]
pub struct TusPatch {
    pub offset: u64,
    pub length: Option<u64>,
    pub checksum: Option<[u8; 32]>,
}

/// The upload after a PATCH, and the file when that was its last byte.
pub struct Appended {
    pub upload: TusUpload,
    pub stored: Option<StoredFile>,
}

/// The leaf size when the chunker is `size-N` with N a multiple of 64 and
/// above the inline limit: only then can parts be cut as `add` cuts.
pub fn leaf_bytes(chunker: &str) -> Option<usize> {
    let size: usize = chunker.strip_prefix("size-")?.parse().ok()?;
    (size > unixfs::INLINE_LIMIT && size.is_multiple_of(64)).then_some(size)
}

/// Renews a PATCH's lease while it lives.
struct LeaseKeeper(tokio::task::JoinHandle<()>);

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn inconsistent(id: Uuid, what: impl std::fmt::Display) -> FilesError {
    FilesError::Store(StoreError::failed(
        StoreKind::Postgres,
        format!("upload {id}: {what}"),
    ))
}

impl Files {
    fn tus_leaf_bytes(&self) -> Result<usize, FilesError> {
        leaf_bytes(&self.settings.chunker).ok_or_else(|| FilesError::NotSupported(format!(
            "resumable uploads need a files.chunker of the form size-N (N a multiple of 64); this gateway uses {}",
            self.settings.chunker
        )))
    }

    /// Creates an upload of `tenant`, reserving its length (or, deferred,
    /// what the limits allow) of the quota until it finishes or expires.
    pub async fn tus_create(
        &self,
        tenant: &TenantId,
        creation: TusCreation,
    ) -> Result<TusUpload, FilesError> {
        self.tus_leaf_bytes()?;
        let postgres = &self.stores.postgres;
        let limit = self
            .settings
            .max_upload_bytes
            .min(creation.max_bytes.unwrap_or(u64::MAX));
        if let Some(length) = creation.length {
            if length > limit {
                return Err(FilesError::TooLarge { limit });
            }
        }
        if let Some((nonce, expires)) = &creation.one_use {
            let expires = OffsetDateTime::from_unix_timestamp(*expires)
                .map_err(|e| FilesError::invalid(ErrorCode::InvalidLink, e.to_string()))?;
            if !postgres.consume_link(nonce, expires).await? {
                return Err(FilesError::LinkUsed);
            }
        }
        let open = postgres.open_tus_uploads(tenant.as_str()).await?;
        if open >= self.settings.max_open_uploads_per_tenant {
            return Err(FilesError::TooManyUploads {
                limit: self.settings.max_open_uploads_per_tenant,
            });
        }
        let (pending, upload_limit) = self
            .reserve(tenant, Some(creation.length.unwrap_or(limit)))
            .await?;
        if let Some(length) = creation.length {
            if length > upload_limit.bytes {
                self.roll_back(pending).await;
                return Err(upload_limit.exceeded());
            }
        }
        let details = TusDetails {
            upload: creation.details,
            allowed_types: creation.allowed_types,
            wait_for_pin: creation.wait_for_pin,
        };
        let details_json = serde_json::to_value(&details)
            .map_err(|e| FilesError::invalid(ErrorCode::InvalidMetadata, e.to_string()))?;
        let id = Uuid::new_v4();
        let expires_at =
            OffsetDateTime::now_utc() + Duration::from_secs(self.settings.tus_expiry_secs);
        let inserted = postgres
            .insert_tus_upload(NewTusUpload {
                id,
                tenant_id: tenant.as_str(),
                file_id: pending,
                upload_length: creation.length.map(|l| l as i64),
                max_bytes: upload_limit.bytes.min(i64::MAX as u64) as i64,
                details: &details_json,
                hash_state: &RunningHash::default().save(),
                expires_at,
            })
            .await;
        if let Err(error) = inserted {
            self.roll_back(pending).await;
            return Err(error.into());
        }
        Ok(TusUpload {
            id,
            offset: 0,
            length: creation.length,
            expires_at,
            completed: None,
            details,
        })
    }

    pub async fn tus_upload(&self, tenant: &TenantId, id: Uuid) -> Result<TusUpload, FilesError> {
        let row = self
            .stores
            .postgres
            .tus_upload(tenant.as_str(), id)
            .await?
            .ok_or_else(|| FilesError::NotFound(format!("upload {id}")))?;
        TusUpload::from_row(&row)
    }

    /// Ends an upload before it finished, releasing its reservation.
    pub async fn tus_terminate(&self, tenant: &TenantId, id: Uuid) -> Result<(), FilesError> {
        match self
            .stores
            .postgres
            .delete_tus_upload(tenant.as_str(), id)
            .await?
        {
            None => Err(FilesError::NotFound(format!("upload {id}"))),
            Some(pending) => {
                if let Some(pending) = pending {
                    self.roll_back(pending).await;
                }
                Ok(())
            }
        }
    }

    /// Expired uploads: gone, their reservations released.
    pub(crate) async fn expire_tus_uploads(&self, limit: i64) -> Result<u64, FilesError> {
        let pending = self.stores.postgres.expire_tus_uploads(limit).await?;
        for file in &pending {
            self.roll_back(*file).await;
        }
        Ok(pending.len() as u64)
    }

    /// Waits until no other PATCH holds the upload, then holds it.
    async fn tus_lock(
        &self,
        tenant: &TenantId,
        id: Uuid,
        token: Uuid,
    ) -> Result<TusRow, FilesError> {
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        loop {
            match self
                .stores
                .postgres
                .lock_tus_upload(tenant.as_str(), id, token, LEASE)
                .await?
            {
                TusLock::Locked(row) => return Ok(*row),
                TusLock::Missing => return Err(FilesError::NotFound(format!("upload {id}"))),
                TusLock::Busy if tokio::time::Instant::now() >= deadline => {
                    return Err(FilesError::Locked(format!(
                        "upload {id} is receiving another PATCH; retry when it ends"
                    )))
                }
                TusLock::Busy => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    fn keep_lease(&self, id: Uuid, token: Uuid) -> LeaseKeeper {
        let postgres = self.stores.postgres.clone();
        LeaseKeeper(tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                if let Err(error) = postgres.renew_tus_lock(id, token, LEASE).await {
                    tracing::warn!(%error, %id, "could not renew an upload's lease");
                }
            }
        }))
    }

    /// Appends one PATCH's `body` to the tenant's upload `id` at
    /// `patch.offset`. Parts are serialised: a second PATCH waits for the
    /// first. Bytes that arrived before the client went away are kept
    /// (unless the PATCH carried a checksum, which they cannot meet).
    pub async fn tus_append<S, E>(
        &self,
        tenant: &TenantId,
        id: Uuid,
        patch: TusPatch,
        body: S,
    ) -> Result<Appended, FilesError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let leaf = self.tus_leaf_bytes()?;
        let _slot = self.admission.upload_slot()?;
        let token = Uuid::new_v4();
        let row = self.tus_lock(tenant, id, token).await?;
        let _lease = self.keep_lease(id, token);
        let outcome = self.append_locked(&row, token, leaf, patch, body).await;
        if outcome.is_err() {
            if let Err(error) = self.stores.postgres.unlock_tus_upload(id, token).await {
                tracing::warn!(%error, %id, "could not release an upload; its lease runs out");
            }
        }
        let appended = outcome?;
        // The last byte's answer waits for the pin when the upload asked.
        if let Some(stored) = &appended.stored {
            if appended.upload.details.wait_for_pin {
                self.wait_until_pinned(&stored.file.cid, stored.file.replication_min)
                    .await?;
            }
        }
        Ok(appended)
    }

    async fn append_locked<S, E>(
        &self,
        row: &TusRow,
        token: Uuid,
        leaf: usize,
        patch: TusPatch,
        body: S,
    ) -> Result<Appended, FilesError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let upload = TusUpload::from_row(row)?;
        if upload.completed.is_some() {
            return if patch.offset == upload.offset {
                Ok(Appended {
                    upload,
                    stored: None,
                })
            } else {
                Err(FilesError::OffsetMismatch {
                    expected: upload.offset,
                    got: patch.offset,
                })
            };
        }
        let Some(pending) = row.file_id else {
            return Err(FilesError::NotFound(format!(
                "upload {}: it failed and was rolled back",
                row.id
            )));
        };
        if patch.offset != upload.offset {
            return Err(FilesError::OffsetMismatch {
                expected: upload.offset,
                got: patch.offset,
            });
        }
        let max_bytes = row.max_bytes.max(0) as u64;
        let length = match (upload.length, patch.length) {
            (Some(known), Some(declared)) if known != declared => {
                return Err(FilesError::invalid(
                    ErrorCode::InvalidUploadLength,
                    format!("Upload-Length {declared} differs from the upload's length {known}"),
                ))
            }
            (Some(known), _) => Some(known),
            (None, Some(declared)) if declared < upload.offset || declared > max_bytes => {
                return Err(if declared > max_bytes {
                    FilesError::TooLarge { limit: max_bytes }
                } else {
                    FilesError::invalid(
                        ErrorCode::InvalidUploadLength,
                        format!("Upload-Length {declared} is below the bytes already received"),
                    )
                });
            }
            (None, declared) => declared,
        };
        let room = length.unwrap_or(max_bytes) - upload.offset;
        let received = self
            .receive_part(row, leaf, room, patch.checksum.is_some(), body)
            .await?;
        if let Some(expected) = patch.checksum {
            if received.checksum != Some(expected) {
                return Err(FilesError::ChecksumMismatch);
            }
        }
        let offset = upload.offset + received.bytes;
        let complete = length == Some(offset);
        let advanced = self
            .stores
            .postgres
            .advance_tus_upload(
                row.id,
                token,
                TusProgress {
                    from_offset: upload.offset as i64,
                    offset: offset as i64,
                    upload_length: length.map(|l| l as i64),
                    tail: &received.tail,
                    hash_state: &received.hash.save(),
                    head: &received.head,
                    new_leaves: &received.leaf_digests,
                    release: !complete,
                },
            )
            .await?;
        if !advanced {
            return Err(FilesError::Locked(format!(
                "upload {} changed while this PATCH streamed (terminated, or its lease ran out)",
                row.id
            )));
        }
        if let Some(message) = received.interrupted {
            return Err(FilesError::invalid(ErrorCode::IncompleteBody, message));
        }
        let upload = TusUpload {
            offset,
            length,
            ..upload
        };
        if !complete {
            return Ok(Appended {
                upload,
                stored: None,
            });
        }
        let stored = self
            .finish_upload(row, pending, leaf, offset, &received)
            .await;
        match stored {
            Ok(stored) => {
                self.stores
                    .postgres
                    .complete_tus_upload(row.id, stored.file.cid.as_str())
                    .await?;
                Ok(Appended {
                    upload: TusUpload {
                        completed: Some(stored.file.cid.to_string()),
                        ..upload
                    },
                    stored: Some(stored),
                })
            }
            // A store that failed (the Cluster down, say) keeps the upload:
            // its bytes were accepted, and the client retries the last
            // PATCH (at the end, with no body) once the store is back.
            Err(error @ FilesError::Store(_)) => {
                self.release_claim(pending).await;
                Err(error)
            }
            Err(error) => {
                self.roll_back(pending).await;
                Err(error)
            }
        }
    }

    /// Streams one part into Kubo as whole leaves, keeping the bytes of the
    /// last, incomplete leaf; counts, hashes and bounds it on the way.
    async fn receive_part<S, E>(
        &self,
        row: &TusRow,
        leaf: usize,
        room: u64,
        all_or_nothing: bool,
        body: S,
    ) -> Result<ReceivedPart, FilesError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let mut hash =
            RunningHash::restore(&row.hash_state).map_err(|e| inconsistent(row.id, e))?;
        let (sender, receiver) =
            tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(LEAVES_IN_FLIGHT);
        let to_kubo = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        });
        // Whole leaves through `add` with the upload chunker: Kubo cuts them
        // into exactly these raw blocks and stores them in one batch, much
        // faster than a block put each. The small DAG it builds over a part
        // is left unpinned; the file's own DAG is built on the last byte.
        let options = AddOptions {
            chunker: self.settings.chunker.clone(),
        };
        let put = self.stores.kubo.add(to_kubo, &options);
        let file_offset = row.upload_offset.max(0) as u64;
        let pump = async move {
            // Only a PATCH that names a checksum pays for hashing its part.
            let mut checksum = all_or_nothing.then(Sha256::new);
            let mut gathered = BytesMut::with_capacity(leaf);
            gathered.extend_from_slice(&row.tail);
            let mut head = row.head.clone();
            let mut bytes: u64 = 0;
            let mut leaf_digests = Vec::new();
            let mut interrupted = None;
            let mut body = std::pin::pin!(body);
            while let Some(chunk) = body.next().await {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(error) => {
                        let message = format!("the request body ended abnormally: {error}");
                        if all_or_nothing {
                            let _ = sender
                                .send(Err(std::io::Error::other(message.clone())))
                                .await;
                            return Err(FilesError::invalid(ErrorCode::IncompleteBody, message));
                        }
                        interrupted = Some(message);
                        break;
                    }
                };
                bytes += chunk.len() as u64;
                if bytes > room {
                    let _ = sender
                        .send(Err(std::io::Error::other("part over the upload's length")))
                        .await;
                    return Err(FilesError::TooLarge {
                        limit: file_offset + room,
                    });
                }
                if let Some(checksum) = checksum.as_mut() {
                    checksum.update(&chunk);
                }
                if head.len() < SNIFF_BYTES {
                    let take = (SNIFF_BYTES - head.len()).min(chunk.len());
                    head.extend_from_slice(&chunk[..take]);
                }
                let mut chunk = &chunk[..];
                while !chunk.is_empty() {
                    let take = (leaf - gathered.len()).min(chunk.len());
                    gathered.extend_from_slice(&chunk[..take]);
                    chunk = &chunk[take..];
                    if gathered.len() == leaf {
                        let whole = gathered.split().freeze();
                        hash.update_blocks(&whole);
                        leaf_digests.extend_from_slice(&Sha256::digest(&whole));
                        if sender.send(Ok(whole)).await.is_err() {
                            // Kubo stopped reading; its own error says why.
                            return Ok(None);
                        }
                    }
                }
            }
            drop(sender);
            Ok(Some(ReceivedPart {
                bytes,
                checksum: checksum.map(|c| c.finalize().into()),
                tail: gathered.to_vec(),
                hash,
                head,
                leaf_digests,
                interrupted,
            }))
        };
        let (pumped, put) = tokio::join!(pump, put);
        let Some(part) = pumped? else {
            return Err(put.err().map(FilesError::from).unwrap_or_else(|| {
                FilesError::invalid(ErrorCode::IncompleteBody, "upload interrupted")
            }));
        };
        put?;
        Ok(part)
    }

    /// Builds the file's DAG over its stored leaves and the last one, and
    /// commits it as the pending file's content.
    async fn finish_upload(
        &self,
        row: &TusRow,
        pending: Uuid,
        leaf: usize,
        size: u64,
        last: &ReceivedPart,
    ) -> Result<StoredFile, FilesError> {
        let kubo = &self.stores.kubo;
        let digests = self.stores.postgres.tus_leaf_digests(row.id).await?;
        let mut leaves: Vec<DagNode> = digests
            .chunks_exact(32)
            .map(|digest| DagNode {
                cid: unixfs::raw_leaf_cid_from_digest(digest.try_into().expect("32 bytes")),
                content_bytes: leaf as u64,
                total_bytes: leaf as u64,
            })
            .collect();
        if leaves.len() as u64 * leaf as u64 + last.tail.len() as u64 != size {
            return Err(inconsistent(
                row.id,
                "its stored leaves do not add up to its length",
            ));
        }
        if !last.tail.is_empty() {
            let tail = Bytes::copy_from_slice(&last.tail);
            let cid = unixfs::raw_leaf_cid(&tail);
            if tail.len() > unixfs::INLINE_LIMIT {
                kubo.put_blocks(futures_util::stream::iter([Ok(tail.clone())]), "raw")
                    .await?;
            }
            leaves.push(DagNode {
                cid,
                content_bytes: tail.len() as u64,
                total_bytes: tail.len() as u64,
            });
        }
        let (root, blocks) = unixfs::build(&leaves);
        if !blocks.is_empty() {
            let put = blocks.iter().map(|b| Ok(Bytes::from(b.bytes.clone())));
            let keys = kubo
                .put_blocks(
                    futures_util::stream::iter(put.collect::<Vec<_>>()),
                    "dag-pb",
                )
                .await?;
            let expected: Vec<String> = blocks.iter().map(|b| b.cid.to_string()).collect();
            if keys != expected {
                return Err(FilesError::Store(StoreError::failed(
                    StoreKind::Kubo,
                    "stored a DAG node under another CID than computed",
                )));
            }
        }
        let content = ReceivedContent {
            cid: root.cid.to_string(),
            size,
            sha256: Some(last.hash.clone().finish(&last.tail)),
            sniffed_type: infer::get(&last.head).map(|kind| kind.mime_type()),
            kind: super::FileKind::Upload,
            dag_bytes: root.total_bytes,
        };
        let details: TusDetails =
            serde_json::from_value(row.details.clone()).map_err(|e| inconsistent(row.id, e))?;
        let allowed = &details.allowed_types;
        let file = self
            .commit(pending, &content, &details.upload, allowed)
            .await?;
        Ok(self.stored(pending, file))
    }
}

/// What one part brought.
struct ReceivedPart {
    bytes: u64,
    /// The part's SHA-256, when the PATCH named a checksum.
    checksum: Option<[u8; 32]>,
    tail: Vec<u8>,
    hash: RunningHash,
    head: Vec<u8>,
    leaf_digests: Vec<u8>,
    interrupted: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_can_be_cut_only_with_a_fixed_size_chunker() {
        assert_eq!(leaf_bytes("size-262144"), Some(262144));
        assert_eq!(leaf_bytes("size-1024"), Some(1024));
        assert_eq!(leaf_bytes("size-1000"), None);
        assert_eq!(leaf_bytes("size-32"), None);
        assert_eq!(leaf_bytes("rabin-1024-2048-4096"), None);
    }
}

//! The `file_metadata` and `ipfs_blobs` tables.
//!
//! A file row starts as `writing` (invisible), holding a reservation of its
//! tenant's quota. Once its content is in Kubo it claims a reference on its
//! CID's blob row, in a transaction of its own, before the Cluster is asked
//! to pin; it becomes `committed` in a later one. A blob whose last reference
//! goes is marked `unpinning` in the transaction that drops it, and its row
//! is deleted only after the Cluster confirmed the unpin. So no pin is made
//! that no row owns, no unpin is made while a row still owns the CID, and no
//! transaction (nor pooled connection) waits on the Cluster.
//!
//! Locks are always taken blob row first, then file rows.

use std::collections::HashSet;

use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{query_error, Postgres};
use crate::stores::{StoreError, StoreKind};

/// Where a blob's pin stands: the values `ipfs_blobs.pin_state` may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinState {
    /// Asked of the Cluster, not yet held by enough peers.
    Pinning,
    Pinned,
    /// The Cluster reported an error; the reconciler asks again.
    Error,
    /// No file refers to it any more; its unpin is under way.
    Unpinning,
}

impl PinState {
    pub const fn as_str(self) -> &'static str {
        match self {
            PinState::Pinning => "pinning",
            PinState::Pinned => "pinned",
            PinState::Error => "error",
            PinState::Unpinning => "unpinning",
        }
    }

    /// The column's text. Its CHECK constraint allows no other value; one
    /// that slipped in anyway reads as an error, which the reconciler retries.
    fn from_column(text: &str) -> Self {
        match text {
            "pinning" => PinState::Pinning,
            "pinned" => PinState::Pinned,
            "unpinning" => PinState::Unpinning,
            _ => PinState::Error,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FileRow {
    pub id: Uuid,
    pub tenant_id: String,
    pub cid: String,
    pub owner_id: Option<String>,
    pub name: String,
    /// `None` for a pin request not pinned yet.
    pub size_bytes: Option<i64>,
    pub content_type: String,
    /// `None` for a pin request: its bytes never passed the gateway.
    pub sha256: Option<Vec<u8>>,
    pub metadata: serde_json::Value,
    /// `upload`, `car` or `pin` (a Pinning Service request).
    pub kind: String,
    /// Multiaddrs a pin request named as holding the content.
    pub origins: Vec<String>,
    pub pin_state: PinState,
    /// Some Cluster peer has started fetching the content.
    pub fetching: bool,
    pub replication_min: i32,
    pub replication_max: i32,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// What the caller says about a file; it may arrive after the content.
pub struct FileDetails<'a> {
    pub owner_id: Option<&'a str>,
    pub name: &'a str,
    pub content_type: &'a str,
    pub metadata: &'a serde_json::Value,
}

/// What the upload learned, to commit a pending file with.
pub struct FileContent<'a> {
    pub cid: &'a str,
    pub size_bytes: i64,
    pub sha256: Option<&'a [u8]>,
    /// `upload` or `car`.
    pub kind: &'a str,
    pub replication_min: i32,
    pub replication_max: i32,
}

/// A pending upload and the bytes it may bring.
pub struct Reservation {
    pub id: Uuid,
    pub reserved: u64,
    /// Bytes of the tenant's committed files and open reservations before
    /// this one (0 without a quota).
    pub used: u64,
}

/// A claim on a blob's reference, taken before the Cluster pin.
pub struct BlobClaim {
    /// The blob is not known to be pinned yet: the claimant pins it.
    pub needs_pin: bool,
}

/// A claim given back: `unpin` names the CID when no reference is left.
pub struct ReleasedClaim {
    pub unpin: Option<String>,
}

/// A page of files, newest first, and where the next page starts.
pub struct FilePage {
    pub files: Vec<FileRow>,
    pub next: Option<(OffsetDateTime, Uuid)>,
}

/// What became of a request to delete a tenant's file.
pub enum FileDeletion {
    /// Deleted; `unpin` names the CID when no reference is left, which the
    /// caller unpins and then hands to [`Postgres::finish_unpin`].
    Deleted {
        unpin: Option<String>,
    },
    NotFound,
    /// A submission names the file as its output; it stays while it does.
    OutputOf(Uuid),
}

pub(super) const FILE_COLUMNS: &str = "f.id, f.tenant_id, f.cid, f.owner_id, f.name, \
     f.size_bytes, f.content_type, f.sha256, f.metadata, f.kind, f.origins, b.pin_state, \
     b.fetching, b.replication_min, b.replication_max, f.created_at, f.updated_at";

impl FileRow {
    /// The bytes the file is charged for (0 for a pin not pinned yet).
    pub fn size(&self) -> u64 {
        self.size_bytes
            .map_or(0, |size| u64::try_from(size).unwrap_or(0))
    }

    pub(super) fn from_row(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            tenant_id: row.get("tenant_id"),
            cid: row.get("cid"),
            owner_id: row.get("owner_id"),
            name: row.get("name"),
            size_bytes: row.get("size_bytes"),
            content_type: row.get("content_type"),
            sha256: row.get("sha256"),
            metadata: row.get("metadata"),
            kind: row.get("kind"),
            origins: row.get("origins"),
            pin_state: PinState::from_column(row.get("pin_state")),
            fetching: row.get("fetching"),
            replication_min: row.get("replication_min"),
            replication_max: row.get("replication_max"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }
}

/// Bytes a tenant's quota is charged: committed files and open reservations.
const USAGE_SQL: &str = "SELECT (coalesce(sum(size_bytes) FILTER (WHERE state = 'committed'), 0) \
     + coalesce(sum(reserved_bytes) FILTER (WHERE state = 'writing'), 0))::bigint \
     FROM file_metadata WHERE tenant_id = $1";

impl Postgres {
    /// Records an upload that has started, reserving up to `wanted` bytes
    /// of its tenant's `quota` (all of it when there is none) until it
    /// commits or is rolled back. The reservation is taken under a
    /// per-tenant lock against everything committed and reserved, so
    /// parallel uploads cannot overrun the quota. `None` when nothing is
    /// left of it.
    pub async fn reserve_upload(
        &self,
        tenant_id: &str,
        wanted: u64,
        quota: Option<u64>,
    ) -> Result<Option<Reservation>, StoreError> {
        let mut client = self.client().await?;
        let tx = self.step("begin", client.transaction()).await?;
        let (reserved, used) = match quota {
            None => (wanted, 0),
            Some(quota) => {
                let used = self.lock_quota(&tx, tenant_id).await?;
                let left = quota.saturating_sub(used);
                if left == 0 {
                    return Ok(None);
                }
                (wanted.min(left), used)
            }
        };
        let id = Uuid::new_v4();
        let reserved_sql = if quota.is_some() {
            i64::try_from(reserved).unwrap_or(i64::MAX)
        } else {
            0
        };
        self.step(
            "insert_pending_file",
            tx.execute(
                "INSERT INTO file_metadata (id, tenant_id, name, reserved_bytes) \
                 VALUES ($1, $2, '', $3)",
                &[&id, &tenant_id, &reserved_sql],
            ),
        )
        .await?;
        self.step("commit", tx.commit()).await?;
        Ok(Some(Reservation { id, reserved, used }))
    }

    /// Takes the tenant's quota lock for the rest of transaction `tx` and
    /// answers what its quota is charged now: no other upload or pin
    /// request of the tenant can take a share of it meanwhile.
    pub(super) async fn lock_quota(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        tenant_id: &str,
    ) -> Result<u64, StoreError> {
        let row = self
            .guard
            .run("tenant_usage", async {
                tx.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended('sgw-quota:' || $1, 0))",
                    &[&tenant_id],
                )
                .await
                .map_err(query_error)?;
                tx.query_one(USAGE_SQL, &[&tenant_id])
                    .await
                    .map_err(query_error)
            })
            .await?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    /// Bytes the tenant's committed files hold plus those its uploads in
    /// progress have reserved.
    pub async fn tenant_usage(&self, tenant_id: &str) -> Result<u64, StoreError> {
        self.guard
            .run("tenant_usage", async {
                let client = self.client().await?;
                let row = client
                    .query_one(USAGE_SQL, &[&tenant_id])
                    .await
                    .map_err(query_error)?;
                Ok(row.get::<_, i64>(0).max(0) as u64)
            })
            .await
    }

    /// Gives pending file `id` a reference on `content`'s blob (made when
    /// missing), so nothing unpins the CID from here on. Answers `None`
    /// when the pending file is gone (rolled back as stale).
    pub async fn claim_blob(
        &self,
        id: Uuid,
        content: FileContent<'_>,
    ) -> Result<Option<BlobClaim>, StoreError> {
        let mut client = self.client().await?;
        let tx = self.step("begin", client.transaction()).await?;
        let pin_state = self
            .claim_blob_reference(
                &tx,
                content.cid,
                content.size_bytes,
                (content.replication_min, content.replication_max),
            )
            .await?;
        let claimed = self
            .step(
                "claim_for_pending_file",
                tx.execute(
                    "UPDATE file_metadata SET cid = $2, size_bytes = $3, sha256 = $4, kind = $5 \
                     WHERE id = $1 AND state = 'writing' AND cid IS NULL",
                    &[
                        &id,
                        &content.cid,
                        &content.size_bytes,
                        &content.sha256,
                        &content.kind,
                    ],
                ),
            )
            .await?;
        if claimed == 0 {
            return Ok(None);
        }
        self.step("commit", tx.commit()).await?;
        Ok(Some(BlobClaim {
            needs_pin: pin_state != PinState::Pinned.as_str(),
        }))
    }

    /// Makes pending file `id`, whose blob is claimed and pinned, visible.
    /// When the tenant already has a file with this CID, that file takes
    /// the new name, type and metadata, and the pending row and its claim
    /// go: a tenant references a CID once.
    pub async fn commit_file(
        &self,
        id: Uuid,
        cid: &str,
        details: FileDetails<'_>,
    ) -> Result<FileRow, StoreError> {
        let g = &self.guard;
        let mut client = self.client().await?;
        let tx = self.step("begin", client.transaction()).await?;
        self.step(
            "lock_blob",
            tx.query_one(
                "SELECT ref_count FROM ipfs_blobs WHERE cid = $1 FOR UPDATE",
                &[&cid],
            ),
        )
        .await?;
        let pending = self
            .step(
                "read_pending_file",
                tx.query_opt(
                    "SELECT tenant_id FROM file_metadata \
                     WHERE id = $1 AND state = 'writing' AND cid = $2 FOR UPDATE",
                    &[&id, &cid],
                ),
            )
            .await?
            .ok_or_else(|| {
                StoreError::failed(
                    StoreKind::Postgres,
                    format!("pending upload {id} was rolled back before its commit"),
                )
            })?;
        let tenant_id: String = pending.get("tenant_id");
        let existing = self
            .step(
                "find_tenant_file",
                tx.query_opt(
                    "SELECT id FROM file_metadata WHERE tenant_id = $1 AND cid = $2 \
                     AND state = 'committed' AND kind <> 'pin' FOR UPDATE",
                    &[&tenant_id, &cid],
                ),
            )
            .await?;
        let committed_id: Uuid = match existing {
            Some(row) => {
                g.run("drop_pending_file", async {
                    tx.execute("DELETE FROM file_metadata WHERE id = $1", &[&id])
                        .await
                        .map_err(query_error)?;
                    // The tenant's file holds a reference already; the
                    // claim was one too many (and never the last one).
                    tx.execute(
                        "UPDATE ipfs_blobs SET ref_count = ref_count - 1 WHERE cid = $1",
                        &[&cid],
                    )
                    .await
                    .map_err(query_error)
                })
                .await?;
                row.get(0)
            }
            None => {
                self.step(
                    "commit_pending_file",
                    tx.execute(
                        "UPDATE file_metadata SET state = 'committed', reserved_bytes = 0 \
                         WHERE id = $1",
                        &[&id],
                    ),
                )
                .await?;
                id
            }
        };
        self.step(
            "describe_file",
            tx.execute(
                "UPDATE file_metadata SET owner_id = $2, name = $3, content_type = $4, \
                   metadata = $5, updated_at = now() WHERE id = $1",
                &[
                    &committed_id,
                    &details.owner_id,
                    &details.name,
                    &details.content_type,
                    details.metadata,
                ],
            ),
        )
        .await?;
        let row = self
            .step(
                "read_file",
                tx.query_one(
                    &format!(
                        "SELECT {FILE_COLUMNS} FROM file_metadata f \
                         JOIN ipfs_blobs b ON b.cid = f.cid WHERE f.id = $1"
                    ),
                    &[&committed_id],
                ),
            )
            .await?;
        self.step("commit", tx.commit()).await?;
        Ok(FileRow::from_row(&row))
    }

    /// Rolls back pending file `id`: its reservation and, when it claimed a
    /// blob, that reference. Nothing when it is gone or committed.
    pub async fn release_pending_file(&self, id: Uuid) -> Result<ReleasedClaim, StoreError> {
        self.release_pending(id, false).await
    }

    /// Gives back the blob reference pending file `id` claimed, keeping the
    /// file pending with its reservation, so its commit can be tried again.
    pub async fn release_claim(&self, id: Uuid) -> Result<ReleasedClaim, StoreError> {
        self.release_pending(id, true).await
    }

    async fn release_pending(
        &self,
        id: Uuid,
        keep_reservation: bool,
    ) -> Result<ReleasedClaim, StoreError> {
        let mut client = self.client().await?;
        let tx = self.step("begin", client.transaction()).await?;
        let read: Option<String> = self
            .step(
                "read_pending_file",
                tx.query_opt(
                    "SELECT cid FROM file_metadata WHERE id = $1 AND state = 'writing'",
                    &[&id],
                ),
            )
            .await?
            .and_then(|row| row.get(0));
        if let Some(cid) = &read {
            self.lock_blob(&tx, cid).await?;
        }
        let sql = if keep_reservation {
            // The old cid, before the update clears it.
            "UPDATE file_metadata f SET cid = NULL, size_bytes = NULL, sha256 = NULL \
             FROM file_metadata old WHERE f.id = $1 AND old.id = f.id AND f.state = 'writing' \
             RETURNING old.cid"
        } else {
            "DELETE FROM file_metadata WHERE id = $1 AND state = 'writing' RETURNING cid"
        };
        let claimed: Option<String> = self
            .step("discard_pending_file", tx.query_opt(sql, &[&id]))
            .await?
            .and_then(|row| row.get(0));
        if claimed != read {
            // The upload claimed its blob between the read and the delete:
            // its blob row is not locked first, so start again.
            return Err(StoreError::failed(
                StoreKind::Postgres,
                format!("pending upload {id} changed while it was rolled back; retry"),
            ));
        }
        let unpin = match claimed {
            Some(cid) => self.drop_references(&tx, &cid, 1).await?,
            None => None,
        };
        self.step("commit", tx.commit()).await?;
        Ok(ReleasedClaim { unpin })
    }

    /// Deletes the tenant's files with this CID (its upload and any pin
    /// requests of it), or the one file `id` of it, and drops their
    /// references. The tenant's last file of a CID that a submission names
    /// as its output is kept.
    pub async fn delete_file(
        &self,
        tenant_id: &str,
        cid: &str,
        id: Option<Uuid>,
    ) -> Result<FileDeletion, StoreError> {
        let mut client = self.client().await?;
        let tx = self.step("begin", client.transaction()).await?;
        if !self.lock_blob(&tx, cid).await? {
            return Ok(FileDeletion::NotFound);
        }
        let deleted = self
            .step(
                "delete_file",
                tx.execute(
                    "DELETE FROM file_metadata WHERE tenant_id = $1 AND cid = $2 \
                     AND state = 'committed' AND ($3::uuid IS NULL OR id = $3)",
                    &[&tenant_id, &cid, &id],
                ),
            )
            .await?;
        if deleted == 0 {
            return Ok(FileDeletion::NotFound);
        }
        // Read after the rows are locked by the delete: a submission
        // recording this file at the same time either committed before (and
        // is seen here) or finds the file gone.
        let output_of = self
            .step(
                "find_output_owner",
                tx.query_opt(
                    "SELECT s.id FROM submissions s WHERE s.tenant_id = $1 AND s.output_cid = $2 \
                     AND NOT EXISTS (SELECT 1 FROM file_metadata f WHERE f.tenant_id = $1 \
                       AND f.cid = $2 AND f.state = 'committed') LIMIT 1",
                    &[&tenant_id, &cid],
                ),
            )
            .await?;
        if let Some(row) = output_of {
            return Ok(FileDeletion::OutputOf(row.get(0)));
        }
        let unpin = self.drop_references(&tx, cid, deleted).await?;
        self.step("commit", tx.commit()).await?;
        Ok(FileDeletion::Deleted { unpin })
    }

    /// After the Cluster confirmed the unpin of a blob marked `unpinning`,
    /// deletes its row. Answers the blob's replication factors when an
    /// upload claimed the CID again meanwhile: its pin may have come before
    /// the unpin, so the caller pins once more.
    pub async fn finish_unpin(&self, cid: &str) -> Result<Option<(i32, i32)>, StoreError> {
        let deleted = self
            .guard
            .run("finish_unpin", async {
                let client = self.client().await?;
                let deleted = client
                    .execute(
                        "DELETE FROM ipfs_blobs \
                         WHERE cid = $1 AND ref_count = 0 AND pin_state = 'unpinning'",
                        &[&cid],
                    )
                    .await
                    .map_err(query_error)?;
                Ok(deleted)
            })
            .await?;
        if deleted == 1 {
            return Ok(None);
        }
        self.claimed_replication(cid).await
    }

    /// The replication factors of a blob some file references.
    pub async fn claimed_replication(&self, cid: &str) -> Result<Option<(i32, i32)>, StoreError> {
        self.guard
            .run("claimed_blob", async {
                let client = self.client().await?;
                let claimed = client
                    .query_opt(
                        "SELECT replication_min, replication_max FROM ipfs_blobs \
                         WHERE cid = $1 AND ref_count > 0",
                        &[&cid],
                    )
                    .await
                    .map_err(query_error)?;
                Ok(claimed.map(|row| (row.get(0), row.get(1))))
            })
            .await
    }

    /// Pending uploads older than `expiry`, to be rolled back; a resumable
    /// upload's pending file lives as long as the upload does.
    pub async fn stale_pending_files(
        &self,
        expiry: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<Uuid>, StoreError> {
        self.column(
            "stale_pending_files",
            "SELECT id FROM file_metadata f WHERE state = 'writing' \
             AND created_at < now() - make_interval(secs => $1) \
             AND NOT EXISTS (SELECT 1 FROM tus_uploads t WHERE t.file_id = f.id) LIMIT $2",
            &[&expiry.as_secs_f64(), &limit],
        )
        .await
    }

    /// Blobs left `unpinning` for longer than `grace` (the gateway that
    /// marked them stopped, or the Cluster refused), to be unpinned again.
    pub async fn blobs_to_unpin(
        &self,
        grace: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.column(
            "blobs_to_unpin",
            "SELECT cid FROM ipfs_blobs WHERE pin_state = 'unpinning' \
             AND ref_count = 0 AND updated_at < now() - make_interval(secs => $1) \
             ORDER BY updated_at LIMIT $2",
            &[&grace.as_secs_f64(), &limit],
        )
        .await
    }

    /// Which of `cids` have a blob row.
    pub async fn known_blobs(&self, cids: &[String]) -> Result<HashSet<String>, StoreError> {
        let known: Vec<String> = self
            .column(
                "known_blobs",
                "SELECT cid FROM ipfs_blobs WHERE cid = ANY($1)",
                &[&cids],
            )
            .await?;
        Ok(known.into_iter().collect())
    }

    /// Adds one reference to `cid`'s blob row, making it when missing (a
    /// blob being unpinned is pinning again); answers its pin state.
    pub(super) async fn claim_blob_reference(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        cid: &str,
        size_bytes: i64,
        (replication_min, replication_max): (i32, i32),
    ) -> Result<String, StoreError> {
        let row = self
            .step(
                "claim_blob",
                tx.query_one(
                    "INSERT INTO ipfs_blobs \
                       (cid, size_bytes, replication_min, replication_max, ref_count) \
                     VALUES ($1, $2, $3, $4, 1) \
                     ON CONFLICT (cid) DO UPDATE SET ref_count = ipfs_blobs.ref_count + 1, \
                       pin_state = CASE WHEN ipfs_blobs.pin_state = 'unpinning' \
                         THEN 'pinning' ELSE ipfs_blobs.pin_state END, \
                       updated_at = now() \
                     RETURNING pin_state",
                    &[&cid, &size_bytes, &replication_min, &replication_max],
                ),
            )
            .await?;
        Ok(row.get(0))
    }

    /// Locks a blob row; false when there is none.
    pub(super) async fn lock_blob(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        cid: &str,
    ) -> Result<bool, StoreError> {
        self.step(
            "lock_blob",
            tx.query_opt(
                "SELECT 1 FROM ipfs_blobs WHERE cid = $1 FOR UPDATE",
                &[&cid],
            ),
        )
        .await
        .map(|row| row.is_some())
    }

    /// Drops `count` references on a blob; when none is left it is marked
    /// `unpinning` and its CID answered.
    pub(super) async fn drop_references(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        cid: &str,
        count: u64,
    ) -> Result<Option<String>, StoreError> {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let remaining: i64 = self
            .step(
                "release_blob",
                tx.query_one(
                    "UPDATE ipfs_blobs SET ref_count = ref_count - $2, updated_at = now(), \
                       pin_state = CASE WHEN ref_count = $2 THEN 'unpinning' ELSE pin_state END \
                     WHERE cid = $1 RETURNING ref_count",
                    &[&cid, &count],
                ),
            )
            .await?
            .get(0);
        Ok((remaining == 0).then(|| cid.to_owned()))
    }

    /// The tenant's committed file with this CID: its upload, else its
    /// newest pin request of it.
    pub async fn file(&self, tenant_id: &str, cid: &str) -> Result<Option<FileRow>, StoreError> {
        self.guard
            .run("find_file", async {
                let client = self.client().await?;
                let row = client
                    .query_opt(
                        &format!(
                            "SELECT {FILE_COLUMNS} FROM file_metadata f \
                             JOIN ipfs_blobs b ON b.cid = f.cid \
                             WHERE f.tenant_id = $1 AND f.cid = $2 AND f.state = 'committed' \
                             ORDER BY f.kind = 'upload' DESC, f.created_at DESC LIMIT 1"
                        ),
                        &[&tenant_id, &cid],
                    )
                    .await
                    .map_err(query_error)?;
                Ok(row.as_ref().map(FileRow::from_row))
            })
            .await
    }

    /// The tenant's committed files, newest first, from after `after`.
    pub async fn files(
        &self,
        tenant_id: &str,
        owner_id: Option<&str>,
        after: Option<(OffsetDateTime, Uuid)>,
        limit: i64,
    ) -> Result<FilePage, StoreError> {
        self.guard
            .run("list_files", async {
                let client = self.client().await?;
                let (after_time, after_id) = after.unzip();
                let rows = client
                    .query(
                        &format!(
                            "SELECT {FILE_COLUMNS} FROM file_metadata f \
                             JOIN ipfs_blobs b ON b.cid = f.cid \
                             WHERE f.tenant_id = $1 AND f.state = 'committed' \
                               AND ($2::text IS NULL OR f.owner_id = $2) \
                               AND ($3::timestamptz IS NULL OR (f.created_at, f.id) < ($3, $4)) \
                             ORDER BY f.created_at DESC, f.id DESC LIMIT $5"
                        ),
                        &[&tenant_id, &owner_id, &after_time, &after_id, &(limit + 1)],
                    )
                    .await
                    .map_err(query_error)?;
                let mut files: Vec<FileRow> = rows.iter().map(FileRow::from_row).collect();
                let next = if files.len() as i64 > limit {
                    files.truncate(limit as usize);
                    files.last().map(|f| (f.created_at, f.id))
                } else {
                    None
                };
                Ok(FilePage { files, next })
            })
            .await
    }

    /// CIDs whose pin is not yet known to be pinned, least recently checked
    /// first, with their replication minimum.
    pub async fn unsettled_pins(&self, limit: i64) -> Result<Vec<(String, i32)>, StoreError> {
        self.guard
            .run("unsettled_pins", async {
                let client = self.client().await?;
                let rows = client
                    .query(
                        "SELECT cid, replication_min FROM ipfs_blobs WHERE pin_state IN ('pinning', 'error') \
                         ORDER BY updated_at LIMIT $1",
                        &[&limit],
                    )
                    .await
                    .map_err(query_error)?;
                Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            })
            .await
    }

    /// Records what the Cluster last said of a CID's pin.
    /// How many stored CIDs are in each pin state.
    pub async fn pin_state_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.guard
            .run("count_pin_states", async {
                let client = self.client().await?;
                let rows = client
                    .query(
                        "SELECT pin_state, count(*) FROM ipfs_blobs GROUP BY pin_state",
                        &[],
                    )
                    .await
                    .map_err(query_error)?;
                Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
            })
            .await
    }

    pub async fn set_pin_state(&self, cid: &str, pin_state: PinState) -> Result<(), StoreError> {
        self.guard
            .run("set_pin_state", async {
                let client = self.client().await?;
                client
                    .execute(
                        "UPDATE ipfs_blobs SET pin_state = $2, updated_at = now() \
                         WHERE cid = $1 AND pin_state <> 'unpinning'",
                        &[&cid, &pin_state.as_str()],
                    )
                    .await
                    .map_err(query_error)?;
                Ok(())
            })
            .await
    }
}

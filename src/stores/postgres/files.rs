//! The `file_metadata` and `ipfs_blobs` tables.
//!
//! A file row starts as `writing` (invisible) and becomes `committed` in the
//! same transaction that takes a reference on its CID's blob row. The blob
//! row's lock is held while the Cluster pin or unpin runs, so a pin and an
//! unpin of one CID never interleave.

use std::future::Future;

use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{query_error, Postgres};
use crate::stores::StoreError;

#[derive(Debug, Clone)]
pub struct FileRow {
    pub id: Uuid,
    pub tenant_id: String,
    pub cid: String,
    pub owner_id: Option<String>,
    pub name: String,
    pub size_bytes: i64,
    pub content_type: String,
    pub sha256: Vec<u8>,
    pub metadata: serde_json::Value,
    pub pin_state: String,
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
    pub sha256: &'a [u8],
    pub replication_min: i32,
    pub replication_max: i32,
}

/// A page of files, newest first, and where the next page starts.
pub struct FilePage {
    pub files: Vec<FileRow>,
    pub next: Option<(OffsetDateTime, Uuid)>,
}

/// What became of a request to delete a tenant's file.
pub enum FileDeletion {
    Deleted,
    NotFound,
    /// A submission names the file as its output; it stays while it does.
    OutputOf(Uuid),
}

const FILE_COLUMNS: &str = "f.id, f.tenant_id, f.cid, f.owner_id, f.name, f.size_bytes, \
     f.content_type, f.sha256, f.metadata, b.pin_state, b.replication_min, b.replication_max, \
     f.created_at, f.updated_at";

impl FileRow {
    fn from_row(row: &Row) -> Self {
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
            pin_state: row.get("pin_state"),
            replication_min: row.get("replication_min"),
            replication_max: row.get("replication_max"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }
}

impl Postgres {
    /// Records an upload that has started; invisible until committed, and
    /// found by the reconciler if the upload never finishes.
    pub async fn insert_pending_file(&self, tenant_id: &str) -> Result<Uuid, StoreError> {
        self.guard
            .run("insert_pending_file", async {
                let client = self.client().await?;
                let row = client
                    .query_one(
                        "INSERT INTO file_metadata (id, tenant_id, name) VALUES ($1, $2, '') \
                         RETURNING id",
                        &[&Uuid::new_v4(), &tenant_id],
                    )
                    .await
                    .map_err(query_error)?;
                Ok(row.get(0))
            })
            .await
    }

    /// Forgets an upload that did not complete.
    pub async fn discard_pending_file(&self, id: Uuid) -> Result<(), StoreError> {
        self.guard
            .run("discard_pending_file", async {
                let client = self.client().await?;
                client
                    .execute(
                        "DELETE FROM file_metadata WHERE id = $1 AND state = 'writing'",
                        &[&id],
                    )
                    .await
                    .map_err(query_error)?;
                Ok(())
            })
            .await
    }

    /// Commits pending file `id` with its content. When the CID has no
    /// reference yet, `pin` runs while its blob row is locked and the commit
    /// happens only if the pin succeeds. When the tenant already has a file
    /// with this CID, that file takes the new name, type and metadata, and
    /// the pending row goes: a tenant references a CID once.
    pub async fn commit_file<F, Fut>(
        &self,
        id: Uuid,
        content: FileContent<'_>,
        details: FileDetails<'_>,
        pin: F,
    ) -> Result<FileRow, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), StoreError>>,
    {
        let g = &self.guard;
        let mut client = self.client().await?;
        let tx = g
            .run("begin", async {
                client.transaction().await.map_err(query_error)
            })
            .await?;
        let blob = g
            .run("lock_blob", async {
                tx.query_one(
                    "INSERT INTO ipfs_blobs (cid, size_bytes, replication_min, replication_max) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (cid) DO UPDATE SET updated_at = now() \
                     RETURNING ref_count",
                    &[
                        &content.cid,
                        &content.size_bytes,
                        &content.replication_min,
                        &content.replication_max,
                    ],
                )
                .await
                .map_err(query_error)
            })
            .await?;
        let ref_count: i64 = blob.get(0);
        if ref_count == 0 {
            pin().await?;
        }
        let pending = g
            .run("read_pending_file", async {
                tx.query_one(
                    "SELECT tenant_id FROM file_metadata \
                     WHERE id = $1 AND state = 'writing' FOR UPDATE",
                    &[&id],
                )
                .await
                .map_err(query_error)
            })
            .await?;
        let tenant_id: String = pending.get("tenant_id");
        let existing = g
            .run("find_tenant_file", async {
                tx.query_opt(
                    "SELECT id FROM file_metadata \
                     WHERE tenant_id = $1 AND cid = $2 AND state = 'committed' FOR UPDATE",
                    &[&tenant_id, &content.cid],
                )
                .await
                .map_err(query_error)
            })
            .await?;
        let committed_id: Uuid = match existing {
            Some(row) => {
                let existing_id: Uuid = row.get(0);
                g.run("drop_pending_file", async {
                    tx.execute("DELETE FROM file_metadata WHERE id = $1", &[&id])
                        .await
                        .map_err(query_error)
                })
                .await?;
                existing_id
            }
            None => {
                g.run("take_reference", async {
                    tx.execute(
                        "UPDATE file_metadata SET state = 'committed', cid = $2, size_bytes = $3, \
                           sha256 = $4 WHERE id = $1",
                        &[&id, &content.cid, &content.size_bytes, &content.sha256],
                    )
                    .await
                    .map_err(query_error)?;
                    tx.execute(
                        "UPDATE ipfs_blobs SET ref_count = ref_count + 1 WHERE cid = $1",
                        &[&content.cid],
                    )
                    .await
                    .map_err(query_error)
                })
                .await?;
                id
            }
        };
        g.run("describe_file", async {
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
            )
            .await
            .map_err(query_error)
        })
        .await?;
        let row = g
            .run("read_file", async {
                tx.query_one(
                    &format!(
                        "SELECT {FILE_COLUMNS} FROM file_metadata f \
                         JOIN ipfs_blobs b ON b.cid = f.cid WHERE f.id = $1"
                    ),
                    &[&committed_id],
                )
                .await
                .map_err(query_error)
            })
            .await?;
        g.run("commit", async { tx.commit().await.map_err(query_error) })
            .await?;
        Ok(FileRow::from_row(&row))
    }

    /// The tenant's committed file with this CID.
    pub async fn file(&self, tenant_id: &str, cid: &str) -> Result<Option<FileRow>, StoreError> {
        self.guard
            .run("find_file", async {
                let client = self.client().await?;
                let row = client
                    .query_opt(
                        &format!(
                            "SELECT {FILE_COLUMNS} FROM file_metadata f \
                             JOIN ipfs_blobs b ON b.cid = f.cid \
                             WHERE f.tenant_id = $1 AND f.cid = $2 AND f.state = 'committed'"
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

    /// Deletes the tenant's file with this CID and drops its reference.
    /// When it was the last, `unpin` runs under the blob row's lock and the
    /// blob row goes with it; if `unpin` fails nothing changes. A file that
    /// is a submission's output is kept.
    pub async fn delete_file<F, Fut>(
        &self,
        tenant_id: &str,
        cid: &str,
        unpin: F,
    ) -> Result<FileDeletion, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), StoreError>>,
    {
        let g = &self.guard;
        let mut client = self.client().await?;
        let tx = g
            .run("begin", async {
                client.transaction().await.map_err(query_error)
            })
            .await?;
        let deleted = g
            .run("delete_file", async {
                tx.execute(
                    "DELETE FROM file_metadata \
                     WHERE tenant_id = $1 AND cid = $2 AND state = 'committed'",
                    &[&tenant_id, &cid],
                )
                .await
                .map_err(query_error)
            })
            .await?;
        if deleted == 0 {
            return Ok(FileDeletion::NotFound);
        }
        // Read after the row is locked by the delete: a submission recording
        // this file at the same time either committed before (and is seen
        // here) or finds the file gone.
        let output_of = g
            .run("find_output_owner", async {
                tx.query_opt(
                    "SELECT id FROM submissions WHERE tenant_id = $1 AND output_cid = $2 LIMIT 1",
                    &[&tenant_id, &cid],
                )
                .await
                .map_err(query_error)
            })
            .await?;
        if let Some(row) = output_of {
            return Ok(FileDeletion::OutputOf(row.get(0)));
        }
        let remaining: i64 = g
            .run("release_blob", async {
                tx.query_one(
                    "UPDATE ipfs_blobs SET ref_count = ref_count - 1, updated_at = now() \
                     WHERE cid = $1 RETURNING ref_count",
                    &[&cid],
                )
                .await
                .map_err(query_error)
            })
            .await?
            .get(0);
        if remaining == 0 {
            unpin().await?;
            g.run("delete_blob", async {
                tx.execute("DELETE FROM ipfs_blobs WHERE cid = $1", &[&cid])
                    .await
                    .map_err(query_error)
            })
            .await?;
        }
        g.run("commit", async { tx.commit().await.map_err(query_error) })
            .await?;
        Ok(FileDeletion::Deleted)
    }

    /// Bytes of the tenant's committed files.
    pub async fn tenant_usage(&self, tenant_id: &str) -> Result<u64, StoreError> {
        self.guard
            .run("tenant_usage", async {
                let client = self.client().await?;
                let row = client
                    .query_one(
                        "SELECT coalesce(sum(size_bytes), 0)::bigint FROM file_metadata \
                         WHERE tenant_id = $1 AND state = 'committed'",
                        &[&tenant_id],
                    )
                    .await
                    .map_err(query_error)?;
                Ok(row.get::<_, i64>(0).max(0) as u64)
            })
            .await
    }

    /// Removes uploads pending for longer than `expiry`; returns how many.
    pub async fn delete_stale_pending_files(
        &self,
        expiry: std::time::Duration,
    ) -> Result<u64, StoreError> {
        let seconds = expiry.as_secs_f64();
        self.guard
            .run("delete_stale_pending_files", async {
                let client = self.client().await?;
                client
                    .execute(
                        "DELETE FROM file_metadata WHERE state = 'writing' \
                         AND created_at < now() - make_interval(secs => $1)",
                        &[&seconds],
                    )
                    .await
                    .map_err(query_error)
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
                        "SELECT cid, replication_min FROM ipfs_blobs WHERE pin_state <> 'pinned' \
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

    pub async fn set_pin_state(&self, cid: &str, pin_state: &str) -> Result<(), StoreError> {
        self.guard
            .run("set_pin_state", async {
                let client = self.client().await?;
                client
                    .execute(
                        "UPDATE ipfs_blobs SET pin_state = $2, updated_at = now() WHERE cid = $1",
                        &[&cid, &pin_state],
                    )
                    .await
                    .map_err(query_error)?;
                Ok(())
            })
            .await
    }
}

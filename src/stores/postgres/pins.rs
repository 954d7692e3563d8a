//! Pin requests of the Pinning Service API: `file_metadata` rows of kind
//! `pin`. They follow the upload protocol of `files.rs` (a pending row with
//! its blob claim before the Cluster pin, committed after it), without the
//! bytes: the Cluster fetches them.

use time::OffsetDateTime;
use uuid::Uuid;

use super::files::{FileDeletion, FileRow, PinState, FILE_COLUMNS};
use super::Postgres;
use crate::stores::StoreError;

/// A pin request to record.
pub struct NewPin<'a> {
    pub tenant_id: &'a str,
    pub cid: &'a str,
    pub name: &'a str,
    pub metadata: &'a serde_json::Value,
    pub origins: &'a [String],
    pub replication_min: i32,
    pub replication_max: i32,
}

/// How a listing matches names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameMatch {
    Exact,
    CaseInsensitive,
    Partial,
    CaseInsensitivePartial,
}

impl NameMatch {
    fn sql(self) -> &'static str {
        match self {
            NameMatch::Exact => "f.name = $3",
            NameMatch::CaseInsensitive => "lower(f.name) = lower($3)",
            NameMatch::Partial => "strpos(f.name, $3) > 0",
            NameMatch::CaseInsensitivePartial => "strpos(lower(f.name), lower($3)) > 0",
        }
    }
}

/// Which of a tenant's files a listing wants; `statuses` are the Pinning
/// Service's words (queued, pinning, pinned, failed).
pub struct PinFilter<'a> {
    pub cids: &'a [String],
    pub name: Option<(&'a str, NameMatch)>,
    pub statuses: &'a [&'a str],
    pub before: Option<OffsetDateTime>,
    pub after: Option<OffsetDateTime>,
    pub meta: Option<&'a serde_json::Value>,
    /// A pin not pinned this long after its request has failed.
    pub fail_after: std::time::Duration,
    pub limit: i64,
}

/// The Pinning Service status of a file, in SQL, from its blob's state and
/// its age (`$7`, seconds after which an unfinished pin has failed).
const STATUS_SQL: &str = "CASE WHEN b.pin_state = 'pinned' THEN 'pinned' \
     WHEN b.pin_state = 'error' OR f.created_at < now() - make_interval(secs => $7) THEN 'failed' \
     WHEN b.fetching THEN 'pinning' ELSE 'queued' END";

impl Postgres {
    /// Records a pending pin request with its claim on the blob, under the
    /// tenant's quota lock. `None` when nothing is left of `quota`.
    pub async fn claim_pin(
        &self,
        pin: NewPin<'_>,
        quota: Option<u64>,
    ) -> Result<Option<Uuid>, StoreError> {
        let mut client = self.client().await?;
        let tx = self.step("begin", client.transaction()).await?;
        if let Some(quota) = quota {
            if self.lock_quota(&tx, pin.tenant_id).await? >= quota {
                return Ok(None);
            }
        }
        // Blob row first, as everywhere: its lock orders the claims. The
        // size is unknown until pinned.
        self.claim_blob_reference(&tx, pin.cid, 0, (pin.replication_min, pin.replication_max))
            .await?;
        let id = Uuid::new_v4();
        self.step(
            "insert_pin_request",
            tx.execute(
                "INSERT INTO file_metadata (id, tenant_id, cid, name, metadata, kind, origins) \
                 VALUES ($1, $2, $3, $4, $5, 'pin', $6)",
                &[
                    &id,
                    &pin.tenant_id,
                    &pin.cid,
                    &pin.name,
                    pin.metadata,
                    &pin.origins,
                ],
            ),
        )
        .await?;
        self.step("commit", tx.commit()).await?;
        Ok(Some(id))
    }

    /// Makes pending pin request `id` visible once the Cluster took the
    /// pin; `None` when it was rolled back meanwhile.
    pub async fn commit_pin(&self, id: Uuid) -> Result<Option<FileRow>, StoreError> {
        let committed = self
            .execute(
                "commit_pin_request",
                "UPDATE file_metadata SET state = 'committed', updated_at = now() \
                 WHERE id = $1 AND state = 'writing' AND kind = 'pin'",
                &[&id],
            )
            .await?;
        if committed == 0 {
            return Ok(None);
        }
        self.file_by_id(id).await
    }

    /// A committed file by its id (the Pinning Service's request id).
    pub async fn file_by_id(&self, id: Uuid) -> Result<Option<FileRow>, StoreError> {
        let rows = self
            .rows(
                "find_file_by_id",
                &format!(
                    "SELECT {FILE_COLUMNS} FROM file_metadata f JOIN ipfs_blobs b ON b.cid = f.cid \
                     WHERE f.id = $1 AND f.state = 'committed'"
                ),
                &[&id],
            )
            .await?;
        Ok(rows.first().map(FileRow::from_row))
    }

    /// The tenant's files that `filter` wants, newest first, and how many
    /// there are in all.
    pub async fn pin_requests(
        &self,
        tenant_id: &str,
        filter: &PinFilter<'_>,
    ) -> Result<(i64, Vec<FileRow>), StoreError> {
        let name_sql = filter.name.map_or("true", |(_, matching)| matching.sql());
        let name = filter.name.map(|(name, _)| name);
        let statuses: Vec<&str> = filter.statuses.to_vec();
        let fail_after = filter.fail_after.as_secs_f64();
        let sql = format!(
            "SELECT {FILE_COLUMNS}, ({STATUS_SQL}) AS status, count(*) OVER () AS total \
             FROM file_metadata f JOIN ipfs_blobs b ON b.cid = f.cid \
             WHERE f.tenant_id = $1 AND f.state = 'committed' \
               AND (cardinality($2::text[]) = 0 OR f.cid = ANY($2)) \
               AND ($3::text IS NULL OR {name_sql}) \
               AND ({STATUS_SQL}) = ANY($4) \
               AND ($5::timestamptz IS NULL OR f.created_at < $5) \
               AND ($6::timestamptz IS NULL OR f.created_at > $6) \
               AND ($8::jsonb IS NULL OR f.metadata @> $8) \
             ORDER BY f.created_at DESC, f.id DESC LIMIT $9"
        );
        let rows = self
            .rows(
                "list_pin_requests",
                &sql,
                &[
                    &tenant_id,
                    &filter.cids,
                    &name,
                    &statuses,
                    &filter.before,
                    &filter.after,
                    &fail_after,
                    &filter.meta,
                    &filter.limit,
                ],
            )
            .await?;
        // The count is of everything the filters match, `before` and
        // `after` included, so a client paging with `before` knows when it
        // has seen the last page.
        let total = rows.first().map_or(0, |row| row.get("total"));
        Ok((total, rows.iter().map(FileRow::from_row).collect()))
    }

    /// Deletes the tenant's committed file `id` and drops its reference.
    pub async fn delete_file_by_id(
        &self,
        tenant_id: &str,
        id: Uuid,
    ) -> Result<FileDeletion, StoreError> {
        match self.file_by_id(id).await? {
            Some(file) if file.tenant_id == tenant_id => {
                self.delete_file(tenant_id, &file.cid, Some(id)).await
            }
            _ => Ok(FileDeletion::NotFound),
        }
    }

    /// Whether this caller should ask the Cluster about `cid` now: true at
    /// most once per `interval` for a pin still on its way, whoever asks.
    pub async fn take_status_check(
        &self,
        cid: &str,
        interval: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let taken = self
            .execute(
                "take_status_check",
                "UPDATE ipfs_blobs SET checked_at = now() \
                 WHERE cid = $1 AND pin_state = 'pinning' \
                   AND (checked_at IS NULL OR checked_at < now() - make_interval(secs => $2))",
                &[&cid, &interval.as_secs_f64()],
            )
            .await?;
        Ok(taken == 1)
    }

    /// Records what the Cluster said of a pin on its way: its state and
    /// whether some peer is fetching it.
    pub async fn set_pin_progress(
        &self,
        cid: &str,
        pin_state: PinState,
        fetching: bool,
    ) -> Result<(), StoreError> {
        self.execute(
            "set_pin_progress",
            "UPDATE ipfs_blobs SET pin_state = $2, fetching = fetching OR $3, updated_at = now() \
             WHERE cid = $1 AND pin_state <> 'unpinning'",
            &[&cid, &pin_state.as_str(), &fetching],
        )
        .await
        .map(drop)
    }

    /// Pinned CIDs of pin requests whose size is not recorded yet.
    pub async fn unsized_pins(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        self.column(
            "unsized_pins",
            "SELECT DISTINCT f.cid FROM file_metadata f JOIN ipfs_blobs b ON b.cid = f.cid \
             WHERE f.kind = 'pin' AND f.size_bytes IS NULL AND b.pin_state = 'pinned' LIMIT $1",
            &[&limit],
        )
        .await
    }

    /// Records the size of a pinned CID on its pin requests (from here on
    /// charged to their tenants) and on its blob when that has none.
    pub async fn record_pin_size(&self, cid: &str, size: i64) -> Result<(), StoreError> {
        self.execute(
            "record_pin_size",
            "WITH sized AS (UPDATE file_metadata SET size_bytes = $2 \
               WHERE cid = $1 AND kind = 'pin' AND size_bytes IS NULL RETURNING 1) \
             UPDATE ipfs_blobs SET size_bytes = $2 WHERE cid = $1 AND size_bytes = 0",
            &[&cid, &size],
        )
        .await
        .map(drop)
    }
}

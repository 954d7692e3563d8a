//! The `tus_uploads`, `tus_leaves` and `consumed_links` tables: where a
//! resumable upload stands, so any gateway can take the next part of it.

use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use super::Postgres;
use crate::stores::StoreError;

#[derive(Debug, Clone)]
pub struct TusRow {
    pub id: Uuid,
    pub tenant_id: String,
    /// The pending file holding the reservation; `None` once it failed and
    /// was rolled back.
    pub file_id: Option<Uuid>,
    pub upload_length: Option<i64>,
    pub upload_offset: i64,
    pub max_bytes: i64,
    pub details: serde_json::Value,
    pub tail: Vec<u8>,
    pub hash_state: Vec<u8>,
    pub head: Vec<u8>,
    pub leaf_count: i32,
    pub completed_cid: Option<String>,
    pub expires_at: OffsetDateTime,
}

impl TusRow {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            tenant_id: row.get("tenant_id"),
            file_id: row.get("file_id"),
            upload_length: row.get("upload_length"),
            upload_offset: row.get("upload_offset"),
            max_bytes: row.get("max_bytes"),
            details: row.get("details"),
            tail: row.get("tail"),
            hash_state: row.get("hash_state"),
            head: row.get("head"),
            leaf_count: row.get("leaf_count"),
            completed_cid: row.get("completed_cid"),
            expires_at: row.get("expires_at"),
        }
    }
}

pub struct NewTusUpload<'a> {
    pub id: Uuid,
    pub tenant_id: &'a str,
    pub file_id: Uuid,
    pub upload_length: Option<i64>,
    pub max_bytes: i64,
    pub details: &'a serde_json::Value,
    pub hash_state: &'a [u8],
    pub expires_at: OffsetDateTime,
}

/// The outcome of taking an upload for one PATCH.
pub enum TusLock {
    Locked(Box<TusRow>),
    /// Another PATCH holds it.
    Busy,
    Missing,
}

/// What one PATCH added, written only if the upload is still where the
/// PATCH found it.
pub struct TusProgress<'a> {
    pub from_offset: i64,
    pub offset: i64,
    pub upload_length: Option<i64>,
    pub tail: &'a [u8],
    pub hash_state: &'a [u8],
    pub head: &'a [u8],
    /// SHA-256 digests of the leaves completed by this PATCH, in order.
    pub new_leaves: &'a [u8],
    /// Let go of the upload; a PATCH that completes it keeps it until the
    /// file is committed.
    pub release: bool,
}

const TUS_COLUMNS: &str = "id, tenant_id, file_id, upload_length, upload_offset, max_bytes, \
     details, tail, hash_state, head, leaf_count, completed_cid, expires_at";

impl Postgres {
    /// Uploads of the tenant neither finished nor expired.
    pub async fn open_tus_uploads(&self, tenant_id: &str) -> Result<i64, StoreError> {
        let counts: Vec<i64> = self
            .column(
                "open_tus_uploads",
                "SELECT count(*) FROM tus_uploads WHERE tenant_id = $1 \
                 AND completed_cid IS NULL AND expires_at > now()",
                &[&tenant_id],
            )
            .await?;
        Ok(counts.first().copied().unwrap_or(0))
    }

    /// Marks one-use link `nonce` used; false when it was already.
    pub async fn consume_link(
        &self,
        nonce: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let inserted = self
            .execute(
                "consume_link",
                "INSERT INTO consumed_links (nonce, expires_at) VALUES ($1, $2) \
                 ON CONFLICT (nonce) DO NOTHING",
                &[&nonce, &expires_at],
            )
            .await?;
        Ok(inserted == 1)
    }

    pub async fn insert_tus_upload(&self, new: NewTusUpload<'_>) -> Result<(), StoreError> {
        self.execute(
            "insert_tus_upload",
            "INSERT INTO tus_uploads \
               (id, tenant_id, file_id, upload_length, max_bytes, details, hash_state, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &new.id,
                &new.tenant_id,
                &new.file_id,
                &new.upload_length,
                &new.max_bytes,
                new.details,
                &new.hash_state,
                &new.expires_at,
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn tus_upload(
        &self,
        tenant_id: &str,
        id: Uuid,
    ) -> Result<Option<TusRow>, StoreError> {
        let rows = self
            .rows(
                "tus_upload",
                &format!(
                    "SELECT {TUS_COLUMNS} FROM tus_uploads \
                     WHERE id = $1 AND tenant_id = $2 AND expires_at > now()"
                ),
                &[&id, &tenant_id],
            )
            .await?;
        Ok(rows.first().map(TusRow::from_row))
    }

    /// Takes the upload for one PATCH until `lease` passes, unless another
    /// PATCH holds it.
    pub async fn lock_tus_upload(
        &self,
        tenant_id: &str,
        id: Uuid,
        token: Uuid,
        lease: std::time::Duration,
    ) -> Result<TusLock, StoreError> {
        let rows = self
            .rows(
                "lock_tus_upload",
                &format!(
                    "UPDATE tus_uploads SET lock_token = $3, \
                       locked_until = now() + make_interval(secs => $4) \
                     WHERE id = $1 AND tenant_id = $2 AND expires_at > now() \
                       AND (locked_until IS NULL OR locked_until < now()) \
                     RETURNING {TUS_COLUMNS}"
                ),
                &[&id, &tenant_id, &token, &lease.as_secs_f64()],
            )
            .await?;
        if let Some(row) = rows.first() {
            return Ok(TusLock::Locked(Box::new(TusRow::from_row(row))));
        }
        Ok(match self.tus_upload(tenant_id, id).await? {
            Some(_) => TusLock::Busy,
            None => TusLock::Missing,
        })
    }

    /// Extends a PATCH's hold on its upload; false when it lost it.
    pub async fn renew_tus_lock(
        &self,
        id: Uuid,
        token: Uuid,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let renewed = self
            .execute(
                "renew_tus_lock",
                "UPDATE tus_uploads SET locked_until = now() + make_interval(secs => $3) \
                 WHERE id = $1 AND lock_token = $2",
                &[&id, &token, &lease.as_secs_f64()],
            )
            .await?;
        Ok(renewed == 1)
    }

    pub async fn unlock_tus_upload(&self, id: Uuid, token: Uuid) -> Result<(), StoreError> {
        self.execute(
            "unlock_tus_upload",
            "UPDATE tus_uploads SET lock_token = NULL, locked_until = NULL \
             WHERE id = $1 AND lock_token = $2",
            &[&id, &token],
        )
        .await?;
        Ok(())
    }

    /// Records a PATCH's bytes and releases the upload; false when the
    /// upload is gone or no longer held by `token` at `from_offset`.
    pub async fn advance_tus_upload(
        &self,
        id: Uuid,
        token: Uuid,
        progress: TusProgress<'_>,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = self.step("begin", client.transaction()).await?;
        let leaves = (progress.new_leaves.len() / 32) as i32;
        let first_leaf: Option<i32> = self
            .step(
                "advance_tus_upload",
                tx.query_opt(
                    "UPDATE tus_uploads SET upload_offset = $4, \
                       upload_length = coalesce(upload_length, $5), tail = $6, hash_state = $7, \
                       head = $8, leaf_count = leaf_count + $9, \
                       lock_token = CASE WHEN $10 THEN NULL ELSE lock_token END, \
                       locked_until = CASE WHEN $10 THEN NULL ELSE locked_until END \
                     WHERE id = $1 AND lock_token = $2 AND upload_offset = $3 \
                     RETURNING leaf_count - $9",
                    &[
                        &id,
                        &token,
                        &progress.from_offset,
                        &progress.offset,
                        &progress.upload_length,
                        &progress.tail,
                        &progress.hash_state,
                        &progress.head,
                        &leaves,
                        &progress.release,
                    ],
                ),
            )
            .await?
            .map(|row| row.get(0));
        let Some(first_leaf) = first_leaf else {
            return Ok(false);
        };
        if leaves > 0 {
            self.step(
                "insert_tus_leaves",
                tx.execute(
                    "INSERT INTO tus_leaves (upload_id, first_leaf, digests) VALUES ($1, $2, $3)",
                    &[&id, &first_leaf, &progress.new_leaves],
                ),
            )
            .await?;
        }
        self.step("commit", tx.commit()).await?;
        Ok(true)
    }

    /// The digests of every complete leaf of the upload, in file order.
    pub async fn tus_leaf_digests(&self, id: Uuid) -> Result<Vec<u8>, StoreError> {
        let parts: Vec<Vec<u8>> = self
            .column(
                "tus_leaf_digests",
                "SELECT digests FROM tus_leaves WHERE upload_id = $1 ORDER BY first_leaf",
                &[&id],
            )
            .await?;
        Ok(parts.concat())
    }

    /// Marks the upload done with its CID; what it kept to resume goes.
    pub async fn complete_tus_upload(&self, id: Uuid, cid: &str) -> Result<(), StoreError> {
        self.execute(
            "complete_tus_upload",
            "UPDATE tus_uploads SET completed_cid = $2, tail = ''::bytea, \
               lock_token = NULL, locked_until = NULL WHERE id = $1",
            &[&id, &cid],
        )
        .await?;
        self.execute(
            "drop_tus_leaves",
            "DELETE FROM tus_leaves WHERE upload_id = $1",
            &[&id],
        )
        .await?;
        Ok(())
    }

    /// Deletes the tenant's upload; `Some(file_id)` when it existed, with
    /// the pending file to roll back.
    pub async fn delete_tus_upload(
        &self,
        tenant_id: &str,
        id: Uuid,
    ) -> Result<Option<Option<Uuid>>, StoreError> {
        let rows = self
            .rows(
                "delete_tus_upload",
                "DELETE FROM tus_uploads WHERE id = $1 AND tenant_id = $2 \
                 AND expires_at > now() RETURNING file_id, completed_cid",
                &[&id, &tenant_id],
            )
            .await?;
        Ok(rows.first().map(|row| {
            let completed: Option<String> = row.get(1);
            // A finished upload's file is the tenant's now, not pending.
            completed.is_none().then(|| row.get(0)).flatten()
        }))
    }

    /// Deletes up to `limit` expired uploads (and expired used-link marks);
    /// the pending files they held, to roll back.
    pub async fn expire_tus_uploads(&self, limit: i64) -> Result<Vec<Uuid>, StoreError> {
        self.execute(
            "expire_consumed_links",
            "DELETE FROM consumed_links WHERE expires_at < now()",
            &[],
        )
        .await?;
        let held: Vec<Option<Uuid>> = self
            .column(
                "expire_tus_uploads",
                "DELETE FROM tus_uploads WHERE id IN \
                   (SELECT id FROM tus_uploads WHERE expires_at < now() LIMIT $1) \
                 RETURNING CASE WHEN completed_cid IS NULL THEN file_id END",
                &[&limit],
            )
            .await?;
        Ok(held.into_iter().flatten().collect())
    }
}

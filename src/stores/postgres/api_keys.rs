//! The `api_keys` table.

use time::OffsetDateTime;
use tokio_postgres::Row;

use super::{query_error, Postgres};
use crate::stores::StoreError;

/// A stored API key: only the hash of its secret is kept.
#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub secret_hash: Vec<u8>,
    pub scopes: Vec<String>,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

pub struct NewApiKeyRow<'a> {
    pub id: &'a str,
    pub tenant_id: &'a str,
    pub name: &'a str,
    pub secret_hash: &'a [u8],
    pub scopes: &'a [String],
}

const COLUMNS: &str = "id, tenant_id, name, secret_hash, scopes, created_at, revoked_at";

impl ApiKeyRow {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            tenant_id: row.get("tenant_id"),
            name: row.get("name"),
            secret_hash: row.get("secret_hash"),
            scopes: row.get("scopes"),
            created_at: row.get("created_at"),
            revoked_at: row.get("revoked_at"),
        }
    }
}

impl Postgres {
    pub async fn insert_api_key(&self, key: NewApiKeyRow<'_>) -> Result<ApiKeyRow, StoreError> {
        self.guard
            .run("insert_api_key", async {
                let client = self.client().await?;
                let row = client
                    .query_one(
                        &format!(
                            "INSERT INTO api_keys (id, tenant_id, name, secret_hash, scopes) \
                             VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
                        ),
                        &[
                            &key.id,
                            &key.tenant_id,
                            &key.name,
                            &key.secret_hash,
                            &key.scopes,
                        ],
                    )
                    .await
                    .map_err(query_error)?;
                Ok(ApiKeyRow::from_row(&row))
            })
            .await
    }

    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        self.guard
            .run("find_api_key", async {
                let client = self.client().await?;
                let statement = client
                    .prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1"))
                    .await
                    .map_err(query_error)?;
                let row = client
                    .query_opt(&statement, &[&id])
                    .await
                    .map_err(query_error)?;
                Ok(row.as_ref().map(ApiKeyRow::from_row))
            })
            .await
    }

    pub async fn api_keys_of_tenant(&self, tenant_id: &str) -> Result<Vec<ApiKeyRow>, StoreError> {
        self.guard
            .run("list_api_keys", async {
                let client = self.client().await?;
                let rows = client
                    .query(
                        &format!(
                            "SELECT {COLUMNS} FROM api_keys WHERE tenant_id = $1 \
                             ORDER BY created_at, id"
                        ),
                        &[&tenant_id],
                    )
                    .await
                    .map_err(query_error)?;
                Ok(rows.iter().map(ApiKeyRow::from_row).collect())
            })
            .await
    }

    /// Revokes a live key, within `tenant_id` when given; false when there
    /// was no such live key.
    pub async fn revoke_api_key(
        &self,
        id: &str,
        tenant_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.guard
            .run("revoke_api_key", async {
                let client = self.client().await?;
                let changed = client
                    .execute(
                        "UPDATE api_keys SET revoked_at = now() \
                         WHERE id = $1 AND revoked_at IS NULL \
                           AND ($2::text IS NULL OR tenant_id = $2)",
                        &[&id, &tenant_id],
                    )
                    .await
                    .map_err(query_error)?;
                Ok(changed == 1)
            })
            .await
    }
}

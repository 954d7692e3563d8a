//! Rows of the event tables, and their insertion.

use clickhouse::Row;
use serde::Serialize;
use uuid::Uuid;

use super::{clickhouse_error, ClickHouse};

/// How much of a row stream is read before it is handed to ClickHouse.
const READ_CHUNK: usize = 1 << 20;
use crate::stores::{StoreError, StoreKind};

/// A row of `file_uploads`. Times are Unix seconds, as `DateTime` is stored.
#[derive(Debug, Clone, Row, Serialize)]
pub struct FileUploadRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    pub tenant_id: String,
    pub owner_id: String,
    pub cid: String,
    pub size_bytes: u64,
    pub content_type: String,
    pub timestamp: u32,
}

/// A row of `file_downloads`.
#[derive(Debug, Clone, Row, Serialize)]
pub struct FileDownloadRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    pub tenant_id: String,
    pub cid: String,
    pub bytes_sent: u64,
    pub partial: u8,
    pub timestamp: u32,
}

impl ClickHouse {
    /// Inserts rows already written as JSON lines (`JSONEachRow`) into
    /// `table`, in one insert. The table name is part of the SQL text, so
    /// only names fixed in the code are accepted.
    pub async fn insert_json_rows(
        &self,
        table: &'static str,
        rows: bytes::Bytes,
    ) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO {table} FORMAT JSONEachRow");
        self.guard
            .run("insert_events", async {
                let mut insert = self.client.insert_formatted_with(sql);
                insert.send(rows).await.map_err(clickhouse_error)?;
                insert.end().await.map_err(clickhouse_error)
            })
            .await
    }

    /// Inserts the JSON lines `reader` yields into `table`, in one insert
    /// sent as it is read. Only names fixed in the code are accepted.
    pub async fn insert_json_from<R>(
        &self,
        table: &'static str,
        mut reader: R,
    ) -> Result<(), StoreError>
    where
        R: tokio::io::AsyncRead + Unpin,
    {
        use tokio::io::AsyncReadExt;
        let sql = format!("INSERT INTO {table} FORMAT JSONEachRow");
        self.guard
            .run("insert_events", async {
                let mut insert = self.client.insert_formatted_with(sql);
                let mut buffer = bytes::BytesMut::with_capacity(READ_CHUNK);
                loop {
                    buffer.reserve(READ_CHUNK);
                    let read = reader.read_buf(&mut buffer).await.map_err(|e| {
                        StoreError::failed(
                            StoreKind::ClickHouse,
                            format!("the rows could not be read: {e}"),
                        )
                    })?;
                    if read == 0 {
                        break;
                    }
                    if buffer.len() >= READ_CHUNK {
                        insert
                            .send(buffer.split().freeze())
                            .await
                            .map_err(clickhouse_error)?;
                    }
                }
                if !buffer.is_empty() {
                    insert
                        .send(buffer.freeze())
                        .await
                        .map_err(clickhouse_error)?;
                }
                insert.end().await.map_err(clickhouse_error)
            })
            .await
    }

    /// Inserts `rows` into `table` in one RowBinary insert.
    pub async fn insert_rows<T>(&self, table: &'static str, rows: &[T]) -> Result<(), StoreError>
    where
        T: Row + Serialize,
        for<'a> T: Row<Value<'a> = T>,
    {
        self.guard
            .run("insert", async {
                let mut insert = self
                    .client
                    .insert::<T>(table)
                    .await
                    .map_err(clickhouse_error)?;
                for row in rows {
                    insert.write(row).await.map_err(clickhouse_error)?;
                }
                insert.end().await.map_err(clickhouse_error)
            })
            .await
    }
}

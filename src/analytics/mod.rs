//! Analytics events about the gateway's own activity.
//!
//! Events are written straight to ClickHouse in the background: recording
//! never delays or fails the request it describes, and an event is lost if
//! ClickHouse is down at that moment.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::TenantId;
use crate::stores::clickhouse::{ClickHouse, FileDownloadRow, FileUploadRow};
use crate::stores::postgres::FileRow;

#[derive(Clone)]
pub struct Analytics {
    clickhouse: ClickHouse,
}

fn now_seconds() -> u32 {
    u32::try_from(OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(u32::MAX)
}

impl Analytics {
    pub fn new(clickhouse: ClickHouse) -> Self {
        Self { clickhouse }
    }

    pub fn file_uploaded(&self, file: &FileRow) {
        let row = FileUploadRow {
            event_id: Uuid::new_v4(),
            tenant_id: file.tenant_id.clone(),
            owner_id: file.owner_id.clone().unwrap_or_default(),
            cid: file.cid.clone(),
            size_bytes: u64::try_from(file.size_bytes).unwrap_or(0),
            content_type: file.content_type.clone(),
            timestamp: now_seconds(),
        };
        self.record("file_uploads", row);
    }

    pub fn file_downloaded(&self, tenant: &TenantId, cid: &str, bytes_sent: u64, partial: bool) {
        let row = FileDownloadRow {
            event_id: Uuid::new_v4(),
            tenant_id: tenant.to_string(),
            cid: cid.to_owned(),
            bytes_sent,
            partial: u8::from(partial),
            timestamp: now_seconds(),
        };
        self.record("file_downloads", row);
    }

    fn record<T>(&self, table: &'static str, row: T)
    where
        T: clickhouse::Row + serde::Serialize + Send + Sync + 'static,
        for<'a> T: clickhouse::Row<Value<'a> = T>,
    {
        let clickhouse = self.clickhouse.clone();
        tokio::spawn(async move {
            if let Err(error) = clickhouse.insert_rows(table, &[row]).await {
                tracing::warn!(table, %error, "analytics event not recorded");
            }
        });
    }
}

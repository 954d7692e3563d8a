//! ClickHouse, through its HTTP interface, and the analytics schema.

mod dashboards;
mod events;
mod hourly;
mod schema;

pub use dashboards::{ActivityRow, ApiUsageRow, ChallengeRow, FileTrafficRow, Window};
pub use events::{FileDownloadRow, FileUploadRow};
pub use schema::SchemaReport;

use std::sync::Arc;

use secrecy::ExposeSecret;

use super::{CallGuard, HealthDetail, StoreError, StoreKind};
use crate::config::ClickHouseSettings;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct ClickHouse {
    /// Bound to the analytics database.
    client: clickhouse::Client,
    /// Bound to the server's `default` database, for creating ours.
    server: clickhouse::Client,
    database: String,
    guard: CallGuard,
}

impl ClickHouse {
    pub fn new(settings: &ClickHouseSettings, metrics: Arc<Metrics>) -> Self {
        // Row validation asks the server for a setting that ClickHouse 18.16
        // lacks, so it stays off; the schema and the rows are ours on both sides.
        let server = clickhouse::Client::default()
            .with_url(&settings.url)
            .with_user(&settings.user)
            .with_password(settings.password.expose_secret())
            .with_validation(false);
        Self {
            client: server.clone().with_database(&settings.database),
            server,
            database: settings.database.clone(),
            guard: CallGuard::new(StoreKind::ClickHouse, settings.timeout(), metrics),
        }
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub async fn health(&self) -> Result<HealthDetail, StoreError> {
        self.guard
            .run("health", async {
                let version = self.server_version().await?;
                Ok(HealthDetail {
                    version: Some(version),
                    peers: None,
                })
            })
            .await
    }

    async fn server_version(&self) -> Result<String, StoreError> {
        self.server
            .query("SELECT version()")
            .fetch_one::<String>()
            .await
            .map_err(clickhouse_error)
    }

    /// Names of the tables in the analytics database.
    pub async fn tables(&self) -> Result<Vec<String>, StoreError> {
        self.guard
            .run("list_tables", async {
                self.server
                    .query("SELECT name FROM system.tables WHERE database = ? ORDER BY name")
                    .bind(&self.database)
                    .fetch_all::<String>()
                    .await
                    .map_err(clickhouse_error)
            })
            .await
    }

    /// Drops the analytics database; only tests that made their own use it.
    /// A schema statement, so it has the schema's bound: dropping a database
    /// with its views takes seconds on a busy server.
    pub async fn drop_database(&self) -> Result<(), StoreError> {
        self.guard
            .run_within("drop_database", schema::STATEMENT_TIMEOUT, async {
                self.server
                    .query(&format!("DROP DATABASE IF EXISTS {}", self.database))
                    .execute()
                    .await
                    .map_err(clickhouse_error)
            })
            .await
    }
}

pub(crate) fn clickhouse_error(error: clickhouse::error::Error) -> StoreError {
    use clickhouse::error::Error;
    match error {
        Error::Network(_) | Error::TimedOut => {
            StoreError::unavailable(StoreKind::ClickHouse, error)
        }
        other => StoreError::failed(StoreKind::ClickHouse, other),
    }
}

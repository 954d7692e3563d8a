//! PostgreSQL: a pooled client with bounded waits, and the embedded migrations.

mod api_keys;
mod challenges;
mod files;
mod pins;
mod tus;

pub use api_keys::{ApiKeyRow, NewApiKeyRow};
pub use challenges::{
    BestScore, ChallengeRow, NewChallenge, NewSubmission, NewUser, SubmissionRow, UserRow,
};
pub use files::{
    BlobClaim, FileContent, FileDeletion, FileDetails, FilePage, FileRow, PinState, ReleasedClaim,
    Reservation,
};
pub use pins::{NameMatch, NewPin, PinFilter};
pub use tus::{NewTusUpload, TusLock, TusProgress, TusRow};

use std::str::FromStr;
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use super::{CallGuard, HealthDetail, StoreError, StoreKind};
use crate::config::PostgresSettings;
use crate::metrics::Metrics;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Any fixed number: every gateway takes this advisory lock around its
/// migrations, so gateways starting together apply them one at a time.
const MIGRATION_LOCK_KEY: i64 = 0x5347_575f_4d49_4752;

#[derive(Clone)]
pub struct Postgres {
    pool: Pool,
    url: SecretString,
    guard: CallGuard,
}

impl Postgres {
    pub fn new(settings: &PostgresSettings, metrics: Arc<Metrics>) -> Result<Self, StoreError> {
        let mut config = tokio_postgres::Config::from_str(settings.url.expose_secret())
            .map_err(|e| StoreError::failed(StoreKind::Postgres, e))?;
        config.connect_timeout(settings.timeout());
        config.application_name("storage-gateway");
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(settings.timeout()))
            .create_timeout(Some(settings.timeout()))
            .recycle_timeout(Some(settings.timeout()))
            .build()
            .map_err(|e| StoreError::failed(StoreKind::Postgres, e))?;
        Ok(Self {
            pool,
            url: settings.url.clone(),
            guard: CallGuard::new(StoreKind::Postgres, settings.timeout(), metrics),
        })
    }

    pub async fn health(&self) -> Result<HealthDetail, StoreError> {
        self.guard
            .run("health", async {
                let client = self.pool.get().await.map_err(pool_error)?;
                let row = client
                    .query_one("SELECT current_setting('server_version')", &[])
                    .await
                    .map_err(query_error)?;
                Ok(HealthDetail {
                    version: Some(row.get(0)),
                    peers: None,
                })
            })
            .await
    }

    /// Applies the embedded migrations that this database has not seen, all in
    /// one transaction, and returns the names of those it applied.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let (mut client, connection) = tokio::time::timeout(
            self.guard.timeout(),
            tokio_postgres::connect(self.url.expose_secret(), NoTls),
        )
        .await
        .map_err(|_| StoreError::unavailable(StoreKind::Postgres, "connect timed out"))?
        .map_err(query_error)?;
        let connection = tokio::spawn(connection);
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
            .await
            .map_err(query_error)?;
        let report = embedded::migrations::runner()
            .set_grouped(true)
            .run_async(&mut client)
            .await
            .map_err(|e| StoreError::failed(StoreKind::Postgres, format!("migration failed: {e}")));
        // Closing the session releases the advisory lock.
        drop(client);
        let _ = connection.await;
        Ok(report?
            .applied_migrations()
            .iter()
            .map(|m| m.to_string())
            .collect())
    }

    /// Names of the migrations built into this binary, oldest first.
    pub fn known_migrations() -> Vec<String> {
        embedded::migrations::runner()
            .get_migrations()
            .iter()
            .map(|m| m.to_string())
            .collect()
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// One guarded step on a connection or transaction the caller holds.
    async fn step<T>(
        &self,
        operation: &'static str,
        step: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, StoreError> {
        self.guard
            .run(operation, async { step.await.map_err(query_error) })
            .await
    }

    /// Every row `sql` answers, as one guarded call.
    async fn rows(
        &self,
        operation: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        self.guard
            .run(operation, async {
                let client = self.client().await?;
                client.query(sql, params).await.map_err(query_error)
            })
            .await
    }

    /// Runs one statement as one guarded call; the rows it touched.
    async fn execute(
        &self,
        operation: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        self.guard
            .run(operation, async {
                let client = self.client().await?;
                client.execute(sql, params).await.map_err(query_error)
            })
            .await
    }

    /// The first column of every row `sql` answers, as one guarded call.
    async fn column<T>(
        &self,
        operation: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<T>, StoreError>
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
    {
        self.guard
            .run(operation, async {
                let client = self.client().await?;
                let rows = client.query(sql, params).await.map_err(query_error)?;
                Ok(rows.iter().map(|row| row.get(0)).collect())
            })
            .await
    }
}

fn pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(e) => query_error(e),
        other => StoreError::unavailable(StoreKind::Postgres, other),
    }
}

/// Errors without a server answer, and server answers that say the server
/// cannot serve now (connection, resource and shutdown classes), mean
/// unavailable; any other server error is a failed operation.
fn query_error(error: tokio_postgres::Error) -> StoreError {
    let Some(db) = error.as_db_error() else {
        return StoreError::unavailable(StoreKind::Postgres, error);
    };
    let code = db.code();
    let class = &code.code()[..2];
    if matches!(class, "08" | "53" | "57") || *code == SqlState::INVALID_CATALOG_NAME {
        StoreError::unavailable(StoreKind::Postgres, db)
    } else if class == "22" {
        // Data exceptions: a NUL in text or JSON, a number or date out of
        // range. Inputs are checked before they get here; this is the net
        // for any that slips through, so it is the caller's 400, not a 500.
        StoreError::InvalidValue {
            store: StoreKind::Postgres,
            reason: db.message().to_owned(),
        }
    } else {
        StoreError::failed(StoreKind::Postgres, db)
    }
}

//! Start-up against empty databases applies every migration and the whole
//! ClickHouse schema; a second start applies none; a failing migration
//! leaves nothing behind.

use crate::common::{postgres, spawn_app_with, stack_settings, unique};
use secrecy::SecretString;
use storage_gateway::startup::Application;
use storage_gateway::stores::postgres::Postgres;

/// A fresh Postgres database on the stack's server, dropped when done.
struct ScratchDatabase {
    name: String,
    admin: tokio_postgres::Client,
}

impl ScratchDatabase {
    async fn create() -> Self {
        let admin = postgres(&std::env::var("DATABASE_URL").unwrap()).await;
        let name = unique("scratch").replace('-', "_");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        Self { name, admin }
    }

    fn url(&self) -> String {
        let base = std::env::var("DATABASE_URL").unwrap();
        let (server, _) = base.rsplit_once('/').unwrap();
        format!("{server}/{}", self.name)
    }

    async fn connect(&self) -> tokio_postgres::Client {
        postgres(&self.url()).await
    }

    async fn drop_it(self) {
        self.admin
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await
            .unwrap();
    }
}

fn migration_files() -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .map(|n| n.trim_end_matches(".sql").to_owned())
            .collect();
    names.sort();
    names
}

#[tokio::test]
async fn first_start_applies_everything_and_second_start_nothing() {
    let database = ScratchDatabase::create().await;
    let mut settings = stack_settings();
    settings.postgres.url = SecretString::from(database.url());
    settings.clickhouse.database = unique("scratch").replace('-', "_");

    let first = Application::build(own_spool(&settings)).await.unwrap();
    let applied = &first.schema_changes().postgres_applied;
    assert_eq!(applied.len(), migration_files().len(), "{applied:?}");
    assert_eq!(applied, &Postgres::known_migrations());
    let clickhouse = &first.schema_changes().clickhouse;
    assert!(
        clickhouse.applied.contains(&"001_events.sql".to_owned()),
        "{clickhouse:?}"
    );
    let tables = first.state().stores.clickhouse.tables().await.unwrap();
    for table in [
        "api_usage",
        "challenge_completions",
        "file_downloads",
        "file_uploads",
        "user_activity",
    ] {
        assert!(
            tables.contains(&table.to_owned()),
            "{table} missing from {tables:?}"
        );
    }

    let second = Application::build(own_spool(&settings)).await.unwrap();
    assert!(second.schema_changes().postgres_applied.is_empty());
    assert_eq!(
        second.schema_changes().clickhouse.applied,
        clickhouse.applied
    );

    let client = database.connect().await;
    for table in [
        "api_keys",
        "users",
        "challenges",
        "submissions",
        "file_metadata",
    ] {
        let row = client
            .query_one("SELECT to_regclass($1)::text", &[&table])
            .await
            .unwrap();
        assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some(table));
    }
    drop(client);
    first
        .state()
        .stores
        .clickhouse
        .drop_database()
        .await
        .unwrap();
    drop(first);
    drop(second);
    database.drop_it().await;
}

#[tokio::test]
async fn a_failing_migration_stops_start_up_and_leaves_no_half_schema() {
    let database = ScratchDatabase::create().await;
    // A table in the way makes the first migration fail part-way.
    let client = database.connect().await;
    client
        .batch_execute("CREATE TABLE submissions (id int)")
        .await
        .unwrap();
    let mut settings = stack_settings();
    settings.postgres.url = SecretString::from(database.url());

    let error = Application::build(settings)
        .await
        .err()
        .expect("start-up fails");
    let message = error.to_string();
    assert!(message.contains("migration failed"), "{message}");
    assert!(message.contains("postgres"), "{message}");
    // Tables created before the failing statement were rolled back with it.
    for table in ["api_keys", "users", "challenges"] {
        let row = client
            .query_one("SELECT to_regclass($1)::text", &[&table])
            .await
            .unwrap();
        assert_eq!(
            row.get::<_, Option<String>>(0),
            None,
            "{table} was left behind"
        );
    }
    drop(client);
    database.drop_it().await;
}

#[tokio::test]
async fn gateways_starting_together_migrate_once() {
    let database = ScratchDatabase::create().await;
    let mut settings = stack_settings();
    settings.postgres.url = SecretString::from(database.url());
    let starts = (0..3).map(|_| Application::build(own_spool(&settings)));
    let apps: Vec<Application> = futures_util::future::join_all(starts)
        .await
        .into_iter()
        .map(|r| r.expect("every start succeeds"))
        .collect();
    let total: usize = apps
        .iter()
        .map(|a| a.schema_changes().postgres_applied.len())
        .sum();
    assert_eq!(total, migration_files().len());
    drop(apps);
    database.drop_it().await;
}

#[tokio::test]
async fn a_running_gateway_has_nothing_left_to_migrate() {
    let app = spawn_app_with(stack_settings()).await;
    assert_eq!(
        app.state.stores.postgres.migrate().await.unwrap(),
        Vec::<String>::new()
    );
}

/// The settings with a spool folder of their own: each gateway needs one.
fn own_spool(settings: &storage_gateway::config::Settings) -> storage_gateway::config::Settings {
    let mut settings = settings.clone();
    settings.analytics.spool_dir = crate::common::temp_dir("spool");
    settings
}

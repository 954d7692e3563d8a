//! The command line: serve, migrate, and API key management.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::analytics::rejected;
use crate::auth::{ApiKeys, Scope, TenantId};
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::startup::{prepare_schemas, Application};
use crate::stores::Stores;
use crate::telemetry;

#[derive(Parser)]
#[command(
    name = "storage-gateway",
    version,
    about = "One HTTP gateway in front of PostgreSQL, Redis, ClickHouse, Kubo and IPFS Cluster"
)]
struct Cli {
    /// A TOML file whose keys override the built-in defaults; the environment
    /// overrides both.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply the Postgres migrations and the ClickHouse schema, then exit.
    Migrate,
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the OpenAPI document (as served at /openapi.json) and exit.
    Openapi,
    /// Work with the analytics event spool.
    #[command(subcommand)]
    Events(EventsCommand),
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Insert the rows ClickHouse refused for good (kept in the spool's
    /// rejected/ folder) now that the cause is fixed, oldest first; each file
    /// is removed once ClickHouse has it. Stops at the first file refused.
    ReplayRejected,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; prints the key alone on stdout. It is not stored in clear
    /// and cannot be shown again.
    Create {
        /// Tenant the key belongs to.
        #[arg(long)]
        tenant: String,
        /// Comma-separated scopes: files:read, files:write, analytics:read,
        /// analytics:write, sessions, ratelimit, cache, challenges, admin, or all.
        #[arg(long)]
        scopes: String,
        /// A label to recognise the key by.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List a tenant's keys (never their secrets), one per line, tab-separated.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a key by its id.
    Revoke { id: String },
}

pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    let loaded = Settings::load(cli.config.as_deref())
        .and_then(|settings| crate::startup::check_settings(&settings).map(|()| settings));
    let settings = match loaded {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    // One-shot commands report through their own output; their logs carry
    // only warnings unless RUST_LOG asks for more.
    let level = match command {
        Command::Serve => settings.log.level.clone(),
        _ => "warn".to_owned(),
    };
    telemetry::init(&settings.log, &level);
    let result = match command {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
        Command::Keys(command) => keys(settings, command).await,
        Command::Events(EventsCommand::ReplayRejected) => replay_rejected(settings).await,
        Command::Openapi => {
            serde_json::to_string_pretty(&crate::http::openapi::document_for(&settings))
                .map(|text| println!("{text}"))
                .map_err(|e| e.to_string())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> Result<(), String> {
    let app = Application::build(settings)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(port = app.port(), "serving");
    app.run_until_stopped().await.map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

async fn migrate(settings: Settings) -> Result<(), String> {
    let stores = Stores::new(&settings, Metrics::new()).map_err(|e| e.to_string())?;
    let changes = prepare_schemas(&stores).await.map_err(|e| e.to_string())?;
    println!(
        "postgres: {} migration(s) applied{}",
        changes.postgres_applied.len(),
        list_suffix(&changes.postgres_applied)
    );
    println!(
        "clickhouse {}: {} schema file(s) applied, {} skipped{}",
        changes.clickhouse.server_version,
        changes.clickhouse.applied.len(),
        changes.clickhouse.skipped.len(),
        list_suffix(&changes.clickhouse.skipped)
    );
    Ok(())
}

async fn replay_rejected(settings: Settings) -> Result<(), String> {
    let stores = Stores::new(&settings, Metrics::new()).map_err(|e| e.to_string())?;
    let spool_dir = &settings.analytics.spool_dir;
    let files = rejected::list(spool_dir)
        .map_err(|e| format!("{}: {e}", spool_dir.join(rejected::FOLDER).display()))?;
    for file in &files {
        rejected::replay(&stores.clickhouse, file).await?;
        println!("replayed {} into {}", file.path.display(), file.table);
    }
    println!("{} file(s) replayed", files.len());
    Ok(())
}

fn list_suffix(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    }
}

async fn keys(settings: Settings, command: KeysCommand) -> Result<(), String> {
    let stores = Stores::new(&settings, Metrics::new()).map_err(|e| e.to_string())?;
    stores.postgres.migrate().await.map_err(|e| e.to_string())?;
    let api_keys = ApiKeys::new(stores.postgres.clone(), &settings.auth);
    match command {
        KeysCommand::Create {
            tenant,
            scopes,
            name,
        } => {
            let tenant = TenantId::parse(&tenant).map_err(|e| e.to_string())?;
            let scopes = Scope::parse_list(&scopes).map_err(|e| e.to_string())?;
            if scopes.is_empty() {
                return Err("--scopes must name at least one scope".into());
            }
            let issued = api_keys
                .create(&tenant, &scopes, &name)
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", issued.key);
        }
        KeysCommand::List { tenant } => {
            let tenant = TenantId::parse(&tenant).map_err(|e| e.to_string())?;
            let keys = api_keys.list(&tenant).await.map_err(|e| e.to_string())?;
            println!("id\tname\tscopes\tcreated_at\tstatus");
            for key in keys {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    key.id,
                    key.name,
                    key.scopes.join(","),
                    key.created_at,
                    if key.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    }
                );
            }
        }
        KeysCommand::Revoke { id } => {
            if !api_keys
                .revoke(&id, None)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("no live key with id {id}"));
            }
            println!("revoked {id}");
        }
    }
    Ok(())
}

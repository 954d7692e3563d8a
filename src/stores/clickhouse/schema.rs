//! Applies clickhouse-schema/ at start-up. Every statement there is
//! idempotent, so it all runs on each start; files that need a newer server
//! than the one connected say so on their first line and are skipped.

use std::time::Duration;

use serde::Serialize;

use super::{clickhouse_error, ClickHouse};
use crate::stores::StoreError;

/// The schema files, in the order they apply.
pub(crate) const SCHEMA_FILES: &[(&str, &str)] = &[
    (
        "001_events.sql",
        include_str!("../../../clickhouse-schema/001_events.sql"),
    ),
    (
        "002_api_usage_retention.sql",
        include_str!("../../../clickhouse-schema/002_api_usage_retention.sql"),
    ),
    (
        "003_hourly_counts.sql",
        include_str!("../../../clickhouse-schema/003_hourly_counts.sql"),
    ),
];

const MIN_VERSION_MARK: &str = "-- min_server_version:";

/// Bound on each schema statement. A statement that fills a new table from
/// the events already stored (once, on the first start after an upgrade)
/// takes as long as reading them; the request timeout would cut it short.
pub(super) const STATEMENT_TIMEOUT: Duration = Duration::from_secs(600);

/// What one start-up did to the ClickHouse schema.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SchemaReport {
    pub server_version: String,
    pub applied: Vec<String>,
    /// Files left out because the server is older than they need.
    pub skipped: Vec<String>,
}

impl ClickHouse {
    pub async fn apply_schema(&self) -> Result<SchemaReport, StoreError> {
        let version = self
            .guard
            .run("server_version", self.server_version())
            .await?;
        let server = parse_version(&version).unwrap_or((0, 0));
        self.guard
            .run("create_database", async {
                self.server
                    .query(&format!("CREATE DATABASE IF NOT EXISTS {}", self.database))
                    .execute()
                    .await
                    .map_err(clickhouse_error)
            })
            .await?;
        let mut report = SchemaReport {
            server_version: version,
            ..SchemaReport::default()
        };
        for (name, text) in SCHEMA_FILES {
            if let Some(needed) = required_version(text) {
                if server < needed {
                    tracing::info!(
                        file = name,
                        "schema file needs ClickHouse {}.{}; skipped",
                        needed.0,
                        needed.1
                    );
                    report.skipped.push(name.to_string());
                    continue;
                }
            }
            for statement in statements(text) {
                self.guard
                    .run_within("apply_schema", STATEMENT_TIMEOUT, async {
                        self.client.query(&statement).execute().await.map_err(|e| {
                            match clickhouse_error(e) {
                                StoreError::Failed { store, reason } => StoreError::Failed {
                                    store,
                                    reason: format!("{name}: {reason}"),
                                },
                                unavailable => unavailable,
                            }
                        })
                    })
                    .await?;
            }
            report.applied.push(name.to_string());
        }
        Ok(report)
    }
}

fn required_version(text: &str) -> Option<(u32, u32)> {
    let first = text.lines().next()?;
    parse_version(first.strip_prefix(MIN_VERSION_MARK)?.trim())
}

fn parse_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    let major = parts.next()?.trim().parse().ok()?;
    let minor = parts.next()?.trim().parse().ok()?;
    Some((major, minor))
}

/// Statements end with `;` at the end of a line; comment lines are dropped,
/// and `{...}` placeholders are not used, so the text goes as written.
fn statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || trimmed.is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            let statement = current.trim().trim_end_matches(';').trim().to_owned();
            if !statement.is_empty() {
                out.push(statement);
            }
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_and_drops_comments() {
        let text = "-- header\nCREATE TABLE a (x UInt8)\nENGINE = Memory;\n\n-- next\nSELECT 1;\n";
        assert_eq!(
            statements(text),
            vec!["CREATE TABLE a (x UInt8)\nENGINE = Memory", "SELECT 1"]
        );
    }

    #[test]
    fn reads_the_required_version() {
        assert_eq!(
            required_version("-- min_server_version: 19.6\nALTER"),
            Some((19, 6))
        );
        assert_eq!(required_version("CREATE TABLE"), None);
        assert!(parse_version("18.16.1") < Some((19, 6)));
        assert!(parse_version("24.8.4.13") >= Some((19, 6)));
    }

    #[test]
    fn every_file_in_the_folder_is_listed() {
        let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/clickhouse-schema");
        let mut on_disk: Vec<String> = std::fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        on_disk.sort();
        let listed: Vec<String> = SCHEMA_FILES.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(on_disk, listed);
    }
}

//! Rows ClickHouse refused for good, set aside in the spool's `rejected/`
//! folder (one file per table, batch and tenant, JSON lines), and their
//! replay once the cause is fixed.
//!
//! Replaying is safe to repeat: the tables keep one row per event id.

use std::path::{Path, PathBuf};

use super::TABLES;
use crate::stores::clickhouse::ClickHouse;

/// The folder under the spool's where refused rows are kept.
pub const FOLDER: &str = "rejected";
/// A file is complete once it carries this ending: it is written under
/// another name and renamed.
const ENDING: &str = ".jsonl";

/// The file name for `table`'s rows set aside at `now_ms`; `sequence`
/// tells apart files set aside in the same millisecond.
pub fn file_name(now_ms: u64, sequence: u64, table: &str) -> String {
    format!("{now_ms}-{sequence:06}-{table}{ENDING}")
}

/// One file of set-aside rows.
pub struct RejectedFile {
    pub path: PathBuf,
    pub table: String,
}

/// The complete files under `spool_dir`, oldest first.
pub fn list(spool_dir: &Path) -> std::io::Result<Vec<RejectedFile>> {
    let folder = spool_dir.join(FOLDER);
    let entries = match std::fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut files = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        // Table names hold no '-'; older names lack the sequence.
        let Some((_, table)) = name.strip_suffix(ENDING).and_then(|n| n.rsplit_once('-')) else {
            continue;
        };
        files.push(RejectedFile {
            path: folder.join(name),
            table: table.to_owned(),
        });
    }
    // Names start with the time they were written.
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Inserts one file's rows into its table, then removes the file.
pub async fn replay(clickhouse: &ClickHouse, file: &RejectedFile) -> Result<(), String> {
    let Some(table) = TABLES.iter().find(|known| **known == file.table) else {
        return Err(format!("{} names no known table", file.path.display()));
    };
    let reader = tokio::fs::File::open(&file.path)
        .await
        .map_err(|e| format!("{}: {e}", file.path.display()))?;
    clickhouse
        .insert_json_from(table, reader)
        .await
        .map_err(|e| format!("{}: {e}", file.path.display()))?;
    tokio::fs::remove_file(&file.path)
        .await
        .map_err(|e| format!("{} replayed but not removed: {e}", file.path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_files_are_listed_oldest_first() {
        let dir = std::env::temp_dir().join(format!("sgw-rejected-{}", uuid::Uuid::new_v4()));
        let folder = dir.join(FOLDER);
        std::fs::create_dir_all(&folder).unwrap();
        for name in [
            file_name(20, 0, "api_usage"),
            file_name(10, 1, "user_activity"),
            file_name(10, 0, "user_activity"),
            // As an older gateway named them.
            "5-api_usage.jsonl".to_owned(),
            "30-user_activity.tmp".to_owned(),
            "notes.txt".to_owned(),
        ] {
            std::fs::write(folder.join(name), b"{}\n").unwrap();
        }
        let listed: Vec<_> = list(&dir)
            .unwrap()
            .into_iter()
            .map(|file| file.table)
            .collect();
        assert_eq!(
            listed,
            ["user_activity", "user_activity", "api_usage", "api_usage"]
        );
        assert!(list(&dir.join("missing")).unwrap().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}

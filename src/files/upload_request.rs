//! What a caller says about an upload, from a query string, a multipart
//! form or tus metadata, checked against the limits before it is stored.
//! Pure functions: the HTTP layer parses, these judge.

use serde_json::json;

use super::{DirectoryEntry, FilesError, UploadDetails};
use crate::config::FilesSettings;
use crate::error_code::ErrorCode;

/// Fields of an upload, from the query string or the multipart form.
#[derive(Default)]
pub struct UploadFields {
    pub name: Option<String>,
    pub owner: Option<String>,
    pub metadata: Option<String>,
    pub replication_min: Option<i32>,
    pub replication_max: Option<i32>,
    pub declared_type: Option<String>,
}

/// How long an upload's answer waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PinWait {
    /// Answer once the content is stored and its pin asked for.
    #[default]
    Stored,
    /// Answer once `replication_min` peers hold the pin (or the wait ends).
    Pinned,
}

impl PinWait {
    /// The `wait` query parameter: absent, or `pinned`.
    pub fn parse(value: Option<&str>) -> Result<Self, FilesError> {
        match value {
            None => Ok(PinWait::Stored),
            Some("pinned") => Ok(PinWait::Pinned),
            Some(other) => Err(FilesError::invalid(
                ErrorCode::InvalidWait,
                format!("wait={other:?} is not known; the only value is wait=pinned"),
            )),
        }
    }
}

/// Checks what the caller said about the upload against the limits.
pub fn upload_details(
    settings: &FilesSettings,
    fields: UploadFields,
) -> Result<UploadDetails, FilesError> {
    let name = fields.name.ok_or_else(|| {
        FilesError::invalid(
            ErrorCode::MissingName,
            "a file name is required: the name query parameter, a name field, or the file part's filename",
        )
    })?;
    if name.is_empty() || name.chars().count() > settings.max_name_chars {
        return Err(FilesError::invalid(
            ErrorCode::InvalidName,
            format!(
                "the file name must have 1 to {} characters",
                settings.max_name_chars
            ),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FilesError::invalid(
            ErrorCode::InvalidName,
            "the file name must not contain control characters",
        ));
    }
    if let Some(owner) = &fields.owner {
        if owner.is_empty() || owner.len() > 256 || owner.chars().any(char::is_control) {
            return Err(FilesError::invalid(
                ErrorCode::InvalidOwner,
                "owner must have 1 to 256 bytes and no control characters",
            ));
        }
    }
    let metadata = match fields.metadata {
        None => json!({}),
        Some(text) => {
            if text.len() > settings.max_metadata_bytes {
                return Err(FilesError::invalid(
                    ErrorCode::InvalidMetadata,
                    format!("metadata is over {} bytes", settings.max_metadata_bytes),
                ));
            }
            let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                FilesError::invalid(
                    ErrorCode::InvalidMetadata,
                    format!("metadata is not JSON: {e}"),
                )
            })?;
            if !value.is_object() {
                return Err(FilesError::invalid(
                    ErrorCode::InvalidMetadata,
                    "metadata must be a JSON object",
                ));
            }
            if holds_nul(&value) {
                return Err(FilesError::invalid(
                    ErrorCode::InvalidMetadata,
                    "metadata must not contain NUL characters (\\u0000), in keys or values",
                ));
            }
            value
        }
    };
    let replication_min = fields.replication_min.unwrap_or(settings.replication_min);
    let replication_max = fields
        .replication_max
        .unwrap_or(settings.replication_max.max(replication_min));
    if replication_min < 1
        || replication_max < replication_min
        || replication_max > settings.replication_max_allowed
    {
        return Err(FilesError::invalid(
            ErrorCode::InvalidReplication,
            format!(
                "replication needs 1 <= replication_min <= replication_max <= {}",
                settings.replication_max_allowed
            ),
        ));
    }
    Ok(UploadDetails {
        name,
        owner: fields.owner,
        declared_type: fields.declared_type,
        metadata,
        replication_min,
        replication_max,
    })
}

/// Whether a NUL appears in any string of `value`, keys included:
/// Postgres's JSON type cannot hold one.
fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) => text.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(map) => map
            .iter()
            .any(|(key, value)| key.contains('\0') || holds_nul(value)),
        _ => false,
    }
}

/// Longest path of a file in a directory upload, and most folders deep.
const MAX_PATH_BYTES: usize = 4096;
const MAX_PATH_DEPTH: usize = 64;

/// A file's path in a directory upload: relative, of non-empty segments of
/// at most 255 bytes, none `.` or `..`, no control characters.
pub fn relative_path(filename: &str) -> Result<Vec<String>, FilesError> {
    let invalid = |why: &str| {
        FilesError::invalid(
            ErrorCode::InvalidPath,
            format!("file path {filename:?} {why}"),
        )
    };
    if filename.len() > MAX_PATH_BYTES {
        return Err(invalid("is longer than 4096 bytes"));
    }
    if filename.chars().any(char::is_control) {
        return Err(invalid("holds a control character"));
    }
    let segments: Vec<String> = filename.split('/').map(str::to_owned).collect();
    if segments.len() > MAX_PATH_DEPTH {
        return Err(invalid("is more than 64 folders deep"));
    }
    if segments.iter().any(|s| s.is_empty()) {
        return Err(invalid("is not relative, or has an empty segment"));
    }
    if segments.iter().any(|s| s == "." || s == "..") {
        return Err(invalid("has a . or .. segment"));
    }
    if segments.iter().any(|s| s.len() > 255) {
        return Err(invalid("has a name longer than 255 bytes"));
    }
    Ok(segments)
}

/// The folder every file of a directory upload is in, when there is one:
/// the directory's name when the form names none.
pub fn common_folder(entries: &[DirectoryEntry]) -> Option<String> {
    let first = entries.first()?.path.first()?;
    entries
        .iter()
        .all(|e| e.path.len() > 1 && e.path.first() == Some(first))
        .then(|| first.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn settings() -> FilesSettings {
        Settings::load_from(None, Vec::<(String, String)>::new())
            .expect("the defaults load")
            .files
    }

    fn named(name: &str) -> UploadFields {
        UploadFields {
            name: Some(name.to_owned()),
            ..UploadFields::default()
        }
    }

    fn refused(fields: UploadFields) -> ErrorCode {
        match upload_details(&settings(), fields) {
            Err(FilesError::Invalid { code, .. }) => code,
            Err(other) => panic!("refused as {other:?}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn wait_is_absent_or_pinned() {
        assert_eq!(PinWait::parse(None).unwrap(), PinWait::Stored);
        assert_eq!(PinWait::parse(Some("pinned")).unwrap(), PinWait::Pinned);
        assert!(matches!(
            PinWait::parse(Some("stored")),
            Err(FilesError::Invalid {
                code: ErrorCode::InvalidWait,
                ..
            })
        ));
    }

    #[test]
    fn details_take_the_defaults_the_settings_give() {
        let settings = settings();
        let details = upload_details(&settings, named("a.txt")).unwrap();
        assert_eq!(details.name, "a.txt");
        assert_eq!(details.metadata, json!({}));
        assert_eq!(details.replication_min, settings.replication_min);
        assert!(details.replication_max >= details.replication_min);
    }

    #[test]
    fn names_owners_and_metadata_are_bounded() {
        let settings = settings();
        assert_eq!(refused(UploadFields::default()), ErrorCode::MissingName);
        assert_eq!(refused(named("")), ErrorCode::InvalidName);
        let long = "x".repeat(settings.max_name_chars + 1);
        assert_eq!(refused(named(&long)), ErrorCode::InvalidName);
        assert_eq!(refused(named("a\nb")), ErrorCode::InvalidName);
        let owner = |owner: &str| UploadFields {
            owner: Some(owner.to_owned()),
            ..named("a")
        };
        assert_eq!(refused(owner(&"o".repeat(257))), ErrorCode::InvalidOwner);
        assert_eq!(refused(owner("")), ErrorCode::InvalidOwner);
        let metadata = |text: &str| UploadFields {
            metadata: Some(text.to_owned()),
            ..named("a")
        };
        for bad in ["[1]", "not json", r#"{"k":"a\u0000b"}"#, r#"{"a\u0000":1}"#] {
            assert_eq!(refused(metadata(bad)), ErrorCode::InvalidMetadata, "{bad}");
        }
        let over = format!(r#"{{"k":"{}"}}"#, "v".repeat(settings.max_metadata_bytes));
        assert_eq!(refused(metadata(&over)), ErrorCode::InvalidMetadata);
        let kept = upload_details(&settings, metadata(r#"{"k":[1,"v"]}"#)).unwrap();
        assert_eq!(kept.metadata, json!({"k": [1, "v"]}));
    }

    #[test]
    fn replication_stays_within_its_bounds() {
        let settings = settings();
        let replication = |min: Option<i32>, max: Option<i32>| UploadFields {
            replication_min: min,
            replication_max: max,
            ..named("a")
        };
        assert_eq!(
            refused(replication(Some(0), None)),
            ErrorCode::InvalidReplication
        );
        assert_eq!(
            refused(replication(Some(2), Some(1))),
            ErrorCode::InvalidReplication
        );
        let over = settings.replication_max_allowed + 1;
        assert_eq!(
            refused(replication(Some(1), Some(over))),
            ErrorCode::InvalidReplication
        );
        let details = upload_details(&settings, replication(Some(1), Some(1))).unwrap();
        assert_eq!((details.replication_min, details.replication_max), (1, 1));
    }

    #[test]
    fn directory_paths_are_relative_and_bounded() {
        assert_eq!(relative_path("docs/a.txt").unwrap(), ["docs", "a.txt"]);
        for bad in [
            "/etc/passwd",
            "docs//a",
            "docs/../a",
            "./a",
            "a\tb/c",
            &vec!["d"; MAX_PATH_DEPTH + 1].join("/"),
            &format!("{}/a", "n".repeat(256)),
            &"x".repeat(MAX_PATH_BYTES + 1),
        ] {
            assert!(
                matches!(
                    relative_path(bad),
                    Err(FilesError::Invalid {
                        code: ErrorCode::InvalidPath,
                        ..
                    })
                ),
                "{bad:?} was accepted"
            );
        }
    }
}

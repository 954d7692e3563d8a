//! A tenant's file as the capability hands it out: its CID parsed, its
//! kind and pin state typed, its size unsigned. Rows stay in the store.

use time::OffsetDateTime;
use uuid::Uuid;

use super::ContentId;
use crate::auth::TenantId;
use crate::stores::postgres::{FileRow, PinState};
use crate::stores::{StoreError, StoreKind};

/// How a file came: its bytes uploaded, a CAR of its DAG uploaded, a
/// folder uploaded, or a pin request the Cluster fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Upload,
    Car,
    Directory,
    Pin,
}

impl FileKind {
    pub const ALL: [FileKind; 4] = [
        FileKind::Upload,
        FileKind::Car,
        FileKind::Directory,
        FileKind::Pin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Upload => "upload",
            FileKind::Car => "car",
            FileKind::Directory => "directory",
            FileKind::Pin => "pin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

#[derive(Debug, Clone)]
pub struct File {
    pub id: Uuid,
    pub tenant: TenantId,
    pub cid: ContentId,
    pub owner: Option<String>,
    pub name: String,
    /// `None` for a pin request not pinned yet.
    pub size: Option<u64>,
    pub content_type: String,
    /// `None` for a pin request or a CAR: no file's bytes passed the gateway.
    pub sha256: Option<Vec<u8>>,
    pub metadata: serde_json::Value,
    pub kind: FileKind,
    /// Multiaddrs a pin request named as holding the content.
    pub origins: Vec<String>,
    pub pin_state: PinState,
    /// Some Cluster peer has started fetching the content.
    pub fetching: bool,
    pub replication_min: i32,
    pub replication_max: i32,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl File {
    /// The bytes the file is charged for (0 for a pin not pinned yet).
    pub fn charged_bytes(&self) -> u64 {
        self.size.unwrap_or(0)
    }
}

/// The columns' constraints allow only values that parse; a row that does
/// not is a fault of the store, reported as such rather than trusted.
impl TryFrom<FileRow> for File {
    type Error = StoreError;

    fn try_from(row: FileRow) -> Result<Self, StoreError> {
        let broken = |what: &str, value: &str, why: String| {
            StoreError::failed(
                StoreKind::Postgres,
                format!("file {} has a stored {what} {value:?}: {why}", row.id),
            )
        };
        let tenant = TenantId::parse(&row.tenant_id)
            .map_err(|e| broken("tenant", &row.tenant_id, e.to_string()))?;
        let cid = ContentId::parse(&row.cid).map_err(|e| broken("CID", &row.cid, e.to_string()))?;
        let kind = FileKind::parse(&row.kind)
            .ok_or_else(|| broken("kind", &row.kind, "not a kind of file".into()))?;
        let size = row
            .size_bytes
            .map(|size| {
                u64::try_from(size)
                    .map_err(|_| broken("size", &size.to_string(), "negative".into()))
            })
            .transpose()?;
        Ok(File {
            id: row.id,
            tenant,
            cid,
            owner: row.owner_id,
            name: row.name,
            size,
            content_type: row.content_type,
            sha256: row.sha256,
            metadata: row.metadata,
            kind,
            origins: row.origins,
            pin_state: row.pin_state,
            fetching: row.fetching,
            replication_min: row.replication_min,
            replication_max: row.replication_max,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// One page of a tenant's files, newest first.
pub struct FilePage {
    pub files: Vec<File>,
    /// Where the next page starts; `None` on the last one.
    pub next: Option<(OffsetDateTime, Uuid)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> FileRow {
        let now = OffsetDateTime::now_utc();
        FileRow {
            id: Uuid::new_v4(),
            tenant_id: "t1".into(),
            cid: "bafkreihkusuu5iya4djmo5mwrs7ef4fvwuoov7plople5hx535wu5caimu".into(),
            owner_id: None,
            name: "a.png".into(),
            size_bytes: Some(67),
            content_type: "image/png".into(),
            sha256: None,
            metadata: serde_json::json!({}),
            kind: "upload".into(),
            origins: vec![],
            pin_state: PinState::Pinned,
            fetching: false,
            replication_min: 1,
            replication_max: 2,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn a_stored_row_becomes_a_typed_file() {
        let file = File::try_from(row()).unwrap();
        assert_eq!(file.kind, FileKind::Upload);
        assert_eq!(file.size, Some(67));
        assert_eq!(file.charged_bytes(), 67);
        assert_eq!(file.tenant.as_str(), "t1");
        assert_eq!(
            file.cid.as_str(),
            "bafkreihkusuu5iya4djmo5mwrs7ef4fvwuoov7plople5hx535wu5caimu"
        );
        let unpinned = File::try_from(FileRow {
            size_bytes: None,
            kind: "pin".into(),
            ..row()
        })
        .unwrap();
        assert_eq!(unpinned.kind, FileKind::Pin);
        assert_eq!(unpinned.charged_bytes(), 0);
    }

    #[test]
    fn a_row_no_file_could_have_is_a_store_fault() {
        for broken in [
            FileRow {
                cid: "not-a-cid".into(),
                ..row()
            },
            FileRow {
                kind: "folder".into(),
                ..row()
            },
            FileRow {
                size_bytes: Some(-1),
                ..row()
            },
            FileRow {
                tenant_id: "Not A Tenant".into(),
                ..row()
            },
        ] {
            let error = File::try_from(broken).unwrap_err();
            assert!(error.to_string().contains("stored"), "{error}");
        }
    }

    #[test]
    fn every_kind_parses_back() {
        for kind in FileKind::ALL {
            assert_eq!(FileKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(FileKind::parse("Upload"), None);
    }
}

//! Files in IPFS: content streamed into Kubo, pinned through the Cluster,
//! described in Postgres, shared between tenants by CID with a reference count.

pub mod byte_range;
pub mod car;
pub mod content_id;
mod file;
pub mod pins;
mod reconciler;
mod running_hash;
pub mod tus;
pub mod unixfs;
pub mod upload_request;
pub mod verifiable;

pub use crate::stores::cluster::{PeerPinStatus, PinStatus};
pub use crate::stores::kubo::ListedEntry;
pub use crate::stores::postgres::PinState;
pub use file::{File, FileKind, FilePage};
pub use reconciler::ReconcileReport;
pub use upload_request::PinWait;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::admission::{Admission, Overloaded};
use crate::analytics::{Analytics, UploadEvent};
use crate::auth::TenantId;
use crate::config::{FilesSettings, PinningSettings};
use crate::error_code::ErrorCode;
use crate::metrics::Metrics;
use crate::stores::cluster::PinRequest;
use crate::stores::kubo::{AddOptions, ContentSize, ContentStream, DagCheck};
use crate::stores::postgres::{FileContent, FileDeletion, FileDetails, ReleasedClaim};
use crate::stores::{StoreError, Stores};
pub use byte_range::{requested_range, ByteRange, RangeError};
pub use content_id::{ContentId, InvalidCid};

/// Most entries of a folder one listing answers.
pub const MAX_LISTED: usize = 1000;

/// What a path under a file names.
pub enum PathEntry {
    File {
        bytes: u64,
    },
    Folder {
        entries: Vec<ListedEntry>,
        more: bool,
    },
}

/// Pins the gateway makes are named with this prefix, so the reconciler can
/// tell them from the Cluster's other pins.
pub const PIN_NAME_PREFIX: &str = "storage-gateway:";

/// Bytes kept from the start of an upload to recognise its type.
const SNIFF_BYTES: usize = 512;
/// Chunks in flight between the request body and Kubo: bounded, so a slow
/// Kubo slows the client down instead of filling memory.
const CHUNKS_IN_FLIGHT: usize = 8;
/// Request bodies arrive in small pieces; they go to Kubo gathered into
/// pieces of this size, so Kubo parses few large chunks. With
/// `CHUNKS_IN_FLIGHT` it bounds an upload's buffers to a few MiB.
const FORWARD_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("upload is over the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error(
        "upload would take the tenant over its quota of {quota} bytes ({used} already stored)"
    )]
    OverQuota { quota: u64, used: u64 },
    #[error("content type {0} is not accepted here")]
    UnsupportedType(String),
    #[error("{message}")]
    Invalid { code: ErrorCode, message: String },
    #[error("no file {0} in this tenant")]
    NotFound(String),
    #[error("{0}")]
    InUse(String),
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
    #[error("the upload took longer than files.pending_expiry_secs and was rolled back")]
    Expired,
    #[error("{0}")]
    NotSupported(String),
    #[error("the tenant has {limit} resumable uploads open already; finish or terminate one")]
    TooManyUploads { limit: i64 },
    #[error("{0}")]
    Locked(String),
    #[error("Upload-Offset is {got} but the upload has {expected} bytes; resume from {expected}")]
    OffsetMismatch { expected: u64, got: u64 },
    #[error("the upload link was used already")]
    LinkUsed,
    #[error("the part's bytes do not have the SHA-256 of Upload-Checksum; nothing of it was kept")]
    ChecksumMismatch,
    #[error("the tenant's quota of {quota} bytes is used up; remove files or pins first")]
    InsufficientFunds { quota: u64 },
    #[error("{message}")]
    Unprocessable { code: ErrorCode, message: String },
}

impl FilesError {
    pub fn invalid(code: ErrorCode, message: impl Into<String>) -> Self {
        FilesError::Invalid {
            code,
            message: message.into(),
        }
    }
}

/// How many bytes an upload may bring, and which limit that is.
#[derive(Debug, Clone)]
struct UploadLimit {
    bytes: u64,
    quota: Option<(u64, u64)>,
}

impl UploadLimit {
    fn exceeded(&self) -> FilesError {
        match self.quota {
            Some((quota, used)) => FilesError::OverQuota { quota, used },
            None => FilesError::TooLarge { limit: self.bytes },
        }
    }
}

/// What streaming the content into Kubo learned.
#[derive(Debug, Clone)]
pub struct ReceivedContent {
    pub cid: String,
    /// Bytes charged: the file's, or the blocks' imported from a CAR.
    pub size: u64,
    /// Of the file's bytes; `None` for a CAR, whose bytes are blocks.
    pub sha256: Option<[u8; 32]>,
    /// The type recognised from the first bytes, when recognised.
    pub sniffed_type: Option<&'static str>,
    pub kind: FileKind,
    /// Bytes of every block of its DAG, when known (a directory's link
    /// to it carries them).
    pub dag_bytes: u64,
}

/// What a caller says about an upload.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct UploadDetails {
    pub name: String,
    pub owner: Option<String>,
    pub declared_type: Option<String>,
    pub metadata: serde_json::Value,
    pub replication_min: i32,
    pub replication_max: i32,
}

/// A file stored in one call, and whether it is new: content the tenant
/// already had is the same file as before.
pub struct StoredFile {
    pub file: File,
    pub created: bool,
}

/// An upload's file and its pin, as the answer reports them.
pub struct Uploaded {
    pub file: File,
    pub pin: Option<PinStatus>,
    /// With [`PinWait::Pinned`]: the wait ended before enough peers held it.
    pub still_pinning: bool,
}

/// Where an upload's content goes: into Kubo, within the bytes the upload
/// reserved.
pub struct ContentSink {
    files: Files,
    limit: UploadLimit,
    /// Bytes received so far: the files of one directory upload share the
    /// upload's limit.
    received: std::sync::atomic::AtomicU64,
}

/// A file of a directory upload: its path, its content, its declared type.
pub struct DirectoryEntry {
    pub path: Vec<String>,
    pub content: ReceivedContent,
    pub declared_type: Option<String>,
}

impl ContentSink {
    pub fn settings(&self) -> &FilesSettings {
        &self.files.settings
    }

    /// Streams `body` into Kubo, hashing and counting on the same pass and
    /// cutting the stream off as soon as it crosses the limit.
    pub async fn receive<S, E>(&self, body: S) -> Result<ReceivedContent, FilesError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let (sender, to_kubo) = kubo_channel();
        let options = AddOptions {
            chunker: self.files.settings.chunker.clone(),
        };
        let add = self.files.stores.kubo.add(to_kubo, &options);
        let pump = pump(body, sender, self.left(), true, SNIFF_BYTES);
        let (pumped, added) = tokio::join!(pump, add);
        let Some(pumped) = pumped? else {
            return Err(added.err().map(FilesError::from).unwrap_or_else(|| {
                FilesError::invalid(ErrorCode::IncompleteBody, "upload interrupted")
            }));
        };
        let added = added?;
        self.received
            .fetch_add(pumped.size, std::sync::atomic::Ordering::Relaxed);
        Ok(ReceivedContent {
            cid: added.cid,
            size: pumped.size,
            sha256: pumped.sha256,
            sniffed_type: infer::get(&pumped.head).map(|kind| kind.mime_type()),
            kind: FileKind::Upload,
            dag_bytes: added.dag_bytes,
        })
    }

    /// What is left of the upload's limit after the parts received so far.
    fn left(&self) -> UploadLimit {
        let received = self.received.load(std::sync::atomic::Ordering::Relaxed);
        UploadLimit {
            bytes: self.limit.bytes.saturating_sub(received),
            quota: self.limit.quota,
        }
    }

    /// Makes one UnixFS directory of files received one by one: builds and
    /// stores its directory nodes (the files' DAGs are in Kubo already).
    /// Under an allow-list every file's type must be on it. The directory is
    /// charged the bytes of its files.
    pub async fn directory(
        &self,
        entries: Vec<DirectoryEntry>,
    ) -> Result<ReceivedContent, FilesError> {
        let mut files = Vec::with_capacity(entries.len());
        let mut size = 0;
        for entry in entries {
            let details = UploadDetails {
                declared_type: entry.declared_type,
                ..UploadDetails::default()
            };
            self.files
                .content_type(&entry.content, &details, &[])
                .map_err(|error| match error {
                    FilesError::UnsupportedType(kind) => {
                        FilesError::UnsupportedType(format!("{kind} (of {})", entry.path.join("/")))
                    }
                    other => other,
                })?;
            let cid: cid::Cid = entry.content.cid.parse().map_err(|_| {
                FilesError::Store(StoreError::failed(
                    crate::stores::StoreKind::Kubo,
                    format!("add answered {:?}, which is no CID", entry.content.cid),
                ))
            })?;
            size += entry.content.size;
            files.push((
                entry.path,
                unixfs::DagNode {
                    cid,
                    content_bytes: entry.content.size,
                    total_bytes: entry.content.dag_bytes,
                },
            ));
        }
        let (root, blocks) = unixfs::build_directory(&files)
            .map_err(|e| FilesError::invalid(ErrorCode::InvalidPath, e.to_string()))?;
        let stored: Vec<_> = blocks
            .iter()
            .filter(|block| !unixfs::is_inlined(&block.cid))
            .collect();
        if !stored.is_empty() {
            let put: Vec<_> = stored
                .iter()
                .map(|b| Ok(Bytes::from(b.bytes.clone())))
                .collect();
            let keys = self
                .files
                .stores
                .kubo
                .put_blocks(futures_util::stream::iter(put), "dag-pb")
                .await?;
            let expected: Vec<String> = stored.iter().map(|b| b.cid.to_string()).collect();
            if keys != expected {
                return Err(FilesError::Store(StoreError::failed(
                    crate::stores::StoreKind::Kubo,
                    "stored a directory node under another CID than computed",
                )));
            }
        }
        Ok(ReceivedContent {
            cid: root.cid.to_string(),
            size,
            sha256: None,
            sniffed_type: None,
            kind: FileKind::Directory,
            dag_bytes: root.total_bytes,
        })
    }

    /// Streams the CAR `body` into Kubo within the limit, reading its root
    /// from the header as it passes, and checks (within
    /// `files.car_check_timeout_secs`) that Kubo holds every block under the
    /// root. The file is charged the bytes of those blocks: what the pin
    /// keeps, which a CAR cannot lower by leaving out blocks the store has
    /// already. Nothing is pinned here: a refused CAR leaves only unpinned
    /// blocks, which Kubo's garbage collection removes.
    pub async fn receive_car<S, E>(&self, body: S) -> Result<ReceivedContent, FilesError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let unprocessable = |code, message: String| FilesError::Unprocessable { code, message };
        let (sender, to_kubo) = kubo_channel();
        let kubo = &self.files.stores.kubo;
        let import = kubo.import_car(to_kubo);
        let pump = pump(body, sender, self.left(), false, car::MAX_HEADER_BYTES);
        let (pumped, imported) = tokio::join!(pump, import);
        let Some(pumped) = pumped? else {
            return Err(match imported {
                Ok(Err(reason)) => unprocessable(ErrorCode::InvalidCar, reason),
                Err(error) => error.into(),
                Ok(Ok(_)) => FilesError::invalid(ErrorCode::IncompleteBody, "upload interrupted"),
            });
        };
        let roots = car::roots(&pumped.head)
            .map_err(|e| unprocessable(ErrorCode::InvalidCar, e.to_string()))?;
        imported?.map_err(|reason| unprocessable(ErrorCode::InvalidCar, reason))?;
        let root = match roots.as_slice() {
            [root] => ContentId::parse(&root.to_string())
                .map_err(|e| unprocessable(ErrorCode::InvalidCar, e.to_string()))?
                .to_string(),
            [] => {
                return Err(unprocessable(
                    ErrorCode::InvalidCar,
                    "the CAR names no root; its header must name the one to store".into(),
                ))
            }
            more => {
                return Err(unprocessable(
                    ErrorCode::InvalidCar,
                    format!(
                        "the CAR names {} roots; a CAR upload stores one file, so name one root",
                        more.len()
                    ),
                ))
            }
        };
        let within = Duration::from_secs(self.files.settings.car_check_timeout_secs);
        let bytes = match kubo.check_dag(&root, within).await? {
            DagCheck::Complete { bytes } => bytes,
            DagCheck::Missing(missing) => {
                return Err(unprocessable(
                    ErrorCode::IncompleteCar,
                    format!("the DAG under root {root} is incomplete: block {missing} is missing"),
                ))
            }
        };
        // Blocks the store had already count too: the reservation bounds
        // what the file may be charged, not only what the body brought.
        if bytes > self.left().bytes {
            return Err(self.left().exceeded());
        }
        Ok(ReceivedContent {
            cid: root,
            size: bytes,
            sha256: None,
            sniffed_type: None,
            kind: FileKind::Car,
            dag_bytes: bytes,
        })
    }
}

/// A bounded channel whose receiving end streams into Kubo: a slow Kubo
/// slows the client down instead of filling memory.
fn kubo_channel() -> (
    tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
) {
    let (sender, receiver) =
        tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_IN_FLIGHT);
    let to_kubo = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    (sender, to_kubo)
}

/// What one pass over a request body learned while forwarding it.
struct Pumped {
    size: u64,
    sha256: Option<[u8; 32]>,
    /// Its first `head_bytes` bytes.
    head: Vec<u8>,
}

/// Forwards `body` to `sender` in pieces of `FORWARD_BYTES`, counting it
/// against `limit` (and hashing it when asked) on the way. `None` when the
/// receiving side stopped reading: its own error says why.
async fn pump<S, E>(
    body: S,
    sender: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    limit: UploadLimit,
    hash: bool,
    head_bytes: usize,
) -> Result<Option<Pumped>, FilesError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let mut hasher = hash.then(Sha256::new);
    let mut size: u64 = 0;
    let mut head = Vec::with_capacity(head_bytes.min(SNIFF_BYTES));
    let mut gathered = bytes::BytesMut::with_capacity(FORWARD_BYTES);
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => {
                let message = format!("the request body ended abnormally: {error}");
                let _ = sender
                    .send(Err(std::io::Error::other(message.clone())))
                    .await;
                return Err(FilesError::invalid(ErrorCode::IncompleteBody, message));
            }
        };
        size += chunk.len() as u64;
        if size > limit.bytes {
            let _ = sender
                .send(Err(std::io::Error::other("upload over its limit")))
                .await;
            return Err(limit.exceeded());
        }
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&chunk);
        }
        if head.len() < head_bytes {
            let take = (head_bytes - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        gathered.extend_from_slice(&chunk);
        if gathered.len() >= FORWARD_BYTES {
            let piece = gathered.split().freeze();
            if sender.send(Ok(piece)).await.is_err() {
                return Ok(None);
            }
        }
    }
    if !gathered.is_empty() && sender.send(Ok(gathered.freeze())).await.is_err() {
        return Ok(None);
    }
    Ok(Some(Pumped {
        size,
        sha256: hasher.map(|hasher| hasher.finalize().into()),
        head,
    }))
}

/// Rolls an upload back when dropped while still armed.
struct RollBackOnDrop {
    files: Files,
    pending: Option<Uuid>,
}

impl RollBackOnDrop {
    fn disarm(mut self) {
        self.pending = None;
    }
}

impl Drop for RollBackOnDrop {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            let files = self.files.clone();
            tokio::spawn(async move { files.roll_back(pending).await });
        }
    }
}

/// The Cluster's name for a pin of the gateway: the prefix, then the first
/// upload's file name (shortened), for an operator looking at the Cluster.
fn pin_name(name: &str) -> String {
    let mut pin = String::from(PIN_NAME_PREFIX);
    pin.extend(name.chars().take(100));
    pin
}

#[derive(Clone)]
pub struct Files {
    stores: Stores,
    settings: Arc<FilesSettings>,
    pinning: Arc<PinningSettings>,
    metrics: Arc<Metrics>,
    admission: Admission,
    /// Every stored upload is an analytics event.
    analytics: Analytics,
    /// When the reconciler last looked for orphan pins (Unix seconds).
    last_orphan_sweep: Arc<std::sync::atomic::AtomicU64>,
    /// The Cluster's IPFS nodes' addresses, and when they were read.
    delegates: Arc<std::sync::Mutex<Option<pins::Delegates>>>,
}

impl Files {
    pub fn new(
        stores: Stores,
        settings: FilesSettings,
        pinning: PinningSettings,
        metrics: Arc<Metrics>,
        admission: Admission,
        analytics: Analytics,
    ) -> Self {
        Self {
            stores,
            settings: Arc::new(settings),
            pinning: Arc::new(pinning),
            metrics,
            admission,
            analytics,
            last_orphan_sweep: Arc::default(),
            delegates: Arc::default(),
        }
    }

    pub fn pinning(&self) -> &PinningSettings {
        &self.pinning
    }

    pub fn settings(&self) -> &FilesSettings {
        &self.settings
    }

    /// Stores an upload of `tenant`: reserves what it may bring (at most
    /// `expected_bytes` when the caller said), lets `read` stream the
    /// content through the [`ContentSink`] and say what the file is, then
    /// claims the CID, pins it through the Cluster and commits the file.
    /// On any failure everything is rolled back: the reservation, the claim
    /// and a pin no other file needs.
    async fn upload<F, Fut>(
        &self,
        tenant: &TenantId,
        expected_bytes: Option<u64>,
        read: F,
    ) -> Result<StoredFile, FilesError>
    where
        F: FnOnce(ContentSink) -> Fut,
        Fut: Future<Output = Result<(ReceivedContent, UploadDetails), FilesError>>,
    {
        let _slot = self.admission.upload_slot()?;
        let (pending, limit) = self.reserve(tenant, expected_bytes).await?;
        // A client that goes away drops this future mid-upload: the guard
        // rolls the upload back then, rather than leaving it to expire.
        let guard = RollBackOnDrop {
            files: self.clone(),
            pending: Some(pending),
        };
        let sink = ContentSink {
            files: self.clone(),
            limit,
            received: Default::default(),
        };
        let outcome = async {
            let (content, details) = read(sink).await?;
            self.commit(pending, &content, &details, &[]).await
        }
        .await;
        guard.disarm();
        match outcome {
            Ok(file) => Ok(self.stored(pending, file)),
            Err(error) => {
                self.roll_back(pending).await;
                Err(error)
            }
        }
    }

    /// A committed upload, counted in the metrics and the analytics events.
    fn stored(&self, pending: Uuid, file: File) -> StoredFile {
        self.metrics
            .file_bytes
            .with_label_values(&["upload"])
            .inc_by(file.charged_bytes());
        self.analytics.file_uploaded(&UploadEvent {
            tenant: &file.tenant,
            owner: file.owner.as_deref(),
            cid: file.cid.as_str(),
            size_bytes: file.charged_bytes(),
            content_type: &file.content_type,
        });
        StoredFile {
            // The pending row became the file unless the tenant already
            // had one with this content.
            created: file.id == pending,
            file,
        }
    }

    /// The whole upload of one request: [`Files::upload`], then its pin,
    /// waited for as `wait` asks.
    pub async fn upload_and_pin<F, Fut>(
        &self,
        tenant: &TenantId,
        expected_bytes: Option<u64>,
        wait: PinWait,
        read: F,
    ) -> Result<Uploaded, FilesError>
    where
        F: FnOnce(ContentSink) -> Fut,
        Fut: Future<Output = Result<(ReceivedContent, UploadDetails), FilesError>>,
    {
        let mut file = self.upload(tenant, expected_bytes, read).await?.file;
        let cid = file.cid.clone();
        let (pin, still_pinning) = match wait {
            PinWait::Pinned => {
                let (pin, reached) = self.wait_until_pinned(&cid, file.replication_min).await?;
                if reached {
                    file.pin_state = PinState::Pinned;
                }
                (Some(pin), !reached)
            }
            // The answer shows the pin as it stands; without it, the answer
            // still stands.
            PinWait::Stored => (self.pin_status(&cid).await.ok(), false),
        };
        Ok(Uploaded {
            file,
            pin,
            still_pinning,
        })
    }

    /// Stores `body` as a file of `tenant`: [`Files::upload`] of a body
    /// whose details are known before it streams.
    pub async fn store<S, E>(
        &self,
        tenant: &TenantId,
        body: S,
        details: &UploadDetails,
    ) -> Result<StoredFile, FilesError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        self.upload(tenant, None, |sink| async move {
            let content = sink.receive(body).await?;
            Ok((content, details.clone()))
        })
        .await
    }

    /// The pending row of a new upload, with what it may bring: the size
    /// limit, what the caller announced, or what is left of the tenant's
    /// quota, whichever is least.
    async fn reserve(
        &self,
        tenant: &TenantId,
        expected_bytes: Option<u64>,
    ) -> Result<(Uuid, UploadLimit), FilesError> {
        let max = self.settings.max_upload_bytes;
        let wanted = expected_bytes.map_or(max, |expected| expected.min(max));
        let quota =
            (self.settings.tenant_quota_bytes > 0).then_some(self.settings.tenant_quota_bytes);
        let reservation = self
            .stores
            .postgres
            .reserve_upload(tenant.as_str(), wanted, quota)
            .await?;
        let Some(reservation) = reservation else {
            let quota = self.settings.tenant_quota_bytes;
            return Err(FilesError::OverQuota { quota, used: quota });
        };
        let limit = match quota {
            Some(quota) if reservation.reserved < wanted => UploadLimit {
                bytes: reservation.reserved,
                quota: Some((quota, reservation.used)),
            },
            _ => UploadLimit {
                bytes: wanted,
                quota: None,
            },
        };
        Ok((reservation.id, limit))
    }

    /// The type a file is stored with: recognised from its first bytes, else
    /// as declared. With an allow-list, a declared type that would have
    /// been recognised (an image, an archive) but was not is not believed.
    /// `bound`, when not empty, narrows the types further (a signed upload
    /// link's).
    fn content_type(
        &self,
        content: &ReceivedContent,
        details: &UploadDetails,
        bound: &[String],
    ) -> Result<String, FilesError> {
        let allowed = &self.settings.allowed_content_types;
        let declared = details
            .declared_type
            .as_deref()
            .filter(|declared| allowed.is_empty() || !infer::is_mime_supported(declared));
        let content_type = content
            .sniffed_type
            .or(declared)
            .unwrap_or("application/octet-stream");
        for list in [allowed.as_slice(), bound] {
            if !list.is_empty() && !list.iter().any(|t| t.eq_ignore_ascii_case(content_type)) {
                return Err(FilesError::UnsupportedType(content_type.to_owned()));
            }
        }
        Ok(content_type.to_owned())
    }

    /// Claims the CID for pending upload `pending`, pins it when it is not
    /// pinned yet, and makes the file visible.
    async fn commit(
        &self,
        pending: Uuid,
        content: &ReceivedContent,
        details: &UploadDetails,
        bound_types: &[String],
    ) -> Result<File, FilesError> {
        let content_type = self.content_type(content, details, bound_types)?;
        let size = i64::try_from(content.size).map_err(|_| FilesError::TooLarge {
            limit: i64::MAX as u64,
        })?;
        let postgres = &self.stores.postgres;
        let claim = postgres
            .claim_blob(
                pending,
                FileContent {
                    cid: &content.cid,
                    size_bytes: size,
                    sha256: content.sha256.as_ref().map(|digest| digest.as_slice()),
                    kind: content.kind.as_str(),
                    replication_min: details.replication_min,
                    replication_max: details.replication_max,
                },
            )
            .await?
            .ok_or(FilesError::Expired)?;
        if claim.needs_pin {
            self.stores
                .cluster
                .pin(&PinRequest {
                    cid: &content.cid,
                    name: &pin_name(&details.name),
                    replication_min: details.replication_min,
                    replication_max: details.replication_max,
                    origins: &[],
                })
                .await?;
        }
        let row = postgres
            .commit_file(
                pending,
                &content.cid,
                FileDetails {
                    owner_id: details.owner.as_deref(),
                    name: &details.name,
                    content_type: &content_type,
                    metadata: &details.metadata,
                },
            )
            .await?;
        Ok(File::try_from(row)?)
    }

    /// Rolls back an upload that failed: its reservation, its claim, and
    /// the pin when no other file needs it. What cannot be done now (a
    /// store is down) the reconciler does later.
    pub(crate) async fn roll_back(&self, pending: Uuid) {
        match self.stores.postgres.release_pending_file(pending).await {
            Ok(ReleasedClaim { unpin: Some(cid) }) => self.unpin(&cid).await,
            Ok(ReleasedClaim { unpin: None }) => {}
            Err(error) => {
                tracing::warn!(%error, %pending, "could not roll back an upload; the reconciler will")
            }
        }
    }

    /// Gives back the blob claim of pending upload `pending`, keeping its
    /// reservation; unpins when that was the last reference.
    pub(crate) async fn release_claim(&self, pending: Uuid) {
        match self.stores.postgres.release_claim(pending).await {
            Ok(ReleasedClaim { unpin: Some(cid) }) => self.unpin(&cid).await,
            Ok(ReleasedClaim { unpin: None }) => {}
            Err(error) => {
                tracing::warn!(%error, %pending, "could not give back an upload's claim")
            }
        }
    }

    /// Unpins a blob whose last reference went, then forgets it; pins it
    /// again when an upload claimed it meanwhile.
    pub(crate) async fn unpin(&self, cid: &str) {
        let cluster = &self.stores.cluster;
        if let Err(error) = cluster.unpin(cid).await {
            tracing::warn!(%error, %cid, "unpin failed; the reconciler retries it");
            return;
        }
        match self.stores.postgres.finish_unpin(cid).await {
            Ok(claimed) => self.pin_again(cid, claimed).await,
            Err(error) => {
                tracing::warn!(%error, %cid, "unpinned blob not forgotten; the reconciler retries")
            }
        }
    }

    /// Pins `cid` again when a file claimed it (`claimed` holds its blob's
    /// replication factors) while an unpin of it was under way: that
    /// claim's own pin may have reached the Cluster before the unpin.
    async fn pin_again(&self, cid: &str, claimed: Option<(i32, i32)>) {
        let Some((replication_min, replication_max)) = claimed else {
            return;
        };
        let pin = PinRequest {
            cid,
            name: &pin_name(cid),
            replication_min,
            replication_max,
            origins: &[],
        };
        if let Err(error) = self.stores.cluster.pin(&pin).await {
            // The blob stays in its pinning state, which the reconciler
            // checks against the Cluster and reports.
            tracing::warn!(%error, %cid, "re-pin of a CID claimed during its unpin failed");
        }
    }

    /// Polls the Cluster until `replication_min` peers report the pin as
    /// pinned or `files.pin_wait_max_secs` passes; true when it got there.
    pub async fn wait_until_pinned(
        &self,
        cid: &ContentId,
        replication_min: i32,
    ) -> Result<(PinStatus, bool), FilesError> {
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_secs(self.settings.pin_wait_max_secs);
        loop {
            let status = self.pin_status(cid).await?;
            if status.pinned_peers() >= replication_min.max(1) as usize {
                self.stores
                    .postgres
                    .set_pin_state(cid.as_str(), PinState::Pinned)
                    .await?;
                return Ok((status, true));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok((status, false));
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    /// A tenant's file about to be downloaded, and the bytes its download
    /// sends: read before any byte is, so conditional and range answers
    /// never open the content.
    pub async fn to_download(
        &self,
        tenant: &TenantId,
        cid: &ContentId,
    ) -> Result<(File, u64), FilesError> {
        let file = self.file(tenant, cid).await?;
        let size = self.download_size(&file).await?;
        Ok((file, size))
    }

    /// The bytes a download of `file` sends: an upload's size, or for a
    /// pin request the size of its content as a UnixFS file, read from Kubo.
    async fn download_size(&self, file: &File) -> Result<u64, FilesError> {
        if file.kind == FileKind::Upload {
            return Ok(file.charged_bytes());
        }
        match self.stores.kubo.content_size(file.cid.as_str()).await? {
            ContentSize::File(bytes) => Ok(bytes),
            ContentSize::Tree(_) => Err(FilesError::invalid(
                ErrorCode::NotAFile,
                format!(
                    "{} is not a UnixFS file; fetch it with ?format=car or by path at /ipfs/{}/...",
                    file.cid, file.cid
                ),
            )),
        }
    }

    /// The bytes of `target` (a CID, or a CID and a path under it) in
    /// `range`, `length` of them, streamed from Kubo and counted as the
    /// tenant's download: the byte metric and the analytics event.
    pub async fn download(
        &self,
        tenant: &TenantId,
        target: &str,
        range: Option<ByteRange>,
        length: u64,
    ) -> Result<ContentStream, FilesError> {
        let partial = range.is_some();
        let content = self.content(target, range).await?;
        self.analytics
            .file_downloaded(tenant, target, length, partial);
        self.metrics
            .file_bytes
            .with_label_values(&["download"])
            .inc_by(length);
        Ok(content)
    }

    /// A file, with its pin as the Cluster sees it now. The live view is a
    /// bonus: with the Cluster down the stored state stands alone.
    pub async fn describe(
        &self,
        tenant: &TenantId,
        cid: &ContentId,
    ) -> Result<(File, Option<PinStatus>), FilesError> {
        let file = self.file(tenant, cid).await?;
        let pin = self.pin_status(cid).await.ok();
        Ok((file, pin))
    }

    pub async fn file(&self, tenant: &TenantId, cid: &ContentId) -> Result<File, FilesError> {
        let row = self
            .stores
            .postgres
            .file(tenant.as_str(), cid.as_str())
            .await?
            .ok_or_else(|| FilesError::NotFound(cid.to_string()))?;
        Ok(File::try_from(row)?)
    }

    pub async fn list(
        &self,
        tenant: &TenantId,
        owner: Option<&str>,
        after: Option<(time::OffsetDateTime, Uuid)>,
        limit: i64,
    ) -> Result<FilePage, FilesError> {
        let page = self
            .stores
            .postgres
            .files(tenant.as_str(), owner, after, limit)
            .await?;
        Ok(FilePage {
            files: page
                .files
                .into_iter()
                .map(File::try_from)
                .collect::<Result<_, _>>()?,
            next: page.next,
        })
    }

    pub async fn pin_status(&self, cid: &ContentId) -> Result<PinStatus, FilesError> {
        Ok(self.stores.cluster.pin_status(cid.as_str()).await?)
    }

    /// The bytes of `target` (a CID, or a CID and a path under it) in
    /// `range` (all of them when `None`), streamed from Kubo.
    pub async fn content(
        &self,
        target: &str,
        range: Option<ByteRange>,
    ) -> Result<ContentStream, FilesError> {
        let range = range.map(|r| (r.start, r.end));
        Ok(self.stores.kubo.read(target, range).await?)
    }

    /// What is at `path` under the tenant's file `cid`: a file's size, or a
    /// folder's entries (at most `MAX_LISTED` of them, and whether more).
    pub async fn entry_at(
        &self,
        tenant: &TenantId,
        cid: &ContentId,
        path: &str,
    ) -> Result<PathEntry, FilesError> {
        self.file(tenant, cid).await?;
        let target = format!("{cid}/{path}");
        let kubo = &self.stores.kubo;
        let not_found = || FilesError::NotFound(format!("{cid}/{path}"));
        match kubo
            .content_size(&target)
            .await
            .map_err(|error| match error {
                StoreError::Failed { .. } => not_found(),
                other => other.into(),
            })? {
            ContentSize::File(bytes) => Ok(PathEntry::File { bytes }),
            ContentSize::Tree(_) => {
                let mut entries = kubo.list(&target).await?;
                let more = entries.len() > MAX_LISTED;
                entries.truncate(MAX_LISTED);
                Ok(PathEntry::Folder { entries, more })
            }
        }
    }

    /// Removes the tenant's file; the Cluster unpins when no file is left on the CID.
    pub async fn delete(&self, tenant: &TenantId, cid: &ContentId) -> Result<(), FilesError> {
        let deleted = self
            .stores
            .postgres
            .delete_file(tenant.as_str(), cid.as_str(), None)
            .await?;
        match deleted {
            FileDeletion::Deleted { unpin } => {
                if let Some(cid) = unpin {
                    self.unpin(&cid).await;
                }
                Ok(())
            }
            FileDeletion::NotFound => Err(FilesError::NotFound(cid.to_string())),
            FileDeletion::OutputOf(submission) => Err(FilesError::InUse(format!(
                "file {cid} is the output of submission {submission}; it stays while the submission does"
            ))),
        }
    }
}

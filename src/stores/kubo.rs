//! Kubo, through its RPC API (`/api/v0`, every call a POST).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use serde::Deserialize;

use super::{CallGuard, HealthDetail, StoreError, StoreKind};
use crate::config::KuboSettings;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Kubo {
    http: reqwest::Client,
    rpc: String,
    guard: CallGuard,
    /// Bound on a whole content transfer (an add or a cat), which can be
    /// long for large files, unlike the per-call bound of `guard`.
    transfer_timeout: Duration,
    /// Base URL of the node's HTTP gateway, read for downloads.
    content: String,
}

/// Largest block, in bytes, stored inside its own CID.
pub const INLINE_LIMIT: &str = "32";

/// How content is cut into blocks and addressed; one setting for every add,
/// so the same bytes always get the same CID.
#[derive(Debug, Clone)]
pub struct AddOptions {
    /// Kubo chunker, e.g. `size-262144`.
    pub chunker: String,
}

/// What Kubo reports for added content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub cid: String,
    /// Bytes of every block of its DAG (a link's `Tsize`).
    pub dag_bytes: u64,
}

#[derive(Deserialize)]
struct AddAnswer {
    #[serde(rename = "Hash")]
    hash: String,
    /// The bytes of every block of the file's DAG, as text.
    #[serde(rename = "Size", default)]
    size: String,
}

#[derive(Deserialize)]
struct BlockAnswer {
    #[serde(rename = "Key")]
    key: String,
}

/// An entry of a folder.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ListedEntry {
    pub name: String,
    pub cid: String,
    /// A file's bytes (0 for a folder).
    pub size: u64,
    pub folder: bool,
}

#[derive(Deserialize)]
struct LsAnswer {
    #[serde(rename = "Objects", default)]
    objects: Vec<LsObject>,
}

#[derive(Deserialize)]
struct LsObject {
    #[serde(rename = "Links", default)]
    links: Vec<LsLink>,
}

#[derive(Deserialize)]
struct LsLink {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Hash")]
    hash: String,
    #[serde(rename = "Size", default)]
    size: u64,
    #[serde(rename = "Type", default)]
    kind: u64,
}

/// What a node holds of a DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DagCheck {
    /// Every block, of this many bytes in all.
    Complete { bytes: u64 },
    /// Not this block (the first found missing).
    Missing(String),
}

#[derive(Deserialize)]
struct DagStat {
    /// Absent for a DAG that is only an identity CID (its bytes live in the
    /// CID: nothing is stored).
    #[serde(rename = "TotalSize", default)]
    total_size: u64,
}

/// A verifiable answer of Kubo's gateway: its type, its ETag, its bytes.
pub struct Verifiable {
    pub content_type: String,
    pub etag: Option<String>,
    pub body: ContentStream,
}

/// A content stream read from Kubo.
pub type ContentStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, StoreError>> + Send>>;

/// What `files/stat` says of a CID.
#[derive(Deserialize)]
struct FilesStat {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "CumulativeSize")]
    cumulative_size: u64,
}

/// The size of a CID's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentSize {
    /// A UnixFS file of this many bytes.
    File(u64),
    /// Anything else: the bytes of its blocks.
    Tree(u64),
}

impl ContentSize {
    pub fn bytes(self) -> u64 {
        match self {
            ContentSize::File(bytes) | ContentSize::Tree(bytes) => bytes,
        }
    }
}

#[derive(Deserialize)]
struct VersionAnswer {
    #[serde(rename = "Version")]
    version: String,
}

/// Kubo's error body: `{"Message": "...", "Code": 0, "Type": "error"}`.
#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(rename = "Message")]
    message: String,
}

impl Kubo {
    pub fn new(settings: &KuboSettings, metrics: Arc<Metrics>) -> Result<Self, StoreError> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.timeout())
            .build()
            .map_err(|e| StoreError::failed(StoreKind::Kubo, e))?;
        Ok(Self {
            http,
            rpc: format!("{}/api/v0", settings.rpc_url()),
            guard: CallGuard::new(StoreKind::Kubo, settings.timeout(), metrics),
            transfer_timeout: settings.transfer_timeout(),
            content: settings.content_url.trim_end_matches('/').to_owned(),
        })
    }

    /// Adds the bytes of `body` as one file (CIDv1, raw leaves, tiny blocks
    /// inlined), without a
    /// local pin: pins belong to the Cluster. The body is streamed, never
    /// gathered; an error from the body aborts the add.
    pub async fn add<S>(&self, body: S, options: &AddOptions) -> Result<Added, StoreError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(body))
            .file_name("content")
            .mime_str("application/octet-stream")
            .map_err(|e| StoreError::failed(StoreKind::Kubo, e))?;
        let form = reqwest::multipart::Form::new().part("file", part);
        let request = self
            .http
            .post(format!("{}/add", self.rpc))
            .query(&[
                ("cid-version", "1"),
                ("raw-leaves", "true"),
                // Blocks this small live inside their CID (identity hash):
                // no peer has to fetch them, and an empty block cannot be
                // fetched over bitswap at all.
                ("inline", "true"),
                ("inline-limit", INLINE_LIMIT),
                ("chunker", options.chunker.as_str()),
                ("pin", "false"),
                ("quieter", "true"),
                ("progress", "false"),
            ])
            .multipart(form);
        self.guard
            .run_within("add", self.transfer_timeout, async {
                let response = request.send().await.map_err(transport_error)?;
                let body = checked(response, "add")
                    .await?
                    .text()
                    .await
                    .map_err(transport_error)?;
                // One JSON object per line; the last one is the root.
                let last = body
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                let answer: AddAnswer = serde_json::from_str(last).map_err(|e| {
                    StoreError::failed(StoreKind::Kubo, format!("unexpected add answer: {e}"))
                })?;
                Ok(Added {
                    cid: answer.hash,
                    dag_bytes: answer.size.parse().unwrap_or(0),
                })
            })
            .await
    }

    /// Imports the CAR `body` streams (its blocks, no pin: pins belong to
    /// the Cluster). The inner `Err` is Kubo's reason for refusing the CAR
    /// itself (truncated, malformed); the outer one a failure to reach Kubo.
    pub async fn import_car<S>(&self, body: S) -> Result<Result<(), String>, StoreError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(body))
            .file_name("upload.car")
            .mime_str("application/vnd.ipld.car")
            .map_err(|e| StoreError::failed(StoreKind::Kubo, e))?;
        let form = reqwest::multipart::Form::new().part("file", part);
        let request = self
            .http
            .post(format!("{}/dag/import", self.rpc))
            .query(&[("pin-roots", "false")])
            .multipart(form);
        self.guard
            .run_within("dag_import", self.transfer_timeout, async {
                let response = request.send().await.map_err(transport_error)?;
                let status = response.status();
                let body = response.text().await.map_err(transport_error)?;
                if status.is_server_error() {
                    // Kubo answers 500 with its reason when the CAR does not read.
                    let reason = serde_json::from_str::<ErrorAnswer>(&body)
                        .map(|e| e.message)
                        .unwrap_or(body);
                    return Ok(Err(reason));
                }
                if !status.is_success() {
                    return Err(StoreError::failed(
                        StoreKind::Kubo,
                        format!("dag/import answered {status}: {body}"),
                    ));
                }
                Ok(Ok(()))
            })
            .await
    }

    /// Whether this node holds every block under `cid`, looking only at
    /// what it has (`dag/stat` offline): their bytes, or the first missing.
    pub async fn check_dag(&self, cid: &str, within: Duration) -> Result<DagCheck, StoreError> {
        let request = self.http.post(format!("{}/dag/stat", self.rpc)).query(&[
            ("arg", cid),
            ("offline", "true"),
            ("progress", "false"),
        ]);
        self.guard
            .run_within("dag_stat", within, async {
                let response = request.send().await.map_err(transport_error)?;
                let status = response.status();
                let body = response.text().await.map_err(transport_error)?;
                if status.is_success() {
                    let stat: DagStat = serde_json::from_str(&body).map_err(|e| {
                        StoreError::failed(
                            StoreKind::Kubo,
                            format!("unexpected dag/stat answer: {e}"),
                        )
                    })?;
                    return Ok(DagCheck::Complete {
                        bytes: stat.total_size,
                    });
                }
                let message = serde_json::from_str::<ErrorAnswer>(&body)
                    .map(|e| e.message)
                    .unwrap_or(body);
                match message.rsplit_once("could not find ") {
                    Some((_, missing)) => Ok(DagCheck::Missing(missing.trim().to_owned())),
                    None => Err(StoreError::failed(
                        StoreKind::Kubo,
                        format!("dag/stat answered {status}: {message}"),
                    )),
                }
            })
            .await
    }

    /// Stores every block `blocks` yields (each whole, in one multipart
    /// request that streams as they come) with codec `codec` (`raw`,
    /// `dag-pb`) and no local pin; the CIDs Kubo gave them, in order. An
    /// error from `blocks` aborts the request.
    pub async fn put_blocks<S>(&self, blocks: S, codec: &str) -> Result<Vec<String>, StoreError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        const BOUNDARY: &str = "sgw-block-boundary-5b0c1e7a";
        let opening = Bytes::from(format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"data\"; filename=\"block\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        ));
        let parts = blocks.map_ok(move |block| {
            futures_util::stream::iter([
                Ok::<_, std::io::Error>(opening.clone()),
                Ok(block),
                Ok(Bytes::from_static(b"\r\n")),
            ])
        });
        let body = parts.try_flatten().chain(futures_util::stream::once(async {
            Ok(Bytes::from(format!("--{BOUNDARY}--\r\n")))
        }));
        let request = self
            .http
            .post(format!("{}/block/put", self.rpc))
            .query(&[
                ("cid-codec", codec),
                ("mhtype", "sha2-256"),
                ("pin", "false"),
            ])
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(reqwest::Body::wrap_stream(body));
        self.guard
            .run_within("block_put", self.transfer_timeout, async {
                let response = request.send().await.map_err(transport_error)?;
                let body = checked(response, "block/put")
                    .await?
                    .text()
                    .await
                    .map_err(transport_error)?;
                body.lines()
                    .filter(|line| !line.trim().is_empty())
                    .map(|line| {
                        serde_json::from_str::<BlockAnswer>(line)
                            .map(|answer| answer.key)
                            .map_err(|e| {
                                StoreError::failed(
                                    StoreKind::Kubo,
                                    format!("unexpected block/put answer: {e}"),
                                )
                            })
                    })
                    .collect()
            })
            .await
    }

    /// A verifiable answer (a raw block, a CAR) for `path` (a CID, maybe
    /// with a path under it) from this node's HTTP gateway, asked with
    /// `accept` and `query`; `None` when the path names nothing.
    pub async fn read_verifiable(
        &self,
        path: &str,
        accept: &str,
        query: &[(&str, String)],
    ) -> Result<Option<Verifiable>, StoreError> {
        let request = self
            .http
            .get(self.content_url(path)?)
            .header(reqwest::header::ACCEPT, accept)
            .query(query);
        let response = self
            .guard
            .run("read_verifiable", async {
                let response = request.send().await.map_err(transport_error)?;
                match response.status() {
                    reqwest::StatusCode::NOT_FOUND => Ok(None),
                    // The request's parameters (an entity-bytes range, say)
                    // do not fit the DAG: the gateway's reason is the caller's.
                    reqwest::StatusCode::BAD_REQUEST => {
                        let reason = response.text().await.map_err(transport_error)?;
                        Err(StoreError::InvalidValue {
                            store: StoreKind::Kubo,
                            reason: reason.trim().chars().take(300).collect(),
                        })
                    }
                    _ => checked(response, "read_verifiable").await.map(Some),
                }
            })
            .await?;
        let Some(response) = response else {
            return Ok(None);
        };
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(Some(Verifiable {
            content_type: header(reqwest::header::CONTENT_TYPE)
                .unwrap_or_else(|| accept.to_owned()),
            etag: header(reqwest::header::ETAG),
            body: Box::pin(response.bytes_stream().map_err(transport_error)),
        }))
    }

    /// Streams the bytes of `cid` in `range` (inclusive; all when `None`)
    /// from this node's HTTP gateway, which reads only the blocks the range
    /// covers, several times faster than the RPC's `cat`.
    pub async fn read(
        &self,
        path: &str,
        range: Option<(u64, u64)>,
    ) -> Result<ContentStream, StoreError> {
        let mut request = self.http.get(self.content_url(path)?);
        if let Some((start, end)) = range {
            request = request.header(reqwest::header::RANGE, format!("bytes={start}-{end}"));
        }
        // Only the wait for the response head is bounded here; the body
        // streams for as long as the client reads it.
        let response = self
            .guard
            .run("read", async {
                let response = request.send().await.map_err(transport_error)?;
                checked(response, "read").await
            })
            .await?;
        Ok(Box::pin(response.bytes_stream().map_err(transport_error)))
    }

    /// The bytes of `cid` as a UnixFS file (what a download sends), or the
    /// bytes of its whole DAG for a directory or other data. Fetches from
    /// the network what this node lacks, within the call bound.
    pub async fn content_size(&self, cid: &str) -> Result<ContentSize, StoreError> {
        self.guard
            .run("content_size", async {
                let path = format!("/ipfs/{cid}");
                let stat: FilesStat = self.call_json("files/stat", &[("arg", &path)]).await?;
                Ok(if stat.kind == "file" {
                    ContentSize::File(stat.size)
                } else {
                    ContentSize::Tree(stat.cumulative_size)
                })
            })
            .await
    }

    /// The node's gateway URL of `/ipfs/{path}`, each segment
    /// percent-encoded: a path may hold any character.
    fn content_url(&self, path: &str) -> Result<reqwest::Url, StoreError> {
        let mut url = reqwest::Url::parse(&format!("{}/ipfs/", self.content))
            .map_err(|e| StoreError::failed(StoreKind::Kubo, e))?;
        url.path_segments_mut()
            .map_err(|_| StoreError::failed(StoreKind::Kubo, "kubo.content_url has no path"))?
            .pop_if_empty()
            .extend(path.split('/'));
        Ok(url)
    }

    /// The entries of the folder at `/ipfs/{path}`.
    pub async fn list(&self, path: &str) -> Result<Vec<ListedEntry>, StoreError> {
        self.guard
            .run("ls", async {
                let path = format!("/ipfs/{path}");
                let answer: LsAnswer = self
                    .call_json(
                        "ls",
                        &[
                            ("arg", &path),
                            ("size", "true"),
                            ("resolve-type", "true"),
                            ("stream", "false"),
                        ],
                    )
                    .await?;
                Ok(answer
                    .objects
                    .into_iter()
                    .flat_map(|object| object.links)
                    .map(|link| ListedEntry {
                        name: link.name,
                        cid: link.hash,
                        size: link.size,
                        // UnixFS types: 1 a directory, 5 a sharded one.
                        folder: matches!(link.kind, 1 | 5),
                    })
                    .collect())
            })
            .await
    }

    pub async fn health(&self) -> Result<HealthDetail, StoreError> {
        self.guard
            .run("health", async {
                let answer: VersionAnswer = self.call_json("version", &[]).await?;
                Ok(HealthDetail {
                    version: Some(answer.version),
                    peers: None,
                })
            })
            .await
    }

    async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        command: &str,
        query: &[(&str, &str)],
    ) -> Result<T, StoreError> {
        let response = self
            .http
            .post(format!("{}/{command}", self.rpc))
            .query(query)
            .send()
            .await
            .map_err(transport_error)?;
        let body = checked(response, command)
            .await?
            .bytes()
            .await
            .map_err(transport_error)?;
        serde_json::from_slice(&body).map_err(|e| {
            StoreError::failed(StoreKind::Kubo, format!("unexpected {command} answer: {e}"))
        })
    }
}

/// The response when Kubo answered success; its error message otherwise.
async fn checked(
    response: reqwest::Response,
    command: &str,
) -> Result<reqwest::Response, StoreError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await.map_err(transport_error)?;
    let message = serde_json::from_slice::<ErrorAnswer>(&body)
        .map(|e| e.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
    Err(StoreError::failed(
        StoreKind::Kubo,
        format!("{command} answered {status}: {message}"),
    ))
}

fn transport_error(error: reqwest::Error) -> StoreError {
    StoreError::unavailable(StoreKind::Kubo, error)
}

//! IPFS Cluster, through its REST API. Every pin goes through here so the
//! Cluster decides replication.

use std::sync::Arc;

use serde::Deserialize;

use super::{CallGuard, HealthDetail, StoreError, StoreKind};
use crate::config::ClusterSettings;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Cluster {
    http: reqwest::Client,
    base: String,
    guard: CallGuard,
}

/// The parts of a peer's identity the gateway reads.
#[derive(Debug, Deserialize)]
struct PeerIdentity {
    #[serde(default)]
    version: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    ipfs: Option<PeerIpfs>,
}

#[derive(Debug, Default, Deserialize)]
struct PeerIpfs {
    /// `null` while the peer's IPFS node is down.
    #[serde(default)]
    addresses: Option<Vec<String>>,
}

/// Where a pin stands on each Cluster peer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PinStatus {
    pub allocations: Vec<String>,
    pub peers: Vec<PeerPinStatus>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerPinStatus {
    pub peer_id: String,
    pub peer_name: String,
    /// The Cluster's word: pinned, pinning, pin_queued, pin_error, unpinned, remote, ...
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
}

impl PinStatus {
    pub fn pinned_peers(&self) -> usize {
        self.peers.iter().filter(|p| p.status == "pinned").count()
    }

    pub fn has_errors(&self) -> bool {
        self.peers.iter().any(|p| p.status.ends_with("error"))
    }

    /// Some peer has started fetching the content (or holds it).
    pub fn fetching(&self) -> bool {
        self.peers
            .iter()
            .any(|p| p.status == "pinning" || p.status == "pinned")
    }

    /// The first error a peer reports.
    pub fn first_error(&self) -> Option<&str> {
        self.peers
            .iter()
            .find(|p| p.status.ends_with("error"))
            .map(|p| p.error.as_str())
    }
}

/// A CID the pin set does not hold (never pinned, or unpinned a moment
/// ago while a re-pin is on its way) comes back with `null` allocations:
/// it reads as allocated to nobody, not as a broken answer.
#[derive(Deserialize)]
struct GlobalPinInfo {
    #[serde(default, deserialize_with = "null_as_empty")]
    allocations: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    peer_map: std::collections::BTreeMap<String, PeerPinInfo>,
}

/// The Cluster's Go encoder writes an empty list or map as `null`.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct PeerPinInfo {
    #[serde(default)]
    peername: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    error: String,
}

impl From<GlobalPinInfo> for PinStatus {
    fn from(info: GlobalPinInfo) -> Self {
        Self {
            allocations: info.allocations,
            peers: info
                .peer_map
                .into_iter()
                .map(|(peer_id, peer)| PeerPinStatus {
                    peer_id,
                    peer_name: peer.peername,
                    status: peer.status,
                    error: peer.error,
                })
                .collect(),
        }
    }
}

/// A pin of the Cluster's pin set.
#[derive(Debug, Clone)]
pub struct NamedPin {
    pub cid: String,
    pub made_at: time::OffsetDateTime,
}

#[derive(Deserialize)]
struct ListedPin {
    /// A CID string, or `{"/": cid}` in some versions.
    cid: serde_json::Value,
    #[serde(default)]
    name: String,
    #[serde(default)]
    timestamp: String,
}

/// A pin request: how many peers must and may hold the content.
#[derive(Debug, Clone)]
pub struct PinRequest<'a> {
    pub cid: &'a str,
    pub name: &'a str,
    pub replication_min: i32,
    pub replication_max: i32,
    /// Multiaddrs of peers holding the content, which the Cluster's IPFS
    /// nodes connect to before fetching.
    pub origins: &'a [String],
}

impl Cluster {
    pub fn new(settings: &ClusterSettings, metrics: Arc<Metrics>) -> Result<Self, StoreError> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.timeout())
            .timeout(settings.timeout())
            .build()
            .map_err(|e| StoreError::failed(StoreKind::Cluster, e))?;
        Ok(Self {
            http,
            base: settings.url.trim_end_matches('/').to_owned(),
            guard: CallGuard::new(StoreKind::Cluster, settings.timeout(), metrics),
        })
    }

    /// This peer's version and how many Cluster peers answer.
    pub async fn health(&self) -> Result<HealthDetail, StoreError> {
        self.guard
            .run("health", async {
                let identity: PeerIdentity = self.get_json("/id").await?;
                let peers_body = self.get_text("/peers").await?;
                let peers = parse_json_stream::<PeerIdentity>(&peers_body)?
                    .iter()
                    .filter(|peer| peer.error.is_empty())
                    .count();
                Ok(HealthDetail {
                    version: Some(identity.version),
                    peers: Some(peers),
                })
            })
            .await
    }

    /// Asks the Cluster to pin `cid`; it picks the peers and replicates.
    pub async fn pin(&self, pin: &PinRequest<'_>) -> Result<(), StoreError> {
        let min = pin.replication_min.to_string();
        let max = pin.replication_max.to_string();
        let origins = pin.origins.join(",");
        let mut query = vec![
            ("replication-min", min.as_str()),
            ("replication-max", max.as_str()),
            ("name", pin.name),
        ];
        if !origins.is_empty() {
            query.push(("origins", origins.as_str()));
        }
        let request = self
            .http
            .post(format!("{}/pins/{}", self.base, pin.cid))
            .query(&query);
        self.guard
            .run("pin", async { self.send(request, "pin").await.map(drop) })
            .await
    }

    /// Removes the pin; a CID the Cluster does not know is already unpinned.
    pub async fn unpin(&self, cid: &str) -> Result<(), StoreError> {
        let request = self.http.delete(format!("{}/pins/{cid}", self.base));
        self.guard
            .run("unpin", async {
                match self.send(request, "unpin").await {
                    Ok(_) => Ok(()),
                    Err(StoreError::Failed { reason, .. }) if reason.contains("404") => Ok(()),
                    Err(other) => Err(other),
                }
            })
            .await
    }

    /// The Cluster's pins whose name starts with `prefix`, with when each
    /// was made.
    pub async fn pins_named(&self, prefix: &str) -> Result<Vec<NamedPin>, StoreError> {
        self.guard
            .run("list_pins", async {
                let body = self.get_text("/allocations?filter=pin").await?;
                Ok(parse_json_stream::<ListedPin>(&body)?
                    .into_iter()
                    .filter(|pin| pin.name.starts_with(prefix))
                    .filter_map(|pin| {
                        let cid = match pin.cid {
                            serde_json::Value::String(cid) => cid,
                            serde_json::Value::Object(mut link) => match link.remove("/") {
                                Some(serde_json::Value::String(cid)) => cid,
                                _ => return None,
                            },
                            _ => return None,
                        };
                        let made_at = time::OffsetDateTime::parse(
                            &pin.timestamp,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .ok()?;
                        Some(NamedPin { cid, made_at })
                    })
                    .collect())
            })
            .await
    }

    /// The multiaddrs of the IPFS nodes behind the Cluster's live peers:
    /// where pinned content can be fetched from.
    pub async fn ipfs_addresses(&self) -> Result<Vec<String>, StoreError> {
        self.guard
            .run("peers", async {
                let body = self.get_text("/peers").await?;
                Ok(parse_json_stream::<PeerIdentity>(&body)?
                    .into_iter()
                    .filter(|peer| peer.error.is_empty())
                    .flat_map(|peer| {
                        peer.ipfs
                            .and_then(|ipfs| ipfs.addresses)
                            .unwrap_or_default()
                    })
                    .collect())
            })
            .await
    }

    /// The pin's state on every peer, as the Cluster sees it now.
    pub async fn pin_status(&self, cid: &str) -> Result<PinStatus, StoreError> {
        self.guard
            .run("pin_status", async {
                let info: GlobalPinInfo = self.get_json(&format!("/pins/{cid}")).await?;
                Ok(info.into())
            })
            .await
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<String, StoreError> {
        let response = request.send().await.map_err(transport_error)?;
        answer_body(response, what).await
    }

    async fn get_text(&self, path: &str) -> Result<String, StoreError> {
        let request = self.http.get(format!("{}{}", self.base, path));
        self.send(request, path).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, StoreError> {
        let body = self.get_text(path).await?;
        serde_json::from_str(&body).map_err(|e| {
            StoreError::failed(StoreKind::Cluster, format!("unexpected {path} answer: {e}"))
        })
    }
}

/// The Cluster streams lists as JSON objects one after another; older
/// versions answer a JSON array. Both parse here.
fn parse_json_stream<T: serde::de::DeserializeOwned>(body: &str) -> Result<Vec<T>, StoreError> {
    let invalid = |e: serde_json::Error| {
        StoreError::failed(StoreKind::Cluster, format!("unexpected answer: {e}"))
    };
    if body.trim_start().starts_with('[') {
        return serde_json::from_str(body).map_err(invalid);
    }
    serde_json::Deserializer::from_str(body)
        .into_iter::<T>()
        .collect::<Result<Vec<T>, _>>()
        .map_err(invalid)
}

/// The body of a successful answer. A 5xx means the Cluster cannot serve the
/// request now (for example, too few peers to meet a replication factor
/// while peers rejoin), which a retry may fix: unavailable. Other errors are
/// refusals of the request itself.
async fn answer_body(response: reqwest::Response, what: &str) -> Result<String, StoreError> {
    let status = response.status();
    let body = response.text().await.map_err(transport_error)?;
    if status.is_success() {
        return Ok(body);
    }
    let reason = format!("{what} answered {status}: {}", body.trim());
    if status.is_server_error() {
        Err(StoreError::unavailable(StoreKind::Cluster, reason))
    } else {
        Err(StoreError::failed(StoreKind::Cluster, reason))
    }
}

fn transport_error(error: reqwest::Error) -> StoreError {
    StoreError::unavailable(StoreKind::Cluster, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_streamed_and_array_lists() {
        let streamed = "{\"version\":\"1.1.6\"}\n{\"version\":\"1.1.6\",\"error\":\"down\"}\n";
        let peers: Vec<PeerIdentity> = parse_json_stream(streamed).unwrap();
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[1].error, "down");
        let array = "[{\"version\":\"1.0.0\"}]";
        let peers: Vec<PeerIdentity> = parse_json_stream(array).unwrap();
        assert_eq!(peers[0].version, "1.0.0");
    }

    #[test]
    fn a_peer_whose_ipfs_node_is_down_still_reads() {
        let down = r#"{"version":"1.1.6","ipfs":{"id":"","addresses":null,"error":"down"}}"#;
        let peer: PeerIdentity = serde_json::from_str(down).unwrap();
        assert_eq!(peer.ipfs.and_then(|ipfs| ipfs.addresses), None);
        let up = r#"{"version":"1.1.6","ipfs":{"addresses":["/ip4/127.0.0.1/tcp/1"]}}"#;
        let peer: PeerIdentity = serde_json::from_str(up).unwrap();
        assert_eq!(peer.ipfs.unwrap().addresses.unwrap().len(), 1);
        let bare: PeerIdentity =
            serde_json::from_str(r#"{"version":"1.1.6","ipfs":null}"#).unwrap();
        assert!(bare.ipfs.is_none());
    }

    #[test]
    fn a_cid_outside_the_pin_set_reads_as_allocated_to_nobody() {
        let unknown = r#"{"cid":"bafkreihkusuu5iya4djmo5mwrs7ef4fvwuoov7plople5hx535wu5caimu","name":"","allocations":null,"origins":null,"metadata":null,"peer_map":{"12D3KooWA":{"peername":"p1","status":"unpinned","error":""}}}"#;
        let status: PinStatus = serde_json::from_str::<GlobalPinInfo>(unknown)
            .unwrap()
            .into();
        assert!(status.allocations.is_empty());
        assert_eq!(status.pinned_peers(), 0);
        assert_eq!(status.peers[0].status, "unpinned");
        let no_peers: PinStatus =
            serde_json::from_str::<GlobalPinInfo>(r#"{"allocations":null,"peer_map":null}"#)
                .unwrap()
                .into();
        assert!(no_peers.peers.is_empty());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_json_stream::<PeerIdentity>("{not json").is_err());
    }
}

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

    async fn get_text(&self, path: &str) -> Result<String, StoreError> {
        let response = self
            .http
            .get(format!("{}{}", self.base, path))
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let body = response.text().await.map_err(transport_error)?;
        if !status.is_success() {
            return Err(StoreError::failed(
                StoreKind::Cluster,
                format!("{path} answered {status}: {}", body.trim()),
            ));
        }
        Ok(body)
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
    fn garbage_is_an_error() {
        assert!(parse_json_stream::<PeerIdentity>("{not json").is_err());
    }
}

//! Kubo, through its RPC API (`/api/v0`, every call a POST).

use std::sync::Arc;

use serde::Deserialize;

use super::{CallGuard, HealthDetail, StoreError, StoreKind};
use crate::config::KuboSettings;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Kubo {
    http: reqwest::Client,
    rpc: String,
    guard: CallGuard,
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
        })
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
            .map_err(|e| StoreError::unavailable(StoreKind::Kubo, e))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| StoreError::unavailable(StoreKind::Kubo, e))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorAnswer>(&body)
                .map(|e| e.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            return Err(StoreError::failed(
                StoreKind::Kubo,
                format!("{command} answered {status}: {message}"),
            ));
        }
        serde_json::from_slice(&body).map_err(|e| {
            StoreError::failed(StoreKind::Kubo, format!("unexpected {command} answer: {e}"))
        })
    }
}

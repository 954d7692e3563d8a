//! The background pass that leaves no upload half-done: it rolls back
//! uploads that never committed (a crash, a lost connection) and brings the
//! stored pin states up to date with what the Cluster reports.

use std::time::Duration;

use super::{Files, FilesError};

/// Pins refreshed per pass, so one pass stays short however much is pending.
const PINS_PER_PASS: i64 = 200;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    pub abandoned_uploads: u64,
    pub pins_pinned: u64,
    pub pins_failed: u64,
}

impl Files {
    pub async fn reconcile_once(&self) -> Result<ReconcileReport, FilesError> {
        let postgres = &self.stores.postgres;
        let metrics = &self.metrics.reconciler_actions;
        let mut report = ReconcileReport::default();
        let expiry = Duration::from_secs(self.settings.pending_expiry_secs);
        report.abandoned_uploads = postgres.delete_stale_pending_files(expiry).await?;
        metrics
            .with_label_values(&["abandoned_upload"])
            .inc_by(report.abandoned_uploads);
        for (cid, replication_min) in postgres.unsettled_pins(PINS_PER_PASS).await? {
            let status = match self.stores.cluster.pin_status(&cid).await {
                Ok(status) => status,
                // The Cluster is down: try again next pass.
                Err(error) if error.is_unavailable() => break,
                Err(error) => return Err(error.into()),
            };
            let state = if status.pinned_peers() >= replication_min.max(1) as usize {
                report.pins_pinned += 1;
                metrics.with_label_values(&["pin_pinned"]).inc();
                "pinned"
            } else if status.has_errors() {
                report.pins_failed += 1;
                metrics.with_label_values(&["pin_error"]).inc();
                "error"
            } else {
                // Still on its way: touched, so the next pass looks at others first.
                "pinning"
            };
            postgres.set_pin_state(&cid, state).await?;
        }
        let counts = postgres.pin_state_counts().await?;
        for state in ["pinning", "pinned", "error"] {
            let count = counts
                .iter()
                .find(|(name, _)| name == state)
                .map_or(0, |(_, count)| *count);
            self.metrics
                .file_pins
                .with_label_values(&[state])
                .set(count);
        }
        Ok(report)
    }

    /// Runs [`Files::reconcile_once`] every `files.reconcile_interval_secs`.
    pub async fn reconcile_forever(self) {
        let mut ticks = tokio::time::interval(Duration::from_secs(
            self.settings.reconcile_interval_secs.max(1),
        ));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match self.reconcile_once().await {
                Ok(report) if report != ReconcileReport::default() => {
                    tracing::info!(?report, "reconciled files")
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "file reconciliation failed; retrying next pass")
                }
            }
        }
    }
}

//! The background pass that leaves no upload half-done: it rolls back
//! uploads that never committed (a crash, a lost connection), finishes
//! unpins that did not complete, removes gateway pins no row owns, and
//! brings the stored pin states up to date with what the Cluster reports.

use std::time::Duration;

use super::{Files, FilesError, PinState, PIN_NAME_PREFIX};

/// Rows looked at per kind and pass, so one pass stays short however much
/// is pending.
const ROWS_PER_PASS: i64 = 200;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    pub abandoned_uploads: u64,
    pub unpins_finished: u64,
    pub orphan_pins_removed: u64,
    pub pins_pinned: u64,
    pub pins_failed: u64,
    pub expired_uploads: u64,
    /// Pinned CIDs of pin requests whose size was recorded.
    pub pins_sized: u64,
}

impl Files {
    pub async fn reconcile_once(&self) -> Result<ReconcileReport, FilesError> {
        let postgres = &self.stores.postgres;
        let metrics = &self.metrics.reconciler_actions;
        let mut report = ReconcileReport {
            expired_uploads: self.expire_tus_uploads(ROWS_PER_PASS).await?,
            ..ReconcileReport::default()
        };
        metrics
            .with_label_values(&["expired_upload"])
            .inc_by(report.expired_uploads);

        let expiry = Duration::from_secs(self.settings.pending_expiry_secs);
        for pending in postgres.stale_pending_files(expiry, ROWS_PER_PASS).await? {
            self.roll_back(pending).await;
            report.abandoned_uploads += 1;
        }
        metrics
            .with_label_values(&["abandoned_upload"])
            .inc_by(report.abandoned_uploads);

        // An unpin is normally finished by the request that started it; one
        // still pending after a pass's interval was interrupted.
        let grace = Duration::from_secs(self.settings.reconcile_interval_secs.max(1));
        for cid in postgres.blobs_to_unpin(grace, ROWS_PER_PASS).await? {
            self.unpin(&cid).await;
            report.unpins_finished += 1;
        }
        metrics
            .with_label_values(&["unpin_finished"])
            .inc_by(report.unpins_finished);

        if self.orphan_sweep_due() {
            report.orphan_pins_removed = self.remove_orphan_pins().await?;
        }
        metrics
            .with_label_values(&["orphan_pin_removed"])
            .inc_by(report.orphan_pins_removed);

        for (cid, replication_min) in postgres.unsettled_pins(ROWS_PER_PASS).await? {
            let status = match self.stores.cluster.pin_status(&cid).await {
                Ok(status) => status,
                // The Cluster is down: try again next pass.
                Err(error) if error.is_unavailable() => break,
                // It refused this one CID; the others may still be fine.
                Err(error) => {
                    tracing::warn!(%error, %cid, "pin status unavailable");
                    postgres.set_pin_state(&cid, PinState::Error).await?;
                    report.pins_failed += 1;
                    continue;
                }
            };
            let state = if status.pinned_peers() >= replication_min.max(1) as usize {
                report.pins_pinned += 1;
                metrics.with_label_values(&["pin_pinned"]).inc();
                PinState::Pinned
            } else if status.has_errors() {
                report.pins_failed += 1;
                metrics.with_label_values(&["pin_error"]).inc();
                PinState::Error
            } else {
                // Still on its way: touched, so the next pass looks at others first.
                PinState::Pinning
            };
            postgres
                .set_pin_progress(&cid, state, status.fetching())
                .await?;
        }
        report.pins_sized = self.size_pinned_requests(ROWS_PER_PASS).await?;
        let counts = postgres.pin_state_counts().await?;
        for state in ["pinning", "pinned", "error", "unpinning"] {
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

    /// Whether to look for orphan pins this pass: listing every pin of the
    /// Cluster is not free, and orphans only matter once older than the
    /// grace, so the sweep runs about four times per grace period.
    fn orphan_sweep_due(&self) -> bool {
        let now = time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
        let every = self.settings.orphan_pin_grace_secs / 4;
        let last = self
            .last_orphan_sweep
            .load(std::sync::atomic::Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < every {
            return false;
        }
        self.last_orphan_sweep
            .store(now, std::sync::atomic::Ordering::Relaxed);
        true
    }

    /// Unpins the gateway's pins (known by their name) that no blob row
    /// owns and that are older than `files.orphan_pin_grace_secs`: left by a
    /// pin whose answer was lost, or by an operator. Younger ones may
    /// belong to an upload whose claim is being made.
    async fn remove_orphan_pins(&self) -> Result<u64, FilesError> {
        let grace = time::Duration::seconds(
            i64::try_from(self.settings.orphan_pin_grace_secs).unwrap_or(i64::MAX),
        );
        let pins = match self.stores.cluster.pins_named(PIN_NAME_PREFIX).await {
            Ok(pins) => pins,
            Err(error) if error.is_unavailable() => return Ok(0),
            Err(error) => return Err(error.into()),
        };
        let now = time::OffsetDateTime::now_utc();
        let old: Vec<String> = pins
            .into_iter()
            .filter(|pin| now - pin.made_at > grace)
            .map(|pin| pin.cid)
            .collect();
        let mut removed = 0;
        for batch in old.chunks(ROWS_PER_PASS as usize) {
            let known = self.stores.postgres.known_blobs(batch).await?;
            for cid in batch.iter().filter(|cid| !known.contains(*cid)) {
                match self.stores.cluster.unpin(cid).await {
                    Ok(()) => {
                        tracing::info!(%cid, "removed a gateway pin no file owns");
                        removed += 1;
                        let claimed = self.stores.postgres.claimed_replication(cid).await?;
                        self.pin_again(cid, claimed).await;
                    }
                    Err(error) => tracing::warn!(%error, %cid, "orphan pin not removed"),
                }
            }
        }
        Ok(removed)
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

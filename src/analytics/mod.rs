//! Analytics events: accepted onto a local spool, shipped to ClickHouse in
//! batches, never dropped once accepted.
//!
//! Ingested events and the gateway's own activity (file uploads and
//! downloads) take the same path. An ingested batch is answered only once
//! it is durable in the spool; the gateway's own events are queued without
//! waiting, so recording them never slows the request they describe.

pub mod events;
pub mod rejected;
mod request_log;
mod shipping;
mod spool;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use uuid::Uuid;

pub use events::Rejection;
pub use request_log::RequestRow;
pub use spool::SpoolError;

use crate::admission::{HeldBytes, Overloaded};
use crate::auth::TenantId;
use crate::config::AnalyticsSettings;
use crate::metrics::Metrics;
use crate::stores::clickhouse::ClickHouse;
use crate::stores::StoreError;
use request_log::RequestLog;
use shipping::Shipment;
use spool::Spool;

/// The tables events may be shipped to: their names go into SQL text.
const TABLES: &[&str] = &[
    "user_activity",
    "file_uploads",
    "file_downloads",
    "api_usage",
    "challenge_completions",
];

/// Times a reachable ClickHouse may refuse a batch's rows for one table
/// before they are set aside: a transient refusal (too many parts, memory)
/// passes within a few tries, a schema mismatch does not.
const REFUSALS_BEFORE_QUARANTINE: u32 = 5;

/// Bytes of an NDJSON event line besides its properties (id, type, user,
/// timestamp, field names): a longer line cannot be a valid event.
const MAX_EVENT_FRAME_BYTES: usize = 4096;
/// What a spool row adds to an event's own bytes (tenant, quoting).
const EVENT_ROW_OVERHEAD_BYTES: usize = 128;
/// Rows are expected to take a quarter more than the events they come from;
/// beyond that the batch grows, and is charged, as it goes.
const ROW_GROWTH_DIVISOR: usize = 4;
/// Room for the unfinished line of an NDJSON body.
const NDJSON_LINE_BUFFER_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Invalid(String),
    #[error("{} of the events are invalid; nothing was accepted", .0.len())]
    Rejected(Vec<Rejection>),
    #[error("{0}")]
    TooLarge(String),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
}

/// What the file statistics learn of a stored upload.
pub struct UploadEvent<'a> {
    pub tenant: &'a TenantId,
    pub owner: Option<&'a str>,
    pub cid: &'a str,
    pub size_bytes: u64,
    pub content_type: &'a str,
}

/// What the challenge statistics learn of a submission.
pub struct SubmissionEvent<'a> {
    pub tenant: &'a TenantId,
    pub challenge_id: Uuid,
    pub user_id: Uuid,
    pub submission_id: Uuid,
    pub status: &'a str,
    pub runtime_ms: Option<i32>,
}

#[derive(Clone)]
pub struct Analytics {
    spool: Spool,
    requests: Arc<RequestLog>,
    clickhouse: ClickHouse,
    settings: Arc<AnalyticsSettings>,
    metrics: Arc<Metrics>,
}

impl Analytics {
    pub fn new(
        clickhouse: ClickHouse,
        settings: &AnalyticsSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Self, SpoolError> {
        let spool = Spool::open(
            &settings.spool_dir,
            settings.spool_max_bytes,
            settings.spool_segment_bytes,
        )?;
        Ok(Self {
            spool,
            requests: Arc::new(RequestLog::new()),
            clickhouse,
            settings: Arc::new(settings.clone()),
            metrics,
        })
    }

    /// Accepts a request body of events for `tenant` (`ndjson`: one per
    /// line, else one JSON object or an array): answers their ids once they
    /// are durable. The body is checked while it is read: NDJSON is
    /// validated line by line as it arrives, and its count, size and the
    /// memory it takes (charged to `memory`, up front when the caller gave
    /// the body's `length`) are bounded throughout.
    pub async fn ingest<S, E>(
        &self,
        tenant: &TenantId,
        body: S,
        ndjson: bool,
        length: Option<u64>,
        mut memory: HeldBytes,
    ) -> Result<Vec<Uuid>, IngestError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let max_body = self.settings.max_body_bytes;
        let max_events = self.settings.max_events_per_request;
        let too_large = || {
            IngestError::TooLarge(format!(
                "the body is over the limit of {max_body} bytes (analytics.max_body_bytes); \
                 send smaller batches"
            ))
        };
        let too_many = || {
            IngestError::TooLarge(format!(
                "more than {max_events} events in one request (analytics.max_events_per_request)"
            ))
        };
        let prefix = spool::line_prefix("user_activity", spool::now_ms());
        let mut batch = events::Batch::new(
            tenant,
            self.settings.max_properties_bytes,
            OffsetDateTime::now_utc(),
            &prefix,
        );
        if let Some(length) = length {
            if length > max_body as u64 {
                return Err(too_large());
            }
            // What the request will hold, charged before the first byte is
            // read, so that parallel large bodies are admitted whole or not
            // at all, instead of each taking a part of the bound and all
            // failing: the rows (a little larger than the events they come
            // from), and for a JSON body the body itself.
            let length = length as usize;
            let rows = length + length / ROW_GROWTH_DIVISOR + NDJSON_LINE_BUFFER_BYTES;
            memory.grow_to(if ndjson { rows } else { rows + length })?;
            batch.reserve(rows);
        }
        let mut body = std::pin::pin!(body);
        let mut received = 0usize;
        let mut unread = BytesMut::new();
        let mut lines = 0usize;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                IngestError::Invalid(format!("the request body ended abnormally: {e}"))
            })?;
            received += chunk.len();
            if received > max_body {
                return Err(too_large());
            }
            let scanned = unread.len();
            unread.extend_from_slice(&chunk);
            if ndjson {
                let mut from = scanned;
                while let Some(end) = unread[from..].iter().position(|b| *b == b'\n') {
                    let line = unread.split_to(from + end + 1);
                    lines += 1;
                    batch
                        .push_line(&line[..line.len() - 1], lines)
                        .map_err(IngestError::Invalid)?;
                    if batch.len() > max_events {
                        return Err(too_many());
                    }
                    from = 0;
                }
                if unread.len() > self.settings.max_properties_bytes + MAX_EVENT_FRAME_BYTES {
                    return Err(IngestError::TooLarge(format!(
                        "line {} is longer than any valid event",
                        lines + 1
                    )));
                }
            }
            memory.grow_to(unread.capacity() + batch.held_bytes())?;
        }
        if ndjson {
            if !unread.is_empty() {
                batch
                    .push_line(&unread, lines + 1)
                    .map_err(IngestError::Invalid)?;
            }
        } else {
            let events = events::parse_body(&unread, max_events).map_err(|message| {
                if message == events::TOO_MANY_EVENTS {
                    too_many()
                } else {
                    IngestError::Invalid(message)
                }
            })?;
            memory.grow_to(
                unread.capacity()
                    + events.capacity() * std::mem::size_of::<&RawValue>()
                    + unread.len()
                    + events.len() * (prefix.len() + EVENT_ROW_OVERHEAD_BYTES),
            )?;
            for event in events {
                batch.push(event);
            }
        }
        if batch.len() > max_events {
            return Err(too_many());
        }
        if batch.is_empty() {
            return Err(IngestError::Invalid("the request holds no events".into()));
        }
        let count = batch.len() as u64;
        let (ids, lines) = batch.finish().map_err(|rejections| {
            self.count("rejected", count);
            IngestError::Rejected(rejections)
        })?;
        drop(unread);
        self.spool.append(lines, count).await?;
        self.count("accepted", count);
        Ok(ids)
    }

    pub fn file_uploaded(&self, upload: &UploadEvent<'_>) {
        let row = serde_json::json!({
            "event_id": Uuid::new_v4().to_string(),
            "tenant_id": upload.tenant.as_str(),
            "owner_id": upload.owner.unwrap_or_default(),
            "cid": upload.cid,
            "size_bytes": upload.size_bytes,
            "content_type": upload.content_type,
            "timestamp": OffsetDateTime::now_utc().unix_timestamp(),
        });
        self.record("file_uploads", &row);
    }

    pub fn file_downloaded(&self, tenant: &TenantId, cid: &str, bytes_sent: u64, partial: bool) {
        let row = serde_json::json!({
            "event_id": Uuid::new_v4().to_string(),
            "tenant_id": tenant.as_str(),
            "cid": cid,
            "bytes_sent": bytes_sent,
            "partial": u8::from(partial),
            "timestamp": OffsetDateTime::now_utc().unix_timestamp(),
        });
        self.record("file_downloads", &row);
    }

    /// A graded submission, for the challenge statistics.
    pub fn submission_recorded(&self, submission: &SubmissionEvent<'_>) {
        let row = serde_json::json!({
            "event_id": Uuid::new_v4().to_string(),
            "tenant_id": submission.tenant.as_str(),
            "challenge_id": submission.challenge_id.to_string(),
            "user_id": submission.user_id.to_string(),
            "submission_id": submission.submission_id.to_string(),
            "status": submission.status,
            "runtime_ms": submission.runtime_ms.unwrap_or(0),
            "timestamp": OffsetDateTime::now_utc().unix_timestamp(),
        });
        self.record("challenge_completions", &row);
    }

    /// One API request, for the usage statistics; buffered, see [`RequestLog`].
    pub fn api_request(&self, row: &RequestRow<'_>) {
        if let Some((lines, rows)) = self.requests.push(row) {
            self.hand_to_spool("api_usage", lines, rows);
        }
    }

    /// Moves buffered request rows to the spool every `analytics.batch_max_delay_ms`.
    pub async fn flush_requests_forever(self) {
        let period = Duration::from_millis(self.settings.batch_max_delay_ms.max(10));
        loop {
            tokio::time::sleep(period).await;
            if let Some((lines, rows)) = self.requests.take() {
                self.hand_to_spool("api_usage", lines, rows);
            }
        }
    }

    fn record(&self, table: &'static str, row: &serde_json::Value) {
        let mut line = Vec::new();
        spool::push_line(&mut line, table, spool::now_ms(), &row.to_string());
        self.hand_to_spool(table, line, 1);
    }

    fn hand_to_spool(&self, table: &'static str, lines: Vec<u8>, events: u64) {
        if self.spool.append_detached(lines, events) {
            self.count("accepted", events);
        } else {
            tracing::warn!(
                table,
                events,
                "the event spool's queue is full: activity events are dropped"
            );
            self.count("dropped", events);
        }
    }

    /// Ships spooled events to ClickHouse for as long as the gateway runs:
    /// in batches of up to `analytics.batch_rows` and
    /// `analytics.batch_max_bytes`, waiting at most
    /// `analytics.batch_max_delay_ms` for a batch to fill, and retrying a
    /// failed insert (ClickHouse down) with backoff until it succeeds.
    pub async fn ship_forever(self) {
        let max_delay = Duration::from_millis(self.settings.batch_max_delay_ms);
        let batch_rows = self.settings.batch_rows;
        let batch_max_bytes = self.settings.batch_max_bytes;
        let mut from = match self.spool.acked() {
            Ok(position) => position,
            Err(error) => {
                tracing::error!(%error, "event spool unreadable: nothing is shipped");
                return;
            }
        };
        let mut backoff = Duration::from_millis(200);
        loop {
            self.report_depth(None);
            if self.spool.pending_events() == 0 {
                self.spool.wait_for_more(from, Duration::from_secs(1)).await;
                continue;
            }
            // Let a batch fill, by rows or by time, whichever comes first.
            let deadline = tokio::time::Instant::now() + max_delay;
            while self.spool.pending_events() < batch_rows && tokio::time::Instant::now() < deadline
            {
                let durable = self.spool.durable();
                self.spool
                    .wait_for_more(durable, deadline - tokio::time::Instant::now())
                    .await;
            }
            let spool = self.spool.clone();
            let batch = match tokio::task::spawn_blocking(move || {
                spool.read_batch(from, batch_rows, batch_max_bytes)
            })
            .await
            {
                Ok(Ok(batch)) => batch,
                Ok(Err(error)) => {
                    tracing::error!(%error, "event spool unreadable; retrying");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
                Err(error) => {
                    tracing::error!(%error, "event spool reader failed; retrying");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            if batch.events == 0 {
                continue;
            }
            // Until this batch is in, what is left of it is retried:
            // nothing after it goes first, so events arrive in the order
            // accepted. A piece that times out is halved; a refused piece
            // is tried tenant by tenant, and a tenant's rows that a
            // reachable ClickHouse keeps refusing are set aside, so neither
            // one bad tenant nor one large batch holds back the rest.
            let mut shipment = Shipment::of(&batch);
            loop {
                self.report_depth(batch.oldest_accepted_ms);
                match self.ship(&mut shipment).await {
                    Ok(()) => break,
                    Err((table, error)) => {
                        tracing::warn!(%error, table, events = batch.events, retry_in_ms = backoff.as_millis() as u64,
                            "events not inserted into ClickHouse; kept in the spool");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
            let set_aside = shipment.set_aside;
            backoff = Duration::from_millis(200);
            let spool = self.spool.clone();
            let end = batch.end;
            let (events, bytes) = (batch.events, batch.bytes);
            match tokio::task::spawn_blocking(move || spool.acknowledge(end, events, bytes)).await {
                Ok(Ok(())) => {}
                // The events are in ClickHouse; if the position cannot be
                // saved they are sent again after a restart, and collapse.
                Ok(Err(error)) => tracing::error!(%error, "event spool position not saved"),
                Err(error) => tracing::error!(%error, "event spool position not saved"),
            }
            from = end;
            self.count("inserted", events.saturating_sub(set_aside));
        }
    }

    /// Inserts what is left of a shipment, piece by piece; on a failure a
    /// retry may mend, the table that failed and why, with the shipment
    /// updated to what is still left.
    async fn ship(&self, shipment: &mut Shipment) -> Result<(), (&'static str, StoreError)> {
        for (table, pieces) in &mut shipment.tables {
            let table: &'static str = table;
            while let Some(piece) = pieces.front_mut() {
                let error = match self
                    .clickhouse
                    .insert_json_rows(table, piece.rows.clone())
                    .await
                {
                    Ok(()) => {
                        pieces.pop_front();
                        continue;
                    }
                    Err(error) => error,
                };
                if error.is_timeout() && shipping::lines(&piece.rows) > 1 {
                    // Too much for one insert within the bound: halve it.
                    let (first, second) = shipping::halves(&piece.rows);
                    let split = |rows| shipping::Piece { rows, ..*piece };
                    let (first, second) = (split(first), split(second));
                    pieces.pop_front();
                    pieces.push_front(second);
                    pieces.push_front(first);
                    continue;
                }
                if error.is_unavailable() {
                    return Err((table, error));
                }
                if !piece.per_tenant {
                    let rows = piece.rows.clone();
                    pieces.pop_front();
                    for rows in shipping::by_tenant(&rows).into_iter().rev() {
                        pieces.push_front(shipping::Piece {
                            rows,
                            refusals: 0,
                            per_tenant: true,
                        });
                    }
                    continue;
                }
                piece.refusals += 1;
                if piece.refusals >= REFUSALS_BEFORE_QUARANTINE {
                    if let Some(events) = self.quarantine(table, &piece.rows).await {
                        shipment.set_aside += events;
                        pieces.pop_front();
                        continue;
                    }
                }
                return Err((table, error));
            }
        }
        Ok(())
    }

    /// Sets `table`'s `rows` aside in the spool's `rejected/` folder;
    /// answers how many events, or `None` when they could not be written
    /// (they stay queued).
    async fn quarantine(&self, table: &'static str, rows: &Bytes) -> Option<u64> {
        let events = shipping::lines(rows) as u64;
        let spool = self.spool.clone();
        let rows = rows.clone();
        match tokio::task::spawn_blocking(move || spool.quarantine(table, &rows)).await {
            Ok(Ok(path)) => {
                tracing::error!(table, events, path = %path.display(),
                    "ClickHouse keeps refusing these events; they are set aside for an operator");
                self.count("quarantined", events);
                Some(events)
            }
            Ok(Err(error)) => {
                tracing::error!(%error, table, "refused events could not be set aside; retrying");
                None
            }
            Err(error) => {
                tracing::error!(%error, table, "refused events could not be set aside; retrying");
                None
            }
        }
    }

    fn report_depth(&self, oldest_accepted_ms: Option<u64>) {
        let metrics = &self.metrics;
        metrics
            .analytics_spool_events
            .set(self.spool.pending_events() as i64);
        metrics
            .analytics_spool_bytes
            .set(self.spool.pending_bytes() as i64);
        let age = oldest_accepted_ms
            .filter(|_| self.spool.pending_events() > 0)
            .map_or(0.0, |oldest| {
                spool::now_ms().saturating_sub(oldest) as f64 / 1000.0
            });
        metrics.analytics_oldest_pending_seconds.set(age);
    }

    fn count(&self, outcome: &str, n: u64) {
        self.metrics
            .analytics_events
            .with_label_values(&[outcome])
            .inc_by(n);
    }
}

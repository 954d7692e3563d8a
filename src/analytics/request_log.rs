//! Rows of `api_usage`, one per API request, gathered in memory and handed
//! to the spool a few times a second.
//!
//! Handing each request's row to the spool on its own costs a channel send
//! and a share of an fsync per request, which the cheapest endpoints (a
//! session read, a rate-limit check) feel; a buffer under a mutex costs a
//! fraction of a microsecond. The price: a gateway that crashes loses the
//! rows of its last flush interval. Events a caller sent are never held here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;
use uuid::Uuid;

/// Past this many bytes the request that fills the buffer flushes it.
const FLUSH_BYTES: usize = 1 << 20;

pub struct RequestLog {
    lines: Mutex<Vec<u8>>,
    rows: AtomicU64,
    /// Event ids are this process's random prefix and a counter: unique
    /// without asking the OS for randomness per request.
    id_prefix: u64,
    next_id: AtomicU64,
}

/// One API request, as `api_usage` stores it.
#[derive(Serialize)]
pub struct RequestRow<'a> {
    pub tenant_id: &'a str,
    pub route: &'a str,
    pub method: &'a str,
    pub status: u16,
    pub duration_ms: u32,
    pub api_key_id: &'a str,
}

#[derive(Serialize)]
struct Line<'a> {
    event_id: Uuid,
    #[serde(flatten)]
    row: &'a RequestRow<'a>,
    timestamp: u64,
}

impl RequestLog {
    pub fn new() -> Self {
        let mut prefix = [0u8; 8];
        if getrandom::fill(&mut prefix).is_err() {
            prefix = super::spool::now_ms().to_le_bytes();
        }
        Self {
            lines: Mutex::new(Vec::new()),
            rows: AtomicU64::new(0),
            id_prefix: u64::from_le_bytes(prefix),
            next_id: AtomicU64::new(0),
        }
    }

    /// Adds `row`; answers the buffer's contents when it is due to be
    /// flushed now.
    pub fn push(&self, row: &RequestRow<'_>) -> Option<(Vec<u8>, u64)> {
        let now_ms = super::spool::now_ms();
        let line = Line {
            event_id: Uuid::from_u64_pair(
                self.id_prefix,
                self.next_id.fetch_add(1, Ordering::Relaxed),
            ),
            row,
            timestamp: now_ms / 1000,
        };
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.extend_from_slice(&super::spool::line_prefix("api_usage", now_ms));
        if serde_json::to_writer(&mut *lines, &line).is_err() {
            return None;
        }
        lines.push(b'\n');
        self.rows.fetch_add(1, Ordering::Relaxed);
        if lines.len() >= FLUSH_BYTES {
            return Some((
                std::mem::take(&mut *lines),
                self.rows.swap(0, Ordering::Relaxed),
            ));
        }
        None
    }

    /// Takes what the buffer holds.
    pub fn take(&self) -> Option<(Vec<u8>, u64)> {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.is_empty() {
            return None;
        }
        Some((
            std::mem::take(&mut *lines),
            self.rows.swap(0, Ordering::Relaxed),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: u16) -> RequestRow<'static> {
        RequestRow {
            tenant_id: "t1",
            route: "/sessions/{id}",
            method: "GET",
            status,
            duration_ms: 1,
            api_key_id: "k\"1",
        }
    }

    #[test]
    fn rows_are_spool_lines_with_distinct_ids() {
        let log = RequestLog::new();
        assert!(log.push(&row(200)).is_none());
        assert!(log.push(&row(404)).is_none());
        let (lines, rows) = log.take().unwrap();
        assert_eq!(rows, 2);
        let text = String::from_utf8(lines).unwrap();
        let parsed: Vec<serde_json::Value> = text
            .lines()
            .map(|line| {
                let json = line.splitn(3, '\t').nth(2).unwrap();
                assert!(line.starts_with("api_usage\t"));
                serde_json::from_str(json).unwrap()
            })
            .collect();
        assert_eq!(parsed[0]["status"], 200);
        assert_eq!(parsed[1]["api_key_id"], "k\"1");
        assert_eq!(parsed[0]["route"], "/sessions/{id}");
        assert_ne!(parsed[0]["event_id"], parsed[1]["event_id"]);
        assert!(log.take().is_none());
    }
}

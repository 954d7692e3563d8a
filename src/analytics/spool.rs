//! The spool: accepted events on the gateway's own disk until ClickHouse has
//! acknowledged them.
//!
//! Events are appended as lines to numbered segment files. A writer thread
//! takes every append waiting at that moment, writes them, and makes them
//! durable with one `fsync` (group commit); only then does each appender
//! hear that its events are accepted. A shipper reads the lines after the
//! acknowledged position, inserts them into ClickHouse in batches, and moves
//! the acknowledged position (itself a small file, replaced atomically) past
//! them. After a crash the gateway resumes from that position, so an insert
//! may be repeated but never skipped; the tables collapse repeats by event id.
//!
//! A line is `TABLE \t ACCEPTED_MS \t JSON_ROW \n`.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, Notify};

use super::rejected;

/// Bytes gathered into one write before the writer syncs, so a flood of
/// appends cannot hold the ones behind it for long.
const GROUP_COMMIT_BYTES: usize = 8 << 20;
/// Appends waiting for the writer before appenders are made to wait.
const QUEUE_DEPTH: usize = 4096;
const ACKED_FILE: &str = "acked";

#[derive(Debug, Clone, thiserror::Error)]
pub enum SpoolError {
    #[error("the event spool holds {pending} bytes not yet in ClickHouse, and these {adding} would pass its bound of {limit}")]
    Full {
        pending: u64,
        adding: u64,
        limit: u64,
    },
    #[error("the event spool cannot write: {0}")]
    Io(String),
    /// The spool's disk has no room left: nothing was accepted, and a
    /// retry may pass once shipping or an operator frees space.
    #[error("the event spool's disk is full")]
    DiskFull,
}

/// A failed spool write: a full disk is told apart from other failures.
fn write_error(error: std::io::Error) -> SpoolError {
    if error.kind() == std::io::ErrorKind::StorageFull || error.raw_os_error() == Some(28) {
        SpoolError::DiskFull
    } else {
        SpoolError::Io(error.to_string())
    }
}

/// A position in the spool: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// What the writer and the shipper share.
struct Shared {
    dir: PathBuf,
    /// Held open for the lock on it: one gateway per spool.
    _lock: File,
    max_bytes: u64,
    /// Everything before this is on disk and synced.
    durable: Mutex<Position>,
    /// Bytes and events durable but not yet acknowledged by ClickHouse.
    pending_bytes: AtomicU64,
    pending_events: AtomicU64,
    /// Woken when something new is durable.
    appended: Notify,
}

struct Append {
    lines: Vec<u8>,
    events: u64,
    done: Option<oneshot::Sender<Result<(), SpoolError>>>,
}

#[derive(Clone)]
pub struct Spool {
    appends: mpsc::Sender<Append>,
    shared: Arc<Shared>,
}

/// A batch read for shipping: its lines by table, and where it ends.
pub struct Batch {
    pub rows_by_table: Vec<(String, Vec<u8>)>,
    pub events: u64,
    pub bytes: u64,
    pub oldest_accepted_ms: Option<u64>,
    pub end: Position,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What comes before the row on a line for `table`.
pub fn line_prefix(table: &str, accepted_ms: u64) -> Vec<u8> {
    format!("{table}\t{accepted_ms}\t").into_bytes()
}

/// Appends one line for `table` to `buffer`.
pub fn push_line(buffer: &mut Vec<u8>, table: &str, accepted_ms: u64, row_json: &str) {
    buffer.extend_from_slice(&line_prefix(table, accepted_ms));
    buffer.extend_from_slice(row_json.as_bytes());
    buffer.push(b'\n');
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, repairs a torn last line, and
    /// starts the writer thread.
    pub fn open(dir: &Path, max_bytes: u64, segment_bytes: u64) -> Result<Self, SpoolError> {
        fs::create_dir_all(dir).map_err(io_error)?;
        let lock = File::create(dir.join("lock")).map_err(io_error)?;
        lock.try_lock().map_err(|_| {
            SpoolError::Io(format!(
                "{} is in use by another gateway; give each its own analytics.spool_dir",
                dir.display()
            ))
        })?;
        let acked = read_acked(dir)?;
        let mut segments = list_segments(dir)?;
        if segments.is_empty() {
            File::create(segment_path(dir, acked.segment.max(1))).map_err(io_error)?;
            segments.push(acked.segment.max(1));
        }
        let last = *segments.last().expect("at least one segment");
        let end = repair_tail(&segment_path(dir, last))?;
        let durable = Position {
            segment: last,
            offset: end,
        };
        let start = if acked.segment == 0 {
            Position {
                segment: segments[0],
                offset: 0,
            }
        } else {
            acked
        };
        let (pending_bytes, pending_events) = measure(dir, start, durable)?;
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            _lock: lock,
            max_bytes,
            durable: Mutex::new(durable),
            pending_bytes: AtomicU64::new(pending_bytes),
            pending_events: AtomicU64::new(pending_events),
            appended: Notify::new(),
        });
        let (appends, receiver) = mpsc::channel(QUEUE_DEPTH);
        let writer_shared = shared.clone();
        std::thread::Builder::new()
            .name("event-spool-writer".into())
            .spawn(move || write_forever(writer_shared, receiver, durable, segment_bytes))
            .map_err(io_error)?;
        Ok(Self { appends, shared })
    }

    /// Appends `lines` (holding `events` events) and returns once they are
    /// durable, or why they were not accepted.
    pub async fn append(&self, lines: Vec<u8>, events: u64) -> Result<(), SpoolError> {
        let (done, answer) = oneshot::channel();
        self.appends
            .send(Append {
                lines,
                events,
                done: Some(done),
            })
            .await
            .map_err(|_| SpoolError::Io("the spool writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| SpoolError::Io("the spool writer has stopped".into()))?
    }

    /// Appends without waiting for the sync, for the gateway's own events:
    /// recording them must not slow the request they describe. False when
    /// the writer's queue is full and the events were not taken.
    pub fn append_detached(&self, lines: Vec<u8>, events: u64) -> bool {
        self.appends
            .try_send(Append {
                lines,
                events,
                done: None,
            })
            .is_ok()
    }

    pub fn pending_bytes(&self) -> u64 {
        self.shared.pending_bytes.load(Ordering::Relaxed)
    }

    pub fn pending_events(&self) -> u64 {
        self.shared.pending_events.load(Ordering::Relaxed)
    }

    /// Waits until something is durable past `from`, or `timeout` passes.
    pub async fn wait_for_more(&self, from: Position, timeout: Duration) {
        let appended = self.shared.appended.notified();
        if self.durable() > from {
            return;
        }
        let _ = tokio::time::timeout(timeout, appended).await;
    }

    pub fn durable(&self) -> Position {
        *self
            .shared
            .durable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Where shipping resumes: the acknowledged position.
    pub fn acked(&self) -> Result<Position, SpoolError> {
        let acked = read_acked(&self.shared.dir)?;
        if acked.segment == 0 {
            let first = list_segments(&self.shared.dir)?
                .first()
                .copied()
                .unwrap_or(1);
            return Ok(Position {
                segment: first,
                offset: 0,
            });
        }
        Ok(acked)
    }

    /// Reads up to `max_events` durable events from `from`, and no more
    /// than `max_bytes` of them (but always one). Blocking file reads: call
    /// from a blocking context.
    pub fn read_batch(
        &self,
        from: Position,
        max_events: u64,
        max_bytes: u64,
    ) -> Result<Batch, SpoolError> {
        let durable = self.durable();
        let mut position = from;
        let mut by_table: Vec<(String, Vec<u8>)> = Vec::new();
        let mut events = 0;
        let mut bytes = 0;
        let mut oldest = None;
        while position < durable && events < max_events && bytes < max_bytes {
            let path = segment_path(&self.shared.dir, position.segment);
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(e)
                    if e.kind() == std::io::ErrorKind::NotFound
                        && position.segment < durable.segment =>
                {
                    // Only someone removing it by hand loses a segment:
                    // its events are gone, the ones after it still ship.
                    tracing::error!(
                        segment = %path.display(),
                        "an event spool segment is missing; its events are lost"
                    );
                    position = Position {
                        segment: position.segment + 1,
                        offset: 0,
                    };
                    continue;
                }
                Err(e) => return Err(io_error(e)),
            };
            file.seek(SeekFrom::Start(position.offset))
                .map_err(io_error)?;
            let limit = if position.segment == durable.segment {
                durable.offset - position.offset
            } else {
                u64::MAX
            };
            let mut reader = BufReader::new(file.take(limit));
            let mut line = Vec::new();
            loop {
                if events >= max_events || bytes >= max_bytes {
                    break;
                }
                line.clear();
                let read = reader.read_until(b'\n', &mut line).map_err(io_error)?;
                if read == 0 || line.last() != Some(&b'\n') {
                    break;
                }
                position.offset += read as u64;
                bytes += read as u64;
                events += 1;
                let (table, accepted, row) = split_line(&line)?;
                oldest = Some(oldest.map_or(accepted, |o: u64| o.min(accepted)));
                match by_table.iter_mut().find(|(t, _)| t == table) {
                    Some((_, rows)) => rows.extend_from_slice(row),
                    None => by_table.push((table.to_owned(), row.to_vec())),
                }
            }
            if position.segment < durable.segment && events < max_events && bytes < max_bytes {
                position = Position {
                    segment: position.segment + 1,
                    offset: 0,
                };
            } else {
                break;
            }
        }
        Ok(Batch {
            rows_by_table: by_table,
            events,
            bytes,
            oldest_accepted_ms: oldest,
            end: position,
        })
    }

    /// Keeps `rows` of `table` that ClickHouse refuses, fsynced, in the
    /// spool's `rejected/` folder, where an operator can inspect and replay
    /// them; answers the file written.
    pub fn quarantine(&self, table: &str, rows: &[u8]) -> Result<PathBuf, SpoolError> {
        let folder = self.shared.dir.join(rejected::FOLDER);
        fs::create_dir_all(&folder).map_err(io_error)?;
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed) % 1_000_000;
        let path = folder.join(rejected::file_name(now_ms(), sequence, table));
        // Written whole under a temporary name, so a replay never reads
        // half a file.
        let temporary = path.with_extension("tmp");
        let mut file = File::create(&temporary).map_err(io_error)?;
        file.write_all(rows).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        fs::rename(&temporary, &path).map_err(io_error)?;
        File::open(&folder)
            .and_then(|d| d.sync_all())
            .map_err(io_error)?;
        Ok(path)
    }

    /// Records that ClickHouse holds everything before `to`, and removes the
    /// segments wholly before it.
    pub fn acknowledge(&self, to: Position, events: u64, bytes: u64) -> Result<(), SpoolError> {
        let dir = &self.shared.dir;
        let temporary = dir.join(format!("{ACKED_FILE}.tmp"));
        {
            let mut file = File::create(&temporary).map_err(io_error)?;
            writeln!(file, "{} {}", to.segment, to.offset).map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
        }
        fs::rename(&temporary, dir.join(ACKED_FILE)).map_err(io_error)?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error)?;
        self.shared
            .pending_bytes
            .fetch_sub(bytes.min(self.pending_bytes()), Ordering::Relaxed);
        self.shared
            .pending_events
            .fetch_sub(events.min(self.pending_events()), Ordering::Relaxed);
        for segment in list_segments(dir)? {
            if segment < to.segment {
                fs::remove_file(segment_path(dir, segment)).map_err(io_error)?;
            }
        }
        Ok(())
    }
}

fn write_forever(
    shared: Arc<Shared>,
    mut appends: mpsc::Receiver<Append>,
    mut position: Position,
    segment_bytes: u64,
) {
    let open = |segment: u64| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(&shared.dir, segment))
    };
    let mut file = match open(position.segment) {
        Ok(file) => file,
        Err(error) => {
            tracing::error!(%error, "event spool segment cannot be opened");
            return;
        }
    };
    while let Some(first) = appends.blocking_recv() {
        let mut group = vec![first];
        let mut size = group[0].lines.len();
        while size < GROUP_COMMIT_BYTES {
            match appends.try_recv() {
                Ok(next) => {
                    size += next.lines.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let mut taken = Vec::new();
        let mut bytes = 0u64;
        let mut events = 0u64;
        for append in group {
            let adding = append.lines.len() as u64;
            let pending = shared.pending_bytes.load(Ordering::Relaxed) + bytes;
            if pending + adding > shared.max_bytes {
                if let Some(done) = append.done {
                    let _ = done.send(Err(SpoolError::Full {
                        pending,
                        adding,
                        limit: shared.max_bytes,
                    }));
                } else {
                    tracing::warn!(
                        pending,
                        "event spool full: the gateway's own events are dropped"
                    );
                }
                continue;
            }
            bytes += adding;
            events += append.events;
            taken.push(append);
        }
        let written = (|| -> std::io::Result<()> {
            for append in &taken {
                file.write_all(&append.lines)?;
            }
            file.sync_data()
        })();
        let outcome = match written {
            Ok(()) => {
                position.offset += bytes;
                if position.offset >= segment_bytes {
                    // The new segment's name must be durable in the folder
                    // before an event in it is acknowledged.
                    match open(position.segment + 1).and_then(|next| {
                        File::open(&shared.dir)?.sync_all()?;
                        Ok(next)
                    }) {
                        Ok(next) => {
                            file = next;
                            position = Position {
                                segment: position.segment + 1,
                                offset: 0,
                            };
                        }
                        Err(error) => {
                            tracing::error!(%error, "event spool cannot start a new segment")
                        }
                    }
                }
                *shared.durable.lock().unwrap_or_else(|e| e.into_inner()) = position;
                shared.pending_bytes.fetch_add(bytes, Ordering::Relaxed);
                shared.pending_events.fetch_add(events, Ordering::Relaxed);
                shared.appended.notify_waiters();
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "event spool write failed");
                // What was written may be partial; cut back to the last
                // durable line so the next write starts on a line boundary.
                let _ = file.set_len(position.offset);
                Err(write_error(error))
            }
        };
        for append in taken {
            if let Some(done) = append.done {
                let _ = done.send(outcome.clone());
            }
        }
    }
}

fn split_line(line: &[u8]) -> Result<(&str, u64, &[u8]), SpoolError> {
    let malformed = || SpoolError::Io("a spool line is malformed".into());
    let mut parts = line.splitn(3, |b| *b == b'\t');
    let table =
        std::str::from_utf8(parts.next().ok_or_else(malformed)?).map_err(|_| malformed())?;
    let accepted = std::str::from_utf8(parts.next().ok_or_else(malformed)?)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(malformed)?;
    let row = parts.next().ok_or_else(malformed)?;
    Ok((table, accepted, row))
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.log"))
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, SpoolError> {
    let mut segments: Vec<u64> = fs::read_dir(dir)
        .map_err(io_error)?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    segments.sort_unstable();
    Ok(segments)
}

/// The acknowledged position, or segment 0 when nothing was acknowledged yet.
fn read_acked(dir: &Path) -> Result<Position, SpoolError> {
    match fs::read_to_string(dir.join(ACKED_FILE)) {
        Ok(text) => {
            let mut parts = text.split_whitespace().map(str::parse::<u64>);
            match (parts.next(), parts.next()) {
                (Some(Ok(segment)), Some(Ok(offset))) => Ok(Position { segment, offset }),
                _ => Err(SpoolError::Io(format!(
                    "{} is malformed",
                    dir.join(ACKED_FILE).display()
                ))),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Position::default()),
        Err(e) => Err(io_error(e)),
    }
}

/// Counts the lines in `length` bytes of `file` from where it stands, and
/// where the last whole line ends (relative to that start). Reads in
/// pieces: a segment can be large.
fn scan_lines(file: &mut File, length: u64) -> Result<(u64, u64), SpoolError> {
    let mut reader = BufReader::with_capacity(1 << 16, file.take(length));
    let (mut lines, mut read, mut whole) = (0u64, 0u64, 0u64);
    loop {
        let chunk = reader.fill_buf().map_err(io_error)?;
        if chunk.is_empty() {
            return Ok((lines, whole));
        }
        for (i, byte) in chunk.iter().enumerate() {
            if *byte == b'\n' {
                lines += 1;
                whole = read + i as u64 + 1;
            }
        }
        let taken = chunk.len();
        read += taken as u64;
        reader.consume(taken);
    }
}

/// Cuts a segment back to its last whole line (a crash can tear the last
/// write) and returns its length.
fn repair_tail(path: &Path) -> Result<u64, SpoolError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_error)?;
    let length = file.metadata().map_err(io_error)?.len();
    let (_, whole) = scan_lines(&mut file, length)?;
    if whole < length {
        file.set_len(whole).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
    }
    Ok(whole)
}

/// Bytes and lines between two positions.
fn measure(dir: &Path, from: Position, to: Position) -> Result<(u64, u64), SpoolError> {
    let mut bytes = 0;
    let mut lines = 0;
    for segment in list_segments(dir)? {
        if segment < from.segment || segment > to.segment {
            continue;
        }
        let mut file = File::open(segment_path(dir, segment)).map_err(io_error)?;
        let length = file.metadata().map_err(io_error)?.len();
        let start = if segment == from.segment {
            from.offset.min(length)
        } else {
            0
        };
        let end = if segment == to.segment {
            to.offset.min(length)
        } else {
            length
        };
        file.seek(SeekFrom::Start(start)).map_err(io_error)?;
        let (counted, _) = scan_lines(&mut file, end.saturating_sub(start))?;
        bytes += end.saturating_sub(start);
        lines += counted;
    }
    Ok((bytes, lines))
}

fn io_error(error: impl std::fmt::Display) -> SpoolError {
    SpoolError::Io(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sgw-spool-{name}-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn lines(n: u64, table: &str) -> Vec<u8> {
        let mut buffer = Vec::new();
        for i in 0..n {
            push_line(&mut buffer, table, 1000 + i, &format!("{{\"i\":{i}}}"));
        }
        buffer
    }

    /// Reads the next `events` from the acknowledged position and
    /// acknowledges them, as the shipper does once ClickHouse has them.
    fn acknowledge_next(spool: &Spool, events: u64) -> Batch {
        let batch = spool
            .read_batch(spool.acked().unwrap(), events, u64::MAX)
            .unwrap();
        spool
            .acknowledge(batch.end, batch.events, batch.bytes)
            .unwrap();
        batch
    }

    #[tokio::test]
    async fn appended_events_are_read_back_and_acknowledged() {
        let dir = temp_dir("basic");
        let spool = Spool::open(&dir, 1 << 20, 1 << 20).unwrap();
        spool.append(lines(3, "a"), 3).await.unwrap();
        spool.append(lines(2, "b"), 2).await.unwrap();
        assert_eq!(spool.pending_events(), 5);
        let from = spool.acked().unwrap();
        let batch = spool.read_batch(from, 4, u64::MAX).unwrap();
        assert_eq!(batch.events, 4);
        assert_eq!(batch.rows_by_table[0].0, "a");
        assert_eq!(
            batch.rows_by_table[0].1,
            b"{\"i\":0}\n{\"i\":1}\n{\"i\":2}\n"
        );
        assert_eq!(batch.rows_by_table[1].1, b"{\"i\":0}\n");
        assert_eq!(batch.oldest_accepted_ms, Some(1000));
        spool
            .acknowledge(batch.end, batch.events, batch.bytes)
            .unwrap();
        assert_eq!(spool.pending_events(), 1);
        let rest = spool
            .read_batch(spool.acked().unwrap(), 10, u64::MAX)
            .unwrap();
        assert_eq!(rest.events, 1);
        assert_eq!(rest.rows_by_table[0].1, b"{\"i\":1}\n");
    }

    #[tokio::test]
    async fn reopening_resumes_after_the_acknowledged_position() {
        let dir = temp_dir("reopen");
        {
            let spool = Spool::open(&dir, 1 << 20, 64).unwrap();
            spool.append(lines(5, "a"), 5).await.unwrap();
            spool.append(lines(5, "a"), 5).await.unwrap();
            acknowledge_next(&spool, 3);
        }
        // A torn line at the end, as a crash mid-write would leave.
        let last = list_segments(&dir).unwrap().last().copied().unwrap();
        let mut file = OpenOptions::new()
            .append(true)
            .open(segment_path(&dir, last))
            .unwrap();
        file.write_all(b"a\t1\t{\"torn").unwrap();
        // The first spool's writer lets go of the lock as it winds down.
        let mut reopened = Spool::open(&dir, 1 << 20, 64);
        for _ in 0..100 {
            if reopened.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            reopened = Spool::open(&dir, 1 << 20, 64);
        }
        let spool = reopened.unwrap();
        assert_eq!(spool.pending_events(), 7);
        let batch = spool
            .read_batch(spool.acked().unwrap(), 100, u64::MAX)
            .unwrap();
        assert_eq!(batch.events, 7);
        spool.append(lines(1, "a"), 1).await.unwrap();
        let batch = spool.read_batch(batch.end, 100, u64::MAX).unwrap();
        assert_eq!(batch.events, 1);
    }

    #[tokio::test]
    async fn one_gateway_per_spool() {
        let dir = temp_dir("lock");
        let _first = Spool::open(&dir, 1 << 20, 1 << 20).unwrap();
        let second = Spool::open(&dir, 1 << 20, 1 << 20);
        assert!(matches!(second, Err(SpoolError::Io(message)) if message.contains("in use")));
    }

    #[tokio::test]
    async fn refuses_appends_past_its_bound() {
        let dir = temp_dir("bound");
        let spool = Spool::open(&dir, 100, 1 << 20).unwrap();
        let line = lines(1, "a");
        let mut accepted = 0;
        for _ in 0..20 {
            if spool.append(line.clone(), 1).await.is_ok() {
                accepted += 1;
            }
        }
        assert_eq!(accepted as u64, 100 / line.len() as u64);
        assert!(matches!(
            spool.append(line.clone(), 1).await,
            Err(SpoolError::Full { .. })
        ));
    }

    #[test]
    fn a_full_disk_is_told_apart() {
        let full = std::io::Error::from_raw_os_error(28);
        assert!(matches!(write_error(full), SpoolError::DiskFull));
        let other = std::io::Error::from_raw_os_error(5);
        assert!(matches!(write_error(other), SpoolError::Io(_)));
    }

    #[tokio::test]
    async fn a_batch_is_bounded_by_bytes_but_takes_at_least_one_event() {
        let dir = temp_dir("bytes");
        let spool = Spool::open(&dir, 1 << 20, 1 << 20).unwrap();
        spool.append(lines(10, "a"), 10).await.unwrap();
        let from = spool.acked().unwrap();
        let one = spool.read_batch(from, 100, 1).unwrap();
        assert_eq!(one.events, 1, "one event even past the bound");
        let some = spool.read_batch(from, 100, 3 * one.bytes).unwrap();
        assert_eq!(some.events, 3);
        let all = spool.read_batch(from, 100, u64::MAX).unwrap();
        assert_eq!(all.events, 10);
    }

    #[tokio::test]
    async fn an_append_larger_than_the_whole_bound_is_refused_and_nothing_written() {
        let dir = temp_dir("huge");
        let spool = Spool::open(&dir, 100, 1 << 20).unwrap();
        let huge = lines(10, "a");
        assert!(huge.len() > 100);
        assert!(matches!(
            spool.append(huge, 10).await,
            Err(SpoolError::Full {
                pending: 0,
                limit: 100,
                ..
            })
        ));
        assert_eq!(spool.pending_bytes(), 0);
        assert_eq!(spool.durable().offset, 0, "nothing reached the segment");
        spool.append(lines(1, "a"), 1).await.unwrap();
        assert_eq!(spool.pending_events(), 1);
    }

    #[tokio::test]
    async fn acknowledging_frees_the_space_and_the_segments_behind() {
        let dir = temp_dir("freed");
        let line = lines(1, "a");
        let bound = 4 * line.len() as u64;
        // Segments of one line each.
        let spool = Spool::open(&dir, bound, 1).unwrap();
        for _ in 0..4 {
            spool.append(line.clone(), 1).await.unwrap();
        }
        assert!(matches!(
            spool.append(line.clone(), 1).await,
            Err(SpoolError::Full { .. })
        ));
        let batch = acknowledge_next(&spool, 3);
        assert_eq!(spool.pending_bytes(), line.len() as u64);
        assert_eq!(
            list_segments(&dir).unwrap().first().copied(),
            Some(batch.end.segment),
            "acknowledged segments are removed"
        );
        for _ in 0..3 {
            spool.append(line.clone(), 1).await.unwrap();
        }
        assert!(spool.append(line, 1).await.is_err());
    }

    #[tokio::test]
    async fn a_missing_segment_is_passed_over() {
        let dir = temp_dir("missing");
        let spool = Spool::open(&dir, 1 << 20, 1).unwrap();
        for i in 0..3 {
            spool.append(lines(1, &format!("t{i}")), 1).await.unwrap();
        }
        let segments = list_segments(&dir).unwrap();
        fs::remove_file(segment_path(&dir, segments[1])).unwrap();
        let batch = spool
            .read_batch(spool.acked().unwrap(), 10, u64::MAX)
            .unwrap();
        let tables: Vec<&str> = batch
            .rows_by_table
            .iter()
            .map(|(t, _)| t.as_str())
            .collect();
        assert_eq!(tables, ["t0", "t2"]);
        assert_eq!(batch.end, spool.durable());
    }

    #[tokio::test]
    async fn a_malformed_acknowledgement_stops_the_opening_with_its_name() {
        let dir = temp_dir("bad-ack");
        fs::write(dir.join(ACKED_FILE), "12 twelve\n").unwrap();
        match Spool::open(&dir, 1 << 20, 1 << 20) {
            Err(SpoolError::Io(message)) => {
                assert!(
                    message.contains(ACKED_FILE) && message.contains("malformed"),
                    "{message}"
                )
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("a malformed acknowledgement was read as a position"),
        }
    }
}

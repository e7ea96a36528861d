//! `--stream-log FILE`: one JSON line per connection when it ends, the
//! connection's record as the measurement core keeps it, for analysis in
//! the user's own tools (what k6's `--out json` and goose's request log
//! give). Lines are written by a thread of their own from a bounded
//! queue: a stream's task only formats its line. `-` is stdout; a name
//! ending in `.gz` is gzip. Under `--processes` each child writes a part
//! and the parent joins them into the one file.
//!
//! Fields (times in milliseconds, to the microsecond; absent when not
//! measured): `started_unix`, `trace_id`, `sampled`, `transport`,
//! `connection` (0 for a stream's first, 1.. for its reconnects),
//! `status`, `instance`, `revision`, `connect_ms`, `headers_ms`, `first_byte_ms`,
//! `first_event_ms`, `events`, `bytes`, `max_gap_ms`, `lifetime_ms`,
//! `end`, `error`; `--api` runs also `ttft_ms`, `tpot_ms`, `e2e_ms`,
//! `output_tokens`, `prompt_tokens` (the server's usage, when sent),
//! `finish_reason`, and for a conversation's request
//! `turn` (1: a session's first; its turns share the session's
//! `trace_id`, `connection` counting them from 0). A stream started on a
//! schedule (`--arrival-rate`, `--stream-rate`, `--replay`): `late_ms` on
//! its first connection, how late it was sent (so `started_unix -
//! late_ms / 1000` is its planned start).

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use crate::record::{ms, Connection};

/// Bytes of lines waiting for the writer at most (a stream waits beyond
/// it rather than a line being lost).
const QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// A trace id written as 32 hex digits, without a string of its own.
#[derive(Debug, Clone, Copy)]
pub struct TraceId(pub u128);

impl Serialize for TraceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:032x}", self.0))
    }
}

/// One connection, as a line.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    pub started_unix: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampled: Option<bool>,
    pub transport: &'a str,
    pub connection: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_byte_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_event_ms: Option<f64>,
    pub events: u64,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_gap_ms: Option<f64>,
    pub lifetime_ms: f64,
    pub end: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpot_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2e_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late_ms: Option<f64>,
}

impl<'a> Line<'a> {
    pub fn of(c: &'a Connection, transport: &'a str) -> Self {
        let figures = c.request_figures();
        Self {
            started_unix: c.started_unix(),
            trace_id: c.trace.map(|t| TraceId(t.trace_id)),
            sampled: c.trace.map(|t| t.sampled),
            transport,
            connection: c.connection,
            status: c.status,
            instance: c.instance.as_deref(),
            revision: c
                .instance
                .as_deref()
                .and_then(crate::report::revisions::revision_of),
            connect_ms: c.connect.map(ms),
            headers_ms: c.headers.map(ms),
            first_byte_ms: c.first_byte.map(ms),
            first_event_ms: c.first_event.map(ms),
            events: c.events,
            bytes: c.bytes,
            max_gap_ms: c.max_gap.map(ms),
            lifetime_ms: ms(c.lifetime),
            end: c.end.map_or("truncated", |e| e.as_str()),
            error: c.error.as_deref(),
            ttft_ms: figures.and_then(|f| f.ttft).map(ms),
            tpot_ms: figures.and_then(|f| f.tpot).map(ms),
            e2e_ms: figures.map(|f| ms(f.e2e)),
            output_tokens: figures.map(|f| f.output_tokens),
            finish_reason: c.llm.as_ref().and_then(|l| l.finish_reason.as_deref()),
            prompt_tokens: c
                .llm
                .as_ref()
                .and_then(|l| l.usage)
                .map(|(_, prompt)| prompt),
            turn: c
                .llm
                .as_ref()
                .and_then(|l| l.turn)
                .map(|t| t.saturating_add(1)),
            late_ms: c.schedule_delay.map(ms),
        }
    }
}

/// The log being written: the lines not yet written, and its writer.
#[derive(Debug)]
pub struct StreamLog {
    transport: String,
    pending: Arc<Pending>,
    writer: Mutex<Option<std::thread::JoinHandle<io::Result<u64>>>>,
}

/// Lines formatted by the stream tasks, waiting for the writer: one
/// buffer, handed over whole. The writer wakes when [`WAKE_AT`] bytes are
/// waiting or every [`WAKE_EVERY`], never per line (a wake-up per line
/// cost more than the line).
#[derive(Debug, Default)]
struct Pending {
    state: Mutex<PendingState>,
    /// The writer waits here for lines.
    ready: Condvar,
    /// A stream waits here while the buffer is full.
    space: Condvar,
}

#[derive(Debug, Default)]
struct PendingState {
    lines: Vec<u8>,
    count: u64,
    closed: bool,
}

/// Bytes waiting that wake the writer.
const WAKE_AT: usize = 64 * 1024;
/// The writer's longest sleep with lines waiting.
const WAKE_EVERY: Duration = Duration::from_millis(200);

impl Pending {
    fn lock(&self) -> MutexGuard<'_, PendingState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one line; waits while [`QUEUE_BYTES`] are already waiting.
    fn push(&self, line: &Line<'_>) {
        let mut state = self.lock();
        while state.lines.len() >= QUEUE_BYTES && !state.closed {
            state = self.space.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.closed {
            return;
        }
        let before = state.lines.len();
        if serde_json::to_writer(&mut state.lines, line).is_err() {
            state.lines.truncate(before);
            return;
        }
        state.lines.push(b'\n');
        state.count += 1;
        if before < WAKE_AT && state.lines.len() >= WAKE_AT {
            self.ready.notify_one();
        }
    }

    /// The writer's side: the lines waiting (swapped with `spare`), or
    /// `None` once closed and drained.
    fn take(&self, spare: &mut Vec<u8>) -> Option<u64> {
        let mut state = self.lock();
        loop {
            if state.lines.len() >= WAKE_AT || (state.closed && !state.lines.is_empty()) {
                break;
            }
            if state.closed {
                return None;
            }
            let (next, timeout) = self
                .ready
                .wait_timeout(state, WAKE_EVERY)
                .unwrap_or_else(|e| e.into_inner());
            state = next;
            if timeout.timed_out() && !state.lines.is_empty() {
                break;
            }
        }
        spare.clear();
        std::mem::swap(spare, &mut state.lines);
        let count = std::mem::take(&mut state.count);
        drop(state);
        self.space.notify_all();
        Some(count)
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
        self.space.notify_all();
    }
}

/// Opens where the lines go: stdout for `-`, gzip for `.gz`.
fn open(path: &Path) -> io::Result<Box<dyn Write + Send>> {
    if path == Path::new("-") {
        return Ok(Box::new(io::stdout()));
    }
    let file = std::fs::File::create(path)
        .map_err(|e| io::Error::new(e.kind(), format!("--stream-log {}: {e}", path.display())))?;
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        )))
    } else {
        Ok(Box::new(file))
    }
}

impl StreamLog {
    /// Opens `path` (failing at once on a bad one) and starts its writer.
    pub fn create(path: &Path, transport: &str) -> io::Result<Self> {
        let mut out = open(path)?;
        let pending = Arc::new(Pending::default());
        let from = pending.clone();
        let writer = std::thread::Builder::new()
            .name("stream-log".to_owned())
            .spawn(move || {
                let mut lines = 0;
                let mut batch = Vec::new();
                while let Some(count) = from.take(&mut batch) {
                    if let Err(e) = out.write_all(&batch) {
                        // Nothing more can be written: let the streams go.
                        from.close();
                        return Err(e);
                    }
                    lines += count;
                }
                out.flush()?;
                // A gzip stream ends with its trailer when dropped.
                drop(out);
                Ok(lines)
            })?;
        Ok(Self {
            transport: transport.to_owned(),
            pending,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Closes the log and waits for every line to be written: the lines
    /// written.
    pub fn finish(&self) -> io::Result<u64> {
        self.pending.close();
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        match writer {
            Some(w) => w
                .join()
                .map_err(|_| io::Error::other("the stream log's writer stopped"))?,
            None => Ok(0),
        }
    }

    /// Adds a finished connection's line (the collector calls it).
    pub fn write(&self, c: &Connection) {
        self.pending.push(&Line::of(c, &self.transport));
    }
}

/// Joins the parts children wrote into `path` (gzip members join into one
/// gzip stream), removing the parts.
pub fn join(path: &Path, parts: &[PathBuf]) -> io::Result<()> {
    let mut out: Box<dyn Write> = if path == Path::new("-") {
        Box::new(io::stdout())
    } else {
        Box::new(BufWriter::new(std::fs::File::create(path)?))
    };
    for part in parts {
        if let Ok(mut file) = std::fs::File::open(part) {
            io::copy(&mut file, &mut out)?;
        }
        let _ = std::fs::remove_file(part);
    }
    out.flush()
}

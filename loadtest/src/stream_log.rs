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
//! `status`, `instance`, `connect_ms`, `headers_ms`, `first_byte_ms`,
//! `first_event_ms`, `events`, `bytes`, `max_gap_ms`, `lifetime_ms`,
//! `end`, `error`; `--api` runs also `ttft_ms`, `tpot_ms`, `e2e_ms`,
//! `output_tokens`, `finish_reason`.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Mutex, RwLock};

use serde::Serialize;

use crate::record::{ms, Connection};

/// Lines queued for the writer at most (a stream waits beyond it rather
/// than a line being lost).
const QUEUE: usize = 16_384;

/// One connection, as a line.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    pub started_unix: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampled: Option<bool>,
    pub transport: &'a str,
    pub connection: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<&'a str>,
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
}

impl<'a> Line<'a> {
    pub fn of(c: &'a Connection, transport: &'a str) -> Self {
        let figures = c.request_figures();
        Self {
            started_unix: c.started_unix(),
            trace_id: c.trace.map(|t| t.id_hex()),
            sampled: c.trace.map(|t| t.sampled),
            transport,
            connection: c.connection,
            status: c.status,
            instance: c.instance.as_deref(),
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
        }
    }
}

/// The log being written: the sink side (the queue) and its writer.
#[derive(Debug)]
pub struct StreamLog {
    transport: String,
    queue: RwLock<Option<SyncSender<String>>>,
    writer: Mutex<Option<std::thread::JoinHandle<io::Result<u64>>>>,
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
        let out = open(path)?;
        let (tx, rx) = sync_channel::<String>(QUEUE);
        let writer = std::thread::Builder::new()
            .name("stream-log".to_owned())
            .spawn(move || {
                let mut out = BufWriter::with_capacity(1 << 16, out);
                let mut lines = 0;
                for line in rx {
                    out.write_all(line.as_bytes())?;
                    out.write_all(b"\n")?;
                    lines += 1;
                }
                out.flush()?;
                // A gzip stream ends with its trailer when dropped.
                drop(out.into_inner().map_err(|e| e.into_error())?);
                Ok(lines)
            })?;
        Ok(Self {
            transport: transport.to_owned(),
            queue: RwLock::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Closes the queue and waits for every line to be written: the lines
    /// written.
    pub fn finish(&self) -> io::Result<u64> {
        self.queue.write().unwrap_or_else(|e| e.into_inner()).take();
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        match writer {
            Some(w) => w
                .join()
                .map_err(|_| io::Error::other("the stream log's writer stopped"))?,
            None => Ok(0),
        }
    }
}

impl StreamLog {
    /// Queues a finished connection's line (the collector calls it).
    pub fn write(&self, c: &Connection) {
        let Ok(line) = serde_json::to_string(&Line::of(c, &self.transport)) else {
            return;
        };
        if let Some(queue) = &*self.queue.read().unwrap_or_else(|e| e.into_inner()) {
            let _ = queue.send(line);
        }
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

//! The floor a load generator's cost per event is judged against: one
//! process, a current-thread tokio runtime, raw sockets, its own HTTP/1.1
//! chunked and SSE decoding, a timestamp per event for its gaps, nothing
//! else (no report, no histograms, no goose). `bench/run.py --scenario
//! client-cost` runs it and trickle-load one after the other against the
//! same trickle and compares their CPU per received event.
//!
//! ```sh
//! cargo run --release -p trickle-load --example floor_client -- \
//!     127.0.0.1:8080 '/sse?chunks=100000&interval_ms=20&size=64' 500 20
//! ```
//! Arguments: address, path, streams, seconds to hold them. It prints one
//! JSON line: streams that got headers, events, gaps, mean and max gap.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

#[derive(Default)]
struct Totals {
    streams: Cell<u64>,
    events: Cell<u64>,
    gaps: Cell<u64>,
    gap_sum_us: Cell<u64>,
    gap_max_us: Cell<u64>,
}

/// Where the body decoder is.
enum State {
    Headers,
    /// Reading a chunk-size line.
    Size,
    /// Inside a chunk: bytes left, then its CRLF.
    Data(usize),
    /// The CRLF after a chunk's data.
    DataEnd(u8),
    Done,
}

/// An HTTP/1.1 response with a chunked SSE body, decoded as it comes.
struct Decoder {
    state: State,
    head: Vec<u8>,
    size_line: Vec<u8>,
    line: Vec<u8>,
    has_data: bool,
}

impl Decoder {
    fn new() -> Self {
        Self {
            state: State::Headers,
            head: Vec::new(),
            size_line: Vec::new(),
            line: Vec::new(),
            has_data: false,
        }
    }

    /// Feeds bytes; calls `event` for every complete SSE event with data.
    /// `Err` on a response this client does not handle.
    fn feed(&mut self, mut bytes: &[u8], event: &mut impl FnMut()) -> Result<(), String> {
        while !bytes.is_empty() {
            match self.state {
                State::Headers => {
                    self.head.extend_from_slice(bytes);
                    bytes = &[];
                    if let Some(end) = find(&self.head, b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&self.head[..end]).to_ascii_lowercase();
                        if !head.starts_with("http/1.1 200") {
                            return Err(head.lines().next().unwrap_or("").to_owned());
                        }
                        if !head.contains("transfer-encoding: chunked") {
                            return Err("not a chunked response".to_owned());
                        }
                        let rest = self.head.split_off(end + 4);
                        self.state = State::Size;
                        self.feed(&rest, event)?;
                    }
                }
                State::Size => {
                    let Some(nl) = bytes.iter().position(|b| *b == b'\n') else {
                        self.size_line.extend_from_slice(bytes);
                        return Ok(());
                    };
                    self.size_line.extend_from_slice(&bytes[..nl]);
                    bytes = &bytes[nl + 1..];
                    let text = String::from_utf8_lossy(&self.size_line);
                    let hex = text.trim().split(';').next().unwrap_or("");
                    let size = usize::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                    self.size_line.clear();
                    self.state = if size == 0 {
                        State::Done
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    let take = left.min(bytes.len());
                    self.sse(&bytes[..take], event);
                    bytes = &bytes[take..];
                    self.state = if take == left {
                        State::DataEnd(2)
                    } else {
                        State::Data(left - take)
                    };
                }
                State::DataEnd(left) => {
                    bytes = &bytes[1..];
                    self.state = if left == 1 {
                        State::Size
                    } else {
                        State::DataEnd(1)
                    };
                }
                State::Done => return Ok(()),
            }
        }
        Ok(())
    }

    /// SSE lines: a `data` field marks the event; a blank line ends it.
    fn sse(&mut self, mut data: &[u8], event: &mut impl FnMut()) {
        while let Some(nl) = data.iter().position(|b| *b == b'\n') {
            self.line.extend_from_slice(&data[..nl]);
            data = &data[nl + 1..];
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            if self.line.is_empty() {
                if self.has_data {
                    event();
                }
                self.has_data = false;
            } else if self.line.starts_with(b"data") {
                self.has_data = true;
            }
            self.line.clear();
        }
        self.line.extend_from_slice(data);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn stream(addr: String, path: String, totals: Rc<Totals>, until: Instant) {
    let Ok(mut socket) = TcpStream::connect(&addr).await else {
        return;
    };
    let _ = socket.set_nodelay(true);
    let request =
        format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n\r\n");
    if socket.write_all(request.as_bytes()).await.is_err() {
        return;
    }
    let mut decoder = Decoder::new();
    let mut buf = vec![0u8; 8192];
    let mut last: Option<Instant> = None;
    let mut counted = false;
    let stop = tokio::time::sleep_until(until);
    tokio::pin!(stop);
    loop {
        let read = tokio::select! {
            biased;
            read = socket.read(&mut buf) => read,
            () = &mut stop => return,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut on_event = || {
            let now = Instant::now();
            totals.events.set(totals.events.get() + 1);
            if let Some(last) = last {
                let gap = (now - last).as_micros() as u64;
                totals.gaps.set(totals.gaps.get() + 1);
                totals.gap_sum_us.set(totals.gap_sum_us.get() + gap);
                totals.gap_max_us.set(totals.gap_max_us.get().max(gap));
            }
            last = Some(now);
        };
        if let Err(why) = decoder.feed(&buf[..n], &mut on_event) {
            eprintln!("floor_client: {why}");
            return;
        }
        if !counted && !matches!(decoder.state, State::Headers) {
            counted = true;
            totals.streams.set(totals.streams.get() + 1);
        }
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, path, streams, seconds] = args.as_slice() else {
        eprintln!("usage: floor_client ADDR PATH STREAMS SECONDS");
        std::process::exit(2);
    };
    let (Ok(streams), Ok(seconds)) = (streams.parse::<u64>(), seconds.parse::<u64>()) else {
        eprintln!("floor_client: STREAMS and SECONDS are whole numbers");
        std::process::exit(2);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let totals = Rc::new(Totals::default());
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let until = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for i in 0..streams {
            // 1,000 new streams a second, as trickle-load's ramp.
            if i > 0 && i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tasks.push(tokio::task::spawn_local(stream(
                addr.clone(),
                path.clone(),
                totals.clone(),
                until,
            )));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
    let gaps = totals.gaps.get().max(1);
    println!(
        "{{\"streams\": {}, \"events\": {}, \"gaps\": {}, \"gap_mean_ms\": {:.3}, \"gap_max_ms\": {:.3}}}",
        totals.streams.get(),
        totals.events.get(),
        totals.gaps.get(),
        totals.gap_sum_us.get() as f64 / gaps as f64 / 1e3,
        totals.gap_max_us.get() as f64 / 1e3
    );
    Ok(())
}

//! Delay, jitter and reordering on a test namespace's link, on a kernel
//! without `netem`: every packet crossing the link (both ways) is queued
//! to this process through NFQUEUE (iptables rules on the test's own veth
//! end, removed on drop), held for its own delay (a fixed one-way delay
//! plus or minus a uniform jitter), then let go. Packets are released by
//! their due time, not their arrival, so a jitter wider than the spacing
//! of a flow's packets reorders them, for real: the kernel's TCP sees
//! late and out-of-order segments, as on a bad path.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the forwarder did.
#[derive(Debug, Default, Clone, Copy)]
pub struct DelayStats {
    /// Packets held and let go.
    pub packets: u64,
    /// Packets let go before one of their own flow (same addresses and
    /// ports, same direction) that reached the queue earlier.
    pub reordered: u64,
}

/// A running delay on a namespace's link; stops (and lets every held
/// packet go) when stopped or dropped.
pub struct Delay {
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<Result<DelayStats, String>>>,
    rules: Vec<Vec<String>>,
}

fn iptables(args: &[String]) -> Result<(), String> {
    let out = Command::new("iptables")
        .args(args)
        .output()
        .map_err(|e| format!("iptables: {e} (apt-get install iptables; scripts/test does)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "iptables {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A flow, from an IPv4 packet's header: addresses and ports.
fn flow(packet: &[u8]) -> Option<[u8; 12]> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(packet.get(12..20)?);
    key[8..].copy_from_slice(packet.get(ihl..ihl + 4)?);
    Some(key)
}

impl Delay {
    /// Every packet leaving or arriving through `device` (a veth end in
    /// this namespace: the test namespace's `outer`) waits `one_way` plus a
    /// uniform draw in [-jitter, +jitter] (at least 0).
    pub fn start(device: &str, one_way: Duration, jitter: Duration) -> Result<Self, String> {
        // A queue number of this process's own: tests run at once.
        let queue_num = u16::try_from(1000 + std::process::id() % 60_000).unwrap_or(1000);
        let mut queue = nfq::Queue::open().map_err(|e| format!("NFQUEUE: {e}"))?;
        queue
            .bind(queue_num)
            .map_err(|e| format!("NFQUEUE bind: {e}"))?;
        // Headers are enough to tell flows apart.
        queue
            .set_copy_range(queue_num, 64)
            .map_err(|e| format!("NFQUEUE copy range: {e}"))?;
        queue
            .set_queue_max_len(queue_num, 20_000)
            .map_err(|e| format!("NFQUEUE length: {e}"))?;
        queue.set_nonblocking(true);
        let q = queue_num.to_string();
        let rules = vec![["OUTPUT", "-o", device], ["INPUT", "-i", device]]
            .into_iter()
            .map(|[chain, dir, dev]| {
                [
                    chain,
                    dir,
                    dev,
                    "-j",
                    "NFQUEUE",
                    "--queue-num",
                    &q,
                    "--queue-bypass",
                ]
                .map(str::to_owned)
                .to_vec()
            })
            .collect::<Vec<_>>();
        let mut delay = Self {
            stop: Arc::new(AtomicBool::new(false)),
            worker: None,
            rules: Vec::new(),
        };
        for rule in &rules {
            let mut add = vec!["-I".to_owned()];
            add.extend_from_slice(rule);
            iptables(&add)?;
            delay.rules.push(rule.clone());
        }
        let stop = delay.stop.clone();
        delay.worker = Some(std::thread::spawn(move || {
            forward(&mut queue, one_way, jitter, &stop)
        }));
        Ok(delay)
    }

    /// Stops delaying; what the forwarder did.
    pub fn stop(mut self) -> Result<DelayStats, String> {
        self.remove_rules();
        self.stop.store(true, Ordering::Relaxed);
        self.worker
            .take()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("the forwarder panicked".to_owned()))
            })
            .unwrap_or(Ok(DelayStats::default()))
    }

    fn remove_rules(&mut self) {
        for rule in self.rules.drain(..) {
            let mut delete = vec!["-D".to_owned()];
            delete.extend(rule);
            let _ = iptables(&delete);
        }
    }
}

impl Drop for Delay {
    fn drop(&mut self) {
        self.remove_rules();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// The forwarder's loop: take what arrived, let go what is due.
fn forward(
    queue: &mut nfq::Queue,
    one_way: Duration,
    jitter: Duration,
    stop: &AtomicBool,
) -> Result<DelayStats, String> {
    let mut stats = DelayStats::default();
    // Held packets by due time; the arrival number breaks ties.
    let mut due: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut held: HashMap<u64, (nfq::Message, Option<[u8; 12]>)> = HashMap::new();
    // Per flow, the latest arrival number let go.
    let mut released: HashMap<[u8; 12], u64> = HashMap::new();
    let mut arrivals = 0u64;
    let jitter_us = u64::try_from(jitter.as_micros()).unwrap_or(0);
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        loop {
            match queue.recv() {
                Ok(mut msg) => {
                    arrivals += 1;
                    let draw = fastrand::u64(0..=2 * jitter_us);
                    let wait = (one_way + Duration::from_micros(draw))
                        .saturating_sub(Duration::from_micros(jitter_us));
                    msg.set_verdict(nfq::Verdict::Accept);
                    let key = flow(msg.get_payload());
                    held.insert(arrivals, (msg, key));
                    due.push(Reverse((Instant::now() + wait, arrivals)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("NFQUEUE receive: {e}")),
            }
        }
        let now = Instant::now();
        while let Some(Reverse((when, n))) = due.peek().copied() {
            if when > now && !stopping {
                break;
            }
            due.pop();
            let Some((msg, key)) = held.remove(&n) else {
                continue;
            };
            if let Some(key) = key {
                let latest = released.entry(key).or_insert(0);
                if n < *latest {
                    stats.reordered += 1;
                } else {
                    *latest = n;
                }
            }
            stats.packets += 1;
            queue
                .verdict(msg)
                .map_err(|e| format!("NFQUEUE verdict: {e}"))?;
        }
        if stopping {
            return Ok(stats);
        }
        let next = due
            .peek()
            .map(|Reverse((when, _))| when.saturating_duration_since(now))
            .unwrap_or(Duration::from_millis(1));
        std::thread::sleep(next.min(Duration::from_micros(500)));
    }
}

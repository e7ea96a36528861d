//! Instances of the emulated service: started as child processes, leased
//! one request at a time up to the per-instance concurrency, scaled out
//! when busy and in when idle, replaced when they die.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::metrics::EmulatorMetrics;
use super::say;

/// Cloud Run aims at about this share of each instance's concurrency.
pub const TARGET_UTILISATION: f64 = 0.6;
/// How often the scaler looks at the pool.
const SCALER_TICK: Duration = Duration::from_millis(100);
/// Longest wait for a new instance to answer.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub program: String,
    pub args: Vec<String>,
    pub service: String,
    pub concurrency: usize,
    pub min_instances: usize,
    pub max_instances: usize,
    pub idle_ttl: Duration,
    pub grace: Duration,
    pub cold_start_delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Starting,
    Ready,
    Draining,
}

#[derive(Debug)]
pub struct Instance {
    pub number: u32,
    pub addr: SocketAddr,
    state: Mutex<State>,
    inflight: AtomicUsize,
    idle_since: Mutex<Instant>,
    child: Mutex<Option<Child>>,
    dead: AtomicBool,
}

impl Instance {
    fn state(&self) -> State {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_state(&self, state: State) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }

    pub fn label(&self) -> String {
        format!("instance-{}", self.number)
    }
}

/// One request's claim on an instance; dropping it frees the slot.
#[derive(Debug)]
pub struct Lease {
    pub instance: Arc<Instance>,
    pool: Arc<Pool>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let left = self.instance.inflight.fetch_sub(1, Ordering::AcqRel) - 1;
        if left == 0 {
            *self
                .instance
                .idle_since
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Instant::now();
        }
        self.pool.metrics.inflight(&self.instance.label(), left);
        self.pool.changed.notify_waiters();
    }
}

#[derive(Debug)]
pub struct Pool {
    pub config: PoolConfig,
    instances: Mutex<Vec<Arc<Instance>>>,
    changed: Notify,
    waiting: AtomicUsize,
    next_number: AtomicUsize,
    failures: AtomicUsize,
    pub metrics: Arc<EmulatorMetrics>,
}

impl Pool {
    pub fn new(config: PoolConfig, metrics: Arc<EmulatorMetrics>) -> Arc<Self> {
        Arc::new(Self {
            config,
            instances: Mutex::new(Vec::new()),
            changed: Notify::new(),
            waiting: AtomicUsize::new(0),
            next_number: AtomicUsize::new(1),
            failures: AtomicUsize::new(0),
            metrics,
        })
    }

    fn snapshot(&self) -> Vec<Arc<Instance>> {
        self.instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn try_acquire(self: &Arc<Self>) -> Option<Lease> {
        let limit = self.config.concurrency;
        let candidates = self.snapshot();
        // Least loaded ready instance with room.
        let mut ready: Vec<&Arc<Instance>> = candidates
            .iter()
            .filter(|i| i.state() == State::Ready && !i.dead.load(Ordering::Acquire))
            .collect();
        ready.sort_by_key(|i| i.inflight());
        for instance in ready {
            let claimed =
                instance
                    .inflight
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < limit).then_some(n + 1)
                    });
            if let Ok(before) = claimed {
                self.metrics.inflight(&instance.label(), before + 1);
                return Some(Lease {
                    instance: instance.clone(),
                    pool: self.clone(),
                });
            }
        }
        None
    }

    /// A slot on some instance, waiting in the queue until `give_up`.
    pub async fn acquire(self: &Arc<Self>, give_up: Instant) -> Option<Lease> {
        if let Some(lease) = self.try_acquire() {
            return Some(lease);
        }
        self.waiting.fetch_add(1, Ordering::AcqRel);
        self.metrics
            .queue_depth
            .set(self.waiting.load(Ordering::Acquire) as i64);
        let result = loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(lease) = self.try_acquire() {
                break Some(lease);
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(give_up) => break None,
            }
        };
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        self.metrics
            .queue_depth
            .set(self.waiting.load(Ordering::Acquire) as i64);
        result
    }

    /// Keeps the pool at the size the load wants; runs until `stop`.
    pub async fn scale(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(SCALER_TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            self.reap();
            let instances = self.snapshot();
            let live: Vec<&Arc<Instance>> = instances
                .iter()
                .filter(|i| i.state() != State::Draining)
                .collect();
            let inflight: usize = live.iter().map(|i| i.inflight()).sum::<usize>()
                + self.waiting.load(Ordering::Acquire);
            let per_instance = (self.config.concurrency as f64 * TARGET_UTILISATION).max(1.0);
            let wanted = ((inflight as f64 / per_instance).ceil() as usize)
                .max(self.config.min_instances)
                .min(self.config.max_instances);
            if live.len() < wanted {
                // Back off after start-up failures: 0.1 s, doubling, at most 5 s.
                let failures = self.failures.load(Ordering::Acquire);
                if failures > 0 {
                    let backoff =
                        Duration::from_millis(100 << failures.min(6)).min(Duration::from_secs(5));
                    tokio::time::sleep(backoff).await;
                }
                self.start_instance();
            } else {
                let removable = live
                    .len()
                    .saturating_sub(wanted.max(self.config.min_instances));
                let idle: Vec<&&Arc<Instance>> = live
                    .iter()
                    .filter(|i| {
                        i.state() == State::Ready
                            && i.inflight() == 0
                            && i.idle_since
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .elapsed()
                                >= self.config.idle_ttl
                    })
                    .take(removable)
                    .collect();
                for instance in idle {
                    self.clone().retire((*instance).clone(), "idle");
                }
            }
            self.metrics.instances.set(self.snapshot().len() as i64);
        }
    }

    /// Removes instances whose process exited (and says so).
    fn reap(&self) {
        let mut gone = Vec::new();
        {
            let mut instances = self.instances.lock().unwrap_or_else(|e| e.into_inner());
            instances.retain(|instance| {
                let mut child = instance.child.lock().unwrap_or_else(|e| e.into_inner());
                let exited = match child.as_mut() {
                    Some(c) => c.try_wait().ok().flatten(),
                    None => None,
                };
                match exited {
                    Some(status) if instance.state() != State::Draining => {
                        instance.dead.store(true, Ordering::Release);
                        gone.push((instance.label(), status, instance.inflight()));
                        false
                    }
                    _ => true,
                }
            });
        }
        for (label, status, open) in gone {
            self.metrics.deaths.inc();
            say(&format!("{label} died ({status}) with {open} requests in flight; they end, and it is replaced"));
        }
    }

    fn start_instance(self: &Arc<Self>) {
        let number = self.next_number.fetch_add(1, Ordering::AcqRel) as u32;
        let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(addr) => addr.port(),
            Err(e) => {
                say(&format!(
                    "cannot find a free port for instance-{number}: {e}"
                ));
                return;
            }
        };
        let config = &self.config;
        let revision = format!("{}-{:05}-emu", config.service, 1);
        let spawned = Command::new(&config.program)
            .args(&config.args)
            .env("PORT", port.to_string())
            .env("K_SERVICE", &config.service)
            .env("K_REVISION", &revision)
            .env("K_CONFIGURATION", &config.service)
            .env("TRICKLE_HOST", "127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                self.failures.fetch_add(1, Ordering::AcqRel);
                say(&format!(
                    "cannot start instance-{number} ({} {}): {e}",
                    config.program,
                    config.args.join(" ")
                ));
                return;
            }
        };
        let instance = Arc::new(Instance {
            number,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            state: Mutex::new(State::Starting),
            inflight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            child: Mutex::new(Some(child)),
            dead: AtomicBool::new(false),
        });
        self.instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(instance.clone());
        say(&format!("starting {} on port {port}", instance.label()));
        let pool = self.clone();
        tokio::spawn(async move { pool.wait_ready(instance).await });
    }

    async fn wait_ready(self: Arc<Self>, instance: Arc<Instance>) {
        let began = Instant::now();
        loop {
            if instance.dead.load(Ordering::Acquire) || began.elapsed() > STARTUP_LIMIT {
                self.failures.fetch_add(1, Ordering::AcqRel);
                say(&format!(
                    "{} did not start within {:?}",
                    instance.label(),
                    began.elapsed()
                ));
                self.clone().retire(instance, "failed start");
                return;
            }
            if tokio::net::TcpStream::connect(instance.addr).await.is_ok() {
                break;
            }
            let exited = instance
                .child
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.failures.fetch_add(1, Ordering::AcqRel);
                instance.dead.store(true, Ordering::Release);
                say(&format!(
                    "{} exited before listening ({status})",
                    instance.label()
                ));
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(self.config.cold_start_delay).await;
        let cold = began.elapsed();
        self.failures.store(0, Ordering::Release);
        self.metrics.cold_start.observe(cold.as_secs_f64());
        *instance
            .idle_since
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Instant::now();
        instance.set_state(State::Ready);
        say(&format!(
            "{} ready after a {:.0} ms cold start",
            instance.label(),
            cold.as_secs_f64() * 1e3
        ));
        self.changed.notify_waiters();
    }

    /// SIGTERM, then SIGKILL after the grace period.
    fn retire(self: Arc<Self>, instance: Arc<Instance>, why: &str) {
        instance.set_state(State::Draining);
        say(&format!(
            "stopping {} ({why}): SIGTERM, SIGKILL after {:?}",
            instance.label(),
            self.config.grace
        ));
        let grace = self.config.grace;
        tokio::spawn(async move {
            let child = instance
                .child
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(mut child) = child {
                if let Some(pid) = child.id() {
                    let _ = std::process::Command::new("kill")
                        .args(["-TERM", &pid.to_string()])
                        .status();
                }
                match tokio::time::timeout(grace, child.wait()).await {
                    Ok(status) => say(&format!(
                        "{} stopped ({})",
                        instance.label(),
                        status.map_or_else(|e| e.to_string(), |s| s.to_string())
                    )),
                    Err(_) => {
                        let _ = child.kill().await;
                        say(&format!(
                            "{} killed after the grace period",
                            instance.label()
                        ));
                    }
                }
            }
            self.instances
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|i| !Arc::ptr_eq(i, &instance));
            self.metrics.inflight(&instance.label(), 0);
        });
    }

    /// A revision rollout: every current instance gets SIGTERM (with its
    /// streams still open) and new ones start as the load asks.
    pub fn rollout(self: &Arc<Self>) -> Vec<String> {
        let mut retired = Vec::new();
        for instance in self.snapshot() {
            if instance.state() != State::Draining {
                retired.push(instance.label());
                self.clone().retire(instance, "rollout");
            }
        }
        retired
    }

    /// The instances as JSON: name, address, pid, state, requests in flight.
    pub fn describe(&self) -> serde_json::Value {
        let list: Vec<serde_json::Value> = self
            .snapshot()
            .iter()
            .map(|i| {
                let pid = i
                    .child
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .and_then(|c| c.id());
                serde_json::json!({
                    "instance": i.label(),
                    "addr": i.addr.to_string(),
                    "pid": pid,
                    "state": format!("{:?}", i.state()).to_lowercase(),
                    "inflight": i.inflight(),
                })
            })
            .collect();
        serde_json::Value::Array(list)
    }

    /// Stops every instance (emulator shutdown).
    pub async fn shutdown(self: &Arc<Self>) {
        for instance in self.snapshot() {
            self.clone().retire(instance, "emulator stopping");
        }
        let give_up = Instant::now() + self.config.grace + Duration::from_secs(1);
        while !self.snapshot().is_empty() && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

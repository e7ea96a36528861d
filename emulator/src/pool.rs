//! Instances of the emulated service: leased one request at a time up to
//! the per-instance concurrency, scaled out when busy and in when idle,
//! replaced when they die. The decisions are [`super::policy`]'s; the
//! processes are [`super::process`]'s; this module holds the live state.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::process::Child;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::metrics::EmulatorMetrics;
use super::policy::{self, InstanceView, Phase, ScaleDecision, ScalingRules};
use super::process::{self, Launch, StartFailure};
use super::say;
use super::throttle::{CpuLimit, Hierarchy};

/// How often the scaler looks at the pool.
const SCALER_TICK: Duration = Duration::from_millis(100);
/// Longest wait for a new instance to answer.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub launch: Launch,
    pub rules: ScalingRules,
    /// SIGTERM to SIGKILL when an instance stops.
    pub grace: Duration,
    /// Added to each instance's real start-up time.
    pub cold_start_delay: Duration,
    pub billing: Billing,
}

/// Cloud Run's billing settings, as they allocate CPU.
#[derive(Debug, Clone, PartialEq)]
pub enum Billing {
    /// CPU always allocated.
    Instance,
    /// CPU throttled to `share` of one CPU while an instance holds no
    /// request (start-up and shutdown excepted).
    Request { hierarchy: Hierarchy, share: f64 },
}

/// The state behind a mutex; a panic elsewhere while it was held leaves
/// plain data (counts, a phase, a child handle), still good to use.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug)]
pub struct Instance {
    pub number: u32,
    pub addr: SocketAddr,
    phase: Mutex<Phase>,
    inflight: AtomicUsize,
    idle_since: Mutex<Instant>,
    child: Mutex<Option<Child>>,
    dead: AtomicBool,
    /// Out of the pool (retired or dead): its metric series is gone, and
    /// a request ending late does not bring it back.
    gone: AtomicBool,
    /// Its CPU quota under `--billing request`.
    cpu: Option<CpuLimit>,
}

impl Instance {
    fn phase(&self) -> Phase {
        *lock(&self.phase)
    }

    fn set_phase(&self, phase: Phase) {
        *lock(&self.phase) = phase;
    }

    fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }

    pub fn label(&self) -> String {
        format!("instance-{}", self.number)
    }

    /// What the policy needs to know of it now.
    fn view(&self) -> InstanceView {
        let inflight = self.inflight();
        InstanceView {
            phase: self.phase(),
            inflight,
            idle_for: if inflight == 0 {
                lock(&self.idle_since).elapsed()
            } else {
                Duration::ZERO
            },
            dead: self.is_dead(),
        }
    }

    /// Its exit status, if its process has exited.
    fn exit_status(&self) -> Option<std::process::ExitStatus> {
        lock(&self.child).as_mut().and_then(process::exited)
    }

    fn pid(&self) -> Option<u32> {
        lock(&self.child).as_ref().and_then(Child::id)
    }

    /// Under `--billing request`: throttled exactly while it is ready and
    /// holds no request. Called after every change of either.
    fn sync_cpu(&self, metrics: &EmulatorMetrics) {
        let Some(cpu) = &self.cpu else { return };
        match cpu.apply(|| self.phase() == Phase::Ready && self.inflight() == 0) {
            Ok(true) if cpu.is_throttled() => metrics.throttles.inc(),
            Ok(_) => {}
            Err(e) => say(&format!("{}: {e}", self.label())),
        }
    }

    /// `throttled`, `full` or `always` (instance-based billing).
    fn cpu_state(&self) -> &'static str {
        match &self.cpu {
            None => "always",
            Some(cpu) if cpu.is_throttled() => "throttled",
            Some(_) => "full",
        }
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
            *lock(&self.instance.idle_since) = Instant::now();
            self.instance.sync_cpu(&self.pool.metrics);
        }
        if !self.instance.gone.load(Ordering::Acquire) {
            self.pool.metrics.inflight(&self.instance.label(), left);
        }
        self.pool.changed.notify_waiters();
    }
}

/// One request's place in the queue, counted while it lives.
struct Queued<'a>(&'a Pool);

impl<'a> Queued<'a> {
    fn join(pool: &'a Pool) -> Self {
        pool.queue_depth(pool.waiting.fetch_add(1, Ordering::AcqRel) + 1);
        Self(pool)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        let pool = self.0;
        pool.queue_depth(pool.waiting.fetch_sub(1, Ordering::AcqRel) - 1);
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
        lock(&self.instances).clone()
    }

    fn try_acquire(self: &Arc<Self>) -> Option<Lease> {
        let limit = self.config.rules.concurrency;
        let instances = self.snapshot();
        let views: Vec<InstanceView> = instances.iter().map(|i| i.view()).collect();
        for index in policy::placement_order(&views, limit) {
            let instance = &instances[index];
            // Another request may have taken the last slot since the view.
            let claimed =
                instance
                    .inflight
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < limit).then_some(n + 1)
                    });
            if let Ok(before) = claimed {
                if before == 0 {
                    // Its CPU back before the request reaches it.
                    instance.sync_cpu(&self.metrics);
                }
                self.metrics.inflight(&instance.label(), before + 1);
                return Some(Lease {
                    instance: instance.clone(),
                    pool: self.clone(),
                });
            }
        }
        None
    }

    fn queue_depth(&self, now: usize) {
        self.metrics.queue_depth.set(now as i64);
    }

    /// Requests waiting for a slot now (what the scaler starts instances
    /// for).
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// An instance leaves the pool: its series goes with it.
    fn forget(&self, instance: &Instance) {
        instance.gone.store(true, Ordering::Release);
        self.metrics.forget(&instance.label());
    }

    /// A slot on some instance, waiting in the queue until `give_up`.
    pub async fn acquire(self: &Arc<Self>, give_up: Instant) -> Option<Lease> {
        if let Some(lease) = self.try_acquire() {
            return Some(lease);
        }
        // Counted while it waits, however the wait ends: a slot, the
        // give-up time, or the caller leaving (this future dropped).
        let _queued = Queued::join(self);
        loop {
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
        }
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
            let views: Vec<InstanceView> = instances.iter().map(|i| i.view()).collect();
            match policy::decide(&views, self.queued(), &self.config.rules) {
                ScaleDecision::Start => {
                    let failures = self.failures.load(Ordering::Acquire);
                    tokio::time::sleep(policy::start_backoff(failures)).await;
                    self.start_instance();
                }
                ScaleDecision::Retire(idle) => {
                    for index in idle {
                        self.clone().retire(instances[index].clone(), "idle");
                    }
                }
                ScaleDecision::Hold => {}
            }
            self.metrics.instances.set(self.snapshot().len() as i64);
        }
    }

    /// Removes instances whose process exited (and says so).
    fn reap(&self) {
        let mut gone = Vec::new();
        lock(&self.instances).retain(|instance| {
            if instance.phase() == Phase::Draining {
                return true;
            }
            match instance.exit_status() {
                Some(status) => {
                    instance.dead.store(true, Ordering::Release);
                    self.forget(instance);
                    gone.push((instance.label(), status, instance.inflight()));
                    false
                }
                None => true,
            }
        });
        for (label, status, open) in gone {
            self.metrics.deaths.inc();
            say(&format!("{label} died ({status}) with {open} requests in flight; they end, and it is replaced"));
        }
    }

    fn start_instance(self: &Arc<Self>) {
        let number = self.next_number.fetch_add(1, Ordering::AcqRel) as u32;
        let port = match process::free_port() {
            Ok(port) => port,
            Err(e) => {
                say(&format!(
                    "cannot find a free port for instance-{number}: {e}"
                ));
                return;
            }
        };
        let launch = &self.config.launch;
        let child = match launch.spawn(port) {
            Ok(child) => child,
            Err(e) => {
                self.failures.fetch_add(1, Ordering::AcqRel);
                say(&format!(
                    "cannot start instance-{number} ({}): {e}",
                    launch.command_line()
                ));
                return;
            }
        };
        let cpu = match &self.config.billing {
            Billing::Instance => None,
            Billing::Request { hierarchy, share } => {
                let made = child
                    .id()
                    .ok_or_else(|| "it exited at once".to_owned())
                    .and_then(|pid| {
                        CpuLimit::new(hierarchy, &format!("instance-{number}"), pid, *share)
                            .map_err(|e| e.to_string())
                    });
                match made {
                    Ok(cpu) => Some(cpu),
                    Err(e) => {
                        // Unthrottled it would not rehearse what was
                        // asked: not started (kill_on_drop ends it).
                        self.failures.fetch_add(1, Ordering::AcqRel);
                        say(&format!("cannot limit instance-{number}'s CPU: {e}"));
                        return;
                    }
                }
            }
        };
        let instance = Arc::new(Instance {
            number,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            phase: Mutex::new(Phase::Starting),
            inflight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            child: Mutex::new(Some(child)),
            dead: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            cpu,
        });
        lock(&self.instances).push(instance.clone());
        say(&format!("starting {} on port {port}", instance.label()));
        let pool = self.clone();
        tokio::spawn(async move { pool.wait_ready(instance).await });
    }

    async fn wait_ready(self: Arc<Self>, instance: Arc<Instance>) {
        let began = Instant::now();
        let listening =
            process::wait_listening(instance.addr, STARTUP_LIMIT, || instance.exit_status()).await;
        match listening {
            Ok(()) => {}
            Err(StartFailure::Exited(status)) => {
                self.failures.fetch_add(1, Ordering::AcqRel);
                instance.dead.store(true, Ordering::Release);
                say(&format!(
                    "{} exited before listening ({status})",
                    instance.label()
                ));
                return;
            }
            Err(StartFailure::TimedOut(after)) => {
                self.failures.fetch_add(1, Ordering::AcqRel);
                say(&format!(
                    "{} did not start within {after:?}",
                    instance.label()
                ));
                self.clone().retire(instance, "failed start");
                return;
            }
        }
        tokio::time::sleep(self.config.cold_start_delay).await;
        let cold = began.elapsed();
        self.failures.store(0, Ordering::Release);
        self.metrics.cold_start.observe(cold.as_secs_f64());
        *lock(&instance.idle_since) = Instant::now();
        instance.set_phase(Phase::Ready);
        instance.sync_cpu(&self.metrics);
        say(&format!(
            "{} ready after a {:.0} ms cold start",
            instance.label(),
            cold.as_secs_f64() * 1e3
        ));
        self.changed.notify_waiters();
    }

    /// SIGTERM, then SIGKILL after the grace period.
    fn retire(self: Arc<Self>, instance: Arc<Instance>, why: &str) {
        instance.set_phase(Phase::Draining);
        // Shutdown has its CPU, under either billing setting.
        instance.sync_cpu(&self.metrics);
        let grace = self.config.grace;
        say(&format!(
            "stopping {} ({why}): SIGTERM, SIGKILL after {grace:?}",
            instance.label(),
        ));
        tokio::spawn(async move {
            let child = lock(&instance.child).take();
            if let Some(child) = child {
                match process::stop(child, grace).await {
                    process::Stopped::Exited(status) => say(&format!(
                        "{} stopped ({})",
                        instance.label(),
                        status.map_or_else(|e| e.to_string(), |s| s.to_string())
                    )),
                    process::Stopped::Killed => say(&format!(
                        "{} killed after the grace period",
                        instance.label()
                    )),
                }
            }
            lock(&self.instances).retain(|i| !Arc::ptr_eq(i, &instance));
            self.forget(&instance);
        });
    }

    /// A revision rollout: every current instance gets SIGTERM (with its
    /// streams still open) and new ones start as the load asks.
    pub fn rollout(self: &Arc<Self>) -> Vec<String> {
        let mut retired = Vec::new();
        for instance in self.snapshot() {
            if instance.phase() != Phase::Draining {
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
                serde_json::json!({
                    "instance": i.label(),
                    "addr": i.addr.to_string(),
                    "pid": i.pid(),
                    "state": i.phase().as_str(),
                    "inflight": i.inflight(),
                    "cpu": i.cpu_state(),
                    "periods_throttled": i.cpu.as_ref().and_then(CpuLimit::periods_throttled),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Arc<Pool> {
        let metrics = match EmulatorMetrics::new() {
            Ok(m) => Arc::new(m),
            Err(e) => panic!("metrics: {e}"),
        };
        Pool::new(
            PoolConfig {
                launch: Launch {
                    program: "true".to_owned(),
                    args: Vec::new(),
                    service: "test".to_owned(),
                },
                rules: ScalingRules {
                    concurrency: 1,
                    min_instances: 0,
                    max_instances: 3,
                    idle_ttl: Duration::from_secs(60),
                },
                grace: Duration::from_secs(1),
                cold_start_delay: Duration::ZERO,
                billing: Billing::Instance,
            },
            metrics,
        )
    }

    #[tokio::test]
    async fn the_queue_returns_to_zero_however_its_waits_end() {
        let pool = pool();
        // No instance yet: four requests queue. Two of their clients
        // leave (the futures dropped), two give up at their time.
        let wait = |until: Instant| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.acquire(until).await.is_some() })
        };
        let far = Instant::now() + Duration::from_secs(60);
        let soon = Instant::now() + Duration::from_millis(100);
        let leaving = [wait(far), wait(far)];
        let giving_up = [wait(soon), wait(soon)];
        while pool.queued() < 4 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(pool.metrics.queue_depth.get(), 4);
        // Four waiting: the scaler starts an instance.
        assert_eq!(
            policy::decide(&[], pool.queued(), &pool.config.rules),
            ScaleDecision::Start
        );
        for task in &leaving {
            task.abort();
        }
        for task in giving_up {
            assert_eq!(task.await.ok(), Some(false), "gave up without a slot");
        }
        for task in leaving {
            assert!(task.await.is_err(), "aborted");
        }
        assert_eq!(pool.queued(), 0);
        assert_eq!(pool.metrics.queue_depth.get(), 0);
        // Nothing waits any more: the scaler has nothing to start for.
        assert_eq!(
            policy::decide(&[], pool.queued(), &pool.config.rules),
            ScaleDecision::Hold
        );
    }

    #[tokio::test]
    async fn a_gone_instance_leaves_no_series_even_when_a_request_ends_late() {
        let pool = pool();
        let instance = Arc::new(Instance {
            number: 7,
            addr: SocketAddr::from(([127, 0, 0, 1], 9)),
            phase: Mutex::new(Phase::Ready),
            inflight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            child: Mutex::new(None),
            dead: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            cpu: None,
        });
        lock(&pool.instances).push(instance.clone());
        let lease = pool.try_acquire();
        assert!(lease.is_some());
        assert!(pool
            .metrics
            .render()
            .contains("emulator_instance_inflight{instance=\"instance-7\"} 1"));
        // Retired with the request still open, which ends afterwards.
        lock(&pool.instances).clear();
        pool.forget(&instance);
        drop(lease);
        let text = pool.metrics.render();
        assert!(!text.contains("instance-7"), "{text}");
    }
}

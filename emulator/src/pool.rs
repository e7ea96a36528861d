//! Instances of the emulated service: leased one request at a time up to
//! the per-instance concurrency, scaled out when busy and in when idle,
//! replaced when they die, each of one revision; a request goes to a
//! revision by the traffic split, then to one of its instances. The
//! decisions are [`super::policy`]'s and [`super::traffic`]'s; the
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
use super::traffic::{Split, SplitError};

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

/// One revision of the service: its name (`K_REVISION`) and instance
/// arguments, and the requests waiting for one of its instances.
#[derive(Debug)]
pub struct Revision {
    pub number: u32,
    pub name: String,
    pub args: Vec<String>,
    waiting: AtomicUsize,
    /// Its first instance is starting: traffic moves to it once it is
    /// ready, and the scaler leaves it alone until then.
    deploying: AtomicBool,
}

impl Revision {
    fn new(service: &str, number: u32, args: Vec<String>, deploying: bool) -> Self {
        Self {
            number,
            name: process::revision_name(service, number),
            args,
            waiting: AtomicUsize::new(0),
            deploying: AtomicBool::new(deploying),
        }
    }

    fn queued(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    fn is_deploying(&self) -> bool {
        self.deploying.load(Ordering::Acquire)
    }
}

/// The revisions and the split of new requests between them.
#[derive(Debug)]
struct Revisions {
    /// Oldest first; a revision leaves once it has neither traffic nor
    /// instances.
    list: Vec<Arc<Revision>>,
    split: Split,
    next: u32,
}

/// Why a deploy or a traffic change was not made.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error(transparent)]
    Split(#[from] SplitError),
    #[error("no revision {0}")]
    Unknown(String),
    #[error("revision {name} did not become ready ({why}): traffic stays where it was")]
    NotReady { name: String, why: String },
}

#[derive(Debug)]
pub struct Instance {
    pub number: u32,
    pub addr: SocketAddr,
    pub revision: Arc<Revision>,
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

/// One request's place in a revision's queue, counted while it lives.
struct Queued<'a>(&'a Pool, Arc<Revision>);

impl<'a> Queued<'a> {
    fn join(pool: &'a Pool, revision: Arc<Revision>) -> Self {
        pool.queue_depth(pool.waiting.fetch_add(1, Ordering::AcqRel) + 1);
        revision.waiting.fetch_add(1, Ordering::AcqRel);
        Self(pool, revision)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        let pool = self.0;
        pool.queue_depth(pool.waiting.fetch_sub(1, Ordering::AcqRel) - 1);
        self.1.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug)]
pub struct Pool {
    pub config: PoolConfig,
    instances: Mutex<Vec<Arc<Instance>>>,
    revisions: Mutex<Revisions>,
    changed: Notify,
    waiting: AtomicUsize,
    next_number: AtomicUsize,
    failures: AtomicUsize,
    pub metrics: Arc<EmulatorMetrics>,
}

impl Pool {
    pub fn new(config: PoolConfig, metrics: Arc<EmulatorMetrics>) -> Arc<Self> {
        let first = Revision::new(&config.launch.service, 1, config.launch.args.clone(), false);
        Arc::new(Self {
            revisions: Mutex::new(Revisions {
                list: vec![Arc::new(first)],
                split: Split::all_to(1),
                next: 2,
            }),
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

    /// The revision a new request goes to, drawn by the split.
    fn pick_revision(&self) -> Option<Arc<Revision>> {
        let revisions = lock(&self.revisions);
        let number = revisions.split.pick(fastrand::u32(0..100))?;
        revisions.list.iter().find(|r| r.number == number).cloned()
    }

    /// The share of new requests `revision` gets now.
    fn percent(&self, revision: &Revision) -> u32 {
        lock(&self.revisions).split.percent(revision.number)
    }

    /// The instances of `revision` now.
    fn instances_of(&self, revision: &Revision) -> Vec<Arc<Instance>> {
        self.snapshot()
            .into_iter()
            .filter(|i| i.revision.number == revision.number)
            .collect()
    }

    fn try_acquire(self: &Arc<Self>, revision: &Revision) -> Option<Lease> {
        let limit = self.config.rules.concurrency;
        let instances = self.instances_of(revision);
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

    /// Requests waiting for a slot now, on every revision.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// An instance leaves the pool: its series goes with it.
    fn forget(&self, instance: &Instance) {
        instance.gone.store(true, Ordering::Release);
        self.metrics.forget(&instance.label());
    }

    /// A slot on an instance of the revision the split draws, waiting in
    /// that revision's queue until `give_up`; a traffic change that takes
    /// the revision's share away moves the waiting request with it.
    pub async fn acquire(self: &Arc<Self>, give_up: Instant) -> Option<Lease> {
        let mut revision = self.pick_revision()?;
        if let Some(lease) = self.try_acquire(&revision) {
            return Some(lease);
        }
        // Counted while it waits, however the wait ends: a slot, the
        // give-up time, or the caller leaving (this future dropped).
        let mut queued = Queued::join(self, revision.clone());
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.percent(&revision) == 0 {
                if let Some(other) = self.pick_revision() {
                    revision = other;
                    queued = Queued::join(self, revision.clone());
                }
            }
            if let Some(lease) = self.try_acquire(&revision) {
                drop(queued);
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
            let (revisions, split) = {
                let r = lock(&self.revisions);
                (r.list.clone(), r.split.clone())
            };
            for revision in revisions.iter().filter(|r| !r.is_deploying()) {
                let percent = split.percent(revision.number);
                let instances = self.instances_of(revision);
                let views: Vec<InstanceView> = instances.iter().map(|i| i.view()).collect();
                let rules = policy::revision_rules(&self.config.rules, percent);
                match policy::decide(&views, revision.queued(), &rules) {
                    ScaleDecision::Start => {
                        let failures = self.failures.load(Ordering::Acquire);
                        tokio::time::sleep(policy::start_backoff(failures)).await;
                        self.start_instance(revision.clone());
                    }
                    ScaleDecision::Retire(idle) => {
                        let why = if percent == 0 {
                            "its revision has no traffic"
                        } else {
                            "idle"
                        };
                        for index in idle {
                            self.clone().retire(instances[index].clone(), why);
                        }
                    }
                    ScaleDecision::Hold => {}
                }
            }
            self.forget_empty_revisions();
            self.metrics.instances.set(self.snapshot().len() as i64);
        }
    }

    /// Revisions with neither traffic nor instances leave the list.
    fn forget_empty_revisions(&self) {
        let instances = self.snapshot();
        let mut revisions = lock(&self.revisions);
        let split = revisions.split.clone();
        revisions.list.retain(|revision| {
            let keep = revision.is_deploying()
                || split.percent(revision.number) > 0
                || instances
                    .iter()
                    .any(|i| i.revision.number == revision.number);
            if !keep {
                say(&format!(
                    "revision {} retired: no traffic and no instance left",
                    revision.name
                ));
            }
            keep
        });
    }

    /// Deploys a new revision (with `args`, or the newest revision's):
    /// starts its first instance, and once that is ready gives the
    /// revision `percent` of new requests (the others keep their
    /// proportions). Requests in flight stay where they are. Returns the
    /// revision's name and the new split.
    pub async fn deploy(
        self: &Arc<Self>,
        args: Option<Vec<String>>,
        percent: u32,
    ) -> Result<(String, Split), TrafficError> {
        let revision = {
            let mut revisions = lock(&self.revisions);
            let number = revisions.next;
            // A change that cannot be made fails before anything starts.
            revisions.split.with(number, percent)?;
            revisions.next += 1;
            let args = args.unwrap_or_else(|| {
                revisions
                    .list
                    .last()
                    .map_or_else(|| self.config.launch.args.clone(), |r| r.args.clone())
            });
            let revision = Arc::new(Revision::new(
                &self.config.launch.service,
                number,
                args,
                true,
            ));
            revisions.list.push(revision.clone());
            revision
        };
        say(&format!(
            "deploying revision {} ({}): its first instance starts, then it gets {percent}% of new requests",
            revision.name,
            self.config.launch.command_line(&revision.args)
        ));
        let ready = match self.start_instance(revision.clone()) {
            None => Err("it could not be started".to_owned()),
            Some(instance) => self.wait_until_ready(&instance).await,
        };
        let applied = ready
            .map_err(|why| TrafficError::NotReady {
                name: revision.name.clone(),
                why,
            })
            .and_then(|()| {
                let mut revisions = lock(&self.revisions);
                revisions.split = revisions.split.with(revision.number, percent)?;
                Ok(revisions.split.clone())
            });
        revision.deploying.store(false, Ordering::Release);
        if applied.is_err() {
            // Never ready: no request goes to it, no traffic change names
            // it; its instance, if any, is reaped or retired.
            lock(&self.revisions)
                .list
                .retain(|r| r.number != revision.number);
        }
        self.changed.notify_waiters();
        match &applied {
            Ok(split) => say(&format!(
                "revision {} ready: traffic {}",
                revision.name,
                self.describe_split(split)
            )),
            Err(e) => say(&format!("deploy failed: {e}")),
        }
        applied.map(|split| (revision.name.clone(), split))
    }

    /// Gives `revision` (by name; the newest when `None`) `percent` of new
    /// requests, the others keeping their proportions.
    pub fn set_traffic(&self, revision: Option<&str>, percent: u32) -> Result<Split, TrafficError> {
        let split = {
            let mut revisions = lock(&self.revisions);
            let target = match revision {
                Some(name) => revisions.list.iter().find(|r| r.name == name),
                None => revisions.list.iter().rev().find(|r| !r.is_deploying()),
            }
            .cloned()
            .ok_or_else(|| TrafficError::Unknown(revision.unwrap_or("").to_owned()))?;
            revisions.split = revisions.split.with(target.number, percent)?;
            revisions.split.clone()
        };
        self.changed.notify_waiters();
        say(&format!("traffic now {}", self.describe_split(&split)));
        Ok(split)
    }

    /// Waits until `instance` is ready; the error says why it never was.
    async fn wait_until_ready(&self, instance: &Instance) -> Result<(), String> {
        let give_up =
            Instant::now() + STARTUP_LIMIT + self.config.cold_start_delay + Duration::from_secs(1);
        loop {
            match instance.phase() {
                Phase::Ready => return Ok(()),
                Phase::Draining => return Err("it was stopped".to_owned()),
                Phase::Starting if instance.is_dead() => {
                    return Err("it exited before listening".to_owned())
                }
                Phase::Starting if Instant::now() > give_up => {
                    return Err(format!("not ready after {STARTUP_LIMIT:?}"))
                }
                Phase::Starting => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// A split with revision names, for messages.
    fn describe_split(&self, split: &Split) -> String {
        let revisions = lock(&self.revisions);
        split
            .serving()
            .map(|(number, percent)| {
                let name = revisions
                    .list
                    .iter()
                    .find(|r| r.number == number)
                    .map_or_else(|| format!("revision {number}"), |r| r.name.clone());
                format!("{name} {percent}%")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The split as JSON: `[{"revision": name, "percent": P}]`.
    pub fn split_json(&self, split: &Split) -> serde_json::Value {
        let revisions = lock(&self.revisions);
        split
            .serving()
            .filter_map(|(number, percent)| {
                let revision = revisions.list.iter().find(|r| r.number == number)?;
                Some(serde_json::json!({ "revision": revision.name, "percent": percent }))
            })
            .collect()
    }

    /// The revisions as JSON: name, share of traffic, arguments, instances
    /// (not draining), requests in flight and queued.
    pub fn describe_revisions(&self) -> serde_json::Value {
        let instances = self.snapshot();
        let revisions = lock(&self.revisions);
        revisions
            .list
            .iter()
            .map(|revision| {
                let mine = || {
                    instances
                        .iter()
                        .filter(|i| i.revision.number == revision.number)
                };
                serde_json::json!({
                    "revision": revision.name,
                    "percent": revisions.split.percent(revision.number),
                    "deploying": revision.is_deploying(),
                    "args": revision.args,
                    "instances": mine().filter(|i| i.phase() != Phase::Draining).count(),
                    "inflight": mine().map(|i| i.inflight()).sum::<usize>(),
                    "queued": revision.queued(),
                })
            })
            .collect()
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

    fn start_instance(self: &Arc<Self>, revision: Arc<Revision>) -> Option<Arc<Instance>> {
        let number = self.next_number.fetch_add(1, Ordering::AcqRel) as u32;
        let port = match process::free_port() {
            Ok(port) => port,
            Err(e) => {
                say(&format!(
                    "cannot find a free port for instance-{number}: {e}"
                ));
                return None;
            }
        };
        let launch = &self.config.launch;
        let child = match launch.spawn(port, &revision.name, &revision.args) {
            Ok(child) => child,
            Err(e) => {
                self.failures.fetch_add(1, Ordering::AcqRel);
                say(&format!(
                    "cannot start instance-{number} ({}): {e}",
                    launch.command_line(&revision.args)
                ));
                return None;
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
                        return None;
                    }
                }
            }
        };
        let instance = Arc::new(Instance {
            number,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            revision,
            phase: Mutex::new(Phase::Starting),
            inflight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            child: Mutex::new(Some(child)),
            dead: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            cpu,
        });
        lock(&self.instances).push(instance.clone());
        say(&format!(
            "starting {} of {} on port {port}",
            instance.label(),
            instance.revision.name
        ));
        let pool = self.clone();
        let started = instance.clone();
        tokio::spawn(async move { pool.wait_ready(started).await });
        Some(instance)
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

    /// The instances as JSON: name, revision, address, pid, state, requests
    /// in flight, CPU.
    pub fn describe(&self) -> serde_json::Value {
        let list: Vec<serde_json::Value> = self
            .snapshot()
            .iter()
            .map(|i| {
                serde_json::json!({
                    "instance": i.label(),
                    "revision": i.revision.name,
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
        let revision = lock(&pool.revisions).list[0].clone();
        let instance = Arc::new(Instance {
            number: 7,
            addr: SocketAddr::from(([127, 0, 0, 1], 9)),
            revision: revision.clone(),
            phase: Mutex::new(Phase::Ready),
            inflight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            child: Mutex::new(None),
            dead: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            cpu: None,
        });
        lock(&pool.instances).push(instance.clone());
        let lease = pool.try_acquire(&revision);
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

//! `trickle-load emulate`: a local stand-in for Cloud Run's serving layer
//! towards streams, to rehearse concurrency, timeouts and scaling offline.
//!
//! It starts instances of a command (default: the `trickle` binary beside
//! this one) with their own `PORT` and `K_SERVICE`/`K_REVISION`/
//! `K_CONFIGURATION`, lets each hold at most `--concurrency` requests,
//! queues the rest up to `--queue-timeout` and then answers 429, scales out
//! at about 60% of capacity and in after `--idle-ttl` (SIGTERM, SIGKILL
//! after `--grace`), answers 504 when no response came within `--timeout`
//! and cuts started streams at it. One log line per decision on stderr;
//! its metrics at `/_emulator/metrics`, its instances at
//! `/_emulator/instances`, its revisions at `/_emulator/revisions`; `POST
//! /_emulator/deploy` deploys a new revision under a traffic split, `POST
//! /_emulator/traffic` changes the split, and `POST /_emulator/rollout`
//! SIGTERMs every current instance (maintenance, not a deploy).

pub(crate) mod metrics;
pub(crate) mod policy;
pub(crate) mod pool;
pub(crate) mod process;
pub(crate) mod proxy;
pub mod throttle;
pub(crate) mod traffic;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use policy::ScalingRules;
use pool::{Billing, Pool, PoolConfig};
use process::Launch;
use proxy::{CutMode, Proxy, ProxyConfig};

static STARTED: OnceLock<std::time::Instant> = OnceLock::new();

/// One decision, one line, on stderr.
pub fn say(line: &str) {
    let t = STARTED
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64();
    eprintln!("emulator [{t:8.3} s] {line}");
}

#[derive(Debug, Clone, Args)]
pub struct EmulateArgs {
    /// Address clients connect to.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Most requests in flight on one instance (Cloud Run's default: 80).
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub concurrency: u32,
    #[arg(long, default_value_t = 0)]
    pub min_instances: u32,
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_instances: u32,
    /// How long a request waits for a free slot before 429.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub queue_timeout: Duration,
    /// Request timeout: 504 with no response yet, a cut for a started stream.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// What a cut stream looks like to the client.
    #[arg(long, value_enum, default_value = "close")]
    pub cut_mode: CutMode,
    /// HTTP/2 end-to-end (gcloud's --use-http2): requests reach instances
    /// over h2c, as when the service's port is named `h2c`. A WebSocket
    /// upgrade cannot cross HTTP/2 (no RFC 8441 on either side): it reaches
    /// the instance as a plain GET, and the client gets the instance's
    /// answer to that (400 from trickle) instead of a 101.
    #[arg(long)]
    pub use_http2: bool,
    /// An instance idle this long is stopped (down to --min-instances).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_ttl: Duration,
    /// SIGTERM to SIGKILL when stopping an instance.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// Added to each instance's real start-up time.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub cold_start_delay: Duration,
    /// Cloud Run's billing setting, as it allocates CPU: `request` (Cloud
    /// Run's default) throttles an instance's CPU to --throttled-cpu while
    /// it holds no request, start-up and shutdown excepted (a cgroup per
    /// instance: needs root); `instance` (the shipped manifests'
    /// `cpu-throttling: "false"`) never throttles.
    #[arg(long, value_enum, default_value = "request")]
    pub billing: BillingArg,
    /// Share of one CPU a throttled instance gets (0.001 to 1).
    #[arg(long, value_name = "SHARE", default_value = "0.001",
          value_parser = throttle::parse_share)]
    pub throttled_cpu: f64,
    /// K_SERVICE (and K_CONFIGURATION) given to instances.
    #[arg(long, default_value = "trickle")]
    pub service: String,
    /// The instance program (default: `trickle` beside this binary, else on PATH).
    #[arg(long)]
    pub command: Option<PathBuf>,
    /// Arguments for the instance program, after `--`.
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// `--billing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BillingArg {
    Request,
    Instance,
}

#[derive(Debug, thiserror::Error)]
pub enum EmulateError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("--min-instances {min} is more than --max-instances {max}")]
    Instances { min: u32, max: u32 },
    #[error("cannot create the metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Throttle(#[from] throttle::ThrottleError),
}

fn default_program() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("trickle")))
        .filter(|candidate| candidate.exists())
        .unwrap_or_else(|| PathBuf::from("trickle"))
}

pub async fn run(args: EmulateArgs) -> Result<(), EmulateError> {
    let _ = STARTED.get_or_init(std::time::Instant::now);
    if args.min_instances > args.max_instances {
        return Err(EmulateError::Instances {
            min: args.min_instances,
            max: args.max_instances,
        });
    }
    let billing = match args.billing {
        BillingArg::Instance => Billing::Instance,
        BillingArg::Request => Billing::Request {
            hierarchy: throttle::Hierarchy::find()?,
            share: args.throttled_cpu,
        },
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| EmulateError::Listen {
            addr: args.listen,
            source,
        })?;
    let program = args.command.clone().unwrap_or_else(default_program);
    let metrics = Arc::new(metrics::EmulatorMetrics::new()?);
    let pool = Pool::new(
        PoolConfig {
            launch: Launch {
                program: program.display().to_string(),
                args: args.args.clone(),
                service: args.service.clone(),
            },
            rules: ScalingRules {
                concurrency: args.concurrency as usize,
                min_instances: args.min_instances as usize,
                max_instances: args.max_instances as usize,
                idle_ttl: args.idle_ttl,
            },
            grace: args.grace,
            cold_start_delay: args.cold_start_delay,
            billing: billing.clone(),
        },
        metrics,
    );
    let proxy = Proxy::new(
        pool.clone(),
        ProxyConfig {
            timeout: args.timeout,
            queue_timeout: args.queue_timeout,
            cut_mode: args.cut_mode,
            http2: args.use_http2,
        },
    );
    let stop = CancellationToken::new();
    let scaler = tokio::spawn(pool.clone().scale(stop.clone()));
    say(&format!(
        "listening on http://{} for {} (concurrency {}, instances {}..={}, timeout {:?}, queue {:?}, {})",
        listener.local_addr().unwrap_or(args.listen),
        program.display(),
        args.concurrency,
        args.min_instances,
        args.max_instances,
        args.timeout,
        args.queue_timeout,
        match &billing {
            Billing::Instance => "instance-based billing: CPU always allocated".to_owned(),
            Billing::Request { share, .. } => format!(
                "request-based billing: an instance without a request gets {share} of a CPU"
            ),
        }
    ));
    let signal = termination();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(proxy::serve_connection(proxy.clone(), stream, peer));
                }
                Err(e) => {
                    say(&format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut signal => break,
        }
    }
    say("stopping: instances get SIGTERM");
    stop.cancel();
    let _ = scaler.await;
    pool.shutdown().await;
    Ok(())
}

async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

//! CPU outside requests, as Cloud Run's request-based billing allocates it:
//! an instance with no request in flight has its CPU "disabled or severely
//! limited" until the next request arrives; start-up and shutdown are
//! excepted (run/docs/configuring/billing-settings, run/docs/tips/general).
//!
//! The approximation: each instance runs in a cgroup of its own whose CPU
//! quota is lifted while it holds a request and cut to a small share of one
//! CPU (`--throttled-cpu`, 0.001 by default: 1 ms a second) while it holds
//! none. Unlike SIGSTOP it never stops the process outright (the kernel
//! still runs its timers and its TCP, as Cloud Run's throttled instances
//! seem to), and a SIGTERM needs no SIGCONT first: the shutdown lifts the
//! quota before the signal. What it does not reproduce: Cloud Run's own
//! share outside requests is not documented as a number; an instance's CPU
//! limit while serving (`--cpu`) is not applied; the time a throttled
//! instance takes to get its CPU back is the kernel's (at most one period,
//! 1 s), not Google's.
//!
//! cgroup v1 (the `cpu` controller's `cpu.cfs_quota_us`) and v2
//! (`cpu.max`) both work; either needs root, and without one the emulator
//! refuses `--billing request` with a message, rather than run unthrottled.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The cgroup quota's period: the longest the kernel allows, so the
/// smallest quota (1 ms) is the smallest share (0.001).
const PERIOD_US: u64 = 1_000_000;
/// The kernel's smallest quota.
const MIN_QUOTA_US: u64 = 1_000;

/// Where the cgroups are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v1: the `cpu` controller's mount.
    V1(PathBuf),
    /// cgroup v2: the unified hierarchy, with `cpu` enabled for children.
    V2(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    #[error("--billing request throttles each instance's CPU through a cgroup, and no writable cgroup CPU controller was found ({0}); run the emulator as root on Linux, or use --billing instance")]
    Unavailable(String),
    #[error("cgroup {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ThrottleError + '_ {
    move |source| ThrottleError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The quota for a share of one CPU, in microseconds per [`PERIOD_US`].
pub fn quota_us(share: f64) -> u64 {
    ((share * PERIOD_US as f64).round() as u64).max(MIN_QUOTA_US)
}

/// `--throttled-cpu`: a share of one CPU from 0.001 to 1.
pub fn parse_share(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(v) if (0.001..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{raw}: a share of one CPU from 0.001 (the kernel's smallest quota, 1 ms a second) to 1"
        )),
    }
}

impl Hierarchy {
    /// The CPU controller this machine lets us write, if any.
    pub fn find() -> Result<Self, ThrottleError> {
        Self::find_under(Path::new("/sys/fs/cgroup"))
    }

    fn find_under(root: &Path) -> Result<Self, ThrottleError> {
        let v1 = root.join("cpu");
        if v1.join("cpu.cfs_quota_us").exists() {
            return Self::writable(Self::V1(v1));
        }
        let controllers =
            std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "cpu") {
            // Children get the cpu controller only when the parent hands
            // it down.
            let subtree = root.join("cgroup.subtree_control");
            let _ = std::fs::write(&subtree, "+cpu");
            return Self::writable(Self::V2(root.to_owned()));
        }
        Err(ThrottleError::Unavailable(format!(
            "neither {} nor a cpu controller in {}",
            v1.join("cpu.cfs_quota_us").display(),
            root.join("cgroup.controllers").display()
        )))
    }

    /// Proves it by making and removing a cgroup.
    fn writable(self) -> Result<Self, ThrottleError> {
        let probe = self
            .base()
            .join(format!("trickle-emulator-probe-{}", std::process::id()));
        match std::fs::create_dir(&probe) {
            Ok(()) => {
                let _ = std::fs::remove_dir(&probe);
                Ok(self)
            }
            Err(e) => Err(ThrottleError::Unavailable(format!(
                "cannot create {}: {e}",
                probe.display()
            ))),
        }
    }

    fn base(&self) -> &Path {
        match self {
            Self::V1(p) | Self::V2(p) => p,
        }
    }
}

/// One instance's cgroup: its quota follows whether it holds a request.
#[derive(Debug)]
pub struct CpuLimit {
    dir: PathBuf,
    hierarchy: Hierarchy,
    throttled_quota_us: u64,
    /// Whether the quota is cut now.
    throttled: Mutex<bool>,
}

impl CpuLimit {
    /// A cgroup for `pid` (and the threads and children it makes later),
    /// unthrottled.
    pub fn new(
        hierarchy: &Hierarchy,
        name: &str,
        pid: u32,
        share: f64,
    ) -> Result<Self, ThrottleError> {
        let dir = hierarchy
            .base()
            .join(format!("trickle-emulator-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let limit = Self {
            dir,
            hierarchy: hierarchy.clone(),
            throttled_quota_us: quota_us(share),
            throttled: Mutex::new(false),
        };
        if let Hierarchy::V1(_) = hierarchy {
            let period = limit.dir.join("cpu.cfs_period_us");
            std::fs::write(&period, PERIOD_US.to_string()).map_err(io(&period))?;
        }
        limit.write_quota(None)?;
        let procs = limit.dir.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string()).map_err(io(&procs))?;
        Ok(limit)
    }

    fn write_quota(&self, quota_us: Option<u64>) -> Result<(), ThrottleError> {
        let (file, text) = match (&self.hierarchy, quota_us) {
            (Hierarchy::V1(_), Some(q)) => ("cpu.cfs_quota_us", q.to_string()),
            (Hierarchy::V1(_), None) => ("cpu.cfs_quota_us", "-1".to_owned()),
            (Hierarchy::V2(_), Some(q)) => ("cpu.max", format!("{q} {PERIOD_US}")),
            (Hierarchy::V2(_), None) => ("cpu.max", format!("max {PERIOD_US}")),
        };
        let path = self.dir.join(file);
        std::fs::write(&path, text).map_err(io(&path))
    }

    /// Cuts the quota or lifts it as `throttle` says, asked under this
    /// lock: every change of the instance's state is followed by a call,
    /// and whichever call comes last reads the last state, so a request
    /// that arrives as another ends never runs throttled. Says whether the
    /// quota changed.
    pub fn apply(&self, throttle: impl FnOnce() -> bool) -> Result<bool, ThrottleError> {
        let mut now = self
            .throttled
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let want = throttle();
        if *now == want {
            return Ok(false);
        }
        self.write_quota(want.then_some(self.throttled_quota_us))?;
        *now = want;
        Ok(true)
    }

    pub fn is_throttled(&self) -> bool {
        *self
            .throttled
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Periods in which the kernel held the instance back for its quota
    /// (`nr_throttled` of the cgroup's `cpu.stat`, both versions).
    pub fn periods_throttled(&self) -> Option<u64> {
        std::fs::read_to_string(self.dir.join("cpu.stat"))
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .and_then(|v| v.trim().parse().ok())
    }
}

impl Drop for CpuLimit {
    /// The cgroup goes with its instance (empty once the process exited;
    /// if not, the kernel keeps it and says so to nobody: harmless).
    fn drop(&mut self) {
        let _ = self.write_quota(None);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_become_quotas_the_kernel_takes() {
        assert_eq!(quota_us(0.001), 1_000);
        assert_eq!(quota_us(0.0001), 1_000, "never below the kernel's 1 ms");
        assert_eq!(quota_us(0.5), 500_000);
        assert_eq!(parse_share("0.001"), Ok(0.001));
        assert!(parse_share("0").is_err());
        assert!(parse_share("2").is_err());
        assert!(parse_share("x").is_err());
    }

    #[test]
    fn no_controller_is_an_error_that_says_what_to_do() {
        let dir = std::env::temp_dir().join(format!("trickle-no-cgroup-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let e = Hierarchy::find_under(&dir)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("--billing instance") && e.contains("root"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

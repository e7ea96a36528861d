//! A network namespace a test makes and removes: one end of a veth pair
//! inside it, the other in the test's own namespace. Shared by the
//! service's and trickle-load's fault tests.

use std::process::Command;

/// A namespace with one end of a veth pair (`10.x.y.2/30`, x.y from the
/// process id), the other end in this namespace (`10.x.y.1/30`); both go
/// when dropped.
pub struct Netns {
    pub name: String,
    pub outer: String,
    pub inner: String,
    /// The address on this side.
    pub host_ip: String,
    /// The address inside the namespace.
    pub peer_ip: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e} (install iproute2)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// `None` (said on stderr) where namespaces cannot be made: not root.
    pub fn make() -> Option<Self> {
        // The effective user, as /proc says it.
        let root = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|v| v.split_whitespace().nth(1).map(|u| u == "0"))
            })
            .unwrap_or(false);
        if !root {
            eprintln!("SKIPPED: network namespaces need root (run the suite as root, as CI does)");
            return None;
        }
        // A /30 of its own per process: tests of several processes run at
        // once (nextest), each with its namespace.
        let pid = std::process::id();
        let (hi, lo) = (200 + (pid / 250) % 50, pid % 250);
        let ns = Self {
            name: format!("trickle-f{}", std::process::id()),
            outer: format!("tfo{}", std::process::id()),
            inner: format!("tfi{}", std::process::id()),
            host_ip: format!("10.{hi}.{lo}.1"),
            peer_ip: format!("10.{hi}.{lo}.2"),
        };
        let made = (|| {
            ip(&["netns", "add", &ns.name])?;
            ip(&[
                "link", "add", &ns.outer, "type", "veth", "peer", "name", &ns.inner,
            ])?;
            ip(&["link", "set", &ns.inner, "netns", &ns.name])?;
            ip(&[
                "addr",
                "add",
                &format!("{}/30", ns.host_ip),
                "dev",
                &ns.outer,
            ])?;
            ip(&["link", "set", &ns.outer, "up"])?;
            ns.exec_ip(&[
                "addr",
                "add",
                &format!("{}/30", ns.peer_ip),
                "dev",
                &ns.inner,
            ])?;
            ns.exec_ip(&["link", "set", &ns.inner, "up"])?;
            ns.exec_ip(&["link", "set", "lo", "up"])
        })();
        if let Err(e) = made {
            panic!("cannot make the test's network namespace: {e}");
        }
        Some(ns)
    }

    /// Runs `tc` inside the namespace (trickle-load's tests shape the
    /// link with it).
    #[allow(dead_code)]
    pub fn exec_tc(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["netns", "exec", &self.name, "tc"];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Runs `ip` inside the namespace.
    pub fn exec_ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["netns", "exec", &self.name, "ip"];
        all.extend_from_slice(args);
        ip(&all)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.outer]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

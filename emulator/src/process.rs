//! Instance processes: started with Cloud Run's environment, watched until
//! they listen, stopped with SIGTERM then SIGKILL after the grace period.

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How often a starting instance is probed.
const PROBE_EVERY: Duration = Duration::from_millis(10);

/// What every instance of the service is started with; the first
/// revision's arguments.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: String,
    pub args: Vec<String>,
    /// `K_SERVICE` and `K_CONFIGURATION`.
    pub service: String,
}

/// The name of the service's revision `number`, as instances get it in
/// `K_REVISION`: Cloud Run's `{service}-{5 digits}-{suffix}` with the
/// suffix `emu`.
pub fn revision_name(service: &str, number: u32) -> String {
    format!("{service}-{number:05}-emu")
}

impl Launch {
    /// The program with `args`, for messages.
    pub fn command_line(&self, args: &[String]) -> String {
        format!("{} {}", self.program, args.join(" "))
    }

    /// Starts one instance of `revision` (its name and arguments)
    /// listening on 127.0.0.1:`port`.
    pub fn spawn(&self, port: u16, revision: &str, args: &[String]) -> std::io::Result<Child> {
        Command::new(&self.program)
            .args(args)
            .env("PORT", port.to_string())
            .env("K_SERVICE", &self.service)
            .env("K_REVISION", revision)
            .env("K_CONFIGURATION", &self.service)
            .env("TRICKLE_HOST", "127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
    }
}

/// A loopback port free right now.
pub fn free_port() -> std::io::Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
}

/// The exit status, if the process has exited.
pub fn exited(child: &mut Child) -> Option<ExitStatus> {
    child.try_wait().ok().flatten()
}

/// Why an instance never started listening.
#[derive(Debug)]
pub enum StartFailure {
    /// The process exited first.
    Exited(ExitStatus),
    /// It neither listened nor exited in time.
    TimedOut(Duration),
}

/// Waits until `addr` accepts a connection; `exit` tells whether the
/// process has exited meanwhile.
pub async fn wait_listening(
    addr: SocketAddr,
    limit: Duration,
    mut exit: impl FnMut() -> Option<ExitStatus>,
) -> Result<(), StartFailure> {
    let began = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = exit() {
            return Err(StartFailure::Exited(status));
        }
        if began.elapsed() > limit {
            return Err(StartFailure::TimedOut(began.elapsed()));
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// How a stopped instance ended.
#[derive(Debug)]
pub enum Stopped {
    /// It exited within the grace period.
    Exited(std::io::Result<ExitStatus>),
    /// It was killed when the grace period ran out.
    Killed,
}

/// SIGTERM, then SIGKILL if it has not exited after `grace`.
pub async fn stop(mut child: Child, grace: Duration) -> Stopped {
    if let Some(pid) = child.id() {
        // kill(1) rather than a libc call: this crate has no unsafe code.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => Stopped::Exited(status),
        Err(_) => {
            let _ = child.kill().await;
            Stopped::Killed
        }
    }
}

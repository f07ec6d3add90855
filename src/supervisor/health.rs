//! Health checks and lifecycle hooks: commands run inside a running container through the
//! runtime's exec (same namespaces, cgroup, root, user). A check passes with exit 0 within
//! its timeout; `retries` consecutive failures after the start period make the container
//! unhealthy; during the start period checks run every `start_interval` and failures do not
//! count.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::container::Status;
use super::daemon::Daemon;
use super::records::Health;
use crate::plan::spec::HealthPlan;
use crate::runtime::{ProcessSpec, Stdio};

/// Output kept from a check, like Docker's.
const OUTPUT_LIMIT: usize = 4096;

/// Runs `process` in container `name`; its exit status and (the start of) its output, or
/// why it could not run. Killed after `timeout`.
pub async fn exec(
    daemon: &Arc<Daemon>,
    name: &str,
    process: ProcessSpec,
    timeout: Duration,
) -> Result<(i32, String), String> {
    let (daemon, name) = (daemon.clone(), name.to_string());
    tokio::task::spawn_blocking(move || {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
        let stdio =
            Stdio { stdin: None, stdout: Some(write.try_clone().map_err(|e| e.to_string())?), stderr: Some(write) };
        let mut child = daemon.runtime.exec(&name, &process, stdio).map_err(|e| e.to_string())?;
        // Drained while the command runs, so that a chatty one never blocks on a full pipe;
        // the start is kept.
        let output = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (drained, drained_rx) = std::sync::mpsc::channel::<()>();
        let kept = output.clone();
        std::thread::spawn(move || {
            let mut pipe = std::fs::File::from(read);
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                if let Ok(mut kept) = kept.lock() {
                    let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
            let _ = drained.send(());
        });
        let deadline = Instant::now() + timeout;
        let exit = loop {
            if let Some(exit) = child.try_wait().map_err(|e| e.to_string())? {
                break Some(exit);
            }
            if Instant::now() >= deadline {
                let _ = child.kill(nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // A process left in the background may keep the pipe open: wait a little, not forever.
        let _ = drained_rx.recv_timeout(Duration::from_millis(200));
        let output = output.lock().map(|o| String::from_utf8_lossy(&o).trim_end().to_string()).unwrap_or_default();
        match exit {
            Some(exit) => Ok((exit.status(), output)),
            None => Err(format!("timed out after {timeout:?}")),
        }
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Runs a post_start or pre_stop hook; an error names the exit status and output.
pub async fn run_hook(daemon: &Arc<Daemon>, name: &str, process: ProcessSpec) -> Result<(), String> {
    match exec(daemon, name, process, Duration::from_secs(60)).await? {
        (0, _) => Ok(()),
        (code, output) => Err(format!("exit status {code}: {output}")),
    }
}

/// Checks the container's health until the task is aborted (when the container exits).
pub async fn watch(
    daemon: Arc<Daemon>,
    name: String,
    service: String,
    check: HealthPlan,
    status: watch::Sender<Status>,
) {
    let started = Instant::now();
    let mut failures = 0u32;
    let mut current = Health::Starting;
    let process = |daemon: &Daemon| {
        let spec = daemon.spec_of(&service);
        ProcessSpec {
            args: check.args.clone(),
            ..spec.map(|s| s.process).unwrap_or_else(|| ProcessSpec::new(check.args.clone()))
        }
    };
    loop {
        let in_start_period = started.elapsed() < check.start_period;
        let pause = if in_start_period || current == Health::Starting && check.start_period > Duration::ZERO {
            check.start_interval.min(check.interval)
        } else {
            check.interval
        };
        tokio::time::sleep(pause).await;
        let result = exec(&daemon, &name, process(&daemon), check.timeout).await;
        let (passed, output) = match result {
            Ok((0, _)) => (true, None),
            Ok((code, output)) => (false, Some(format!("exit status {code}: {output}"))),
            Err(e) => (false, Some(e)),
        };
        let in_start_period = started.elapsed() < check.start_period;
        let next = if passed {
            failures = 0;
            Health::Healthy
        } else if in_start_period {
            current
        } else {
            failures += 1;
            if failures >= check.retries {
                Health::Unhealthy
            } else {
                current
            }
        };
        if !passed {
            tracing::debug!("{name}: health check failed: {output:?}");
        }
        daemon.update(&name, |r| {
            r.health = Some(next);
            if output.is_some() {
                r.health_output = output.clone();
            }
        });
        if next != current {
            current = next;
            status.send_modify(|s| s.health = Some(next));
            daemon.event(&name, &service, &format!("health_status: {next}"), None);
        }
    }
}

//! Health checks and lifecycle hooks: commands run inside a running container through the
//! runtime's exec (same namespaces, cgroup, root, user). A check passes with exit 0 within
//! its timeout; `retries` consecutive failures after the start period make the container
//! unhealthy; during the start period checks run every `start_interval` and failures do not
//! count.

use crate::supervisor::error::SupervisorError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::host::Host;
use super::records::Health;
use super::records::Status;
use crate::plan::spec::HealthPlan;
use crate::plan::spec::HookPlan;
use crate::runtime::{ExecProcess, ProcessSpec, Stdio};

/// Output kept from a check, like Docker's.
const OUTPUT_LIMIT: usize = 4096;

/// An exec'd command that is killed and collected if the check is abandoned before it
/// ends (its task aborted when the container stops): never a zombie left behind.
struct Collected(ExecProcess);

impl Drop for Collected {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill(nix::sys::signal::Signal::SIGKILL);
            // Quick: nothing outlives SIGKILL for long.
            let _ = self.0.wait();
        }
    }
}

/// Runs `process` in container `name`; its exit status and (the start of) its output, or
/// why it could not run. Killed after `timeout`.
pub async fn exec(
    host: &Arc<Host>,
    name: &str,
    process: ProcessSpec,
    privileged: bool,
    timeout: Duration,
) -> Result<(i32, String), SupervisorError> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    let stdio = Stdio { stdin: None, stdout: Some(write.try_clone().map_err(|e| e.to_string())?), stderr: Some(write) };
    let (host, name) = (host.clone(), name.to_string());
    // Starting is short but blocking (a fork, and the stage's report); the write ends are
    // gone with `stdio` when it returns, so the pipe ends with the command's output. The
    // guard is made there too: if this check is abandoned meanwhile, it is dropped there.
    let mut child = tokio::task::spawn_blocking(move || {
        host.runtime.exec_with(&name, |_| process, stdio, privileged).map(Collected)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let child = &mut child.0;
    // A pooled thread waits for the exit (without collecting it, so the pid stays ours to
    // signal); the output is read here meanwhile, so that a chatty command never blocks on
    // a full pipe.
    let pid = child.pid();
    let mut exited = tokio::task::spawn_blocking(move || ExecProcess::wait_exited(pid));
    let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(read).map_err(|e| e.to_string())?;
    let mut output = Vec::new();
    let mut buf = [0u8; 8192];
    let mut keep =
        |n: usize, buf: &[u8]| output.extend_from_slice(&buf[..n.min(OUTPUT_LIMIT.saturating_sub(output.len()))]);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pipe_open = true;
    let exit = loop {
        tokio::select! {
            _ = &mut exited => match child.try_wait().map_err(|e| e.to_string())? {
                Some(exit) => break Some(exit),
                None => return Err("the command went away without an exit status".into()),
            },
            read = pipe.read(&mut buf), if pipe_open => match read {
                Ok(n @ 1..) => keep(n, &buf),
                _ => pipe_open = false,
            },
            _ = tokio::time::sleep_until(deadline) => {
                let _ = child.kill(nix::sys::signal::Signal::SIGKILL);
                let _ = exited.await;
                let _ = child.try_wait();
                break None;
            }
        }
    };
    // A process left in the background may keep the pipe open: read on a little, not forever.
    if pipe_open {
        let _ = tokio::time::timeout(Duration::from_millis(200), async {
            while let Ok(n @ 1..) = pipe.read(&mut buf).await {
                keep(n, &buf);
            }
        })
        .await;
    }
    let output = String::from_utf8_lossy(&output).trim_end().to_string();
    match exit {
        Some(exit) => Ok((exit.status(), output)),
        None => Err(SupervisorError::Failed(format!("timed out after {timeout:?}"))),
    }
}

/// Runs a post_start or pre_stop hook; an error names the exit status and output.
pub async fn run_hook(host: &Arc<Host>, name: &str, hook: HookPlan) -> Result<(), SupervisorError> {
    match exec(host, name, hook.process, hook.privileged, Duration::from_secs(60)).await? {
        (0, _) => Ok(()),
        (code, output) => Err(SupervisorError::Failed(format!("exit status {code}: {output}"))),
    }
}

/// Checks the container's health until the task is aborted (when the container exits).
pub async fn watch(host: Arc<Host>, name: String, service: String, check: HealthPlan, status: watch::Sender<Status>) {
    let started = Instant::now();
    let mut failures = 0u32;
    let mut current = Health::Starting;
    let process = |host: &Host| {
        let spec = host.spec_of(&service);
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
        let result = exec(&host, &name, process(&host), false, check.timeout).await;
        let (passed, output) = match result {
            Ok((0, _)) => (true, None),
            Ok((code, output)) => (false, Some(format!("exit status {code}: {output}"))),
            Err(e) => (false, Some(e.to_string())),
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
        host.update(&name, |r| {
            r.health = Some(next);
            if output.is_some() {
                r.health_output = output.clone();
            }
        });
        if next != current {
            current = next;
            host.event(&name, &service, &format!("health_status: {next}"), None);
            status.send_modify(|s| s.health = Some(next));
        }
    }
}

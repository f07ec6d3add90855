//! The CLI's side of a project's supervisor: is one running (or did it die), start one
//! detached, and ask it things.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::paths::ProjectPaths;
use super::protocol::{self, Command, Response};
use super::SupervisorError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Never started, or taken down.
    Absent,
    Running {
        pid: i32,
    },
    /// Its pid file remains but the process is gone: it was killed or crashed.
    Dead {
        pid: i32,
    },
}

pub fn liveness(paths: &ProjectPaths) -> Liveness {
    let Ok(text) = std::fs::read_to_string(paths.pid_file()) else { return Liveness::Absent };
    let Ok(pid) = text.trim().parse::<i32>() else { return Liveness::Absent };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let ours = cmdline.split(|b| *b == 0).any(|arg| arg == b"__supervise");
    if ours && paths.socket().exists() {
        Liveness::Running { pid }
    } else {
        Liveness::Dead { pid }
    }
}

/// Starts the project's supervisor unless it runs; returns once it answers.
pub fn ensure_running(paths: &ProjectPaths, binary: &Path) -> Result<(), SupervisorError> {
    if let Liveness::Running { .. } = liveness(paths) {
        if protocol::call(&paths.socket(), Command::Ping, Some(Duration::from_secs(5))).is_ok() {
            return Ok(());
        }
    }
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| SupervisorError::Io { action, path, source }
    };
    std::fs::create_dir_all(&paths.run_dir).map_err(io("cannot create", &paths.run_dir))?;
    let log_path = paths.supervisor_log();
    let log = crate::roots::open_private(&log_path, false).map_err(io("cannot create", &log_path))?;
    let log2 = log.try_clone().map_err(io("cannot duplicate", &log_path))?;
    let mut child = std::process::Command::new(binary)
        .arg("__supervise")
        .arg(&paths.project)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(io("cannot start", binary))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if paths.socket().exists()
            && protocol::call(&paths.socket(), Command::Ping, Some(Duration::from_secs(5))).is_ok()
        {
            // Reaped by init once it exits; it is not our child to wait for.
            std::mem::forget(child);
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(SupervisorError::Failed(format!("the supervisor exited at once ({status}): {}", log.trim())));
        }
        if Instant::now() > deadline {
            return Err(SupervisorError::Failed(format!(
                "the supervisor did not answer within 20 s; see {}",
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends a command; a supervisor-side failure becomes an error.
pub fn request(paths: &ProjectPaths, command: Command) -> Result<Response, SupervisorError> {
    checked(protocol::call(&paths.socket(), command, None)?)
}

fn checked(response: Response) -> Result<Response, SupervisorError> {
    match &response.error {
        Some(message) => Err(SupervisorError::Failed(message.clone())),
        None => Ok(response),
    }
}

/// Starts watching `services` for as long as the returned connection stays open (the
/// supervisor's answer messages with it).
pub fn attach_watch(
    paths: &ProjectPaths,
    services: Vec<String>,
) -> Result<(Vec<String>, std::os::unix::net::UnixStream), SupervisorError> {
    let (response, stream) = protocol::call_and_hold(&paths.socket(), Command::Watch { services, attach: true }, None)?;
    Ok((checked(response)?.answer.messages, stream))
}

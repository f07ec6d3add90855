//! `hoist exec`: a command in a service's running container, started straight through the
//! runtime by the calling process (no round trip through the supervisor: the container's
//! state on disk says everything exec needs). The command inherits the container's
//! environment, user and working directory, with the caller's overrides on top.

use std::path::PathBuf;

use super::records::{ProjectRecord, State};
use super::{ProjectPaths, SupervisorError};
use crate::runtime::{ExecProcess, ProcessSpec, Runtime, Stdio};

/// What the caller asks for.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub service: String,
    /// Replica number, from 1.
    pub index: u32,
    pub command: Vec<String>,
    /// `KEY=VALUE` (or `KEY`, taken from `environment`) over the container's environment.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub privileged: bool,
    /// A pseudo-terminal instead of the given stdio.
    pub terminal: bool,
}

/// Starts `request` in its container. `environment` resolves `-e KEY` without a value;
/// `binary` is the hoist executable (the runtime's exec stage).
pub fn start(
    paths: &ProjectPaths,
    binary: PathBuf,
    request: &ExecRequest,
    environment: &dyn Fn(&str) -> Option<String>,
    stdio: Stdio,
) -> Result<ExecProcess, SupervisorError> {
    let record = ProjectRecord::load(paths)?.unwrap_or_default();
    let running: Vec<&str> = {
        let mut names: Vec<&str> = record
            .containers
            .values()
            .filter(|c| c.state == State::Running && !c.one_off)
            .map(|c| c.service.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    };
    let not_running = |why: String| {
        let list = if running.is_empty() { "none".to_string() } else { running.join(", ") };
        SupervisorError::Failed(format!("{why}; running services of project {}: {list}", paths.project))
    };
    let container = record
        .containers
        .values()
        .find(|c| c.service == request.service && c.index == request.index && !c.one_off)
        .ok_or_else(|| {
            not_running(format!(
                "service {:?} has no container {} in project {}",
                request.service, request.index, paths.project
            ))
        })?;
    if container.state != State::Running {
        return Err(not_running(format!("container {} is {}, not running", container.name, container.state)));
    }
    if request.command.is_empty() {
        return Err(SupervisorError::Failed("exec needs a command to run".into()));
    }
    let runtime = Runtime::new(&paths.state_root, binary);
    let process = |base: &ProcessSpec| process_for(base.clone(), request, environment);
    Ok(runtime.exec_with(&container.name, process, stdio, request.privileged)?)
}

/// The container's own process settings with `request`'s command and overrides.
fn process_for(base: ProcessSpec, request: &ExecRequest, environment: &dyn Fn(&str) -> Option<String>) -> ProcessSpec {
    let mut env = base.env;
    for entry in &request.env {
        let (key, value) = match entry.split_once('=') {
            Some((key, value)) => (key.to_string(), value.to_string()),
            None => match environment(entry) {
                Some(value) => (entry.clone(), value),
                None => continue,
            },
        };
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        env.push(format!("{key}={value}"));
    }
    ProcessSpec {
        args: request.command.clone(),
        env,
        cwd: request.workdir.clone().unwrap_or(base.cwd),
        user: request.user.clone().or(base.user),
        additional_groups: base.additional_groups,
        rlimits: base.rlimits,
        terminal: request.terminal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_the_containers_settings() {
        let base = ProcessSpec {
            args: vec!["httpd".into()],
            env: vec!["PATH=/bin".into(), "RAILS_ENV=production".into()],
            cwd: "/app".into(),
            user: Some("app".into()),
            additional_groups: Vec::new(),
            rlimits: Vec::new(),
            terminal: false,
        };
        let request = ExecRequest {
            command: vec!["rake".into(), "db:migrate".into()],
            env: vec!["RAILS_ENV=test".into(), "FROM_SHELL".into(), "UNSET".into()],
            workdir: Some("/tmp".into()),
            terminal: true,
            ..ExecRequest::default()
        };
        let lookup = |key: &str| (key == "FROM_SHELL").then(|| "yes".to_string());
        let process = process_for(base, &request, &lookup);
        assert_eq!(process.args, ["rake", "db:migrate"]);
        assert_eq!(process.env, ["PATH=/bin", "RAILS_ENV=test", "FROM_SHELL=yes"]);
        assert_eq!(process.cwd, "/tmp");
        assert_eq!(process.user.as_deref(), Some("app"));
        assert!(process.terminal);
    }
}

//! The project record on disk: which networks the project made, and every container with
//! its service, config hash, state, health, exit code, addresses and published ports. The
//! supervisor rewrites it on every change; `ps`, `port`, `logs` and a `down` after a crash
//! read it without the supervisor. Also the live [`Status`] of a supervised container, which
//! its task, its health checks and `up` watch.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::paths::{write_atomic, ProjectPaths};
use super::SupervisorError;
use crate::network::ports::Published;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Created => "created",
            State::Running => "running",
            State::Paused => "paused",
            State::Restarting => "restarting",
            State::Exited => "exited",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub name: String,
    pub service: String,
    /// Replica number, from 1.
    pub index: u32,
    pub hash: String,
    pub state: State,
    pub health: Option<Health>,
    /// Output of the last failing health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_output: Option<String>,
    /// PID 1 on the host while running.
    pub pid: Option<i32>,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    pub exit_code: Option<i32>,
    /// Restarts by the restart policy since the container was created.
    pub restarts: u32,
    /// Stopped by a command (stop, kill, down): no restart policy applies.
    pub stopped_by_user: bool,
    /// Network key → address.
    pub addresses: BTreeMap<String, Ipv4Addr>,
    pub ports: Vec<Published>,
    /// A `hoist run` container.
    #[serde(default)]
    pub one_off: bool,
    #[serde(default)]
    pub created_at: Option<SystemTime>,
    /// The image as the file names it, the command, and the labels (the service's and
    /// Compose's own `com.docker.compose.*`), for `ps`.
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Started by its first connection (`x-hoist: {start: on-demand}`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_demand: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProjectRecord {
    pub project: String,
    /// Keys of the networks the project created (and must remove).
    pub networks: Vec<String>,
    pub containers: BTreeMap<String, ContainerRecord>,
    /// Project directory and files, for `hoist ls`.
    #[serde(default)]
    pub config_files: Vec<String>,
}

impl ProjectRecord {
    /// The project's containers (not one-offs) as `plan::converge` observes them.
    pub fn observed(&self) -> Vec<crate::plan::reconcile::Observed> {
        self.containers
            .values()
            .filter(|c| !c.one_off)
            .map(|c| crate::plan::reconcile::Observed {
                name: c.name.clone(),
                service: c.service.clone(),
                index: c.index,
                hash: c.hash.clone(),
                running: c.state == State::Running,
            })
            .collect()
    }

    pub fn load(paths: &ProjectPaths) -> Result<Option<ProjectRecord>, SupervisorError> {
        let path = paths.record();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| SupervisorError::Corrupt { path, message: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SupervisorError::Io { action: "cannot read", path, source }),
        }
    }

    pub fn save(&self, paths: &ProjectPaths) -> Result<(), SupervisorError> {
        let path = paths.record();
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| SupervisorError::Corrupt { path: path.clone(), message: e.to_string() })?;
        write_atomic(&path, &bytes).map_err(|source| SupervisorError::Io { action: "cannot write", path, source })
    }
}

/// The image layers every container of every project under `roots` stands on (running
/// or stopped, until it is removed), as (container, its overlay lowers): what image
/// removal and pruning must leave alone.
pub fn layer_users(roots: &crate::roots::Roots) -> Vec<(String, Vec<std::path::PathBuf>)> {
    let mut users = Vec::new();
    for project in super::paths::projects(roots) {
        let paths = ProjectPaths::new(roots, &project);
        let Ok(Some(record)) = ProjectRecord::load(&paths) else { continue };
        let plan: Option<crate::plan::spec::ProjectPlan> =
            std::fs::read(paths.plan()).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let Some(plan) = plan else { continue };
        for container in record.containers.values() {
            let Some(service) = plan.services.iter().find(|s| s.name == container.service) else { continue };
            if let crate::runtime::RootFs::Overlay { lowers } = &service.spec.root {
                users.push((container.name.clone(), lowers.clone()));
            }
        }
    }
    users
}

/// What dependents and `up` watch.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub state: State,
    pub health: Option<Health>,
    pub exit_code: Option<i32>,
    /// Times the container has been started.
    pub starts: u32,
    /// Why the last start failed.
    pub failure: Option<String>,
}

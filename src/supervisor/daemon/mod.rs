//! The supervisor process of one project: it owns the project's containers, networks, DNS
//! servers and published ports, answers commands on its control socket (mode 0600), starts
//! services in dependency layers honouring `depends_on` conditions, converges on a new plan
//! by recreating only what changed, and takes everything down on `down`.
//!
//! This file holds the daemon's state and what container tasks ask of it; each job has a
//! file: [`server`] (the control socket), [`up`] (executing `plan::converge`'s plan),
//! [`stopping`] (stop, start, rm, down, dependency conditions), [`wiring`] (networks, DNS,
//! published ports) and [`oneoff`] (`run`, `attach`).

mod oneoff;
mod server;
mod stopping;
mod up;
mod wiring;

use server::{serve, switched_on};
use stopping::{condition_met, wait_for};

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;

use super::container::{self, Control, Handle, Status};
use super::error::SupervisorError;
use super::paths::ProjectPaths;
use super::protocol::{Answer, Command, Request, Response, RunOptions, UpOptions, VERSION};
use super::records::{ContainerRecord, Health, ProjectRecord, State};
use super::{events, teardown};
use crate::network::connect_redirect::ConnectRedirect;
use crate::network::dns::{self, DnsServer, NameTable};
use crate::network::ipam::{Ipam, NetworkRecord, Pool};
use crate::network::links::{self, NetworkSpec};
use crate::network::ports::{self, Publish};
use crate::plan::converge;
use crate::plan::reconcile::{self, Observed};
use crate::plan::spec::{NetworkMode, ProjectPlan, ServicePlan};
use crate::project::model::Condition;
use crate::roots::Roots;
use crate::runtime::{ContainerSpec, Runtime, Stdio};

pub struct Daemon {
    pub paths: ProjectPaths,
    pub runtime: Runtime,
    pub names: NameTable,
    record: Mutex<ProjectRecord>,
    /// What is running: serialized by the command lock.
    inner: tokio::sync::Mutex<Inner>,
    /// Read by container tasks without the command lock.
    shared: Mutex<Shared>,
    shutdown: tokio::sync::Notify,
    /// The pty masters of one-off containers run with a terminal, by container name: held
    /// here while the container runs, for the client to copy.
    pub consoles: Mutex<BTreeMap<String, OwnedFd>>,
    /// The write end of each `stdin_open` container's stdin (not a tty), for `attach`.
    pub inputs: Mutex<BTreeMap<String, OwnedFd>>,
    /// Watch mode's watchers, by service.
    pub(super) watchers: super::watch::Watchers,
    /// Counts container starts: watchers bring (re)started containers up to date.
    pub(super) starts: tokio::sync::watch::Sender<u64>,
    /// Numbers the control connections (watchers' attached owners).
    connections: std::sync::atomic::AtomicU64,
    /// Sends host-loopback connections to published TCP ports straight to the containers;
    /// attached at the first published port (None: not possible here, or turned off).
    connect_redirect: std::sync::OnceLock<Option<Arc<ConnectRedirect>>>,
}

#[derive(Default)]
struct Inner {
    containers: BTreeMap<String, Handle>,
    dns: BTreeMap<String, DnsServer>,
}

#[derive(Default)]
struct Shared {
    plan: Option<ProjectPlan>,
    networks: BTreeMap<String, NetworkRecord>,
}

/// Runs the supervisor of `project` until `down`; the entry point of `hoist __supervise`.
pub fn main(roots: Roots, project: &str) -> Result<(), SupervisorError> {
    // Its own session: the terminal's Ctrl-C and hang-up are not for it.
    let _ = nix::unistd::setsid();
    let paths = ProjectPaths::new(&roots, project);
    let binary = std::env::current_exe().map_err(|source| SupervisorError::Io {
        action: "cannot find",
        path: "/proc/self/exe".into(),
        source,
    })?;
    let tokio =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(|source| {
            SupervisorError::Io { action: "cannot start tokio in", path: paths.run_dir.clone(), source }
        })?;
    let result = tokio.block_on(async move {
        // Whatever a crashed predecessor left behind goes first; its containers are
        // started again from the plan by the next `up`.
        let previous = ProjectRecord::load(&paths)?;
        if let Some(previous) = &previous {
            teardown::containers(&paths, previous);
        }
        let record = ProjectRecord {
            project: project.to_string(),
            networks: previous.map(|p| p.networks).unwrap_or_default(),
            ..ProjectRecord::default()
        };
        record.save(&paths)?;
        let daemon = Arc::new(Daemon {
            runtime: Runtime::new(&paths.state_root, binary),
            paths: paths.clone(),
            names: NameTable::default(),
            record: Mutex::new(record),
            inner: tokio::sync::Mutex::new(Inner::default()),
            shared: Mutex::new(Shared::default()),
            shutdown: tokio::sync::Notify::new(),
            consoles: Mutex::new(BTreeMap::new()),
            inputs: Mutex::new(BTreeMap::new()),
            watchers: super::watch::Watchers::default(),
            starts: tokio::sync::watch::Sender::new(0),
            connections: std::sync::atomic::AtomicU64::new(0),
            connect_redirect: std::sync::OnceLock::new(),
        });
        let socket = paths.socket();
        std::fs::create_dir_all(&paths.run_dir).map_err(|source| SupervisorError::Io {
            action: "cannot create",
            path: paths.run_dir.clone(),
            source,
        })?;
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).map_err(|source| SupervisorError::Io {
            action: "cannot listen on",
            path: socket.clone(),
            source,
        })?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .map_err(|source| SupervisorError::Io { action: "cannot restrict", path: socket.clone(), source })?;
        crate::roots::write_private(&paths.pid_file(), std::process::id().to_string().as_bytes())
            .map_err(|source| SupervisorError::Io { action: "cannot write", path: paths.pid_file(), source })?;
        tracing::info!("supervising project {project}, control socket {}", socket.display());
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        tokio::spawn(serve(daemon.clone(), stream));
                    }
                }
                _ = daemon.shutdown.notified() => break,
            }
        }
        let _ = std::fs::remove_file(&socket);
        let _ = std::fs::remove_file(paths.pid_file());
        Ok(())
    });
    // Everything is torn down by now; blocking tasks still parked (a DNS forward, a log
    // pump) hold nothing worth waiting for.
    tokio.shutdown_background();
    result
}

impl Daemon {
    // ---- state shared with container tasks ----

    /// Changes a container's record and saves the project record.
    pub fn update(&self, name: &str, change: impl FnOnce(&mut ContainerRecord)) {
        let Ok(mut record) = self.record.lock() else { return };
        if let Some(container) = record.containers.get_mut(name) {
            change(container);
        }
        if let Err(e) = record.save(&self.paths) {
            tracing::warn!("{e}");
        }
    }

    pub fn forget(&self, name: &str) {
        let Ok(mut record) = self.record.lock() else { return };
        record.containers.remove(name);
        if let Err(e) = record.save(&self.paths) {
            tracing::warn!("{e}");
        }
    }

    pub fn event(&self, container: &str, service: &str, action: &str, exit_code: Option<i32>) {
        events::append(&self.paths.events(), container, service, action, exit_code);
        if action == "start" {
            self.starts.send_modify(|n| *n += 1);
        }
    }

    /// The plan the project was last brought up with.
    pub fn plan(&self) -> Option<ProjectPlan> {
        self.shared.lock().ok()?.plan.clone()
    }

    /// Stops and starts `services` and those following them (`depends_on.restart`).
    pub(super) async fn restart(&self, services: Vec<String>, timeout: Option<u64>) -> Result<(), SupervisorError> {
        let services = self.with_restart_dependents(services);
        self.stop(&services, timeout).await?;
        self.start(&services).await
    }

    /// The network records of a service's attachments, in order.
    pub fn networks_of(&self, service: &ServicePlan) -> Vec<NetworkRecord> {
        let Ok(shared) = self.shared.lock() else { return Vec::new() };
        service.networks.iter().filter_map(|a| shared.networks.get(&a.network).cloned()).collect()
    }

    pub fn spec_of(&self, service: &str) -> Option<ContainerSpec> {
        let shared = self.shared.lock().ok()?;
        shared.plan.as_ref()?.services.iter().find(|s| s.name == service).map(|s| s.spec.clone())
    }

    /// The running containers of `service` (one-offs are not the service's), by replica
    /// index: name and PID 1.
    pub fn running_of(&self, service: &str) -> Vec<(String, i32)> {
        let Ok(record) = self.record.lock() else { return Vec::new() };
        let mut running: Vec<_> = record
            .containers
            .values()
            .filter(|c| c.service == service && !c.one_off && c.state == State::Running)
            .filter_map(|c| c.pid.map(|pid| (c.index, c.name.clone(), pid)))
            .collect();
        running.sort();
        running.into_iter().map(|(_, name, pid)| (name, pid)).collect()
    }

    /// A line for each running container of `services` (all when empty) whose PID 1 has no
    /// handler for `signal`: from outside its PID namespace the kernel drops it, so `kill`
    /// says so rather than claim it was delivered.
    fn dropped_signals(&self, services: &[String], signal: nix::sys::signal::Signal) -> Vec<String> {
        if matches!(signal, nix::sys::signal::Signal::SIGKILL | nix::sys::signal::Signal::SIGSTOP) {
            return Vec::new();
        }
        let Ok(record) = self.record.lock() else { return Vec::new() };
        record
            .containers
            .values()
            .filter(|c| (services.is_empty() || services.contains(&c.service)) && c.state == State::Running)
            .filter_map(|c| c.pid.map(|pid| (c.name.clone(), pid)))
            .filter(|(_, pid)| crate::runtime::procfs::catches_signal(*pid, signal as i32) == Some(false))
            .map(|(name, _)| {
                format!(
                    "Container {name}: PID 1 has no handler for {signal}; the kernel drops it (SIGKILL always acts)"
                )
            })
            .collect()
    }

    /// PID 1 of the first running container of `service`.
    pub fn first_pid_of(&self, service: &str) -> Option<i32> {
        self.running_of(service).first().map(|&(_, pid)| pid)
    }

    /// Addresses of `service`'s running containers on `network`, as its DNS answers them
    /// (the network records kept here are snapshots taken before any container joined).
    pub fn addresses_of(&self, service: &str, network: &str) -> Vec<Ipv4Addr> {
        self.names.lookup(network, None, service)
    }

    // ---- commands ----

    /// `services` and those following them with `depends_on.restart: true` (all stays all).
    fn with_restart_dependents(&self, mut services: Vec<String>) -> Vec<String> {
        if services.is_empty() {
            return services;
        }
        if let Some(plan) = self.plan() {
            services.extend(plan.restart_dependents(&services));
        }
        services
    }

    fn service(&self, name: &str) -> Option<ServicePlan> {
        let shared = self.shared.lock().ok()?;
        shared.plan.as_ref()?.services.iter().find(|s| s.name == name).cloned()
    }
}

/// A container `up` creates: name, replica index, service plan, bound ports.
type NewContainer = (String, u32, Arc<ServicePlan>, Option<ports::Forwarder>);

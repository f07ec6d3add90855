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

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;

use super::container::{self, Control, Handle};
use super::error::SupervisorError;
use super::host::{DaemonRequest, Host, Wanted};
use super::paths::ProjectPaths;
use super::protocol::{Answer, Command, Request, Response, RunOptions, UpOptions, VERSION};
use super::records::{ContainerRecord, Health, ProjectRecord, State, Status};
use super::teardown;
use super::watch::Watchers;
use crate::network::connect_redirect::ConnectRedirect;
use crate::network::dns::{self, DnsServer};
use crate::network::ipam::{Ipam, Pool};
use crate::network::links::{self, NetworkSpec};
use crate::network::ports::{self, Publish};
use crate::plan::converge;
use crate::plan::reconcile::{self, Observed};
use crate::plan::spec::{NetworkMode, ProjectPlan, ServicePlan};
use crate::project::model::Condition;
use crate::roots::Roots;
use crate::runtime::{Runtime, Stdio};

pub struct Daemon {
    /// What container tasks, health checks and watchers share with the daemon.
    pub host: Arc<Host>,
    /// What is running: serialized by the command lock.
    inner: tokio::sync::Mutex<Inner>,
    shutdown: tokio::sync::Notify,
    /// Watch mode's watchers, by service.
    watchers: Watchers,
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

/// Runs the supervisor of `project` until `down`; the entry point of `hoist __supervise`.
pub fn main(roots: Roots, project: &str) -> Result<(), SupervisorError> {
    // Its own session: the terminal's Ctrl-C and hang-up are not for it.
    let _ = nix::unistd::setsid();
    let open_files = crate::runtime::limits::raise_open_files();
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
        let (requests, incoming) = tokio::sync::mpsc::unbounded_channel();
        let runtime = Runtime::new(&paths.state_root, binary);
        let daemon = Arc::new(Daemon {
            host: Arc::new(Host::new(paths.clone(), runtime, record, requests)),
            inner: tokio::sync::Mutex::new(Inner::default()),
            shutdown: tokio::sync::Notify::new(),
            watchers: Watchers::default(),
            connections: std::sync::atomic::AtomicU64::new(0),
            connect_redirect: std::sync::OnceLock::new(),
        });
        tokio::spawn(take_requests(daemon.clone(), incoming));
        let saver = daemon.host.clone();
        tokio::spawn(async move { saver.save_changes().await });
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
        tracing::info!("supervising project {project}, control socket {}, {open_files} open files", socket.display());
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
    /// Stops and starts `services` and those following them (`depends_on.restart`).
    pub(super) async fn restart(&self, services: Vec<String>, timeout: Option<u64>) -> Result<Answer, SupervisorError> {
        let services = self.with_restart_dependents(services);
        let stopped = self.stop(&services, timeout).await?;
        self.start(&services).await?;
        Ok(stopped)
    }

    /// The running containers of `services` (all when empty) whose PID 1 has no handler for
    /// the signal `signal_of` their service: from outside its PID namespace the kernel drops
    /// it. Never SIGKILL or SIGSTOP, which always act.
    fn without_handler(&self, services: &[String], signal_of: impl Fn(&str) -> Signal) -> Vec<(String, Signal)> {
        let Ok(record) = self.host.record.lock() else { return Vec::new() };
        record
            .containers
            .values()
            .filter(|c| (services.is_empty() || services.contains(&c.service)) && c.state == State::Running)
            .filter_map(|c| c.pid.map(|pid| (c.name.clone(), pid, signal_of(&c.service))))
            .filter(|(_, _, signal)| !matches!(signal, Signal::SIGKILL | Signal::SIGSTOP))
            .filter(|(_, pid, signal)| crate::runtime::procfs::catches_signal(*pid, *signal as i32) == Some(false))
            .map(|(name, _, signal)| (name, signal))
            .collect()
    }

    /// `kill`: a line for each container whose PID 1 drops `signal`, rather than claim it
    /// was delivered.
    fn dropped_signals(&self, services: &[String], signal: Signal) -> Vec<String> {
        let dropped = self.without_handler(services, |_| signal);
        let line = |(name, signal): (String, Signal)| {
            format!("Container {name}: PID 1 has no handler for {signal}; the kernel drops it (SIGKILL always acts)")
        };
        dropped.into_iter().map(line).collect()
    }

    /// `stop`, `restart`: a note for each container that is killed at once because its PID 1
    /// has no handler for its stop signal (waiting out the grace period would wait for nothing).
    fn quick_stops(&self, services: &[String]) -> Vec<String> {
        let signal_of = |service: &str| {
            let plan = self.host.service(service);
            plan.and_then(|p| container::parse_signal(&p.stop_signal)).unwrap_or(Signal::SIGTERM)
        };
        let line = |(name, signal): (String, Signal)| {
            format!("Container {name}: PID 1 has no handler for {signal}: killed at once, without the grace period")
        };
        self.without_handler(services, signal_of).into_iter().map(line).collect()
    }

    /// `services` and those following them with `depends_on.restart: true` (all stays all).
    fn with_restart_dependents(&self, mut services: Vec<String>) -> Vec<String> {
        if services.is_empty() {
            return services;
        }
        if let Some(plan) = self.host.plan() {
            services.extend(plan.restart_dependents(&services));
        }
        services
    }
}

/// Does what tasks ask for until the daemon ends: restarts one at a time (in order), an
/// on-demand service's dependencies each in a task of its own (they wait for conditions).
async fn take_requests(daemon: Arc<Daemon>, mut requests: tokio::sync::mpsc::UnboundedReceiver<DaemonRequest>) {
    while let Some(request) = requests.recv().await {
        match request.wanted {
            Wanted::Restart(services) => {
                let _ = request.done.send(daemon.restart(services, None).await.map(drop));
            }
            Wanted::Dependencies(service) => {
                let daemon = daemon.clone();
                tokio::spawn(async move {
                    let _ = request.done.send(daemon.start_dependencies(&service).await);
                });
            }
        }
    }
}

/// A container `up` creates: name, replica index, service plan, bound ports.
type NewContainer = (String, u32, Arc<ServicePlan>, Option<ports::Forwarder>);

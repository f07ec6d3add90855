//! What container tasks, health checks and watchers may see and do of their project: its
//! paths, runtime, DNS name table, record and events, the plan it was brought up with, and a
//! way to ask the daemon for a restart or an on-demand service's dependencies. A narrow handle, so that they never hold the daemon
//! (its command lock, socket, watchers) and the supervisor's modules import each other in
//! one direction: daemon → container → health → host.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::error::SupervisorError;
use super::events;
use super::paths::ProjectPaths;
use super::records::{ContainerRecord, ProjectRecord, State};
use crate::network::dns::NameTable;
use crate::network::ipam::NetworkRecord;
use crate::plan::spec::{ProjectPlan, ServicePlan};
use crate::runtime::{ContainerSpec, Runtime};

/// What a task asks of the daemon, which owns stopping and starting, and where the outcome
/// goes.
pub struct DaemonRequest {
    pub wanted: Wanted,
    pub done: oneshot::Sender<Result<(), SupervisorError>>,
}

pub enum Wanted {
    /// A watcher's restart of services (with their `depends_on.restart` followers).
    Restart(Vec<String>),
    /// An on-demand service's dependencies started and their conditions met, before it
    /// starts.
    Dependencies(String),
}

/// What the daemon last brought up, read by container tasks without its command lock.
#[derive(Default)]
pub struct Current {
    pub plan: Option<ProjectPlan>,
    pub networks: BTreeMap<String, NetworkRecord>,
}

pub struct Host {
    pub paths: ProjectPaths,
    pub runtime: Runtime,
    pub names: NameTable,
    pub record: Mutex<ProjectRecord>,
    pub current: Mutex<Current>,
    /// The pty masters of one-off containers run with a terminal, by container name: held
    /// here while the container runs, for the client to copy.
    pub consoles: Mutex<BTreeMap<String, OwnedFd>>,
    /// The write end of each `stdin_open` container's stdin (not a tty), for `attach`.
    pub inputs: Mutex<BTreeMap<String, OwnedFd>>,
    /// Counts container starts: watchers bring (re)started containers up to date.
    pub starts: tokio::sync::watch::Sender<u64>,
    /// Bounds the containers being created at once (to a few per CPU): a thousand created
    /// together would only queue on the kernel's locks, each holding a thread.
    pub creating: tokio::sync::Semaphore,
    /// The record changed since it was last saved; the saver is told.
    unsaved: std::sync::atomic::AtomicBool,
    saver: tokio::sync::Notify,
    requests: mpsc::UnboundedSender<DaemonRequest>,
}

impl Host {
    /// A handle for a project whose daemon takes requests from `requests`.
    pub fn new(
        paths: ProjectPaths,
        runtime: Runtime,
        record: ProjectRecord,
        requests: mpsc::UnboundedSender<DaemonRequest>,
    ) -> Host {
        Host {
            paths,
            runtime,
            names: NameTable::default(),
            record: Mutex::new(record),
            current: Mutex::new(Current::default()),
            consoles: Mutex::new(BTreeMap::new()),
            inputs: Mutex::new(BTreeMap::new()),
            starts: tokio::sync::watch::Sender::new(0),
            creating: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()).saturating_mul(2),
            ),
            unsaved: std::sync::atomic::AtomicBool::new(false),
            saver: tokio::sync::Notify::new(),
            requests,
        }
    }

    /// Changes a container's record; the project record is saved soon after.
    pub fn update(&self, name: &str, change: impl FnOnce(&mut ContainerRecord)) {
        let Ok(mut record) = self.record.lock() else { return };
        if let Some(container) = record.containers.get_mut(name) {
            change(container);
        }
        drop(record);
        self.changed();
    }

    pub fn forget(&self, name: &str) {
        let Ok(mut record) = self.record.lock() else { return };
        record.containers.remove(name);
        drop(record);
        self.changed();
    }

    /// The record changed: the saver writes it within a few milliseconds, once for a burst
    /// of changes (a thousand containers starting would otherwise write it thousands of
    /// times); every command [`flush`](Self::flush)es it before it answers.
    pub fn changed(&self) {
        self.unsaved.store(true, std::sync::atomic::Ordering::SeqCst);
        self.saver.notify_one();
    }

    /// Writes the record now if it changed since it was last written.
    pub fn flush(&self) {
        if !self.unsaved.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let Ok(record) = self.record.lock() else { return };
        if let Err(e) = record.save(&self.paths) {
            tracing::warn!("{e}");
        }
    }

    /// The saver: after each change, waits a moment for more, then writes once.
    pub async fn save_changes(&self) {
        loop {
            self.saver.notified().await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            self.flush();
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
        self.current.lock().ok()?.plan.clone()
    }

    /// `read` of the current plan's service `name`, without cloning the plan.
    fn with_service<T>(&self, name: &str, read: impl FnOnce(&ServicePlan) -> T) -> Option<T> {
        let current = self.current.lock().ok()?;
        current.plan.as_ref()?.services.iter().find(|s| s.name == name).map(read)
    }

    pub fn service(&self, name: &str) -> Option<ServicePlan> {
        self.with_service(name, ServicePlan::clone)
    }

    pub fn spec_of(&self, service: &str) -> Option<ContainerSpec> {
        self.with_service(service, |s| s.spec.clone())
    }

    /// How long `service`'s containers get to stop: `timeout` seconds when given, else the
    /// service's `stop_grace_period` (10 s for a service the plan no longer has).
    pub fn grace(&self, service: &str, timeout: Option<u64>) -> Duration {
        let configured = self.with_service(service, |s| s.stop_grace_period).unwrap_or(Duration::from_secs(10));
        timeout.map(Duration::from_secs).unwrap_or(configured)
    }

    /// The network records of a service's attachments, in order.
    pub fn networks_of(&self, service: &ServicePlan) -> Vec<NetworkRecord> {
        let Ok(current) = self.current.lock() else { return Vec::new() };
        service.networks.iter().filter_map(|a| current.networks.get(&a.network).cloned()).collect()
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

    /// PID 1 of the first running container of `service`.
    pub fn first_pid_of(&self, service: &str) -> Option<i32> {
        self.running_of(service).first().map(|&(_, pid)| pid)
    }

    /// Addresses of `service`'s running containers on `network`, as its DNS answers them
    /// (the network records kept here are snapshots taken before any container joined).
    pub fn addresses_of(&self, service: &str, network: &str) -> Vec<Ipv4Addr> {
        self.names.lookup(network, None, service)
    }

    /// Asks the daemon to restart `services` (with their `depends_on.restart` followers) and
    /// waits for it.
    pub async fn restart(&self, services: Vec<String>) -> Result<(), SupervisorError> {
        self.ask(Wanted::Restart(services)).await
    }

    /// Asks the daemon to start what `service` depends on and waits until their conditions
    /// are met.
    pub async fn dependencies_of(&self, service: &str) -> Result<(), SupervisorError> {
        self.ask(Wanted::Dependencies(service.to_string())).await
    }

    async fn ask(&self, wanted: Wanted) -> Result<(), SupervisorError> {
        let (done, outcome) = oneshot::channel();
        self.requests.send(DaemonRequest { wanted, done }).map_err(|_| "the supervisor is shutting down")?;
        outcome.await.map_err(|_| "the supervisor is shutting down")?
    }
}
